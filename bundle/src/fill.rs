//! `fill_index`: make a directory the user assembled indexable.
//!
//! The index is rewritten through `serde_yaml::Value`, which keeps the order
//! of fields and list items but not comments or quoting style: a commented
//! index comes back without its comments. Only `sha256` and `sizeBytes` of
//! artifacts and hooks change.

use std::collections::HashMap;

use opspilot_domain::{DomainError, ErrorCode};
use serde_yaml::{Mapping, Value};

use crate::index::{Hashes, INDEX_PATH};
use crate::sums::{self, Hasher, SumLine};
use crate::{paths, write_atomically, Bundle, Progress};

/// What `fill_index` did.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexReport {
    /// Artifacts whose sha256/sizeBytes were written (each runtime's entry counts).
    pub artifacts_filled: usize,
    /// Hooks whose sha256/sizeBytes were written.
    pub hooks_filled: usize,
    /// Whether `manifests/index.yaml` changed.
    pub index_changed: bool,
    /// Lines written to SHA256SUMS.
    pub files_listed: usize,
    pub bytes_hashed: u64,
    /// E.g. an optional artifact that is absent (left as it was).
    pub warnings: Vec<String>,
}

/// Computes sha256 and sizeBytes of every present artifact and hook into
/// `manifests/index.yaml`, then writes `checksums/SHA256SUMS` over every file
/// outside `checksums/` (sorted, sha256sum format). A required artifact that
/// is absent is an error (nothing is written then). Comments in the index are
/// lost in the rewrite. Sign afterwards: the old signature no longer matches.
pub fn fill_index(root: &std::path::Path, progress: &dyn Fn(Progress)) -> Result<IndexReport, DomainError> {
    let bundle = Bundle::load_with(root, Hashes::Pending)?;
    let manifest = |detail: String| DomainError::new(ErrorCode::ArtifactManifestMissing, detail);
    let index_abs = bundle.resolve(INDEX_PATH)?;
    let text = std::fs::read_to_string(&index_abs).map_err(|e| manifest(format!("{INDEX_PATH}: unreadable: {e}")))?;
    let mut doc: Value = serde_yaml::from_str(&text).map_err(|e| manifest(format!("{INDEX_PATH}: not valid YAML: {e}")))?;

    // Where each hash goes: (runtime position, list key, item position, path).
    let mut targets = Vec::new();
    let mut absent_required = Vec::new();
    let mut warnings = Vec::new();
    for (r, rt) in bundle.index.runtimes.iter().enumerate() {
        for (section, j, a) in rt.artifacts() {
            if bundle.resolve(&a.path)?.is_file() {
                targets.push((r, section.key(), j, a.path.clone()));
            } else if a.required {
                absent_required.push(format!("{} (runtime {} {} {})", a.path, rt.name, section.key(), a.id));
            } else {
                warnings.push(format!("{}: absent, left as it was (runtime {} {} {} is optional)", a.path, rt.name, section.key(), a.id));
            }
        }
        for (j, h) in rt.hooks.iter().enumerate() {
            targets.push((r, "hooks", j, h.path.clone()));
        }
    }
    if !absent_required.is_empty() {
        return Err(DomainError::new(ErrorCode::ArtifactMissing, format!("required but absent: {}", absent_required.join(", "))));
    }

    let mut files = paths::walk(&bundle.root, bundle.checksums_dir()).map_err(|e| manifest(format!("walking the bundle: {e}")))?;
    for (_, _, _, path) in &targets {
        if !files.contains(path) {
            files.push(path.clone());
        }
    }
    let mut sizes = Vec::with_capacity(files.len());
    for rel in &files {
        let abs = bundle.resolve(rel)?;
        let meta = std::fs::metadata(&abs).map_err(|e| manifest(format!("{rel}: {e}")))?;
        if !meta.is_file() {
            return Err(manifest(format!("{rel}: not a regular file")));
        }
        sizes.push((abs, meta.len()));
    }
    progress(Progress::Plan { files: files.len(), bytes: sizes.iter().map(|(_, s)| s).sum() });
    let mut hasher = Hasher::new(progress);
    let mut hashed: HashMap<&str, (String, u64)> = HashMap::new();
    for (rel, (abs, _)) in files.iter().zip(&sizes) {
        // The index is hashed after it is rewritten.
        if rel != INDEX_PATH {
            let sum = hasher.hash(abs, rel).map_err(|e| manifest(format!("{rel}: unreadable: {e}")))?;
            hashed.insert(rel.as_str(), sum);
        }
    }

    let (mut artifacts_filled, mut hooks_filled) = (0, 0);
    for (r, key, j, path) in &targets {
        let (sha, size) = &hashed[path.as_str()];
        let entry =
            item_mut(&mut doc, *r, key, *j).ok_or_else(|| manifest(format!("{INDEX_PATH}: runtimes[{r}].{key}[{j}] is not a mapping")))?;
        entry.insert("sha256".into(), Value::String(sha.clone()));
        entry.insert("sizeBytes".into(), Value::Number((*size).into()));
        if *key == "hooks" {
            hooks_filled += 1;
        } else {
            artifacts_filled += 1;
        }
    }
    let rewritten = serde_yaml::to_string(&doc).map_err(|e| manifest(format!("{INDEX_PATH}: cannot render: {e}")))?;
    let reread: Value = serde_yaml::from_str(&text).map_err(|e| manifest(format!("{INDEX_PATH}: {e}")))?;
    let index_changed = reread != doc;
    if index_changed {
        write_atomically(&index_abs, rewritten.as_bytes()).map_err(|e| manifest(format!("{INDEX_PATH}: cannot write: {e}")))?;
    }
    let sum = hasher.hash(&index_abs, INDEX_PATH).map_err(|e| manifest(format!("{INDEX_PATH}: unreadable: {e}")))?;
    hashed.insert(INDEX_PATH, sum);

    // Only files outside checksums/ are listed, even if an artifact lives there.
    let dir = format!("{}/", bundle.checksums_dir());
    let lines: Vec<SumLine> = hashed
        .iter()
        .filter(|(rel, _)| !rel.starts_with(&dir))
        .map(|(rel, (sha, _))| SumLine { sha256: sha.clone(), path: rel.to_string() })
        .collect();
    let sums_rel = &bundle.index.checksums.path;
    let sums_abs = bundle.resolve(sums_rel)?;
    write_atomically(&sums_abs, sums::render(&lines).as_bytes())
        .map_err(|e| DomainError::new(ErrorCode::ArtifactChecksumMismatch, format!("{sums_rel}: cannot write: {e}")))?;

    Ok(IndexReport { artifacts_filled, hooks_filled, index_changed, files_listed: lines.len(), bytes_hashed: hasher.bytes, warnings })
}

/// `runtimes[r].<key>[j]` of the raw index, as a mapping.
fn item_mut<'a>(doc: &'a mut Value, r: usize, key: &str, j: usize) -> Option<&'a mut Mapping> {
    doc.get_mut("runtimes")?.get_mut(r)?.get_mut(key)?.get_mut(j)?.as_mapping_mut()
}
