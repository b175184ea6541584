//! Events: the event-level half of a selector, known only at the operation.

use crate::model::{FileOp, ProcessOp};

/// One operation by a process in a container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// A file operation on `path`, as the container sees it. For `execMemFd` the path is
    /// the kernel's name for the memfd, `/memfd:NAME`: one component whatever `/` NAME
    /// holds (`/**` and `/memfd:*` match it, `/usr/**` does not).
    File {
        /// The operation.
        op: FileOp,
        /// The target's path.
        path: String,
    },
    /// A process operation. A process is known two ways, and a selector's process
    /// conditions are decided for each ([`Event::identities`]); the decision is the union
    /// of both, so a name an attacker can choose only ever adds actions:
    /// - the file it runs: `executable` (after symlinks; `/memfd:NAME` for a memfd) and
    ///   `name`, that file's own name (at most 15 bytes);
    /// - the name it was started by, `started_as`: for exec, the path the exec named
    ///   (`/bin/sh` for a shell that is really `/usr/bin/dash`, `/bin/cp` for a busybox
    ///   applet); for fork, the process's `comm`, which starts as that path's base name.
    ///
    /// `interactive` is whether the session has a controlling terminal.
    Process {
        /// The operation.
        op: ProcessOp,
        /// The program's path.
        executable: String,
        /// The program file's name.
        name: String,
        /// The name the process was started by, when known.
        started_as: Option<String>,
        /// Whether the session has a controlling terminal.
        interactive: bool,
    },
}

/// Bytes of a process name the kernel keeps (`TASK_COMM_LEN` - 1).
pub const NAME_MAX: usize = d4c_common::COMM_LEN - 1;

/// `name` cut to [`NAME_MAX`] bytes (at a character boundary), as the kernel keeps it.
#[must_use]
pub fn process_name(name: &str) -> &str {
    let mut end = name.len().min(NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// One way a process is known: the executable path and the name its conditions see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The path `processExecutable` is matched against.
    pub executable: &'a str,
    /// The name `processName` is matched against.
    pub name: &'a str,
}

impl Event {
    /// The identities of a process event: the file it runs, then (when known and
    /// different) the name it was started by. For exec, `started_as` is a path: its base
    /// name is the name, and the path itself the executable when it is absolute (else the
    /// file's); for fork it is a name, with the file's executable. Empty for file events.
    #[must_use]
    pub fn identities(&self) -> Vec<Identity<'_>> {
        let Event::Process {
            op,
            executable,
            name,
            started_as,
            ..
        } = self
        else {
            return Vec::new();
        };
        let first = Identity {
            executable,
            name: process_name(name),
        };
        let second = started_as.as_deref().map(|s| match op {
            ProcessOp::Exec => Identity {
                executable: if s.starts_with('/') { s } else { executable },
                name: process_name(s.rsplit('/').next().unwrap_or(s)),
            },
            ProcessOp::Fork => Identity {
                executable,
                name: process_name(s),
            },
        });
        match second {
            Some(second) if second != first => vec![first, second],
            _ => vec![first],
        }
    }
}
