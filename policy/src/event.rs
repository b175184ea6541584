//! Events: the event-level half of a selector, known only at the operation.

use crate::model::{FileOp, ProcessOp};

/// One operation by a process in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A process operation. `executable` is the path of the file the process runs (after
    /// symlinks; `/memfd:NAME` for a memfd), `name` that file's name (at most 15 bytes),
    /// `interactive` whether the session has a controlling terminal.
    Process {
        /// The operation.
        op: ProcessOp,
        /// The program's path.
        executable: String,
        /// The process name.
        name: String,
        /// Whether the session has a controlling terminal.
        interactive: bool,
    },
}
