//! Streaming sha256 of files and the `sha256sum` list format
//! (`<64 lower-case hex>  <path>`, one line per file, sorted by path).

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::Progress;

/// Read size: large enough that a 500 MB bundle is a few dozen syscalls per
/// file, small enough to keep the memory of a verify flat.
pub const BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Hashes files through one reusable buffer, reporting progress per chunk.
pub struct Hasher<'a> {
    buffer: Vec<u8>,
    progress: &'a dyn Fn(Progress),
    /// Files hashed so far.
    pub files: usize,
    /// Bytes hashed so far.
    pub bytes: u64,
}

impl<'a> Hasher<'a> {
    pub fn new(progress: &'a dyn Fn(Progress)) -> Self {
        Hasher { buffer: vec![0; BUFFER_BYTES], progress, files: 0, bytes: 0 }
    }

    /// sha256 (lower-case hex) and size of the file at `abs`, named `rel` in progress events.
    pub fn hash(&mut self, abs: &Path, rel: &str) -> io::Result<(String, u64)> {
        let mut file = std::fs::File::open(abs)?;
        let total = file.metadata()?.len();
        let mut digest = Sha256::new();
        let mut done = 0u64;
        (self.progress)(Progress::File { path: rel.to_string(), done, total });
        loop {
            let n = match file.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            digest.update(&self.buffer[..n]);
            done += n as u64;
            (self.progress)(Progress::File { path: rel.to_string(), done, total: total.max(done) });
        }
        self.files += 1;
        self.bytes += done;
        Ok((hex::encode(digest.finalize()), done))
    }
}

/// One line of SHA256SUMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumLine {
    pub sha256: String,
    pub path: String,
}

/// Parses SHA256SUMS strictly: every non-empty line is `<hex>  <path>` (or
/// `<hex> *<path>`, sha256sum's binary marker), hex is 64 lower-case digits
/// and no path is listed twice. The error names the line.
pub fn parse(text: &str) -> Result<Vec<SumLine>, String> {
    let mut out: Vec<SumLine> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (hash, rest) = line.split_at_checked(64).ok_or_else(|| format!("line {n} is not `<sha256>  <path>`"))?;
        if !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("line {n}: {hash:?} is not 64 lower-case hex digits"));
        }
        let path =
            rest.strip_prefix("  ").or_else(|| rest.strip_prefix(" *")).ok_or_else(|| format!("line {n} is not `<sha256>  <path>`"))?;
        if !seen.insert(path.to_string()) {
            return Err(format!("line {n}: {path} is listed twice"));
        }
        out.push(SumLine { sha256: hash.to_string(), path: path.to_string() });
    }
    if out.is_empty() {
        return Err("lists no file".into());
    }
    Ok(out)
}

/// Renders lines in sha256sum's format, sorted by path (byte order).
pub fn render(lines: &[SumLine]) -> String {
    let mut sorted: Vec<&SumLine> = lines.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    sorted.iter().map(|l| format!("{}  {}\n", l.sha256, l.path)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9a87d5bcdd630ec420ec56a6c21b70aa6960edcefe1cf4bb181cee290bdd6b98";

    #[test]
    fn parse_and_render_round_trip_in_path_order() {
        let text = format!("{A}  bin/b\n{A} *bin/a\n");
        let lines = parse(&text).unwrap();
        assert_eq!(lines[1].path, "bin/a");
        assert_eq!(render(&lines), format!("{A}  bin/a\n{A}  bin/b\n"));
    }

    #[test]
    fn malformed_lines_are_named() {
        assert!(parse(&format!("{A} bin/a\n")).unwrap_err().contains("line 1"));
        assert!(parse(&format!("{A}  bin/a\n{}  bin/b\n", A.to_uppercase())).unwrap_err().contains("line 2"));
        assert!(parse(&format!("{A}  bin/a\n{A}  bin/a\n")).unwrap_err().contains("twice"));
        assert!(parse("\n").is_err());
    }

    #[test]
    fn hashing_streams_and_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        let events = std::cell::RefCell::new(Vec::new());
        let record = |p: Progress| events.borrow_mut().push(p);
        let mut hasher = Hasher::new(&record);
        let (sha, size) = hasher.hash(&file, "f").unwrap();
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(size, 3);
        assert_eq!(events.borrow().last(), Some(&Progress::File { path: "f".into(), done: 3, total: 3 }));
    }
}
