//! Running a command on a host with its output streamed line by line, a
//! deadline and cancellation that stop the remote process, not just the wait.
//!
//! The command runs as
//! `sh -c 'echo <mark>$$; exec timeout --kill-after=5s <T+5>s sh -c <cmd>'`
//! (inside `sudo -n --` for non-root). The first stdout line names the pid of
//! `timeout`, which leads its own process group holding the command and all
//! it started; it is stripped before anything reaches the caller. When the
//! deadline passes or the caller cancels, a second channel sends TERM to that
//! group and KILL five seconds later if anything is left. The remote
//! `timeout`, five seconds past the deadline, is the backstop for the case
//! where the connection is gone and no second channel can be opened.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use russh::ChannelMsg;
use tokio_util::sync::CancellationToken;

use crate::{protocol, quote, SshError, SshSession};

/// What precedes the pid of the process group on the first stdout line.
const GROUP_MARK: &str = "opspilot-process-group ";
/// How much of each stream [`RunOutcome`] keeps.
const TAIL_BYTES: usize = 8 * 1024;
/// A line longer than this is delivered in pieces, so a program that never
/// prints a newline cannot grow the buffer without bound.
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// How long past the deadline the remote `timeout` waits before it acts.
const BACKSTOP: Duration = Duration::from_secs(5);
/// How long the stopping script waits between TERM and KILL.
const STOP_GRACE_TENTHS: u32 = 50;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output, without its `\n`, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    /// Invalid UTF-8 is replaced with U+FFFD.
    pub line: String,
    pub at: DateTime<Utc>,
}

/// How to run one command.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// After this the remote process group is stopped and the run fails with
    /// [`SshError::Timeout`].
    pub timeout: Duration,
    /// Cancelling stops the remote process group; the run fails with
    /// [`SshError::Cancelled`].
    pub cancel: Option<CancellationToken>,
    /// Run as root through `sudo -n`; has no effect in a root session.
    pub sudo: bool,
}

impl RunOptions {
    /// As root (through sudo when the session is not root), not cancellable.
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions { timeout, cancel: None, sudo: true }
    }

    /// Stops the command when `token` is cancelled.
    pub fn cancel_on(mut self, token: CancellationToken) -> RunOptions {
        self.cancel = Some(token);
        self
    }

    /// Runs as the login user, without sudo.
    pub fn as_login_user(mut self) -> RunOptions {
        self.sudo = false;
        self
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// `None` when the process was killed by a signal.
    pub exit_code: Option<u32>,
    /// The last 8 KiB of stdout.
    pub stdout_tail: String,
    /// The last 8 KiB of stderr.
    pub stderr_tail: String,
    pub duration: Duration,
}

/// Why the wait ended before the command did.
enum Stop {
    Timeout,
    Cancelled,
}

impl SshSession {
    /// Runs `cmd` (a shell line, e.g. [`crate::RemoteCommand::to_shell`]),
    /// handing each output line to `on_line` as it arrives.
    ///
    /// Many runs may share the session at once; `on_line` should be quick,
    /// since the connection waits while it runs. Dropping the returned future
    /// instead of cancelling leaves the remote process to the host's
    /// `timeout`, five seconds past `opts.timeout`.
    pub async fn run(&self, cmd: &str, opts: &RunOptions, on_line: &mut (dyn FnMut(OutputLine) + Send)) -> Result<RunOutcome, SshError> {
        let started = Instant::now();
        if opts.cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
            return Err(SshError::Cancelled);
        }
        let sudo = opts.sudo && !self.is_root();
        let backstop = opts.timeout.saturating_add(BACKSTOP).as_secs_f64();
        let wrapper = format!("echo {GROUP_MARK}$$; exec timeout --kill-after=5s {backstop:.3}s sh -c {}", quote(cmd)?);
        let line = self.shell_line(&wrapper, sudo)?;

        let (_permit, mut ch) = self.channel(&self.work).await?;
        ch.exec(true, line).await.map_err(protocol)?;
        ch.eof().await.map_err(protocol)?;

        let mut stdout = Lines::new(Stream::Stdout);
        let mut stderr = Lines::new(Stream::Stderr);
        let mut header = Some(Vec::new());
        let mut group: Option<u32> = None;
        let mut exit_code = None;
        let mut on_msg = |msg: ChannelMsg, group: &mut Option<u32>, on_line: &mut (dyn FnMut(OutputLine) + Send)| match msg {
            ChannelMsg::Data { data } => match header.as_mut() {
                // Until the first newline, stdout is the wrapper's header.
                Some(head) => {
                    head.extend_from_slice(&data);
                    if let Some(nl) = head.iter().position(|&b| b == b'\n') {
                        let head = header.take().unwrap_or_default();
                        let first = String::from_utf8_lossy(&head[..nl]);
                        match first.strip_prefix(GROUP_MARK).and_then(|pid| pid.trim().parse().ok()) {
                            Some(pid) => {
                                *group = Some(pid);
                                stdout.push(&head[nl + 1..], on_line);
                            }
                            None => stdout.push(&head, on_line),
                        }
                    }
                }
                None => stdout.push(&data, on_line),
            },
            ChannelMsg::ExtendedData { data, ext: 1 } => stderr.push(&data, on_line),
            ChannelMsg::ExitStatus { exit_status } => exit_code = Some(exit_status),
            _ => {}
        };

        let deadline = tokio::time::sleep(opts.timeout);
        let cancelled = cancelled(opts.cancel.as_ref());
        tokio::pin!(deadline, cancelled);
        let stop = loop {
            tokio::select! {
                msg = ch.wait() => match msg {
                    Some(msg) => on_msg(msg, &mut group, on_line),
                    None => break None,
                },
                _ = &mut deadline => break Some(Stop::Timeout),
                _ = &mut cancelled => break Some(Stop::Cancelled),
            }
        };

        if let Some(stop) = stop {
            // The header is the first thing the wrapper prints; if the stop
            // came before it arrived, wait a little for it.
            let wait_for_group = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(wait_for_group);
            while group.is_none() {
                tokio::select! {
                    msg = ch.wait() => match msg {
                        Some(msg) => on_msg(msg, &mut group, on_line),
                        None => break,
                    },
                    _ = &mut wait_for_group => break,
                }
            }
            // Nothing reads this channel any more; dropping it keeps its
            // queue from holding up the connection the stop travels on.
            let _ = ch.close().await;
            drop(ch);
            stdout.finish(on_line);
            stderr.finish(on_line);
            match group {
                Some(pid) => self.stop_group(pid, sudo).await,
                None => tracing::warn!(user = %self.user, "stopped a command whose process group never reported; the remote timeout will end it"),
            }
            return Err(match stop {
                Stop::Timeout => SshError::Timeout(opts.timeout),
                Stop::Cancelled => SshError::Cancelled,
            });
        }

        if let Some(head) = header.take() {
            // The wrapper never ran: sudo refused, or the login shell failed.
            let stderr_text = String::from_utf8_lossy(&stderr.tail.bytes).trim().to_string();
            if sudo && stderr_text.starts_with("sudo: ") {
                return Err(SshError::SudoRefused { user: self.user.clone(), reason: stderr_text });
            }
            stdout.push(&head, on_line);
            if group.is_none() && exit_code != Some(0) {
                stderr.finish(on_line);
                return Err(SshError::RemoteFailed { what: "starting the command".into(), exit_code, stderr: stderr_text });
            }
        }
        stdout.finish(on_line);
        stderr.finish(on_line);
        Ok(RunOutcome { exit_code, stdout_tail: stdout.tail.text(), stderr_tail: stderr.tail.text(), duration: started.elapsed() })
    }

    /// TERM to the process group `pid` leads, then KILL to whatever is left
    /// after the grace period. Best effort: failures are logged.
    async fn stop_group(&self, pid: u32, sudo: bool) {
        // Before `timeout` has made its group, only the pid itself exists.
        let script = format!(
            "p={pid}; kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null || exit 0; i=0; \
             while [ $i -lt {STOP_GRACE_TENTHS} ]; do kill -0 -$p 2>/dev/null || kill -0 $p 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; \
             kill -KILL -$p 2>/dev/null; kill -KILL $p 2>/dev/null; exit 0"
        );
        let result = async {
            let line = self.shell_line(&script, sudo)?;
            let (_permit, ch) = self.channel(&self.stops).await?;
            ch.exec(true, line).await.map_err(protocol)?;
            ch.eof().await.map_err(protocol)?;
            let out = crate::collect(&mut ch.split().0).await;
            self.check_sudo(&out)?;
            Ok::<_, SshError>(out)
        };
        match tokio::time::timeout(Duration::from_secs(20), result).await {
            Ok(Ok(out)) if out.exit_code == Some(0) => {}
            Ok(Ok(out)) => tracing::warn!(pid, ?out, "stopping a remote process group failed"),
            Ok(Err(e)) => tracing::warn!(pid, error = %e, "stopping a remote process group failed; the remote timeout will end it"),
            Err(_) => tracing::warn!(pid, "stopping a remote process group took too long; the remote timeout will end it"),
        }
    }
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Splits one stream into lines across chunk boundaries and keeps its tail.
struct Lines {
    stream: Stream,
    pending: Vec<u8>,
    tail: Tail,
}

impl Lines {
    fn new(stream: Stream) -> Lines {
        Lines { stream, pending: Vec::new(), tail: Tail::default() }
    }

    fn push(&mut self, mut data: &[u8], on_line: &mut (dyn FnMut(OutputLine) + Send)) {
        self.tail.push(data);
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&data[..nl]);
            self.emit(on_line);
            data = &data[nl + 1..];
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() > MAX_LINE_BYTES {
            let rest = self.pending.split_off(MAX_LINE_BYTES);
            self.emit(on_line);
            self.pending = rest;
        }
    }

    /// Delivers a last line that had no `\n`.
    fn finish(&mut self, on_line: &mut (dyn FnMut(OutputLine) + Send)) {
        if !self.pending.is_empty() {
            self.emit(on_line);
        }
    }

    fn emit(&mut self, on_line: &mut (dyn FnMut(OutputLine) + Send)) {
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        on_line(OutputLine { stream: self.stream, line, at: Utc::now() });
    }
}

/// The last [`TAIL_BYTES`] of a stream.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        // Trim in batches so a chatty command does not shift the buffer on
        // every chunk.
        if self.bytes.len() > 2 * TAIL_BYTES {
            self.bytes.drain(..self.bytes.len() - TAIL_BYTES);
        }
    }

    /// At most [`TAIL_BYTES`] of text, starting on a character boundary
    /// (replacement characters can make the text longer than the bytes).
    fn text(&self) -> String {
        let mut start = self.bytes.len().saturating_sub(TAIL_BYTES);
        // Do not begin in the middle of a UTF-8 sequence.
        while start > 0 && start < self.bytes.len() && (self.bytes[start] & 0b1100_0000) == 0b1000_0000 {
            start += 1;
        }
        let text = String::from_utf8_lossy(&self.bytes[start..]);
        let mut cut = text.len().saturating_sub(TAIL_BYTES);
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text[cut..].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, String) {
        let mut lines = Lines::new(Stream::Stdout);
        let mut seen = Vec::new();
        let mut on_line = |l: OutputLine| seen.push(l.line);
        for c in chunks {
            lines.push(c, &mut on_line);
        }
        lines.finish(&mut on_line);
        (seen, lines.tail.text())
    }

    #[test]
    fn lines_are_joined_across_chunks_and_a_last_unterminated_line_is_kept() {
        let (seen, tail) = split(&[b"fir", b"st\nsec", b"ond\n\nthi", b"rd"]);
        assert_eq!(seen, ["first", "second", "", "third"]);
        assert_eq!(tail, "first\nsecond\n\nthird");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_a_split_character_survives() {
        let snow = "☃".as_bytes();
        let (seen, _) = split(&[b"\xffok\n", &snow[..1], &snow[1..], b"\n"]);
        assert_eq!(seen, ["\u{fffd}ok", "☃"]);
    }

    #[test]
    fn the_tail_keeps_the_last_8_kib_on_a_character_boundary() {
        let mut lines = Lines::new(Stream::Stderr);
        let mut on_line = |_l: OutputLine| {};
        for _ in 0..10_000 {
            lines.push("é\n".as_bytes(), &mut on_line);
        }
        lines.push(b"end", &mut on_line);
        let tail = lines.tail.text();
        assert!(tail.len() <= TAIL_BYTES, "{}", tail.len());
        assert!(tail.len() > TAIL_BYTES - 4);
        assert!(tail.ends_with("é\nend"));
        assert!(!tail.contains('\u{fffd}'));

        // Each invalid byte becomes three bytes of U+FFFD; the text still fits.
        let mut bad = Lines::new(Stream::Stdout);
        bad.push(&[0xff; 3 * TAIL_BYTES], &mut on_line);
        let tail = bad.tail.text();
        assert!(tail.len() <= TAIL_BYTES && tail.len() > TAIL_BYTES - 3, "{}", tail.len());
    }

    #[test]
    fn an_endless_line_is_delivered_in_pieces() {
        let big = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let (seen, _) = split(&[&big]);
        assert_eq!(seen.iter().map(String::len).collect::<Vec<_>>(), [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
    }
}
