//! The Kubernetes edge of OpsPilot: turn what a user pastes (a kubeconfig, or
//! an endpoint with a CA and a token or client certificate) into a validated
//! kubeconfig, connect with it, and probe what the credentials may do.
//!
//! An imported kubeconfig may only carry inline material: file paths, exec
//! plugins, auth providers and `insecure-skip-tls-verify` are refused, so an
//! import can never make OpsPilot read its own files, run a command, or trust
//! an unverified server.

pub mod manifest;

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use opspilot_domain::cluster::CertInfo;
use opspilot_domain::{DomainError, ErrorCode};
use serde_json::json;

/// How a cluster's credentials authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    Kubeconfig,
    CertToken,
    CertKey,
}

impl AuthType {
    /// The wire name (seed: kubeconfig | cert_token | cert_key).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Kubeconfig => "kubeconfig",
            AuthType::CertToken => "cert_token",
            AuthType::CertKey => "cert_key",
        }
    }
}

/// A kubeconfig that passed validation, with the facts shown to users.
#[derive(Debug, Clone)]
pub struct ValidKubeconfig {
    /// The kubeconfig text to store (encrypted) and connect with.
    pub text: String,
    pub endpoint: String,
    pub auth_type: AuthType,
    /// Expiry of the client certificate, when one is used.
    pub client_cert_expires_at: Option<DateTime<Utc>>,
    /// The CA (`ca`) and, when one is used, the client certificate (`client`).
    pub certificates: Vec<CertInfo>,
}

fn invalid(code: ErrorCode, why: impl Into<String>) -> DomainError {
    DomainError::new(code, why)
}

/// Accepts raw YAML or its base64 (the seed's `BASE64_OR_RAW`).
fn raw_or_base64(text: &str) -> String {
    let t = text.trim();
    if t.contains("clusters") || t.contains('{') || t.contains(':') {
        return t.to_string();
    }
    base64::engine::general_purpose::STANDARD
        .decode(t.split_whitespace().collect::<String>())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Validates an imported kubeconfig: parseable, one current context whose
/// cluster has an https server and whose user authenticates inline.
pub fn validate_kubeconfig(text: &str) -> Result<ValidKubeconfig, DomainError> {
    let text = raw_or_base64(text);
    let kc = Kubeconfig::from_yaml(&text).map_err(|e| invalid(ErrorCode::KubeconfigInvalid, format!("not a kubeconfig: {e}")))?;
    let ctx_name = kc
        .current_context
        .clone()
        .or_else(|| (kc.contexts.len() == 1).then(|| kc.contexts[0].name.clone()))
        .ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, "no current-context (and not exactly one context)"))?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, format!("context {ctx_name:?} is missing")))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, format!("cluster {:?} is missing", ctx.cluster)))?;
    let user_name = ctx.user.clone().ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, "the context names no user"))?;
    let user = kc
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.clone())
        .ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, format!("user {user_name:?} is missing")))?;

    let endpoint = cluster.server.clone().ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, "the cluster has no server"))?;
    validate_endpoint(&endpoint)?;
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(invalid(ErrorCode::KubeconfigInvalid, "insecure-skip-tls-verify is refused: give the cluster's CA"));
    }
    if cluster.certificate_authority.is_some() || user.client_certificate.is_some() || user.client_key.is_some() || user.token_file.is_some() {
        return Err(invalid(ErrorCode::KubeconfigInvalid, "file paths are refused: embed certificates, keys and tokens as *-data or token"));
    }
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(invalid(ErrorCode::KubeconfigInvalid, "exec plugins and auth providers are refused: use a token or client certificate"));
    }
    let ca = cluster.certificate_authority_data.as_deref().ok_or_else(|| invalid(ErrorCode::KubeconfigInvalid, "the cluster has no certificate-authority-data"))?;
    let mut certificates = vec![opspilot_pki::inspect("ca", &decode_b64_pem(ca)?)?];
    let (auth_type, client_cert_expires_at) = match (&user.client_certificate_data, &user.token) {
        (Some(cert), _) => {
            let client = opspilot_pki::inspect("client", &decode_b64_pem(cert)?)?;
            let expires = client.not_after;
            certificates.push(client);
            (AuthType::Kubeconfig, Some(expires))
        }
        (None, Some(_)) => (AuthType::Kubeconfig, None),
        (None, None) => return Err(invalid(ErrorCode::KubeconfigInvalid, "the user has neither a token nor client-certificate-data")),
    };
    Ok(ValidKubeconfig { text, endpoint, auth_type, client_cert_expires_at, certificates })
}

fn decode_b64_pem(data: &str) -> Result<String, DomainError> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid(ErrorCode::CertificateInvalid, "certificate data is not base64 of PEM"))
}

/// Parses one PEM certificate; answers its not-after.
pub fn parse_pem_cert(pem: &str) -> Result<DateTime<Utc>, DomainError> {
    Ok(opspilot_pki::inspect("certificate", pem)?.not_after)
}

/// Requires `https://host:port`.
pub fn validate_endpoint(endpoint: &str) -> Result<(), DomainError> {
    let uri: http::Uri = endpoint.parse().map_err(|_| invalid(ErrorCode::EndpointInvalid, format!("{endpoint:?} is not a URL")))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(invalid(ErrorCode::EndpointInvalid, format!("{endpoint:?} must be https://host:port")));
    }
    Ok(())
}

/// Builds a kubeconfig from an endpoint, a CA and a token or a client
/// certificate and key; validates every part.
pub fn kubeconfig_from_parts(
    endpoint: &str,
    ca_pem: &str,
    token: Option<&str>,
    client_cert_pem: Option<&str>,
    client_key_pem: Option<&str>,
) -> Result<ValidKubeconfig, DomainError> {
    validate_endpoint(endpoint)?;
    parse_pem_cert(ca_pem)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.trim().as_bytes());
    let (user, auth_type, expiry) = match (token.filter(|t| !t.trim().is_empty()), client_cert_pem.filter(|c| !c.trim().is_empty()), client_key_pem.filter(|k| !k.trim().is_empty())) {
        (Some(t), None, None) => (json!({ "token": t.trim() }), AuthType::CertToken, None),
        (None, Some(c), Some(k)) => {
            let expiry = parse_pem_cert(c)?;
            if !k.contains("PRIVATE KEY-----") {
                return Err(invalid(ErrorCode::CertificateInvalid, "client_key is not a PEM private key"));
            }
            (json!({ "client-certificate-data": b64(c), "client-key-data": b64(k) }), AuthType::CertKey, Some(expiry))
        }
        _ => return Err(DomainError::validation("auth", "give either a token, or a client_cert with its client_key")),
    };
    let text = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "opspilot",
        "clusters": [{ "name": "opspilot", "cluster": { "server": endpoint, "certificate-authority-data": b64(ca_pem) } }],
        "users": [{ "name": "opspilot", "user": user }],
        "contexts": [{ "name": "opspilot", "context": { "cluster": "opspilot", "user": "opspilot" } }],
    })
    .to_string();
    let mut valid = validate_kubeconfig(&text)?;
    valid.auth_type = auth_type;
    valid.client_cert_expires_at = expiry;
    Ok(valid)
}

/// A client from a validated kubeconfig text.
pub async fn client(kubeconfig: &str, timeout: Duration) -> Result<kube::Client, DomainError> {
    // kube's rustls needs a process-wide crypto provider; the first install wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::from_yaml(kubeconfig).map_err(|e| invalid(ErrorCode::KubeconfigInvalid, e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(ErrorCode::KubeconfigInvalid, e.to_string()))?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(|e| invalid(ErrorCode::CertificateInvalid, format!("credentials unusable: {e}")))
}

/// One verb a release needs, and whether the credentials hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionCheck {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub allowed: bool,
}

impl PermissionCheck {
    /// `list namespaces`, `patch deployments.apps`.
    pub fn label(&self) -> String {
        if self.group.is_empty() {
            format!("{} {}", self.verb, self.resource)
        } else {
            format!("{} {}.{}", self.verb, self.resource, self.group)
        }
    }
}

/// What a connection probe found.
#[derive(Debug, Clone)]
pub struct Probe {
    pub server_version: String,
    pub namespaces: Vec<String>,
    pub permissions: Vec<PermissionCheck>,
}

impl Probe {
    /// The checks that failed.
    pub fn missing(&self) -> Vec<String> {
        self.permissions.iter().filter(|p| !p.allowed).map(|p| p.label()).collect()
    }
}

/// The verbs OpsPilot needs to release into a cluster: list namespaces, and
/// server-side apply plus rollout watch of Deployments, Services and ConfigMaps.
pub const RELEASE_VERBS: &[(&str, &str, &str)] = &[
    ("list", "", "namespaces"),
    ("list", "apps", "deployments"),
    ("get", "apps", "deployments"),
    ("watch", "apps", "deployments"),
    ("create", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("get", "", "services"),
    ("patch", "", "services"),
    ("get", "", "configmaps"),
    ("patch", "", "configmaps"),
];

/// Connects and probes: server version, namespaces (when listable) and a
/// SelfSubjectAccessReview for every verb in [`RELEASE_VERBS`].
pub async fn probe(client: &kube::Client) -> Result<Probe, DomainError> {
    let failed = |e: kube::Error| invalid(ErrorCode::ClusterConnectFailed, format!("{e}"));
    let version = client.apiserver_version().await.map_err(failed)?;
    let mut permissions = Vec::new();
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for (verb, group, resource) in RELEASE_VERBS {
        let review: SelfSubjectAccessReview =
            serde_json::from_value(json!({ "spec": { "resourceAttributes": { "verb": verb, "group": group, "resource": resource } } }))
                .expect("review literal");
        let answer = reviews.create(&PostParams::default(), &review).await.map_err(failed)?;
        permissions.push(PermissionCheck { verb, group, resource, allowed: answer.status.map(|s| s.allowed).unwrap_or(false) });
    }
    let namespaces = if permissions[0].allowed {
        Api::<Namespace>::all(client.clone())
            .list(&ListParams::default().limit(50))
            .await
            .map_err(failed)?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect()
    } else {
        vec![]
    };
    Ok(Probe { server_version: version.git_version, namespaces, permissions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfigs_that_would_read_files_or_run_commands_are_refused() {
        let base = |user: serde_json::Value| {
            json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{ "name": "k", "cluster": { "server": "https://10.0.0.10:6443", "certificate-authority": "/etc/ca.crt" } }],
                "users": [{ "name": "u", "user": user }],
                "contexts": [{ "name": "c", "context": { "cluster": "k", "user": "u" } }],
            })
            .to_string()
        };
        let err = validate_kubeconfig(&base(json!({ "token": "t" }))).unwrap_err();
        assert_eq!(err.code, ErrorCode::KubeconfigInvalid);
        assert!(err.detail.contains("file paths"));
        assert_eq!(validate_kubeconfig("invalid-content").unwrap_err().code, ErrorCode::KubeconfigInvalid);
        assert_eq!(validate_endpoint("http://10.0.0.10:6443").unwrap_err().code, ErrorCode::EndpointInvalid);
        assert_eq!(validate_endpoint("not a url").unwrap_err().code, ErrorCode::EndpointInvalid);
        assert_eq!(parse_pem_cert("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----").unwrap_err().code, ErrorCode::CertificateInvalid);
    }
}
