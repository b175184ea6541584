//! Writing a policy back as one generation 2 YAML file (what `d4c suggest` prints):
//! every file's selectors and responses in one `file:` and one `process:` block, each
//! condition under its generation 2 key. Selector names stay as written unless two files
//! used the same name in one block; then each is prefixed with its file's stem.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::model::{BlockKind, FileOp, Policy, ProcessOp, Selector};

/// A YAML scalar: plain when that reads back as the same string, else single-quoted.
fn scalar(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:".contains(c))
        && !v.starts_with(['-', ':'])
        && !matches!(
            v,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && v.parse::<f64>().is_err();
    if plain {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(scalar).collect();
    format!("[{}]", items.join(", "))
}

/// The names selectors get in the combined file: `names[i]` for selector `i`.
fn names(policy: &Policy) -> Vec<String> {
    let mut seen: HashMap<(BlockKind, &str), BTreeSet<usize>> = HashMap::new();
    for s in &policy.selectors {
        seen.entry((s.kind(), s.name.as_str()))
            .or_default()
            .insert(s.source);
    }
    policy
        .selectors
        .iter()
        .map(|s| {
            if seen[&(s.kind(), s.name.as_str())].len() > 1 {
                let path = policy.sources.get(s.source).map_or("", |f| f.path.as_str());
                let stem = path
                    .rsplit('/')
                    .next()
                    .unwrap_or(path)
                    .split('.')
                    .next()
                    .unwrap_or("file");
                format!("{stem}-{}", s.name)
            } else {
                s.name.clone()
            }
        })
        .collect()
}

fn ops(s: &Selector) -> Option<String> {
    let bits = s.ops?;
    let names: Vec<&str> = match s.kind() {
        BlockKind::File => FileOp::ALL
            .iter()
            .filter(|o| bits & o.bit() != 0)
            .map(|o| o.name())
            .collect(),
        BlockKind::Process => ProcessOp::ALL
            .iter()
            .filter(|o| bits & o.bit() != 0)
            .map(|o| o.name())
            .collect(),
    };
    Some(list(names))
}

fn selector(out: &mut String, s: &Selector, name: &str) {
    let _ = writeln!(out, "    - name: {}", scalar(name));
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "      {key}: {value}");
    };
    if let Some(o) = ops(s) {
        line("operation", o);
    }
    let strings = |v: &Option<Vec<String>>| v.as_ref().map(|v| list(v.iter().map(String::as_str)));
    // Generation 1's `orchestratorType: [kubernetes]` is "in a pod": in generation 2, any
    // namespace (a bare container has none).
    let namespace = match (&s.namespace, &s.orchestrator_type) {
        (None, Some(_)) => Some(list(["*"])),
        (ns, _) => strings(ns),
    };
    for (key, v) in [
        ("containerImageName", strings(&s.image_name)),
        ("containerImageFullName", strings(&s.image_full_name)),
        ("containerImageTag", strings(&s.image_tag)),
        ("kubernetesClusterId", strings(&s.cluster_id)),
        ("kubernetesClusterName", strings(&s.cluster_name)),
        ("kubernetesNamespace", namespace),
        ("kubernetesPodName", strings(&s.pod_name)),
    ] {
        if let Some(v) = v {
            line(key, v);
        }
    }
    if let Some(labels) = &s.pod_label {
        let texts: Vec<String> = labels
            .iter()
            .map(|l| format!("{}:{}", l.key, l.value))
            .collect();
        line("kubernetesPodLabel", list(texts.iter().map(String::as_str)));
    }
    if let Some(p) = &s.target_path {
        line("targetFilePath", list(p.iter().map(|p| p.text.as_str())));
    }
    if s.ignore_volume_mounts {
        line("ignoreVolumeMounts", "true".into());
    }
    if s.ignore_volume_files {
        line("ignoreVolumeFiles", "true".into());
    }
    if let Some(p) = &s.executable {
        line("processExecutable", list(p.iter().map(|p| p.text.as_str())));
    }
    if let Some(n) = &s.process_name {
        line("processName", list(n.iter().map(String::as_str)));
    }
    if let Some(i) = s.interactive {
        line("sessionLeaderInteractive", i.to_string());
    }
}

/// The whole policy as one generation 2 file, after `header` (comment lines).
#[must_use]
pub fn to_yaml(policy: &Policy, header: &str) -> String {
    let names = names(policy);
    let mut out = String::new();
    for l in header.lines() {
        let _ = writeln!(out, "# {l}");
    }
    for block in [BlockKind::File, BlockKind::Process] {
        let selectors: Vec<usize> = (0..policy.selectors.len())
            .filter(|&i| policy.selectors[i].kind() == block)
            .collect();
        let responses: Vec<_> = policy
            .responses
            .iter()
            .filter(|r| r.block == block)
            .collect();
        if responses.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}:\n  selectors:", block.word());
        for &i in &selectors {
            selector(&mut out, &policy.selectors[i], &names[i]);
        }
        let _ = writeln!(out, "  responses:");
        for r in responses {
            let refs = |v: &[usize]| list(v.iter().map(|&i| names[i].as_str()));
            let _ = writeln!(out, "    - match: {}", refs(&r.matches));
            if !r.excludes.is_empty() {
                let _ = writeln!(out, "      exclude: {}", refs(&r.excludes));
            }
            let _ = writeln!(out, "      actions: {}", list(r.actions.names()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    #[test]
    fn a_policy_written_back_reads_back_the_same() {
        let text = "file:\n  selectors:\n    - name: s\n      operation: [createExecutable, execMemFd]\n      kubernetesNamespace: ['prod-*', default]\n      kubernetesPodLabel: ['app:web*']\n      targetFilePath: [/usr/**, '/opt/my dir/*']\n      containerImageTag: ['1.0']\n    - name: t\n      ignoreVolumeMounts: true\n      operation: [createFile]\n      targetFilePath: [/data/**]\n  responses:\n    - match: [s]\n      exclude: [t]\n      actions: [alert, block]\nprocess:\n  selectors:\n    - name: p\n      processName: ['yes', sh]\n      sessionLeaderInteractive: true\n  responses:\n    - match: [p]\n      actions: [log]\n";
        let p = load_str("a.yaml", text).unwrap().policy;
        let written = to_yaml(&p, "suggested");
        let again = load_str("b.yaml", &written)
            .unwrap_or_else(|e| panic!("{e}\n{written}"))
            .policy;
        assert_eq!(to_yaml(&again, "suggested"), written);
        assert!(written.starts_with("# suggested\nfile:\n"), "{written}");
        assert!(written.contains("processName: ['yes', sh]"), "{written}");
        assert!(written.contains("containerImageTag: ['1.0']"), "{written}");
    }
}
