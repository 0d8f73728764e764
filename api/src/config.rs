//! Configuration from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use opspilot_eventstore::MasterKey;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    pub admin_password: Option<String>,
    pub master_key: MasterKey,
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub login_attempts_per_minute: u32,
    /// AI command center messages and confirmations a user may send per minute.
    pub ai_messages_per_minute: u32,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    /// Introspection without a token, for GraphiQL in development.
    pub graphql_public_schema: bool,
    pub preview_ttl_seconds: i64,
    pub approval_ttl_seconds: Option<i64>,
    pub scheduler_interval_ms: u64,
    pub approval_envs: Vec<String>,
    pub approval_min_risk: String,
    /// The install bundle (`script/`).
    pub script_root: PathBuf,
    /// The built web console (default `web/dist`, when it holds index.html).
    pub console_dir: Option<PathBuf>,
    /// The ed25519 public key a bundle must be signed with (base64 of the raw key, or a file holding it).
    pub bundle_trusted_key: Option<String>,
    /// How many nodes an install step runs on at once.
    pub install_parallelism: usize,
    /// Environments labelled `tier` with one of these need approval to install.
    pub install_approval_tiers: Vec<String>,
    pub ssh_connect_timeout_seconds: u64,
    /// How long a Kubernetes rollout may take before the release fails.
    pub rollout_deadline_seconds: u64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match env(name) {
        Some(v) => v.trim().parse().map_err(|_| anyhow::anyhow!("{name} must be a number, got {v:?}")),
        None => Ok(default),
    }
}

/// The data folder for generated files (the master key file).
pub fn data_dir() -> PathBuf {
    env("OPSPILOT_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".opspilot"))
}

/// Reads `OPSPILOT_MASTER_KEY`, or the key file in the data folder, creating
/// it (mode 0600) with a fresh random key on first start.
pub fn master_key() -> anyhow::Result<MasterKey> {
    if let Some(k) = env("OPSPILOT_MASTER_KEY") {
        return MasterKey::from_base64(&k).map_err(|e| anyhow::anyhow!("OPSPILOT_MASTER_KEY: {e}"));
    }
    let path = data_dir().join("master.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return MasterKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    std::fs::create_dir_all(data_dir()).with_context(|| format!("creating {}", data_dir().display()))?;
    let key = MasterKey::generate();
    write_private(&path, key.to_base64().as_bytes())?;
    tracing::warn!(path = %path.display(), "OPSPILOT_MASTER_KEY unset: generated a master key file; back it up, credentials cannot be read without it");
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

impl Config {
    /// Reads the environment (`DATABASE_URL` is required here; the README's
    /// run script provides a private PostgreSQL when it is unset).
    pub fn from_env() -> anyhow::Result<Config> {
        let database_url = env("DATABASE_URL").context("DATABASE_URL is not set (./scripts/run.sh starts a private PostgreSQL and sets it)")?;
        let listen = env("OPSPILOT_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        Ok(Config {
            database_url,
            listen: listen.parse().with_context(|| format!("OPSPILOT_LISTEN {listen:?} is not host:port"))?,
            admin_password: env("OPSPILOT_ADMIN_PASSWORD"),
            master_key: master_key()?,
            cors_origins: env("OPSPILOT_CORS_ORIGINS").map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default(),
            body_limit_bytes: env_num("OPSPILOT_BODY_LIMIT_BYTES", 1024 * 1024)?,
            login_attempts_per_minute: env_num("OPSPILOT_LOGIN_ATTEMPTS_PER_MINUTE", 10)?,
            ai_messages_per_minute: env_num("OPSPILOT_AI_MESSAGES_PER_MINUTE", 30)?,
            graphql_max_depth: env_num("OPSPILOT_GRAPHQL_MAX_DEPTH", 12)?,
            graphql_max_complexity: env_num("OPSPILOT_GRAPHQL_MAX_COMPLEXITY", 1000)?,
            graphql_public_schema: env("OPSPILOT_GRAPHQL_PUBLIC_SCHEMA").is_some_and(|v| v == "true"),
            preview_ttl_seconds: env_num("OPSPILOT_PREVIEW_TTL_SECONDS", 1800)?,
            approval_ttl_seconds: env("OPSPILOT_APPROVAL_TTL_SECONDS").map(|v| v.trim().parse()).transpose().map_err(|_| anyhow::anyhow!("OPSPILOT_APPROVAL_TTL_SECONDS must be a number"))?,
            scheduler_interval_ms: env_num("OPSPILOT_SCHEDULER_INTERVAL_MS", 5000)?,
            approval_envs: env("OPSPILOT_APPROVAL_ENVS").unwrap_or_else(|| "production".into()).split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            approval_min_risk: env("OPSPILOT_APPROVAL_MIN_RISK").unwrap_or_else(|| "high".into()),
            script_root: env("OPSPILOT_SCRIPT_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("script")),
            console_dir: env("OPSPILOT_CONSOLE_DIR").map(PathBuf::from),
            bundle_trusted_key: env("OPSPILOT_BUNDLE_TRUSTED_KEY"),
            install_parallelism: env_num("OPSPILOT_INSTALL_PARALLELISM", 64)?,
            install_approval_tiers: env("OPSPILOT_INSTALL_APPROVAL_TIERS").unwrap_or_else(|| "prod,production".into()).split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            ssh_connect_timeout_seconds: env_num("OPSPILOT_SSH_CONNECT_TIMEOUT_SECONDS", 10)?,
            rollout_deadline_seconds: env_num("OPSPILOT_ROLLOUT_DEADLINE_SECONDS", 120)?,
        })
    }

    /// A configuration for tests and benchmarks: given database, port 0.
    pub fn for_database(database_url: &str, master_key: MasterKey) -> Config {
        Config {
            database_url: database_url.into(),
            listen: "127.0.0.1:0".parse().expect("literal address"),
            admin_password: None,
            master_key,
            cors_origins: vec![],
            body_limit_bytes: 1024 * 1024,
            login_attempts_per_minute: 10,
            ai_messages_per_minute: 30,
            graphql_max_depth: 12,
            graphql_max_complexity: 1000,
            graphql_public_schema: false,
            preview_ttl_seconds: 1800,
            approval_ttl_seconds: None,
            scheduler_interval_ms: 5000,
            approval_envs: vec!["production".into()],
            approval_min_risk: "high".into(),
            script_root: PathBuf::from("script"),
            console_dir: None,
            bundle_trusted_key: None,
            install_parallelism: 64,
            install_approval_tiers: vec!["prod".into(), "production".into()],
            ssh_connect_timeout_seconds: 10,
            rollout_deadline_seconds: 120,
        }
    }
}

impl Config {
    /// The trusted bundle key: inline base64, or the path of a file holding it.
    pub fn trusted_bundle_key(&self) -> anyhow::Result<Option<[u8; 32]>> {
        let Some(v) = &self.bundle_trusted_key else { return Ok(None) };
        let text = if std::path::Path::new(v).is_file() { std::fs::read_to_string(v).with_context(|| format!("reading {v}"))? } else { v.clone() };
        opspilot_bundle::parse_public_key(&text).map(Some).map_err(|e| anyhow::anyhow!("OPSPILOT_BUNDLE_TRUSTED_KEY: {}", e.detail))
    }
}
