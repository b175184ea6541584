//! The policy model: selectors and responses after parsing and validation.

use crate::diag::Pos;
use crate::pattern::{LabelPattern, PathPattern};

/// Which generation of the policy format a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Flat `selectors`/`responses`, `orchestrator*` conditions (the seed document).
    One,
    /// `file`/`process` blocks, `kubernetes*` conditions.
    Two,
}

impl Generation {
    /// `generation 1` or `generation 2`, for messages.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Generation::One => "generation 1",
            Generation::Two => "generation 2",
        }
    }
}

/// The two kinds of block; a response only references selectors of its own block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `file:` selectors and responses (and every generation 1 one).
    File,
    /// `process:` selectors and responses.
    Process,
}

impl BlockKind {
    /// `file` or `process`, as the policy spells the block.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            BlockKind::File => "file",
            BlockKind::Process => "process",
        }
    }
}

/// File operations; the discriminant is the kernel's operation index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileOp {
    /// `createExecutable`: a new file with an x bit, or an x bit added to a file.
    CreateExecutable = 0,
    /// `modifyExecutable`: a file with an x bit written, truncated or replaced.
    ModifyExecutable = 1,
    /// `execMemFd`: a program run from a memfd.
    ExecMemFd = 2,
    /// `createFile`: a new regular file (or a new name for one).
    CreateFile = 3,
    /// `modifyFile`: a regular file written, truncated, chmod-ed or replaced.
    ModifyFile = 4,
    /// `deleteFile`: a regular file unlinked or renamed away.
    DeleteFile = 5,
}

impl FileOp {
    /// Every file operation, in kernel index order.
    pub const ALL: [FileOp; 6] = [
        FileOp::CreateExecutable,
        FileOp::ModifyExecutable,
        FileOp::ExecMemFd,
        FileOp::CreateFile,
        FileOp::ModifyFile,
        FileOp::DeleteFile,
    ];

    /// The operation's name in a policy.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FileOp::CreateExecutable => "createExecutable",
            FileOp::ModifyExecutable => "modifyExecutable",
            FileOp::ExecMemFd => "execMemFd",
            FileOp::CreateFile => "createFile",
            FileOp::ModifyFile => "modifyFile",
            FileOp::DeleteFile => "deleteFile",
        }
    }

    /// The operation a policy names `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The file-integrity operations (generation 2) that the block-needs-a-path rule covers.
    #[must_use]
    pub fn is_file_integrity(self) -> bool {
        matches!(
            self,
            FileOp::CreateFile | FileOp::ModifyFile | FileOp::DeleteFile
        )
    }

    /// The operation's bit in an operation mask (`1 << index`).
    #[must_use]
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Process operations; the discriminant is the kernel's operation index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessOp {
    /// `fork`: a new process (not a thread).
    Fork = 0,
    /// `exec`: a program run.
    Exec = 1,
}

impl ProcessOp {
    /// Every process operation, in kernel index order.
    pub const ALL: [ProcessOp; 2] = [ProcessOp::Fork, ProcessOp::Exec];

    /// The operation's name in a policy.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ProcessOp::Fork => "fork",
            ProcessOp::Exec => "exec",
        }
    }

    /// The operation a policy names `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The operation's bit in an operation mask (`1 << index`).
    #[must_use]
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of actions, as `d4c_common::ACTION_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions(pub u8);

impl Actions {
    /// `log`.
    pub const LOG: u8 = d4c_common::ACTION_LOG;
    /// `alert`.
    pub const ALERT: u8 = d4c_common::ACTION_ALERT;
    /// `block` (the kernel denies the operation).
    pub const BLOCK: u8 = d4c_common::ACTION_BLOCK;
    /// A `block` d4c only audits: allowed, alerted as a would-be block (`crate::audit`).
    /// Not a policy action: it comes from the audit settings.
    pub const AUDIT: u8 = d4c_common::ACTION_AUDIT;
    /// The actions a policy can name.
    const POLICY: [(u8, &'static str); 3] = [
        (Self::ALERT, "alert"),
        (Self::BLOCK, "block"),
        (Self::LOG, "log"),
    ];
    const NAMES: [(u8, &'static str); 4] = [
        (Self::ALERT, "alert"),
        (Self::AUDIT, "audit"),
        (Self::BLOCK, "block"),
        (Self::LOG, "log"),
    ];

    /// The bit of the action a policy names `name`.
    #[must_use]
    pub fn bit_of(name: &str) -> Option<u8> {
        Self::POLICY
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(b, _)| *b)
    }

    /// Whether the set holds the action `bit`.
    #[must_use]
    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Action names, sorted.
    #[must_use]
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(b, _)| self.contains(*b))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// One selector. Absent conditions (`None`) do not constrain; present ones are `ANDed`,
/// and the values inside one condition are `ORed`.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// `name`: what responses reference it by.
    pub name: String,
    /// Index of the source file in [`Policy::sources`].
    pub source: usize,
    /// The block it was written in (`None`: generation 1, a file selector).
    pub block: Option<BlockKind>,
    /// Where it starts in its file.
    pub pos: Pos,
    /// Operation bits (`FileOp::bit` / `ProcessOp::bit`); `None` means every operation.
    pub ops: Option<u8>,
    /// `containerImageName`.
    pub image_name: Option<Vec<String>>,
    /// `containerImageFullName`.
    pub image_full_name: Option<Vec<String>>,
    /// `containerImageTag`.
    pub image_tag: Option<Vec<String>>,
    /// `kubernetesClusterId` / `orchestratorClusterId`.
    pub cluster_id: Option<Vec<String>>,
    /// `kubernetesClusterName` / `orchestratorClusterName`.
    pub cluster_name: Option<Vec<String>>,
    /// `kubernetesNamespace` / `orchestratorNamespace`.
    pub namespace: Option<Vec<String>>,
    /// `kubernetesPodName` / `orchestratorResourceName`.
    pub pod_name: Option<Vec<String>>,
    /// `kubernetesPodLabel` / `orchestratorResourceLabel`.
    pub pod_label: Option<Vec<LabelPattern>>,
    /// `orchestratorType`.
    pub orchestrator_type: Option<Vec<String>>,
    /// `targetFilePath`.
    pub target_path: Option<Vec<PathPattern>>,
    /// `ignoreVolumeMounts`: paths on a volume mount do not match.
    pub ignore_volume_mounts: bool,
    /// `ignoreVolumeFiles`: paths on a file volume mount do not match.
    pub ignore_volume_files: bool,
    /// `processExecutable`.
    pub executable: Option<Vec<PathPattern>>,
    /// `processName`.
    pub process_name: Option<Vec<String>>,
    /// `sessionLeaderInteractive`.
    pub interactive: Option<bool>,
}

impl Selector {
    /// The block this selector belongs to (generation 1 selectors are file selectors).
    #[must_use]
    pub fn kind(&self) -> BlockKind {
        self.block.unwrap_or(BlockKind::File)
    }

    /// Whether the selector's operation condition admits the operation with this bit.
    #[must_use]
    pub fn has_op(&self, bit: u8) -> bool {
        self.ops.is_none_or(|ops| ops & bit != 0)
    }

    /// True when any condition depends on the container (image, pod, cluster).
    #[must_use]
    pub fn has_container_conditions(&self) -> bool {
        self.image_name.is_some()
            || self.image_full_name.is_some()
            || self.image_tag.is_some()
            || self.cluster_id.is_some()
            || self.cluster_name.is_some()
            || self.namespace.is_some()
            || self.pod_name.is_some()
            || self.pod_label.is_some()
            || self.orchestrator_type.is_some()
    }
}

/// One response: fires when any `matches` selector matches and no `excludes` one does.
#[derive(Debug, Clone)]
pub struct Response {
    /// Index of the source file in [`Policy::sources`].
    pub source: usize,
    /// The block it was written in.
    pub block: BlockKind,
    /// Where it starts in its file.
    pub pos: Pos,
    /// `match`: indices into [`Policy::selectors`].
    pub matches: Vec<usize>,
    /// `exclude`: indices into [`Policy::selectors`].
    pub excludes: Vec<usize>,
    /// `actions`.
    pub actions: Actions,
}

/// One policy file that contributed to a [`Policy`].
#[derive(Debug, Clone)]
pub struct Source {
    /// The file's path, as given.
    pub path: String,
    /// The format generation it is written in.
    pub generation: Generation,
}

/// A validated policy: every file of a policy directory, combined. Each file's names are
/// its own: a response references selectors of its own file only.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The files, in load order.
    pub sources: Vec<Source>,
    /// Every file's selectors.
    pub selectors: Vec<Selector>,
    /// Every file's responses.
    pub responses: Vec<Response>,
    /// What d4c audits instead of blocking (from its own settings, not from the files).
    pub audit: crate::audit::Audit,
}

impl Policy {
    /// The name a report uses for a selector: plain for a one-file policy, else
    /// `FILE:NAME` with the file's base name.
    #[must_use]
    pub fn selector_label(&self, index: usize) -> String {
        let sel = &self.selectors[index];
        if self.sources.len() <= 1 {
            return sel.name.clone();
        }
        let path = &self.sources[sel.source].path;
        let base = path.rsplit('/').next().unwrap_or(path);
        format!("{base}:{}", sel.name)
    }
}
