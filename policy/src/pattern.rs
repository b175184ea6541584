//! Value patterns: `*` wildcards, file path patterns and pod label patterns.
//!
//! Only `*` is a wildcard (any run of characters, including none); every other character,
//! `?` and `[` included, matches itself. Kubernetes names, tags and label values cannot
//! hold `?` or `[`, so this is the reading users expect.

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
/// Linear in `pattern.len() * text.len()` at worst; no recursion.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// True when any pattern of the list matches.
#[must_use]
pub fn any_glob(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, text))
}

/// The start of the path d4c gives a memfd: `/memfd:NAME`, where NAME is the name passed
/// to `memfd_create` with each `/` made `_`, so that it is one path component (`/memfd:*`
/// matches every memfd), in the kernel and here alike.
pub const MEMFD_PREFIX: &str = "/memfd:";

/// What a memfd's `/` becomes in its path.
pub const MEMFD_SLASH: char = '_';

/// `path` as d4c names a memfd when it starts with [`MEMFD_PREFIX`]: every `/` of the
/// name made [`MEMFD_SLASH`]. Other paths are returned as they are.
#[must_use]
pub fn memfd_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(MEMFD_PREFIX) {
        Some(name) if name.contains('/') => format!(
            "{MEMFD_PREFIX}{}",
            name.replace('/', &MEMFD_SLASH.to_string())
        )
        .into(),
        _ => path.into(),
    }
}

/// How a path pattern's fixed prefix relates to the paths it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathKind {
    /// `/usr/bin/echo`: exactly the prefix.
    Exact,
    /// `/usr/bin/*`: prefix `/usr/bin/` plus one non-empty component.
    Children,
    /// `/usr/local/**`: prefix `/usr/local/` plus anything non-empty.
    Descendants,
    /// `/usr/sbin*`: prefix `/usr/sbin` plus a rest without `/` (possibly empty).
    NamePrefix,
}

/// A `targetFilePath` / `processExecutable` value, split into its fixed prefix and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    /// The value as written.
    pub text: String,
    /// The fixed prefix K (what is stored as a trie key).
    pub prefix: String,
    /// What may follow the prefix.
    pub kind: PathKind,
}

impl PathPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("path `{text}` must be absolute (start with `/`)"));
        }
        let (prefix, kind) = if let Some(dir) = text.strip_suffix("/**") {
            (format!("{dir}/"), PathKind::Descendants)
        } else if let Some(dir) = text.strip_suffix("/*") {
            (format!("{dir}/"), PathKind::Children)
        } else if let Some(stem) = text.strip_suffix('*') {
            (stem.to_owned(), PathKind::NamePrefix)
        } else {
            (text.to_owned(), PathKind::Exact)
        };
        if prefix.contains('*') {
            return Err(format!(
                "path `{text}`: `*` is only allowed at the end (`/dir/*`, `/dir/**` or `/dir/name*`)"
            ));
        }
        let body = match kind {
            PathKind::Children | PathKind::Descendants => &prefix[..prefix.len() - 1],
            PathKind::Exact | PathKind::NamePrefix => prefix.as_str(),
        };
        let empty_component = if body.is_empty() {
            matches!(kind, PathKind::Exact | PathKind::NamePrefix)
        } else {
            body.split('/').skip(1).any(str::is_empty)
        };
        if empty_component {
            return Err(format!(
                "path `{text}` has an empty component (`//` or a trailing `/`)"
            ));
        }
        if body.split('/').any(|c| c == "." || c == "..") {
            return Err(format!(
                "path `{text}` holds `.` or `..`; write the path in its plain form"
            ));
        }
        Ok(PathPattern {
            text: text.to_owned(),
            prefix,
            kind,
        })
    }

    /// Whether the pattern matches `path`.
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        match self.kind {
            PathKind::Exact => rest.is_empty(),
            PathKind::Children => !rest.is_empty() && !rest.contains('/'),
            PathKind::Descendants => !rest.is_empty(),
            PathKind::NamePrefix => !rest.contains('/'),
        }
    }

    /// Whether some memfd's path (`/memfd:NAME`) can match the pattern.
    #[must_use]
    pub fn can_match_memfd(&self) -> bool {
        if self.prefix.starts_with(MEMFD_PREFIX) {
            return true;
        }
        MEMFD_PREFIX.starts_with(self.prefix.as_str()) && self.kind != PathKind::Exact
    }
}

/// A `kubernetesPodLabel` value: `key:value`, the value possibly with `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelPattern {
    /// The label's key, exact.
    pub key: String,
    /// The value pattern (`*` matches any run of characters).
    pub value: String,
}

impl LabelPattern {
    /// Whether the labels hold this key with a value the pattern matches.
    #[must_use]
    pub fn matches<'a>(&self, mut labels: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        labels.any(|(k, v)| k == self.key && glob_match(&self.value, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        for (p, t, want) in [
            ("nginx", "nginx", true),
            ("nginx", "nginx2", false),
            ("elastic-a*", "elastic-agent", true),
            ("elastic-a*", "elastic-agent-complete", true),
            ("elastic-a*", "elastic", false),
            ("*", "", true),
            ("*-prod", "eu-prod", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("a?c", "abc", false),
            ("a?c", "a?c", true),
            ("**", "x", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn path_table() {
        for (pat, path, want) in [
            ("/usr/bin/echo", "/usr/bin/echo", true),
            ("/usr/bin/echo", "/usr/bin/echo2", false),
            ("/usr/bin/echo", "/usr/bin/echo/x", false),
            ("/usr/bin/*", "/usr/bin/ls", true),
            ("/usr/bin/*", "/usr/bin", false),
            ("/usr/bin/*", "/usr/bin/", false),
            ("/usr/bin/*", "/usr/bin/x/y", false),
            ("/usr/local/**", "/usr/local/bin/something", true),
            ("/usr/local/**", "/usr/local/x", true),
            ("/usr/local/**", "/usr/local", false),
            ("/usr/local/**", "/usr/localx", false),
            ("/usr/sbin*", "/usr/sbin", true),
            ("/usr/sbin*", "/usr/sbinx", true),
            ("/usr/sbin*", "/usr/sbin/x", false),
            ("/usr/sbin*", "/usr/sbi", false),
            ("/**", "/anything/at/all", true),
            ("/*", "/etc", true),
            ("/*", "/etc/passwd", false),
        ] {
            let p = PathPattern::parse(pat).unwrap();
            assert_eq!(p.matches(path), want, "{pat} ~ {path}");
        }
    }

    #[test]
    fn path_errors() {
        for bad in [
            "usr/bin",
            "/usr/*/bin",
            "/usr//bin",
            "/usr/bin/",
            "/a/../b",
            "/a/**/b",
            "*",
            "/",
            "/*x",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn labels() {
        let l = LabelPattern {
            key: "app.kubernetes.io/name".into(),
            value: "web*".into(),
        };
        assert!(l.matches([("app.kubernetes.io/name", "web-1")].into_iter()));
        assert!(!l.matches([("name", "web-1")].into_iter()));
        let empty = LabelPattern {
            key: "k".into(),
            value: String::new(),
        };
        assert!(empty.matches([("k", "")].into_iter()));
        assert!(!empty.matches([("k", "v")].into_iter()));
    }
}
