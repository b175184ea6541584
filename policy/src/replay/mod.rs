//! Replay: recorded operations (the ECS NDJSON d4c writes, or Elastic's agent's documents
//! of the same data streams, in any mix and order) decided again under candidate policies
//! with the reference evaluator, the semantics the kernel tables are proven equal to; the
//! report says what would change: newly blocked, no longer blocked, new alerts, alerts gone,
//! grouped by selector and namespace, with examples. A document that lacks what a decision
//! needs is counted undecidable with the reason; a line that is not JSON is reported with
//! its number and skipped.

pub mod document;
mod report;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::eval::{container_matches, evaluate};
use crate::{Actions, Container, Event, Policy};

pub use document::{read, Recorded};
pub use report::text;

/// Examples kept per group of changes.
const EXAMPLES: usize = 3;
/// Distinct undecidable reasons, and malformed lines, kept (the counts are exact).
const KEPT: usize = 20;
/// Decisions remembered, at most (then the memo starts over).
const MEMO_MAX: usize = 100_000;

/// How a recorded operation would be decided now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Refused now, not when recorded.
    NewlyBlocked,
    /// Refused when recorded, not now.
    NoLongerBlocked,
    /// Alerted now, not when recorded.
    NewAlert,
    /// Alerted when recorded, not now.
    AlertGone,
}

impl Change {
    /// As the text report says it.
    #[must_use]
    pub fn words(self) -> &'static str {
        match self {
            Change::NewlyBlocked => "newly blocked",
            Change::NoLongerBlocked => "no longer blocked",
            Change::NewAlert => "new alert",
            Change::AlertGone => "alert gone",
        }
    }
}

/// The operations of one kind of change, one selector set and one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The kind of change.
    pub change: Change,
    /// The selectors that matched: under the candidate policy, or as recorded for a
    /// change that removes an action.
    pub selectors: Vec<String>,
    /// The pods' namespace.
    pub namespace: Option<String>,
    /// Operations in the group.
    pub count: u64,
    /// A few of them: time and one line each.
    pub examples: Vec<String>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Documents read (lines that are JSON).
    pub events: u64,
    /// Decided under the candidate policy.
    pub decided: u64,
    /// Not decidable (what they lack): count and the reasons with their counts.
    pub undecidable: u64,
    /// Why, with how many each (the first 20 reasons; the count above is exact).
    pub undecidable_reasons: BTreeMap<String, u64>,
    /// Decided as when recorded.
    pub unchanged: u64,
    /// Refused now, not when recorded.
    pub newly_blocked: u64,
    /// Refused when recorded, not now.
    pub no_longer_blocked: u64,
    /// Alerted now, not when recorded (and not newly blocked).
    pub new_alert: u64,
    /// Alerted when recorded, not now (and not no longer blocked).
    pub alert_gone: u64,
    /// Lines that are not JSON documents: their count, and the first ones.
    pub malformed: u64,
    /// The first 20 of them, `FILE:LINE: error`.
    pub malformed_lines: Vec<String>,
    /// The changes, grouped.
    pub changes: Vec<Group>,
}

impl Report {
    /// Whether anything would be decided otherwise.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.newly_blocked + self.no_longer_blocked + self.new_alert + self.alert_gone > 0
    }
}

/// The candidate's decision for a record (its actions and matched selectors), or why it
/// cannot be decided.
type Decided = Result<(Actions, Vec<usize>), String>;

/// A replay under one candidate policy.
pub struct Replay<'p> {
    policy: &'p Policy,
    report: Report,
    groups: HashMap<(Change, Vec<String>, Option<String>), Group>,
    /// Decisions already made: the same container and operation recur in real logs.
    memo: HashMap<(Container, Vec<Vec<Event>>), Decided>,
    /// The file the lines come from, for reports.
    source: String,
}

impl<'p> Replay<'p> {
    /// A replay deciding under `policy`.
    #[must_use]
    pub fn new(policy: &'p Policy) -> Self {
        Replay {
            policy,
            report: Report::default(),
            groups: HashMap::new(),
            memo: HashMap::new(),
            source: String::new(),
        }
    }

    /// Names the file the next lines come from (reports say `FILE:LINE`).
    pub fn source(&mut self, name: &str) {
        name.clone_into(&mut self.source);
    }

    /// Takes one line of NDJSON (`line`: its 1-based number, for reports). Empty lines
    /// are skipped.
    pub fn line(&mut self, line: usize, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        match document::parse(text) {
            Ok(doc) => self.take(&doc),
            Err(e) => {
                self.report.malformed += 1;
                if self.report.malformed_lines.len() < KEPT {
                    let at = if self.source.is_empty() {
                        format!("line {line}")
                    } else {
                        format!("{}:{line}", self.source)
                    };
                    self.report.malformed_lines.push(format!("{at}: {e}"));
                }
            }
        }
    }

    /// Takes one document.
    pub fn document(&mut self, doc: &serde_json::Value) {
        use serde::Deserialize;
        match document::Doc::deserialize(doc) {
            Ok(d) => self.take(&d),
            Err(e) => {
                self.report.events += 1;
                self.undecidable(format!("not a document of the expected shape: {e}"));
            }
        }
    }

    fn take(&mut self, doc: &document::Doc<'_>) {
        self.report.events += 1;
        let recorded = match read(doc) {
            Ok(r) => r,
            Err(why) => return self.undecidable(why),
        };
        let key = (recorded.container, recorded.alternatives);
        let decided = if let Some(d) = self.memo.get(&key) {
            d.clone()
        } else {
            let d = decide(self.policy, &key.0, &key.1);
            if self.memo.len() >= MEMO_MAX {
                self.memo.clear();
            }
            self.memo.insert(key.clone(), d.clone());
            d
        };
        let recorded = Recorded {
            container: key.0,
            alternatives: key.1,
            ..recorded
        };
        match decided {
            Ok((actions, selectors)) => self.compare(&recorded, actions, &selectors),
            Err(why) => self.undecidable(why),
        }
    }

    fn undecidable(&mut self, why: String) {
        self.report.undecidable += 1;
        let reasons = &mut self.report.undecidable_reasons;
        if reasons.len() < KEPT || reasons.contains_key(&why) {
            *reasons.entry(why).or_default() += 1;
        }
    }

    fn compare(&mut self, r: &Recorded, now: Actions, selectors: &[usize]) {
        self.report.decided += 1;
        let blocks = now.contains(Actions::BLOCK);
        let (alerted, alerts) = (
            r.actions.contains(Actions::ALERT),
            now.contains(Actions::ALERT),
        );
        let change = if blocks && !r.denied {
            Change::NewlyBlocked
        } else if r.denied && !blocks {
            Change::NoLongerBlocked
        } else if alerts && !alerted {
            Change::NewAlert
        } else if alerted && !alerts {
            Change::AlertGone
        } else {
            self.report.unchanged += 1;
            return;
        };
        match change {
            Change::NewlyBlocked => self.report.newly_blocked += 1,
            Change::NoLongerBlocked => self.report.no_longer_blocked += 1,
            Change::NewAlert => self.report.new_alert += 1,
            Change::AlertGone => self.report.alert_gone += 1,
        }
        let names = match change {
            Change::NewlyBlocked | Change::NewAlert => selectors
                .iter()
                .map(|&i| self.policy.selector_label(i))
                .collect(),
            Change::NoLongerBlocked | Change::AlertGone => r.selectors.clone(),
        };
        let key = (change, names.clone(), r.container.namespace.clone());
        let group = self.groups.entry(key).or_insert_with(|| Group {
            change,
            selectors: names,
            namespace: r.container.namespace.clone(),
            count: 0,
            examples: Vec::new(),
        });
        group.count += 1;
        if group.examples.len() < EXAMPLES {
            group.examples.push(format!("{} {}", r.at, r.summary));
        }
    }

    /// The report: changes ordered by kind, then by count (largest first).
    #[must_use]
    pub fn finish(mut self) -> Report {
        let mut changes: Vec<Group> = self.groups.into_values().collect();
        changes.sort_by(|a, b| {
            (
                a.change,
                std::cmp::Reverse(a.count),
                &a.selectors,
                &a.namespace,
            )
                .cmp(&(
                    b.change,
                    std::cmp::Reverse(b.count),
                    &b.selectors,
                    &b.namespace,
                ))
        });
        self.report.changes = changes;
        self.report
    }
}

/// The candidate policy's decision for a record: its actions and matched selectors, the
/// same for every alternative; else why not.
fn decide(policy: &Policy, container: &Container, alternatives: &[Vec<Event>]) -> Decided {
    let file = alternatives
        .iter()
        .flatten()
        .any(|e| matches!(e, Event::File { .. }));
    if file
        && policy.selectors.iter().any(|s| {
            (s.ignore_volume_mounts || s.ignore_volume_files) && container_matches(s, container)
        })
    {
        return Err("the policy ignores volumes for this container, and documents do not say which volumes it had".into());
    }
    let mut first: Option<(Actions, Vec<usize>)> = None;
    for alt in alternatives {
        let mut actions = Actions::default();
        let mut selectors = Vec::new();
        for e in alt {
            let d = evaluate(policy, container, e);
            actions.0 |= d.actions.0;
            selectors.extend(d.selectors);
        }
        let actions = actions.settled();
        selectors.sort_unstable();
        selectors.dedup();
        match &first {
            None => first = Some((actions, selectors)),
            Some((a, _)) if *a != actions => {
                return Err("the document does not say which operation it was (Elastic's change or creation without a file mode), and the policy decides them differently".into())
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| "no operation".into())
}

#[cfg(test)]
mod tests;
