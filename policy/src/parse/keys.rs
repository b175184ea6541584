//! The keys each generation and block accepts, and "did you mean" hints for the others.

use crate::model::{BlockKind, Generation};

/// A selector condition, independent of how a generation spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Operation,
    ImageName,
    ImageFullName,
    ImageTag,
    ClusterId,
    ClusterName,
    Namespace,
    PodName,
    PodLabel,
    OrchestratorType,
    TargetFilePath,
    IgnoreVolumeMounts,
    IgnoreVolumeFiles,
    ProcessExecutable,
    ProcessName,
    SessionLeaderInteractive,
}

const GEN1: &[(&str, Field)] = &[
    ("name", Field::Name),
    ("operation", Field::Operation),
    ("containerImageName", Field::ImageName),
    ("containerImageTag", Field::ImageTag),
    ("targetFilePath", Field::TargetFilePath),
    ("orchestratorClusterId", Field::ClusterId),
    ("orchestratorClusterName", Field::ClusterName),
    ("orchestratorNamespace", Field::Namespace),
    ("orchestratorResourceLabel", Field::PodLabel),
    ("orchestratorResourceName", Field::PodName),
    ("orchestratorType", Field::OrchestratorType),
];

const GEN2_COMMON: &[(&str, Field)] = &[
    ("name", Field::Name),
    ("operation", Field::Operation),
    ("containerImageName", Field::ImageName),
    ("containerImageFullName", Field::ImageFullName),
    ("containerImageTag", Field::ImageTag),
    ("kubernetesClusterId", Field::ClusterId),
    ("kubernetesClusterName", Field::ClusterName),
    ("kubernetesNamespace", Field::Namespace),
    ("kubernetesPodName", Field::PodName),
    ("kubernetesPodLabel", Field::PodLabel),
];

const GEN2_FILE: &[(&str, Field)] = &[
    ("targetFilePath", Field::TargetFilePath),
    ("ignoreVolumeMounts", Field::IgnoreVolumeMounts),
    ("ignoreVolumeFiles", Field::IgnoreVolumeFiles),
];

const GEN2_PROCESS: &[(&str, Field)] = &[
    ("processExecutable", Field::ProcessExecutable),
    ("processName", Field::ProcessName),
    ("sessionLeaderInteractive", Field::SessionLeaderInteractive),
];

/// The selector keys of one generation and block.
pub fn selector_keys(generation: Generation, block: BlockKind) -> Vec<(&'static str, Field)> {
    match (generation, block) {
        (Generation::One, _) => GEN1.to_vec(),
        (Generation::Two, BlockKind::File) => [GEN2_COMMON, GEN2_FILE].concat(),
        (Generation::Two, BlockKind::Process) => [GEN2_COMMON, GEN2_PROCESS].concat(),
    }
}

/// Explains an unknown selector key: a near spelling, or where the key does belong.
pub fn unknown_selector_key_hint(key: &str, generation: Generation, block: BlockKind) -> String {
    let keys = selector_keys(generation, block);
    if let Some(near) = closest(key, keys.iter().map(|(k, _)| *k)) {
        return format!("; did you mean `{near}`?");
    }
    let find = |table: &[(&'static str, Field)]| {
        table
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, f)| *f)
    };
    match generation {
        Generation::One => {
            if let Some(field) = find(GEN2_COMMON)
                .or_else(|| find(GEN2_FILE))
                .or_else(|| find(GEN2_PROCESS))
            {
                return match keys.iter().find(|(_, f)| *f == field) {
                    Some((g1, _)) => format!("; `{key}` is the generation 2 name, in this generation 1 file write `{g1}`"),
                    None => format!(
                        "; `{key}` exists only in generation 2 policies (`file:`/`process:` blocks)"
                    ),
                };
            }
        }
        Generation::Two => {
            if let Some(field) = find(GEN1) {
                if let Some((g2, _)) = keys.iter().find(|(_, f)| *f == field) {
                    return format!("; `{key}` is the generation 1 name, in this generation 2 file write `{g2}`");
                }
            }
            let other = match block {
                BlockKind::File => (GEN2_PROCESS, "process"),
                BlockKind::Process => (GEN2_FILE, "file"),
            };
            if find(other.0).is_some() {
                return format!(
                    "; `{key}` is a {} selector condition, not a {} one",
                    other.1,
                    block.word()
                );
            }
        }
    }
    format!(
        "; expected one of: {}",
        keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
    )
}

/// The closest candidate by edit distance, if close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let limit = (word.len() / 3).clamp(2, 3);
    candidates
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes, bounded input (keys are short; long words are cut).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (
        &a.as_bytes()[..a.len().min(64)],
        &b.as_bytes()[..b.len().min(64)],
    );
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        let h = unknown_selector_key_hint("targetFilePaths", Generation::Two, BlockKind::File);
        assert!(h.contains("did you mean `targetFilePath`"), "{h}");
        let h = unknown_selector_key_hint("kubernetesNamespace", Generation::One, BlockKind::File);
        assert!(h.contains("write `orchestratorNamespace`"), "{h}");
        let h = unknown_selector_key_hint(
            "orchestratorResourceLabel",
            Generation::Two,
            BlockKind::File,
        );
        assert!(h.contains("write `kubernetesPodLabel`"), "{h}");
        let h = unknown_selector_key_hint("processName", Generation::Two, BlockKind::File);
        assert!(h.contains("process selector condition"), "{h}");
        let h = unknown_selector_key_hint("zzz", Generation::Two, BlockKind::File);
        assert!(h.contains("expected one of"), "{h}");
    }
}
