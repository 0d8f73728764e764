//! Commands and uploads on the real test hosts, the way an install task uses
//! them: output streamed line by line, sudo for the non-root user, values that
//! reach a hook untouched, deadlines and cancellation that end the remote
//! process, and uploads checked on the host. Only the first three hosts are
//! used; the smoke script rotates the fourth's host key.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use futures::FutureExt;
use opspilot_domain::ErrorCode;
use opspilot_ssh::{CancellationToken, OutputLine, RemoteCommand, RunOptions, SshError, SshSession, Stream, UploadSource};
use opspilot_tests::env;

const MIB: usize = 1024 * 1024;

async fn session(host: usize, as_root: bool) -> SshSession {
    SshSession::connect(&env::ssh_target(host, as_root)).await.expect("logs in")
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Runs `body`, then `cleanup` as root on `host` whether or not it panicked.
async fn with_cleanup<F: std::future::Future<Output = ()>>(host: usize, cleanup: &str, body: F) {
    let result = AssertUnwindSafe(body).catch_unwind().await;
    let out = session(host, true).await.exec(cleanup, Duration::from_secs(60)).await.expect("cleanup runs");
    assert_eq!(out.exit_code, Some(0), "cleanup {cleanup:?} failed: {out:?}");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The pids of processes whose whole command line is `cmdline`, seen from a
/// separate root session.
async fn pids_running(host: usize, cmdline: &str) -> Vec<String> {
    let out = session(host, true).await.exec(&format!("pgrep -f '^{cmdline}$'"), Duration::from_secs(20)).await.unwrap();
    assert!(matches!(out.exit_code, Some(0) | Some(1)), "pgrep failed: {out:?}");
    out.stdout.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn lines_arrive_in_order_while_the_command_still_runs() {
    env::shared();
    let root = session(0, true).await;
    // The command waits for a file that the test creates only once it has the
    // first line: lines held back until the end would never let it finish.
    let go = format!("/tmp/go-{}", suffix());
    let first_arrived = std::sync::atomic::AtomicBool::new(false);
    let mut seen: Vec<OutputLine> = Vec::new();
    let command = format!("echo first; while [ ! -e {go} ]; do sleep 0.1; done; echo second; echo oops >&2; printf 'last without newline'; exit 7");
    let mut on_line = |line: OutputLine| {
        if line.line == "first" {
            first_arrived.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        seen.push(line);
    };
    let options = RunOptions::new(Duration::from_secs(60));
    let run = root.run(&command, &options, &mut on_line);
    let release = async {
        for _ in 0..300 {
            if first_arrived.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let arrived = first_arrived.load(std::sync::atomic::Ordering::SeqCst);
        session(0, true).await.exec(&format!("touch {go}"), Duration::from_secs(10)).await.unwrap();
        arrived
    };
    let (outcome, arrived) = tokio::join!(run, release);
    let outcome = outcome.unwrap();
    session(0, true).await.exec(&format!("rm -f {go}"), Duration::from_secs(10)).await.unwrap();
    assert!(arrived, "the first line was not handed over while the command still ran");

    let lines = |stream| seen.iter().filter(|l| l.stream == stream).map(|l| l.line.as_str()).collect::<Vec<_>>();
    assert_eq!(lines(Stream::Stdout), ["first", "second", "last without newline"]);
    assert_eq!(lines(Stream::Stderr), ["oops"]);
    assert_eq!(outcome.exit_code, Some(7));
    assert_eq!(outcome.stdout_tail, "first\nsecond\nlast without newline");
    assert_eq!(outcome.stderr_tail, "oops\n");
    assert!(seen.windows(2).all(|w| w[0].at <= w[1].at));

    // A line longer than any SSH packet is put back together; bad UTF-8 is
    // replaced, not fatal.
    let mut seen = Vec::new();
    let outcome = root
        .run(
            "head -c 100000 /dev/zero | tr '\\0' x; echo; printf '\\377ok\\n'",
            &RunOptions::new(Duration::from_secs(30)),
            &mut |line| seen.push(line.line),
        )
        .await
        .unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(seen.len(), 2, "{:?}", seen.iter().map(String::len).collect::<Vec<_>>());
    assert_eq!(seen[0], "x".repeat(100_000));
    assert_eq!(seen[1], "\u{fffd}ok");
    assert!(outcome.stdout_tail.len() <= 8 * 1024 && outcome.stdout_tail.ends_with("xxx\n\u{fffd}ok\n"), "{}", outcome.stdout_tail.len());
}

#[tokio::test]
async fn the_non_root_user_runs_commands_through_sudo() {
    env::shared();
    let ops = session(1, false).await;
    assert!(!ops.is_root());
    let mut seen = Vec::new();
    let outcome = ops.run("id -u; id -un", &RunOptions::new(Duration::from_secs(30)), &mut |l| seen.push(l.line)).await.unwrap();
    assert_eq!((outcome.exit_code, seen), (Some(0), vec!["0".to_string(), "root".to_string()]));

    let as_ops = ops.run("id -un", &RunOptions::new(Duration::from_secs(30)).as_login_user(), &mut |_| {}).await.unwrap();
    assert_eq!(as_ops.stdout_tail, "ops\n");

    let root = session(1, true).await;
    assert!(root.is_root());
    assert_eq!(root.run("id -u", &RunOptions::new(Duration::from_secs(30)), &mut |_| {}).await.unwrap().stdout_tail, "0\n");
}

#[tokio::test]
async fn a_user_whose_sudo_wants_a_password_is_refused_at_once() {
    env::shared();
    let (user, password) = (format!("opsns{}", &suffix()[..8]), suffix());
    let root = session(2, true).await;
    let created = root.exec(&format!("useradd -m -s /bin/bash {user} && echo '{user}:{password}' | chpasswd"), Duration::from_secs(30)).await.unwrap();
    assert_eq!(created.exit_code, Some(0), "{created:?}");

    with_cleanup(2, &format!("userdel -r {user} 2>/dev/null; id {user} >/dev/null 2>&1 && exit 1; exit 0"), async {
        let mut target = env::ssh_target(2, false);
        target.user = user.clone();
        target.auth = opspilot_ssh::SshAuth::Password(password.clone());
        let plain = SshSession::connect(&target).await.expect("the new user logs in");

        // Refused, not left waiting for a password until the deadline.
        let err = plain.run("id -u", &RunOptions::new(Duration::from_secs(60)), &mut |_| {}).await.unwrap_err();
        match &err {
            SshError::SudoRefused { user: u, reason } => assert!(u == &user && reason.contains("password"), "{err}"),
            other => panic!("expected SudoRefused, got {other:?}"),
        }
        assert_eq!(err.code(), ErrorCode::SshAuthFailed);

        let err = plain.upload(UploadSource::Bytes(b"x".to_vec()), &format!("/opt/opspilot-test-{}/x", suffix()), 0o644, None).await.unwrap_err();
        assert!(matches!(err, SshError::SudoRefused { .. }), "{err:?}");

        // Without sudo the same user just runs as itself.
        let own = plain.run("id -un", &RunOptions::new(Duration::from_secs(30)).as_login_user(), &mut |_| {}).await.unwrap();
        assert_eq!(own.stdout_tail, format!("{user}\n"));
    })
    .await;
}

#[tokio::test]
async fn values_and_arguments_reach_the_program_byte_for_byte_and_run_nothing() {
    env::shared();
    for (host, as_root) in [(0, true), (2, false)] {
        let pwned = format!("/tmp/pwned-{}", suffix());
        let evil = [
            format!("$(touch {pwned})"),
            format!("`touch {pwned}`"),
            format!("'; touch {pwned}; echo '"),
            format!("\"; touch {pwned}; echo \""),
            format!("line one\nline two; touch {pwned}\n"),
            format!("a && touch {pwned} || touch {pwned} | cat > {pwned}"),
            "$HOME ${PATH} $1 * ? ~ \\ %s %d \\n '' \"\"".to_string(),
            String::new(),
            "ünïcödé 中文".to_string(),
        ];
        let mut cmd = RemoteCommand::new(["sh", "-c", r#"printf '%s|' "$OPS_EVIL" "$OPS_TASK_ID"; for a in "$@"; do printf '%s|' "$a"; done; pwd"#, "sh"])
            .env("OPS_EVIL", evil.concat())
            .env("OPS_TASK_ID", "t-1")
            .workdir("/usr/share");
        cmd.argv.extend(evil.iter().cloned());

        let session = session(host, as_root).await;
        let outcome = session.run(&cmd.to_shell().unwrap(), &RunOptions::new(Duration::from_secs(30)), &mut |_| {}).await.unwrap();
        let expected = format!("{}|t-1|{}|/usr/share\n", evil.concat(), evil.join("|"));
        assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
        assert_eq!(outcome.stdout_tail, expected, "as root: {as_root}");
        assert_eq!(outcome.stderr_tail, "");

        let check = session.exec(&format!("test -e {pwned}"), Duration::from_secs(20)).await.unwrap();
        assert_eq!(check.exit_code, Some(1), "{pwned} was created: a value was executed");
    }
}

#[tokio::test]
async fn a_command_past_its_deadline_is_stopped_on_the_host() {
    env::shared();
    let deadline = async |host: usize, as_root: bool| {
        let session = session(host, as_root).await;
        let mut started = false;
        let mut on_line = |l: OutputLine| started |= l.line == "started";
        let options = RunOptions::new(Duration::from_secs(8));
        let run = session.run("echo started; sleep 300; echo never", &options, &mut on_line);
        // While it runs, the sleep is visible from a second session.
        let watch = async {
            let mut found = Vec::new();
            for _ in 0..30 {
                found = pids_running(host, "sleep 300").await;
                if !found.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            found
        };
        let (result, during) = tokio::join!(run, watch);
        match result {
            Err(SshError::Timeout(d)) => assert_eq!(d, Duration::from_secs(8)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started, "the line before the sleep was not delivered");
        assert_eq!(during.len(), 1, "sleep 300 was not running on host {host} while the command ran");
        assert_eq!(pids_running(host, "sleep 300").await, Vec::<String>::new(), "sleep 300 survived on host {host}");
    };
    tokio::join!(deadline(0, true), deadline(1, false));
}

#[tokio::test]
async fn a_cancelled_command_is_stopped_on_the_host() {
    env::shared();
    let cancel = async |host: usize, as_root: bool| {
        let session = session(host, as_root).await;
        let token = CancellationToken::new();
        let options = RunOptions::new(Duration::from_secs(120)).cancel_on(token.clone());
        let mut ignore = |_: OutputLine| {};
        let run = session.run("echo started; sleep 301; echo never", &options, &mut ignore);
        let watch = async {
            let mut found = Vec::new();
            for _ in 0..50 {
                found = pids_running(host, "sleep 301").await;
                if !found.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            token.cancel();
            found
        };
        let (result, during) = tokio::join!(run, watch);
        let err = result.unwrap_err();
        assert!(matches!(err, SshError::Cancelled), "{err:?}");
        assert_eq!(err.code(), ErrorCode::ScriptHookExecFailed);
        assert_eq!(during.len(), 1, "sleep 301 never ran on host {host}");
        assert_eq!(pids_running(host, "sleep 301").await, Vec::<String>::new(), "sleep 301 survived on host {host}");

        // A token cancelled beforehand starts nothing.
        let err = session.run("touch /tmp/never", &RunOptions::new(Duration::from_secs(5)).cancel_on(token), &mut |_| {}).await.unwrap_err();
        assert!(matches!(err, SshError::Cancelled));
    };
    tokio::join!(cancel(1, true), cancel(2, false));
}

#[tokio::test]
async fn one_session_runs_many_commands_at_once() {
    env::shared();
    let ops = session(2, false).await;
    let board = format!("/tmp/at-once-{}", std::process::id());
    ops.exec(&format!("rm -f {board}"), Duration::from_secs(10)).await.unwrap();
    // Each command signs the board, then waits (up to 30 s) until eight have
    // signed: commands run one after another would never see eight, so each
    // would give up and exit 1.
    let script = format!(
        "echo x >> {board}; n=0; while [ $(wc -l < {board}) -lt 8 ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; [ $(wc -l < {board}) -ge 8 ]"
    );
    let runs = (0..12).map(|i| {
        let (ops, script) = (&ops, &script);
        async move {
            let mut lines = Vec::new();
            let command = format!("echo start-{i}; {script}; code=$?; echo end-{i} >&2; exit $code");
            let outcome = ops.run(&command, &RunOptions::new(Duration::from_secs(60)), &mut |l| lines.push(l.line)).await.unwrap();
            (i, outcome, lines)
        }
    });
    // More commands than sshd's 10 sessions per connection: the extra ones
    // wait for a free channel instead of failing.
    for (i, outcome, lines) in futures::future::join_all(runs).await {
        assert_eq!(outcome.exit_code, Some(0), "command {i} never saw eight at once: {outcome:?}");
        assert_eq!(outcome.stdout_tail, format!("start-{i}\n"));
        assert_eq!(outcome.stderr_tail, format!("end-{i}\n"));
        assert_eq!(lines, [format!("start-{i}"), format!("end-{i}")]);
    }
    ops.exec(&format!("rm -f {board}"), Duration::from_secs(10)).await.unwrap();
}

/// 64 MiB of random bytes in a local file, and its sha256 by `sha256sum`.
fn random_file(dir: &Path) -> (std::path::PathBuf, String) {
    use rand::RngCore;
    use std::io::Write;
    let path = dir.join("blob.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut chunk = vec![0u8; MIB];
    for _ in 0..64 {
        rand::thread_rng().fill_bytes(&mut chunk);
        file.write_all(&chunk).unwrap();
    }
    let out = std::process::Command::new("sha256sum").arg(&path).output().unwrap();
    let sha = String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string();
    (path, sha)
}

#[tokio::test]
async fn uploads_are_checked_on_the_host_and_not_sent_again_when_already_there() {
    env::shared();
    let local = std::env::temp_dir().join(format!("opspilot-upload-{}", suffix()));
    std::fs::create_dir_all(&local).unwrap();
    let (file, sha) = random_file(&local);

    let scenario = async |host: usize, as_root: bool| {
        let dir = format!("/opt/opspilot-test-{}", suffix());
        with_cleanup(host, &format!("rm -rf -- {dir}"), async {
            let root = session(host, true).await;
            let session = session(host, as_root).await;
            let target = format!("{dir}/nested/blob.bin");

            let first = session.upload(UploadSource::Path(file.clone()), &target, 0o640, None).await.unwrap();
            assert_eq!((first.skipped, first.sha256.as_str(), first.bytes), (false, sha.as_str(), 64 * MIB as u64));
            let on_host = root.exec(&format!("sha256sum {target}; stat -c '%a %U' {target}; ls -A {dir}/nested"), Duration::from_secs(60)).await.unwrap();
            assert_eq!(on_host.stdout, format!("{sha}  {target}\n640 root\nblob.bin\n"), "{on_host:?}");

            let again = session.upload(UploadSource::Path(file.clone()), &target, 0o640, Some(&sha)).await.unwrap();
            assert!(again.skipped, "{again:?}");
            let again = session.upload(UploadSource::Path(file.clone()), &target, 0o640, None).await.unwrap();
            assert!(again.skipped, "{again:?}");

            // A checksum the bytes do not have: refused, nothing left behind.
            let wrong = format!("{dir}/wrong.bin");
            let zeros = "0".repeat(64);
            let err = session.upload(UploadSource::Path(file.clone()), &wrong, 0o600, Some(&zeros)).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::ArtifactChecksumMismatch);
            match err {
                SshError::ChecksumMismatch { path, expected, actual } => assert_eq!((path, expected, actual), (wrong.clone(), zeros, sha.clone())),
                other => panic!("expected ChecksumMismatch, got {other:?}"),
            }
            let listing = root.exec(&format!("ls -A {dir}"), Duration::from_secs(20)).await.unwrap();
            assert_eq!(listing.stdout, "nested\n", "something was left after the mismatch");

            // Different bytes replace the file in place, with the new mode.
            let small = session.upload(UploadSource::Bytes(b"hello\n".to_vec()), &target, 0o600, None).await.unwrap();
            assert_eq!(small.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
            assert!(!small.skipped);
            let on_host = root.exec(&format!("cat {target}; stat -c '%a' {target}; ls -A {dir}/nested"), Duration::from_secs(20)).await.unwrap();
            assert_eq!(on_host.stdout, "hello\n600\nblob.bin\n");
        })
        .await;
    };
    let result = AssertUnwindSafe(async { tokio::join!(scenario(0, true), scenario(1, false)) }).catch_unwind().await;
    std::fs::remove_dir_all(&local).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
