//! Auditing: which responses d4c applies without blocking. Policy files stay as Elastic
//! reads them; what only audits is said outside them (`audit:` in d4c.yaml, `d4c exec
//! --audit`). An audited response's `block` does not refuse the operation: the kernel
//! still decides it, allows it and raises the alert as one that would have been blocked
//! ([`Actions::AUDIT`]). Where one response blocks and another only audits, blocking wins.

use crate::container::Container;
use crate::model::{Actions, Policy};
use crate::pattern::glob_match;

/// What d4c audits instead of blocking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Audit {
    /// Everything (`d4c exec --audit`).
    pub all: bool,
    /// Policy files, by glob (`*` only) on the file's name or on its path below the policy
    /// directory (`staging-*.yaml`, `team-a/*.yaml`).
    pub policies: Vec<String>,
    /// Kubernetes namespaces, by glob.
    pub namespaces: Vec<String>,
}

impl Audit {
    /// Audits everything.
    #[must_use]
    pub fn everything() -> Self {
        Audit {
            all: true,
            ..Audit::default()
        }
    }

    /// Whether nothing is audited.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.all && self.policies.is_empty() && self.namespaces.is_empty()
    }

    /// Whether the policy file at `path` is audited: a glob matches its name, or its path
    /// from some directory on (the policy directory's files are `DIR/NAME`).
    #[must_use]
    pub fn audits_file(&self, path: &str) -> bool {
        if self.all {
            return true;
        }
        let parts: Vec<&str> = path.split('/').collect();
        (0..parts.len()).any(|i| {
            let tail = parts[i..].join("/");
            self.policies.iter().any(|g| glob_match(g, &tail))
        })
    }

    /// Whether containers of `container`'s namespace are audited.
    #[must_use]
    pub fn audits_container(&self, container: &Container) -> bool {
        self.all
            || container
                .namespace
                .as_deref()
                .is_some_and(|ns| self.namespaces.iter().any(|g| glob_match(g, ns)))
    }

    /// The responses of `policy` audited for `container`, ascending.
    #[must_use]
    pub fn audited(&self, policy: &Policy, container: &Container) -> Vec<usize> {
        if self.is_empty() {
            return Vec::new();
        }
        let whole = self.audits_container(container);
        (0..policy.responses.len())
            .filter(|&r| {
                whole
                    || policy
                        .sources
                        .get(policy.responses[r].source)
                        .is_some_and(|src| self.audits_file(&src.path))
            })
            .collect()
    }
}

impl Policy {
    /// Whether some response can refuse an operation somewhere: it blocks, and its file is
    /// not audited as a whole (a namespace audit still blocks in the other namespaces).
    #[must_use]
    pub fn can_block(&self) -> bool {
        self.responses.iter().any(|r| {
            r.actions.contains(Actions::BLOCK)
                && !self
                    .sources
                    .get(r.source)
                    .is_some_and(|src| self.audit.audits_file(&src.path))
        })
    }
}

impl Actions {
    /// The actions of a response as applied: under audit, `block` becomes
    /// [`Actions::AUDIT`] (allowed, alerted as a would-be block).
    #[must_use]
    pub fn applied(self, audited: bool) -> Actions {
        if audited && self.contains(Actions::BLOCK) {
            Actions((self.0 & !Actions::BLOCK) | Actions::AUDIT)
        } else {
            self
        }
    }

    /// The union as the kernel acts on it: an audit where something blocks is a block.
    #[must_use]
    pub fn settled(self) -> Actions {
        if self.contains(Actions::BLOCK) {
            Actions(self.0 & !Actions::AUDIT)
        } else {
            self
        }
    }

    /// Whether these actions block or would block (audited).
    #[must_use]
    pub fn would_block(self) -> bool {
        self.0 & (Actions::BLOCK | Actions::AUDIT) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_can_block_unless_every_blocking_file_is_audited() {
        let text = "file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n  responses:\n    - match: [s]\n      actions: [alert, block]\n";
        let mut p = crate::load_str("team/block.yaml", text).unwrap().policy;
        assert!(p.can_block());
        p.audit.namespaces = vec!["staging".into()];
        assert!(p.can_block(), "other namespaces still block");
        p.audit.policies = vec!["block.yaml".into()];
        assert!(!p.can_block());
        p.audit = Audit::default();
        let alert_only = text.replace("[alert, block]", "[alert]");
        assert!(!crate::load_str("a.yaml", &alert_only)
            .unwrap()
            .policy
            .can_block());
    }

    #[test]
    fn files_match_by_name_or_by_their_path_below_a_directory() {
        let a = Audit {
            policies: vec!["staging-*.yaml".into(), "team-a/*.yaml".into()],
            ..Audit::default()
        };
        assert!(a.audits_file("/etc/d4c/policies/staging-web.yaml"));
        assert!(a.audits_file("staging-web.yaml"));
        assert!(a.audits_file("/etc/d4c/policies/team-a/x.yaml"));
        assert!(!a.audits_file("/etc/d4c/policies/prod.yaml"));
        assert!(!a.audits_file("/etc/d4c/policies/team-b/x.yaml"));
        assert!(Audit::everything().audits_file("/any.yaml"));
    }

    #[test]
    fn an_audited_block_is_allowed_unless_another_response_blocks() {
        let block = Actions(Actions::ALERT | Actions::BLOCK);
        let audited = block.applied(true);
        assert_eq!(audited.0, Actions::ALERT | Actions::AUDIT);
        assert!(audited.would_block() && !audited.contains(Actions::BLOCK));
        assert_eq!(Actions(Actions::LOG).applied(true), Actions(Actions::LOG));
        assert_eq!(
            Actions(audited.0 | block.0).settled(),
            block,
            "blocking wins"
        );
    }
}
