//! Putting a file on a host: skipped when the host already has it, streamed
//! over an exec channel otherwise, checked with `sha256sum` on the host, and
//! moved into place only when the checksum matches.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::{protocol, quote, ExecOutput, SshError, SshSession};

/// How much of the source is read and sent at a time.
const CHUNK_BYTES: usize = 256 * 1024;
/// The bound on the quick check whether the host already has the file.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// What the transfer script exits with when the checksum differs.
const MISMATCH_EXIT: u32 = 3;

/// What to upload.
#[derive(Debug, Clone)]
pub enum UploadSource {
    /// A local file, read in chunks while it is sent.
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The host already had a file with this checksum; nothing was sent.
    pub skipped: bool,
    /// The checksum the host computed (lowercase hex).
    pub sha256: String,
    pub bytes: u64,
}

impl SshSession {
    /// Uploads `source` to `remote_path` (absolute) with `mode`, as root
    /// (through sudo for non-root). `expected_sha256` is what the host's copy
    /// must hash to; without it the source's own checksum is used.
    pub async fn upload(&self, source: UploadSource, remote_path: &str, mode: u32, expected_sha256: Option<&str>) -> Result<UploadOutcome, SshError> {
        let dir = parent_dir(remote_path)?;
        if mode > 0o7777 {
            return Err(SshError::InvalidCommand(format!("mode {mode:o} is not a file mode")));
        }
        let (expected, bytes) = match expected_sha256 {
            Some(sha) => (checked_sha256(sha)?, source_len(&source).await?),
            None => local_sha256(&source).await?,
        };
        let (path, mode) = (quote(remote_path)?, format!("{mode:04o}"));

        let probe = format!(
            "p={path}; if [ -f \"$p\" ] && [ \"$(sha256sum < \"$p\" | cut -d' ' -f1)\" = {expected} ]; then chmod {mode} -- \"$p\" && echo present; fi"
        );
        let out = self.script(&probe, &self.work, PROBE_TIMEOUT).await?;
        if out.exit_code != Some(0) {
            return Err(remote_failed(remote_path, out));
        }
        if out.stdout.trim() == "present" {
            return Ok(UploadOutcome { skipped: true, sha256: expected, bytes });
        }

        let script = [
            // The shell's pid makes the temp name unique: two uploads of one
            // path at once (two tasks on one host) never write the same file.
            format!("d={}; t={}-$$; p={path}", quote(dir)?, quote(&format!("{remote_path}.opspilot-tmp"))?),
            "mkdir -p -- \"$d\" || exit 1".into(),
            "umask 077".into(),
            "if ! cat > \"$t\"; then rm -f -- \"$t\"; exit 1; fi".into(),
            "a=$(sha256sum < \"$t\") || { rm -f -- \"$t\"; exit 1; }".into(),
            "a=${a%% *}".into(),
            format!("if [ \"$a\" != {expected} ]; then rm -f -- \"$t\"; echo \"mismatch $a\"; exit {MISMATCH_EXIT}; fi"),
            format!("chmod {mode} -- \"$t\" && mv -f -- \"$t\" \"$p\" || {{ rm -f -- \"$t\"; exit 1; }}"),
            "echo \"stored $a\"".into(),
        ]
        .join("\n");
        let line = self.shell_line(&script, true)?;
        let (_permit, ch) = self.channel(&self.work).await?;
        ch.exec(true, line).await.map_err(protocol)?;
        let (mut rx, tx) = ch.split();

        // Read the host's side while sending, so a host that gives up early
        // (sudo refused, disk full) ends the upload instead of stalling it.
        let receive = crate::collect(&mut rx);
        tokio::pin!(receive);
        let mut ended_early = None;
        let sent = {
            let send = send_source(&tx, &source);
            tokio::pin!(send);
            tokio::select! {
                sent = &mut send => sent,
                out = &mut receive => {
                    ended_early = Some(out);
                    Err(SshError::Protocol(format!("the host stopped reading {remote_path} before all of it was sent")))
                }
            }
        };
        let out = match ended_early {
            Some(out) => out,
            None => {
                // EOF even after a local read error: the partial file then
                // fails the checksum and the host removes it.
                let _ = tx.eof().await;
                receive.await
            }
        };
        self.check_sudo(&out)?;
        let sent = match sent {
            Err(e @ SshError::SourceUnreadable { .. }) => return Err(e),
            Err(e) if matches!(out.exit_code, Some(0) | Some(MISMATCH_EXIT)) => return Err(e),
            Err(_) => return Err(remote_failed(remote_path, out)),
            Ok(sent) => sent,
        };
        let last = out.stdout.lines().last().unwrap_or_default();
        match (out.exit_code, last.split_once(' ')) {
            (Some(0), Some(("stored", sha))) => Ok(UploadOutcome { skipped: false, sha256: sha.to_string(), bytes: sent }),
            (Some(MISMATCH_EXIT), Some(("mismatch", sha))) => {
                Err(SshError::ChecksumMismatch { path: remote_path.to_string(), expected, actual: sha.to_string() })
            }
            _ => Err(remote_failed(remote_path, out)),
        }
    }
}

fn remote_failed(remote_path: &str, out: ExecOutput) -> SshError {
    SshError::RemoteFailed { what: format!("uploading {remote_path}"), exit_code: out.exit_code, stderr: out.stderr.trim().to_string() }
}

/// The directory `remote_path` goes into; the path must be absolute and name a file.
fn parent_dir(remote_path: &str) -> Result<&str, SshError> {
    let invalid = |why: &str| SshError::InvalidCommand(format!("upload target {remote_path:?} {why}"));
    if !remote_path.starts_with('/') {
        return Err(invalid("is not absolute"));
    }
    match remote_path.rsplit_once('/') {
        Some((_, "" | "." | "..")) => Err(invalid("does not name a file")),
        Some(("", _)) => Ok("/"),
        Some((dir, _)) => Ok(dir),
        None => Err(invalid("is not absolute")),
    }
}

fn checked_sha256(sha: &str) -> Result<String, SshError> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha.to_ascii_lowercase())
    } else {
        Err(SshError::InvalidCommand(format!("{sha:?} is not a sha256 in hex")))
    }
}

fn unreadable(path: &std::path::Path, e: std::io::Error) -> SshError {
    SshError::SourceUnreadable { path: path.display().to_string(), reason: e.to_string() }
}

async fn source_len(source: &UploadSource) -> Result<u64, SshError> {
    match source {
        UploadSource::Bytes(b) => Ok(b.len() as u64),
        UploadSource::Path(p) => tokio::fs::metadata(p).await.map(|m| m.len()).map_err(|e| unreadable(p, e)),
    }
}

/// The source's sha256 and length, reading a file in chunks off the runtime.
async fn local_sha256(source: &UploadSource) -> Result<(String, u64), SshError> {
    match source {
        UploadSource::Bytes(b) => Ok((hex::encode(Sha256::digest(b)), b.len() as u64)),
        UploadSource::Path(p) => {
            let p = p.clone();
            tokio::task::spawn_blocking(move || {
                let mut file = std::fs::File::open(&p).map_err(|e| unreadable(&p, e))?;
                let (mut hasher, mut buf, mut len) = (Sha256::new(), vec![0u8; CHUNK_BYTES], 0u64);
                loop {
                    let n = file.read(&mut buf).map_err(|e| unreadable(&p, e))?;
                    if n == 0 {
                        return Ok((hex::encode(hasher.finalize()), len));
                    }
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
            })
            .await
            .map_err(|e| SshError::Protocol(format!("hashing the source failed: {e}")))?
        }
    }
}

/// Sends the source in chunks; each waits for window space on the channel.
async fn send_source(tx: &russh::ChannelWriteHalf<russh::client::Msg>, source: &UploadSource) -> Result<u64, SshError> {
    let mut sent = 0u64;
    match source {
        UploadSource::Bytes(b) => {
            for chunk in b.chunks(CHUNK_BYTES) {
                tx.data(chunk).await.map_err(protocol)?;
                sent += chunk.len() as u64;
            }
        }
        UploadSource::Path(p) => {
            let mut file = tokio::fs::File::open(p).await.map_err(|e| unreadable(p, e))?;
            let mut buf = vec![0u8; CHUNK_BYTES];
            loop {
                let n = file.read(&mut buf).await.map_err(|e| unreadable(p, e))?;
                if n == 0 {
                    break;
                }
                tx.data(&buf[..n]).await.map_err(protocol)?;
                sent += n as u64;
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_absolute_file_paths() {
        assert_eq!(parent_dir("/opt/x/a.bin").unwrap(), "/opt/x");
        assert_eq!(parent_dir("/a.bin").unwrap(), "/");
        for bad in ["a.bin", "", "/opt/x/", "/opt/..", "/opt/."] {
            assert!(parent_dir(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn expected_checksums_are_hex_and_lowercased() {
        let upper = "AB".repeat(32);
        assert_eq!(checked_sha256(&upper).unwrap(), "ab".repeat(32));
        for bad in ["", "ab", &"zz".repeat(32), &"a".repeat(65)] {
            assert!(checked_sha256(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn a_file_source_hashes_like_its_bytes() {
        let bytes: Vec<u8> = (0..(CHUNK_BYTES * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("opspilot-upload-hash-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let from_file = local_sha256(&UploadSource::Path(path.clone())).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file, local_sha256(&UploadSource::Bytes(bytes.clone())).await.unwrap());
        assert_eq!(from_file.1, bytes.len() as u64);
        let missing = local_sha256(&UploadSource::Path(path)).await.unwrap_err();
        assert_eq!(missing.code(), opspilot_domain::ErrorCode::ArtifactMissing);
    }
}
