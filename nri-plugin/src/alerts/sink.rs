//! Where documents go: NDJSON on stdout, and a file rotated by size. A write that fails
//! is counted (the metrics report it) and never stops enforcement.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One NDJSON destination.
pub trait Sink: Send {
    /// Writes one document (without the newline).
    fn write_line(&mut self, line: &str) -> io::Result<()>;
}

/// Standard output, flushed per document so a log collector sees it at once.
pub struct Stdout;

impl Sink for Stdout {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// A file that is rotated when it would exceed `max_bytes`: `FILE` becomes `FILE.1`,
/// `FILE.1` becomes `FILE.2`, and so on; `keep` rotated files are kept.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let mut f = RotatingFile {
            path: path.to_owned(),
            max_bytes,
            keep,
            file: None,
            size: 0,
        };
        f.reopen()?;
        Ok(f)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.reopen()
    }
}

impl Sink for RotatingFile {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        let f = self.file.as_mut().expect("reopened above");
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }
}

/// Every configured sink; failures are counted per document, not propagated.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
    pub written: u64,
    pub failed: u64,
}

impl Fanout {
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    pub fn write_line(&mut self, line: &str) {
        for s in &mut self.sinks {
            match s.write_line(line) {
                Ok(()) => self.written += 1,
                Err(e) => {
                    self.failed += 1;
                    tracing::warn!(error = %e, "an alert sink failed to take a document");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = std::env::temp_dir().join(format!("d4c-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.ndjson");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            f.write_line(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(20)))
                .unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let all = [
            read(path.clone()),
            read(dir.join("alerts.ndjson.1")),
            read(dir.join("alerts.ndjson.2")),
        ];
        assert!(all.iter().all(|s| s.len() <= 100), "{all:?}");
        assert!(all[0].contains("\"n\":9"));
        assert!(!dir.join("alerts.ndjson.3").exists());
        let lines: usize = all.iter().map(|s| s.lines().count()).sum();
        assert!(lines >= 6, "recent documents are kept: {lines}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
