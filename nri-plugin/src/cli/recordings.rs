//! The recordings `d4c replay` and `d4c suggest` read: ECS NDJSON files (`-` for standard
//! input; a `.gz` name is decompressed), line by line with their numbers.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Calls `each(file, line number, line)` for every line of every file; stops at the first
/// file that cannot be read (its message).
pub fn each_line(files: &[String], mut each: impl FnMut(&str, usize, &str)) -> Result<(), String> {
    for f in files {
        let reader: Box<dyn Read> = if f == "-" {
            Box::new(std::io::stdin())
        } else {
            let file = std::fs::File::open(f).map_err(|e| format!("cannot read {f}: {e}"))?;
            if Path::new(f).extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::read::MultiGzDecoder::new(file))
            } else {
                Box::new(file)
            }
        };
        let mut lines = BufReader::with_capacity(1 << 20, reader);
        let mut buf = String::new();
        let mut n = 0;
        loop {
            buf.clear();
            match lines.read_line(&mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    n += 1;
                    each(f, n, &buf);
                }
                Err(e) => return Err(format!("{f}: line {}: {e}", n + 1)),
            }
        }
    }
    Ok(())
}
