//! `opspilot bundle index | sign | verify`: the offline install bundle from
//! the command line. No database is involved. A failure prints
//! `error <code> <key>: <detail>` and the dictionary's hint on stderr and
//! exits 2.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use opspilot_bundle::{Bundle, Progress, VerifyOptions};
use opspilot_domain::DomainError;

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Fill in sha256/sizeBytes of every artifact and hook in manifests/index.yaml
    /// (comments in it are not kept) and write checksums/SHA256SUMS.
    Index {
        /// The bundle directory (script/).
        dir: PathBuf,
    },
    /// Sign checksums/SHA256SUMS; writes checksums/SHA256SUMS.sig and checksums/public.key.
    Sign {
        dir: PathBuf,
        /// ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`); keep it outside the bundle.
        #[arg(long, env = "OPSPILOT_BUNDLE_SIGNING_KEY_FILE")]
        key: PathBuf,
    },
    /// Verify signature, checksums, artifacts, hooks and compatibility.
    Verify {
        dir: PathBuf,
        /// The public key the bundle must be signed by: base64 of the raw 32 bytes (a public.key file) or an SPKI PEM.
        #[arg(long)]
        trusted_key: Option<PathBuf>,
        /// Only this runtime's artifacts must be present (k8s, compose).
        #[arg(long)]
        runtime: Option<String>,
    },
}

/// Runs a bundle command; answers the process exit code.
pub fn run(command: BundleCommand) -> i32 {
    let result = match command {
        BundleCommand::Index { dir } => index(&dir),
        BundleCommand::Sign { dir, key } => sign(&dir, &key),
        BundleCommand::Verify { dir, trusted_key, runtime } => verify(&dir, trusted_key.as_deref(), runtime),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let entry = e.code.entry();
            eprintln!("error {} {}: {}", entry.code, entry.key, e.detail);
            eprintln!("hint: {}", entry.hint_en);
            2
        }
    }
}

fn index(dir: &Path) -> Result<(), DomainError> {
    let bar = Bar::new();
    let report = opspilot_bundle::fill_index(dir, &|p| bar.on(p));
    bar.finish();
    let report = report?;
    println!("indexed {}", dir.display());
    println!("  artifacts filled in: {}, hooks: {}", report.artifacts_filled, report.hooks_filled);
    println!(
        "  manifests/index.yaml: {}",
        if report.index_changed { "rewritten (comments are not kept)" } else { "unchanged" }
    );
    println!("  SHA256SUMS: {} files ({} hashed)", report.files_listed, HumanBytes(report.bytes_hashed));
    print_warnings(&report.warnings);
    println!("next: opspilot bundle sign {} --key <private key PEM>", dir.display());
    Ok(())
}

fn sign(dir: &Path, key: &Path) -> Result<(), DomainError> {
    let pem = std::fs::read_to_string(key).map_err(|e| DomainError::validation("--key", format!("{}: {e}", key.display())))?;
    let public = opspilot_bundle::sign(dir, &pem)?;
    println!("signed {}", dir.display());
    println!("  public key: {public}");
    Ok(())
}

fn verify(dir: &Path, trusted_key: Option<&Path>, runtime: Option<String>) -> Result<(), DomainError> {
    let trusted_public_key = match trusted_key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| DomainError::validation("--trusted-key", format!("{}: {e}", path.display())))?;
            Some(opspilot_bundle::parse_public_key(&text).map_err(|e| DomainError::validation("--trusted-key", e.detail))?)
        }
        None => None,
    };
    let bundle = Bundle::load(dir)?;
    let opts = VerifyOptions { runtime, trusted_public_key };
    let bar = Bar::new();
    let report = bundle.verify(&opts, &|p| bar.on(p));
    bar.finish();
    let report = report?;
    println!("bundle {} at {}: OK", report.bundle_version, bundle.root.display());
    let runtimes: Vec<String> = bundle
        .index
        .runtimes
        .iter()
        .filter(|r| report.runtimes.contains(&r.name))
        .map(|r| format!("{} {}", r.name, r.version))
        .collect();
    println!("  runtimes checked: {}", runtimes.join(", "));
    println!("  files checked: {} ({})", report.files_checked, HumanBytes(report.bytes_checked));
    let trust = if opts.trusted_public_key.is_some() { "the trusted key" } else { "not compared: no --trusted-key" };
    println!("  signed by: {} ({trust})", report.signed_by);
    print_warnings(&report.warnings);
    Ok(())
}

fn print_warnings(warnings: &[String]) {
    if warnings.is_empty() {
        println!("  warnings: none");
    } else {
        println!("  warnings:");
        for w in warnings {
            println!("    - {w}");
        }
    }
}

/// A byte progress bar over the hashing pass, on stderr, only for a person
/// watching a terminal.
struct Bar {
    bar: RefCell<Option<ProgressBar>>,
    /// Bytes of the files finished before the current one.
    before: Cell<u64>,
    current: RefCell<(String, u64)>,
}

impl Bar {
    fn new() -> Bar {
        Bar { bar: RefCell::new(None), before: Cell::new(0), current: RefCell::new((String::new(), 0)) }
    }

    fn on(&self, progress: Progress) {
        match progress {
            Progress::Plan { bytes, .. } => {
                if std::io::stderr().is_terminal() {
                    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                    *self.bar.borrow_mut() = Some(ProgressBar::new(bytes).with_style(style));
                }
            }
            Progress::File { path, done, total } => {
                let bar = self.bar.borrow();
                let Some(bar) = bar.as_ref() else { return };
                let mut current = self.current.borrow_mut();
                if current.0 != path {
                    self.before.set(self.before.get() + current.1);
                    bar.set_message(path.clone());
                    *current = (path, total);
                }
                bar.set_position(self.before.get() + done);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}
