//! `Bundle::verify`: signature, checksums, index artifacts, hooks, compatibility.
//!
//! Each file is read once: the SHA256SUMS pass hashes every listed file that
//! is present, and the later steps compare the index against those hashes.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use opspilot_domain::{DomainError, ErrorCode};

use crate::index::{Index, Runtime, INDEX_PATH};
use crate::signing::{encode_public_key, verify_signature};
use crate::sums::Hasher;
use crate::{hook_missing, paths, Bundle, Progress, VerifyOptions, VerifyReport};

/// The platform OpsPilot installs onto.
pub const SUPPORTED_OS: &str = "linux";
/// The architecture OpsPilot installs onto.
pub const SUPPORTED_ARCH: &str = "amd64";
/// Kubernetes minor versions (of 1.x) OpsPilot supports: v1.28–v1.31.
pub const SUPPORTED_K8S_MINORS: std::ops::RangeInclusive<u64> = 28..=31;

fn mismatch(detail: String) -> DomainError {
    DomainError::new(ErrorCode::ArtifactChecksumMismatch, detail)
}

fn missing(detail: String) -> DomainError {
    DomainError::new(ErrorCode::ArtifactMissing, detail)
}

fn unsupported(detail: String) -> DomainError {
    DomainError::new(ErrorCode::ArtifactVersionUnsupported, detail)
}

/// Shortens a sha256 for a detail line: `ab12cd34…`.
fn short(sha: &str) -> String {
    if sha.len() > 12 {
        format!("{}…", &sha[..12])
    } else {
        sha.to_string()
    }
}

impl Bundle {
    /// Verifies the bundle (order in the crate docs); the first failure is
    /// the error, optional artifacts that are absent are warnings.
    pub fn verify(&self, opts: &VerifyOptions, progress: &dyn Fn(Progress)) -> Result<VerifyReport, DomainError> {
        let scope: Vec<&Runtime> = match &opts.runtime {
            Some(name) => vec![self.runtime(name)?],
            None => self.index.runtimes.iter().collect(),
        };
        let mut warnings = Vec::new();
        let sums_rel = &self.index.checksums.path;

        // 1. The signature over the exact bytes of SHA256SUMS.
        let sums_bytes = self.read_checksum_file(sums_rel)?;
        let signer = verify_signature(self, &sums_bytes, opts.trusted_public_key.as_ref())?;
        let lines = self.checksum_list()?;

        // 2. No file is left out of the list (cheap, so before the hashing), then every
        //    line against its file; files only other runtimes need may be absent, and
        //    when one runtime is verified they are not read at all (an install uploads
        //    only its runtime's files: a compose preview need not hash Kubernetes images).
        let listed: HashSet<&str> = lines.iter().map(|l| l.path.as_str()).collect();
        let files = paths::walk(&self.root, self.checksums_dir()).map_err(|e| mismatch(format!("walking the bundle: {e}")))?;
        if let Some(extra) = files.iter().find(|f| !listed.contains(f.as_str())) {
            return Err(mismatch(format!("{extra}: not covered by {sums_rel} (re-index and re-sign the bundle, or remove the file)")));
        }
        let needs = Needs::of(&scope);
        let mut present = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            let abs = paths::resolve(&self.root, &line.path).map_err(|why| mismatch(format!("{sums_rel} line {}: {why}", n + 1)))?;
            match std::fs::metadata(&abs) {
                Ok(meta) if meta.is_file() && opts.runtime.is_some() && matches!(needs.why(&line.path, false), Need::OtherRuntime) => {}
                Ok(meta) if meta.is_file() => present.push((line, abs, meta.len())),
                Ok(_) => return Err(mismatch(format!("{}: not a regular file ({sums_rel} lists it)", line.path))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match needs.why(&line.path, opts.runtime.is_none()) {
                    Need::Required(by) => return Err(missing(format!("{}: missing ({sums_rel} lists it; {by})", line.path))),
                    Need::Optional(by) => warnings.push(format!("{}: absent ({by})", line.path)),
                    Need::OtherRuntime => warnings.push(format!("{}: absent (not needed by runtime {})", line.path, scope[0].name)),
                },
                Err(e) => return Err(mismatch(format!("{}: unreadable: {e}", line.path))),
            }
        }
        progress(Progress::Plan { files: present.len(), bytes: present.iter().map(|(_, _, size)| size).sum() });
        let mut hasher = Hasher::new(progress);
        let mut actual: HashMap<&str, (String, u64)> = HashMap::new();
        for (line, abs, _) in &present {
            let (sha, size) = hasher.hash(abs, &line.path).map_err(|e| mismatch(format!("{}: unreadable: {e}", line.path)))?;
            if sha != line.sha256 {
                return Err(mismatch(format!("{}: sha256 is {}, {sums_rel} says {}", line.path, short(&sha), short(&line.sha256))));
            }
            actual.insert(line.path.as_str(), (sha, size));
        }

        // 3. Every index artifact of the scope: present, same sha256 and size.
        for rt in &scope {
            for (section, _, a) in rt.artifacts() {
                let what = format!("runtime {} {} {}", rt.name, section.key(), a.id);
                let Some((sha, size)) = actual.get(a.path.as_str()) else {
                    // Present files are all listed (checked above): absent it is.
                    if a.required {
                        return Err(missing(format!("{}: missing ({what}, required)", a.path)));
                    }
                    let note = format!("{}: absent ({what} is optional)", a.path);
                    if !warnings.iter().any(|w: &String| w.starts_with(&format!("{}: absent", a.path))) {
                        warnings.push(note);
                    }
                    continue;
                };
                if !sha.eq_ignore_ascii_case(a.sha256.trim()) {
                    return Err(mismatch(format!("{}: sha256 is {}, the index says {} ({what})", a.path, short(sha), short(&a.sha256))));
                }
                if *size != a.size_bytes {
                    return Err(mismatch(format!("{}: size is {size} bytes, the index says {} ({what})", a.path, a.size_bytes)));
                }
            }
        }

        // 4. Hooks: present, bash, executable, and matching when the index has their hash.
        for rt in &scope {
            for h in &rt.hooks {
                let abs = self.resolve(&h.path)?;
                check_hook_file(&abs, &h.path)?;
                let Some((sha, size)) = actual.get(h.path.as_str()) else {
                    return Err(mismatch(format!("{}: hook not listed in {sums_rel}", h.path)));
                };
                if let Some(want) = &h.sha256 {
                    if !sha.eq_ignore_ascii_case(want.trim()) {
                        return Err(mismatch(format!(
                            "{}: sha256 is {}, the index says {} (runtime {} hook {})",
                            h.path,
                            short(sha),
                            short(want),
                            rt.name,
                            h.name
                        )));
                    }
                }
                if let Some(want) = h.size_bytes {
                    if *size != want {
                        return Err(mismatch(format!(
                            "{}: size is {size} bytes, the index says {want} (runtime {} hook {})",
                            h.path, rt.name, h.name
                        )));
                    }
                }
            }
        }

        // 5. What OpsPilot can install.
        check_compatibility(&self.index, &scope)?;

        Ok(VerifyReport {
            bundle_version: self.index.bundle_version.clone(),
            runtimes: scope.iter().map(|r| r.name.clone()).collect(),
            files_checked: hasher.files,
            bytes_checked: hasher.bytes,
            warnings,
            signed_by: encode_public_key(&signer),
        })
    }
}

/// Why a file is needed by the runtimes being verified.
enum Need {
    Required(String),
    Optional(String),
    OtherRuntime,
}

/// Which files the verified runtimes need, and how badly.
struct Needs {
    required: HashMap<String, String>,
    optional: HashMap<String, String>,
}

impl Needs {
    fn of(scope: &[&Runtime]) -> Needs {
        let mut needs = Needs { required: HashMap::new(), optional: HashMap::new() };
        needs.required.insert(INDEX_PATH.into(), "the index".into());
        for rt in scope {
            for (section, _, a) in rt.artifacts() {
                let by = format!("runtime {} {} {}", rt.name, section.key(), a.id);
                if a.required {
                    needs.required.entry(a.path.clone()).or_insert(format!("required by {by}"));
                } else {
                    needs.optional.entry(a.path.clone()).or_insert(format!("{by} is optional"));
                }
            }
            for h in &rt.hooks {
                needs.required.entry(h.path.clone()).or_insert(format!("hook {} of runtime {}", h.name, rt.name));
            }
        }
        needs
    }

    /// A file the scope does not name is required only when every runtime is verified.
    fn why(&self, rel: &str, all_runtimes: bool) -> Need {
        if let Some(by) = self.required.get(rel) {
            Need::Required(by.clone())
        } else if let Some(by) = self.optional.get(rel) {
            Need::Optional(by.clone())
        } else if all_runtimes {
            Need::Required("every listed file must be present".into())
        } else {
            Need::OtherRuntime
        }
    }
}

/// A hook is a regular, executable file whose first line starts bash.
fn check_hook_file(abs: &std::path::Path, rel: &str) -> Result<(), DomainError> {
    let meta = std::fs::metadata(abs).map_err(|e| hook_missing(rel, &format!("missing ({e})")))?;
    if !meta.is_file() {
        return Err(hook_missing(rel, "not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(hook_missing(rel, &format!("not executable (mode {:04o}); chmod 0755 it", meta.permissions().mode() & 0o7777)));
    }
    let mut head = [0u8; 128];
    let n = std::fs::File::open(abs).and_then(|mut f| f.read(&mut head)).map_err(|e| hook_missing(rel, &format!("unreadable ({e})")))?;
    let first = String::from_utf8_lossy(&head[..n]);
    let first = first.lines().next().unwrap_or("").trim_end();
    let bash = ["#!/usr/bin/env bash", "#!/bin/bash", "#!/usr/bin/bash"];
    if !bash.iter().any(|b| first == *b || first.starts_with(&format!("{b} "))) {
        return Err(hook_missing(rel, &format!("not a bash script (first line {first:?}, expected #!/usr/bin/env bash)")));
    }
    Ok(())
}

/// A Kubernetes version as (major, minor, patch); patch `None` for `x`/`*`/absent.
fn parse_k8s_version(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let v = v.trim().trim_start_matches('v');
    let v = v.split(['-', '+']).next()?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        None | Some("x") | Some("X") | Some("*") => None,
        Some(p) => Some(p.parse().ok()?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

fn check_compatibility(index: &Index, scope: &[&Runtime]) -> Result<(), DomainError> {
    let at = |field: &str| format!("{INDEX_PATH}: {field}");
    if index.default_os != SUPPORTED_OS || index.default_arch != SUPPORTED_ARCH {
        return Err(unsupported(format!(
            "{} is {}/{}, OpsPilot installs onto {SUPPORTED_OS}/{SUPPORTED_ARCH}",
            at("defaultOS/defaultArch"),
            index.default_os,
            index.default_arch
        )));
    }
    for rt in scope {
        if !rt.supports(SUPPORTED_OS, SUPPORTED_ARCH) {
            let listed: Vec<String> = rt.supported_os_arch.iter().map(|p| format!("{}/{}", p.os, p.arch)).collect();
            return Err(unsupported(format!(
                "{} lists {}, OpsPilot installs onto {SUPPORTED_OS}/{SUPPORTED_ARCH}",
                at(&format!("runtimes({}).supportedOSArch", rt.name)),
                listed.join(", ")
            )));
        }
    }
    let range = format!("v1.{}–v1.{}", SUPPORTED_K8S_MINORS.start(), SUPPORTED_K8S_MINORS.end());
    let c = &index.compatibility;
    let mut bounds = Vec::new();
    for (field, value) in [("compatibility.k8sApiMin", &c.k8s_api_min), ("compatibility.k8sApiMax", &c.k8s_api_max)] {
        let Some(version) = parse_k8s_version(value) else {
            return Err(unsupported(format!("{} is {value:?}, not a Kubernetes version such as v1.30.0 or v1.31.x", at(field))));
        };
        if version.0 != 1 || !SUPPORTED_K8S_MINORS.contains(&version.1) {
            return Err(unsupported(format!("{} is {value}, OpsPilot supports Kubernetes {range}", at(field))));
        }
        bounds.push(version);
    }
    // A wildcard patch is the lowest patch as a minimum and the highest as a maximum.
    let (min, max) = (bounds[0], bounds[1]);
    let lo = (min.0, min.1, min.2.unwrap_or(0));
    let hi = (max.0, max.1, max.2.unwrap_or(u64::MAX));
    if lo > hi {
        return Err(unsupported(format!("{}: k8sApiMin {} is above k8sApiMax {}", at("compatibility"), c.k8s_api_min, c.k8s_api_max)));
    }
    for rt in scope.iter().filter(|r| r.name == "k8s") {
        let Some(v) = parse_k8s_version(&rt.version) else {
            return Err(unsupported(format!("{} is {:?}, not a Kubernetes version", at("runtimes(k8s).version"), rt.version)));
        };
        let v = (v.0, v.1, v.2.unwrap_or(0));
        if v < lo || v > hi {
            return Err(unsupported(format!(
                "{} is {}, outside the bundle's compatibility {}–{}",
                at("runtimes(k8s).version"),
                rt.version,
                c.k8s_api_min,
                c.k8s_api_max
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions_parse_with_wildcard_patches() {
        assert_eq!(parse_k8s_version("v1.31.14"), Some((1, 31, Some(14))));
        assert_eq!(parse_k8s_version("v1.31.x"), Some((1, 31, None)));
        assert_eq!(parse_k8s_version("1.28"), Some((1, 28, None)));
        assert_eq!(parse_k8s_version("v1.30.1-rc.0"), Some((1, 30, Some(1))));
        assert_eq!(parse_k8s_version("latest"), None);
        assert_eq!(parse_k8s_version("v1.2.3.4"), None);
    }
}
