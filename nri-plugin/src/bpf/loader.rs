//! Loading the embedded object (offsets set from the kernel's BTF), attaching and pinning
//! every program, or adopting what a previous daemon pinned; and unloading.

use std::path::{Path, PathBuf};

use aya::{
    maps::{lpm_trie::LpmTrie, HashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{
        links::{FdLink, PinnedLink},
        Lsm, RawTracePoint,
    },
    Ebpf, EbpfLoader,
};
use d4c_common::{
    offsets::{OFF_BACKING_USER_PATH, OFF_MMAP_PROT_ARG, OFF_OVL_UPPER},
    CommKey, ContainerEntry, ExeRule, FileRule, NameClass, ProcDecision, ProcKey, Program,
    ProgramKind, TrieData, GLOBAL_NOOP, GLOBAL_OFFSETS, MAP_COMM_RULES, MAP_CONTAINERS,
    MAP_COUNTERS, MAP_EVENTS, MAP_EXE_RULES, MAP_FILE_RULES, MAP_PROC_DECISIONS, MAP_RULESET_OPS,
    PROGRAMS,
};

use crate::paths;

use super::{
    attach_mode::{AttachMode, AttachRequest},
    btf::Btf,
    error::BpfError,
    fmod_ret::Relocated,
    fs::{self, links_dir, maps_dir},
    handover::Handover,
};

/// The eBPF object built by `build.rs` from `ebpf/`.
pub(super) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/d4c-ebpf"));

/// Where things are and what to load.
#[derive(Clone, Debug)]
pub struct Config {
    /// bpffs directory for pins (default [`paths::PIN_DIR`]).
    pub pin_dir: PathBuf,
    /// The kernel's BTF (default [`paths::KERNEL_BTF`]).
    pub btf: PathBuf,
    /// The active LSM list (default [`paths::LSM_LIST`]).
    pub lsm_list: PathBuf,
    /// Attach the hooks. `false` loads only the cgroup tracepoints: a diagnostic mode for
    /// kernels that refuse the hooks (nothing is enforced).
    pub attach_lsm: bool,
    /// How the hooks attach: `auto` (LSM where BPF LSM is active, else `fmod_ret`), or
    /// exactly one mode.
    pub attach: AttachRequest,
    /// Load every program as a no-op that returns 0 at once (the `D4C_NOOP` global): the
    /// floor of the kernel overhead benchmark. Nothing is enforced; d4c never sets it.
    pub noop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pin_dir: paths::PIN_DIR.into(),
            btf: paths::KERNEL_BTF.into(),
            lsm_list: paths::LSM_LIST.into(),
            attach_lsm: true,
            attach: AttachRequest::Auto,
            noop: false,
        }
    }
}

/// How the enforcer came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Programs loaded and attached by this process.
    Loaded,
    /// Programs found attached and pinned; their maps reopened.
    Adopted,
}

/// The loaded (or adopted) kernel programs and their maps. Enforcement lives in the pins:
/// dropping an `Enforcer` leaves it running; [`Enforcer::unload`] ends it.
pub struct Enforcer {
    pub(super) pin_dir: PathBuf,
    pub(super) origin: Origin,
    pub(super) mode: AttachMode,
    pub(super) containers: HashMap<MapData, u64, ContainerEntry>,
    pub(super) file_rules: LpmTrie<MapData, TrieData, FileRule>,
    pub(super) exe_rules: LpmTrie<MapData, TrieData, ExeRule>,
    pub(super) comm_rules: HashMap<MapData, CommKey, NameClass>,
    pub(super) proc_decisions: HashMap<MapData, ProcKey, ProcDecision>,
    pub(super) ruleset_ops: HashMap<MapData, u32, u32>,
    pub(super) counters: PerCpuArray<MapData, u64>,
    pub(super) events: Option<RingBuf<MapData>>,
    /// Previous builds still attached until [`Enforcer::retire_previous`].
    pub(super) handovers: Vec<Handover>,
}

/// Identifies the kernel code this binary loads: FNV-1a of the embedded object, whether
/// the programs are no-ops, and how they attach. Pinned under `build-<id>`; adoption
/// requires a match, so a change of attach mode is taken over like an upgrade.
#[must_use]
pub fn build_id(noop: bool, mode: AttachMode) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tail = [u8::from(noop)];
    let mode_tail: &[u8] = match mode {
        AttachMode::Lsm => &[],
        AttachMode::FmodRet => b"fmod_ret",
    };
    for b in OBJECT.iter().chain(&tail).chain(mode_tail) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `backing_file.user_path`, or 0 on a kernel without backing files (6.1). A kernel that
/// has them (6.6+) but no BTF for the struct is refused: its overlay mappings would be
/// decided on the layer's private path.
fn backing_user_path(btf: &Btf) -> Result<u32, BpfError> {
    match btf.offset_of("backing_file", "user_path") {
        Some(off) => Ok(off),
        None if btf.has_func("backing_file_open") || btf.has_func("backing_file_user_path") => {
            Err(BpfError::MissingField {
                field: "struct backing_file.user_path".into(),
            })
        }
        None => Ok(0),
    }
}

fn program_pin(pin_dir: &Path, p: &Program) -> PathBuf {
    links_dir(pin_dir).join(p.name)
}

impl Enforcer {
    /// Adopts the pinned programs under `config.pin_dir` if they are all there, else loads,
    /// attaches and pins them (clearing any partial leftovers first).
    pub fn load_or_adopt(config: &Config) -> Result<Self, BpfError> {
        let mode = if config.attach_lsm {
            config.attach.resolve(&config.lsm_list)?
        } else {
            AttachMode::Lsm
        };
        let btf = Btf::from_file(&config.btf)?;
        let complete = PROGRAMS.iter().all(|p| {
            program_pin(&config.pin_dir, p).exists()
                || p.optional
                || (!config.attach_lsm && p.kind == ProgramKind::Lsm)
        }) && PROGRAMS
            .iter()
            .any(|p| program_pin(&config.pin_dir, p).exists());
        let build = build_id(config.noop, mode);
        let builds = fs::pinned_builds(&config.pin_dir);
        let found = || {
            fs::retiring_dirs(&config.pin_dir)
                .into_iter()
                .map(Handover::found)
                .collect::<Vec<_>>()
        };
        if complete && builds == [build] {
            if let Ok(mut e) = Self::adopt(&config.pin_dir) {
                e.handovers = found();
                return Ok(e);
            }
        }
        if !complete {
            // Partial leftovers of a failed load; a previous build's handover stays.
            fs::remove_current(&config.pin_dir)?;
            let mut e = Self::load(config, &btf, build, mode)?;
            e.handovers = found();
            return Ok(e);
        }
        // Another d4c build (an upgrade, or a downgrade) pinned these programs, or they
        // could not be adopted. This build's programs are attached next to them; the old
        // ones keep enforcing their registrations until the daemon has registered the
        // runtime's containers in the new maps (`retire_previous`), so an upgrade leaves
        // no unprotected moment.
        tracing::warn!(
            pinned = ?builds.iter().map(|b| format!("{b:016x}")).collect::<Vec<_>>(),
            this = %format!("{build:016x}"),
            dir = %config.pin_dir.display(),
            "the pinned programs are another d4c build's; taking over (they enforce until the containers are registered again)"
        );
        let mut handovers = found();
        let retiring = fs::retire(&config.pin_dir)?;
        handovers.push(Handover::begin(retiring.clone()));
        match Self::load(config, &btf, build, mode) {
            Ok(mut e) => {
                e.handovers = handovers;
                Ok(e)
            }
            Err(err) => {
                // Leave the previous build in place, as it was.
                if let Err(e) = fs::unretire(&config.pin_dir, &retiring) {
                    tracing::error!(error = %e, dir = %retiring.display(), "could not put the previous build's pins back");
                }
                Err(err)
            }
        }
    }

    /// Reopens the pinned maps of a running enforcer.
    pub fn adopt(pin_dir: &Path) -> Result<Self, BpfError> {
        let open = |name: &'static str| -> Result<MapData, BpfError> {
            MapData::from_pin(maps_dir(pin_dir).join(name)).map_err(|source| BpfError::Map {
                map: name,
                source: Box::new(source),
            })
        };
        let mode = fs::pinned_mode(pin_dir).unwrap_or(AttachMode::Lsm);
        Self::from_maps(pin_dir, Origin::Adopted, mode, |name| {
            open(name).map(|md| wrap(name, md))
        })
    }

    fn from_maps(
        pin_dir: &Path,
        origin: Origin,
        mode: AttachMode,
        mut take: impl FnMut(&'static str) -> Result<Map, BpfError>,
    ) -> Result<Self, BpfError> {
        fn typed<T: TryFrom<Map, Error = aya::maps::MapError>>(
            name: &'static str,
            map: Map,
        ) -> Result<T, BpfError> {
            T::try_from(map).map_err(|source| BpfError::Map {
                map: name,
                source: Box::new(source),
            })
        }
        Ok(Enforcer {
            pin_dir: pin_dir.into(),
            origin,
            mode,
            containers: typed(MAP_CONTAINERS, take(MAP_CONTAINERS)?)?,
            file_rules: typed(MAP_FILE_RULES, take(MAP_FILE_RULES)?)?,
            exe_rules: typed(MAP_EXE_RULES, take(MAP_EXE_RULES)?)?,
            comm_rules: typed(MAP_COMM_RULES, take(MAP_COMM_RULES)?)?,
            proc_decisions: typed(MAP_PROC_DECISIONS, take(MAP_PROC_DECISIONS)?)?,
            ruleset_ops: typed(MAP_RULESET_OPS, take(MAP_RULESET_OPS)?)?,
            counters: typed(MAP_COUNTERS, take(MAP_COUNTERS)?)?,
            events: Some(typed(MAP_EVENTS, take(MAP_EVENTS)?)?),
            handovers: Vec::new(),
        })
    }

    fn load(config: &Config, btf: &Btf, build: u64, mode: AttachMode) -> Result<Self, BpfError> {
        let mut offsets = btf.kernel_offsets()?;
        offsets.fields[OFF_MMAP_PROT_ARG] = mode.mmap_prot_arg();
        offsets.fields[OFF_OVL_UPPER] =
            super::overlay::upper_offset(btf, Path::new(paths::OVERLAY_BTF))?;
        offsets.fields[OFF_BACKING_USER_PATH] = backing_user_path(btf)?;
        fs::ensure_pin_dir(&config.pin_dir)?;
        let result = Self::load_inner(config, btf, &offsets, mode)
            // The mode first: pins that carry a build marker are complete and adoptable.
            .and_then(|e| fs::mark_mode(&config.pin_dir, mode).map(|()| e))
            .and_then(|e| fs::mark_build(&config.pin_dir, build).map(|()| e));
        if result.is_err() {
            // Leave no half-attached state behind; a previous build's handover stays.
            let _ = if fs::retiring_dirs(&config.pin_dir).is_empty() {
                fs::remove_pins(&config.pin_dir)
            } else {
                fs::remove_current(&config.pin_dir)
            };
        }
        result
    }

    fn load_inner(
        config: &Config,
        btf: &Btf,
        offsets: &d4c_common::KernelOffsets,
        mode: AttachMode,
    ) -> Result<Self, BpfError> {
        let aya_btf =
            aya::Btf::parse_file(&config.btf, aya::Endianness::default()).map_err(|e| {
                BpfError::Btf {
                    path: config.btf.clone(),
                    reason: e.to_string(),
                }
            })?;
        let noop = 1u32;
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(&aya_btf))
            .default_map_pin_directory(maps_dir(&config.pin_dir))
            .override_global(GLOBAL_OFFSETS, offsets, true);
        if config.noop {
            loader.override_global(GLOBAL_NOOP, &noop, true);
        }
        let mut ebpf: Ebpf = loader.load(OBJECT).map_err(|source| BpfError::Object {
            source: Box::new(source),
        })?;
        // fmod_ret hooks are loaded here, from the object relocated against aya's maps
        // (after the tracepoints, whose load gives the object's BTF to the kernel).
        let mut relocated: Option<Relocated> = None;
        for p in &PROGRAMS {
            if p.kind == ProgramKind::Lsm && !config.attach_lsm {
                continue;
            }
            let function = mode.kernel_function(p.attach);
            if p.kind == ProgramKind::Lsm && p.optional && !btf.has_func(&function) {
                continue;
            }
            let path = program_pin(&config.pin_dir, p);
            if p.kind == ProgramKind::Lsm && mode == AttachMode::FmodRet {
                let relocated = match &mut relocated {
                    Some(r) => r,
                    None => relocated.insert(Relocated::new(OBJECT, &ebpf, PROGRAMS[0].name)?),
                };
                let id = btf.func_id(&function).ok_or_else(|| BpfError::FmodRet {
                    program: p.name,
                    function: function.clone(),
                    reason: "the kernel's BTF has no such function".into(),
                    verifier_log: String::new(),
                })?;
                relocated.attach_and_pin(p.name, &function, id, &path)?;
                continue;
            }
            let link = attach(&mut ebpf, p, &aya_btf)?;
            let pinned: PinnedLink = link.pin(&path).map_err(|source| BpfError::Pin {
                path: path.clone(),
                source: Box::new(source),
            })?;
            drop(pinned);
        }
        Self::from_maps(&config.pin_dir, Origin::Loaded, mode, |name| {
            ebpf.take_map(name).ok_or(BpfError::NoMap { map: name })
        })
    }

    /// Whether this enforcer loaded the programs or adopted pinned ones.
    #[must_use]
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// How the hooks are attached.
    #[must_use]
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The pin directory.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Ends enforcement: detaches every program and removes every pin under `pin_dir`,
    /// previous builds' included.
    pub fn unload(self) -> Result<(), BpfError> {
        let dir = self.pin_dir.clone();
        drop(self);
        fs::remove_pins(&dir)
    }

    /// Like [`Enforcer::unload`] without an enforcer (e.g. `d4c unload`).
    pub fn unload_pinned(pin_dir: &Path) -> Result<(), BpfError> {
        fs::remove_pins(pin_dir)
    }
}

/// Wraps a pinned map's data in the `Map` variant its name implies.
fn wrap(name: &str, md: MapData) -> Map {
    match name {
        MAP_FILE_RULES | MAP_EXE_RULES => Map::LpmTrie(md),
        MAP_COUNTERS => Map::PerCpuArray(md),
        MAP_EVENTS => Map::RingBuf(md),
        _ => Map::HashMap(md),
    }
}

/// Loads and attaches one program; returns its link (not yet pinned).
fn attach(ebpf: &mut Ebpf, p: &Program, aya_btf: &aya::Btf) -> Result<FdLink, BpfError> {
    let prog = ebpf
        .program_mut(p.name)
        .ok_or(BpfError::NoProgram { program: p.name })?;
    let load_err = |source| load_error(p, source);
    let attach_err = |source| BpfError::Attach {
        program: p.name,
        source: Box::new(source),
    };
    match p.kind {
        ProgramKind::Lsm => {
            let prog: &mut Lsm = prog.try_into().map_err(attach_err)?;
            prog.load(p.attach, aya_btf).map_err(load_err)?;
            let id = prog.attach().map_err(attach_err)?;
            Ok(prog.take_link(id).map_err(attach_err)?.into())
        }
        ProgramKind::RawTracepoint => {
            let prog: &mut RawTracePoint = prog.try_into().map_err(attach_err)?;
            prog.load().map_err(load_err)?;
            let id = prog.attach(p.attach).map_err(attach_err)?;
            Ok(prog.take_link(id).map_err(attach_err)?.into())
        }
    }
}

/// A load failure; an LSM program refused with EPERM/EINVAL and no verifier output means
/// the kernel does not run BPF LSM programs at all.
fn load_error(p: &Program, source: aya::programs::ProgramError) -> BpfError {
    if let aya::programs::ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &source
    {
        let log = verifier_log.to_string();
        let code = io_error.raw_os_error();
        if p.kind == ProgramKind::Lsm
            && log.trim().is_empty()
            && (code == Some(libc::EPERM) || code == Some(libc::EINVAL))
        {
            return BpfError::LsmUnavailable {
                reason: format!(
                    "the kernel refused LSM program {} ({io_error}) without a verifier log",
                    p.name
                ),
            };
        }
        return BpfError::Load {
            program: p.name,
            hook: p.attach,
            verifier_log: log,
            source: Box::new(source),
        };
    }
    BpfError::Load {
        program: p.name,
        hook: p.attach,
        verifier_log: String::new(),
        source: Box::new(source),
    }
}
