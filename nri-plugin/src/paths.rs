//! Every filesystem path d4c uses unless told otherwise, in one place. Each one is
//! overridable where it is used: the daemon's configuration file (`crate::config`), the
//! command-line flags, `bpf::Config`.

/// The bpffs directory where d4c pins its maps and links (`bpffs:`, `--bpffs`).
pub const PIN_DIR: &str = "/sys/fs/bpf/d4c";
/// The standard bpffs mount point, mounted by d4c when nothing is mounted there.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// The policy directory (`policyDir:`).
pub const POLICY_DIR: &str = "/etc/d4c/policies";
/// Where the daemon keeps a copy of the last policy it loaded (`lastGoodPolicyDir:`): what
/// it enforces when it starts and the policy directory is invalid. Under /run, like the
/// pins it goes with: gone at a reboot.
pub const LAST_GOOD_POLICY_DIR: &str = "/run/d4c/last-good-policy";
/// The daemon's status socket (`statusSocket:`, `d4c status --socket`).
pub const STATUS_SOCKET: &str = "/run/d4c/status.sock";
/// The runtime's NRI socket (`nriSocket:`): NRI's own default.
pub const NRI_SOCKET: &str = d4c_nri::DEFAULT_SOCKET;
/// The running kernel's BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
/// The overlay module's BTF (present once the module is loaded).
pub const OVERLAY_BTF: &str = "/sys/kernel/btf/overlay";
/// The active LSMs, comma-separated.
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";
/// This process's mounts (where the cgroup v2 hierarchy is found).
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// The kernel's preemption model (debugfs: `none voluntary (full) lazy`, the one in force
/// in parentheses).
pub const PREEMPT_MODEL: &str = "/sys/kernel/debug/sched/preempt";
/// The host name put in alerts.
pub const HOSTNAME: &str = "/proc/sys/kernel/hostname";
