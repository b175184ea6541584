//! A writer for "newc" cpio archives, the format the kernel unpacks as an initramfs.
//!
//! Writing the archive ourselves (rather than staging a directory for `cpio -H newc`)
//! lets us add device nodes and root-owned files without privileges, and stream large
//! `--with` files straight from their source.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Streams entries into a newc archive; call [`CpioWriter::finish`] to write the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    offset: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            next_ino: 1,
            offset: 0,
        }
    }

    /// A directory (parents are not created implicitly: add them first).
    pub fn dir(&mut self, path: impl AsRef<Path>, perm: u32) -> io::Result<()> {
        self.header(path.as_ref(), S_IFDIR | perm, 2, 0, (0, 0), 0)
    }

    /// A regular file with the given contents.
    pub fn file_bytes(&mut self, path: impl AsRef<Path>, perm: u32, data: &[u8]) -> io::Result<()> {
        let size = archive_size(data.len() as u64)?;
        self.header(path.as_ref(), S_IFREG | perm, 1, size, (0, 0), 0)?;
        self.write(data)?;
        self.pad()
    }

    /// A regular file copied (streamed) from `src`; keeps its mtime.
    pub fn file_from(&mut self, path: impl AsRef<Path>, perm: u32, src: &Path) -> io::Result<()> {
        let file = File::open(src)?;
        let meta = file.metadata()?;
        let size = archive_size(meta.len())?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        self.header(path.as_ref(), S_IFREG | perm, 1, size, (0, 0), mtime)?;
        let copied = io::copy(&mut file.take(meta.len()), &mut self.out)?;
        if copied != meta.len() {
            return Err(io::Error::other(format!(
                "{} shrank while being archived",
                src.display()
            )));
        }
        self.offset += copied;
        self.pad()
    }

    /// A symbolic link pointing at `target`.
    pub fn symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) -> io::Result<()> {
        let target = target.as_ref().as_os_str().as_bytes();
        let size = archive_size(target.len() as u64)?;
        self.header(path.as_ref(), S_IFLNK | 0o777, 1, size, (0, 0), 0)?;
        self.write(target)?;
        self.pad()
    }

    /// A character device node.
    pub fn char_dev(
        &mut self,
        path: impl AsRef<Path>,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.header(path.as_ref(), S_IFCHR | perm, 1, 0, (major, minor), 0)
    }

    /// Writes the trailer, pads to a 512-byte block and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(Path::new("TRAILER!!!"), 0, 1, 0, (0, 0), 0)?;
        let rem = (self.offset % 512) as usize;
        if rem != 0 {
            self.write(&[0; 512][..512 - rem])?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        path: &Path,
        mode: u32,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
        mtime: u32,
    ) -> io::Result<()> {
        let name = path.as_os_str().as_bytes();
        let name = name.strip_prefix(b"/").unwrap_or(name);
        if name.is_empty() || name.contains(&0) {
            return Err(io::Error::other(format!(
                "invalid archive path {}",
                path.display()
            )));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let namesize = u32::try_from(name.len() + 1).map_err(io::Error::other)?;
        let fields = [
            ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let header: String = std::iter::once("070701".to_owned())
            .chain(fields.iter().map(|f| format!("{f:08x}")))
            .collect();
        self.write(header.as_bytes())?;
        self.write(name)?;
        self.write(&[0])?;
        self.pad()
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.offset += data.len() as u64;
        Ok(())
    }

    /// newc aligns every header and every file body to 4 bytes.
    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.offset % 4) as usize;
        if rem == 0 {
            return Ok(());
        }
        self.write(&[0; 4][..4 - rem])
    }
}

fn archive_size(len: u64) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::other("newc cpio cannot hold files of 4 GiB or more"))
}

#[cfg(test)]
mod tests {
    use super::CpioWriter;

    #[test]
    fn entries_are_aligned_and_terminated() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/bin", 0o755).unwrap();
        w.file_bytes("bin/hello", 0o644, b"hi\n").unwrap();
        w.symlink("/bin/sh", "busybox").unwrap();
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % 512, 0);
        let text = String::from_utf8_lossy(&out);
        // Header of "bin": magic, ino 1, mode 040755, nlink 2, namesize 4 ("bin\0").
        assert!(text.starts_with("07070100000001000041ed0000000000000000000000020000000000000000"));
        assert_eq!(&out[110..114], b"bin\0");
        // The file body follows its name, padded to 4 bytes.
        let body = text.find("bin/hello\0").unwrap() + "bin/hello\0".len();
        let body = body + (4 - body % 4) % 4;
        assert_eq!(&out[body..body + 3], b"hi\n");
        assert!(text.contains("TRAILER!!!\0"));
        // Device numbers of /dev/console are in the rdevmajor/rdevminor fields.
        let dev = text.find("dev/console").unwrap() - 110;
        assert_eq!(&text[dev + 78..dev + 94], "0000000500000001");
    }

    #[test]
    fn rejects_empty_names() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.dir("/", 0o755).is_err());
    }
}
