//! Paths inside the bundle. Every path the index or SHA256SUMS names is
//! relative to the bundle root, written in normal form (`a/b/c`: no leading
//! `/`, no `.` or `..`, no empty segment, no backslash), and — after symlinks
//! are followed — still inside the root. A path that fails any of this is
//! refused before any file is opened through it.

use std::io;
use std::path::{Path, PathBuf};

/// Why a relative path was refused, in words for an error detail.
pub fn lexical_problem(rel: &str) -> Option<&'static str> {
    if rel.is_empty() {
        return Some("is empty");
    }
    if rel.starts_with('/') {
        return Some("is absolute");
    }
    if rel.contains('\\') {
        return Some("contains a backslash");
    }
    if rel.contains('\0') {
        return Some("contains a NUL byte");
    }
    for segment in rel.split('/') {
        match segment {
            ".." => return Some("contains `..` (leaves the bundle)"),
            "." => return Some("contains `.` (not normalised)"),
            "" => return Some("contains an empty segment (not normalised)"),
            _ => {}
        }
    }
    None
}

/// Checks `rel` and answers its absolute path under `root` (which must be
/// canonical). Existing prefixes are resolved, so a symlink anywhere on the
/// way that points outside the root is refused even when the final file does
/// not exist yet.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, String> {
    if let Some(problem) = lexical_problem(rel) {
        return Err(format!("{rel:?} {problem}"));
    }
    let full = root.join(rel);
    let mut prefix = root.to_path_buf();
    for segment in rel.split('/') {
        prefix.push(segment);
        match std::fs::symlink_metadata(&prefix) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(format!("{rel:?}: {e}")),
        }
        match std::fs::canonicalize(&prefix) {
            Ok(real) if real.starts_with(root) => {}
            Ok(real) => return Err(format!("{rel:?} leaves the bundle through a symlink (to {})", real.display())),
            // A dangling symlink: where it points does not exist.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let target = std::fs::read_link(&prefix).map(|t| t.display().to_string()).unwrap_or_default();
                return Err(format!("{rel:?} goes through a dangling symlink (to {target})"));
            }
            Err(e) => return Err(format!("{rel:?}: {e}")),
        }
    }
    Ok(full)
}

/// Every file under `root` except those under `exclude` (a relative
/// directory), as sorted relative paths with `/` separators. Symlinks are
/// listed, not followed: a link is a file the checksum list must cover.
pub fn walk(root: &Path, exclude: &str) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{}: file name is not UTF-8", entry.path().display())))?;
            let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            if rel == exclude {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push((entry.path(), rel));
            } else {
                out.push(rel);
            }
        }
    }
    // Byte order, as `LC_ALL=C sort` would give.
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_relative_paths_pass_the_lexical_check() {
        assert_eq!(lexical_problem("bin/linux-amd64/runc"), None);
        assert!(lexical_problem("../etc/passwd").is_some());
        assert!(lexical_problem("bin/../../etc/passwd").is_some());
        assert!(lexical_problem("/etc/passwd").is_some());
        assert!(lexical_problem("./bin/runc").is_some());
        assert!(lexical_problem("bin//runc").is_some());
        assert!(lexical_problem("bin/").is_some());
        assert!(lexical_problem("").is_some());
    }

    #[test]
    fn a_symlinked_directory_that_leaves_the_root_is_refused_even_for_missing_files() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(root.path()).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("bin")).unwrap();
        let err = resolve(&root, "bin/not-there").unwrap_err();
        assert!(err.contains("leaves the bundle"), "{err}");
        std::fs::create_dir(root.join("images")).unwrap();
        assert_eq!(resolve(&root, "images/x.tar").unwrap(), root.join("images/x.tar"));
    }
}
