//! Wiring: database, event store, projections, process manager, scheduler,
//! router, server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_graphql::http::GraphiQLSource;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};

use crate::graphql_edge;
use axum::extract::{ConnectInfo, MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use opspilot_commands::identity::NewUser;
use opspilot_commands::{CommandContext, Commands};
use opspilot_domain::{ErrorCode, Source};
use opspilot_projections::runner;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::Config;
use crate::error::ApiError;
use crate::schema::OpsSchema;
use crate::metrics::Metrics;
use crate::state::{AppState, RequestMeta};

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub task: tokio::task::JoinHandle<()>,
}

/// Connects, migrates, starts the projections, bootstraps the admin account
/// and serves until the task is dropped.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let pool = opspilot_eventstore::pool(&config.database_url, 16)?;
    let applied = opspilot_eventstore::migrate(&pool).await.context("migrating the database")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let mut commands = Commands::new(pool.clone(), config.master_key.clone());
    commands.preview_ttl = chrono::Duration::seconds(config.preview_ttl_seconds.max(1));
    commands.ticket_ttl_override = config.approval_ttl_seconds.map(|s| chrono::Duration::seconds(s.max(1)));
    commands.approval_policy = opspilot_commands::ApprovalPolicy {
        envs: config.approval_envs.clone(),
        min_risk: opspilot_domain::approval::RiskLevel::parse(&config.approval_min_risk).map_err(|e| anyhow::anyhow!("OPSPILOT_APPROVAL_MIN_RISK: {e}"))?,
    };
    commands.install = opspilot_commands::environments::InstallSettings {
        script_root: config.script_root.clone(),
        trusted_bundle_key: config.trusted_bundle_key()?,
        parallelism: config.install_parallelism.max(1),
        approval_tiers: config.install_approval_tiers.clone(),
    };
    commands.ssh_connect_timeout = Duration::from_secs(config.ssh_connect_timeout_seconds.max(1));
    commands.rollout_deadline = Duration::from_secs(config.rollout_deadline_seconds.max(1));
    if commands.install.trusted_bundle_key.is_none() {
        tracing::warn!("OPSPILOT_BUNDLE_TRUSTED_KEY is not set: a bundle signed by any key (its own public.key) is accepted");
    }
    let wake = opspilot_eventstore::notify::spawn_listener(config.database_url.clone());
    let runner = runner::spawn(pool.clone(), opspilot_projections::all(), wake.clone(), Duration::from_millis(500));
    // Follow-ups (decisions handed on, executions, and their resumption
    // after a restart) come from the process manager following the log.
    let follow_ups = opspilot_commands::process_manager::spawn(commands.clone(), wake, Duration::from_millis(500));
    let state = AppState::new(pool, commands, runner, follow_ups, Arc::new(Metrics::new()), config.login_attempts_per_minute).with_ai_rate(config.ai_messages_per_minute);
    bootstrap_admin(&state, config.admin_password.as_deref()).await?;
    opspilot_commands::scheduler::spawn(state.commands.clone(), Duration::from_millis(config.scheduler_interval_ms.max(50)));

    let app = router(state.clone(), &config);
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "OpsPilot listening");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(Running { addr, state, task })
}

/// Creates the `admin` account on first start. Its password comes from
/// `OPSPILOT_ADMIN_PASSWORD`, or is generated and printed this once.
pub async fn bootstrap_admin(state: &AppState, password: Option<&str>) -> anyhow::Result<()> {
    if state.commands.existing_user("admin").await.is_ok() {
        return Ok(());
    }
    let (password, generated) = match password {
        Some(p) => (p.to_string(), false),
        None => (random_password(), true),
    };
    let ctx = CommandContext::system(Source::SystemScheduler);
    let input = NewUser { username: "admin".into(), display_name: Some("Administrator".into()), password: password.clone(), roles: vec!["admin".into()] };
    let h = state.commands.create_user(&ctx, input).await.map_err(|e| anyhow::anyhow!("creating the admin account: {e:?}"))?;
    state.settle(h.position).await;
    if generated {
        // Printed once, to the terminal only; it is never logged or stored in clear.
        println!("OpsPilot created the account 'admin' with the generated password: {password}");
    }
    Ok(())
}

fn random_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The HTTP surface.
pub fn router(state: AppState, config: &Config) -> Router {
    let schema = crate::schema::schema(config.graphql_max_depth, config.graphql_max_complexity);
    let console = crate::console::folder(config.console_dir.as_deref());
    match &console {
        Some(dir) => tracing::info!(dir = %dir.display(), "serving the web console at /"),
        None => tracing::info!("no built web console (web/dist or OPSPILOT_CONSOLE_DIR): only the API is served"),
    }
    let mut app = Router::new()
        .route("/graphql", get(graphiql_redirect).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/graphiql", get(graphiql))
        .merge(crate::ops::routes())
        .nest("/api/v1", crate::schema::rest())
        .fallback(move |req: Request| crate::console::fallback(console.clone(), req))
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            let mut resp = ApiError::new(ErrorCode::ValidationError, format!("method: {method} is not allowed on this route")).into_response();
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp
        })
        .layer(axum::Extension(schema))
        .layer(axum::Extension(graphql_edge::Limits { max_complexity: config.graphql_max_complexity, public_schema: config.graphql_public_schema }))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
        .layer(middleware::from_fn(envelope_for_plain_errors))
        .with_state(state);
    // CORS is closed unless origins are configured.
    if !config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods(tower_http::cors::Any)
                .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE]),
        );
    }
    app
}

/// How long an anonymous request (a login) may take, and how big it may be.
const ANONYMOUS_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);
const ANONYMOUS_BODY_LIMIT: usize = 16 * 1024;

async fn graphql_post(
    State(state): State<AppState>,
    axum::Extension(schema): axum::Extension<OpsSchema>,
    axum::Extension(limits): axum::Extension<graphql_edge::Limits>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let refused = |e: ApiError, lang| {
        let resp = async_graphql::Response::from_errors(vec![e.in_lang(lang).into_graphql().into_server_error(Default::default())]);
        GraphQLResponse::from(resp).into_response()
    };
    let meta = match RequestMeta::from_headers(&state, &headers, Some(peer.ip())).await {
        Ok(m) => m,
        Err(e) => return refused(e, opspilot_domain::Lang::En),
    };
    let lang = meta.lang;
    if meta.caller.is_none() && body.len() > ANONYMOUS_BODY_LIMIT {
        return refused(ApiError::new(ErrorCode::Unauthenticated, format!("sign in first: an anonymous request may carry at most {ANONYMOUS_BODY_LIMIT} bytes")), lang);
    }
    let req = match graphql_edge::parse_body(&body).and_then(|mut r| graphql_edge::check_document(&mut r, meta.caller.is_some(), limits).map(|_| r)) {
        Ok(r) => r,
        Err(e) => return refused(e, lang),
    };
    let anonymous = meta.caller.is_none();
    let run = schema.execute(req.data(state).data(meta));
    let resp = if anonymous {
        match tokio::time::timeout(ANONYMOUS_BUDGET, run).await {
            Ok(r) => r,
            Err(_) => return refused(ApiError::new(ErrorCode::ValidationError, "the request took longer than an anonymous request may"), lang),
        }
    } else {
        run.await
    };
    GraphQLResponse::from(graphql_edge::with_dictionary_codes(resp, lang)).into_response()
}

async fn graphql_ws(
    State(state): State<AppState>,
    axum::Extension(schema): axum::Extension<OpsSchema>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let init_state = state.clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    // The token is checked once, in connection_init.
                    let token = payload
                        .get("token")
                        .or_else(|| payload.get("Authorization"))
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(|s| s.trim_start_matches("Bearer ").trim().to_string())
                        .unwrap_or_default();
                    let caller = init_state.principal_for_token(&token).await.map_err(|e| e.into_graphql())?;
                    let Some(caller) = caller else {
                        return Err(ApiError::new(ErrorCode::Unauthenticated, "connection_init needs a valid token").into_graphql());
                    };
                    let mut data = Data::default();
                    data.insert(init_state.clone());
                    data.insert(RequestMeta { source: Source::ApiDirect, idempotency_key: None, lang: opspilot_domain::Lang::En, caller: Some(caller), ip: None });
                    Ok(data)
                })
                .serve()
        })
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish())
}

async fn graphiql_redirect() -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [("location", "/graphiql")]).into_response()
}

/// Counts and times every request by its route pattern.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    state.metrics.http_duration.with_label_values(&[&method, &path]).observe(started.elapsed().as_secs_f64());
    state.metrics.http_requests.with_label_values(&[&method, &path, resp.status().as_str()]).inc();
    resp
}

/// Errors produced by layers (body too large) get the dictionary envelope too.
async fn envelope_for_plain_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let mut e = ApiError::new(ErrorCode::ValidationError, "request body too large").into_response();
        *e.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        return e;
    }
    resp
}
