//! The kernel's version and preemption model, from what the node shows: debugfs's
//! `sched/preempt` (the model in force), else the boot command line and the kernel's
//! config, else what the version implies (Linux 7.0 made lazy preemption the default and
//! dropped `none` and `voluntary` on the common architectures).

/// A kernel version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    /// `None` when the node does not say (Debian's 6.1 release string is `6.1.0-N`).
    pub patch: Option<u32>,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{p}", self.major, self.minor),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

fn numbers(s: &str) -> Option<(u32, u32, Option<u32>)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().and_then(|p| p.parse().ok());
    Some((major, minor, patch))
}

/// The version from the release (`uname -r`), made exact by the build string (`uname -v`:
/// Debian's `Debian 6.1.162-1`) or Ubuntu's `/proc/version_signature` (its last field)
/// where they name the upstream version.
#[must_use]
pub fn version(release: &str, build: &str, signature: Option<&str>) -> Option<Version> {
    let (major, minor, mut patch) = numbers(release)?;
    let upstream = signature
        .and_then(|s| s.split_whitespace().last())
        .or_else(|| {
            build
                .split_whitespace()
                .skip_while(|w| *w != "Debian")
                .nth(1)
        })
        .and_then(numbers)
        .filter(|(a, b, _)| (*a, *b) == (major, minor));
    if let Some((_, _, p)) = upstream {
        patch = p;
    } else if patch == Some(0) && release.contains('-') {
        // `6.1.0-57-cloud-amd64`: the ABI, not the sublevel.
        patch = None;
    }
    Some(Version {
        major,
        minor,
        patch,
    })
}

/// The preemption model in force and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// `none`, `voluntary`, `full`, `lazy` or `rt`; `None`: cannot tell.
    pub model: Option<String>,
    /// Where it came from.
    pub source: String,
}

/// The model in force in debugfs's `sched/preempt` (`none (voluntary) full lazy`).
#[must_use]
pub fn from_debugfs(text: &str) -> Option<String> {
    let start = text.find('(')?;
    let end = start + text[start..].find(')')?;
    Some(text[start + 1..end].to_owned())
}

/// The model a kernel config (`CONFIG_*` lines) and boot command line give.
#[must_use]
pub fn from_config(config: &str, cmdline: &str) -> Option<String> {
    let on = |k: &str| config.lines().any(|l| l.trim() == format!("{k}=y"));
    if on("CONFIG_PREEMPT_RT") {
        return Some("rt".into());
    }
    if on("CONFIG_PREEMPT_DYNAMIC") {
        if let Some(m) = cmdline
            .split_whitespace()
            .find_map(|a| a.strip_prefix("preempt="))
        {
            return Some(m.to_owned());
        }
    }
    [
        ("CONFIG_PREEMPT_LAZY", "lazy"),
        ("CONFIG_PREEMPT", "full"),
        ("CONFIG_PREEMPT_VOLUNTARY", "voluntary"),
        ("CONFIG_PREEMPT_NONE", "none"),
    ]
    .into_iter()
    .find(|(k, _)| on(k))
    .map(|(_, m)| m.to_owned())
}

/// What the node shows of its preemption model, in order of trust.
pub struct Sources<'a> {
    /// debugfs's `sched/preempt`, when mounted.
    pub debugfs: Option<&'a str>,
    /// The kernel's config (`/boot/config-RELEASE` or `/proc/config.gz`), when readable.
    pub config: Option<&'a str>,
    /// `/proc/cmdline`.
    pub cmdline: &'a str,
    /// `uname -v`.
    pub build: &'a str,
    /// The kernel version.
    pub version: Option<Version>,
}

/// The preemption model from `s`.
#[must_use]
pub fn model(s: &Sources<'_>) -> Model {
    let found = |m: String, source: &str| Model {
        model: Some(m),
        source: source.into(),
    };
    if let Some(m) = s.debugfs.and_then(from_debugfs) {
        return found(m, "debugfs sched/preempt");
    }
    if s.build.contains("PREEMPT_RT") {
        return found("rt".into(), "uname -v (PREEMPT_RT)");
    }
    if let Some(m) = s.config.and_then(|c| from_config(c, s.cmdline)) {
        return found(m, "kernel config and command line");
    }
    if let Some(m) = s
        .cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("preempt="))
        .filter(|_| s.build.contains("PREEMPT_DYNAMIC"))
    {
        return found(m.to_owned(), "command line (preempt=)");
    }
    if s.version.is_some_and(|v| v.major >= 7) {
        return found(
            "lazy".into(),
            "Linux 7.0+ (lazy preemption by default; none and voluntary removed)",
        );
    }
    Model {
        model: None,
        source: "not found (no debugfs sched/preempt, no kernel config)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_release_build_and_signature() {
        let v = version(
            "6.12.118+deb12-cloud-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1",
            None,
        )
        .unwrap();
        assert_eq!((v.major, v.minor, v.patch), (6, 12, Some(118)));
        let v = version(
            "6.1.0-57-cloud-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.162-1 (2026-11-02)",
            None,
        )
        .unwrap();
        assert_eq!(v.patch, Some(162), "Debian names the sublevel in uname -v");
        let v = version("6.1.0-57-cloud-amd64", "#1 SMP", None).unwrap();
        assert_eq!(v.patch, None, "6.1.0-57 is an ABI, not 6.1.0");
        let v = version(
            "6.8.0-45-generic",
            "#45-Ubuntu SMP",
            Some("Ubuntu 6.8.0-45.45-generic 6.8.12"),
        )
        .unwrap();
        assert_eq!(v.patch, Some(12));
        assert_eq!(version("7.2.1", "", None).unwrap().to_string(), "7.2.1");
    }

    #[test]
    fn models_in_order_of_trust() {
        let base = Sources {
            debugfs: None,
            config: None,
            cmdline: "",
            build: "#1 SMP PREEMPT_DYNAMIC",
            version: version("6.12.1", "", None),
        };
        assert_eq!(
            from_debugfs("none (voluntary) full lazy\n").as_deref(),
            Some("voluntary")
        );
        let m = model(&Sources {
            debugfs: Some("none voluntary (full)"),
            ..base
        });
        assert_eq!(m.model.as_deref(), Some("full"));
        let cfg = "CONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_PREEMPT_DYNAMIC=y\n";
        let m = model(&Sources {
            config: Some(cfg),
            ..base
        });
        assert_eq!(m.model.as_deref(), Some("voluntary"));
        let m = model(&Sources {
            config: Some(cfg),
            cmdline: "ro preempt=full",
            ..base
        });
        assert_eq!(
            m.model.as_deref(),
            Some("full"),
            "the command line overrides a dynamic default"
        );
        let m = model(&Sources {
            build: "#1 SMP PREEMPT_RT",
            ..base
        });
        assert_eq!(m.model.as_deref(), Some("rt"));
        assert_eq!(model(&base).model, None, "cannot tell");
        let m = model(&Sources {
            version: version("7.0.3", "", None),
            ..base
        });
        assert_eq!(m.model.as_deref(), Some("lazy"));
    }
}
