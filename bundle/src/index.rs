//! `manifests/index.yaml`: the typed index and its schema check.
//!
//! Parsing is two-staged on purpose. The raw YAML is read first so that an
//! index of another `apiVersion`/`kind` is refused as *unsupported* (its
//! schema may be anything) before it is refused as *invalid*. The typed parse
//! then tolerates unknown fields, so newer optional fields do not break older
//! readers; `validate` checks what serde cannot: non-empty values and the
//! closed vocabularies of the seed (runOn, check types, severities, ...).

use std::collections::HashSet;

use opspilot_domain::{DomainError, ErrorCode};
use serde::{Deserialize, Deserializer, Serialize};

/// Where the index lives, relative to the bundle root.
pub const INDEX_PATH: &str = "manifests/index.yaml";
/// The only `apiVersion` this crate reads.
pub const API_VERSION: &str = "opspilot.manifest/v1";
/// The only `kind` this crate reads.
pub const KIND: &str = "InstallBundleIndex";

/// Artifact types of the seed.
pub const ARTIFACT_TYPES: &[&str] = &["binary", "image-archive", "template", "script", "checksum"];
/// Node roles a hook may run on.
pub const RUN_ON: &[&str] = &["control_plane", "worker", "all", "compose_manager", "compose_worker"];
/// Preflight check types.
pub const CHECK_TYPES: &[&str] = &["cmd", "file_exists", "port_open", "ip_conflict", "subnet_match"];
/// Check severities.
pub const SEVERITIES: &[&str] = &["error", "warning", "info"];
/// Hook phases: absent means `install`.
pub const PHASES: &[&str] = &["install", "rollback"];

/// The whole index (`apiVersion: opspilot.manifest/v1`, `kind: InstallBundleIndex`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub api_version: String,
    pub kind: String,
    #[serde(deserialize_with = "scalar")]
    pub bundle_version: String,
    #[serde(default, deserialize_with = "optional_scalar")]
    pub generated_at: Option<String>,
    #[serde(rename = "defaultOS")]
    pub default_os: String,
    pub default_arch: String,
    #[serde(default)]
    pub artifacts_root: Option<String>,
    pub checksums: ChecksumsRef,
    pub signature: SignatureRef,
    /// Feature flags such as `lvsVip`, kept as written.
    #[serde(default)]
    pub features: serde_yaml::Value,
    pub runtimes: Vec<Runtime>,
    pub compatibility: Compatibility,
}

/// Where the checksum list is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecksumsRef {
    pub algo: String,
    pub path: String,
}

/// Where the signature and the signer's public key are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureRef {
    pub algo: String,
    pub path: String,
    pub pubkey_ref: String,
}

/// One installable runtime (`k8s`, `compose`) and everything it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    pub name: String,
    #[serde(deserialize_with = "scalar")]
    pub version: String,
    #[serde(rename = "supportedOSArch")]
    pub supported_os_arch: Vec<OsArch>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub binaries: Vec<Artifact>,
    #[serde(default)]
    pub images: Vec<Artifact>,
    #[serde(default)]
    pub templates: Vec<Artifact>,
    /// Files the hooks source (type `script`, e.g. `hooks/lib/common.sh`): not
    /// run themselves, uploaded with the hooks before the first one runs.
    #[serde(default)]
    pub scripts: Vec<Artifact>,
    /// In execution order.
    #[serde(default)]
    pub hooks: Vec<Hook>,
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// A platform a runtime supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsArch {
    pub os: String,
    pub arch: String,
}

/// A binary, image archive, template or script a hook sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: String,
    #[serde(rename = "type")]
    pub r#type: String,
    pub path: String,
    /// Lower-case hex; `opspilot bundle index` fills it in.
    #[serde(default, deserialize_with = "scalar_or_empty")]
    pub sha256: String,
    #[serde(default)]
    pub size_bytes: u64,
    /// Octal permission as written (`"0755"`).
    #[serde(deserialize_with = "scalar")]
    pub mode: String,
    /// An absent optional artifact is a warning, an absent required one an error.
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// A hook script run on the nodes of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub name: String,
    pub path: String,
    pub timeout_seconds: u64,
    #[serde(default)]
    pub retryable: bool,
    #[serde(default)]
    pub max_retries: u32,
    pub run_on: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    /// `rollback` marks a rollback hook; absent (or `install`) = install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Filled in by `opspilot bundle index`; checked by verify when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

impl Hook {
    /// Whether this hook belongs to a rollback rather than an install.
    pub fn is_rollback(&self) -> bool {
        self.phase.as_deref() == Some("rollback")
    }
}

/// A preflight rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    #[serde(rename = "type")]
    pub r#type: String,
    pub target: String,
    #[serde(deserialize_with = "scalar")]
    pub expect: String,
    pub severity: String,
    pub message: String,
}

/// The version matrix the bundle claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compatibility {
    #[serde(deserialize_with = "scalar")]
    pub k8s_api_min: String,
    #[serde(deserialize_with = "scalar")]
    pub k8s_api_max: String,
    #[serde(default, deserialize_with = "optional_scalar")]
    pub requires_kernel_min: Option<String>,
    /// A string or a list of strings in practice; kept as written.
    #[serde(default)]
    pub notes: serde_yaml::Value,
}

/// Which of a runtime's artifact lists an artifact is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Binaries,
    Images,
    Templates,
    Scripts,
}

impl Section {
    /// The field name in the index.
    pub fn key(self) -> &'static str {
        match self {
            Section::Binaries => "binaries",
            Section::Images => "images",
            Section::Templates => "templates",
            Section::Scripts => "scripts",
        }
    }
}

impl Runtime {
    /// Binaries, images, templates and scripts, in index order, with their section.
    pub fn artifacts(&self) -> impl Iterator<Item = (Section, usize, &Artifact)> {
        let tag = |s: Section| move |(i, a)| (s, i, a);
        self.binaries
            .iter()
            .enumerate()
            .map(tag(Section::Binaries))
            .chain(self.images.iter().enumerate().map(tag(Section::Images)))
            .chain(self.templates.iter().enumerate().map(tag(Section::Templates)))
            .chain(self.scripts.iter().enumerate().map(tag(Section::Scripts)))
    }

    /// Whether the runtime lists `os`/`arch`.
    pub fn supports(&self, os: &str, arch: &str) -> bool {
        self.supported_os_arch.iter().any(|p| p.os == os && p.arch == arch)
    }
}

/// Parses an artifact mode (`"0755"`, `"755"`) into permission bits.
pub fn parse_mode(mode: &str) -> Option<u32> {
    let digits = mode.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
}

fn manifest_error(detail: impl std::fmt::Display) -> DomainError {
    DomainError::new(ErrorCode::ArtifactManifestMissing, format!("{INDEX_PATH}: {detail}"))
}

/// Parses the index text: YAML, then apiVersion/kind (32011), then the typed
/// schema (32008). `validate` is separate so `fill_index` can accept an index
/// whose hashes are still to be filled in.
pub fn parse(text: &str) -> Result<Index, DomainError> {
    let raw: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| manifest_error(format!("not valid YAML: {e}")))?;
    let Some(map) = raw.as_mapping() else {
        return Err(manifest_error("the document is not a mapping"));
    };
    for (field, wanted) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match map.get(field) {
            None => return Err(manifest_error(format!("{field}: missing"))),
            Some(serde_yaml::Value::String(s)) if s == wanted => {}
            Some(other) => {
                let written = serde_yaml::to_string(other).unwrap_or_default();
                return Err(DomainError::new(
                    ErrorCode::ArtifactVersionUnsupported,
                    format!("{INDEX_PATH}: {field} is {}, OpsPilot reads only {wanted}", written.trim()),
                ));
            }
        }
    }
    serde_yaml::from_str(text).map_err(|e| manifest_error(format!("invalid schema: {e}")))
}

/// Whether `validate` insists on filled-in hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashes {
    /// Every artifact carries a non-empty sha256 (a loaded bundle).
    Required,
    /// sha256 may be empty: `opspilot bundle index` is about to fill it in.
    Pending,
}

/// Checks what the types cannot: required values are non-empty, names are
/// unique, vocabularies are closed, modes parse. Paths are checked against
/// the bundle root elsewhere (`paths`). Errors name the field.
pub fn validate(index: &Index, hashes: Hashes) -> Result<(), DomainError> {
    let invalid = |field: &str, why: &str| Err(manifest_error(format!("{field}: {why}")));
    for (field, value) in [
        ("bundleVersion", &index.bundle_version),
        ("defaultOS", &index.default_os),
        ("defaultArch", &index.default_arch),
        ("checksums.algo", &index.checksums.algo),
        ("checksums.path", &index.checksums.path),
        ("signature.algo", &index.signature.algo),
        ("signature.path", &index.signature.path),
        ("signature.pubkeyRef", &index.signature.pubkey_ref),
        ("compatibility.k8sApiMin", &index.compatibility.k8s_api_min),
        ("compatibility.k8sApiMax", &index.compatibility.k8s_api_max),
    ] {
        if value.trim().is_empty() {
            return invalid(field, "must not be empty");
        }
    }
    if index.runtimes.is_empty() {
        return invalid("runtimes", "must list at least one runtime");
    }
    let mut runtime_names = HashSet::new();
    for (r, rt) in index.runtimes.iter().enumerate() {
        let at = format!("runtimes[{r}]");
        if rt.name.trim().is_empty() {
            return invalid(&format!("{at}.name"), "must not be empty");
        }
        let at = format!("{at}({})", rt.name);
        if !runtime_names.insert(rt.name.as_str()) {
            return invalid(&at, "runtime name listed twice");
        }
        if rt.version.trim().is_empty() {
            return invalid(&format!("{at}.version"), "must not be empty");
        }
        if rt.supported_os_arch.is_empty() {
            return invalid(&format!("{at}.supportedOSArch"), "must list at least one os/arch");
        }
        for (i, p) in rt.supported_os_arch.iter().enumerate() {
            if p.os.trim().is_empty() || p.arch.trim().is_empty() {
                return invalid(&format!("{at}.supportedOSArch[{i}]"), "os and arch must not be empty");
            }
        }
        let mut ids = HashSet::new();
        for (section, i, a) in rt.artifacts() {
            let here = format!("{at}.{}[{i}]", section.key());
            for (field, value) in [("id", &a.id), ("type", &a.r#type), ("path", &a.path), ("mode", &a.mode)] {
                if value.trim().is_empty() {
                    return invalid(&format!("{here}.{field}"), "must not be empty");
                }
            }
            let here = format!("{here}({})", a.id);
            if !ids.insert(a.id.as_str()) {
                return invalid(&format!("{here}.id"), "id listed twice in this runtime");
            }
            if !ARTIFACT_TYPES.contains(&a.r#type.as_str()) {
                return invalid(&format!("{here}.type"), &format!("is {:?}, expected one of {}", a.r#type, ARTIFACT_TYPES.join("|")));
            }
            if parse_mode(&a.mode).is_none() {
                return invalid(&format!("{here}.mode"), &format!("is {:?}, expected an octal permission such as \"0755\"", a.mode));
            }
            if hashes == Hashes::Required && a.sha256.trim().is_empty() {
                return invalid(&format!("{here}.sha256"), "missing or empty (run `opspilot bundle index`)");
            }
        }
        for (i, h) in rt.hooks.iter().enumerate() {
            let here = format!("{at}.hooks[{i}]");
            for (field, value) in [("name", &h.name), ("path", &h.path), ("runOn", &h.run_on)] {
                if value.trim().is_empty() {
                    return invalid(&format!("{here}.{field}"), "must not be empty");
                }
            }
            let here = format!("{here}({})", h.name);
            if h.timeout_seconds == 0 {
                return invalid(&format!("{here}.timeoutSeconds"), "must be greater than 0");
            }
            if !RUN_ON.contains(&h.run_on.as_str()) {
                return invalid(&format!("{here}.runOn"), &format!("is {:?}, expected one of {}", h.run_on, RUN_ON.join("|")));
            }
            if let Some(phase) = &h.phase {
                if !PHASES.contains(&phase.as_str()) {
                    return invalid(&format!("{here}.phase"), &format!("is {phase:?}, expected one of {}", PHASES.join("|")));
                }
            }
        }
        let mut check_ids = HashSet::new();
        for (i, c) in rt.checks.iter().enumerate() {
            let here = format!("{at}.checks[{i}]");
            for (field, value) in [
                ("id", &c.id),
                ("type", &c.r#type),
                ("target", &c.target),
                ("expect", &c.expect),
                ("severity", &c.severity),
                ("message", &c.message),
            ] {
                if value.trim().is_empty() {
                    return invalid(&format!("{here}.{field}"), "must not be empty");
                }
            }
            let here = format!("{here}({})", c.id);
            if !check_ids.insert(c.id.as_str()) {
                return invalid(&format!("{here}.id"), "id listed twice in this runtime");
            }
            if !CHECK_TYPES.contains(&c.r#type.as_str()) {
                return invalid(&format!("{here}.type"), &format!("is {:?}, expected one of {}", c.r#type, CHECK_TYPES.join("|")));
            }
            if !SEVERITIES.contains(&c.severity.as_str()) {
                return invalid(&format!("{here}.severity"), &format!("is {:?}, expected one of {}", c.severity, SEVERITIES.join("|")));
            }
        }
    }
    Ok(())
}

/// Every path the index names, with the field that names it: artifacts,
/// hooks, the checksum list, signature and key, and the files
/// `features.*.requiredArtifacts` lists.
pub fn named_paths(index: &Index) -> Vec<(String, &str)> {
    let mut out = vec![
        ("checksums.path".to_string(), index.checksums.path.as_str()),
        ("signature.path".to_string(), index.signature.path.as_str()),
        ("signature.pubkeyRef".to_string(), index.signature.pubkey_ref.as_str()),
    ];
    for (r, rt) in index.runtimes.iter().enumerate() {
        for (section, i, a) in rt.artifacts() {
            out.push((format!("runtimes[{r}]({}).{}[{i}]({}).path", rt.name, section.key(), a.id), a.path.as_str()));
        }
        for (i, h) in rt.hooks.iter().enumerate() {
            out.push((format!("runtimes[{r}]({}).hooks[{i}]({}).path", rt.name, h.name), h.path.as_str()));
        }
    }
    if let Some(features) = index.features.as_mapping() {
        for (name, feature) in features {
            let name = name.as_str().unwrap_or("?");
            if let Some(list) = feature.get("requiredArtifacts").and_then(|v| v.as_sequence()) {
                for (i, p) in list.iter().enumerate() {
                    if let Some(p) = p.as_str() {
                        out.push((format!("features.{name}.requiredArtifacts[{i}]"), p));
                    }
                }
            }
        }
    }
    out
}

fn yes() -> bool {
    true
}

/// A YAML scalar as text: `version: 1.31` or `mode: 0755` written without
/// quotes still reads as the string the author meant.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        other => Err(D::Error::custom(format!("expected a string, found {}", kind_of(&other)))),
    }
}

fn scalar_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(optional_scalar(d)?.unwrap_or_default())
}

fn optional_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::Null => Ok(None),
        serde_yaml::Value::String(s) => Ok(Some(s)),
        serde_yaml::Value::Number(n) => Ok(Some(n.to_string())),
        serde_yaml::Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(D::Error::custom(format!("expected a string, found {}", kind_of(&other)))),
    }
}

fn kind_of(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode("0755"), Some(0o755));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("0789"), None);
        assert_eq!(parse_mode(""), None);
    }
}
