//! One ECS document (d4c's, or Elastic's Defend for Containers agent's: the fields are the
//! same) read back into what a policy decides on: the container, the operation, and what
//! was decided when it was recorded. What a document does not say is never guessed: where
//! the missing fact could change a decision, the candidate decisions are kept as
//! alternatives, and the document is decided only when they agree.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::{Actions, Container, Event, FileOp, ImageRef, ProcessOp};

/// A recorded operation.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The container it happened in.
    pub container: Container,
    /// What it may have been: each alternative is one or more operations decided together
    /// (a new executable is `createExecutable` and `createFile`); the record is decided
    /// when every alternative gets the same actions.
    pub alternatives: Vec<Vec<Event>>,
    /// The actions it was recorded with (`block` includes an audited, allowed block).
    pub actions: Actions,
    /// Whether it was refused.
    pub denied: bool,
    /// The selectors that matched when it was recorded (`cloud_defend.matched_selectors`).
    pub selectors: Vec<String>,
    /// `@timestamp`.
    pub at: String,
    /// One line for reports: operation, path, process, pod.
    pub summary: String,
}

/// A document that is not an operation a policy decides: why.
pub type Undecidable = String;

/// The fields of a document a decision needs; everything else is skipped unread.
#[derive(Debug, Default, Deserialize)]
pub struct Doc<'a> {
    #[serde(rename = "@timestamp", borrow, default)]
    at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event: EventFields<'a>,
    #[serde(borrow, default)]
    file: FileFields<'a>,
    #[serde(borrow, default)]
    process: ProcessFields<'a>,
    #[serde(borrow, default)]
    container: ContainerFields<'a>,
    #[serde(borrow, default)]
    orchestrator: OrchestratorFields<'a>,
    #[serde(borrow, default)]
    cloud_defend: CloudDefendFields<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct EventFields<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Words<'a>,
    #[serde(rename = "type", borrow, default)]
    types: Words<'a>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct FileFields<'a> {
    #[serde(borrow, default)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    mode: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct ProcessFields<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    executable: Option<Cow<'a, str>>,
    #[serde(default)]
    interactive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct ContainerFields<'a> {
    #[serde(borrow, default)]
    image: ImageFields<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct ImageFields<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tag: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct OrchestratorFields<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cluster: ClusterFields<'a>,
    #[serde(borrow, default)]
    resource: ResourceFields<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct ClusterFields<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourceFields<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    /// `key:value` strings (d4c; Elastic's flattened field as a list) or an object.
    #[serde(default)]
    label: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct CloudDefendFields<'a> {
    #[serde(borrow, default)]
    actions: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    matched_selectors: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    started_as: Option<Cow<'a, str>>,
}

/// `event.type` or `event.category`: a list, or one value.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Words<'a> {
    #[default]
    None,
    #[serde(borrow)]
    One(Cow<'a, str>),
    #[serde(borrow)]
    Many(Vec<Cow<'a, str>>),
}

impl Words<'_> {
    fn contains(&self, w: &str) -> bool {
        match self {
            Words::None => false,
            Words::One(s) => s == w,
            Words::Many(v) => v.iter().any(|s| s == w),
        }
    }

    fn list(&self) -> Vec<&str> {
        match self {
            Words::None => Vec::new(),
            Words::One(s) => vec![s],
            Words::Many(v) => v.iter().map(AsRef::as_ref).collect(),
        }
    }
}

/// A non-empty value.
fn some<'b>(v: Option<&'b Cow<'_, str>>) -> Option<&'b str> {
    v.map(AsRef::as_ref).filter(|s: &&str| !s.is_empty())
}

/// Parses one NDJSON line into the fields a decision needs.
pub fn parse(line: &str) -> Result<Doc<'_>, serde_json::Error> {
    serde_json::from_str(line)
}

/// The container a document names (a bare container when it names none).
fn container(d: &Doc<'_>) -> Result<Container, Undecidable> {
    let mut c = Container::default();
    if let Some(name) = some(d.container.image.name.as_ref()) {
        let reference = match some(d.container.image.tag.as_ref()) {
            Some(tag) => format!("{name}:{tag}"),
            None => name.to_owned(),
        };
        c.image = Some(
            ImageRef::parse(&reference)
                .map_err(|e| format!("container.image `{reference}`: {e}"))?,
        );
    }
    let orch = &d.orchestrator;
    c.namespace = some(orch.namespace.as_ref()).map(str::to_owned);
    c.pod_name = some(orch.resource.name.as_ref()).map(str::to_owned);
    c.cluster_id = some(orch.cluster.id.as_ref()).map(str::to_owned);
    c.cluster_name = some(orch.cluster.name.as_ref()).map(str::to_owned);
    c.orchestrator = some(orch.kind.as_ref()).map(str::to_owned).or_else(|| {
        (c.namespace.is_some() || c.pod_name.is_some()).then(|| "kubernetes".to_owned())
    });
    match &orch.resource.label {
        Some(Value::Array(items)) => {
            for l in items.iter().filter_map(Value::as_str) {
                let (k, v) = l.split_once(':').unwrap_or((l, ""));
                c.labels.insert(k.to_owned(), v.to_owned());
            }
        }
        Some(Value::Object(map)) => {
            for (k, v) in map {
                c.labels
                    .insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
        }
        _ => {}
    }
    Ok(c)
}

/// Whether an octal mode string (`"755"`, `"0100755"`) has an execute bit.
fn executable_mode(mode: &str) -> Option<bool> {
    u32::from_str_radix(mode, 8).ok().map(|m| m & 0o111 != 0)
}

/// The file operations a file document stands for, as alternatives.
fn file_ops(d: &Doc<'_>) -> Result<Vec<Vec<FileOp>>, Undecidable> {
    // d4c names the policy operations (`createExecutable,createFile`).
    if let Some(action) = some(d.event.action.as_ref()) {
        let ops: Option<Vec<FileOp>> = action.split(',').map(FileOp::from_name).collect();
        if let Some(ops) = ops.filter(|o| !o.is_empty()) {
            return Ok(vec![ops]);
        }
    }
    // Elastic's agent: the kind of change and the file's mode.
    let types = &d.event.types;
    let x = some(d.file.mode.as_ref()).and_then(executable_mode);
    let has = |t: &str| types.contains(t);
    if has("deletion") {
        return Ok(vec![vec![FileOp::DeleteFile]]);
    }
    let (plain, exe) = if has("creation") {
        (
            FileOp::CreateFile,
            vec![vec![FileOp::CreateExecutable, FileOp::CreateFile]],
        )
    } else if has("change") {
        // An executable written, or a file made executable: the document cannot tell.
        (
            FileOp::ModifyFile,
            vec![
                vec![FileOp::ModifyExecutable, FileOp::ModifyFile],
                vec![FileOp::CreateExecutable, FileOp::ModifyFile],
            ],
        )
    } else {
        return Err(format!(
            "a file document whose event.action `{}` and event.type {:?} name no file operation",
            some(d.event.action.as_ref()).unwrap_or(""),
            types.list()
        ));
    };
    Ok(match x {
        Some(true) => exe,
        Some(false) => vec![vec![plain]],
        None => {
            let mut all = vec![vec![plain]];
            all.extend(exe);
            all
        }
    })
}

/// The actions a document was recorded with: d4c names them (`cloud_defend.actions`);
/// Elastic's agent says them by the document's kind and whether it was denied.
fn recorded_actions(d: &Doc<'_>, kind: &str, denied: bool) -> Actions {
    if let Some(names) = &d.cloud_defend.actions {
        return Actions(
            names
                .iter()
                .fold(0, |a, n| a | Actions::bit_of(n).unwrap_or(0)),
        );
    }
    let mut a = if kind == "alert" {
        Actions::ALERT
    } else {
        Actions::LOG
    };
    if denied {
        a |= Actions::BLOCK;
    }
    Actions(a)
}

/// A process document's operation (fork or exec), as alternatives (one per terminal
/// flag when the document does not say), and its summary line.
fn process_alternatives(d: &Doc<'_>, pod: &str) -> Result<(Vec<Vec<Event>>, String), Undecidable> {
    let op = match some(d.event.action.as_ref()) {
        Some("exec" | "execution") => ProcessOp::Exec,
        Some("fork") => ProcessOp::Fork,
        other => {
            return Err(format!(
                "a process document whose event.action `{}` is not fork or exec",
                other.unwrap_or("")
            ))
        }
    };
    let executable = some(d.process.executable.as_ref())
        .ok_or("a process document without process.executable")?;
    let name = some(d.process.name.as_ref()).map_or_else(
        || crate::event::process_name(executable.rsplit('/').next().unwrap_or("")).to_owned(),
        |n| crate::event::process_name(n).to_owned(),
    );
    let started_as = some(d.cloud_defend.started_as.as_ref()).map(str::to_owned);
    // A document without the terminal flag: both, unless the policy does not care.
    let interactive: Vec<bool> = match d.process.interactive {
        Some(i) => vec![i],
        None => vec![false, true],
    };
    let events = interactive
        .into_iter()
        .map(|interactive| {
            vec![Event::Process {
                op,
                executable: executable.to_owned(),
                name: name.clone(),
                started_as: started_as.clone(),
                interactive,
            }]
        })
        .collect();
    Ok((events, format!("{} {executable}{pod}", op.name())))
}

/// Reads one document.
pub fn read(d: &Doc<'_>) -> Result<Recorded, Undecidable> {
    let categories = &d.event.category;
    let container = container(d)?;
    let kind = some(d.event.kind.as_ref()).unwrap_or("event");
    let denied = some(d.event.outcome.as_ref()) == Some("failure")
        || d.event.types.contains("denied")
        || some(d.event.action.as_ref()) == Some("blocked");
    let actions = recorded_actions(d, kind, denied);
    let selectors = d
        .cloud_defend
        .matched_selectors
        .iter()
        .map(ToString::to_string)
        .collect();
    let process = some(d.process.name.as_ref()).unwrap_or("?").to_owned();
    let pod = match (&container.namespace, &container.pod_name) {
        (Some(ns), Some(p)) => format!(" in {ns}/{p}"),
        (Some(ns), None) => format!(" in {ns}"),
        _ => String::new(),
    };
    let (alternatives, summary) = if categories.contains("file") {
        let path = some(d.file.path.as_ref()).ok_or("a file document without file.path")?;
        let alts = file_ops(d)?;
        let ops = alts[0]
            .iter()
            .map(|o| o.name())
            .collect::<Vec<_>>()
            .join(",");
        let events = alts
            .into_iter()
            .map(|ops| {
                ops.into_iter()
                    .map(|op| Event::File {
                        op,
                        path: path.to_owned(),
                    })
                    .collect()
            })
            .collect();
        (events, format!("{ops} {path} by {process}{pod}"))
    } else if categories.contains("process") {
        process_alternatives(d, &pod)?
    } else {
        return Err(format!(
            "neither a file nor a process document (event.category {:?})",
            categories.list()
        ));
    };
    Ok(Recorded {
        container,
        alternatives,
        actions,
        denied,
        selectors,
        at: some(d.at.as_ref()).unwrap_or("").to_owned(),
        summary,
    })
}
