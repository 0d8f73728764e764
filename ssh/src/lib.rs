//! SSH to OpsPilot's hosts. Host keys are pinned: a connection succeeds only
//! when the host presents exactly the key whose fingerprint was trusted, and
//! the presented fingerprint is reported either way so an admin can decide.
//!
//! One [`SshSession`] per host carries every command and upload of a task,
//! each on a channel of its own. Non-root users reach root through `sudo -n`,
//! so a sudo that wants a password fails at once instead of hanging.

mod quote;
mod run;
mod upload;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opspilot_domain::ErrorCode;
use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, ChannelReadHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use quote::{quote, RemoteCommand};
pub use run::{OutputLine, RunOptions, RunOutcome, Stream};
pub use tokio_util::sync::CancellationToken;
pub use upload::{UploadOutcome, UploadSource};

/// How to log in.
#[derive(Clone)]
pub enum SshAuth {
    /// An OpenSSH or PKCS#8 private key (PEM text).
    PrivateKey(String),
    Password(String),
}

impl std::fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SshAuth::PrivateKey(_) => "PrivateKey(..)",
            SshAuth::Password(_) => "Password(..)",
        })
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    /// The trusted host key, as `SHA256:<base64>` (OpenSSH's form).
    pub pinned_fingerprint: String,
    pub connect_timeout: Duration,
}

/// Why an SSH operation failed; each maps to a dictionary code.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("{user}@{address} was refused")]
    AuthFailed { address: String, user: String },
    #[error("{address} presented host key {presented}, but {pinned} is trusted")]
    HostKeyMismatch { address: String, pinned: String, presented: String },
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    #[error("command was cancelled")]
    Cancelled,
    #[error("{path} on the host has sha256 {actual}, expected {expected}")]
    ChecksumMismatch { path: String, expected: String, actual: String },
    #[error("{user} may not run commands as root: sudo -n said {reason:?}")]
    SudoRefused { user: String, reason: String },
    #[error("{what} failed on the host (exit {exit_code:?}): {stderr}")]
    RemoteFailed { what: String, exit_code: Option<u32>, stderr: String },
    #[error("cannot read {path}: {reason}")]
    SourceUnreadable { path: String, reason: String },
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    #[error("ssh protocol: {0}")]
    Protocol(String),
}

impl SshError {
    /// The dictionary entry a user sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            SshError::Unreachable { .. } | SshError::Timeout(_) | SshError::Protocol(_) => ErrorCode::SshUnreachable,
            SshError::AuthFailed { .. } | SshError::SudoRefused { .. } => ErrorCode::SshAuthFailed,
            SshError::HostKeyMismatch { .. } => ErrorCode::SshHostKeyMismatch,
            SshError::ChecksumMismatch { .. } => ErrorCode::ArtifactChecksumMismatch,
            SshError::Cancelled | SshError::RemoteFailed { .. } => ErrorCode::ScriptHookExecFailed,
            SshError::SourceUnreadable { .. } => ErrorCode::ArtifactMissing,
            SshError::InvalidCommand(_) => ErrorCode::ValidationError,
        }
    }
}

/// The host key a server presents, in OpenSSH's `SHA256:` form.
pub fn fingerprint(key: &PublicKeyOrCertificate) -> String {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256).to_string(),
        PublicKeyOrCertificate::Certificate(c) => c.public_key().fingerprint(HashAlg::Sha256).to_string(),
    }
}

struct Pinned {
    pinned: Option<String>,
    presented: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fp = fingerprint(key);
        let ok = self.pinned.as_deref() == Some(fp.as_str());
        *self.presented.lock().expect("presented lock") = Some(fp);
        Ok(ok)
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

/// An authenticated connection; commands run on channels of it.
pub struct SshSession {
    handle: Handle<Pinned>,
    pub user: String,
    /// sshd allows 10 sessions per connection (`MaxSessions`): commands and
    /// uploads share 8, and stopping a remote process takes one of the other
    /// 2, so a stop is never starved by the commands it is stopping.
    work: Arc<Semaphore>,
    stops: Arc<Semaphore>,
}

const WORK_CHANNELS: usize = 8;
const STOP_CHANNELS: usize = 2;
/// How often a refused channel open is tried again (20 ms, doubling).
const OPEN_RETRIES: usize = 6;

fn protocol(e: russh::Error) -> SshError {
    SshError::Protocol(e.to_string())
}

async fn open(address: &str, port: u16, pinned: Option<String>, timeout: Duration) -> Result<(Handle<Pinned>, Arc<Mutex<Option<String>>>), SshError> {
    let presented = Arc::new(Mutex::new(None));
    let handler = Pinned { pinned: pinned.clone(), presented: presented.clone() };
    // TCP_NODELAY: every exchange of a task is a small request and a small
    // answer; with Nagle on, each waits for the peer's delayed ACK (~40 ms).
    let config = Arc::new(client::Config { inactivity_timeout: Some(Duration::from_secs(600)), nodelay: true, ..Default::default() });
    let unreachable = |reason: String| SshError::Unreachable { address: address.to_string(), reason };
    match tokio::time::timeout(timeout, client::connect(config, (address, port), handler)).await {
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
        Ok(Ok(h)) => Ok((h, presented)),
        Ok(Err(russh::Error::UnknownKey)) => {
            let p = presented.lock().expect("presented lock").clone().unwrap_or_default();
            Err(SshError::HostKeyMismatch { address: address.into(), pinned: pinned.unwrap_or_else(|| "nothing".into()), presented: p })
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
    }
}

/// Connects to learn the host key a host presents, without logging in; what
/// an admin is shown before trusting a host.
pub async fn scan_host_key(address: &str, port: u16, timeout: Duration) -> Result<String, SshError> {
    match open(address, port, None, timeout).await {
        Err(SshError::HostKeyMismatch { presented, .. }) if !presented.is_empty() => Ok(presented),
        Err(e) => Err(e),
        Ok(_) => Err(SshError::Protocol("host key was accepted without a pin".into())),
    }
}

impl SshSession {
    /// Connects, checks the pinned host key, and logs in.
    pub async fn connect(t: &SshTarget) -> Result<SshSession, SshError> {
        let (mut handle, _) = open(&t.address, t.port, Some(t.pinned_fingerprint.clone()), t.connect_timeout).await?;
        let refused = || SshError::AuthFailed { address: t.address.clone(), user: t.user.clone() };
        let result = match &t.auth {
            SshAuth::Password(p) => handle.authenticate_password(&t.user, p).await,
            SshAuth::PrivateKey(pem) => {
                let key = russh::keys::decode_secret_key(pem, None).map_err(|e| SshError::Protocol(format!("private key unreadable: {e}")))?;
                let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
                handle.authenticate_publickey(&t.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await
            }
        }
        .map_err(|e| SshError::Protocol(e.to_string()))?;
        if !result.success() {
            return Err(refused());
        }
        Ok(SshSession {
            handle,
            user: t.user.clone(),
            work: Arc::new(Semaphore::new(WORK_CHANNELS)),
            stops: Arc::new(Semaphore::new(STOP_CHANNELS)),
        })
    }

    /// Whether commands already run as root (no sudo needed).
    pub fn is_root(&self) -> bool {
        self.user == "root"
    }

    /// Runs a command as the login user and collects its output, within
    /// `timeout` (only the local wait is bounded; see [`SshSession::run`]).
    pub async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, SshError> {
        let run = async {
            let (_permit, ch) = self.channel(&self.work).await?;
            ch.exec(true, command).await.map_err(protocol)?;
            ch.eof().await.map_err(protocol)?;
            Ok(collect(&mut ch.split().0).await)
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| SshError::Timeout(timeout))?
    }

    /// A new channel, once one of `pool`'s slots is free.
    ///
    /// Our slots add up to sshd's default `MaxSessions` (10), and a slot is
    /// freed as soon as we have seen a channel end, which can be a moment
    /// before sshd has processed our close. sshd then refuses the open; it is
    /// tried again a few times with a short backoff before giving up.
    async fn channel(&self, pool: &Arc<Semaphore>) -> Result<(OwnedSemaphorePermit, Channel<Msg>), SshError> {
        let permit = pool.clone().acquire_owned().await.map_err(|_| SshError::Protocol("session is closing".into()))?;
        let mut backoff = Duration::from_millis(20);
        for _ in 0..OPEN_RETRIES {
            match self.handle.channel_open_session().await {
                Err(russh::Error::ChannelOpenFailure(_)) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                opened => return Ok((permit, opened.map_err(protocol)?)),
            }
        }
        let ch = self.handle.channel_open_session().await.map_err(protocol)?;
        Ok((permit, ch))
    }

    /// The line that runs `script` under `sh`, through `sudo -n` when asked
    /// and the session is not root already.
    fn shell_line(&self, script: &str, sudo: bool) -> Result<String, SshError> {
        let script = quote(script)?;
        Ok(if sudo && !self.is_root() { format!("sudo -n -- sh -c {script}") } else { format!("sh -c {script}") })
    }

    /// Runs one of this crate's own scripts (elevated for non-root) and
    /// collects its output; a refusing sudo becomes [`SshError::SudoRefused`].
    async fn script(&self, script: &str, pool: &Arc<Semaphore>, timeout: Duration) -> Result<ExecOutput, SshError> {
        let line = self.shell_line(script, true)?;
        let run = async {
            let (_permit, ch) = self.channel(pool).await?;
            ch.exec(true, line).await.map_err(protocol)?;
            ch.eof().await.map_err(protocol)?;
            Ok(collect(&mut ch.split().0).await)
        };
        let out = tokio::time::timeout(timeout, run).await.map_err(|_| SshError::Timeout(timeout))??;
        self.check_sudo(&out)?;
        Ok(out)
    }

    /// `sudo -n` exits 1 with `sudo: ...` on stderr and nothing on stdout
    /// when it would need a password; none of this crate's scripts does that.
    fn check_sudo(&self, out: &ExecOutput) -> Result<(), SshError> {
        if !self.is_root() && out.exit_code == Some(1) && out.stdout.is_empty() && out.stderr.starts_with("sudo: ") {
            return Err(SshError::SudoRefused { user: self.user.clone(), reason: out.stderr.trim().to_string() });
        }
        Ok(())
    }
}

/// Reads a channel to its end: all output and the exit status.
async fn collect(rx: &mut ChannelReadHalf) -> ExecOutput {
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
            _ => {}
        }
    }
    ExecOutput { exit_code: code, stdout: String::from_utf8_lossy(&out).into(), stderr: String::from_utf8_lossy(&err).into() }
}
