//! `opspilot`: serve | migrate | projections rebuild | replay | audit verify |
//! user create | demo-data | schema.

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
            println!("demo data loaded: project proj-alpha, team team-app, users admin, dev_user (operator), approver_user (approver)");
        }
        Command::Schema => print!("{}", opspilot_api::graphql::sdl()),
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

/// The seed's demo identities and scopes; re-running it changes nothing.
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
    Ok(())
}
