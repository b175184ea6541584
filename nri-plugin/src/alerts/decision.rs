//! What the policy decided behind a kernel record, re-evaluated in userspace with the
//! reference evaluator (the kernel tables are proven equal to it): which selectors matched
//! and which responses fired, for the document's `matched_selectors` and the per-selector
//! counters. A record of several file operations (a `chmod +x` is createExecutable and
//! modifyFile) is the union of each operation's decision.

use super::record::{Operation, Record};
use d4c_policy::{evaluate, Container, Decision, Event, Policy, ProcessOp};

/// The name selectors see for a process event: the file it runs (the base name of its
/// path, at most 15 bytes, as the kernel decided); for a file event, the task's comm.
#[must_use]
pub fn process_name(r: &Record) -> String {
    if matches!(r.operation, Operation::Process(_)) && !r.path.is_empty() {
        let base = r.path.rsplit('/').next().unwrap_or(&r.path);
        return d4c_policy::event::process_name(base).to_owned();
    }
    r.comm.clone()
}

/// The name a process was started by, its second identity (`Event::identities`): for exec
/// the path the exec named, for fork the task's comm.
#[must_use]
pub fn started_as(r: &Record) -> Option<String> {
    match r.operation {
        Operation::Process(ProcessOp::Exec) => (!r.exe.is_empty()).then(|| r.exe.clone()),
        Operation::Process(ProcessOp::Fork) => (!r.comm.is_empty()).then(|| r.comm.clone()),
        Operation::File(_) => None,
    }
}

/// The policy events a record stands for (one per file operation).
#[must_use]
pub fn events(r: &Record) -> Vec<Event> {
    match &r.operation {
        Operation::File(ops) => ops
            .iter()
            .map(|&op| Event::File {
                op,
                path: r.path.clone(),
            })
            .collect(),
        Operation::Process(op) => vec![Event::Process {
            op: *op,
            executable: r.path.clone(),
            name: process_name(r),
            started_as: started_as(r),
            interactive: r.interactive,
        }],
    }
}

/// The union of the decisions of the record's events: selectors and responses sorted and
/// unique, actions joined.
#[must_use]
pub fn decide(r: &Record, policy: &Policy, container: &Container) -> Decision {
    let mut out = Decision::default();
    for e in events(r) {
        let d = evaluate(policy, container, &e);
        out.actions.0 |= d.actions.0;
        out.selectors.extend(d.selectors);
        out.responses.extend(d.responses);
    }
    out.actions = out.actions.settled();
    out.selectors.sort_unstable();
    out.selectors.dedup();
    out.responses.sort_unstable();
    out.responses.dedup();
    out
}
