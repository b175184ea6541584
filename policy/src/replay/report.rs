//! The text form of a replay report: totals, then each group of changes with its examples.

use std::fmt::Write as _;

use super::Report;

/// The report as text: the totals, what could not be decided and why, then the changes
/// (newly blocked first), grouped by selector and namespace, with examples.
#[must_use]
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} documents: {} decided, {} undecidable; {} unchanged, {} newly blocked, {} no longer blocked, {} new alerts, {} alerts gone",
        r.events,
        r.decided,
        r.undecidable,
        r.unchanged,
        r.newly_blocked,
        r.no_longer_blocked,
        r.new_alert,
        r.alert_gone
    );
    if r.malformed > 0 {
        let _ = writeln!(s, "{} lines are not JSON documents (skipped):", r.malformed);
        for l in &r.malformed_lines {
            let _ = writeln!(s, "  {l}");
        }
    }
    if r.undecidable > 0 {
        let _ = writeln!(s, "undecidable, by reason:");
        for (why, n) in &r.undecidable_reasons {
            let _ = writeln!(s, "  {n:>8}  {why}");
        }
    }
    for g in &r.changes {
        let _ = writeln!(
            s,
            "{}: {} in namespace {}, selectors [{}]",
            g.change.words(),
            g.count,
            g.namespace.as_deref().unwrap_or("(none)"),
            g.selectors.join(", ")
        );
        for e in &g.examples {
            let _ = writeln!(s, "    {e}");
        }
    }
    if !r.changed() && r.decided > 0 {
        let _ = writeln!(
            s,
            "no change: every decided operation is decided as recorded"
        );
    }
    s
}
