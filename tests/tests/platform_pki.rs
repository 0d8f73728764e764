//! The PKI OpsPilot mints for the clusters it creates, proved against a real
//! kube-apiserver + controller-manager + scheduler (tests/env's binaries)
//! started with nothing but OpsPilot's certificates and service-account key:
//! its serving certificate verifies against OpsPilot's CA, OpsPilot's admin
//! credential works only while its group is bound (revocable), and a renewal
//! shows a new serial on the wire while the control plane keeps answering.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use opspilot_pki::{ClientRole, ClusterPki, ControlPlaneNode, PkiSpec, ADMIN_GROUP};
use opspilot_tests::env;
use serde_json::json;

/// A control plane of its own on free loopback ports, stopped and wiped on drop.
struct ControlPlane {
    pki_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    ports: Vec<(&'static str, u16)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_pki(dir: &Path, pki: &ClusterPki) {
    use std::os::unix::fs::PermissionsExt;
    for f in pki.files() {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
    // The kubeconfig identities the script would otherwise mint with openssl:
    // admin is the break-glass (system:masters) credential.
    for (role, stem) in [(ClientRole::SuperAdmin, "admin"), (ClientRole::ControllerManager, "controller-manager"), (ClientRole::Scheduler, "scheduler")] {
        std::fs::write(dir.join(format!("{stem}.crt")), &pki.client(role).cert_pem).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), &pki.client(role).key_pem).unwrap();
    }
}

impl ControlPlane {
    fn start(pki: &ClusterPki) -> ControlPlane {
        env::shared(); // the binaries are built
        let root = std::env::temp_dir().join(format!("opspilot-pki-{}", uuid::Uuid::new_v4().simple()));
        let (pki_dir, data_dir) = (root.join("pki"), root.join("data"));
        std::fs::create_dir_all(&pki_dir).unwrap();
        write_pki(&pki_dir, pki);
        let ports = vec![
            ("OPSPILOT_APISERVER_PORT", free_port()),
            ("OPSPILOT_ETCD_CLIENT_PORT", free_port()),
            ("OPSPILOT_ETCD_PEER_PORT", free_port()),
            ("OPSPILOT_KCM_PORT", free_port()),
            ("OPSPILOT_SCHEDULER_PORT", free_port()),
            ("OPSPILOT_KWOK_PORT", free_port()),
        ];
        let cp = ControlPlane { pki_dir, data_dir, port: ports[0].1, ports };
        cp.run_start_script();
        cp
    }

    fn run_start_script(&self) {
        let status = Command::new(env::env_dir().join("k8s/start-control-plane.sh"))
            .arg(&self.pki_dir)
            .arg(&self.data_dir)
            .envs(self.ports.iter().map(|(k, v)| (*k, v.to_string())))
            .env("OPSPILOT_FAKE_NODES", "1")
            .status()
            .expect("start-control-plane.sh runs");
        assert!(status.success(), "the control plane did not start with OpsPilot's PKI (logs: /var/cache/opspilot-env/run/logs/*-{}.log)", self.port);
    }

    /// Places renewed certificates and restarts the API server only.
    fn restart_apiserver_with(&self, pki: &ClusterPki) {
        write_pki(&self.pki_dir, pki);
        let pid_file = self.data_dir.join("pids/kube-apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert!(Command::new("kill").arg(pid.trim()).status().unwrap().success());
        while Command::new("kill").args(["-0", pid.trim()]).stderr(std::process::Stdio::null()).status().unwrap().success() {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.run_start_script();
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(env::env_dir().join("k8s/stop-control-plane.sh")).arg(&self.data_dir).arg("--wipe").status();
        let _ = std::fs::remove_dir_all(self.pki_dir.parent().unwrap());
    }
}

async fn client(cp: &ControlPlane, pki: &ClusterPki, role: ClientRole) -> kube::Client {
    let m = pki.client(role);
    let valid = opspilot_k8s::kubeconfig_from_parts(&cp.endpoint(), &pki.ca.cert_pem, None, Some(&m.cert_pem), Some(&m.key_pem)).expect("a valid kubeconfig");
    opspilot_k8s::client(&valid.text, std::time::Duration::from_secs(10)).await.expect("a kube client")
}

/// The serving certificate the API server presents, verified against `ca_pem` (DER).
fn served_certificate(port: u16, ca_pem: &str) -> Vec<u8> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(pem_to_der(ca_pem))).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake verifies against OpsPilot's CA");
    }
    conn.peer_certificates().expect("a certificate")[0].to_vec()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

fn serial_of(der: &[u8]) -> String {
    use base64::Engine;
    let pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64::engine::general_purpose::STANDARD.encode(der));
    opspilot_pki::inspect("served", &pem).unwrap().serial
}

async fn can_list_namespaces(c: &kube::Client) -> Result<usize, u16> {
    match Api::<Namespace>::all(c.clone()).list(&ListParams::default()).await {
        Ok(l) => Ok(l.items.len()),
        Err(kube::Error::Api(e)) => Err(e.code),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn a_control_plane_runs_on_opspilots_pki_and_its_admin_credential_is_revocable_and_renewable() {
    let mut spec = PkiSpec::new("pki-proof", vec![ControlPlaneNode { hostname: "localhost".into(), ip: "127.0.0.1".parse().unwrap() }], "10.96.0.0/12");
    spec.leaf_days = 90;
    let pki = ClusterPki::generate(&spec, chrono::Utc::now()).unwrap();
    let cp = ControlPlane::start(&pki);

    // The serving certificate is OpsPilot's apiserver leaf, verified by its CA.
    let served = served_certificate(cp.port, &pki.ca.cert_pem);
    assert_eq!(serial_of(&served), pki.leaf("apiserver").unwrap().info.serial);

    // OpsPilot's admin credential authenticates but may do nothing until its group is bound.
    let admin = client(&cp, &pki, ClientRole::OpsPilotAdmin).await;
    assert_eq!(can_list_namespaces(&admin).await, Err(403));
    let break_glass = client(&cp, &pki, ClientRole::SuperAdmin).await;
    let bindings = Api::<ClusterRoleBinding>::all(break_glass.clone());
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "opspilot:cluster-admins" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ADMIN_GROUP }]
    }))
    .unwrap();
    bindings.create(&PostParams::default(), &binding).await.unwrap();
    assert!(opspilot_tests::eventually(std::time::Duration::from_secs(20), async || can_list_namespaces(&admin).await.is_ok()).await, "bound admin may list namespaces");
    let probe = opspilot_k8s::probe(&admin).await.unwrap();
    assert!(probe.missing().is_empty(), "a release needs nothing more: {:?}", probe.missing());

    // Deleting the binding revokes it; binding again restores it.
    bindings.delete("opspilot:cluster-admins", &DeleteParams::default()).await.unwrap();
    assert!(opspilot_tests::eventually(std::time::Duration::from_secs(20), async || can_list_namespaces(&admin).await == Err(403)).await, "revoked admin is refused");
    bindings.create(&PostParams::default(), &binding).await.unwrap();

    // Renewed leaves with the same CA: a new serial on the wire, the new admin credential works.
    let renewed = pki.renew_leaves(&spec, chrono::Utc::now()).unwrap();
    cp.restart_apiserver_with(&renewed);
    let served = served_certificate(cp.port, &pki.ca.cert_pem);
    assert_eq!(serial_of(&served), renewed.leaf("apiserver").unwrap().info.serial);
    assert_ne!(serial_of(&served), pki.leaf("apiserver").unwrap().info.serial);
    let admin = client(&cp, &renewed, ClientRole::OpsPilotAdmin).await;
    assert!(opspilot_tests::eventually(std::time::Duration::from_secs(20), async || can_list_namespaces(&admin).await.is_ok()).await, "renewed admin credential works");
}
