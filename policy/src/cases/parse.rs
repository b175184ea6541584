//! Reading a policy test file from its YAML tree; every problem as a diagnostic at its
//! line and column, with the keys expected.

use std::path::Path;

use super::{Case, TestFile};
use crate::diag::{Diagnostic, Severity};
use crate::parse::closest;
use crate::yaml::{self, Node, NodeKind};
use crate::{Actions, Container, Event, FileOp, ImageRef, Mount, ProcessOp};

/// A problem at a node.
type Fail = (Node, String);

fn at(node: &Node, message: impl Into<String>) -> Fail {
    (node.clone(), message.into())
}

/// Parses the test file `path` (its policies resolved against its directory).
pub fn parse(path: &Path, text: &str) -> Result<TestFile, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let diag = |line, column, message: String| Diagnostic {
        file: file.clone(),
        line,
        column,
        severity: Severity::Error,
        message,
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(vec![diag(
                1,
                1,
                "an empty test file: write `policies:` and `cases:`".into(),
            )])
        }
        Err(e) => return Err(vec![diag(e.pos.line, e.pos.col, e.message)]),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    top(&root, dir, path).map_err(|(node, m)| vec![diag(node.pos.line, node.pos.col, m)])
}

fn top(root: &Node, dir: &Path, path: &Path) -> Result<TestFile, Fail> {
    let pairs = map(root, "a test file")?;
    let (mut policies, mut cases) = (None, None);
    for (k, v) in pairs {
        match key(k)? {
            "policies" => {
                policies = Some(
                    strings(v, "policies")?
                        .into_iter()
                        .map(|p| dir.join(p))
                        .collect::<Vec<_>>(),
                );
            }
            "cases" => {
                let NodeKind::Seq(items) = &v.kind else {
                    return Err(at(v, "`cases` is a list of cases"));
                };
                cases = Some(items.iter().map(case).collect::<Result<Vec<_>, _>>()?);
            }
            other => return Err(unknown(k, other, &["policies", "cases"])),
        }
    }
    let policies = policies.filter(|p| !p.is_empty()).ok_or_else(|| {
        at(
            root,
            "`policies:` is required: the policy files this file tests, relative to it",
        )
    })?;
    let cases = cases
        .filter(|c| !c.is_empty())
        .ok_or_else(|| at(root, "`cases:` is required, with at least one case"))?;
    Ok(TestFile {
        path: path.to_owned(),
        policies,
        cases,
    })
}

const CASE_KEYS: [&str; 7] = [
    "name",
    "container",
    "file",
    "process",
    "expect",
    "selectors",
    "audit",
];

fn case(node: &Node) -> Result<Case, Fail> {
    let pairs = map(node, "a case")?;
    let mut name = None;
    let mut container = Container::default();
    let mut event = None;
    let (mut expect, mut selectors, mut audit) = (None, None, false);
    for (k, v) in pairs {
        match key(k)? {
            "name" => name = Some(scalar(v, "name")?),
            "container" => container = container_of(v)?,
            "file" | "process" if event.is_some() => {
                return Err(at(
                    k,
                    "a case has one operation: `file:` or `process:`, not both",
                ))
            }
            "file" => event = Some(file_event(v)?),
            "process" => event = Some(process_event(v)?),
            "expect" => {
                let mut a = Actions::default();
                for n in list(v, "expect")? {
                    let word = scalar(n, "expect")?;
                    a.0 |= match word.as_str() {
                        "audit" => Actions::AUDIT,
                        w => Actions::bit_of(w).ok_or_else(|| {
                            at(
                                n,
                                format!(
                                    "`expect`: `{w}` is not an action (alert, audit, block, log)"
                                ),
                            )
                        })?,
                    };
                }
                expect = Some(a);
            }
            "selectors" => selectors = Some(strings(v, "selectors")?),
            "audit" => audit = boolean(v, "audit")?,
            other => return Err(unknown(k, other, &CASE_KEYS)),
        }
    }
    Ok(Case {
        name: name.ok_or_else(|| at(node, "a case needs a `name`"))?,
        line: node.pos.line,
        container,
        event: event.ok_or_else(|| at(node, "a case needs an operation: `file:` or `process:`"))?,
        audit,
        expect: expect
            .ok_or_else(|| at(node, "a case needs `expect:` (the actions; [] for none)"))?,
        selectors,
    })
}

const CONTAINER_KEYS: [&str; 9] = [
    "image",
    "namespace",
    "podName",
    "labels",
    "clusterId",
    "clusterName",
    "orchestrator",
    "mounts",
    "fileMounts",
];

/// A container as `d4c eval`'s flags describe one (`orchestrator` defaults to `kubernetes`
/// when a pod attribute is given).
fn container_of(node: &Node) -> Result<Container, Fail> {
    let mut c = Container::default();
    let mut orchestrator = None;
    for (k, v) in map(node, "a container")? {
        match key(k)? {
            "image" => {
                let r = scalar(v, "image")?;
                c.image = Some(ImageRef::parse(&r).map_err(|e| at(v, format!("`image`: {e}")))?);
            }
            "namespace" => c.namespace = Some(scalar(v, "namespace")?),
            "podName" => c.pod_name = Some(scalar(v, "podName")?),
            "clusterId" => c.cluster_id = Some(scalar(v, "clusterId")?),
            "clusterName" => c.cluster_name = Some(scalar(v, "clusterName")?),
            "orchestrator" => orchestrator = Some(scalar(v, "orchestrator")?),
            "labels" => {
                for (lk, lv) in map(v, "`labels` (key: value)")? {
                    c.labels
                        .insert(key(lk)?.to_owned(), scalar(lv, "a label value")?);
                }
            }
            which @ ("mounts" | "fileMounts") => {
                for n in list(v, which)? {
                    let destination = scalar(n, which)?;
                    if !destination.starts_with('/') {
                        return Err(at(
                            n,
                            format!("`{which}`: `{destination}` is not an absolute path"),
                        ));
                    }
                    c.mounts.push(Mount {
                        destination,
                        file: which == "fileMounts",
                    });
                }
            }
            other => return Err(unknown(k, other, &CONTAINER_KEYS)),
        }
    }
    let in_pod = c.namespace.is_some() || c.pod_name.is_some() || !c.labels.is_empty();
    c.orchestrator = orchestrator.or_else(|| in_pod.then(|| "kubernetes".to_owned()));
    Ok(c)
}

fn file_event(node: &Node) -> Result<Event, Fail> {
    let (mut op, mut path) = (None, None);
    for (k, v) in map(node, "a file operation")? {
        match key(k)? {
            "operation" => {
                let name = scalar(v, "operation")?;
                op = Some(FileOp::from_name(&name).ok_or_else(|| {
                    let all: Vec<&str> = FileOp::ALL.iter().map(|o| o.name()).collect();
                    at(
                        v,
                        format!(
                            "`operation`: `{name}` is not a file operation ({})",
                            all.join(", ")
                        ),
                    )
                })?);
            }
            "path" => path = Some(scalar(v, "path")?),
            other => return Err(unknown(k, other, &["operation", "path"])),
        }
    }
    Ok(Event::File {
        op: op.ok_or_else(|| at(node, "`file:` needs an `operation`"))?,
        path: path.ok_or_else(|| at(node, "`file:` needs a `path`"))?,
    })
}

const PROCESS_KEYS: [&str; 5] = [
    "operation",
    "executable",
    "processName",
    "startedAs",
    "interactive",
];

fn process_event(node: &Node) -> Result<Event, Fail> {
    let (mut op, mut executable, mut name, mut started_as, mut interactive) =
        (None, None, None, None, false);
    for (k, v) in map(node, "a process operation")? {
        match key(k)? {
            "operation" => {
                let word = scalar(v, "operation")?;
                op =
                    Some(ProcessOp::from_name(&word).ok_or_else(|| {
                        at(v, format!("`operation`: `{word}` is not fork or exec"))
                    })?);
            }
            "executable" => executable = Some(scalar(v, "executable")?),
            "processName" => {
                let n = scalar(v, "processName")?;
                if n.len() > crate::event::NAME_MAX {
                    return Err(at(v, "`processName`: process names are at most 15 bytes"));
                }
                name = Some(n);
            }
            "startedAs" => started_as = Some(scalar(v, "startedAs")?),
            "interactive" => interactive = boolean(v, "interactive")?,
            other => return Err(unknown(k, other, &PROCESS_KEYS)),
        }
    }
    let executable = executable.ok_or_else(|| at(node, "`process:` needs an `executable`"))?;
    let name = name.unwrap_or_else(|| {
        let base = executable.rsplit('/').next().unwrap_or(&executable);
        crate::event::process_name(base).to_owned()
    });
    Ok(Event::Process {
        op: op.ok_or_else(|| at(node, "`process:` needs an `operation`"))?,
        executable,
        name,
        started_as,
        interactive,
    })
}

fn map<'a>(node: &'a Node, what: &str) -> Result<&'a [(Node, Node)], Fail> {
    match &node.kind {
        NodeKind::Map(pairs) => Ok(pairs),
        _ => Err(at(
            node,
            format!("expected {what} (a mapping), found {}", node.type_name()),
        )),
    }
}

fn list<'a>(node: &'a Node, what: &str) -> Result<&'a [Node], Fail> {
    match &node.kind {
        NodeKind::Seq(items) => Ok(items),
        _ => Err(at(
            node,
            format!("`{what}` is a list, found {}", node.type_name()),
        )),
    }
}

fn key(node: &Node) -> Result<&str, Fail> {
    node.as_str()
        .ok_or_else(|| at(node, "a key must be a string"))
}

fn scalar(node: &Node, what: &str) -> Result<String, Fail> {
    match &node.kind {
        NodeKind::Scalar { value, .. } if !node.is_null() => Ok(value.clone()),
        _ => Err(at(
            node,
            format!("`{what}` is a value, found {}", node.type_name()),
        )),
    }
}

fn strings(node: &Node, what: &str) -> Result<Vec<String>, Fail> {
    list(node, what)?.iter().map(|n| scalar(n, what)).collect()
}

fn boolean(node: &Node, what: &str) -> Result<bool, Fail> {
    match node.as_str() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        _ => Err(at(node, format!("`{what}` is true or false"))),
    }
}

fn unknown(node: &Node, word: &str, keys: &[&str]) -> Fail {
    let hint = match closest(word, keys.iter().copied()) {
        Some(k) => format!("did you mean `{k}`?"),
        None => format!("expected one of: {}", keys.join(", ")),
    };
    at(node, format!("unknown key `{word}`; {hint}"))
}
