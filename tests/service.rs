//! ssfd as a service: the real binary as a child process, with a notify socket of our own as
//! the service manager, real signals, and its stderr captured. Readiness, a drain that loses
//! nothing acknowledged and ends within the grace period, configuration reloads, metrics, and
//! JSON logs that carry the SET fields and no secret.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ssfd_testkit::{events, random_jti, subjects, TestTransmitter};

use common::{free_addr, TestDaemon, ADMIN_TOKEN};

/// Upper bound of every wait for the child; reaching it fails the test (it never passes one).
const WAIT: Duration = Duration::from_secs(60);

const WEBHOOK_SECRET: &str = "svc-webhook-hmac-key-V2ViaG9va1NlY3JldE5vdExvZ2dlZA";

const CREDENTIALS: &[(&str, &str)] = &[
    ("admin-token", ADMIN_TOKEN),
    ("webhook-secret", WEBHOOK_SECRET),
];

const TOKEN_CLAIMS_CHANGE: &str = "token-claims-change";

/// Lines or messages arriving from a background reader, in order.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<String>>>);

impl Inbox {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits for an entry at index `from` or later that satisfies `pred`; returns its index.
    async fn wait_from(&self, from: usize, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.all().iter().skip(from).position(|s| pred(s)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; got:\n{}",
                self.all().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        self.wait_from(0, what, pred).await
    }

    fn get(&self, i: usize) -> String {
        self.0.lock().unwrap()[i].clone()
    }
}

/// True when a notification datagram carries this `KEY=VALUE` line.
fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// The parts of the configuration file a test varies.
#[derive(Clone)]
struct Settings {
    push: SocketAddr,
    admin: SocketAddr,
    grace: &'static str,
    format: &'static str,
    level: &'static str,
    /// Appended sections (`[policy]`, `[[sink]]`).
    extra: String,
}

struct Service {
    child: Child,
    dir: tempfile::TempDir,
    settings: Settings,
    notes: Inbox,
    logs: Inbox,
    http: reqwest::Client,
}

/// The harness settings of a service: the admin token from its credential, the varied keys.
fn daemon_settings(dir: &Path, s: &Settings) -> common::DaemonSettings {
    common::DaemonSettings {
        push_listen: s.push,
        admin_listen: s.admin,
        admin_token: common::AdminTokenSource::File("credential:admin-token".into()),
        server_keys: format!(
            "public_base_url = \"http://{}\"\nshutdown_grace = \"{}\"\n",
            s.push, s.grace
        ),
        log_keys: format!("format = \"{}\"\nlevel = \"{}\"\n", s.format, s.level),
        extra: s.extra.clone(),
        ..common::DaemonSettings::in_process(dir)
    }
}

fn config_text(dir: &Path, s: &Settings) -> String {
    common::receiver_toml(&daemon_settings(dir, s))
}

impl Service {
    fn settings(grace: &'static str) -> Settings {
        Settings {
            push: free_addr(),
            admin: free_addr(),
            grace,
            format: "json",
            level: "info",
            extra: String::new(),
        }
    }

    /// Starts `ssfd serve` with credentials for the admin token and a webhook secret.
    fn start(settings: Settings, env: &[(&str, &str)]) -> Service {
        Self::start_with(settings, env, &[], CREDENTIALS)
    }

    /// Starts `ssfd serve --config FILE ARGS` with these environment variables and credentials.
    fn start_with(
        settings: Settings,
        env: &[(&str, &str)],
        args: &[&str],
        credentials: &[(&str, &str)],
    ) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::create_dir(&creds).unwrap();
        for (name, content) in credentials {
            std::fs::write(creds.join(name), format!("{content}\n")).unwrap();
        }
        std::fs::write(
            dir.path().join("receiver.toml"),
            config_text(dir.path(), &settings),
        )
        .unwrap();

        let notes = Inbox::default();
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let sink = notes.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            // Ends once the test dropped every other handle to the inbox.
            while Arc::strong_count(&sink.0) > 1 {
                if let Ok(n) = socket.recv(&mut buf) {
                    sink.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssfd"));
        cmd.arg("serve")
            .arg("--config")
            .arg(dir.path().join("receiver.toml"))
            .args(args)
            .current_dir(dir.path())
            .env("NOTIFY_SOCKET", &socket_path)
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Inbox::default();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(l) => sink.push(l),
                    Err(_) => break,
                }
            }
        });
        Service {
            child,
            dir,
            settings,
            notes,
            logs,
            http: ssfd_testkit::http_client(),
        }
    }

    /// Rewrites the configuration file (for a reload).
    fn write_config(&self, settings: &Settings) {
        std::fs::write(self.config_path(), config_text(self.dir.path(), settings)).unwrap();
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("receiver.toml")
    }

    fn storage(&self) -> common::TestStorage {
        common::storage_settings(self.dir.path())
    }

    fn signal(&self, sig: libc::c_int) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    async fn wait_ready(&self) -> usize {
        self.notes
            .wait_for("READY=1", |m| has_line(m, "READY=1"))
            .await
    }

    /// Waits for the process to exit.
    async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ssfd did not exit; its log:\n{}",
                self.logs.all().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn push_url(&self, stream_id: &str) -> String {
        format!("http://{}/ssf/push/{stream_id}", self.settings.push)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.settings.admin)
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        common::admin_api(&self.http, &self.admin_url(""), method, path, body).await
    }

    /// Creates a PUSH stream; returns (id, push token).
    async fn create_stream(&self, tx: &TestTransmitter, extra: Value) -> (String, String) {
        common::create_stream_with(&self.http, &self.admin_url(""), tx, extra).await
    }

    /// The stored event of a stream with this jti.
    async fn event(&self, stream_id: &str, jti: &str) -> Value {
        let (status, v) = self
            .api(
                Method::GET,
                &format!("/api/v1/events?streamId={stream_id}&pageSize=1000"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["jti"] == jti)
            .cloned()
            .unwrap_or_else(|| panic!("no stored event {jti}: {v}"))
    }

    /// Pushes a token-claims-change SET (LOG_ONLY unless `[policy]` says otherwise); returns its jti.
    async fn push_claims_change(&self, tx: &TestTransmitter, id: &str, token: &str) -> String {
        let jti = random_jti();
        let set = tx
            .set()
            .jti(jti.clone())
            .event(
                TOKEN_CLAIMS_CHANGE,
                events::default_payload(TOKEN_CLAIMS_CHANGE, None, 0),
            )
            .sign();
        let resp = tx.push(&self.push_url(id), token, &set).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        jti
    }

    /// Sends SIGHUP and waits for the RELOADING=1 … READY=1 pair that follows; returns the
    /// STATUS= text sent with READY=1.
    async fn reload(&self) -> String {
        let from = self.notes.len();
        self.signal(libc::SIGHUP);
        let reloading = self
            .notes
            .wait_from(from, "RELOADING=1", |m| has_line(m, "RELOADING=1"))
            .await;
        assert!(
            self.notes
                .get(reloading)
                .lines()
                .any(|l| l.starts_with("MONOTONIC_USEC=")),
            "RELOADING=1 without MONOTONIC_USEC: {}",
            self.notes.get(reloading)
        );
        let ready = self
            .notes
            .wait_from(reloading + 1, "READY=1 after a reload", |m| {
                has_line(m, "READY=1")
            })
            .await;
        self.notes
            .get(ready)
            .lines()
            .find_map(|l| l.strip_prefix("STATUS="))
            .unwrap_or_default()
            .to_string()
    }

    async fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(WAIT).await;
        assert!(
            status.success(),
            "{status}; log:\n{}",
            self.logs.all().join("\n")
        );
        self.notes
            .wait_for("STOPPING=1", |m| has_line(m, "STOPPING=1"))
            .await;
    }

    /// The JSON log lines (every line must be one).
    fn json_logs(&self) -> Vec<Value> {
        self.logs
            .all()
            .iter()
            .map(|l| match serde_json::from_str::<Value>(l) {
                Ok(v @ Value::Object(_)) => v,
                _ => panic!("a log line is not a JSON object: {l}"),
            })
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_sent_once_the_listeners_answer_and_watchdog_pings_follow() {
    // 200 ms: ssfd pings every 100 ms.
    let mut svc = Service::start(Service::settings("10s"), &[("WATCHDOG_USEC", "200000")]);
    let ready = svc.wait_ready().await;

    // Straight after READY=1, with no retry: both listeners answer and the store is writable.
    let health = svc
        .http
        .get(format!("http://{}/healthz", svc.settings.push))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let readyz = svc.http.get(svc.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);

    let first = svc.notes.get(0);
    assert!(has_line(&first, "STATUS=starting"), "{first}");
    let msg = svc.notes.get(ready);
    assert!(
        has_line(
            &msg,
            &format!(
                "STATUS=ready: 0 streams, push {}, admin {}",
                svc.settings.push, svc.settings.admin
            )
        ),
        "{msg}"
    );

    let tx = TestTransmitter::start().await;
    let (id, token) = svc.create_stream(&tx, json!({})).await;
    let resp = tx.push(&svc.push_url(&id), &token, &tx.set().sign()).await;
    assert_eq!(resp.status(), 202);

    svc.notes
        .wait_from(ready + 1, "WATCHDOG=1", |m| has_line(m, "WATCHDOG=1"))
        .await;
    // The summary follows the stream count.
    svc.notes
        .wait_from(ready + 1, "STATUS with 1 stream", |m| {
            m.lines().any(|l| l.starts_with("STATUS=ready: 1 stream,"))
        })
        .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_push_load_exits_zero_and_keeps_every_acknowledged_set() {
    let mut svc = Service::start(Service::settings("10s"), &[]);
    svc.wait_ready().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = svc.create_stream(&tx, json!({})).await;
    let url = svc.push_url(&id);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut pushers = Vec::new();
    for _ in 0..4 {
        let (tx, url, token, acked) = (tx.clone(), url.clone(), token.clone(), acked.clone());
        pushers.push(tokio::spawn(async move {
            // Push until the daemon stops answering (bounded, in case it never does).
            for _ in 0..100_000 {
                let jti = random_jti();
                let set = tx.set().jti(jti.clone()).sign();
                match tx.try_push(&url, &token, &set).await {
                    Ok(r) if r.status() == 202 => acked.lock().unwrap().push(jti),
                    _ => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "pushes are not acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    svc.signal(libc::SIGTERM);
    for p in pushers {
        tokio::time::timeout(WAIT, p).await.unwrap().unwrap();
    }
    let status = svc.wait_exit(WAIT).await;
    assert!(status.success(), "{status}");
    svc.notes
        .wait_for("STOPPING=1", |m| has_line(m, "STOPPING=1"))
        .await;

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);
    let events = common::stored_events(&svc.storage(), Some(&id)).await;
    let mut missing = Vec::new();
    for jti in &acked {
        let n = events.iter().filter(|e| &e.jti == jti).count();
        if n != 1 {
            missing.push(jti.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged SETs are not stored: {missing:?}",
        missing.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_with_the_grace_period_even_when_a_request_hangs() {
    let mut svc = Service::start(Service::settings("1s"), &[]);
    svc.wait_ready().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = svc.create_stream(&tx, json!({})).await;

    // A push whose body never finishes: with `Expect: 100-continue`, the "100 Continue" proves
    // the handler is reading the body, i.e. the request is in flight. It would hold the
    // connection for the 30 s body deadline; the drain must not wait that long.
    let mut slow = TcpStream::connect(svc.settings.push).unwrap();
    slow.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        slow,
        "POST /ssf/push/{id} HTTP/1.1\r\nHost: ssfd\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/secevent+jwt\r\nContent-Length: 1000\r\n\
         Expect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer}");
    slow.write_all(b"eyJ").unwrap();

    svc.signal(libc::SIGTERM);
    // Well below the 30 s the hanging request would otherwise hold the daemon.
    let status = svc.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let logs = svc.logs.all().join("\n");
    assert!(
        logs.contains("grace period"),
        "the drain did not reach the grace period:\n{logs}"
    );
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_policy_and_keeps_it_when_the_file_breaks() {
    let mut settings = Service::settings("10s");
    let mut svc = Service::start(settings.clone(), &[]);
    svc.wait_ready().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = svc.create_stream(&tx, json!({})).await;

    let before = svc.push_claims_change(&tx, &id, &token).await;
    assert_eq!(svc.event(&id, &before).await["outcome"], "log_only");

    // A policy that revokes, and a push listener that cannot move while running.
    settings.extra = format!("[policy]\n\"{TOKEN_CLAIMS_CHANGE}\" = \"REVOKE_ALL\"\n");
    let mut moved = settings.clone();
    moved.push = free_addr();
    svc.write_config(&moved);
    let status = svc.reload().await;
    assert!(status.contains("configuration reloaded"), "{status}");
    svc.logs
        .wait_for("a warning naming server.push_listen", |l| {
            l.contains("\"key\":\"server.push_listen\"") && l.contains("\"level\":\"WARN\"")
        })
        .await;

    // The push listener stayed where it was; the new policy decides.
    let after = svc.push_claims_change(&tx, &id, &token).await;
    let ev = svc.event(&id, &after).await;
    assert_eq!(ev["outcome"], "revoke", "{ev}");
    assert!(
        ev["decision"].as_str().unwrap().contains("[policy]"),
        "{ev}"
    );

    // A broken file: the error names the key and its line, and the running policy stays.
    let mut broken = settings.clone();
    broken.extra = format!("[policy]\n\"{TOKEN_CLAIMS_CHANGE}\" = \"REVOKE\"\n");
    svc.write_config(&broken);
    let text = std::fs::read_to_string(svc.config_path()).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("= \"REVOKE\""))
        .unwrap()
        + 1;
    let status = svc.reload().await;
    assert!(status.contains("reload failed"), "{status}");
    let logged = svc
        .logs
        .wait_for("the reload error", |l| l.contains("not reloaded"))
        .await;
    let logged = svc.logs.get(logged);
    assert!(
        logged.contains(&format!("line {line}"))
            && logged.contains(&format!("policy.\\\"{TOKEN_CLAIMS_CHANGE}\\\"")),
        "{logged}"
    );
    let kept = svc.push_claims_change(&tx, &id, &token).await;
    assert_eq!(svc.event(&id, &kept).await["outcome"], "revoke");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_log_level() {
    let mut settings = Service::settings("10s");
    let mut svc = Service::start(settings.clone(), &[]);
    svc.wait_ready().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = svc.create_stream(&tx, json!({})).await;
    let set_line = |jti: String| move |l: &str| l.contains("SET accepted") && l.contains(&jti);

    let a = svc.push_claims_change(&tx, &id, &token).await;
    svc.logs.wait_for("the first SET line", set_line(a)).await;

    settings.level = "warn";
    svc.write_config(&settings);
    svc.reload().await;
    let quiet = svc.push_claims_change(&tx, &id, &token).await;

    settings.level = "info";
    svc.write_config(&settings);
    svc.reload().await;
    let b = svc.push_claims_change(&tx, &id, &token).await;
    svc.logs.wait_for("the last SET line", set_line(b)).await;
    // Lines arrive in order: had the quiet SET been logged, it would be here by now.
    assert!(
        !svc.logs.all().iter().any(|l| l.contains(&quiet)),
        "a SET was logged at info while the level was warn"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_token_that_is_missing_is_an_error_not_created() {
    let mut svc = Service::start_with(Service::settings("10s"), &[], &[], &[]);
    let status = svc.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(1), "{status}");
    let logs = svc.logs.all().join("\n");
    assert!(
        logs.contains("credential:admin-token") && logs.contains("does not exist"),
        "{logs}"
    );
    assert!(!svc.dir.path().join("credentials/admin-token").exists());
    assert!(
        !svc.notes.all().iter().any(|m| has_line(m, "READY=1")),
        "READY=1 was sent by a daemon that did not start"
    );
}

/// Every log line is one JSON object; SET lines carry their fields; no secret ever appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_set_fields_and_no_secret() {
    let closed = free_addr();
    let mut settings = Service::settings("10s");
    settings.level = "debug";
    settings.extra = format!(
        "[[sink]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"http://{closed}/hook\"\n\
         secret_file = \"credential:webhook-secret\"\nmax_attempts = 1\n"
    );
    let mut svc = Service::start(settings, &[]);
    svc.wait_ready().await;
    let tx = TestTransmitter::start().await;

    let push_token = "svc-push-token-UHVzaFRva2VuTm90TG9nZ2VkQXRBbGw";
    let bearer = "svc-outbound-bearer-T3V0Ym91bmRCZWFyZXJOb3RMb2dnZWQ";
    let client_secret = "svc-oauth-client-secret-T2F1dGhTZWNyZXROb3RMb2dnZWQ";
    let wrong_token = "svc-wrong-push-token-V3JvbmdUb2tlbk5vdExvZ2dlZA";
    let (id, token) = svc
        .create_stream(&tx, json!({"pushAuthToken": push_token}))
        .await;
    assert_eq!(token, push_token);

    let url = svc.push_url(&id);
    let accepted = tx
        .set()
        .txn("txn-1")
        .sub_id(subjects::email("Alice@Example.com"))
        .sign();
    assert_eq!(tx.push(&url, push_token, &accepted).await.status(), 202);
    assert_eq!(tx.push(&url, push_token, &accepted).await.status(), 202);
    assert_eq!(tx.push(&url, wrong_token, &accepted).await.status(), 401);
    let rejected = tx.set().aud("https://someone-else.example").sign();
    assert_eq!(tx.push(&url, push_token, &rejected).await.status(), 400);
    // The log line names the iss that arrived; the answer names neither it nor the expected one.
    let foreign = tx.set().iss("https://impostor.example.com/t1").sign();
    let answer = tx.push(&url, push_token, &foreign).await;
    assert_eq!(answer.status(), 400);
    let answer = answer.text().await.unwrap();
    assert!(answer.contains("invalid_issuer"), "{answer}");
    assert!(
        !answer.contains("impostor") && !answer.contains(&tx.issuer()),
        "{answer}"
    );

    let (status, v) = svc
        .api(
            Method::POST,
            &format!("/api/v1/ssf-receiver-streams/{id}/rotate-push-token"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let rotated = v["pushAuthTokenPlaintext"].as_str().unwrap().to_string();
    assert_eq!(
        tx.push(&url, &rotated, &tx.set().sign()).await.status(),
        202
    );

    let poll = |(field, auth): (&str, Value)| {
        let mut body = json!({
            "displayName": "poll",
            "issuerUrl": tx.issuer(),
            "jwksUrl": tx.jwks_url(),
            "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
            "pollEndpointUrl": format!("http://{closed}/poll"),
        });
        body[field] = auth;
        body
    };
    for body in [
        poll(("outboundAuthBearer", json!({"token": bearer}))),
        poll((
            "outboundAuthOauth2",
            json!({"clientId": "ssfd", "clientSecret": client_secret,
                   "tokenUrl": format!("http://{closed}/token"), "scopes": ["ssf"]}),
        )),
    ] {
        let (status, v) = svc
            .api(Method::POST, "/api/v1/ssf-receiver-streams", Some(body))
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let wrong_admin = svc
        .http
        .get(svc.admin_url("/api/v1/ssf-receiver-streams"))
        .bearer_auth(wrong_token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_admin.status(), 401);

    svc.reload().await;
    svc.stop().await;

    let logs = svc.logs.all().join("\n");
    for secret in [
        ADMIN_TOKEN,
        WEBHOOK_SECRET,
        push_token,
        rotated.as_str(),
        bearer,
        client_secret,
        wrong_token,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret is in the log: {secret}\n{logs}"
        );
    }

    let lines = svc.json_logs();
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l.get(key).is_some_and(Value::is_string), "no {key}: {l}");
        }
        assert!(l.get("fields").is_none(), "fields not flattened: {l}");
    }
    let with = |message: &str| -> Vec<&Value> {
        lines.iter().filter(|l| l["message"] == message).collect()
    };
    let accepted_lines = with("SET accepted");
    assert_eq!(accepted_lines.len(), 3, "{logs}");
    let first = accepted_lines[0];
    assert_eq!(first["stream"], id.as_str());
    assert_eq!(first["txn"], "txn-1");
    assert_eq!(first["subject"], "email:alice@example.com");
    assert_eq!(first["event_type"], events::uri("session-revoked"));
    assert_eq!(first["outcome"], "revoke");
    assert_eq!(first["delivery"], "push");
    assert_eq!(first["tolerances"], "");
    assert!(first["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(first["latency_ms"].is_number(), "{first}");
    assert_eq!(accepted_lines[1]["outcome"], "duplicate");
    assert_eq!(accepted_lines[1]["jti"], first["jti"]);

    let rejected_lines = with("SET rejected");
    assert_eq!(rejected_lines.len(), 2, "{logs}");
    assert_eq!(rejected_lines[1]["err"], "invalid_issuer");
    assert_eq!(rejected_lines[1]["iss"], "https://impostor.example.com/t1");
    let r = rejected_lines[0];
    assert_eq!(r["err"], "invalid_audience");
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(r["stream"], id.as_str());
    assert!(r["jti"].as_str().is_some_and(|j| !j.is_empty()), "{r}");
    assert_eq!(r["event_type"], events::uri("session-revoked"));
    assert!(r["latency_ms"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tolerance_is_warned_about_once_per_stream_and_logged_per_set() {
    let mut svc = Service::start(Service::settings("10s"), &[]);
    svc.wait_ready().await;
    let tx = TestTransmitter::start_with(ssfd_testkit::TransmitterOptions::legacy()).await;
    let (id, token) = svc
        .create_stream(&tx, json!({"compatibilityProfile": "LEGACY_SSE"}))
        .await;
    let url = svc.push_url(&id);
    for _ in 0..3 {
        assert_eq!(tx.push(&url, &token, &tx.set().sign()).await.status(), 202);
    }
    svc.stop().await;
    let lines = svc.json_logs();
    let accepted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "SET accepted")
        .collect();
    assert_eq!(accepted.len(), 3);
    for l in &accepted {
        assert_eq!(
            l["tolerances"], "unknown_initiating_entity,subject_in_event",
            "{l}"
        );
    }
    let warned: Vec<&str> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && l["stream"] == id.as_str())
        .filter_map(|l| l["tolerance"].as_str())
        .collect();
    assert_eq!(
        warned,
        vec!["unknown_initiating_entity", "subject_in_event"],
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_beats_the_log_level_flag_which_beats_the_file() {
    // The file says info; each case must silence info lines.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 3] = [
        (&[("RUST_LOG", "warn")], &[]),
        (&[], &["--log-level", "warn"]),
        (&[("RUST_LOG", "warn")], &["--log-level", "debug"]),
    ];
    for (env, args) in cases {
        let settings = Service::settings("10s");
        let mut svc = Service::start_with(settings.clone(), env, args, CREDENTIALS);
        svc.wait_ready().await;
        // An error line as a marker: everything logged before it has arrived by then.
        let mut broken = settings;
        broken.extra = "[policy]\nx = 1\n".into();
        svc.write_config(&broken);
        svc.reload().await;
        svc.logs
            .wait_for("the reload error", |l| l.contains("not reloaded"))
            .await;
        let info: Vec<String> = svc
            .logs
            .all()
            .into_iter()
            .filter(|l| l.contains("\"level\":\"INFO\"") || l.contains("\"level\":\"DEBUG\""))
            .collect();
        assert!(info.is_empty(), "env {env:?} args {args:?}: {info:?}");
        svc.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colours_off_a_terminal_and_no_timestamp_under_journald() {
    for journald in [false, true] {
        let mut settings = Service::settings("10s");
        settings.format = "text";
        let env: &[(&str, &str)] = if journald {
            &[("JOURNAL_STREAM", "8:12345")]
        } else {
            &[]
        };
        let mut svc = Service::start(settings, env);
        svc.wait_ready().await;
        svc.logs
            .wait_for("the ready line", |l| l.contains("ssfd is ready"))
            .await;
        svc.stop().await;
        let lines = svc.logs.all();
        for l in &lines {
            assert!(!l.contains('\x1b'), "a colour code off a terminal: {l:?}");
            assert!(l.contains("INFO") || l.contains("WARN"), "{l}");
            // A timestamp opens the line with the year.
            let stamped = l.starts_with(|c: char| c.is_ascii_digit());
            assert_eq!(stamped, !journald, "journald={journald}: {l}");
        }
    }
}

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_what_was_sent_without_a_token() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;

    let once = tx.set().sign();
    for set in [&once, &tx.set().sign(), &tx.set().sign(), &once] {
        assert_eq!(d.push(&id, &token, set).await.status(), 202);
    }
    let verification = tx.verification_set(&id, None).sign();
    assert_eq!(d.push(&id, &token, &verification).await.status(), 202);
    let bad = tx.set().aud("https://someone-else.example").sign();
    assert_eq!(d.push(&id, &token, &bad).await.status(), 400);
    assert_eq!(d.push(&id, "not-the-token", &once).await.status(), 401);
    assert_eq!(d.push("no-such-stream", &token, &once).await.status(), 404);

    let resp = d
        .http
        .get(format!("{}/metrics", d.daemon.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let m = samples(&text);
    let get = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in:\n{text}"))
    };
    let set = |outcome: &str| {
        get(&format!(
            "ssfd_sets_total{{stream=\"{id}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(set("accepted"), 4.0);
    assert_eq!(set("duplicate"), 1.0);
    assert_eq!(set("invalid_audience"), 1.0);
    assert_eq!(set("authentication_failed"), 1.0);
    assert_eq!(get("ssfd_push_latency_seconds_count"), 8.0);
    assert!(get("ssfd_jwks_fetches_total") >= 1.0);
    assert_eq!(get("ssfd_jwks_fetch_failures_total"), 0.0);
    assert!(get("ssfd_db_commits_total") >= 5.0);
    assert!(get("ssfd_outbox_depth") >= 0.0);
    assert_eq!(get("ssfd_actions_dead"), 0.0);
    assert!(
        get(&format!(
            "ssfd_stream_last_verified_age_seconds{{stream=\"{id}\"}}"
        )) >= 0.0
    );
    assert_eq!(
        get(&format!(
            "ssfd_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(text.contains("# TYPE ssfd_action_latency_seconds histogram"));
    assert!(text.contains("# TYPE ssfd_actions counter"));
    assert!(text.contains("# TYPE ssfd_poll_requests counter"));
    assert!(text.ends_with("# EOF\n"));

    // /readyz and /healthz need no token either; the API still does.
    for path in ["/readyz", "/healthz"] {
        let r = d
            .http
            .get(format!("{}{path}", d.daemon.admin_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let api = d
        .http
        .get(format!(
            "{}/api/v1/ssf-receiver-streams",
            d.daemon.admin_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    d.stop().await;
}

fn production_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/receiver.production.toml")
}

#[test]
fn the_production_example_configuration_is_valid() {
    let cfg = ssfd::config::Config::load(&production_toml()).unwrap();
    assert_eq!(cfg.storage.path, PathBuf::from("/var/lib/ssfd/ssfd.db"));
    assert_eq!(
        cfg.admin.token_file,
        PathBuf::from("credential:admin-token")
    );
    assert_eq!(cfg.admin.token, None);
    assert_eq!(cfg.log.format, ssfd::config::LogFormat::Json);
    assert!(!cfg.jwks.allow_http);
    assert!(cfg.server.admin_listen.ip().is_loopback());
}

#[test]
fn the_production_example_sink_is_valid_when_uncommented() {
    let text = std::fs::read_to_string(production_toml()).unwrap();
    let start = text.find("# [[sink]]").unwrap();
    let uncommented: String = text[..start].to_string()
        + &text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
    let cfg = ssfd::config::Config::parse(&uncommented, Path::new("receiver.toml")).unwrap();
    assert_eq!(cfg.sinks.len(), 1);
    assert_eq!(
        cfg.sinks[0].kind,
        ssfd::config::SinkKind::Webhook(ssfd::config::WebhookSettings {
            url: "https://revoker.internal/hooks/ssf".into(),
            secret_file: "credential:webhook-secret".into(),
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_not_pinged_while_the_writer_cannot_commit() {
    // 400 ms: a ping every 200 ms while the store commits.
    let mut svc = Service::start(Service::settings("10s"), &[("WATCHDOG_USEC", "400000")]);
    let ready = svc.wait_ready().await;
    let pings = |notes: &Inbox, from: usize| {
        notes
            .all()
            .iter()
            .skip(from)
            .filter(|m| has_line(m, "WATCHDOG=1"))
            .count()
    };
    svc.notes
        .wait_from(ready + 1, "a first ping", |m| has_line(m, "WATCHDOG=1"))
        .await;
    // Another process holds the write lock: nothing can commit.
    let db = rusqlite::Connection::open(svc.storage().sqlite_path()).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = svc.notes.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pings(&svc.notes, from), 0, "pinged while wedged");
    db.execute_batch("COMMIT").unwrap();
    svc.notes
        .wait_from(from, "pings after the lock is gone", |m| {
            has_line(m, "WATCHDOG=1")
        })
        .await;
    svc.stop().await;
}
