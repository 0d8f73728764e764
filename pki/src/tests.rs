use super::*;

fn spec() -> PkiSpec {
    let mut s = PkiSpec::new(
        "prod-a",
        vec![
            ControlPlaneNode { hostname: "cp-1".into(), ip: "172.30.0.11".parse().unwrap() },
            ControlPlaneNode { hostname: "cp-2".into(), ip: "172.30.0.12".parse().unwrap() },
            ControlPlaneNode { hostname: "cp-3".into(), ip: "172.30.0.13".parse().unwrap() },
        ],
        "10.96.0.0/12",
    );
    s.vip = Some("172.30.0.100".parse().unwrap());
    s
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
}

#[test]
fn the_apiserver_answers_to_every_name_a_client_may_use() {
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    let sans = &pki.leaf("apiserver").unwrap().info.sans;
    for want in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        "10.96.0.1",
        "cp-1",
        "cp-3",
        "172.30.0.11",
        "172.30.0.13",
        "172.30.0.100",
    ] {
        assert!(sans.contains(&want.to_string()), "{want} missing from {sans:?}");
    }
}

#[test]
fn every_leaf_is_signed_by_its_own_ca_and_not_by_the_others() {
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    let issuer_of = |stem: &str| match stem {
        s if s.starts_with("etcd/") || s == "apiserver-etcd-client" => &pki.etcd_ca,
        "front-proxy-client" => &pki.front_proxy_ca,
        _ => &pki.ca,
    };
    for (stem, leaf) in &pki.leaves {
        let ca = issuer_of(stem);
        assert!(issued_by(&leaf.cert_pem, &ca.cert_pem), "{stem} not signed by {}", ca.info.id);
        assert_eq!(leaf.info.issuer, ca.info.subject, "{stem}");
        for other in [&pki.ca, &pki.front_proxy_ca, &pki.etcd_ca].into_iter().filter(|o| o.info.id != ca.info.id) {
            assert!(!issued_by(&leaf.cert_pem, &other.cert_pem), "{stem} also verifies with {}", other.info.id);
        }
        assert!(!leaf.info.is_ca, "{stem}");
    }
    for (role, m) in &pki.clients {
        assert!(issued_by(&m.cert_pem, &pki.ca.cert_pem), "{role:?}");
    }
    assert!(pki.ca.info.is_ca && pki.etcd_ca.info.is_ca && pki.front_proxy_ca.info.is_ca);
}

#[test]
fn lifetimes_are_ten_years_for_cas_and_one_year_for_leaves_unless_configured() {
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    assert_eq!(pki.ca.info.days_left(now()), 3650);
    assert_eq!(pki.leaf("apiserver").unwrap().info.days_left(now()), 365);
    let mut short = spec();
    short.leaf_days = 30;
    short.ca_days = 365;
    let pki = ClusterPki::generate(&short, now()).unwrap();
    assert_eq!(pki.client(ClientRole::OpsPilotAdmin).info.days_left(now()), 30);
    assert_eq!(pki.etcd_ca.info.days_left(now()), 365);
    short.leaf_days = 400;
    assert_eq!(ClusterPki::generate(&short, now()).unwrap_err().code, ErrorCode::ValidationError);
}

#[test]
fn opspilot_admin_is_in_its_revocable_group_and_only_the_break_glass_credential_is_system_masters() {
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    let admin = &pki.client(ClientRole::OpsPilotAdmin).info.subject;
    assert!(admin.contains("O=opspilot:cluster-admins") && admin.contains("CN=opspilot-admin"), "{admin}");
    let masters: Vec<_> = pki.inventory().into_iter().filter(|c| c.subject.contains("system:masters")).map(|c| c.id).collect();
    assert_eq!(masters, ["super-admin.conf"]);
}

#[test]
fn renewal_keeps_the_cas_and_gives_every_leaf_a_new_serial_and_key() {
    let spec = spec();
    let pki = ClusterPki::generate(&spec, now()).unwrap();
    let later = now() + Duration::days(300);
    let renewed = pki.renew_leaves(&spec, later).unwrap();
    assert_eq!(renewed.ca.cert_pem, pki.ca.cert_pem);
    assert_eq!(renewed.sa_key_pem, pki.sa_key_pem);
    for ((stem, old), (_, new)) in pki.leaves.iter().zip(&renewed.leaves) {
        assert_ne!(old.info.serial, new.info.serial, "{stem}");
        assert_ne!(old.key_pem, new.key_pem, "{stem}");
        assert_eq!(new.info.days_left(later), 365, "{stem}");
    }
    let api = renewed.leaf("apiserver").unwrap();
    assert!(issued_by(&api.cert_pem, &pki.ca.cert_pem));
}

#[test]
fn the_files_are_kubeadms_layout_with_private_keys_closed() {
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    let files = pki.files();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for want in [
        "ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "apiserver.crt", "apiserver.key",
        "apiserver-kubelet-client.crt", "front-proxy-client.crt", "etcd/server.crt", "etcd/peer.key", "etcd/healthcheck-client.crt",
        "apiserver-etcd-client.key", "sa.key", "sa.pub",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    for f in &files {
        let secret = f.path.ends_with(".key");
        assert_eq!(f.mode, if secret { 0o600 } else { 0o644 }, "{}", f.path);
        assert_eq!(f.contents.contains("PRIVATE KEY"), secret, "{}", f.path);
    }
}

#[test]
fn the_sealed_form_reads_back_to_the_same_pki() {
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    let back = ClusterPki::from_sealed_json(&pki.to_sealed_json()).unwrap();
    assert_eq!(back.inventory(), pki.inventory());
    assert_eq!(back.bootstrap_token, pki.bootstrap_token);
    assert!(ClusterPki::from_sealed_json(&serde_json::json!({})).is_err());
}

#[test]
fn the_bootstrap_token_has_kubeadms_shape() {
    let t = ClusterPki::generate(&spec(), now()).unwrap().bootstrap_token;
    let (id, secret) = t.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16));
    assert!(t.bytes().all(|b| b == b'.' || b.is_ascii_lowercase() || b.is_ascii_digit()));
}

#[test]
fn bad_specs_are_refused_with_what_is_wrong() {
    let mut s = spec();
    s.service_cidr = "10.96.0.0".into();
    assert!(ClusterPki::generate(&s, now()).unwrap_err().to_string().contains("service_cidr"));
    let mut s = spec();
    s.control_plane.clear();
    assert!(ClusterPki::generate(&s, now()).is_err());
    let mut s = spec();
    s.control_plane[0].hostname = "bad host".into();
    assert!(ClusterPki::generate(&s, now()).unwrap_err().to_string().contains("bad host"));
    assert_eq!(spec().first_service_ip().unwrap().to_string(), "10.96.0.1");
    let mut v6 = spec();
    v6.service_cidr = "fd00:10:96::/112".into();
    assert_eq!(v6.first_service_ip().unwrap().to_string(), "fd00:10:96::1");
}

#[test]
fn inspect_refuses_what_is_not_a_certificate() {
    assert_eq!(inspect("x", "hello").unwrap_err().code, ErrorCode::CertificateInvalid);
    let pki = ClusterPki::generate(&spec(), now()).unwrap();
    assert!(inspect("x", &pki.ca.key_pem).is_err());
}
