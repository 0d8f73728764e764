//! The offline install bundle (SPEC §7): the `script/` directory with
//! `manifests/index.yaml`, binaries, image archives, templates, hooks, the
//! scripts hooks source, and a signed `checksums/SHA256SUMS`.
//!
//! - [`Bundle::load`] reads the index and checks its schema and every path it
//!   names (relative, normalised, inside the bundle even through symlinks).
//! - [`Bundle::verify`] checks, in this order: signature over SHA256SUMS (and
//!   the trusted key), every SHA256SUMS line against its file, that no file is
//!   left out, every index artifact (present, sha256, sizeBytes), the hooks,
//!   and the compatibility matrix.
//! - [`fill_index`] and [`sign`] turn a directory the user assembled into a
//!   bundle that verifies.
//!
//! Every failure is a dictionary error (32008–32012) whose detail names the
//! file or field.

mod fill;
pub mod index;
mod paths;
mod signing;
mod sums;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use opspilot_domain::{DomainError, ErrorCode};

pub use fill::{fill_index, IndexReport};
pub use index::{Artifact, Check, ChecksumsRef, Compatibility, Hook, Index, OsArch, Runtime, Section, SignatureRef};
pub use signing::{encode_public_key, parse_public_key, sign};
pub use verify::{SUPPORTED_ARCH, SUPPORTED_K8S_MINORS, SUPPORTED_OS};

/// A bundle whose index was read and schema-checked.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, canonical.
    pub root: PathBuf,
    pub index: Index,
}

/// What `verify` checks beyond the bundle itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Only this runtime's artifacts must be present; `None` = every runtime's.
    pub runtime: Option<String>,
    /// When set, the bundle's public key must be this one.
    pub trusted_public_key: Option<[u8; 32]>,
}

/// What a successful `verify` saw.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub bundle_version: String,
    /// The runtimes whose artifacts were checked.
    pub runtimes: Vec<String>,
    /// Files hashed (every file SHA256SUMS lists that is present).
    pub files_checked: usize,
    pub bytes_checked: u64,
    /// E.g. an optional artifact that is absent.
    pub warnings: Vec<String>,
    /// The signer's public key, base64 of the raw 32 bytes.
    pub signed_by: String,
}

/// Progress of the long parts (hashing), for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The hashing pass is about to read this many files and bytes.
    Plan { files: usize, bytes: u64 },
    /// `done` of `total` bytes of one file are hashed (sent at 0 and after every 8 MiB read).
    File { path: String, done: u64, total: u64 },
}

/// A file a host needs, as `files_of` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile {
    /// Relative to the bundle root (and to `OPS_SCRIPT_ROOT` on the host).
    pub rel_path: String,
    pub abs_path: PathBuf,
    /// Lower-case hex, from the index (artifacts) or SHA256SUMS (hooks without one, the index).
    pub sha256: String,
    pub size: u64,
    /// Permission bits to give the file on the host.
    pub mode: u32,
    pub required: bool,
}

impl Bundle {
    /// Reads `manifests/index.yaml` under `root` and checks its schema, the
    /// paths it names and that every hook file exists.
    pub fn load(root: &Path) -> Result<Bundle, DomainError> {
        Bundle::load_with(root, index::Hashes::Required)
    }

    pub(crate) fn load_with(root: &Path, hashes: index::Hashes) -> Result<Bundle, DomainError> {
        let manifest = |detail: String| DomainError::new(ErrorCode::ArtifactManifestMissing, detail);
        let root = std::fs::canonicalize(root).map_err(|e| manifest(format!("bundle directory {}: {e}", root.display())))?;
        if !root.is_dir() {
            return Err(manifest(format!("bundle directory {}: not a directory", root.display())));
        }
        let index_path = paths::resolve(&root, index::INDEX_PATH).map_err(|why| manifest(format!("{}: {why}", index::INDEX_PATH)))?;
        let text = match std::fs::read(&index_path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| manifest(format!("{}: not UTF-8 text", index::INDEX_PATH)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(manifest(format!("{}: missing in {}", index::INDEX_PATH, root.display())))
            }
            Err(e) => return Err(manifest(format!("{}: unreadable: {e}", index::INDEX_PATH))),
        };
        let index = index::parse(&text)?;
        index::validate(&index, index::Hashes::Pending)?;
        if hashes == index::Hashes::Required {
            unfilled(&root, &index)?;
        }
        let bundle = Bundle { root, index };
        bundle.check_paths()?;
        bundle.check_algorithms()?;
        for rt in &bundle.index.runtimes {
            for (i, hook) in rt.hooks.iter().enumerate() {
                let abs = bundle.resolve(&hook.path)?;
                if !abs.is_file() {
                    return Err(DomainError::new(
                        ErrorCode::ScriptHookMissing,
                        format!("{}: missing (runtimes({}).hooks[{i}] {})", hook.path, rt.name, hook.name),
                    ));
                }
            }
        }
        Ok(bundle)
    }

    /// The runtime named `name` (`k8s`, `compose`).
    pub fn runtime(&self, name: &str) -> Result<&Runtime, DomainError> {
        self.index.runtimes.iter().find(|r| r.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.index.runtimes.iter().map(|r| r.name.as_str()).collect();
            DomainError::new(
                ErrorCode::ArtifactVersionUnsupported,
                format!("runtimes: the bundle has no runtime {name:?} (it has {})", known.join(", ")),
            )
        })
    }

    /// Every file a host needs for `runtime`: its binaries, images,
    /// templates and scripts (optional ones only when present), its hooks,
    /// and `manifests/index.yaml`, each once, in that order — so the files a
    /// hook sources are uploaded with (and before) the hooks.
    pub fn files_of(&self, runtime: &str) -> Result<Vec<BundleFile>, DomainError> {
        let rt = self.runtime(runtime)?;
        let sums = self.checksum_list()?;
        let listed = |rel: &str| sums.iter().find(|l| l.path == rel).map(|l| l.sha256.clone());
        let mut out: Vec<BundleFile> = Vec::new();
        let mut push = |file: BundleFile| {
            if !out.iter().any(|f| f.rel_path == file.rel_path) {
                out.push(file);
            }
        };
        for (section, _, a) in rt.artifacts() {
            let abs = self.resolve(&a.path)?;
            if !abs.is_file() {
                if a.required {
                    return Err(DomainError::new(
                        ErrorCode::ArtifactMissing,
                        format!("{}: missing (runtime {} {} {})", a.path, rt.name, section.key(), a.id),
                    ));
                }
                continue;
            }
            let mode = index::parse_mode(&a.mode).unwrap_or(0o644);
            push(BundleFile {
                rel_path: a.path.clone(),
                abs_path: abs,
                sha256: a.sha256.clone(),
                size: a.size_bytes,
                mode,
                required: a.required,
            });
        }
        let not_listed = |rel: &str| {
            DomainError::new(ErrorCode::ArtifactChecksumMismatch, format!("{rel}: not listed in {}", self.index.checksums.path))
        };
        for h in &rt.hooks {
            let abs = self.resolve(&h.path)?;
            let sha256 = match &h.sha256 {
                Some(s) => s.clone(),
                None => listed(&h.path).ok_or_else(|| not_listed(&h.path))?,
            };
            let size = match h.size_bytes {
                Some(s) => s,
                None => std::fs::metadata(&abs).map(|m| m.len()).map_err(|e| hook_missing(&h.path, &e.to_string()))?,
            };
            push(BundleFile { rel_path: h.path.clone(), abs_path: abs, sha256, size, mode: 0o755, required: true });
        }
        let abs = self.resolve(index::INDEX_PATH)?;
        let size = std::fs::metadata(&abs)
            .map(|m| m.len())
            .map_err(|e| DomainError::new(ErrorCode::ArtifactManifestMissing, format!("{}: {e}", index::INDEX_PATH)))?;
        let sha256 = listed(index::INDEX_PATH).ok_or_else(|| not_listed(index::INDEX_PATH))?;
        push(BundleFile { rel_path: index::INDEX_PATH.into(), abs_path: abs, sha256, size, mode: 0o644, required: true });
        Ok(out)
    }

    /// The absolute path of a bundle-relative path, refusing one that leaves the bundle.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, DomainError> {
        paths::resolve(&self.root, rel).map_err(|why| DomainError::new(ErrorCode::ArtifactManifestMissing, why))
    }

    /// The directory SHA256SUMS does not cover (the one holding it, `checksums/`).
    pub(crate) fn checksums_dir(&self) -> &str {
        self.index.checksums.path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
    }

    /// Reads a file of the checksums directory; absent or unreadable is a checksum failure.
    pub(crate) fn read_checksum_file(&self, rel: &str) -> Result<Vec<u8>, DomainError> {
        let abs = self.resolve(rel)?;
        std::fs::read(&abs).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "missing (the bundle is not indexed and signed)".to_string()
            } else {
                e.to_string()
            };
            DomainError::new(ErrorCode::ArtifactChecksumMismatch, format!("{rel}: {why}"))
        })
    }

    /// SHA256SUMS, parsed.
    pub(crate) fn checksum_list(&self) -> Result<Vec<sums::SumLine>, DomainError> {
        let rel = &self.index.checksums.path;
        let text = self.read_checksum_file(rel)?;
        sums::parse(&String::from_utf8_lossy(&text))
            .map_err(|why| DomainError::new(ErrorCode::ArtifactChecksumMismatch, format!("{rel}: {why}")))
    }

    fn check_paths(&self) -> Result<(), DomainError> {
        for (field, rel) in index::named_paths(&self.index) {
            paths::resolve(&self.root, rel)
                .map_err(|why| DomainError::new(ErrorCode::ArtifactManifestMissing, format!("{}: {field}: {why}", index::INDEX_PATH)))?;
        }
        // SHA256SUMS cannot cover itself or its signature: the three live in
        // one directory that the list leaves out, and nothing else lives there.
        let dir = self.checksums_dir();
        for (field, rel) in [("signature.path", &self.index.signature.path), ("signature.pubkeyRef", &self.index.signature.pubkey_ref)] {
            if rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("") != dir || dir.is_empty() {
                return Err(DomainError::new(
                    ErrorCode::ArtifactManifestMissing,
                    format!(
                        "{}: {field} {rel:?} must be in the directory of checksums.path ({:?}), a directory of its own",
                        index::INDEX_PATH,
                        self.index.checksums.path
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_algorithms(&self) -> Result<(), DomainError> {
        let unsupported =
            |detail: String| DomainError::new(ErrorCode::ArtifactVersionUnsupported, format!("{}: {detail}", index::INDEX_PATH));
        if self.index.checksums.algo != "sha256" {
            return Err(unsupported(format!("checksums.algo is {:?}, OpsPilot supports sha256", self.index.checksums.algo)));
        }
        if self.index.signature.algo != "ed25519" {
            return Err(unsupported(format!("signature.algo is {:?}, OpsPilot supports ed25519", self.index.signature.algo)));
        }
        Ok(())
    }
}

pub(crate) fn hook_missing(rel: &str, why: &str) -> DomainError {
    DomainError::new(ErrorCode::ScriptHookMissing, format!("{rel}: {why}"))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half a file and a crash never leaves one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;

/// Refuses an index whose artifacts have no sha256 yet, naming each one,
/// whether its file is in the bundle, and the command that fills them in.
fn unfilled(root: &Path, index: &index::Index) -> Result<(), DomainError> {
    let mut pending = vec![];
    let mut absent = 0;
    for rt in &index.runtimes {
        for (_, _, a) in rt.artifacts() {
            if a.sha256.trim().is_empty() {
                let present = paths::resolve(root, &a.path).map(|p| p.is_file()).unwrap_or(false);
                absent += usize::from(!present);
                pending.push(format!("{} ({}{})", a.path, rt.name, if present { "" } else { ", not in the bundle yet" }));
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = pending.iter().take(8).map(String::as_str).collect();
    let more = if pending.len() > shown.len() { format!(" and {} more", pending.len() - shown.len()) } else { String::new() };
    let first = if absent > 0 { format!("drop the {absent} missing file(s) in (script/README.md lists them), then ") } else { String::new() };
    Err(DomainError::new(
        ErrorCode::ArtifactManifestMissing,
        format!(
            "{}: {} artifact(s) have no sha256 yet: {}{more}; {first}run `opspilot bundle index {}` to fill in sha256 and sizeBytes",
            index::INDEX_PATH,
            pending.len(),
            shown.join(", "),
            root.display()
        ),
    ))
}
