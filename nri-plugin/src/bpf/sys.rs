//! The `bpf()` commands d4c issues itself, beside aya: each command's part of
//! `union bpf_attr` as a typed `#[repr(C)]` struct (layouts checked against linux/bpf.h in
//! the tests), one syscall wrapper, and owned descriptors. Used where aya has no API: the
//! `fmod_ret` load and attach, reading what a pinned link runs (skipped runs, the
//! enforcement check) and pinning a descriptor.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

use aya_obj::generated::{bpf_link_info, bpf_map_info, bpf_prog_info};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `attach_btf_obj_fd`.
#[repr(C)]
#[derive(Default)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_btf_obj_fd: u32,
    pub _pad: u32,
}

/// The `BPF_RAW_TRACEPOINT_OPEN` part (a null name attaches a tracing program to its
/// target).
#[repr(C)]
#[derive(Default)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// The `BPF_*_GET_FD_BY_ID` part.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The `BPF_OBJ_PIN` / `BPF_OBJ_GET` part.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// The `BPF_OBJ_GET_INFO_BY_FD` part.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `bpf(cmd, attr)`; a non-negative result is a new descriptor or 0.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of `union bpf_attr` of the
    // size passed; every pointer in it points to memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd().cast_unsigned()
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `BPF_PROG_LOAD`: a new program.
pub fn prog_load(attr: &mut ProgLoadAttr) -> io::Result<OwnedFd> {
    sys_bpf(BPF_PROG_LOAD, attr).and_then(owned_fd)
}

/// `BPF_RAW_TRACEPOINT_OPEN` with no name: attaches a tracing program to its target.
pub fn attach_tracing(prog: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut attr = RawTpAttr {
        prog_fd: fd_u32(prog),
        ..RawTpAttr::default()
    };
    sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr).and_then(owned_fd)
}

/// `BPF_OBJ_PIN`: pins a map, program or link descriptor at `path` on bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd_u32(fd),
        file_flags: 0,
    };
    sys_bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// `BPF_OBJ_GET`: opens what is pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        ..ObjAttr::default()
    };
    sys_bpf(BPF_OBJ_GET, &mut attr).and_then(owned_fd)
}

fn fd_by_id(cmd: libc::c_long, id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        id,
        ..GetFdAttr::default()
    };
    sys_bpf(cmd, &mut attr).and_then(owned_fd)
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_PROG_GET_FD_BY_ID, id)
}

/// `BPF_MAP_GET_FD_BY_ID`.
pub fn map_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_MAP_GET_FD_BY_ID, id)
}

/// `BPF_BTF_GET_FD_BY_ID`.
pub fn btf_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_BTF_GET_FD_BY_ID, id)
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (its size is passed; the kernel fills what it
/// has and reads the pointers and counts set in it).
fn info_by_fd<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd),
        info_len: u32::try_from(std::mem::size_of::<T>()).unwrap_or(u32::MAX),
        info: std::ptr::from_mut(info) as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// A zeroed C info struct.
fn zeroed<T>() -> T {
    // SAFETY: only used for the kernel's info structs: integers and pointers-as-integers,
    // for which all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// What a link is: its id and the id of the program it runs.
pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<bpf_link_info> {
    let mut info: bpf_link_info = zeroed();
    info_by_fd(fd, &mut info)?;
    Ok(info)
}

/// What a program is, with the ids of the maps it uses (up to 64).
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<(bpf_prog_info, Vec<u32>)> {
    let mut ids = [0u32; 64];
    let mut info: bpf_prog_info = zeroed();
    info.nr_map_ids = u32::try_from(ids.len()).unwrap_or(0);
    info.map_ids = ids.as_mut_ptr() as u64;
    info_by_fd(fd, &mut info)?;
    let n = (info.nr_map_ids as usize).min(ids.len());
    Ok((info, ids[..n].to_vec()))
}

/// What a map is: its id and its name as the kernel keeps it (at most 15 bytes).
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<(u32, String)> {
    let mut info: bpf_map_info = zeroed();
    info_by_fd(fd, &mut info)?;
    let name: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.cast_unsigned())
        .collect();
    Ok((info.id, String::from_utf8_lossy(&name).into_owned()))
}

/// A map's `max_entries` (a ring buffer's size in bytes).
pub fn map_max_entries(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info: bpf_map_info = zeroed();
    info_by_fd(fd, &mut info)?;
    Ok(info.max_entries)
}

/// The name the kernel keeps for an object named `name` (`BPF_OBJ_NAME_LEN` - 1 bytes).
#[must_use]
pub fn kernel_name(name: &str) -> &str {
    let end = name
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&e| e <= 15)
        .last()
        .unwrap_or(0);
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout `union bpf_attr` has for these commands (offsets from linux/bpf.h).
    #[test]
    fn attr_layouts_match_the_kernel_abi() {
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, line_info), 96);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_btf_obj_fd), 112);
        assert_eq!(std::mem::offset_of!(RawTpAttr, prog_fd), 8);
        assert_eq!(std::mem::offset_of!(ObjAttr, bpf_fd), 8);
        assert_eq!(std::mem::offset_of!(ObjAttr, file_flags), 12);
        assert_eq!(std::mem::offset_of!(GetFdAttr, open_flags), 8);
        assert_eq!(std::mem::offset_of!(InfoAttr, info_len), 4);
        assert_eq!(std::mem::offset_of!(InfoAttr, info), 8);
    }

    #[test]
    fn kernel_names_keep_fifteen_bytes() {
        assert_eq!(kernel_name("D4C_CONTAINERS"), "D4C_CONTAINERS");
        assert_eq!(kernel_name("D4C_PROC_DECISIONS"), "D4C_PROC_DECISI");
        assert_eq!(kernel_name("D4C_EXEC_EVENTS_1"), "D4C_EXEC_EVENTS");
        assert_eq!(kernel_name(""), "");
    }
}
