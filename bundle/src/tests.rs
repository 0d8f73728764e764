//! Scenarios on a small bundle built in a temporary directory: given a
//! bundle, when it is indexed, signed, tampered with and verified, then this
//! error (code and the file it names) or this report.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use opspilot_domain::ErrorCode;

use super::*;

/// Test-only signing keys, made with `openssl genpkey -algorithm ed25519`.
const KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIG0nwD1Gs+Su9OdBxpllillg6yXgozpayJpBiOobem32\n-----END PRIVATE KEY-----\n";
const OTHER_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIMqboqzOqa7b0kyTq60GwHqkunt9qc+GRgDot80tan3m\n-----END PRIVATE KEY-----\n";

const INDEX: &str = r#"# an index as a user assembles it: hashes still to fill in
apiVersion: opspilot.manifest/v1
kind: InstallBundleIndex
bundleVersion: v1.30.1-offline.1
generatedAt: "2026-02-26T13:00:00Z"
defaultOS: linux
defaultArch: amd64
artifactsRoot: script/
checksums:
  algo: sha256
  path: checksums/SHA256SUMS
signature:
  algo: ed25519
  path: checksums/SHA256SUMS.sig
  pubkeyRef: checksums/public.key
features:
  lvsVip:
    enabled: true
    requiredArtifacts:
      - hooks/preflight.sh
runtimes:
  - name: k8s
    version: v1.30.1
    supportedOSArch:
      - os: linux
        arch: amd64
    dependencies: [containerd]
    binaries:
      - id: kubeadm
        type: binary
        path: bin/linux-amd64/kubeadm
        sha256: "<FILL>"
        sizeBytes: 0
        mode: "0755"
        required: true
      - id: runc
        type: binary
        path: bin/linux-amd64/runc
        sha256: "<FILL>"
        sizeBytes: 0
        mode: "0755"
        required: true
    images:
      - id: busybox
        type: image-archive
        path: images/busybox.tar
        sha256: "<FILL>"
        sizeBytes: 0
        mode: "0644"
        required: false
    hooks:
      - name: preflight.sh
        path: hooks/preflight.sh
        timeoutSeconds: 300
        retryable: false
        maxRetries: 0
        runOn: all
        inputs: [OPS_TASK_ID]
        outputs: [preflight_summary]
    checks:
      - id: required-binaries
        type: file_exists
        target: bin/linux-amd64
        expect: all_present
        severity: error
        message: required binaries must exist
  - name: compose
    version: v2.24.5
    supportedOSArch:
      - os: linux
        arch: amd64
    binaries:
      - id: docker-compose
        type: binary
        path: bin/linux-amd64/docker-compose
        sha256: "<FILL>"
        sizeBytes: 0
        mode: "0755"
        required: true
      - id: compose-runc
        type: binary
        path: bin/linux-amd64/runc
        sha256: "<FILL>"
        sizeBytes: 0
        mode: "0755"
        required: true
    templates:
      - id: compose-template
        type: template
        path: templates/compose/docker-compose.yml.tpl
        sha256: "<FILL>"
        sizeBytes: 0
        mode: "0644"
        required: true
    hooks:
      - name: preflight.sh
        path: hooks/preflight.sh
        timeoutSeconds: 300
        runOn: all
      - name: rollback-compose.sh
        path: hooks/rollback-compose.sh
        timeoutSeconds: 300
        runOn: compose_manager
        phase: rollback
compatibility:
  k8sApiMin: v1.28.0
  k8sApiMax: v1.31.x
  requiresKernelMin: "4.19"
  notes:
    - preview/apply requires manifest and checksum validation before execution
"#;

fn no_progress(_: Progress) {}

fn write(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Files of a bundle as a user drops them in, index not yet filled in.
fn assembled() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "bin/linux-amd64/kubeadm", &vec![0x4b; 100_000], 0o755);
    write(root, "bin/linux-amd64/runc", b"runc binary bytes", 0o755);
    write(root, "bin/linux-amd64/docker-compose", b"compose binary bytes", 0o755);
    write(root, "images/busybox.tar", b"an image archive", 0o644);
    write(root, "templates/compose/docker-compose.yml.tpl", b"services: {}\n", 0o644);
    write(root, "hooks/preflight.sh", b"#!/usr/bin/env bash\nset -euo pipefail\necho '[INFO] step=preflight'\n", 0o755);
    write(root, "hooks/rollback-compose.sh", b"#!/usr/bin/env bash\nset -euo pipefail\n", 0o755);
    write(root, "manifests/index.yaml", INDEX.as_bytes(), 0o644);
    dir
}

/// A bundle that was indexed and signed with `KEY`.
fn signed() -> tempfile::TempDir {
    indexed_and_signed(assembled())
}

fn indexed_and_signed(dir: tempfile::TempDir) -> tempfile::TempDir {
    fill_index(dir.path(), &no_progress).unwrap();
    sign(dir.path(), KEY).unwrap();
    dir
}

fn verify_all(root: &Path) -> Result<VerifyReport, DomainError> {
    Bundle::load(root)?.verify(&VerifyOptions::default(), &no_progress)
}

fn index_text(root: &Path) -> String {
    std::fs::read_to_string(root.join("manifests/index.yaml")).unwrap()
}

fn set_index(root: &Path, text: &str) {
    std::fs::write(root.join("manifests/index.yaml"), text).unwrap();
}

/// Rewrites SHA256SUMS from the files as they are (index untouched) and
/// signs it: a bundle whose list and signature are consistent, so the
/// index's own claims are what is tested.
fn reseal(root: &Path) {
    let files = paths::walk(root, "checksums").unwrap();
    let mut hasher = sums::Hasher::new(&no_progress);
    let lines: Vec<sums::SumLine> =
        files.iter().map(|rel| sums::SumLine { sha256: hasher.hash(&root.join(rel), rel).unwrap().0, path: rel.clone() }).collect();
    std::fs::write(root.join("checksums/SHA256SUMS"), sums::render(&lines)).unwrap();
    sign(root, KEY).unwrap();
}

#[track_caller]
fn assert_error(result: Result<impl std::fmt::Debug, DomainError>, code: ErrorCode, names: &str) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.code, code, "wrong code for: {}", err.detail);
    assert!(err.detail.contains(names), "the detail should name {names:?}: {}", err.detail);
}

fn public_key_of(pem: &str) -> [u8; 32] {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    ed25519_dalek::SigningKey::from_pkcs8_pem(pem).unwrap().verifying_key().to_bytes()
}

#[test]
fn fill_index_then_sign_then_verify_accepts_the_bundle() {
    let dir = assembled();
    let report = fill_index(dir.path(), &no_progress).unwrap();
    assert_eq!(report.artifacts_filled, 6);
    assert_eq!(report.hooks_filled, 3);
    assert!(report.index_changed);
    assert_eq!(report.files_listed, 8, "every file outside checksums/, the index included");
    let signer = sign(dir.path(), KEY).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("checksums/public.key")).unwrap(), format!("{signer}\n"));
    assert_eq!(std::fs::read_to_string(dir.path().join("checksums/SHA256SUMS.sig")).unwrap().trim().len(), 88);

    let bundle = Bundle::load(dir.path()).unwrap();
    let opts = VerifyOptions { runtime: None, trusted_public_key: Some(public_key_of(KEY)) };
    let events = std::cell::RefCell::new(Vec::new());
    let report = bundle.verify(&opts, &|p| events.borrow_mut().push(p)).unwrap();
    assert_eq!(report.bundle_version, "v1.30.1-offline.1");
    assert_eq!(report.runtimes, ["k8s", "compose"]);
    assert_eq!(report.files_checked, 8);
    assert_eq!(report.signed_by, signer);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let total: u64 =
        paths::walk(dir.path(), "checksums").unwrap().iter().map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len()).sum();
    assert_eq!(report.bytes_checked, total);
    assert_eq!(events.borrow()[0], Progress::Plan { files: 8, bytes: total });

    let runc = &bundle.runtime("k8s").unwrap().binaries[1];
    assert_eq!(runc.size_bytes, 17);
    assert_eq!(runc.sha256.len(), 64);
    assert!(bundle.runtime("compose").unwrap().hooks[1].is_rollback());
}

#[test]
fn fill_index_keeps_the_order_of_fields_and_says_comments_go() {
    let dir = signed();
    let text = index_text(dir.path());
    let order = ["apiVersion", "kind", "bundleVersion", "generatedAt", "checksums", "signature", "features", "runtimes", "compatibility"];
    let positions: Vec<usize> = order.iter().map(|k| text.find(&format!("\n{k}:")).or(text.find(&format!("{k}:"))).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "top-level order changed:\n{text}");
    let kubeadm = text.find("id: kubeadm").unwrap();
    assert!(kubeadm < text[kubeadm..].find("sha256:").unwrap() + kubeadm);
    assert!(!text.contains("<FILL>"));
    assert!(!text.contains("# an index"), "serde_yaml drops comments (documented)");
    // A second run changes nothing in the index.
    let again = fill_index(dir.path(), &no_progress).unwrap();
    assert!(!again.index_changed);
}

#[test]
fn files_of_a_runtime_are_what_a_host_needs() {
    let dir = signed();
    let bundle = Bundle::load(dir.path()).unwrap();
    let files = bundle.files_of("compose").unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.rel_path.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/linux-amd64/docker-compose",
            "bin/linux-amd64/runc",
            "templates/compose/docker-compose.yml.tpl",
            "hooks/preflight.sh",
            "hooks/rollback-compose.sh",
            "manifests/index.yaml"
        ]
    );
    let compose = &files[0];
    assert_eq!((compose.mode, compose.size, compose.required), (0o755, 20, true));
    assert_eq!(compose.abs_path, bundle.root.join("bin/linux-amd64/docker-compose"));
    assert_eq!(files[2].mode, 0o644);
    assert_eq!(files[5].sha256.len(), 64);
    assert_error(bundle.files_of("nomad"), ErrorCode::ArtifactVersionUnsupported, "nomad");
}

#[test]
fn a_missing_index_is_artifact_manifest_missing() {
    let dir = signed();
    std::fs::remove_file(dir.path().join("manifests/index.yaml")).unwrap();
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "manifests/index.yaml: missing");
    assert_error(Bundle::load(&dir.path().join("nowhere")), ErrorCode::ArtifactManifestMissing, "nowhere");
}

#[test]
fn invalid_yaml_is_artifact_manifest_missing() {
    let dir = assembled();
    set_index(dir.path(), "apiVersion: opspilot.manifest/v1\nkind: [unclosed\n");
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "not valid YAML");
}

#[test]
fn a_missing_required_field_is_named() {
    let dir = assembled();
    set_index(dir.path(), &INDEX.replace("    version: v2.24.5\n", ""));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "version");
    set_index(dir.path(), &INDEX.replace("runOn: compose_manager", "runOn: everywhere"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "hooks[1](rollback-compose.sh).runOn");
    set_index(dir.path(), &INDEX.replace("severity: error", "severity: fatal"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "checks[0](required-binaries).severity");
    set_index(dir.path(), &INDEX.replace("type: file_exists", "type: ping"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "checks[0](required-binaries).type");
    set_index(dir.path(), &INDEX.replace("        id: kubeadm\n", "        id: \"\"\n").replace("- id: kubeadm", "- id: \"\""));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "binaries[0].id: must not be empty");
}

#[test]
fn an_unfilled_hash_is_refused_by_load_but_filled_by_fill_index() {
    let dir = assembled();
    set_index(dir.path(), &INDEX.replace("sha256: \"<FILL>\"", "sha256: \"\""));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "have no sha256 yet: bin/linux-amd64/kubeadm (k8s)");
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "run `opspilot bundle index");
    // A file not dropped in yet is named as such, with the step before indexing.
    std::fs::remove_file(dir.path().join("bin/linux-amd64/kubeadm")).unwrap();
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "kubeadm (k8s, not in the bundle yet)");
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "drop the 1 missing file(s) in");
    let dir = assembled();
    set_index(dir.path(), &INDEX.replace("sha256: \"<FILL>\"", "sha256: \"\""));
    fill_index(dir.path(), &no_progress).unwrap();
    sign(dir.path(), KEY).unwrap();
    verify_all(dir.path()).unwrap();
}

#[test]
fn unknown_fields_are_tolerated() {
    let dir = assembled();
    let text = INDEX
        .replace("defaultArch: amd64\n", "defaultArch: amd64\nmaintainer: platform-team\n")
        .replace("        required: false\n", "        required: false\n        vendor: busybox.net\n");
    set_index(dir.path(), &text);
    fill_index(dir.path(), &no_progress).unwrap();
    sign(dir.path(), KEY).unwrap();
    verify_all(dir.path()).unwrap();
    assert!(index_text(dir.path()).contains("maintainer: platform-team"), "unknown fields survive the rewrite");
}

#[test]
fn paths_leaving_the_bundle_are_refused() {
    let dir = signed();
    let good = index_text(dir.path());
    set_index(dir.path(), &good.replace("path: images/busybox.tar", "path: ../etc/passwd"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "\"../etc/passwd\"");
    set_index(dir.path(), &good.replace("path: images/busybox.tar", "path: bin/../../../etc/passwd"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "images[0](busybox).path");
    set_index(dir.path(), &good.replace("path: images/busybox.tar", "path: /etc/passwd"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "is absolute");
    set_index(dir.path(), &good.replace("path: checksums/SHA256SUMS\n", "path: ../SHA256SUMS\n"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "checksums.path");

    // A symlink inside the bundle that points outside it.
    set_index(dir.path(), &good.replace("path: images/busybox.tar", "path: images/passwd"));
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("images/passwd")).unwrap();
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "leaves the bundle through a symlink");
    // ... also when only SHA256SUMS names it ...
    set_index(dir.path(), &good);
    reseal(dir.path());
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "\"images/passwd\" leaves the bundle");
    // ... and indexing does not reach through it either.
    assert_error(fill_index(dir.path(), &no_progress), ErrorCode::ArtifactManifestMissing, "\"images/passwd\" leaves the bundle");
}

#[test]
fn a_missing_artifact_is_artifact_missing() {
    let dir = signed();
    std::fs::remove_file(dir.path().join("bin/linux-amd64/runc")).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactMissing, "bin/linux-amd64/runc: missing");
}

#[test]
fn an_artifact_only_another_runtime_needs_may_be_absent_when_one_runtime_is_verified() {
    let dir = signed();
    std::fs::remove_file(dir.path().join("bin/linux-amd64/kubeadm")).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    let compose = VerifyOptions { runtime: Some("compose".into()), trusted_public_key: None };
    let report = bundle.verify(&compose, &no_progress).unwrap();
    assert_eq!(report.runtimes, ["compose"]);
    assert!(report.warnings.iter().any(|w| w.contains("kubeadm") && w.contains("not needed by runtime compose")), "{:?}", report.warnings);
    let k8s = VerifyOptions { runtime: Some("k8s".into()), trusted_public_key: None };
    assert_error(bundle.verify(&k8s, &no_progress), ErrorCode::ArtifactMissing, "kubeadm");
    assert_error(bundle.verify(&VerifyOptions::default(), &no_progress), ErrorCode::ArtifactMissing, "kubeadm");
    let nomad = VerifyOptions { runtime: Some("nomad".into()), trusted_public_key: None };
    assert_error(bundle.verify(&nomad, &no_progress), ErrorCode::ArtifactVersionUnsupported, "nomad");
}

#[test]
fn verifying_one_runtime_reads_only_its_files_and_a_full_verify_reads_them_all() {
    let dir = signed();
    // kubeadm is the k8s runtime's alone: changed behind the signature's back.
    let kubeadm = dir.path().join("bin/linux-amd64/kubeadm");
    std::fs::remove_file(&kubeadm).unwrap();
    write(dir.path(), "bin/linux-amd64/kubeadm", &vec![0x4c; 100_000], 0o755);
    let bundle = Bundle::load(dir.path()).unwrap();
    let compose = VerifyOptions { runtime: Some("compose".into()), trusted_public_key: None };
    let planned = std::cell::Cell::new(0u64);
    bundle.verify(&compose, &|p| if let Progress::Plan { bytes, .. } = p { planned.set(bytes) }).unwrap();
    assert!(planned.get() < 100_000, "the compose check hashed {} bytes: kubeadm was read", planned.get());
    let k8s = VerifyOptions { runtime: Some("k8s".into()), trusted_public_key: None };
    assert_error(bundle.verify(&k8s, &no_progress), ErrorCode::ArtifactChecksumMismatch, "bin/linux-amd64/kubeadm: sha256 is");
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "bin/linux-amd64/kubeadm: sha256 is");
}

#[test]
fn an_absent_optional_artifact_only_warns() {
    let dir = signed();
    std::fs::remove_file(dir.path().join("images/busybox.tar")).unwrap();
    let report = verify_all(dir.path()).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("images/busybox.tar: absent"), "{:?}", report.warnings);
    // Re-indexing leaves it out of SHA256SUMS and still verifies.
    let filled = fill_index(dir.path(), &no_progress).unwrap();
    assert_eq!(filled.warnings.len(), 1);
    sign(dir.path(), KEY).unwrap();
    assert_eq!(verify_all(dir.path()).unwrap().warnings.len(), 1);
}

#[test]
fn one_flipped_byte_is_a_checksum_mismatch_naming_the_file() {
    let dir = signed();
    let path = dir.path().join("bin/linux-amd64/kubeadm");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[54_321] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "bin/linux-amd64/kubeadm: sha256 is ");
}

#[test]
fn a_size_that_differs_from_the_index_is_a_checksum_mismatch() {
    let dir = signed();
    // The list and signature are consistent; only the index's sizeBytes lies.
    set_index(dir.path(), &index_text(dir.path()).replacen("sizeBytes: 17", "sizeBytes: 18", 1));
    reseal(dir.path());
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "bin/linux-amd64/runc: size is 17 bytes, the index says 18");
}

#[test]
fn a_sha256_that_differs_from_the_index_is_a_checksum_mismatch() {
    let dir = signed();
    write(dir.path(), "templates/compose/docker-compose.yml.tpl", b"services: {x: 1}\n", 0o644);
    reseal(dir.path());
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "templates/compose/docker-compose.yml.tpl: sha256 is ");
}

#[test]
fn an_edited_sha256sums_fails_the_signature() {
    let dir = signed();
    let path = dir.path().join("checksums/SHA256SUMS");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen('a', "b", 1)).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "the signature does not verify");
    std::fs::remove_file(dir.path().join("checksums/SHA256SUMS.sig")).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "checksums/SHA256SUMS.sig: missing");
}

#[test]
fn a_bundle_signed_by_another_key_is_refused_when_a_key_is_trusted() {
    let dir = assembled();
    fill_index(dir.path(), &no_progress).unwrap();
    sign(dir.path(), OTHER_KEY).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    // Valid on its own ...
    bundle.verify(&VerifyOptions::default(), &no_progress).unwrap();
    // ... but not by the key we trust.
    let opts = VerifyOptions { runtime: None, trusted_public_key: Some(public_key_of(KEY)) };
    assert_error(bundle.verify(&opts, &no_progress), ErrorCode::ArtifactChecksumMismatch, "not by the trusted key");
}

#[test]
fn a_file_not_covered_by_sha256sums_is_refused() {
    let dir = signed();
    write(dir.path(), "images/extra.tar", b"smuggled", 0o644);
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "images/extra.tar: not covered");
}

#[test]
fn an_unsupported_api_version_or_kind_is_artifact_version_unsupported() {
    let dir = assembled();
    set_index(dir.path(), &INDEX.replace("opspilot.manifest/v1", "opspilot.manifest/v2"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactVersionUnsupported, "apiVersion is opspilot.manifest/v2");
    set_index(dir.path(), &INDEX.replace("kind: InstallBundleIndex", "kind: Something"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactVersionUnsupported, "kind is Something");
    set_index(dir.path(), &INDEX.replace("algo: ed25519", "algo: rsa"));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactVersionUnsupported, "signature.algo");
}

#[test]
fn a_compatibility_matrix_outside_v1_28_to_v1_31_is_unsupported() {
    for (from, to, names) in [
        ("k8sApiMax: v1.31.x", "k8sApiMax: v1.32.0", "k8sApiMax is v1.32.0"),
        ("k8sApiMin: v1.28.0", "k8sApiMin: v1.27.0", "k8sApiMin is v1.27.0"),
        ("k8sApiMin: v1.28.0", "k8sApiMin: soon", "k8sApiMin is \"soon\""),
        ("    version: v1.30.1\n", "    version: v1.27.3\n", "runtimes(k8s).version is v1.27.3"),
        (
            "        arch: amd64\n    dependencies",
            "        arch: arm64\n    dependencies",
            "runtimes(k8s).supportedOSArch lists linux/arm64",
        ),
    ] {
        let dir = assembled();
        assert!(INDEX.contains(from), "{from}");
        set_index(dir.path(), &INDEX.replace(from, to));
        fill_index(dir.path(), &no_progress).unwrap();
        sign(dir.path(), KEY).unwrap();
        assert_error(verify_all(dir.path()), ErrorCode::ArtifactVersionUnsupported, names);
    }
}

#[test]
fn a_missing_hook_is_script_hook_missing() {
    let dir = signed();
    std::fs::remove_file(dir.path().join("hooks/rollback-compose.sh")).unwrap();
    assert_error(Bundle::load(dir.path()), ErrorCode::ScriptHookMissing, "hooks/rollback-compose.sh: missing");
    assert_error(fill_index(dir.path(), &no_progress), ErrorCode::ScriptHookMissing, "hooks/rollback-compose.sh");
}

#[test]
fn a_hook_that_is_not_executable_bash_is_script_hook_missing() {
    let dir = signed();
    let hook = dir.path().join("hooks/preflight.sh");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ScriptHookMissing, "hooks/preflight.sh: not executable");
    write(dir.path(), "hooks/preflight.sh", b"#!/bin/sh\necho hi\n", 0o755);
    fill_index(dir.path(), &no_progress).unwrap();
    sign(dir.path(), KEY).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ScriptHookMissing, "hooks/preflight.sh: not a bash script");
}

#[test]
fn a_changed_hook_is_caught_by_the_hash_fill_index_recorded() {
    let dir = signed();
    let text = index_text(dir.path());
    assert!(text.contains("path: hooks/preflight.sh\n    timeoutSeconds"), "hooks keep their field order:\n{text}");
    write(dir.path(), "hooks/preflight.sh", b"#!/usr/bin/env bash\nrm -rf /\n", 0o755);
    reseal(dir.path());
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "hooks/preflight.sh: sha256 is ");
}

#[test]
fn fill_index_refuses_a_bundle_without_a_required_artifact() {
    let dir = assembled();
    std::fs::remove_file(dir.path().join("bin/linux-amd64/docker-compose")).unwrap();
    assert_error(fill_index(dir.path(), &no_progress), ErrorCode::ArtifactMissing, "bin/linux-amd64/docker-compose (runtime compose");
    assert!(!dir.path().join("checksums/SHA256SUMS").exists(), "nothing is written");
}

#[test]
fn signing_needs_a_pkcs8_key_and_an_indexed_bundle() {
    let dir = assembled();
    assert_error(sign(dir.path(), KEY), ErrorCode::ArtifactChecksumMismatch, "checksums/SHA256SUMS: missing");
    fill_index(dir.path(), &no_progress).unwrap();
    assert_error(sign(dir.path(), "not a key"), ErrorCode::ValidationError, "signing key");
    std::fs::remove_file(dir.path().join("checksums/SHA256SUMS")).unwrap();
    assert_error(sign(dir.path(), KEY), ErrorCode::ArtifactChecksumMismatch, "checksums/SHA256SUMS: missing");
}

#[test]
fn unquoted_scalars_read_as_the_author_meant() {
    let dir = assembled();
    set_index(dir.path(), &INDEX.replace("requiresKernelMin: \"4.19\"", "requiresKernelMin: 4.19").replace("mode: \"0644\"", "mode: 644"));
    let bundle = Bundle::load_with(dir.path(), index::Hashes::Pending).unwrap();
    assert_eq!(bundle.index.compatibility.requires_kernel_min.as_deref(), Some("4.19"));
    assert_eq!(index::parse_mode(&bundle.index.runtimes[0].images[0].mode), Some(0o644));
}

// ---------------------------------------------------------------- scripts hooks source

/// The compose runtime's template entry; the `scripts` section goes after it.
const TEMPLATE_ENTRY: &str =
    "        path: templates/compose/docker-compose.yml.tpl\n        sha256: \"<FILL>\"\n        sizeBytes: 0\n        mode: \"0644\"\n        required: true\n";
const SCRIPT_PATH: &str = "hooks/lib/common.sh";
const SCRIPT_BYTES: &[u8] = b"# shellcheck shell=bash\nlog() { printf '[%s] %s\\n' \"$1\" \"$2\"; }\n";

/// `INDEX` with a `scripts` section in the compose runtime naming `path`.
fn index_with_script(path: &str, required: bool) -> String {
    assert!(INDEX.contains(TEMPLATE_ENTRY));
    let scripts = format!(
        "    scripts:\n      - id: hooks-lib\n        type: script\n        path: {path}\n        sha256: \"<FILL>\"\n        sizeBytes: 0\n        mode: \"0644\"\n        required: {required}\n"
    );
    INDEX.replace(TEMPLATE_ENTRY, &format!("{TEMPLATE_ENTRY}{scripts}"))
}

/// `assembled()` plus a shared hook library listed under the compose runtime's `scripts`.
fn assembled_with_script() -> tempfile::TempDir {
    let dir = assembled();
    write(dir.path(), SCRIPT_PATH, SCRIPT_BYTES, 0o644);
    set_index(dir.path(), &index_with_script(SCRIPT_PATH, true));
    dir
}

fn signed_with_script() -> tempfile::TempDir {
    indexed_and_signed(assembled_with_script())
}

#[test]
fn a_script_hooks_source_is_indexed_verified_and_uploaded_before_the_hooks() {
    let dir = assembled_with_script();
    let report = fill_index(dir.path(), &no_progress).unwrap();
    assert_eq!(report.artifacts_filled, 7, "the script counts as an artifact");
    assert_eq!(report.files_listed, 9);
    sign(dir.path(), KEY).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    let script = &bundle.runtime("compose").unwrap().scripts[0];
    assert_eq!((script.r#type.as_str(), script.size_bytes, script.sha256.len()), ("script", SCRIPT_BYTES.len() as u64, 64));
    let listed: Vec<(Section, &str)> = bundle.runtime("compose").unwrap().artifacts().map(|(s, _, a)| (s, a.path.as_str())).collect();
    assert_eq!(listed.last(), Some(&(Section::Scripts, SCRIPT_PATH)));
    assert_eq!(Section::Scripts.key(), "scripts");
    let report = verify_all(dir.path()).unwrap();
    assert_eq!(report.files_checked, 9);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let files = bundle.files_of("compose").unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.rel_path.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/linux-amd64/docker-compose",
            "bin/linux-amd64/runc",
            "templates/compose/docker-compose.yml.tpl",
            SCRIPT_PATH,
            "hooks/preflight.sh",
            "hooks/rollback-compose.sh",
            "manifests/index.yaml"
        ]
    );
    let lib = &files[3];
    assert_eq!((lib.mode, lib.size, lib.required), (0o644, SCRIPT_BYTES.len() as u64, true));
    assert_eq!(lib.sha256, script.sha256);
    assert_eq!(lib.abs_path, bundle.root.join(SCRIPT_PATH));
    // Another runtime's hosts do not get it.
    assert!(bundle.files_of("k8s").unwrap().iter().all(|f| f.rel_path != SCRIPT_PATH));
}

#[test]
fn an_index_without_scripts_reads_as_none() {
    let dir = signed();
    let bundle = Bundle::load(dir.path()).unwrap();
    assert!(bundle.index.runtimes.iter().all(|r| r.scripts.is_empty()));
}

#[test]
fn a_missing_script_is_artifact_missing() {
    let dir = signed_with_script();
    std::fs::remove_file(dir.path().join(SCRIPT_PATH)).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactMissing, "hooks/lib/common.sh: missing");
    let compose = VerifyOptions { runtime: Some("compose".into()), trusted_public_key: None };
    assert_error(Bundle::load(dir.path()).unwrap().verify(&compose, &no_progress), ErrorCode::ArtifactMissing, "hooks/lib/common.sh: missing");
    assert_error(Bundle::load(dir.path()).unwrap().files_of("compose"), ErrorCode::ArtifactMissing, "runtime compose scripts hooks-lib");
    assert_error(fill_index(dir.path(), &no_progress), ErrorCode::ArtifactMissing, "hooks/lib/common.sh (runtime compose scripts hooks-lib)");
}

#[test]
fn an_optional_script_that_is_absent_only_warns_and_is_not_uploaded() {
    let dir = assembled();
    set_index(dir.path(), &index_with_script(SCRIPT_PATH, false));
    let filled = fill_index(dir.path(), &no_progress).unwrap();
    assert!(filled.warnings.iter().any(|w| w.contains("hooks/lib/common.sh: absent")), "{:?}", filled.warnings);
    sign(dir.path(), KEY).unwrap();
    let report = verify_all(dir.path()).unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("hooks/lib/common.sh: absent")), "{:?}", report.warnings);
    let files = Bundle::load(dir.path()).unwrap().files_of("compose").unwrap();
    assert!(files.iter().all(|f| f.rel_path != SCRIPT_PATH));
}

#[test]
fn one_flipped_byte_in_a_script_is_a_checksum_mismatch() {
    let dir = signed_with_script();
    let path = dir.path().join(SCRIPT_PATH);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[7] ^= 0x01;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "hooks/lib/common.sh: sha256 is ");
    // With SHA256SUMS and its signature made consistent again, the index's sha256 still catches it.
    reseal(dir.path());
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "the index says");
    assert_error(verify_all(dir.path()), ErrorCode::ArtifactChecksumMismatch, "(runtime compose scripts hooks-lib)");
}

#[test]
fn a_script_path_leaving_the_bundle_is_refused() {
    let dir = signed_with_script();
    let good = index_text(dir.path());
    assert!(good.contains("path: hooks/lib/common.sh"));
    for (path, names) in [
        ("../../etc/profile", "\"../../etc/profile\" contains `..`"),
        ("hooks/lib/../../../etc/profile", "scripts[0](hooks-lib).path"),
        ("/etc/profile", "is absolute"),
    ] {
        set_index(dir.path(), &good.replace("path: hooks/lib/common.sh", &format!("path: {path}")));
        assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, names);
        assert_error(fill_index(dir.path(), &no_progress), ErrorCode::ArtifactManifestMissing, names);
    }
    // A symlinked lib directory that points outside the bundle.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("common.sh"), SCRIPT_BYTES).unwrap();
    std::fs::remove_dir_all(dir.path().join("hooks/lib")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("hooks/lib")).unwrap();
    set_index(dir.path(), &good);
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "leaves the bundle through a symlink");
}

#[test]
fn a_script_entry_is_schema_checked_like_the_other_artifacts() {
    let dir = assembled_with_script();
    let text = index_with_script(SCRIPT_PATH, true);
    set_index(dir.path(), &text.replace("type: script", "type: shell"));
    assert_error(Bundle::load_with(dir.path(), index::Hashes::Pending), ErrorCode::ArtifactManifestMissing, "scripts[0](hooks-lib).type");
    set_index(dir.path(), &text.replace("id: hooks-lib", "id: compose-template"));
    assert_error(Bundle::load_with(dir.path(), index::Hashes::Pending), ErrorCode::ArtifactManifestMissing, "id listed twice");
    set_index(dir.path(), &text.replace("path: hooks/lib/common.sh\n        sha256: \"<FILL>\"", "path: hooks/lib/common.sh\n        sha256: \"\""));
    assert_error(Bundle::load(dir.path()), ErrorCode::ArtifactManifestMissing, "no sha256 yet: hooks/lib/common.sh (compose)");
}
