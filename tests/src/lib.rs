//! The one helper of the system tests: a fresh database per test, OpsPilot
//! started on it (in-process on port 0, or the real binary), and a client
//! that speaks REST and GraphQL like a user would.

pub mod env;
pub mod worlds;

use std::net::SocketAddr;
use std::time::Duration;

use opspilot_api::{Config, Running};
use opspilot_eventstore::MasterKey;
use serde_json::{json, Value};

/// The bootstrap admin's password in tests.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The demo users' password in tests.
pub const DEMO_PASSWORD: &str = "demo-password-1";

/// A database of its own, created for one test.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

/// The admin URL of the test PostgreSQL; fails loudly when the environment
/// was not started (the README's test command starts it).
pub fn admin_url() -> String {
    std::env::var("OPSPILOT_TEST_DATABASE_URL")
        .expect("OPSPILOT_TEST_DATABASE_URL is not set: run the tests with ./scripts/test.sh, which starts PostgreSQL")
}

impl TestDb {
    /// Creates an empty database and applies the migrations.
    pub async fn new() -> TestDb {
        let admin = admin_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let base = admin.rsplit_once('/').expect("admin url has a database").0;
        let url = format!("{base}/{name}");
        let pool = opspilot_eventstore::pool(&url, 2).unwrap();
        opspilot_eventstore::migrate(&pool).await.expect("migrate");
        TestDb { url, name }
    }

    /// A plain client on the test database (for scanning and tampering).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
    }
}

/// OpsPilot running for one test.
pub struct TestApp {
    pub db: TestDb,
    pub addr: SocketAddr,
    pub running: Running,
    pub http: reqwest::Client,
}

/// Starts OpsPilot in-process on a fresh database with the admin bootstrapped.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Same, with configuration changes.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(TestDb::new().await, change).await
}

/// Starts OpsPilot on a database that already holds a log (written by the
/// test before any follow-up could react to it).
pub async fn spawn_app_on(db: TestDb, change: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::for_database(&db.url, MasterKey::generate());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    change(&mut config);
    let running = opspilot_api::start(config).await.expect("OpsPilot starts");
    TestApp { addr: running.addr, running, db, http: reqwest::Client::new() }
}

/// A REST answer: HTTP status and the JSON envelope.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// `data` of a success envelope; panics with the body otherwise.
    pub fn data(&self) -> &Value {
        assert_eq!(self.body["code"], 1000, "expected success, got {} {}", self.status, self.body);
        &self.body["data"]
    }
    /// The `error_key` of an error envelope.
    pub fn error_key(&self) -> &str {
        self.body["data"]["error_key"].as_str().unwrap_or_else(|| panic!("not an error envelope: {}", self.body))
    }
}

impl TestApp {
    /// The base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a REST request with an optional bearer token and JSON body.
    pub async fn rest(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.rest_with(method, path, token, body, &[]).await
    }

    /// Same, with extra headers.
    pub async fn rest_with(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.request(method.parse().expect("method"), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let a = self.rest("POST", "/api/v1/auth/login", None, Some(json!({ "username": username, "password": password }))).await;
        a.data()["token"].as_str().expect("token").to_string()
    }

    /// The admin's token.
    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Runs a GraphQL operation; answers the whole response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("graphql sent").json().await.expect("graphql json")
    }

    /// Loads the seed's demo identities through the API (as admin) and
    /// answers (dev_user token, approver_user token).
    pub async fn demo_users(&self) -> (String, String) {
        let admin = self.admin().await;
        self.rest("POST", "/api/v1/projects", Some(&admin), Some(json!({ "name": "proj-alpha" }))).await.data();
        self.rest("POST", "/api/v1/teams", Some(&admin), Some(json!({ "name": "team-app", "project_id": "proj-alpha" }))).await.data();
        for (user, role) in [("dev_user", "operator"), ("approver_user", "approver")] {
            self.rest("POST", "/api/v1/users", Some(&admin), Some(json!({ "username": user, "password": DEMO_PASSWORD, "roles": [role] }))).await.data();
            self.rest("POST", "/api/v1/teams/team-app/members", Some(&admin), Some(json!({ "user_id": user }))).await.data();
        }
        (self.login("dev_user", DEMO_PASSWORD).await, self.login("approver_user", DEMO_PASSWORD).await)
    }
}

/// The real `opspilot` binary (built by the test command; fails loudly otherwise).
pub fn opspilot_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("OPSPILOT_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<test> → target/<profile>/opspilot
    let exe = std::env::current_exe().expect("current exe");
    let candidate = exe.parent().and_then(|d| d.parent()).map(|d| d.join("opspilot")).expect("target dir");
    assert!(candidate.exists(), "the opspilot binary is missing at {}: run `cargo build --bin opspilot` (./scripts/test.sh does)", candidate.display());
    candidate
}

/// Runs an `opspilot` CLI command against a database; answers (status, stdout, stderr).
pub fn cli(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(opspilot_bin());
    cmd.args(args).env("DATABASE_URL", db_url).env("OPSPILOT_MASTER_KEY", test_master_key());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("opspilot runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A fixed master key for CLI tests (base64 of 32 bytes).
pub fn test_master_key() -> &'static str {
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// OpsPilot as its own process (the real binary), so a test can kill it.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
}

impl Server {
    /// Starts `opspilot serve` on a free port against `db_url` with the test
    /// master key and admin password, plus `env`.
    pub fn start(db_url: &str, env: &[(&str, String)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = std::process::Command::new(opspilot_bin());
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("OPSPILOT_MASTER_KEY", test_master_key())
            .env("OPSPILOT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("OPSPILOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server { child: cmd.spawn().expect("opspilot serve starts"), base: format!("http://127.0.0.1:{port}") }
    }

    /// Waits until the server answers, then logs in as admin.
    pub async fn admin(&self) -> String {
        let login = json!({ "username": "admin", "password": ADMIN_PASSWORD });
        let up = eventually(Duration::from_secs(60), async || {
            reqwest::Client::new().post(format!("{}/api/v1/auth/login", self.base)).json(&login).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "OpsPilot did not come up at {}", self.base);
        self.rest("POST", "/api/v1/auth/login", None, Some(login)).await["token"].as_str().unwrap().to_string()
    }

    /// A REST call that must succeed; answers `data`.
    pub async fn rest(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.expect("request").json().await.expect("json");
        assert_eq!(v["code"], 1000, "{method} {path}: {v}");
        v["data"].clone()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GraphQL websocket (graphql-transport-ws) with `connection_init` sent
/// carrying `token`; the server's first message is the ack (or a refusal).
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a subscription socket to `app` as the holder of `token`.
pub async fn ws_connect(app: &TestApp, token: &str) -> Ws {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    ws.send(tokio_tungstenite::tungstenite::Message::text(json!({ "type": "connection_init", "payload": { "token": token } }).to_string())).await.unwrap();
    ws
}

/// The next JSON text message within 10 s; `None` when the socket closes or stays silent.
pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            _ => continue,
        }
    }
}
