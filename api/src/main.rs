//! `opspilot`: serve | migrate | projections rebuild | replay | audit verify |
//! user create | demo-data | schema | bundle index/sign/verify.

mod bundle_cli;

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use opspilot_api::config::{self, Config};
use opspilot_commands::identity::NewUser;
use opspilot_commands::{CommandContext, Commands};
use opspilot_domain::{ErrorCode, Source};
use opspilot_eventstore::EventStore;

#[derive(Parser)]
#[command(name = "opspilot", version, about = "OpsPilot deployment-management platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (GraphQL, REST, projections).
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Read-model maintenance.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Print events as JSON lines: one stream, or the log from a position.
    Replay {
        /// A stream id such as user-<uuid>.
        #[arg(long, conflicts_with = "from")]
        stream: Option<String>,
        /// Print the log after this position.
        #[arg(long)]
        from: Option<i64>,
    },
    /// Event-log integrity.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Load the seed's demo identities and scopes (password from OPSPILOT_DEMO_PASSWORD).
    DemoData,
    /// Print the GraphQL SDL.
    Schema,
    /// The offline install bundle: index, sign, verify (no database).
    Bundle {
        #[command(subcommand)]
        command: bundle_cli::BundleCommand,
    },
    /// The AI command center's intent engine (no database).
    Ai {
        #[command(subcommand)]
        command: AiCommand,
    },
}

#[derive(Subcommand)]
enum AiCommand {
    /// Print a sentence's intent, params (API names), missing params and confidence as JSON.
    Parse {
        sentence: String,
        /// zh-CN or en (checked, for symmetry with sessions); the parse is the same in both.
        #[arg(long)]
        lang: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Drop and rebuild one projection (or all) from the log.
    Rebuild { name: Option<String> },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 if any event was edited or removed.
    Verify,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a local account.
    Create {
        #[arg(long)]
        username: String,
        /// Read from OPSPILOT_USER_PASSWORD when omitted.
        #[arg(long, env = "OPSPILOT_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Team (id or name) to join.
        #[arg(long)]
        team: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("OPSPILOT_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            let running = opspilot_api::start(Config::from_env()?).await?;
            tokio::select! {
                _ = running.task => {},
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
            }
        }
        Command::Migrate => {
            let pool = pool().await?;
            let applied = opspilot_eventstore::migrate(&pool).await?;
            println!("migrations applied: {applied:?}");
        }
        Command::Projections { command: ProjectionsCommand::Rebuild { name } } => {
            let pool = pool().await?;
            opspilot_eventstore::migrate(&pool).await?;
            let projections = match name {
                Some(n) => vec![opspilot_projections::by_name(&n).with_context(|| {
                    let known: Vec<&str> = opspilot_projections::all().iter().map(|p| p.name).collect();
                    format!("unknown projection {n:?}; known: {known:?}")
                })?],
                None => opspilot_projections::all(),
            };
            for p in projections {
                let started = Instant::now();
                let n = opspilot_projections::runner::rebuild(&pool, &p).await?;
                let secs = started.elapsed().as_secs_f64();
                println!("rebuilt {}: {n} events in {secs:.2}s ({:.0} events/s)", p.name, n as f64 / secs.max(1e-9));
            }
        }
        Command::Replay { stream, from } => {
            let pool = pool().await?;
            let store = EventStore::new(pool);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match stream {
                Some(s) => {
                    for e in store.read_stream(&s).await? {
                        writeln!(out, "{}", serde_json::to_string(&e)?)?;
                    }
                }
                None => {
                    let mut after = from.unwrap_or(0);
                    loop {
                        let page = store.read_all(after, 1000).await?;
                        let Some(last) = page.last() else { break };
                        after = last.position;
                        for e in &page {
                            writeln!(out, "{}", serde_json::to_string(e)?)?;
                        }
                    }
                }
            }
            out.flush()?;
        }
        Command::Audit { command: AuditCommand::Verify } => {
            let pool = pool().await?;
            let report = EventStore::new(pool).verify_chain().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.broken_at.is_some() {
                std::process::exit(1);
            }
        }
        Command::User { command: UserCommand::Create { username, password, roles, display_name, team } } => {
            let commands = commands().await?;
            let ctx = CommandContext::system(Source::ApiDirect);
            let h = commands
                .create_user(&ctx, NewUser { username: username.clone(), display_name, password, roles })
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if let Some(team) = team {
                commands.add_team_member(&ctx, &team, &username).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            println!("{}", h.result);
        }
        Command::DemoData => {
            let password = std::env::var("OPSPILOT_DEMO_PASSWORD").context("set OPSPILOT_DEMO_PASSWORD (8+ characters) for the demo users")?;
            let commands = commands().await?;
            demo_data(&commands, &password).await?;
            println!("demo data loaded: project proj-alpha, team team-app, users admin, dev_user (operator), approver_user (approver), services svc-a and svc-b, hosts cp-1 wk-1 wk-2 compose-1 (keys not yet trusted), environment env-compose-prod, target target-compose-prod{}", if std::env::var("OPSPILOT_DEMO_KUBECONFIG").is_ok() { ", cluster k8s-prod-platform, target target-k8s-prod" } else { "" });
        }
        Command::Schema => print!("{}", opspilot_api::schema::sdl()),
        Command::Bundle { command } => std::process::exit(bundle_cli::run(command)),
        Command::Ai { command: AiCommand::Parse { sentence, lang } } => {
            if let Some(l) = lang.as_deref() {
                opspilot_domain::ai::session::SessionLang::parse(l).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            }
            println!("{}", serde_json::to_string_pretty(&opspilot_domain::ai::intent::parse(&sentence))?);
        }
    }
    Ok(())
}

async fn pool() -> anyhow::Result<opspilot_eventstore::Pool> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set")?;
    Ok(opspilot_eventstore::pool(&url, 4)?)
}

async fn commands() -> anyhow::Result<Commands> {
    let pool = pool().await?;
    opspilot_eventstore::migrate(&pool).await?;
    Ok(Commands::new(pool, config::master_key()?))
}

/// svc-a's manifest template: a Deployment whose image tag is a variable.
const SVC_A_TEMPLATE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ service }}
  labels: { app: {{ service }} }
spec:
  replicas: {{ replicas }}
  selector: { matchLabels: { app: {{ service }} } }
  template:
    metadata: { labels: { app: {{ service }} } }
    spec:
      containers:
      - name: app
        image: {{ image_repo }}:{{ image_tag }}
"#;

/// The seed's demo identities and scopes, svc-a, and — when
/// OPSPILOT_DEMO_KUBECONFIG names a kubeconfig — the cluster k8s-prod-platform
/// and target-k8s-prod; re-running it changes nothing.
async fn demo_data(commands: &Commands, password: &str) -> anyhow::Result<()> {
    let ctx = CommandContext::system(Source::ApiDirect);
    let exists = |r: Result<opspilot_commands::Handled, opspilot_commands::CommandError>| match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == ErrorCode::ResourceConflict => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{e:?}")),
    };
    exists(commands.create_project(&ctx, "proj-alpha", "demo project").await)?;
    exists(commands.create_team(&ctx, "team-app", "proj-alpha").await)?;
    for (user, role) in [("admin", "admin"), ("dev_user", "operator"), ("approver_user", "approver")] {
        let input = NewUser { username: user.into(), display_name: None, password: password.into(), roles: vec![role.into()] };
        exists(commands.create_user(&ctx, input).await)?;
        if user != "admin" {
            commands.add_team_member(&ctx, "team-app", user).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
    }
    // The catalog is managed by admins: demo-data acts as the admin account.
    let admin = opspilot_domain::Principal {
        user_id: opspilot_commands::ids::id_for("user", "admin"),
        username: "admin".into(),
        roles: [opspilot_domain::Role::Admin].into(),
        team_ids: Default::default(),
        project_ids: Default::default(),
        api_token_id: None,
    };
    let actx = CommandContext::user(admin, Source::ApiDirect);
    let svc = opspilot_commands::catalog::NewService {
        name: "svc-a".into(),
        project: "proj-alpha".into(),
        team: "team-app".into(),
        runtime_type: "k8s".into(),
        manifest_template: SVC_A_TEMPLATE.into(),
        variables_schema: Default::default(),
        default_variables: [("replicas".to_string(), "2".to_string()), ("image_repo".to_string(), "registry.local/svc-a".to_string())].into(),
        risk_level: Some("high".into()),
    };
    exists(commands.create_service(&actx, svc).await)?;
    if let Ok(path) = std::env::var("OPSPILOT_DEMO_KUBECONFIG") {
        let kubeconfig = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let placement = opspilot_commands::clusters::ClusterPlacement { name: "k8s-prod-platform".into(), project: "proj-alpha".into(), team: "team-app".into(), labels: Default::default() };
        exists(commands.import_cluster_kubeconfig(&actx, &placement, &kubeconfig).await)?;
        let target = opspilot_commands::catalog::NewTarget {
            name: "target-k8s-prod".into(),
            project: "proj-alpha".into(),
            team: "team-app".into(),
            runtime_type: "k8s".into(),
            env: "production".into(),
            cluster: Some("k8s-prod-platform".into()),
            namespace: Some(std::env::var("OPSPILOT_DEMO_NAMESPACE").unwrap_or_else(|_| "prod".into())),
            environment: None,
            host: None,
            project_name: None,
            project_dir: None,
        };
        exists(commands.create_target(&actx, target).await)?;
    }
    demo_compose(commands, &actx).await
}

/// svc-b's compose template: a small HTTP service.
const SVC_B_TEMPLATE: &str = r#"services:
  web:
    image: {{ image }}:{{ image_tag }}
    network_mode: host
    restart: unless-stopped
    command: ["sh", "-c", "mkdir -p /tmp/www && echo '{{ message }}' > /tmp/www/index.html && exec busybox httpd -f -p {{ port }} -h /tmp/www"]
"#;

/// The seed's hosts (cp-1, wk-1, wk-2, compose-1), env-compose-prod with
/// compose-1 as its compose_manager, svc-b and target-compose-prod. The hosts
/// log in with the private key in OPSPILOT_DEMO_SSH_KEY (a file); without it
/// a demo key is stored whose public half is printed to authorize on the
/// hosts. OPSPILOT_DEMO_COMPOSE_HOST_IP points compose-1 at a real machine.
async fn demo_compose(commands: &Commands, actx: &CommandContext) -> anyhow::Result<()> {
    let exists = |r: Result<opspilot_commands::Handled, opspilot_commands::CommandError>| match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == ErrorCode::ResourceConflict => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{e:?}")),
    };
    let key = match std::env::var("OPSPILOT_DEMO_SSH_KEY") {
        Ok(path) => std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?,
        Err(_) => {
            use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let mut seed = [0u8; 32];
            seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            let k = ed25519_dalek::SigningKey::from_bytes(&seed);
            let public = k.verifying_key().to_public_key_pem(Default::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("demo hosts log in with a generated ed25519 key; its public key (PEM):\n{public}");
            k.to_pkcs8_pem(Default::default()).map_err(|e| anyhow::anyhow!("{e}"))?.to_string()
        }
    };
    let compose_ip = std::env::var("OPSPILOT_DEMO_COMPOSE_HOST_IP").unwrap_or_else(|_| "10.0.1.21".into());
    let hosts = [("cp-1", "10.0.0.11".to_string()), ("wk-1", "10.0.0.12".into()), ("wk-2", "10.0.0.13".into()), ("compose-1", compose_ip)];
    let mut credential: Option<String> = None;
    for (name, ip) in hosts {
        let h = opspilot_commands::hosts::NewHost {
            name: name.into(),
            project: "proj-alpha".into(),
            ip,
            port: 22,
            ssh_user: "root".into(),
            auth: "key".into(),
            credential: credential.clone(),
            secret: if credential.is_none() { Some(key.clone()) } else { None },
            labels: Default::default(),
        };
        match commands.register_host(actx, h).await {
            Ok(done) => credential = credential.or_else(|| done.result["credential_id"].as_str().map(String::from)),
            Err(e) if e.code() == ErrorCode::ResourceConflict => {}
            Err(e) => return Err(anyhow::anyhow!("{e:?}")),
        }
    }
    let env = opspilot_commands::environments::NewEnvironment {
        name: "env-compose-prod".into(),
        project: "proj-alpha".into(),
        team: "team-app".into(),
        runtime_type: "compose".into(),
        mode: "platform_managed".into(),
        region: "cn-hz".into(),
        labels: [("tier".to_string(), "prod".to_string())].into(),
        description: "production compose environment".into(),
    };
    exists(commands.create_environment(actx, env).await)?;
    let node = opspilot_commands::environments::NodeRequest { host: "compose-1".into(), node_role: "compose_manager".into(), weight: Some(100) };
    commands.bind_nodes(actx, "env-compose-prod", vec![node]).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let svc = opspilot_commands::catalog::NewService {
        name: "svc-b".into(),
        project: "proj-alpha".into(),
        team: "team-app".into(),
        runtime_type: "compose".into(),
        manifest_template: SVC_B_TEMPLATE.into(),
        variables_schema: Default::default(),
        default_variables: [("image".to_string(), "opspilot-busybox".to_string()), ("image_tag".to_string(), "1".to_string()), ("port".to_string(), "8080".to_string()), ("message".to_string(), "svc-b v1".to_string())].into(),
        risk_level: Some("medium".into()),
    };
    exists(commands.create_service(actx, svc).await)?;
    let target = opspilot_commands::catalog::NewTarget {
        name: "target-compose-prod".into(),
        project: "proj-alpha".into(),
        team: "team-app".into(),
        runtime_type: "compose".into(),
        env: "production".into(),
        cluster: None,
        namespace: None,
        environment: Some("env-compose-prod".into()),
        host: Some("compose-1".into()),
        project_name: Some("svc-b-prod".into()),
        project_dir: None,
    };
    exists(commands.create_target(actx, target).await)?;
    Ok(())
}
