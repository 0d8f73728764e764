//! Turning argv, environment and a working directory into one line a POSIX
//! shell runs exactly as given. Every word is single-quoted, so nothing in a
//! value (`$(..)`, backticks, `;`, quotes, newlines) is ever interpreted.

use std::collections::BTreeMap;

use crate::SshError;

/// Quotes `s` as one POSIX shell word: `'...'`, with each `'` written as
/// `'\''`. Refuses NUL, which no shell word can carry.
pub fn quote(s: &str) -> Result<String, SshError> {
    if s.contains('\0') {
        return Err(SshError::InvalidCommand(format!("{s:?} contains a NUL byte, which no shell word can carry")));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str(r"'\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// A program to run on a host: its argv, extra environment and directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCommand {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
}

impl RemoteCommand {
    /// A command with no extra environment, run in the login directory.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(argv: I) -> RemoteCommand {
        RemoteCommand { argv: argv.into_iter().map(Into::into).collect(), ..Default::default() }
    }

    /// Adds one environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> RemoteCommand {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Runs the command in `dir`.
    pub fn workdir(mut self, dir: impl Into<String>) -> RemoteCommand {
        self.workdir = Some(dir.into());
        self
    }

    /// The shell line, e.g. `cd '/opt/x' && exec env 'OPS_A=v' 'bash' 'hook.sh'`.
    pub fn to_shell(&self) -> Result<String, SshError> {
        let program = self.argv.first().ok_or_else(|| SshError::InvalidCommand("argv is empty".into()))?;
        // `env` would take a first word with `=` for an assignment and one
        // starting with `-` for an option; neither is a program name anyway.
        if program.is_empty() || program.contains('=') || program.starts_with('-') {
            return Err(SshError::InvalidCommand(format!("{program:?} is not a program name")));
        }
        let mut words = Vec::with_capacity(self.env.len() + self.argv.len() + 1);
        if !self.env.is_empty() {
            words.push("env".to_string());
            for (name, value) in &self.env {
                if !valid_env_name(name) {
                    return Err(SshError::InvalidCommand(format!("{name:?} is not an environment name ([A-Z_][A-Z0-9_]*)")));
                }
                words.push(quote(&format!("{name}={value}"))?);
            }
        }
        for arg in &self.argv {
            words.push(quote(arg)?);
        }
        let exec = format!("exec {}", words.join(" "));
        match &self.workdir {
            Some(dir) => Ok(format!("cd {} && {exec}", quote(dir)?)),
            None => Ok(exec),
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'_')) && bytes.all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const NASTY: &[&str] = &[
        "",
        "plain",
        "$(touch /tmp/opspilot-quote-pwned)",
        "`touch /tmp/opspilot-quote-pwned`",
        "a; touch /tmp/opspilot-quote-pwned",
        "it's",
        "'",
        "''",
        "\"double\" \\\"quotes\\\"",
        "line one\nline two\n",
        "$HOME ${PATH} $1 $@ * ? ~ ! # & | < > ( ) { } [ ]",
        "back\\slash\\",
        "tab\tand\rcarriage",
        "ünïcödé — 中文 🚀",
        "-n",
        "%s%d\\n",
    ];

    /// What a real `sh` makes of a line: each word printed NUL-terminated.
    fn sh_words(line: &str) -> Vec<u8> {
        let out = Command::new("sh").arg("-c").arg(format!("printf '%s\\0' {line}")).output().expect("sh runs");
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    #[test]
    fn every_word_comes_back_byte_for_byte_from_a_real_shell() {
        for s in NASTY {
            let q = quote(s).unwrap();
            assert!(q.starts_with('\'') && q.ends_with('\''), "{q}");
            assert_eq!(sh_words(&q), [s.as_bytes(), b"\0"].concat(), "{s:?} quoted as {q}");
            assert_eq!(shlex::split(&q), Some(vec![s.to_string()]), "{s:?} quoted as {q}");
        }
        let all: Vec<String> = NASTY.iter().map(|s| quote(s).unwrap()).collect();
        let expected: Vec<u8> = NASTY.iter().flat_map(|s| [s.as_bytes(), b"\0"].concat()).collect();
        assert_eq!(sh_words(&all.join(" ")), expected);
        assert!(!std::path::Path::new("/tmp/opspilot-quote-pwned").exists());
    }

    #[test]
    fn quoting_survives_nesting_inside_sh_dash_c() {
        // The session quotes a command again for `sh -c` (and sudo); two
        // levels must still deliver the word unchanged.
        for s in NASTY {
            let inner = format!("printf '%s' {}", quote(s).unwrap());
            let out = Command::new("sh").arg("-c").arg(format!("sh -c {}", quote(&inner).unwrap())).output().unwrap();
            assert_eq!(out.stdout, s.as_bytes(), "{s:?}");
        }
    }

    #[test]
    fn nul_is_refused() {
        let err = quote("a\0b").unwrap_err();
        assert!(matches!(err, SshError::InvalidCommand(_)), "{err:?}");
        assert_eq!(err.code(), opspilot_domain::ErrorCode::ValidationError);
        assert!(RemoteCommand::new(["echo", "a\0b"]).to_shell().is_err());
        assert!(RemoteCommand::new(["echo"]).env("OPS_A", "\0").to_shell().is_err());
    }

    #[test]
    fn the_shell_line_quotes_every_piece() {
        let cmd = RemoteCommand::new(["bash", "/opt/opspilot/script/hooks/x.sh"])
            .env("OPS_B", "it's")
            .env("OPS_A", "v")
            .workdir("/opt/x");
        assert_eq!(
            cmd.to_shell().unwrap(),
            r#"cd '/opt/x' && exec env 'OPS_A=v' 'OPS_B=it'\''s' 'bash' '/opt/opspilot/script/hooks/x.sh'"#
        );
        assert_eq!(RemoteCommand::new(["true"]).to_shell().unwrap(), "exec 'true'");
    }

    #[test]
    fn environment_names_and_program_names_are_checked() {
        for bad in ["", "lower", "1ABC", "A-B", "A=B", "A B", "$(x)", "ÄÖ"] {
            assert!(RemoteCommand::new(["true"]).env(bad, "v").to_shell().is_err(), "{bad:?} accepted");
        }
        for good in ["A", "_", "OPS_TASK_ID", "A1_2"] {
            assert!(RemoteCommand::new(["true"]).env(good, "v").to_shell().is_ok(), "{good:?} refused");
        }
        for bad in [vec![], vec![""], vec!["A=b"], vec!["-i"]] {
            assert!(RemoteCommand::new(bad.clone()).to_shell().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn values_and_arguments_reach_a_local_program_unchanged() {
        let dir = std::env::temp_dir().join(format!("opspilot quote '{}'", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = RemoteCommand::new(["sh", "-c", r#"pwd; printf '%s\0' "$OPS_EVIL" "$@""#, "sh"])
            .env("OPS_EVIL", NASTY.concat())
            .workdir(dir.to_str().unwrap());
        cmd.argv.extend(NASTY.iter().map(|s| s.to_string()));
        let out = Command::new("sh").arg("-c").arg(cmd.to_shell().unwrap()).output().unwrap();
        std::fs::remove_dir(&dir).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut expected = format!("{}\n", dir.display()).into_bytes();
        expected.extend(NASTY.concat().as_bytes());
        expected.push(0);
        for s in NASTY {
            expected.extend(s.as_bytes());
            expected.push(0);
        }
        assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&expected));
        assert!(!std::path::Path::new("/tmp/opspilot-quote-pwned").exists());
    }
}
