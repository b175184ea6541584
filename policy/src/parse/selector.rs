//! One selector: its name and conditions, each value checked against its generation's form.

use super::keys::{selector_keys, unknown_selector_key_hint, Field};
use super::values::{boolean, string_list, Spanned};
use super::FileParser;
use crate::model::{BlockKind, FileOp, Generation, ProcessOp, Selector};
use crate::pattern::{LabelPattern, PathPattern};
use crate::yaml::Node;

/// Longest `targetFilePath`/`processExecutable` value, in bytes: the kernel's path keys
/// hold 252 bytes (the product users come from allowed 255).
pub const MAX_PATH_BYTES: usize = d4c_common::PATH_KEY_MAX - 1;
/// Longest selector name.
pub const MAX_NAME_CHARS: usize = 128;

impl FileParser<'_> {
    pub(super) fn selector(&mut self, kind: BlockKind, node: &Node) -> Option<Selector> {
        let pairs = super::values::mapping(self.sink, "a selector", node)?;
        let mut sel = Selector {
            source: self.source,
            block: (self.generation == Generation::Two).then_some(kind),
            pos: node.pos,
            ..Selector::default()
        };
        let keys = selector_keys(self.generation, kind);
        let mut name = None;
        let mut seen: Vec<(Field, &Node)> = Vec::new();
        let mut unknown = false;
        for (key, value) in pairs {
            let key_text = key.as_str().unwrap_or_default();
            let Some(&(_, field)) = keys.iter().find(|(k, _)| *k == key_text) else {
                let hint = unknown_selector_key_hint(key_text, self.generation, kind);
                self.sink.error(
                    key.pos,
                    format!("unknown selector condition `{key_text}`{hint}"),
                );
                unknown = true;
                continue;
            };
            seen.push((field, key));
            if field == Field::Name {
                name = self.name(value);
            } else {
                self.condition(&mut sel, kind, field, key_text, value);
            }
        }
        self.conflicts(&seen);
        if !unknown && seen.iter().all(|(f, _)| *f == Field::Name) {
            self.sink.error(
                node.pos,
                "a selector needs at least one condition besides `name`",
            );
        }
        let Some(name) = name else {
            if !seen.iter().any(|(f, _)| *f == Field::Name) {
                self.sink.error(node.pos, "a selector needs a `name`");
            }
            return None;
        };
        sel.pos = name.pos;
        sel.name = name.text;
        Some(sel)
    }

    fn name(&mut self, value: &Node) -> Option<Spanned> {
        let name = super::values::scalar(self.sink, "name", value)?;
        if name.text.chars().count() > MAX_NAME_CHARS {
            self.sink.error(
                name.pos,
                format!("selector names are at most {MAX_NAME_CHARS} characters"),
            );
            return None;
        }
        if self.generation == Generation::Two && !valid_name(&name.text) {
            self.sink.error(name.pos, format!(
                "selector name `{}` must start with a letter or digit and hold only letters, digits, `_` and `-`",
                name.text
            ));
            return None;
        }
        Some(name)
    }

    fn conflicts(&mut self, seen: &[(Field, &Node)]) {
        let find = |f: Field| seen.iter().find(|(g, _)| *g == f).map(|(_, k)| *k);
        for (a, b, why) in [
            (
                Field::ImageName,
                Field::ImageFullName,
                "use one of them per selector",
            ),
            (
                Field::ProcessExecutable,
                Field::ProcessName,
                "use one of them per selector",
            ),
            (
                Field::IgnoreVolumeMounts,
                Field::IgnoreVolumeFiles,
                "`ignoreVolumeMounts` already covers file mounts",
            ),
        ] {
            if let (Some(ka), Some(kb)) = (find(a), find(b)) {
                let second = if kb.pos > ka.pos { kb } else { ka };
                self.sink.error(
                    second.pos,
                    format!(
                        "`{}` cannot be combined with `{}` in one selector; {why}",
                        kb.as_str().unwrap_or_default(),
                        ka.as_str().unwrap_or_default()
                    ),
                );
            }
        }
    }

    fn condition(
        &mut self,
        sel: &mut Selector,
        kind: BlockKind,
        field: Field,
        key: &str,
        value: &Node,
    ) {
        let gen1 = self.generation == Generation::One;
        match field {
            Field::Name => {}
            Field::IgnoreVolumeMounts => {
                sel.ignore_volume_mounts = boolean(self.sink, key, value).unwrap_or(false);
            }
            Field::IgnoreVolumeFiles => {
                sel.ignore_volume_files = boolean(self.sink, key, value).unwrap_or(false);
            }
            Field::SessionLeaderInteractive => sel.interactive = boolean(self.sink, key, value),
            _ => {
                let Some(items) = string_list(self.sink, key, value) else {
                    return;
                };
                match field {
                    Field::Operation => sel.ops = Some(self.operations(kind, &items)),
                    Field::TargetFilePath => sel.target_path = Some(self.paths(key, &items)),
                    Field::ProcessExecutable => sel.executable = Some(self.paths(key, &items)),
                    Field::PodLabel => sel.pod_label = Some(self.labels(key, &items)),
                    _ => {
                        let texts = self.strings(field, key, &items, gen1);
                        let slot = match field {
                            Field::ImageName => &mut sel.image_name,
                            Field::ImageFullName => &mut sel.image_full_name,
                            Field::ImageTag => &mut sel.image_tag,
                            Field::ClusterId => &mut sel.cluster_id,
                            Field::ClusterName => &mut sel.cluster_name,
                            Field::Namespace => &mut sel.namespace,
                            Field::PodName => &mut sel.pod_name,
                            Field::OrchestratorType => &mut sel.orchestrator_type,
                            _ => &mut sel.process_name,
                        };
                        *slot = Some(texts);
                    }
                }
            }
        }
    }

    fn operations(&mut self, kind: BlockKind, items: &[Spanned]) -> u8 {
        let allowed: Vec<&str> = match (self.generation, kind) {
            (Generation::One, _) => vec!["createExecutable", "modifyExecutable", "execMemFd"],
            (Generation::Two, BlockKind::File) => FileOp::ALL.iter().map(|o| o.name()).collect(),
            (Generation::Two, BlockKind::Process) => {
                ProcessOp::ALL.iter().map(|o| o.name()).collect()
            }
        };
        let mut bits = 0;
        for item in items {
            let op = item.text.as_str();
            if !allowed.contains(&op) {
                let hint = if op.contains('*') {
                    "; wildcards are not supported in `operation`".to_owned()
                } else if let Some(near) = super::closest(op, allowed.iter().copied()) {
                    format!("; did you mean `{near}`?")
                } else {
                    format!("; expected one of: {}", allowed.join(", "))
                };
                self.sink.error(
                    item.pos,
                    format!("unknown {} operation `{op}`{hint}", kind.word()),
                );
                continue;
            }
            bits |= FileOp::from_name(op).map_or_else(
                || ProcessOp::from_name(op).map_or(0, ProcessOp::bit),
                FileOp::bit,
            );
        }
        bits
    }

    fn paths(&mut self, key: &str, items: &[Spanned]) -> Vec<PathPattern> {
        let mut out = Vec::new();
        for item in items {
            if item.text.len() > MAX_PATH_BYTES {
                self.sink.error(item.pos, format!("`{key}` values are at most {MAX_PATH_BYTES} bytes in d4c (its kernel path keys hold 252), this one is {}", item.text.len()));
                continue;
            }
            match PathPattern::parse(&item.text) {
                Ok(p) => out.push(p),
                Err(e) => self.sink.error(item.pos, format!("{e} in `{key}`")),
            }
        }
        out
    }

    fn labels(&mut self, key: &str, items: &[Spanned]) -> Vec<LabelPattern> {
        let mut out = Vec::new();
        for item in items {
            match parse_label(&item.text, self.generation) {
                Ok(l) => out.push(l),
                Err(e) => self
                    .sink
                    .error(item.pos, format!("`{key}` value `{}`: {e}", item.text)),
            }
        }
        out
    }

    fn strings(&mut self, field: Field, key: &str, items: &[Spanned], gen1: bool) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            let t = item.text.as_str();
            let problem = match field {
                Field::ImageName => image_name_problem(t, gen1),
                Field::ImageFullName => full_name_problem(t),
                Field::PodName if !gen1 && t.trim_end_matches('*').contains('*') => {
                    Some("`*` is only allowed at the end of a pod name".to_owned())
                }
                Field::OrchestratorType if t != "kubernetes" => {
                    Some("`kubernetes` is the only orchestrator type".to_owned())
                }
                Field::ProcessName if t.len() > 15 => Some(format!(
                    "process names are at most 15 bytes (the kernel's limit), this one is {}",
                    t.len()
                )),
                Field::ProcessName if t.contains('/') => {
                    Some("a process name is a base name; for a path use `processExecutable`".to_owned())
                }
                Field::ProcessName if t.contains('*') => Some("wildcards are not supported in `processName`; use `processExecutable` with a path pattern".to_owned()),
                _ => None,
            };
            match problem {
                Some(p) => self
                    .sink
                    .error(item.pos, format!("`{key}` value `{t}`: {p}")),
                None => out.push(item.text.clone()),
            }
        }
        out
    }
}

/// Generation 2 selector names: `^[a-z0-9][a-z0-9_-]*$`, case-insensitive.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `containerImageName`: `^[a-z0-9]+([._-][a-z0-9]+)*$`; generation 1 also allows a trailing `*`.
fn image_name_problem(t: &str, gen1: bool) -> Option<String> {
    let body = if gen1 {
        t.strip_suffix('*').unwrap_or(t)
    } else {
        t
    };
    let valid = body.split(['.', '_', '-']).all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }) || (gen1 && body.is_empty());
    if valid {
        return None;
    }
    Some(if t.contains('/') {
        "an image name has no registry or path; match `registry/path` forms with `containerImageFullName`".into()
    } else if t.contains(':') || t.contains('@') {
        "an image name has no tag or digest; match tags with `containerImageTag`".into()
    } else if t.contains('*') && !gen1 {
        "wildcards are not allowed in generation 2 image names".into()
    } else {
        "expected lowercase letters and digits, with single `.`, `_` or `-` between them, e.g. `nginx`".into()
    })
}

/// `containerImageFullName`: a registry path such as `docker.io/nginx`, no tag or digest.
fn full_name_problem(t: &str) -> Option<String> {
    let last = t.rsplit('/').next().unwrap_or(t);
    if !t.contains('/') {
        Some("expected a registry path such as `docker.io/nginx`; for a bare name use `containerImageName`".into())
    } else if last.contains(':') || t.contains('@') {
        Some("remove the tag or digest; match tags with `containerImageTag`".into())
    } else if t.split('/').any(str::is_empty) {
        Some("empty path component".into())
    } else if t
        .chars()
        .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
    {
        Some("image repositories are lowercase, without spaces".into())
    } else {
        None
    }
}

/// `key:value`; the key may carry a `prefix/`; `key:` is an empty value.
fn parse_label(text: &str, generation: Generation) -> Result<LabelPattern, String> {
    let Some((key, value)) = text.split_once(':') else {
        return Err("write `key:value` (`key:` for an empty value, `key:*` for any value)".into());
    };
    let (key, value) = (key.trim(), value.trim());
    if key.contains('*') {
        return Err("wildcards are not supported in label keys".into());
    }
    let (prefix, name) = key.rsplit_once('/').map_or(("", key), |(p, n)| (p, n));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let prefix_ok = prefix.len() <= 253
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if !name_ok || !prefix_ok || (key.contains('/') && prefix.is_empty()) {
        return Err(
            "not a valid label key (`[prefix/]name`, name up to 63 letters, digits, `-`, `_`, `.`)"
                .into(),
        );
    }
    if generation == Generation::Two && value.trim_end_matches('*').contains('*') {
        return Err("`*` is only allowed at the end of a label value".into());
    }
    Ok(LabelPattern {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}
