//! The reference evaluator: the semantics of a policy, written for clarity, not speed.
//! The compiled kernel tables must agree with it on every input (see `emulate`).

use crate::container::{Container, Mount};
use crate::event::{Event, Identity};
use crate::model::{Actions, BlockKind, FileOp, Policy, ProcessOp, Response, Selector};
use crate::pattern::{any_glob, memfd_path};

/// What a policy decides for one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The union of the firing responses' actions.
    pub actions: Actions,
    /// Indices of the matching selectors of the event's block, in policy order.
    pub selectors: Vec<usize>,
    /// Indices of the firing responses, in policy order.
    pub responses: Vec<usize>,
}

/// Longest mount destination (bytes) the kernel tables can represent. Longer destinations
/// are not treated as volumes (selectors with `ignoreVolume*` then still match there:
/// more alerts, never fewer).
pub const MAX_MOUNT_DESTINATION: usize = d4c_common::PATH_KEY_MAX - 2;

/// The mounts that count as volumes for `ignoreVolumeMounts`/`ignoreVolumeFiles`: absolute,
/// not `/`, trailing `/` removed, at most [`MAX_MOUNT_DESTINATION`] bytes, sorted, unique.
#[must_use]
pub fn effective_mounts(container: &Container) -> Vec<Mount> {
    let mut out: Vec<Mount> = container
        .mounts
        .iter()
        .filter_map(|m| {
            let dest = m.destination.trim_end_matches('/');
            (dest.starts_with('/') && dest.len() <= MAX_MOUNT_DESTINATION && !dest.contains("//"))
                .then(|| Mount {
                    destination: dest.to_owned(),
                    file: m.file,
                })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the container-level conditions of `sel` hold for `container`.
#[must_use]
pub fn container_matches(sel: &Selector, c: &Container) -> bool {
    let image = c.image.as_ref();
    let ok = |cond: &Option<Vec<String>>, value: Option<&str>| {
        cond.as_ref()
            .is_none_or(|pats| value.is_some_and(|v| any_glob(pats, v)))
    };
    ok(&sel.image_name, image.map(crate::ImageRef::name))
        && sel.image_full_name.as_ref().is_none_or(|pats| {
            image.is_some_and(|i| i.full_names().iter().any(|n| any_glob(pats, n)))
        })
        && ok(
            &sel.image_tag,
            image.and_then(crate::ImageRef::effective_tag),
        )
        && ok(&sel.cluster_id, c.cluster_id.as_deref())
        && ok(&sel.cluster_name, c.cluster_name.as_deref())
        && ok(&sel.namespace, c.namespace.as_deref())
        && ok(&sel.pod_name, c.pod_name.as_deref())
        && sel
            .pod_label
            .as_ref()
            .is_none_or(|ls| ls.iter().any(|l| l.matches(c.label_pairs())))
        && sel
            .orchestrator_type
            .as_ref()
            .is_none_or(|ts| c.orchestrator.as_ref().is_some_and(|o| ts.contains(o)))
}

/// Whether `path` lies on a volume: on or below any mount (`file_only`: exactly on a
/// file mount).
#[must_use]
pub fn on_volume(mounts: &[Mount], path: &str, file_only: bool) -> bool {
    mounts.iter().any(|m| {
        if file_only {
            m.file && path == m.destination
        } else {
            path.strip_prefix(m.destination.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }
    })
}

/// Whether the process conditions of `sel` hold for a process with identity `who` doing
/// `op`, interactive or not.
fn process_matches(sel: &Selector, op: ProcessOp, who: &Identity<'_>, interactive: bool) -> bool {
    sel.kind() == BlockKind::Process
        && sel.has_op(op.bit())
        && sel.executable.as_ref().is_none_or(|ps| {
            let executable = memfd_path(who.executable);
            ps.iter().any(|p| p.matches(&executable))
        })
        && sel
            .process_name
            .as_ref()
            .is_none_or(|ns| ns.iter().any(|n| n == who.name))
        && sel.interactive.is_none_or(|i| i == interactive)
}

/// Whether the event-level conditions of `sel` hold for `event`, given the container's
/// effective mounts. A process event matches when they hold for any of its identities.
#[must_use]
pub fn event_matches(sel: &Selector, mounts: &[Mount], event: &Event) -> bool {
    match event {
        Event::File { op, path } => {
            // The kernel's name for a memfd (one component), for patterns and volumes alike.
            let path: &str = &if *op == FileOp::ExecMemFd {
                memfd_path(path)
            } else {
                path.as_str().into()
            };
            sel.kind() == BlockKind::File
                && sel.has_op(op.bit())
                && sel
                    .target_path
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| p.matches(path)))
                && !(sel.ignore_volume_mounts && on_volume(mounts, path, false))
                && !(sel.ignore_volume_files && on_volume(mounts, path, true))
        }
        Event::Process {
            op, interactive, ..
        } => event
            .identities()
            .iter()
            .any(|who| process_matches(sel, *op, who, *interactive)),
    }
}

/// Whether a response fires given which selectors match.
#[must_use]
pub fn fires(resp: &Response, matched: &[bool]) -> bool {
    resp.matches.iter().any(|&s| matched[s]) && !resp.excludes.iter().any(|&s| matched[s])
}

/// Evaluates `policy` for `event` in `container`. A process event is decided for each of
/// its identities ([`Event::identities`]); the decision is their union (the selectors
/// that match either, the responses that fire for either). Responses the policy's audit
/// settings cover contribute `audit` instead of `block`; a `block` from another wins.
#[must_use]
pub fn evaluate(policy: &Policy, container: &Container, event: &Event) -> Decision {
    let live: Vec<bool> = policy
        .selectors
        .iter()
        .map(|s| container_matches(s, container))
        .collect();
    let mounts = effective_mounts(container);
    let views: Vec<Vec<bool>> = match event {
        Event::File { .. } => vec![policy
            .selectors
            .iter()
            .zip(&live)
            .map(|(s, &l)| l && event_matches(s, &mounts, event))
            .collect()],
        Event::Process {
            op, interactive, ..
        } => event
            .identities()
            .iter()
            .map(|who| {
                policy
                    .selectors
                    .iter()
                    .zip(&live)
                    .map(|(s, &l)| l && process_matches(s, *op, who, *interactive))
                    .collect()
            })
            .collect(),
    };
    let mut decision = Decision {
        selectors: (0..live.len())
            .filter(|&i| views.iter().any(|m| m[i]))
            .collect(),
        ..Decision::default()
    };
    let audited = policy.audit.audited(policy, container);
    for (i, resp) in policy.responses.iter().enumerate() {
        if views.iter().any(|m| fires(resp, m)) {
            decision.actions.0 |= resp.actions.applied(audited.binary_search(&i).is_ok()).0;
            decision.responses.push(i);
        }
    }
    decision.actions = decision.actions.settled();
    decision
}

/// The container-level conditions of `sel` that do not hold for `container` (for
/// explanations); empty when the selector is live.
#[must_use]
pub fn container_mismatches(sel: &Selector, c: &Container) -> Vec<&'static str> {
    let image = c.image.as_ref();
    let glob = |cond: &Option<Vec<String>>, value: Option<&str>| {
        cond.as_ref()
            .is_some_and(|pats| !value.is_some_and(|v| any_glob(pats, v)))
    };
    let mut out = Vec::new();
    if glob(&sel.image_name, image.map(crate::ImageRef::name)) {
        out.push("containerImageName");
    }
    if sel.image_full_name.as_ref().is_some_and(|pats| {
        !image.is_some_and(|i| i.full_names().iter().any(|n| any_glob(pats, n)))
    }) {
        out.push("containerImageFullName");
    }
    if glob(
        &sel.image_tag,
        image.and_then(crate::ImageRef::effective_tag),
    ) {
        out.push("containerImageTag");
    }
    for (cond, value, name) in [
        (&sel.cluster_id, c.cluster_id.as_deref(), "clusterId"),
        (&sel.cluster_name, c.cluster_name.as_deref(), "clusterName"),
        (&sel.namespace, c.namespace.as_deref(), "namespace"),
        (&sel.pod_name, c.pod_name.as_deref(), "podName"),
    ] {
        if glob(cond, value) {
            out.push(name);
        }
    }
    if sel
        .pod_label
        .as_ref()
        .is_some_and(|ls| !ls.iter().any(|l| l.matches(c.label_pairs())))
    {
        out.push("podLabel");
    }
    if sel
        .orchestrator_type
        .as_ref()
        .is_some_and(|ts| !c.orchestrator.as_ref().is_some_and(|o| ts.contains(o)))
    {
        out.push("orchestratorType");
    }
    out
}
