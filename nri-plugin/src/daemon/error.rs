//! Why the daemon cannot start, or stopped: one variant per step of [`super::run`].

use std::io;
use std::path::PathBuf;

use crate::alerts::bulk::BulkError;
use crate::bpf::BpfError;

/// A failure of the daemon as a whole (a container's registration failing is not one:
/// see [`super::registry::RegistryError`]).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the policy cannot be loaded; d4c does not start without a valid policy")]
    Policy(#[source] d4c_policy::PolicyError),
    #[error(transparent)]
    Kernel(#[from] BpfError),
    #[error("the ring buffer is already taken")]
    RingBufferTaken,
    #[error("opening the alerts file {}", path.display())]
    AlertsFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Elasticsearch(#[from] BulkError),
    #[error("binding the metrics address {address}")]
    Metrics {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("finding the cgroup v2 hierarchy")]
    CgroupRoot(#[source] io::Error),
    #[error(transparent)]
    Nri(#[from] d4c_nri::Error),
    #[error("blocking is not guaranteed on this node and `enforcement.requireSound` is set: {0}")]
    Unsound(String),
    #[error("enforcement was lost and cannot be repaired by this process ({0}); restart the daemon (its supervisor does) to adopt what is pinned")]
    EnforcementLost(String),
}
