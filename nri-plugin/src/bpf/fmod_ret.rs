//! The hooks as `fmod_ret` programs, which aya 0.14 cannot load: the embedded object's
//! programs are relocated (aya-obj) against the maps aya created, then loaded as
//! `BPF_PROG_TYPE_TRACING` with `BPF_MODIFY_RETURN` on `security_<hook>`, attached with
//! `BPF_RAW_TRACEPOINT_OPEN` and the link pinned with `BPF_OBJ_PIN`, as aya pins LSM links.
//!
//! The context of such a program is the function's arguments followed by the return value,
//! the layout an LSM program sees on `bpf_lsm_<hook>`: one bytecode serves both modes. A
//! nonzero return skips `security_<hook>` and becomes its result, so -EPERM refuses the
//! operation before it takes effect, as an LSM deny does.

use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd, RawFd},
    path::Path,
};

use aya::{maps::Map, Ebpf};
use aya_obj::Object;

use super::{
    attach_mode::AttachMode,
    error::BpfError,
    sys::{self, ProgLoadAttr},
};

const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_MODIFY_RETURN: u32 = 26;
const BPF_PROG_TYPE_LSM: u32 = 29;
const BPF_LSM_MAC: u32 = 27;
/// Verifier log size for a refused program (the log is only asked for on a retry).
const LOG_SIZE: usize = 1 << 22;

/// The descriptor of one of aya's maps (the kinds the object defines).
fn map_fd(map: &Map) -> Option<RawFd> {
    let (Map::Array(data)
    | Map::HashMap(data)
    | Map::LpmTrie(data)
    | Map::PerCpuArray(data)
    | Map::RingBuf(data)
    | Map::LruHashMap(data)
    | Map::PerCpuHashMap(data)) = map
    else {
        return None;
    };
    Some(data.fd().as_fd().as_raw_fd())
}

/// The object's programs, relocated against the maps of a loaded [`Ebpf`], and the
/// object's BTF as the kernel holds it (the verifier needs the programs' function info
/// for their subprograms, e.g. `bpf_loop` callbacks).
pub struct Relocated {
    obj: Object,
    btf: OwnedFd,
}

/// The object's BTF that aya loaded into the kernel with `program` (already loaded).
fn object_btf(ebpf: &Ebpf, program: &str) -> Result<OwnedFd, BpfError> {
    let id = ebpf
        .program(program)
        .and_then(|p| p.info().ok())
        .and_then(|i| i.btf_id())
        .ok_or_else(|| object_error("the object's BTF", format!("not loaded with {program}")))?;
    sys::btf_by_id(id).map_err(|e| object_error("the object's BTF (BPF_BTF_GET_FD_BY_ID)", e))
}

/// Why a relocation failed, as one line.
fn object_error(what: &str, e: impl std::fmt::Display) -> BpfError {
    BpfError::FmodRet {
        program: "-",
        function: String::new(),
        reason: format!("{what}: {e}"),
        verifier_log: String::new(),
    }
}

impl Relocated {
    /// Parses `object` again and points its map references at `ebpf`'s maps (which hold
    /// the loader's globals), then links each program's subprograms in. `loaded` names a
    /// program aya has loaded already, whose BTF is the object's.
    pub fn new(object: &[u8], ebpf: &Ebpf, loaded: &str) -> Result<Self, BpfError> {
        let btf = object_btf(ebpf, loaded)?;
        let mut obj = Object::parse(object).map_err(|e| object_error("parsing the object", e))?;
        let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        let defs = obj.maps.clone();
        let mut fds = Vec::new();
        for (name, map) in ebpf.maps() {
            let def = defs.get(name).ok_or_else(|| {
                object_error("relocating maps", format!("no definition of map {name}"))
            })?;
            let fd = map_fd(map).ok_or_else(|| {
                object_error(
                    "relocating maps",
                    format!("map {name} is of an unexpected kind"),
                )
            })?;
            fds.push((name.to_owned(), fd, def));
        }
        obj.relocate_maps(
            fds.iter().map(|(n, fd, def)| (n.as_str(), *fd, *def)),
            &text_sections,
        )
        .map_err(|e| object_error("relocating maps", e))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| object_error("linking subprograms", e))?;
        Ok(Relocated { obj, btf })
    }

    /// Loads `program` as `fmod_ret` on the kernel function whose BTF id is `btf_id`
    /// (`function` names it in errors), attaches it and pins the link at `pin`.
    pub fn attach_and_pin(
        &self,
        program: &'static str,
        function: &str,
        btf_id: u32,
        pin: &Path,
    ) -> Result<(), BpfError> {
        let fail = |reason: String, verifier_log: String| BpfError::FmodRet {
            program,
            function: function.to_owned(),
            reason,
            verifier_log,
        };
        let prog = self
            .obj
            .programs
            .get(program)
            .ok_or(BpfError::NoProgram { program })?;
        let function = self
            .obj
            .functions
            .get(&prog.function_key())
            .ok_or(BpfError::NoProgram { program })?;
        let load = |log: Option<&mut Vec<u8>>| {
            load(
                &Load {
                    name: program,
                    function,
                    license: &prog.license,
                    btf: &self.btf,
                    attach_btf_id: btf_id,
                },
                log,
            )
        };
        let prog_fd = if let Ok(fd) = load(None) {
            fd
        } else {
            // Again with the verifier's log, which says why.
            let mut log = vec![0u8; LOG_SIZE];
            load(Some(&mut log)).map_err(|e| {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]).trim().to_owned();
                fail(format!("BPF_PROG_LOAD: {e}"), text)
            })?
        };
        let link = sys::attach_tracing(prog_fd.as_fd()).map_err(|e| {
            fail(
                format!("attaching (BPF_RAW_TRACEPOINT_OPEN): {e}"),
                String::new(),
            )
        })?;
        sys::obj_pin(link.as_fd(), pin).map_err(|e| BpfError::PinFd {
            path: pin.to_owned(),
            source: e,
        })
    }
}

/// What one `BPF_PROG_LOAD` takes.
struct Load<'a> {
    name: &'a str,
    function: &'a aya_obj::Function,
    license: &'a CString,
    btf: &'a OwnedFd,
    attach_btf_id: u32,
}

/// One `BPF_PROG_LOAD` of a tracing program with `BPF_MODIFY_RETURN`.
fn load(l: &Load<'_>, log: Option<&mut Vec<u8>>) -> io::Result<OwnedFd> {
    let too_big = || io::Error::from(io::ErrorKind::InvalidInput);
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(l.name.bytes().take(15)) {
        *d = s;
    }
    let f = l.function;
    let func_info = &f.func_info.func_info;
    let line_info = &f.line_info.line_info;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: u32::try_from(f.instructions.len()).map_err(|_| too_big())?,
        insns: f.instructions.as_ptr() as u64,
        license: l.license.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_MODIFY_RETURN,
        prog_btf_fd: u32::try_from(l.btf.as_raw_fd()).map_err(|_| too_big())?,
        func_info_rec_size: u32::try_from(f.func_info_rec_size).map_err(|_| too_big())?,
        func_info: func_info.as_ptr() as u64,
        func_info_cnt: u32::try_from(func_info.len()).map_err(|_| too_big())?,
        line_info_rec_size: u32::try_from(f.line_info_rec_size).map_err(|_| too_big())?,
        line_info: line_info.as_ptr() as u64,
        line_info_cnt: u32::try_from(line_info.len()).map_err(|_| too_big())?,
        attach_btf_id: l.attach_btf_id,
        ..ProgLoadAttr::default()
    };
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    sys::prog_load(&mut attr)
}

/// Loads (and drops) `r0 = 0; exit` as a hook of `mode` on the function whose BTF id is
/// `btf_id`: whether the kernel accepts such programs at all. Nothing is attached.
pub(super) fn load_minimal(mode: AttachMode, btf_id: u32) -> io::Result<()> {
    // BPF_MOV64_IMM(R0, 0), BPF_EXIT_INSN()
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let (prog_type, expected_attach_type) = match mode {
        AttachMode::Lsm => (BPF_PROG_TYPE_LSM, BPF_LSM_MAC),
        AttachMode::FmodRet => (BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN),
    };
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type,
        attach_btf_id: btf_id,
        ..ProgLoadAttr::default()
    };
    sys::prog_load(&mut attr).map(drop)
}
