//! The one integration harness: every test daemon, in-process ([`TestDaemon`]) or a child
//! process ([`ChildDaemon`]), is configured from one [`DaemonSettings`], whose storage comes from
//! [`storage_settings`]. Plus small helpers to call the admin API and the push endpoint.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ssfd::config::Config;
use ssfd::daemon::Daemon;
use ssfd_testkit::TestTransmitter;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

// ---------------------------------------------------------------------------------------------
// Storage: the one place that decides where every test daemon keeps its data

/// Where a test daemon keeps its data. Every configuration the harness builds and every store a
/// test opens goes through this type, so another backend is a new variant here plus a change
/// of [`storage_settings`], for every integration test at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestStorage {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database of its own (`SSFD_TEST_BACKEND=postgres`).
    Postgres { url: String },
}

/// The storage of a test whose temporary directory is `dir`: today the SQLite file `ssfd.db`
/// in it. The same `dir` always gives the same storage, so a daemon restarted on the same
/// directory finds its data again.
///
/// With `SSFD_TEST_BACKEND=postgres` it is a fresh PostgreSQL database instead, noted in `dir`
/// (so that a restart on the same directory keeps it). The database outlives the daemon;
/// databases of finished test processes are dropped by the next run.
pub fn storage_settings(dir: &Path) -> TestStorage {
    let noted = dir.join(PG_URL_FILE);
    if let Ok(url) = std::fs::read_to_string(&noted) {
        return TestStorage::Postgres { url };
    }
    if on_postgres() {
        // Created on a runtime of its own: this function is called from sync and async code.
        let db = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(ssfd_testkit::pg::fresh_pg_database())
        })
        .join()
        .unwrap();
        let db = Box::leak(Box::new(db));
        std::fs::write(&noted, &db.url).unwrap();
        return TestStorage::Postgres {
            url: db.url.clone(),
        };
    }
    TestStorage::Sqlite(dir.join("ssfd.db"))
}

impl TestStorage {
    /// The `[storage]` section of `receiver.toml`.
    pub fn toml(&self) -> String {
        match self {
            TestStorage::Sqlite(path) => format!("[storage]\npath = {}\n", toml_string(path)),
            TestStorage::Postgres { url } => format!("[storage]\nurl = {}\n", toml_string(url)),
        }
    }

    /// Opens the store the daemon uses, through `ssfd::store` (never the file itself), for
    /// checks made while the daemon is stopped or from outside its process.
    pub async fn open(&self) -> ssfd::store::Store {
        match self {
            TestStorage::Sqlite(path) => ssfd::store::Store::open(path).unwrap(),
            TestStorage::Postgres { url } => ssfd::store::Store::open_postgres(
                ssfd::store::postgres::PgSettings::new(url, None).unwrap(),
                "test-reader".into(),
            )
            .await
            .unwrap(),
        }
    }

    /// The SQLite file, for the tests that look at the file itself.
    pub fn sqlite_path(&self) -> &Path {
        match self {
            TestStorage::Sqlite(path) => path,
            TestStorage::Postgres { .. } => panic!("this test looks at the SQLite file itself"),
        }
    }
}

/// A TOML basic string, escaped.
pub fn toml_string(text: impl AsRef<std::ffi::OsStr>) -> String {
    toml::Value::String(text.as_ref().to_string_lossy().into_owned()).to_string()
}

// ---------------------------------------------------------------------------------------------
// Settings: what every test daemon is configured with

/// How a test daemon gets its admin token.
#[derive(Clone, Debug)]
pub enum AdminTokenSource {
    /// `admin.token`.
    Inline(String),
    /// `admin.token_file`: a path or `credential:NAME`.
    File(String),
}

/// The settings of one test daemon. [`daemon_config`] turns them into the `Config` of an
/// in-process daemon, [`receiver_toml`] into the file of a child process: one from the other,
/// so both kinds of test run the same configuration.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    pub push_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub storage: TestStorage,
    pub admin_token: AdminTokenSource,
    /// Further `[server]` keys, as TOML lines (`shutdown_grace = "1s"`).
    pub server_keys: String,
    /// `[log]` keys, as TOML lines; empty: the defaults.
    pub log_keys: String,
    /// Sections appended as written (`[policy]`, `[[sink]]`, `[server.tls]`); broken ones too,
    /// for the tests of configuration errors.
    pub extra: String,
}

impl DaemonSettings {
    /// For a daemon in this process: listeners on port 0, storage in `dir`, the admin token
    /// [`ADMIN_TOKEN`], http allowed for the loopback transmitter.
    pub fn in_process(dir: &Path) -> DaemonSettings {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        DaemonSettings {
            push_listen: any,
            admin_listen: any,
            storage: storage_settings(dir),
            admin_token: AdminTokenSource::Inline(ADMIN_TOKEN.to_string()),
            server_keys: String::new(),
            log_keys: String::new(),
            extra: String::new(),
        }
    }

    /// For a child process: the same, on free loopback ports chosen now, so that a restart
    /// comes back on the same addresses.
    pub fn child_process(dir: &Path) -> DaemonSettings {
        DaemonSettings {
            push_listen: free_addr(),
            admin_listen: free_addr(),
            ..DaemonSettings::in_process(dir)
        }
    }
}

/// The `receiver.toml` text of these settings.
pub fn receiver_toml(s: &DaemonSettings) -> String {
    let admin = match &s.admin_token {
        AdminTokenSource::Inline(token) => format!("token = {}", toml_string(token)),
        AdminTokenSource::File(path) => format!("token_file = {}", toml_string(path)),
    };
    format!(
        "[server]\npush_listen = \"{push}\"\nadmin_listen = \"{admin_listen}\"\n{server}\n\
         {storage}\n\
         [admin]\n{admin}\n\n\
         [jwks]\nallow_http = true\n\n\
         [outbound]\nallow_private = true\n\n\
         [log]\n{log}\n\
         {extra}",
        push = s.push_listen,
        admin_listen = s.admin_listen,
        server = s.server_keys,
        storage = s.storage.toml(),
        log = s.log_keys,
        extra = s.extra,
    )
}

/// Writes the settings to `receiver.toml` in `dir`; returns its path.
pub fn write_receiver_toml(dir: &Path, s: &DaemonSettings) -> PathBuf {
    let path = dir.join("receiver.toml");
    std::fs::write(&path, receiver_toml(s)).unwrap();
    path
}

/// The `Config` of an in-process daemon with these settings: read from their `receiver.toml`
/// text, exactly as a child process reads it.
pub fn daemon_config(s: &DaemonSettings) -> Config {
    Config::parse(&receiver_toml(s), Path::new("receiver.toml"))
        .unwrap_or_else(|e| panic!("test settings do not parse: {e}\n{}", receiver_toml(s)))
}

/// The configuration of an in-process test daemon whose directory is `dir`.
pub fn test_config(dir: &Path) -> Config {
    daemon_config(&DaemonSettings::in_process(dir))
}

/// Polls `probe` until it yields a value; gives up (and fails the test) after a bounded number
/// of rounds, so that a broken daemon fails rather than hangs.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1200 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gave up waiting for {what}");
}

// ---------------------------------------------------------------------------------------------
// A daemon in this process

pub struct TestDaemon {
    pub daemon: Daemon,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// True when `SSFD_TEST_BACKEND=postgres`: [`storage_settings`] then gives every test a fresh
/// PostgreSQL database instead of SQLite, so that the same suites run against both backends.
pub fn on_postgres() -> bool {
    std::env::var("SSFD_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// Where [`storage_settings`] notes the PostgreSQL database of a directory.
pub const PG_URL_FILE: &str = "pg-url";

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        edit(&mut config);
        Self::start_in(dir, config).await
    }

    /// Starts on an existing directory (a restart keeps the database).
    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestDaemon {
        let daemon = Daemon::start(config).await.unwrap();
        TestDaemon {
            daemon,
            dir,
            http: ssfd_testkit::http_client(),
        }
    }

    /// Stops the daemon and hands back its directory for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.daemon.shutdown().await;
        self.dir
    }

    /// Where this daemon keeps its data.
    pub fn storage(&self) -> TestStorage {
        storage_settings(self.dir.path())
    }

    /// The SQLite file, for the tests that look at the file itself.
    pub fn db_path(&self) -> PathBuf {
        self.storage().sqlite_path().to_path_buf()
    }

    /// The admin listener's URL of `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.daemon.admin_url())
    }

    pub fn push_url(&self, stream_id: &str) -> String {
        format!("{}/ssf/push/{stream_id}", self.daemon.push_url())
    }

    /// Calls the admin API with the admin token; returns status and JSON body (Null if empty).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        admin_api(&self.http, &self.daemon.admin_url(), method, path, body).await
    }

    /// Creates a PUSH stream for a transmitter; returns (id, push token).
    pub async fn create_stream_for(&self, tx: &TestTransmitter, extra: Value) -> (String, String) {
        create_stream_with(&self.http, &self.daemon.admin_url(), tx, extra).await
    }

    pub async fn get_stream(&self, id: &str) -> Value {
        let (status, v) = self
            .api(
                Method::GET,
                &format!("/api/v1/ssf-receiver-streams/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["ssfReceiverStream"].clone()
    }

    pub async fn stats(&self, id: &str) -> Value {
        let (status, v) = self
            .api(
                Method::GET,
                &format!("/api/v1/ssf-receiver-streams/{id}/stats"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["stats"].clone()
    }

    /// Stored events of a stream, newest first.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (status, v) = self
            .api(
                Method::GET,
                &format!("/api/v1/events?streamId={id}&pageSize=1000"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["list"].as_array().cloned().unwrap_or_default()
    }

    pub async fn push(&self, stream_id: &str, token: &str, set: &str) -> reqwest::Response {
        ssfd_testkit::push_set(&self.http, &self.push_url(stream_id), token, set)
            .await
            .unwrap()
    }
}

/// Asserts an RFC 8935 §2.3 error answer and returns its description.
pub async fn assert_set_error(resp: reqwest::Response, status: u16, err: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["content-language"], "en-US");
    if status == 401 {
        assert!(h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["err"], err, "{body}");
    body["description"].as_str().unwrap().to_string()
}

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A free loopback address (bound then released).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// A daemon as a child process

/// ssfd running as a child process, for tests that kill it.
pub struct ChildDaemon {
    pub child: std::process::Child,
    pub push_port: u16,
    pub admin_port: u16,
    pub config_path: PathBuf,
}

impl ChildDaemon {
    /// Writes the child-process settings of `dir` (plus `extra` TOML appended) to
    /// `receiver.toml` there and starts `ssfd serve`, waiting until `/readyz` answers.
    pub async fn spawn(dir: &Path, extra: &str) -> ChildDaemon {
        let mut settings = DaemonSettings::child_process(dir);
        settings.extra = extra.to_string();
        Self::spawn_settings(dir, &settings).await
    }

    /// Writes these settings to `receiver.toml` in `dir` and starts `ssfd serve` on it.
    pub async fn spawn_settings(dir: &Path, settings: &DaemonSettings) -> ChildDaemon {
        let config_path = write_receiver_toml(dir, settings);
        Self::spawn_with(
            config_path,
            settings.push_listen.port(),
            settings.admin_listen.port(),
        )
        .await
    }

    /// The `ssfd serve --config FILE` command, for tests that adjust limits or environment
    /// before [`ChildDaemon::spawn_command`].
    pub fn serve_command(config_path: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"));
        cmd.arg("serve").arg("--config").arg(config_path);
        cmd
    }

    /// Starts `ssfd serve` again on an existing config file.
    pub async fn spawn_with(config_path: PathBuf, push_port: u16, admin_port: u16) -> ChildDaemon {
        let cmd = Self::serve_command(&config_path);
        Self::spawn_command(cmd, config_path, push_port, admin_port).await
    }

    /// Starts a prepared `ssfd serve` command; its stderr goes to `receiver.log` beside the
    /// config file.
    pub async fn spawn_command(
        mut cmd: std::process::Command,
        config_path: PathBuf,
        push_port: u16,
        admin_port: u16,
    ) -> ChildDaemon {
        let log_path = config_path.with_extension("log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = ChildDaemon {
            child,
            push_port,
            admin_port,
            config_path,
        };
        let http = ssfd_testkit::http_client();
        for _ in 0..1500 {
            if let Some(status) = d.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("ssfd exited early: {status}; its log:\n{log}");
            }
            if let Ok(r) = http.get(format!("{}/readyz", d.admin_url())).send().await {
                if r.status() == 200 {
                    return d;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("ssfd did not become ready");
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn push_url(&self, stream_id: &str) -> String {
        format!("http://127.0.0.1:{}/ssf/push/{stream_id}", self.push_port)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn restart(mut self) -> ChildDaemon {
        self.kill9();
        let path = self.config_path.clone();
        Self::spawn_with(path, self.push_port, self.admin_port).await
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The admin API of any test daemon, by URL

/// Calls the admin API at `admin_url` with [`ADMIN_TOKEN`]; returns status and JSON body (Null
/// if empty, the text as a string if it is not JSON).
pub async fn admin_api(
    http: &reqwest::Client,
    admin_url: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http
        .request(method, format!("{admin_url}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// Creates a PUSH stream for a transmitter on a daemon reached by URL; `extra` adds or replaces
/// fields of the request. Returns (id, push token; empty for POLL streams).
pub async fn create_stream_with(
    http: &reqwest::Client,
    admin_url: &str,
    tx: &TestTransmitter,
    extra: Value,
) -> (String, String) {
    let mut body = json!({
        "displayName": "test stream",
        "issuerUrl": tx.issuer(),
        "jwksUrl": tx.jwks_url(),
        "expectedAudience": tx.audience(),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let (status, v) = admin_api(
        http,
        admin_url,
        Method::POST,
        "/api/v1/ssf-receiver-streams",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = v["ssfReceiverStream"]["id"].as_str().unwrap().to_string();
    let token = v["pushAuthTokenPlaintext"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (id, token)
}

/// Creates a push stream on a daemon reached by URL; returns (id, token).
pub async fn create_stream_at(
    http: &reqwest::Client,
    admin_url: &str,
    tx: &TestTransmitter,
) -> (String, String) {
    let (id, token) = create_stream_with(http, admin_url, tx, json!({})).await;
    assert!(!token.is_empty(), "a PUSH stream has a push token");
    (id, token)
}

/// Every stored event (of one stream, or of all), newest first, read through the store.
pub async fn stored_events(
    storage: &TestStorage,
    stream_id: Option<&str>,
) -> Vec<ssfd::store::inbox::StoredEvent> {
    let store = storage.open().await;
    let mut out: Vec<ssfd::store::inbox::StoredEvent> = Vec::new();
    loop {
        let page = store
            .list_events(ssfd::store::inbox::EventFilter {
                stream_id: stream_id.map(str::to_string),
                since_ms: None,
                before_seq: out.last().map(|e| e.seq),
                limit: 1000,
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The transmitter dialects the suites run against: strict SSF 1.0, and the pre-1.0 SSE draft
/// (testkit legacy mode) received through a LEGACY_SSE stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ssf,
    Legacy,
}

impl Mode {
    pub fn options(self) -> ssfd_testkit::TransmitterOptions {
        match self {
            Mode::Ssf => ssfd_testkit::TransmitterOptions::default(),
            Mode::Legacy => ssfd_testkit::TransmitterOptions::legacy(),
        }
    }

    pub async fn transmitter(self) -> TestTransmitter {
        TestTransmitter::start_with(self.options()).await
    }

    /// The stream fields this mode needs: the LEGACY_SSE profile for legacy transmitters.
    pub fn stream_fields(self) -> Value {
        match self {
            Mode::Ssf => json!({}),
            Mode::Legacy => json!({"compatibilityProfile": "LEGACY_SSE"}),
        }
    }

    /// `extra` with this mode's stream fields added.
    pub fn with(self, extra: Value) -> Value {
        let mut out = self.stream_fields();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            out[k] = v;
        }
        out
    }
}

/// Runs an `async fn(Mode)` test body once per transmitter mode, as `NAME::ssf_1_0` and
/// `NAME::legacy_sse`.
#[macro_export]
macro_rules! both_modes {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn ssf_1_0() {
                super::$name($crate::common::Mode::Ssf).await
            }
            #[tokio::test]
            async fn legacy_sse() {
                super::$name($crate::common::Mode::Legacy).await
            }
        }
    };
}
