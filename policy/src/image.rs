//! Image references as runtimes report them, and the three names selectors match on.
//!
//! | reference | containerImageName | containerImageFullName | containerImageTag |
//! |---|---|---|---|
//! | `nginx` | `nginx` | `docker.io/library/nginx` (also `docker.io/nginx`) | `latest` |
//! | `nginx:1.25` | `nginx` | `docker.io/library/nginx` | `1.25` |
//! | `docker.io/library/nginx:1.25` | `nginx` | `docker.io/library/nginx` | `1.25` |
//! | `registry:5000/team/app:v2` | `app` | `registry:5000/team/app` | `v2` |
//! | `quay.io/ns/app:tag@sha256:...` | `app` | `quay.io/ns/app` | `tag` |
//! | `app@sha256:...` | `app` | `docker.io/library/app` | none: no tag condition matches |
//!
//! The registry is the first component when it holds a `.` or `:` or is `localhost`
//! (the rule of Docker and containerd); otherwise the image is on `docker.io`, and a
//! one-component repository there lives under `library/`.

use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry host, e.g. `docker.io`.
    pub registry: String,
    /// The repository path without the registry, e.g. `library/nginx`.
    pub repository: String,
    /// The tag, when the reference names one.
    pub tag: Option<String>,
    /// The digest (`sha256:...`), when the reference names one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference; the error says what is wrong.
    pub fn parse(reference: &str) -> Result<Self, String> {
        let reference = reference.trim();
        if reference.is_empty() {
            return Err("empty image reference".into());
        }
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("image reference `{reference}` holds white space"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) if !d.is_empty() => (r, Some(d.to_owned())),
            Some(_) => return Err(format!("image reference `{reference}` has an empty digest")),
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name_part, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if tag.is_empty() {
                    return Err(format!("image reference `{reference}` has an empty tag"));
                }
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, repository) = match name_part.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => ("docker.io".to_owned(), name_part.to_owned()),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io".to_owned()
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(format!(
                "image reference `{reference}` has an empty path component"
            ));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `containerImageName`: the last component of the repository.
    #[must_use]
    pub fn name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// `containerImageFullName` candidates: `registry/repository`, and for Docker Hub's
    /// official images also the short `docker.io/NAME` form users write.
    #[must_use]
    pub fn full_names(&self) -> Vec<String> {
        let full = format!("{}/{}", self.registry, self.repository);
        match self.repository.strip_prefix("library/") {
            Some(short) if self.registry == "docker.io" => vec![full, format!("docker.io/{short}")],
            _ => vec![full],
        }
    }

    /// `containerImageTag`: the tag; `latest` when neither tag nor digest is given; none for
    /// a reference by digest only.
    #[must_use]
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_table() {
        let sha = "sha256:0123456789abcdef";
        for (r, name, full, tag) in [
            ("nginx", "nginx", "docker.io/library/nginx", Some("latest")),
            (
                "nginx:1.25",
                "nginx",
                "docker.io/library/nginx",
                Some("1.25"),
            ),
            (
                "docker.io/library/nginx:1.25",
                "nginx",
                "docker.io/library/nginx",
                Some("1.25"),
            ),
            (
                "index.docker.io/library/nginx",
                "nginx",
                "docker.io/library/nginx",
                Some("latest"),
            ),
            (
                "registry:5000/team/app:v2",
                "app",
                "registry:5000/team/app",
                Some("v2"),
            ),
            ("localhost/app", "app", "localhost/app", Some("latest")),
            ("team/app:v1", "app", "docker.io/team/app", Some("v1")),
            (
                &format!("host.io/ns/app:tag@{sha}"),
                "app",
                "host.io/ns/app",
                Some("tag"),
            ),
            (
                &format!("host/ns/app:tag@{sha}"),
                "app",
                "docker.io/host/ns/app",
                Some("tag"),
            ),
            (&format!("app@{sha}"), "app", "docker.io/library/app", None),
        ] {
            let i = ImageRef::parse(r).unwrap();
            assert_eq!(i.name(), name, "{r}");
            assert_eq!(i.full_names()[0], full, "{r}");
            assert_eq!(i.effective_tag(), tag, "{r}");
        }
        assert!(ImageRef::parse("nginx")
            .unwrap()
            .full_names()
            .contains(&"docker.io/nginx".into()));
    }

    #[test]
    fn bad_references() {
        for bad in ["", "a b", "nginx:", "nginx@", "reg.io//x", "reg.io/"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
