//! The real test environments of `tests/env`: a Kubernetes control plane on
//! loopback, SSH hosts with nested Docker, a signed test bundle. Shared by
//! every test of a run; started by `tests/env/envctl up` when not running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// Hosts the shared environment runs: the smoke script rotates the host key of
/// the last one, so tests that pin keys use the first three.
pub const HOSTS: usize = 4;

/// The folder of the harness scripts.
pub fn env_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("env")
}

fn env_json_path() -> PathBuf {
    std::env::var("OPSPILOT_ENV_JSON").map(PathBuf::from).unwrap_or_else(|_| "/var/cache/opspilot-env/run/env.json".into())
}

/// The environment's description (`env.json`), after making sure it runs.
pub fn shared() -> &'static Value {
    static ENV: OnceLock<Value> = OnceLock::new();
    ENV.get_or_init(|| {
        let envctl = env_dir().join("envctl");
        // `up` is idempotent (seconds when everything runs) and brings back a
        // host a fault test left stopped; one at a time across test binaries.
        {
            // -o: the daemons `up` starts must not inherit the lock.
            let status = Command::new("flock")
                .args(["-o", "/var/cache/opspilot-env.lock"])
                .arg(&envctl)
                .args(["up", "--hosts", &HOSTS.to_string()])
                .status()
                .expect("tests/env/envctl runs");
            assert!(status.success(), "tests/env/envctl up failed: the test environment could not be started");
        }
        let text = std::fs::read_to_string(env_json_path()).expect("env.json exists after envctl up");
        serde_json::from_str(&text).expect("env.json is JSON")
    })
}

/// A kube client with the admin's client certificate.
pub async fn kube_admin() -> kube::Client {
    kube_client(shared()["k8s"]["adminKubeconfig"].as_str().expect("adminKubeconfig")).await
}

/// A kube client from a kubeconfig file.
pub async fn kube_client(path: &str) -> kube::Client {
    // kube's rustls needs a process-wide crypto provider; the first call wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig readable");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig valid");
    kube::Client::try_from(config).expect("kube client")
}

/// A fresh namespace for one test.
pub async fn fresh_namespace(client: &kube::Client) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let ns: Namespace = serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
    kube::Api::<Namespace>::all(client.clone()).create(&Default::default(), &ns).await.expect("namespace created");
    name
}

/// An SSH target for host `i` as root (key) or as `ops` (password).
pub fn ssh_target(i: usize, as_root: bool) -> opspilot_ssh::SshTarget {
    let h = &shared()["hosts"][i];
    let (user, auth) = if as_root {
        let key = std::fs::read_to_string(h["root"]["privateKeyPath"].as_str().unwrap()).expect("root key");
        ("root", opspilot_ssh::SshAuth::PrivateKey(key))
    } else {
        ("ops", opspilot_ssh::SshAuth::Password(h["nonRoot"]["password"].as_str().unwrap().into()))
    };
    opspilot_ssh::SshTarget {
        address: h["ip"].as_str().unwrap().into(),
        port: h["port"].as_u64().unwrap_or(22) as u16,
        user: user.into(),
        auth,
        pinned_fingerprint: h["hostKey"]["fingerprint"].as_str().unwrap().into(),
        connect_timeout: Duration::from_secs(10),
    }
}

/// The repository's `script/` (hooks, templates, index) with the test
/// bundle's real binaries and images dropped in, indexed and signed with the
/// test signing key by `opspilot bundle index` and `bundle sign` — a bundle
/// assembled the way a user assembles one. Made once per test process.
pub fn compose_bundle() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(format!("/var/cache/opspilot-env/run/test-bundles/{}-base", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../script");
        for sub in ["manifests", "hooks", "templates"] {
            copy_tree(&repo_script.join(sub), &dir.join(sub), false);
        }
        let test_bundle = PathBuf::from(shared()["bundle"]["dir"].as_str().expect("bundle dir"));
        copy_tree(&test_bundle.join("bin"), &dir.join("bin"), true);
        copy_tree(&test_bundle.join("images"), &dir.join("images"), true);
        // The k8s runtime's images (envctl builds them): the index lists them by version.
        let k8s_images = PathBuf::from(shared()["images"]["k8sImagesDir"].as_str().expect("k8sImagesDir"));
        let version = shared()["k8s"]["version"].as_str().expect("k8s version");
        copy_tree(&k8s_images, &dir.join(format!("images/k8s-{version}")), true);
        std::fs::create_dir_all(dir.join("checksums")).unwrap();
        resign(&dir);
        dir
    })
}

/// Re-indexes and re-signs a bundle (after a test changed a hook).
pub fn resign(dir: &Path) {
    let key = shared()["bundle"]["privateKeyPath"].as_str().expect("bundle key");
    for args in [vec!["bundle", "index", dir.to_str().unwrap()], vec!["bundle", "sign", dir.to_str().unwrap(), "--key", key]] {
        let out = Command::new(crate::opspilot_bin()).args(&args).output().expect("opspilot bundle runs");
        assert!(out.status.success(), "opspilot {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}

/// A private copy of the compose bundle (big files hard-linked: a test that
/// changes a file must replace it, not write into it).
pub fn bundle_copy(tag: &str) -> PathBuf {
    let base = compose_bundle();
    let dir = PathBuf::from(format!("/var/cache/opspilot-env/run/test-bundles/{}-{tag}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]));
    copy_tree(base, &dir, true);
    dir
}

/// The base64 public key the test bundles are signed with.
pub fn bundle_public_key() -> String {
    std::fs::read_to_string(compose_bundle().join("checksums/public.key")).expect("public.key").trim().to_string()
}

fn copy_tree(from: &Path, to: &Path, link: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst, link);
        } else if link && std::fs::hard_link(&src, &dst).is_ok() {
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Runs `envctl host ACTION NAME` (faults: stop, start, rotate-hostkey, ...).
pub fn host_fault(action: &str, i: usize) {
    let name = shared()["hosts"][i]["name"].as_str().expect("host name").to_string();
    let status = Command::new("flock").args(["-o", "/var/cache/opspilot-env.lock"]).arg(env_dir().join("envctl")).args(["host", action, &name]).status().expect("envctl runs");
    assert!(status.success(), "envctl host {action} {name} failed");
}

/// Runs a shell command inside test host `i` (docker exec), answering stdout.
pub fn on_host(i: usize, script: &str) -> String {
    in_container(shared()["hosts"][i]["container"].as_str().expect("container"), script)
}

/// Undoes what an earlier, interrupted run installed on a test host (a
/// machine that keeps its test hosts between runs would otherwise fail every
/// later run): the staged bundle's own rollback hook with `purge`, then
/// OpsPilot's staging directory. Says on stderr when there was something.
pub fn make_fresh(container: &str) {
    let script = r#"
        [ -f /opt/opspilot/script/hooks/rollback.sh ] || { rm -rf /opt/opspilot; exit 0; }
        echo "leftovers of an earlier run: rolling them back" >&2
        docker rm -f $(docker ps -aq) >/dev/null 2>&1
        mkdir -p /opt/opspilot/tasks/reset
        echo '{"install_options": {"purge": "true"}}' > /opt/opspilot/tasks/reset/context.json
        OPS_TASK_ID=reset bash /opt/opspilot/script/hooks/rollback.sh >&2
        rm -rf /opt/opspilot
    "#;
    let out = Command::new("docker").args(["exec", container, "bash", "-c", script]).output().expect("docker exec runs");
    if !out.stderr.is_empty() {
        eprintln!("{container}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs `script` as root inside a test host's container; answers its stdout.
pub fn in_container(container: &str, script: &str) -> String {
    let out = Command::new("docker").args(["exec", container, "sh", "-c", script]).output().expect("docker exec runs");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The host key fingerprint host `i` presents now (read inside the host).
pub fn host_fingerprint(i: usize) -> String {
    let line = on_host(i, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
    line.split_whitespace().nth(1).expect("fingerprint").to_string()
}
