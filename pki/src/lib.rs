//! The PKI of a cluster OpsPilot creates: the three CAs kubeadm expects
//! (cluster, front-proxy, etcd), every leaf under `/etc/kubernetes/pki`, the
//! service-account key pair, the client certificates behind the kubeconfigs,
//! OpsPilot's own admin credential and a break-glass one, and the bootstrap
//! token. Minted with rcgen (ECDSA P-256, which every Kubernetes component
//! accepts), read back with x509-parser. Pure: no files, no clock, no I/O.

use std::net::IpAddr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use opspilot_domain::{DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The group OpsPilot's admin credential is in; a ClusterRoleBinding binds it
/// to `cluster-admin`, so deleting that binding revokes the credential.
pub const ADMIN_GROUP: &str = "opspilot:cluster-admins";
/// The user name of OpsPilot's admin credential.
pub const ADMIN_USER: &str = "opspilot-admin";

pub use opspilot_domain::cluster::CertInfo;

type Result<T> = std::result::Result<T, DomainError>;

fn mint_failed(e: rcgen::Error) -> DomainError {
    DomainError::new(ErrorCode::InternalError, format!("certificate generation failed: {e}"))
}

fn invalid_spec(field: &str, why: impl std::fmt::Display) -> DomainError {
    DomainError::validation(field, why)
}

/// A control-plane node, named in the serving certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneNode {
    pub hostname: String,
    pub ip: IpAddr,
}

/// What the PKI is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PkiSpec {
    pub cluster_name: String,
    pub control_plane: Vec<ControlPlaneNode>,
    /// The network entry's VIP (SPEC §10), when the cluster has one.
    pub vip: Option<IpAddr>,
    /// e.g. `10.96.0.0/12`; its first address is the `kubernetes` service IP.
    pub service_cidr: String,
    pub dns_domain: String,
    pub ca_days: i64,
    pub leaf_days: i64,
}

impl PkiSpec {
    /// Defaults as kubeadm has them: CAs 10 years, leaves 1 year, `cluster.local`.
    pub fn new(cluster_name: &str, control_plane: Vec<ControlPlaneNode>, service_cidr: &str) -> Self {
        PkiSpec {
            cluster_name: cluster_name.into(),
            control_plane,
            vip: None,
            service_cidr: service_cidr.into(),
            dns_domain: "cluster.local".into(),
            ca_days: 3650,
            leaf_days: 365,
        }
    }

    /// The first address of the service range (the `kubernetes` service's ClusterIP).
    pub fn first_service_ip(&self) -> Result<IpAddr> {
        let invalid = || invalid_spec("service_cidr", format!("{:?} is not an IPv4 or IPv6 CIDR", self.service_cidr));
        let (net, bits) = self.service_cidr.split_once('/').ok_or_else(invalid)?;
        let bits: u32 = bits.parse().map_err(|_| invalid())?;
        match net.parse::<IpAddr>().map_err(|_| invalid())? {
            IpAddr::V4(v4) if bits < 32 => {
                let base = u32::from(v4) & (u32::MAX.checked_shl(32 - bits).unwrap_or(0));
                Ok(IpAddr::V4((base + 1).into()))
            }
            IpAddr::V6(v6) if bits < 128 => {
                let base = u128::from(v6) & (u128::MAX.checked_shl(128 - bits).unwrap_or(0));
                Ok(IpAddr::V6((base + 1).into()))
            }
            _ => Err(invalid()),
        }
    }

    /// The names the API server answers to.
    pub fn apiserver_sans(&self) -> Result<Vec<String>> {
        let mut sans = vec![
            "kubernetes".to_string(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            format!("kubernetes.default.svc.{}", self.dns_domain),
            "localhost".into(),
        ];
        for node in &self.control_plane {
            sans.push(node.hostname.clone());
        }
        sans.push("127.0.0.1".into());
        sans.push(self.first_service_ip()?.to_string());
        for node in &self.control_plane {
            sans.push(node.ip.to_string());
        }
        if let Some(vip) = self.vip {
            sans.push(vip.to_string());
        }
        dedup(&mut sans);
        Ok(sans)
    }

    /// The names etcd's server and peer certificates carry.
    fn etcd_sans(&self) -> Vec<String> {
        let mut sans = vec!["localhost".to_string()];
        sans.extend(self.control_plane.iter().map(|n| n.hostname.clone()));
        sans.push("127.0.0.1".into());
        sans.push("::1".into());
        sans.extend(self.control_plane.iter().map(|n| n.ip.to_string()));
        dedup(&mut sans);
        sans
    }

    fn validate(&self) -> Result<()> {
        if self.control_plane.is_empty() {
            return Err(invalid_spec("control_plane", "a cluster needs at least one control-plane node"));
        }
        if self.ca_days < 1 || self.leaf_days < 1 || self.leaf_days > self.ca_days {
            return Err(invalid_spec("leaf_days", format!("lifetimes must be at least a day and leaves ({} days) may not outlive the CA ({} days)", self.leaf_days, self.ca_days)));
        }
        if let Some(bad) = self.control_plane.iter().find(|n| !is_dns_label_name(&n.hostname)) {
            return Err(invalid_spec("control_plane.hostname", format!("{:?} is not a DNS name", bad.hostname)));
        }
        self.first_service_ip().map(|_| ())
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

fn is_dns_label_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-') && !l.ends_with('-'))
}

/// Reads a PEM certificate (the first one in the text).
pub fn inspect(id: &str, pem: &str) -> Result<CertInfo> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes()).map_err(|_| DomainError::new(ErrorCode::CertificateInvalid, format!("{id}: not a PEM certificate")))?;
    let cert = p.parse_x509().map_err(|e| DomainError::new(ErrorCode::CertificateInvalid, format!("{id}: not an X.509 certificate: {e}")))?;
    let time = |t: x509_parser::time::ASN1Time| Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or_default();
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => ip_from_bytes(b).map(|ip| ip.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    Ok(CertInfo {
        id: id.into(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        serial: cert.raw_serial_as_string().replace(':', ""),
        fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(&p.contents))),
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        is_ca: cert.is_ca(),
    })
}

/// True when `cert_pem` is signed by the key of `ca_pem`.
pub fn issued_by(cert_pem: &str, ca_pem: &str) -> bool {
    let parse = |pem: &str| x509_parser::pem::parse_x509_pem(pem.trim().as_bytes()).ok().map(|(_, p)| p);
    let (Some(cert), Some(ca)) = (parse(cert_pem), parse(ca_pem)) else { return false };
    let (Ok(cert), Ok(ca)) = (cert.parse_x509(), ca.parse_x509()) else { return false };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// A certificate with its key, as placed on a node.
#[derive(Clone)]
pub struct Minted {
    pub info: CertInfo,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("info", &self.info).field("key_pem", &"<sealed>").finish()
    }
}

impl Minted {
    fn signer(&self) -> Result<(Issuer<'static, KeyPair>, KeyPair)> {
        let bad = |e: rcgen::Error| DomainError::new(ErrorCode::CertificateInvalid, format!("{}: the CA cannot sign: {e}", self.info.id));
        let key = KeyPair::from_pem(&self.key_pem).map_err(bad)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, KeyPair::from_pem(&self.key_pem).map_err(bad)?).map_err(bad)?;
        Ok((issuer, key))
    }
}

/// What a client certificate is for; kubeconfigs are rendered from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRole {
    /// `admin.conf`: kubeadm's `kubeadm:cluster-admins` group.
    KubeadmAdmin,
    /// `super-admin.conf`: `system:masters`, break-glass only.
    SuperAdmin,
    ControllerManager,
    Scheduler,
    /// OpsPilot's own credential, in [`ADMIN_GROUP`].
    OpsPilotAdmin,
}

impl ClientRole {
    fn subject(self) -> (&'static str, Option<&'static str>) {
        match self {
            ClientRole::KubeadmAdmin => ("kubernetes-admin", Some("kubeadm:cluster-admins")),
            ClientRole::SuperAdmin => ("kubernetes-super-admin", Some("system:masters")),
            ClientRole::ControllerManager => ("system:kube-controller-manager", None),
            ClientRole::Scheduler => ("system:kube-scheduler", None),
            ClientRole::OpsPilotAdmin => (ADMIN_USER, Some(ADMIN_GROUP)),
        }
    }

    /// The id of its certificate in the inventory.
    pub fn id(self) -> &'static str {
        match self {
            ClientRole::KubeadmAdmin => "admin.conf",
            ClientRole::SuperAdmin => "super-admin.conf",
            ClientRole::ControllerManager => "controller-manager.conf",
            ClientRole::Scheduler => "scheduler.conf",
            ClientRole::OpsPilotAdmin => "opspilot-admin",
        }
    }

    pub const ALL: [ClientRole; 5] = [ClientRole::KubeadmAdmin, ClientRole::SuperAdmin, ClientRole::ControllerManager, ClientRole::Scheduler, ClientRole::OpsPilotAdmin];
}

/// Everything a cluster's control plane needs, before `kubeadm init`.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    pub ca: Minted,
    pub front_proxy_ca: Minted,
    pub etcd_ca: Minted,
    /// Leaves under `pki/`, by their kubeadm file stem (`apiserver`, `etcd/server`, ...).
    pub leaves: Vec<(String, Minted)>,
    /// Client certificates behind kubeconfigs.
    pub clients: Vec<(ClientRole, Minted)>,
    pub sa_key_pem: String,
    pub sa_pub_pem: String,
    /// `[a-z0-9]{6}.[a-z0-9]{16}`, for `kubeadm join`.
    pub bootstrap_token: String,
}

/// A file to place on a control-plane node, relative to `/etc/kubernetes/pki`.
#[derive(Debug, Clone)]
pub struct PkiFile {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}

struct Profile<'a> {
    cn: &'a str,
    org: Option<&'a str>,
    sans: &'a [String],
    server: bool,
    client: bool,
}

fn lifetime(params: &mut CertificateParams, now: DateTime<Utc>, days: i64) {
    let start = now - Duration::minutes(5);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(start.timestamp()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    params.not_after = time::OffsetDateTime::from_unix_timestamp((now + Duration::days(days)).timestamp()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::thread_rng().gen();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn mint_ca(id: &str, cn: &str, now: DateTime<Utc>, days: i64) -> Result<Minted> {
    let key = KeyPair::generate().map_err(mint_failed)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyCertSign];
    params.serial_number = Some(random_serial());
    lifetime(&mut params, now, days);
    let cert = params.self_signed(&key).map_err(mint_failed)?;
    let cert_pem = cert.pem();
    Ok(Minted { info: inspect(id, &cert_pem)?, cert_pem, key_pem: key.serialize_pem() })
}

fn mint_leaf(id: &str, ca: &Minted, p: Profile<'_>, now: DateTime<Utc>, days: i64) -> Result<Minted> {
    let key = KeyPair::generate().map_err(mint_failed)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = p.org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, p.cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if p.server {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if p.client {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = p
        .sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s.as_str().try_into().map(SanType::DnsName).map_err(|_| invalid_spec("sans", format!("{s:?} is not a DNS name"))),
        })
        .collect::<Result<_>>()?;
    params.serial_number = Some(random_serial());
    lifetime(&mut params, now, days);
    let (issuer, _) = ca.signer()?;
    let cert = params.signed_by(&key, &issuer).map_err(mint_failed)?;
    let cert_pem = cert.pem();
    Ok(Minted { info: inspect(id, &cert_pem)?, cert_pem, key_pem: key.serialize_pem() })
}

fn bootstrap_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut pick = |n: usize| (0..n).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect::<String>();
    format!("{}.{}", pick(6), pick(16))
}

impl ClusterPki {
    /// Mints a whole new PKI.
    pub fn generate(spec: &PkiSpec, now: DateTime<Utc>) -> Result<Self> {
        spec.validate()?;
        let ca = mint_ca("ca", "kubernetes", now, spec.ca_days)?;
        let front_proxy_ca = mint_ca("front-proxy-ca", "front-proxy-ca", now, spec.ca_days)?;
        let etcd_ca = mint_ca("etcd/ca", "etcd-ca", now, spec.ca_days)?;
        let sa = KeyPair::generate().map_err(mint_failed)?;
        let mut pki = ClusterPki {
            ca,
            front_proxy_ca,
            etcd_ca,
            leaves: vec![],
            clients: vec![],
            sa_key_pem: sa.serialize_pem(),
            sa_pub_pem: sa.public_key_pem(),
            bootstrap_token: bootstrap_token(),
        };
        pki.mint_leaves(spec, now)?;
        Ok(pki)
    }

    /// The same CAs, service-account key and token; every leaf and client
    /// certificate minted again with new keys (what a rotation places).
    pub fn renew_leaves(&self, spec: &PkiSpec, now: DateTime<Utc>) -> Result<Self> {
        spec.validate()?;
        let mut next = self.clone();
        next.mint_leaves(spec, now)?;
        Ok(next)
    }

    fn mint_leaves(&mut self, spec: &PkiSpec, now: DateTime<Utc>) -> Result<()> {
        let days = spec.leaf_days;
        let apiserver_sans = spec.apiserver_sans()?;
        let etcd_sans = spec.etcd_sans();
        let first = &spec.control_plane[0].hostname;
        let none: &[String] = &[];
        let leaf = |cn, org, sans, server, client| Profile { cn, org, sans, server, client };
        self.leaves = vec![
            ("apiserver".into(), mint_leaf("apiserver", &self.ca, leaf("kube-apiserver", None, &apiserver_sans, true, false), now, days)?),
            (
                "apiserver-kubelet-client".into(),
                mint_leaf("apiserver-kubelet-client", &self.ca, leaf("kube-apiserver-kubelet-client", Some("kubeadm:cluster-admins"), none, false, true), now, days)?,
            ),
            ("front-proxy-client".into(), mint_leaf("front-proxy-client", &self.front_proxy_ca, leaf("front-proxy-client", None, none, false, true), now, days)?),
            ("etcd/server".into(), mint_leaf("etcd/server", &self.etcd_ca, leaf(first, None, &etcd_sans, true, true), now, days)?),
            ("etcd/peer".into(), mint_leaf("etcd/peer", &self.etcd_ca, leaf(first, None, &etcd_sans, true, true), now, days)?),
            ("etcd/healthcheck-client".into(), mint_leaf("etcd/healthcheck-client", &self.etcd_ca, leaf("kube-etcd-healthcheck-client", None, none, false, true), now, days)?),
            ("apiserver-etcd-client".into(), mint_leaf("apiserver-etcd-client", &self.etcd_ca, leaf("kube-apiserver-etcd-client", None, none, false, true), now, days)?),
        ];
        self.clients = ClientRole::ALL
            .iter()
            .map(|&role| {
                let (cn, org) = role.subject();
                mint_leaf(role.id(), &self.ca, leaf(cn, org, none, false, true), now, days).map(|m| (role, m))
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// The client certificate of a role.
    pub fn client(&self, role: ClientRole) -> &Minted {
        &self.clients.iter().find(|(r, _)| *r == role).expect("every role is minted").1
    }

    /// A leaf by its kubeadm file stem.
    pub fn leaf(&self, stem: &str) -> Option<&Minted> {
        self.leaves.iter().find(|(s, _)| s == stem).map(|(_, m)| m)
    }

    /// Every certificate, CAs first: what the certificate listing shows.
    pub fn inventory(&self) -> Vec<CertInfo> {
        let mut all = vec![self.ca.info.clone(), self.front_proxy_ca.info.clone(), self.etcd_ca.info.clone()];
        all.extend(self.leaves.iter().map(|(_, m)| m.info.clone()));
        all.extend(self.clients.iter().map(|(_, m)| m.info.clone()));
        all
    }

    /// The files kubeadm finds under `/etc/kubernetes/pki` (so it generates
    /// none of its own); keys 0600, certificates 0644.
    pub fn files(&self) -> Vec<PkiFile> {
        let mut files = vec![];
        let mut pair = |stem: &str, m: &Minted| {
            files.push(PkiFile { path: format!("{stem}.crt"), contents: m.cert_pem.clone(), mode: 0o644 });
            files.push(PkiFile { path: format!("{stem}.key"), contents: m.key_pem.clone(), mode: 0o600 });
        };
        pair("ca", &self.ca);
        pair("front-proxy-ca", &self.front_proxy_ca);
        pair("etcd/ca", &self.etcd_ca);
        for (stem, m) in &self.leaves {
            pair(stem, m);
        }
        files.push(PkiFile { path: "sa.key".into(), contents: self.sa_key_pem.clone(), mode: 0o600 });
        files.push(PkiFile { path: "sa.pub".into(), contents: self.sa_pub_pem.clone(), mode: 0o644 });
        files
    }

    /// The sealed form: everything, keys included, for the credentials store.
    pub fn to_sealed_json(&self) -> serde_json::Value {
        let m = |m: &Minted| serde_json::json!({ "cert": m.cert_pem, "key": m.key_pem });
        serde_json::json!({
            "ca": m(&self.ca), "front_proxy_ca": m(&self.front_proxy_ca), "etcd_ca": m(&self.etcd_ca),
            "leaves": self.leaves.iter().map(|(s, x)| serde_json::json!({ "stem": s, "cert": x.cert_pem, "key": x.key_pem })).collect::<Vec<_>>(),
            "clients": self.clients.iter().map(|(r, x)| (r.id().to_string(), m(x))).collect::<serde_json::Map<_, _>>(),
            "sa_key": self.sa_key_pem, "sa_pub": self.sa_pub_pem, "bootstrap_token": self.bootstrap_token,
        })
    }

    /// Reads the sealed form back.
    pub fn from_sealed_json(v: &serde_json::Value) -> Result<Self> {
        let bad = |what: &str| DomainError::new(ErrorCode::CertificateInvalid, format!("sealed PKI: {what} missing"));
        let m = |id: &str, x: &serde_json::Value| -> Result<Minted> {
            let cert_pem = x["cert"].as_str().ok_or_else(|| bad(id))?.to_string();
            let key_pem = x["key"].as_str().ok_or_else(|| bad(id))?.to_string();
            Ok(Minted { info: inspect(id, &cert_pem)?, cert_pem, key_pem })
        };
        let s = |k: &str| v[k].as_str().map(String::from).ok_or_else(|| bad(k));
        let leaves = v["leaves"]
            .as_array()
            .ok_or_else(|| bad("leaves"))?
            .iter()
            .map(|x| {
                let stem = x["stem"].as_str().ok_or_else(|| bad("leaf stem"))?;
                m(stem, x).map(|mm| (stem.to_string(), mm))
            })
            .collect::<Result<_>>()?;
        let clients = ClientRole::ALL.iter().map(|&r| m(r.id(), &v["clients"][r.id()]).map(|mm| (r, mm))).collect::<Result<_>>()?;
        Ok(ClusterPki {
            ca: m("ca", &v["ca"])?,
            front_proxy_ca: m("front-proxy-ca", &v["front_proxy_ca"])?,
            etcd_ca: m("etcd/ca", &v["etcd_ca"])?,
            leaves,
            clients,
            sa_key_pem: s("sa_key")?,
            sa_pub_pem: s("sa_pub")?,
            bootstrap_token: s("bootstrap_token")?,
        })
    }
}

#[cfg(test)]
mod tests;
