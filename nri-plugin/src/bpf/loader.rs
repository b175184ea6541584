//! Loading the embedded object (offsets set from the kernel's BTF), attaching and pinning
//! every program, or adopting what a previous daemon pinned; and unloading. Every change
//! to the pins happens under the pin directory's loader lock (`lock.rs`); a loader then
//! joins the pins' users for as long as its [`Enforcer`] lives.

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    maps::{lpm_trie::LpmTrie, Array, HashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{
        links::{FdLink, PinnedLink},
        Lsm, RawTracePoint,
    },
    Ebpf, EbpfLoader,
};
use d4c_common::{
    offsets::{OFF_BACKING_USER_PATH, OFF_MMAP_PROT_ARG, OFF_OVL_UPPER},
    Budget, CommKey, ContainerEntry, ExeRule, FileRule, NameClass, ProcDecision, ProcKey, Program,
    ProgramKind, TrieData, GLOBAL_NOOP, GLOBAL_OFFSETS, MAP_BUDGETS, MAP_COMM_RULES,
    MAP_CONTAINERS, MAP_COUNTERS, MAP_EVENTS, MAP_EXE_RULES, MAP_FILE_RULES, MAP_PROC_DECISIONS,
    MAP_RULESET_OPS, MAP_SETTINGS, PROGRAMS,
};

use crate::paths;

use super::{
    attach_mode::{AttachMode, AttachRequest},
    btf::Btf,
    error::BpfError,
    fmod_ret::Relocated,
    fs::{self, links_dir, maps_dir},
    handover::Handover,
    lock::{self, Flock, Holder},
    sys,
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
    /// How the hooks attach: `auto` (LSM where BPF LSM is active, else `fmod_ret`), or
    /// exactly one mode.
    pub attach: AttachRequest,
    /// Load every program as a no-op that returns 0 at once (the `D4C_NOOP` global): the
    /// floor of the kernel overhead benchmark. Nothing is enforced; d4c never sets it.
    pub noop: bool,
    /// What this process does with the pins.
    pub role: Role,
    /// How this process is named to others waiting for a lock it holds.
    pub holder: Holder,
    /// How long to wait for another loader ([`lock::DEFAULT_WAIT`]).
    pub lock_wait: Duration,
    /// Bytes of the daemon's ring buffer (a power of two, a multiple of the page size);
    /// `None`: the object's (4 MiB). Only a load sets it: adopted pins keep theirs.
    pub ring_bytes: Option<u32>,
}

/// What a loader does with pins it finds or leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Pins are the node's: they stay when this process ends (a restarted daemon adopts
    /// them); another build's are taken over (an upgrade) when nobody uses them; pins a
    /// `d4c exec` loaded become the node's.
    Node,
    /// A short-lived run (`d4c exec`): pins it loads are its own and the last run using
    /// them removes them ([`Enforcer::release`]); another build's are never taken over.
    Run,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pin_dir: paths::PIN_DIR.into(),
            btf: paths::KERNEL_BTF.into(),
            lsm_list: paths::LSM_LIST.into(),
            attach: AttachRequest::Auto,
            noop: false,
            role: Role::Node,
            holder: Holder::new("d4c"),
            lock_wait: lock::DEFAULT_WAIT,
            ring_bytes: None,
        }
    }
}

/// What [`Enforcer::release`] did with the pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    /// Nobody else used them: they are removed, the programs detached.
    Unloaded,
    /// Other processes use them (their records): they stay.
    InUse(Vec<String>),
    /// A daemon loaded or claimed them: they stay, as the node's enforcement.
    NodeOwned,
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
    pub(super) budgets: HashMap<MapData, u64, Budget>,
    pub(super) settings: Array<MapData, u64>,
    pub(super) events: Option<RingBuf<MapData>>,
    /// Previous builds still attached until [`Enforcer::retire_previous`].
    pub(super) handovers: Vec<Handover>,
    /// The programs whose pinned links this enforcer relies on (what it attached, or found
    /// attached), checked by [`Enforcer::check`].
    pub(super) programs: Vec<&'static str>,
    /// Every map pinned when this enforcer loaded or adopted: name, descriptor, id. Held
    /// so that a removed pin can be put back ([`Enforcer::repair`]).
    pub(super) pinned_maps: Vec<(String, OwnedFd, u32)>,
    /// This process's place among the pins' users (`None`: not a user, e.g. [`Enforcer::adopt`]).
    pub(super) user: Option<Flock>,
    /// How it was loaded: what [`Enforcer::repair`] loads with.
    pub(super) config: Config,
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
    /// attaches and pins them (clearing any partial leftovers first), holding the loader
    /// lock throughout: a second loader waits, then adopts what the first pinned. Another
    /// build's pins are taken over in [`Role::Node`] when nobody else uses them, and
    /// refused in [`Role::Run`]. The enforcer joins the pins' users.
    pub fn load_or_adopt(config: &Config) -> Result<Self, BpfError> {
        let mode = config.attach.resolve(&config.lsm_list)?;
        let btf = Btf::from_file(&config.btf)?;
        fs::ensure_pin_dir(&config.pin_dir)?;
        let _loading = lock::loader(&config.pin_dir, &config.holder, config.lock_wait)?;
        let mut e = Self::load_or_adopt_locked(config, &btf, mode)?;
        e.user = Some(lock::user(&config.pin_dir, &config.holder)?);
        e.pinned_maps = pinned_maps(&config.pin_dir)?;
        e.config = config.clone();
        fs::mark_exec_owned(
            &config.pin_dir,
            config.role == Role::Run
                && (e.origin == Origin::Loaded || fs::exec_owned(&config.pin_dir)),
        )?;
        Ok(e)
    }

    fn load_or_adopt_locked(
        config: &Config,
        btf: &Btf,
        mode: AttachMode,
    ) -> Result<Self, BpfError> {
        let complete = PROGRAMS
            .iter()
            .all(|p| program_pin(&config.pin_dir, p).exists() || p.optional)
            && PROGRAMS
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
            // Partial leftovers of a load that died (a live loader would hold the lock);
            // a previous build's handover stays.
            fs::remove_current(&config.pin_dir)?;
            let mut e = Self::load(config, btf, build, mode)?;
            e.handovers = found();
            return Ok(e);
        }
        let hex = |b: &u64| format!("{b:016x}");
        if config.role == Role::Run {
            return Err(BpfError::OtherBuild {
                dir: config.pin_dir.clone(),
                pinned: builds.iter().map(hex).collect::<Vec<_>>().join(", "),
                this: hex(&build),
            });
        }
        // Nobody may rely on the programs about to be retired (a `d4c exec` run of that
        // build would lose its registrations when they are detached).
        let users = lock::other_users(&config.pin_dir)?;
        if !users.is_empty() {
            return Err(BpfError::InUse {
                dir: config.pin_dir.clone(),
                users,
            });
        }
        // Another d4c build (an upgrade, or a downgrade) pinned these programs, or they
        // could not be adopted. This build's programs are attached next to them; the old
        // ones keep enforcing their registrations until the daemon has registered the
        // runtime's containers in the new maps (`retire_previous`), so an upgrade leaves
        // no unprotected moment.
        tracing::warn!(
            pinned = ?builds.iter().map(hex).collect::<Vec<_>>(),
            this = %hex(&build),
            dir = %config.pin_dir.display(),
            "the pinned programs are another d4c build's; taking over (they enforce until the containers are registered again)"
        );
        let mut handovers = found();
        let retiring = fs::retire(&config.pin_dir)?;
        handovers.push(Handover::begin(retiring.clone()));
        match Self::load(config, btf, build, mode) {
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
        let mut e = Self::from_maps(pin_dir, Origin::Adopted, mode, |name| {
            open(name).map(|md| wrap(name, md))
        })?;
        // Every hook this kernel has (a missing optional one is a hook it lacks).
        e.programs = PROGRAMS
            .iter()
            .filter(|p| !p.optional || program_pin(pin_dir, p).exists())
            .map(|p| p.name)
            .collect();
        Ok(e)
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
            budgets: typed(MAP_BUDGETS, take(MAP_BUDGETS)?)?,
            settings: typed(MAP_SETTINGS, take(MAP_SETTINGS)?)?,
            events: Some(typed(MAP_EVENTS, take(MAP_EVENTS)?)?),
            handovers: Vec::new(),
            programs: Vec::new(),
            pinned_maps: Vec::new(),
            user: None,
            config: Config {
                pin_dir: pin_dir.into(),
                ..Config::default()
            },
        })
    }

    fn load(config: &Config, btf: &Btf, build: u64, mode: AttachMode) -> Result<Self, BpfError> {
        // `maps/` and `links/` again: leftovers' removal and a takeover's move took them.
        fs::ensure_pin_dir(&config.pin_dir)?;
        let result = Self::load_inner(config, btf, mode)
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

    fn load_inner(config: &Config, btf: &Btf, mode: AttachMode) -> Result<Self, BpfError> {
        let (mut ebpf, programs) = attach_programs(config, btf, mode, |_| true)?;
        let mut e = Self::from_maps(&config.pin_dir, Origin::Loaded, mode, |name| {
            ebpf.take_map(name).ok_or(BpfError::NoMap { map: name })
        })?;
        e.programs = programs;
        Ok(e)
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

    /// Takes the maps pinned now as this enforcer's own, for [`Enforcer::check`] (an
    /// enforcer from [`Enforcer::adopt`] knows none).
    pub fn track_pins(&mut self) -> Result<(), BpfError> {
        self.pinned_maps = pinned_maps(&self.pin_dir)?;
        Ok(())
    }

    /// How this enforcer was loaded (what a repair loads with).
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The programs whose pinned links this enforcer relies on.
    #[must_use]
    pub fn programs(&self) -> &[&'static str] {
        &self.programs
    }

    /// Ends enforcement: detaches every program and removes every pin under `pin_dir`,
    /// previous builds' included (under the loader lock, whoever else uses them).
    pub fn unload(self) -> Result<(), BpfError> {
        let dir = self.pin_dir.clone();
        drop(self);
        let _loading = lock::loader(&dir, &Holder::new("d4c unload"), lock::DEFAULT_WAIT)?;
        fs::remove_pins(&dir)
    }

    /// Ends this process's use of the pins ([`Role::Run`]): under the loader lock, leaves
    /// the users, then removes the pins if a `d4c exec` loaded them, no daemon claimed
    /// them and nobody else uses them; else leaves them enforcing for the others.
    pub fn release(self) -> Result<Released, BpfError> {
        let dir = self.pin_dir.clone();
        let _loading = lock::loader(&dir, &self.config.holder, self.config.lock_wait)?;
        drop(self);
        if !fs::exec_owned(&dir) {
            return Ok(Released::NodeOwned);
        }
        let users = lock::other_users(&dir)?;
        if !users.is_empty() {
            return Ok(Released::InUse(users));
        }
        fs::remove_pins(&dir)?;
        Ok(Released::Unloaded)
    }

    /// Like [`Enforcer::unload`] without an enforcer (`d4c unload`), returning once the
    /// kernel has freed the programs ([`super::unload`]).
    pub fn unload_pinned(pin_dir: &Path) -> Result<(), BpfError> {
        super::unload::unload(pin_dir, super::unload::FREE_WAIT)
    }
}

/// The kernel's struct offsets for the programs, as this kernel and `mode` need them.
fn offsets(btf: &Btf, mode: AttachMode) -> Result<d4c_common::KernelOffsets, BpfError> {
    let mut offsets = btf.kernel_offsets()?;
    offsets.fields[OFF_MMAP_PROT_ARG] = mode.mmap_prot_arg();
    offsets.fields[OFF_OVL_UPPER] =
        super::overlay::upper_offset(btf, Path::new(paths::OVERLAY_BTF))?;
    offsets.fields[OFF_BACKING_USER_PATH] = backing_user_path(btf)?;
    Ok(offsets)
}

/// Loads the object with the maps pinned in `config.pin_dir` (aya reuses a pinned map of
/// the same name, and pins the ones it creates), then attaches the programs `want`
/// selects and pins their links. Returns the loaded object (its maps) and the names of
/// the programs attached.
pub(super) fn attach_programs(
    config: &Config,
    btf: &Btf,
    mode: AttachMode,
    want: impl Fn(&Program) -> bool,
) -> Result<(Ebpf, Vec<&'static str>), BpfError> {
    let offsets = offsets(btf, mode)?;
    let aya_btf = aya::Btf::parse_file(&config.btf, aya::Endianness::default()).map_err(|e| {
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
        .override_global(GLOBAL_OFFSETS, &offsets, true);
    if config.noop {
        loader.override_global(GLOBAL_NOOP, &noop, true);
    }
    if let Some(bytes) = config.ring_bytes {
        loader.map_max_entries(MAP_EVENTS, bytes);
    }
    let mut ebpf: Ebpf = loader.load(OBJECT).map_err(|source| BpfError::Object {
        source: Box::new(source),
    })?;
    // fmod_ret hooks are loaded here, from the object relocated against aya's maps
    // (after the tracepoints, whose load gives the object's BTF to the kernel).
    let mut relocated: Option<Relocated> = None;
    let mut attached = Vec::new();
    for p in &PROGRAMS {
        let function = mode.kernel_function(p.attach);
        if p.kind == ProgramKind::Lsm && p.optional && !btf.has_func(&function) {
            continue;
        }
        if !want(p) {
            continue;
        }
        let path = program_pin(&config.pin_dir, p);
        if p.kind == ProgramKind::Lsm && mode == AttachMode::FmodRet {
            if relocated.is_none() {
                relocated = Some(relocate(&mut ebpf)?);
            }
            let id = btf.func_id(&function).ok_or_else(|| BpfError::FmodRet {
                program: p.name,
                function: function.clone(),
                reason: "the kernel's BTF has no such function".into(),
                verifier_log: String::new(),
            })?;
            let Some(relocated) = &relocated else {
                continue;
            };
            relocated.attach_and_pin(p.name, &function, id, &path)?;
            attached.push(p.name);
            continue;
        }
        let link = attach(&mut ebpf, p, &aya_btf)?;
        let pinned: PinnedLink = link.pin(&path).map_err(|source| BpfError::Pin {
            path: path.clone(),
            source: Box::new(source),
        })?;
        drop(pinned);
        attached.push(p.name);
    }
    Ok((ebpf, attached))
}

/// The object relocated against `ebpf`'s maps, for the `fmod_ret` programs. The object's
/// BTF comes from a loaded tracepoint (loaded here when none is).
fn relocate(ebpf: &mut Ebpf) -> Result<Relocated, BpfError> {
    let first = PROGRAMS
        .iter()
        .find(|t| t.kind == ProgramKind::RawTracepoint)
        .map_or(PROGRAMS[0].name, |t| t.name);
    if ebpf.program(first).is_some_and(|pr| pr.info().is_err()) {
        load_only(ebpf, first)?;
    }
    Relocated::new(OBJECT, ebpf, first)
}

/// Loads (without attaching) the raw tracepoint program `name`: its load gives the
/// object's BTF to the kernel, which the `fmod_ret` programs need.
fn load_only(ebpf: &mut Ebpf, name: &'static str) -> Result<(), BpfError> {
    let prog = ebpf
        .program_mut(name)
        .ok_or(BpfError::NoProgram { program: name })?;
    let prog: &mut RawTracePoint = prog.try_into().map_err(|source| BpfError::Attach {
        program: name,
        source: Box::new(source),
    })?;
    let p = PROGRAMS
        .iter()
        .find(|p| p.name == name)
        .ok_or(BpfError::NoProgram { program: name })?;
    prog.load().map_err(|source| load_error(p, source))
}

/// Every map pinned in `pin_dir`: name, descriptor and id.
fn pinned_maps(pin_dir: &Path) -> Result<Vec<(String, OwnedFd, u32)>, BpfError> {
    use std::os::fd::AsFd;
    let dir = maps_dir(pin_dir);
    let entries = std::fs::read_dir(&dir).map_err(|source| BpfError::Io {
        what: "list",
        path: dir.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let io = |source| BpfError::Io {
            what: "open pinned map",
            path: path.clone(),
            source,
        };
        let fd = sys::obj_get(&path).map_err(io)?;
        let (id, _) = sys::map_info(fd.as_fd()).map_err(io)?;
        out.push((e.file_name().to_string_lossy().into_owned(), fd, id));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Wraps a pinned map's data in the `Map` variant its name implies.
fn wrap(name: &str, md: MapData) -> Map {
    match name {
        MAP_FILE_RULES | MAP_EXE_RULES => Map::LpmTrie(md),
        MAP_COUNTERS => Map::PerCpuArray(md),
        MAP_BUDGETS => Map::LruHashMap(md),
        MAP_SETTINGS => Map::Array(md),
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
