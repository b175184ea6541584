//! Events: the event-level half of a selector, known only at the operation.

use crate::model::{FileOp, ProcessOp};

/// One operation by a process in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A file operation on `path`, as the container sees it. For `execMemFd` the path is
    /// `memfd:NAME`, which no `targetFilePath` pattern matches.
    File {
        /// The operation.
        op: FileOp,
        /// The target's path.
        path: String,
    },
    /// A process operation. `executable` is the program's path, `name` its process name
    /// (for exec: the base name of the executed path, at most 15 bytes, as the kernel sets
    /// it), `interactive` whether the session has a controlling terminal.
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
