//! The guest's initramfs: a cached base (busybox and the init scripts) followed by a
//! per-run archive (modules, d4c and its libraries, `--with` files, the command).
//!
//! The kernel unpacks concatenated newc archives in order, so a run only writes the
//! small second part.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::binaries::{self, Library};
use super::cache::Cache;
use super::cpio::CpioWriter;
use super::kernel::Kernel;
use super::progress;

const STAGE1: &str = include_str!("guest/init.sh");
const STAGE2: &str = include_str!("guest/stage2.sh");
/// Bump when the base layout changes in a way the hash below does not see.
const BASE_LAYOUT: u32 = 1;

/// Where `--with` paths land in the guest.
pub const WITH_DIR: &str = "/opt/with";
const D4C_PATH: &str = "/usr/local/bin/d4c";

/// What one run puts into the guest.
pub struct RunFiles<'a> {
    pub d4c: &'a Path,
    pub with: &'a [PathBuf],
    pub argv: &'a [OsString],
    pub env: &'a [(OsString, OsString)],
    pub nonce: &'a str,
}

/// The cached base archive for this busybox and these scripts, built if missing.
/// The caller holds the cache lock.
pub fn base(cache: &Cache) -> Result<PathBuf> {
    let busybox = binaries::busybox()?;
    let busybox_bytes = fs::read(&busybox)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (BASE_LAYOUT, &busybox_bytes, STAGE1, STAGE2).hash(&mut hasher);
    let path = cache
        .dir("initramfs")
        .join(format!("base-{:016x}.cpio", hasher.finish()));
    if path.exists() {
        return Ok(path);
    }
    progress("building the initramfs base (busybox, init scripts)");
    let tmp = cache.temp_dir("initramfs")?;
    let tmp_file = tmp.path().join("base.cpio");
    let mut w = CpioWriter::new(BufWriter::new(File::create(&tmp_file)?));
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/local",
        "usr/local/bin",
        "usr/local/sbin",
        "lib",
        "lib64",
        "etc",
        "dev",
        "proc",
        "sys",
        "run",
        "root",
        "opt",
        "newroot",
        "d4c-vm",
    ] {
        w.dir(dir, 0o755)?;
    }
    w.dir("tmp", 0o1777)?;
    w.dir(WITH_DIR, 0o755)?;
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.char_dev("dev/null", 0o666, 1, 3)?;
    w.file_bytes("bin/busybox", 0o755, &busybox_bytes)?;
    for applet in binaries::busybox_applets(&busybox)? {
        if applet != "bin/busybox" {
            w.symlink(&applet, "/bin/busybox")?;
        }
    }
    w.file_bytes("init", 0o755, STAGE1.as_bytes())?;
    w.file_bytes("d4c-vm/stage2", 0o755, STAGE2.as_bytes())?;
    w.file_bytes(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    w.file_bytes(
        "etc/group",
        0o644,
        b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )?;
    w.file_bytes("etc/hostname", 0o644, b"d4c-vm\n")?;
    w.finish()?
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    fs::rename(&tmp_file, &path)?;
    Ok(path)
}

/// Writes `out`: the base archive followed by this run's files.
pub fn write_run(out: &Path, base: &Path, kernel: &Kernel, run: &RunFiles) -> Result<()> {
    let mut file = BufWriter::new(File::create(out)?);
    std::io::copy(&mut File::open(base)?, &mut file)?;
    let mut w = Tree {
        cpio: CpioWriter::new(file),
        dirs: BTreeSet::new(),
    };

    w.dir(Path::new("/d4c-vm/modules"))?;
    let mut order = Vec::new();
    for module in kernel.modules()? {
        let name = module.file_name().context("module without a name")?;
        w.file(&Path::new("/d4c-vm/modules").join(name), 0o644, &module)?;
        order.extend_from_slice(name.as_bytes());
        order.push(b'\n');
    }
    w.bytes(Path::new("/d4c-vm/modules/order"), 0o644, &order)?;

    let mut libraries: BTreeMap<PathBuf, Library> = BTreeMap::new();
    for lib in binaries::shared_libraries(run.d4c)? {
        libraries.insert(lib.guest_path.clone(), lib);
    }
    w.file(Path::new(D4C_PATH), 0o755, run.d4c)?;
    let mut executables = Vec::new();
    let mut names = BTreeSet::new();
    for path in run.with {
        // `--with .` or `--with ..` are named after the directory they mean.
        let name = path.file_name().map(ToOwned::to_owned).or_else(|| {
            fs::canonicalize(path)
                .ok()?
                .file_name()
                .map(ToOwned::to_owned)
        });
        let Some(name) = name else {
            bail!("--with {}: the path has no base name", path.display())
        };
        if !names.insert(name.clone()) {
            bail!("--with: two paths named {}", name.to_string_lossy());
        }
        w.copy_tree(path, &Path::new(WITH_DIR).join(name), &mut executables)
            .with_context(|| format!("cannot copy --with {}", path.display()))?;
    }
    for exe in &executables {
        // Best effort for --with executables: they may be plugins or need libraries the
        // test brings itself.
        match binaries::shared_libraries(exe) {
            Ok(libs) => {
                for lib in libs {
                    libraries.entry(lib.guest_path.clone()).or_insert(lib);
                }
            }
            Err(err) => progress(format_args!("warning: --with {}: {err:#}", exe.display())),
        }
    }
    for lib in libraries.values() {
        w.file(&lib.guest_path, 0o755, &lib.host_file)?;
    }

    w.bytes(Path::new("/d4c-vm/argv"), 0o644, &argv_script(run.argv))?;
    w.bytes(Path::new("/d4c-vm/env"), 0o644, &env_script(run.env))?;
    w.bytes(Path::new("/d4c-vm/nonce"), 0o644, run.nonce.as_bytes())?;
    // Last: stage 1 checks that the kernel unpacked everything.
    w.bytes(Path::new("/d4c-vm/complete"), 0o644, b"")?;
    w.cpio
        .finish()?
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    Ok(())
}

/// A cpio writer that adds missing parent directories.
struct Tree<W: Write> {
    cpio: CpioWriter<W>,
    dirs: BTreeSet<PathBuf>,
}

impl<W: Write> Tree<W> {
    fn dir(&mut self, path: &Path) -> Result<()> {
        self.parents(path)?;
        if self.dirs.insert(path.to_owned()) {
            self.cpio.dir(path, 0o755)?;
        }
        Ok(())
    }

    fn parents(&mut self, path: &Path) -> Result<()> {
        match path.parent() {
            Some(parent) if parent != Path::new("/") && !parent.as_os_str().is_empty() => {
                self.dir(parent)
            }
            _ => Ok(()),
        }
    }

    fn file(&mut self, path: &Path, perm: u32, src: &Path) -> Result<()> {
        self.parents(path)?;
        self.cpio
            .file_from(path, perm, src)
            .with_context(|| format!("cannot archive {}", src.display()))
    }

    fn bytes(&mut self, path: &Path, perm: u32, data: &[u8]) -> Result<()> {
        self.parents(path)?;
        Ok(self.cpio.file_bytes(path, perm, data)?)
    }

    /// Copies a file, or a directory recursively (symlinks inside kept as links), to
    /// `dest`, noting ELF executables in `executables`.
    fn copy_tree(&mut self, src: &Path, dest: &Path, executables: &mut Vec<PathBuf>) -> Result<()> {
        let top = fs::metadata(src).with_context(|| format!("cannot read {}", src.display()))?;
        let mut pending = vec![(src.to_owned(), dest.to_owned(), top)];
        while let Some((src, dest, meta)) = pending.pop() {
            let perm = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                self.parents(&dest)?;
                self.cpio.dir(&dest, perm)?;
                self.dirs.insert(dest.clone());
                let mut entries: Vec<_> = fs::read_dir(&src)?.collect::<Result<_, _>>()?;
                entries.sort_by_key(fs::DirEntry::file_name);
                for entry in entries.into_iter().rev() {
                    pending.push((
                        entry.path(),
                        dest.join(entry.file_name()),
                        fs::symlink_metadata(entry.path())?,
                    ));
                }
            } else if meta.is_symlink() {
                self.parents(&dest)?;
                self.cpio.symlink(&dest, fs::read_link(&src)?)?;
            } else if meta.is_file() {
                if binaries::is_elf_executable(&src) {
                    executables.push(src.clone());
                }
                self.file(&dest, perm, &src)?;
            } else {
                progress(format_args!(
                    "warning: --with: skipping {} (not a file, directory or symlink)",
                    src.display()
                ));
            }
        }
        Ok(())
    }
}

/// `set -- 'arg' ...`: the argv, quoted for sh so that every byte survives.
fn argv_script(argv: &[OsString]) -> Vec<u8> {
    let mut script = b"set --".to_vec();
    for arg in argv {
        script.push(b' ');
        script.extend(sh_quote(arg.as_bytes()));
    }
    script.push(b'\n');
    script
}

/// `export NAME='value'` lines.
fn env_script(env: &[(OsString, OsString)]) -> Vec<u8> {
    let mut script = Vec::new();
    for (name, value) in env {
        script.extend(b"export ");
        script.extend(name.as_bytes());
        script.push(b'=');
        script.extend(sh_quote(value.as_bytes()));
        script.push(b'\n');
    }
    script
}

/// Single-quotes `s` for sh: inside '...' every byte is literal except `'` itself.
fn sh_quote(s: &[u8]) -> Vec<u8> {
    let mut quoted = vec![b'\''];
    for &b in s {
        if b == b'\'' {
            quoted.extend(b"'\\''");
        } else {
            quoted.push(b);
        }
    }
    quoted.push(b'\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_arguments_for_sh() {
        let argv: Vec<OsString> = ["sh", "-c", "echo \"$1\"; exit 3", "it's", ""]
            .map(OsString::from)
            .to_vec();
        assert_eq!(
            argv_script(&argv),
            b"set -- 'sh' '-c' 'echo \"$1\"; exit 3' 'it'\\''s' ''\n"
        );
        let env = [(OsString::from("RUST_LOG"), OsString::from("d4c=debug"))];
        assert_eq!(env_script(&env), b"export RUST_LOG='d4c=debug'\n");
    }

    #[test]
    fn quoted_arguments_round_trip_through_sh() {
        let argv: Vec<OsString> = [
            "printf",
            "[%s]\\n",
            "a b",
            "it's",
            "\"q\"",
            "$HOME `x` \\n",
            "line\nbreak",
            "",
            "*",
        ]
        .map(OsString::from)
        .to_vec();
        let mut script = argv_script(&argv);
        script.extend(b"exec \"$@\"\n");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(&script))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "[a b]\n[it's]\n[\"q\"]\n[$HOME `x` \\n]\n[line\nbreak]\n[]\n[*]\n"
        );
    }
}
