//! `opspilot bundle index | sign | verify` on the real signed test bundle of
//! tests/env (~500 MB of real binaries), through the real binary: it accepts
//! the bundle as assembled, names the file in every refusal (flipped byte,
//! removed binary, edited SHA256SUMS, a path leaving the bundle), and a
//! re-index plus re-sign makes a changed bundle verify again.

use std::path::{Path, PathBuf};
use std::process::Command;

use opspilot_tests::{env, opspilot_bin};

/// A private copy of the test bundle, removed when dropped.
struct BundleCopy {
    dir: PathBuf,
}

impl Drop for BundleCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl BundleCopy {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn index(&self) -> String {
        std::fs::read_to_string(self.path("manifests/index.yaml")).unwrap()
    }

    fn set_index(&self, text: &str) {
        std::fs::write(self.path("manifests/index.yaml"), text).unwrap();
    }
}

fn source_dir() -> PathBuf {
    PathBuf::from(env::shared()["bundle"]["dir"].as_str().expect("env.json names the bundle dir"))
}

fn signing_key() -> String {
    env::shared()["bundle"]["privateKeyPath"].as_str().expect("env.json names the signing key").to_string()
}

/// Copies the test bundle. The large binaries under bin/ are hard links —
/// except those in `copied`, which a test is about to change in place; every
/// other file is a real copy. Files the CLI rewrites are replaced by rename,
/// so the shared bundle is never written through a link.
fn copy_bundle(copied: &[&str]) -> BundleCopy {
    let source = source_dir();
    let dir = std::env::temp_dir().join(format!("opspilot-bundle-{}", uuid::Uuid::new_v4().simple()));
    let copy = BundleCopy { dir };
    copy_tree(&source, &copy.dir, "", copied);
    copy
}

fn copy_tree(from: &Path, to: &Path, rel: &str, copied: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &rel, copied);
        } else if rel.starts_with("bin/") && !copied.contains(&rel.as_str()) && std::fs::hard_link(entry.path(), &target).is_ok() {
            // linked
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `opspilot bundle ...`; answers (exit code, stdout, stderr).
fn bundle(args: &[&str]) -> (i32, String, String) {
    bundle_with_env(args, &[])
}

fn bundle_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(opspilot_bin());
    cmd.arg("bundle").args(args).env_remove("DATABASE_URL").env_remove("OPSPILOT_BUNDLE_SIGNING_KEY_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("opspilot runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn verify(copy: &BundleCopy) -> (i32, String, String) {
    let dir = copy.dir.to_str().unwrap();
    let trusted = source_dir().join("checksums/public.key");
    bundle(&["verify", dir, "--trusted-key", trusted.to_str().unwrap()])
}

#[track_caller]
fn assert_refused(answer: (i32, String, String), line_start: &str) {
    let (code, stdout, stderr) = answer;
    assert_eq!(code, 2, "expected exit 2\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains(line_start), "stderr should contain {line_start:?}:\n{stderr}");
    assert!(stderr.contains("\nhint: "), "the dictionary hint is printed:\n{stderr}");
}

#[test]
fn the_test_bundle_verifies_with_its_own_key_trusted() {
    let copy = copy_bundle(&[]);
    let (code, stdout, stderr) = verify(&copy);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let public = std::fs::read_to_string(source_dir().join("checksums/public.key")).unwrap();
    assert!(stdout.contains("bundle v1.31.14-opspilot-test.1"), "{stdout}");
    assert!(stdout.contains("runtimes checked: k8s v1.31.14, compose v2.40.3"), "{stdout}");
    assert!(stdout.contains("files checked: 15 ("), "{stdout}");
    assert!(stdout.contains(&format!("signed by: {} (the trusted key)", public.trim())), "{stdout}");
    assert!(stdout.contains("warnings: none"), "{stdout}");

    // One runtime only: the other runtime's binaries may be absent.
    std::fs::remove_file(copy.path("bin/linux-amd64/kubeadm")).unwrap();
    let (code, stdout, stderr) = bundle(&["verify", copy.dir.to_str().unwrap(), "--runtime", "compose"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("bin/linux-amd64/kubeadm: absent (not needed by runtime compose)"), "{stdout}");
}

#[test]
fn one_flipped_byte_in_runc_is_a_checksum_mismatch_naming_runc() {
    let copy = copy_bundle(&["bin/linux-amd64/runc"]);
    let runc = copy.path("bin/linux-amd64/runc");
    let mut bytes = std::fs::read(&runc).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&runc, bytes).unwrap();
    assert_refused(verify(&copy), "error 32010 artifact_checksum_mismatch: bin/linux-amd64/runc: sha256 is ");
}

#[test]
fn a_removed_docker_compose_is_artifact_missing() {
    let copy = copy_bundle(&[]);
    std::fs::remove_file(copy.path("bin/linux-amd64/docker-compose")).unwrap();
    assert_refused(verify(&copy), "error 32009 artifact_missing: bin/linux-amd64/docker-compose: missing");
}

#[test]
fn an_edited_sha256sums_fails_the_signature() {
    let copy = copy_bundle(&[]);
    let sums = copy.path("checksums/SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    // Make the list claim the hash of the flipped runc: the signature catches it.
    let edited: String = text
        .lines()
        .map(|l| if l.ends_with("  bin/linux-amd64/runc") { format!("{}{}\n", "0".repeat(64), &l[64..]) } else { format!("{l}\n") })
        .collect();
    assert_ne!(edited, text);
    std::fs::write(&sums, edited).unwrap();
    assert_refused(verify(&copy), "error 32010 artifact_checksum_mismatch: checksums/SHA256SUMS.sig: the signature does not verify");
}

#[test]
fn a_path_leaving_the_bundle_is_artifact_manifest_missing() {
    let copy = copy_bundle(&[]);
    let index = copy.index();
    assert!(index.contains("path: images/busybox.tar"));
    copy.set_index(&index.replacen("path: images/busybox.tar", "path: ../../etc/passwd", 1));
    assert_refused(verify(&copy), "error 32008 artifact_manifest_missing: manifests/index.yaml: runtimes[0](k8s).images[0](busybox-image-1).path: \"../../etc/passwd\"");
}

#[test]
fn index_and_sign_make_a_bundle_with_an_added_hook_verify_again() {
    let copy = copy_bundle(&[]);
    let dir = copy.dir.to_str().unwrap();
    std::fs::create_dir_all(copy.path("hooks")).unwrap();
    std::fs::write(copy.path("hooks/preflight.sh"), "#!/usr/bin/env bash\nset -euo pipefail\necho \"[INFO] step=preflight host=$(hostname)\"\n").unwrap();
    std::fs::set_permissions(copy.path("hooks/preflight.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The compose runtime (the second one) runs it on every node.
    let index = copy.index();
    let at = index.rfind("    hooks: []\n").expect("the compose runtime has no hooks yet");
    let hook = "    hooks:\n      - name: preflight.sh\n        path: hooks/preflight.sh\n        timeoutSeconds: 300\n        retryable: false\n        maxRetries: 0\n        runOn: all\n        inputs: [OPS_TASK_ID, OPS_RUNTIME_TYPE]\n        outputs: [preflight_summary]\n";
    copy.set_index(&format!("{}{hook}{}", &index[..at], &index[at + "    hooks: []\n".len()..]));

    // Changed index, uncovered hook: refused until re-indexed and re-signed.
    assert_refused(verify(&copy), "error 32010 artifact_checksum_mismatch: ");

    let (code, stdout, stderr) = bundle(&["index", dir]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("hooks: 1"), "{stdout}");
    assert!(stdout.contains("SHA256SUMS: 16 files"), "{stdout}");
    let (code, stdout, stderr) = bundle(&["sign", dir, "--key", &signing_key()]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");

    let (code, stdout, stderr) = verify(&copy);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("files checked: 16 ("), "{stdout}");
    let sums = std::fs::read_to_string(copy.path("checksums/SHA256SUMS")).unwrap();
    assert!(sums.contains("  hooks/preflight.sh\n"), "{sums}");
    assert!(copy.index().contains("sha256:"), "the hook's hash is in the index");

    // The key may come from the environment instead of --key; same key, same public key.
    let (code, stdout, stderr) = bundle_with_env(&["sign", dir], &[("OPSPILOT_BUNDLE_SIGNING_KEY_FILE", &signing_key())]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(verify(&copy).0, 0);

    // The shared bundle was not touched through the hard links.
    let (code, stdout, stderr) = bundle(&["verify", source_dir().to_str().unwrap()]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
}
