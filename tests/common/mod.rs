//! Shared test scaffolding: a real ssfd daemon on 127.0.0.1 port 0 with its own temporary
//! database, and small helpers to call its admin API and push endpoint.
#![allow(dead_code)]

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ssfd::config::Config;
use ssfd::daemon::Daemon;
use ssfd_testkit::TestTransmitter;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

pub struct TestDaemon {
    pub daemon: Daemon,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// True when `SSFD_TEST_BACKEND=postgres`: [`TestDaemon::start_with`] then stores in a fresh
/// PostgreSQL database instead of SQLite, so that the same suites run against both backends.
pub fn on_postgres() -> bool {
    std::env::var("SSFD_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A configuration for tests: loopback port 0, temp storage, http allowed for the loopback
/// transmitter, a known admin token.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.push_listen = "127.0.0.1:0".parse().unwrap();
    c.server.admin_listen = "127.0.0.1:0".parse().unwrap();
    c.storage.path = dir.join("ssfd.db");
    c.admin.token = Some(ADMIN_TOKEN.to_string());
    c.admin.token_file = dir.join("admin.token");
    c.jwks.allow_http = true;
    c.storage.url = std::fs::read_to_string(dir.join(PG_URL_FILE)).ok();
    c
}

/// Points `config` at the directory's PostgreSQL database when it has one, else, with
/// `SSFD_TEST_BACKEND=postgres`, at a fresh one noted in the directory (so that a restart on the
/// same directory keeps it). The database outlives the daemon; databases of finished test
/// processes are dropped by the next run.
pub async fn use_test_backend(dir: &std::path::Path, config: &mut Config) {
    if let Ok(url) = std::fs::read_to_string(dir.join(PG_URL_FILE)) {
        config.storage.url = Some(url);
    } else if on_postgres() {
        let db = Box::leak(Box::new(ssfd_testkit::pg::fresh_pg_database().await));
        std::fs::write(dir.join(PG_URL_FILE), &db.url).unwrap();
        config.storage.url = Some(db.url.clone());
    }
}

/// Where [`use_test_backend`] notes the PostgreSQL database of a directory.
pub const PG_URL_FILE: &str = "pg-url";

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        use_test_backend(dir.path(), &mut config).await;
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

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("ssfd.db")
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
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.daemon.admin_url()))
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

    /// Creates a PUSH stream for a transmitter; returns (id, push token).
    pub async fn create_stream_for(&self, tx: &TestTransmitter, extra: Value) -> (String, String) {
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
        let (status, v) = self
            .api(Method::POST, "/api/v1/ssf-receiver-streams", Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let id = v["ssfReceiverStream"]["id"].as_str().unwrap().to_string();
        let token = v["pushAuthTokenPlaintext"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (id, token)
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
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ssfd running as a child process, for tests that kill it.
pub struct ChildDaemon {
    pub child: std::process::Child,
    pub push_port: u16,
    pub admin_port: u16,
    pub config_path: PathBuf,
}

impl ChildDaemon {
    /// Writes a config into `dir` (plus `extra` TOML appended) and starts `ssfd serve`, waiting
    /// until `/readyz` answers.
    pub async fn spawn(dir: &std::path::Path, extra: &str) -> ChildDaemon {
        let push_port = free_port();
        let admin_port = free_port();
        let config_path = dir.join("receiver.toml");
        let text = format!(
            "[server]\npush_listen = \"127.0.0.1:{push_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             [storage]\npath = \"{}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[jwks]\nallow_http = true\n{extra}",
            dir.join("ssfd.db").display()
        );
        std::fs::write(&config_path, text).unwrap();
        Self::spawn_with(config_path, push_port, admin_port).await
    }

    /// Starts `ssfd serve` again on an existing config file.
    pub async fn spawn_with(config_path: PathBuf, push_port: u16, admin_port: u16) -> ChildDaemon {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"));
        cmd.arg("serve").arg("--config").arg(&config_path);
        Self::spawn_command(cmd, config_path, push_port, admin_port).await
    }

    /// Starts a prepared `ssfd serve` command (tests adjust limits or environment first).
    pub async fn spawn_command(
        mut cmd: std::process::Command,
        config_path: PathBuf,
        push_port: u16,
        admin_port: u16,
    ) -> ChildDaemon {
        let log = std::fs::File::create(config_path.with_extension("log")).unwrap();
        let child = cmd.stderr(log).spawn().unwrap();
        let d = ChildDaemon {
            child,
            push_port,
            admin_port,
            config_path,
        };
        let http = ssfd_testkit::http_client();
        for _ in 0..500 {
            if let Ok(r) = http.get(format!("{}/readyz", d.admin_url())).send().await {
                if r.status() == 200 {
                    return d;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("ssfd did not become ready");
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn push_url(&self, stream_id: &str) -> String {
        format!("http://127.0.0.1:{}/ssf/push/{stream_id}", self.push_port)
    }

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

/// Creates a push stream on a daemon reached by URL; returns (id, token).
pub async fn create_stream_at(
    http: &reqwest::Client,
    admin_url: &str,
    tx: &TestTransmitter,
) -> (String, String) {
    let v: Value = http
        .post(format!("{admin_url}/api/v1/ssf-receiver-streams"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"displayName": "t", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["ssfReceiverStream"]["id"].as_str().unwrap().to_string(),
        v["pushAuthTokenPlaintext"].as_str().unwrap().to_string(),
    )
}

/// Opens the daemon's database through `ssfd::store` (never the file itself), for checks made
/// while the daemon is stopped or from outside its process.
/// A directory with a PostgreSQL database noted in it (see [`use_test_backend`]) opens that one.
pub async fn open_store(db: &std::path::Path) -> ssfd::store::Store {
    let noted = db.parent().map(|d| d.join(PG_URL_FILE));
    match noted.and_then(|f| std::fs::read_to_string(f).ok()) {
        Some(url) => ssfd::store::Store::open_postgres(
            ssfd::store::postgres::PgSettings::new(&url, None).unwrap(),
            "test-reader".into(),
        )
        .await
        .unwrap(),
        None => ssfd::store::Store::open(db).unwrap(),
    }
}

/// Every stored event (of one stream, or of all), newest first, read through the store.
pub async fn stored_events(
    db: &std::path::Path,
    stream_id: Option<&str>,
) -> Vec<ssfd::store::inbox::StoredEvent> {
    let store = open_store(db).await;
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
