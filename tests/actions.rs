//! Revocation actions end to end: policy and stream knobs, the outbox and its worker, webhook and
//! command sinks, retries and dead actions, replay, crash recovery and the revocation ledger.
//! Every test runs the real daemon on loopback and talks to it over HTTP; the webhook receiving
//! the actions is a small server written here.

mod common;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{wait_for, ChildDaemon, TestDaemon, ADMIN_TOKEN};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use ssfd::clock::{now_unix, rfc3339};
use ssfd::config::{Config, IdentityConfig, SinkConfig, SinkKind};
use ssfd::stream::RevocationAction;
use ssfd_testkit::{events, http_client, subjects, Delivery, TestTransmitter, WebhookRecorder};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// Written with a trailing newline, which ssfd must strip before keying the HMAC.
const WEBHOOK_SECRET: &str = "webhook-secret-for-the-action-tests";

fn verify_signature(d: &Delivery) {
    let ts = d.header("x-ssfd-timestamp");
    let sig = d.header("x-ssfd-signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected, "signature over timestamp.body");
    let ts: i64 = ts.parse().expect("X-Ssfd-Timestamp is unix seconds");
    assert!((now_unix() - ts).abs() < 300, "timestamp is current");
    assert_eq!(d.header("content-type"), "application/json");
}

// ---------------------------------------------------------------------------------------------
// The daemon and its admin API

fn webhook(name: &str, url: &str, secret: &Path, max_attempts: u32, retry_ms: u64) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        kind: SinkKind::Webhook(ssfd::config::WebhookSettings {
            url: url.into(),
            secret_file: secret.to_path_buf(),
        }),
        timeout: Duration::from_secs(5),
        streams: Vec::new(),
        events: Vec::new(),
        max_attempts,
        retry_base: Duration::from_millis(retry_ms),
    }
}

fn command(name: &str, argv: &[&str], timeout: Duration, max_attempts: u32) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        kind: SinkKind::Command(ssfd::config::CommandSettings {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }),
        timeout,
        streams: Vec::new(),
        events: Vec::new(),
        max_attempts,
        retry_base: Duration::from_millis(20),
    }
}

struct Stream {
    id: String,
    token: String,
}

/// The harness daemon with a transmitter, and the calls these tests make.
struct Env {
    d: TestDaemon,
    tx: TestTransmitter,
}

impl Deref for Env {
    type Target = TestDaemon;

    fn deref(&self) -> &TestDaemon {
        &self.d
    }
}

impl Env {
    fn secret_path(dir: &Path) -> PathBuf {
        dir.join("webhook.secret")
    }

    /// A temp dir with the webhook secret in it, for configurations that need its path.
    fn prepare() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Env::secret_path(dir.path()), format!("{WEBHOOK_SECRET}\n")).unwrap();
        dir
    }

    async fn start(dir: TempDir, sinks: Vec<SinkConfig>, tweak: impl FnOnce(&mut Config)) -> Env {
        let mut config = common::test_config(dir.path());
        config.sinks = sinks;
        tweak(&mut config);
        let d = TestDaemon::start_in(dir, config).await;
        let tx = TestTransmitter::start().await;
        Env { d, tx }
    }

    fn url(&self, path: &str) -> String {
        self.admin_url(path)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.api(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, body) = self.api(reqwest::Method::POST, path, Some(body)).await;
        (status.as_u16(), body)
    }

    async fn create_stream(&self, extra: Value) -> Stream {
        let mut body = json!({
            "displayName": "actions test",
            "issuerUrl": self.tx.issuer(),
            "jwksUrl": self.tx.jwks_url(),
            "expectedAudience": self.tx.audience(),
            "deliveryMethod": "SSF_DELIVERY_METHOD_PUSH",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, resp) = self.post("/api/v1/ssf-receiver-streams", body).await;
        assert_eq!(status, 200, "{resp}");
        Stream {
            id: resp["ssfReceiverStream"]["id"].as_str().unwrap().into(),
            token: resp["pushAuthTokenPlaintext"].as_str().unwrap().into(),
        }
    }

    async fn update_stream(&self, stream: &Stream, fields: Value, mask: &str) {
        let (status, resp) = self
            .post(
                &format!("/api/v1/ssf-receiver-streams/{}", stream.id),
                json!({"ssfReceiverStream": fields, "updateMask": mask}),
            )
            .await;
        assert_eq!(status, 200, "{resp}");
    }

    async fn push(&self, stream: &Stream, set: &str) {
        let url = format!("{}/ssf/push/{}", self.daemon.push_url(), stream.id);
        let resp = self.tx.push(&url, &stream.token, set).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    }

    /// Signs and pushes one event about `subject`; returns the jti.
    async fn push_event(
        &self,
        stream: &Stream,
        event: &str,
        payload: Value,
        subject: Value,
    ) -> String {
        let builder = self.tx.set().event(event, payload).sub_id(subject);
        let jti = builder.claims()["jti"].as_str().unwrap().to_string();
        self.push(stream, &builder.sign()).await;
        jti
    }

    async fn actions(&self, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut token = String::new();
        for _ in 0..100 {
            let sep = if query.is_empty() { "" } else { "&" };
            let page = self
                .get(&format!(
                    "/api/v1/actions?{query}{sep}pageSize=1000&pageToken={token}"
                ))
                .await;
            all.extend(page["list"].as_array().unwrap().iter().cloned());
            token = page["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if token.is_empty() {
                return all;
            }
        }
        panic!("too many pages");
    }

    async fn actions_for(&self, stream: &Stream) -> Vec<Value> {
        self.actions(&format!("streamId={}", stream.id)).await
    }

    /// Waits until every action of the stream is done and there are `n` of them.
    async fn all_done(&self, stream: &Stream, n: usize) -> Vec<Value> {
        wait_for("actions to finish", || async {
            let list = self.actions_for(stream).await;
            (list.len() == n && list.iter().all(|a| a["status"] == "done")).then_some(list)
        })
        .await
    }

    async fn check(&self, subject: Value, issued_at: Option<i64>) -> Value {
        let mut body = json!({ "subject": subject });
        if let Some(t) = issued_at {
            body["issuedAt"] = json!(rfc3339(t));
        }
        let (status, resp) = self.post("/api/v1/subjects:check", body).await;
        assert_eq!(status, 200, "{resp}");
        resp
    }

    async fn revoked(&self, subject: Value) -> bool {
        self.check(subject, None).await["revoked"]
            .as_bool()
            .unwrap()
    }

    async fn stats(&self, stream: &Stream) -> Value {
        self.get(&format!("/api/v1/ssf-receiver-streams/{}/stats", stream.id))
            .await["stats"]
            .clone()
    }

    async fn event_outcome(&self, stream: &Stream, jti: &str) -> String {
        let list = self
            .get(&format!(
                "/api/v1/events?streamId={}&pageSize=1000",
                stream.id
            ))
            .await;
        list["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["jti"] == jti)
            .map(|e| e["outcome"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("event {jti} not stored"))
    }
}

fn email(addr: &str) -> Value {
    subjects::email(addr)
}

fn payload(event: &str) -> Value {
    events::default_payload(event, None, now_unix())
}

fn with(mut base: Value, field: &str, value: &str) -> Value {
    base[field] = json!(value);
    base
}

// ---------------------------------------------------------------------------------------------
// Policy

#[tokio::test]
async fn default_mapping_for_each_event_type() {
    let hook = WebhookRecorder::start().await;
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let env = Env::start(
        dir,
        vec![webhook("hook", &hook.url(), &secret, 3, 50)],
        |_| {},
    )
    .await;
    let stream = env.create_stream(json!({})).await;

    let cases: Vec<(&str, Value, bool)> = vec![
        ("session-revoked", payload("session-revoked"), true),
        ("sessions-revoked", payload("sessions-revoked"), true),
        ("credential-change", payload("credential-change"), true),
        (
            "credential-change",
            with(payload("credential-change"), "change_type", "revoke"),
            true,
        ),
        (
            "credential-change",
            with(payload("credential-change"), "change_type", "delete"),
            true,
        ),
        (
            "credential-change",
            with(payload("credential-change"), "change_type", "create"),
            false,
        ),
        (
            "credential-change",
            with(payload("credential-change"), "change_type", "reissue"),
            false,
        ),
        (
            "credential-compromise",
            payload("credential-compromise"),
            true,
        ),
        ("account-disabled", payload("account-disabled"), true),
        ("account-purged", payload("account-purged"), true),
        ("identifier-recycled", payload("identifier-recycled"), false),
        (
            "device-compliance-change",
            payload("device-compliance-change"),
            true,
        ),
        (
            "device-compliance-change",
            with(
                payload("device-compliance-change"),
                "current_status",
                "compliant",
            ),
            false,
        ),
        ("risk-level-change", payload("risk-level-change"), true),
        (
            "risk-level-change",
            with(payload("risk-level-change"), "current_level", "MEDIUM"),
            false,
        ),
        ("token-claims-change", payload("token-claims-change"), false),
        (
            "assurance-level-change",
            payload("assurance-level-change"),
            false,
        ),
        ("session-established", payload("session-established"), false),
        ("session-presented", payload("session-presented"), false),
        (
            "account-credential-change-required",
            payload("account-credential-change-required"),
            false,
        ),
        ("account-enabled", payload("account-enabled"), false),
        ("identifier-changed", payload("identifier-changed"), false),
        ("opt-out-effective", payload("opt-out-effective"), false),
        ("recovery-activated", payload("recovery-activated"), false),
        ("urn:example:custom-event", json!({"x": 1}), false),
    ];
    let mut jtis = Vec::new();
    for (i, (event, p, _)) in cases.iter().enumerate() {
        let jti = env
            .push_event(
                &stream,
                event,
                p.clone(),
                email(&format!("default{i}@example.com")),
            )
            .await;
        jtis.push(jti);
    }
    // Stream bookkeeping is never an action.
    let verification = env.tx.verification_set(&stream.id, None).sign();
    env.push(&stream, &verification).await;

    let revoking = cases.iter().filter(|c| c.2).count();
    let actions = env.all_done(&stream, revoking).await;
    for (i, (event, _, revoke)) in cases.iter().enumerate() {
        let who = email(&format!("default{i}@example.com"));
        assert_eq!(env.revoked(who).await, *revoke, "ledger for {event} #{i}");
        let planned = actions
            .iter()
            .filter(|a| a["jti"] == jtis[i].as_str())
            .count();
        assert_eq!(planned, usize::from(*revoke), "outbox for {event} #{i}");
        let outcome = env.event_outcome(&stream, &jtis[i]).await;
        assert_eq!(
            outcome,
            if *revoke { "revoke" } else { "log_only" },
            "{event} #{i}"
        );
    }
    assert_eq!(hook.deliveries().len(), revoking);
    // One audit row per decision, LOG_ONLY included; none for the verification event.
    let audit = env
        .daemon
        .app
        .store
        .audit_entries(&stream.id)
        .await
        .unwrap()
        .len() as i64;
    assert_eq!(audit as usize, cases.len());
    let stats = env.stats(&stream).await;
    assert_eq!(stats["eventsReceivedCount"], cases.len() + 1);
    assert_eq!(stats["eventsActedOnCount"], revoking);
    assert_eq!(stats["eventsFailedCount"], 0);
}

#[tokio::test]
async fn stream_knobs_beat_the_policy_table_which_beats_the_defaults() {
    let dir = Env::prepare();
    let env = Env::start(dir, Vec::new(), |c| {
        c.policy
            .insert("token-claims-change".into(), RevocationAction::RevokeAll);
        c.policy
            .insert("session-revoked".into(), RevocationAction::LogOnly);
    })
    .await;
    let knobs = env
        .create_stream(json!({
            "sessionRevokedAction": "SSF_REVOCATION_ACTION_REVOKE_ALL",
            "credentialChangeAction": "SSF_REVOCATION_ACTION_REVOKE_ALL",
            "credentialCompromiseAction": "SSF_REVOCATION_ACTION_LOG_ONLY",
            "accountDisabledAction": "SSF_REVOCATION_ACTION_LOG_ONLY",
        }))
        .await;
    let plain = env.create_stream(json!({})).await;
    let cases: Vec<(&Stream, &str, Value, bool)> = vec![
        // The knob wins over [policy] "session-revoked" = LOG_ONLY.
        (&knobs, "session-revoked", payload("session-revoked"), true),
        (
            &knobs,
            "sessions-revoked",
            payload("sessions-revoked"),
            true,
        ),
        // Without a knob, [policy] wins over the shipped REVOKE_ALL.
        (&plain, "session-revoked", payload("session-revoked"), false),
        // The knob turns a credential creation into a revocation.
        (
            &knobs,
            "credential-change",
            with(payload("credential-change"), "change_type", "create"),
            true,
        ),
        (
            &knobs,
            "credential-compromise",
            payload("credential-compromise"),
            false,
        ),
        (
            &plain,
            "credential-compromise",
            payload("credential-compromise"),
            true,
        ),
        (
            &knobs,
            "account-disabled",
            payload("account-disabled"),
            false,
        ),
        (&knobs, "account-purged", payload("account-purged"), false),
        (&plain, "account-purged", payload("account-purged"), true),
        // [policy] for a type without a knob.
        (
            &plain,
            "token-claims-change",
            payload("token-claims-change"),
            true,
        ),
        // Shipped default where neither speaks.
        (
            &knobs,
            "risk-level-change",
            payload("risk-level-change"),
            true,
        ),
    ];
    for (i, (stream, event, p, _)) in cases.iter().enumerate() {
        env.push_event(
            stream,
            event,
            p.clone(),
            email(&format!("knob{i}@example.com")),
        )
        .await;
    }
    for (i, (_, event, _, revoke)) in cases.iter().enumerate() {
        let who = email(&format!("knob{i}@example.com"));
        assert_eq!(env.revoked(who).await, *revoke, "{event} #{i}");
    }
}

#[tokio::test]
async fn event_types_enabled_limits_actions_and_replay_catches_up() {
    let hook = WebhookRecorder::start().await;
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let env = Env::start(
        dir,
        vec![webhook("hook", &hook.url(), &secret, 3, 50)],
        |_| {},
    )
    .await;
    let stream = env
        .create_stream(json!({"eventTypesEnabled": [events::SESSION_REVOKED]}))
        .await;
    let change = env
        .push_event(
            &stream,
            "credential-change",
            payload("credential-change"),
            email("frank@example.com"),
        )
        .await;
    env.push_event(
        &stream,
        "session-revoked",
        payload("session-revoked"),
        email("grace@example.com"),
    )
    .await;
    env.all_done(&stream, 1).await;
    assert!(env.revoked(email("grace@example.com")).await);
    assert!(!env.revoked(email("frank@example.com")).await);
    assert_eq!(env.event_outcome(&stream, &change).await, "stored");

    env.update_stream(
        &stream,
        json!({"eventTypesEnabled": []}),
        "eventTypesEnabled",
    )
    .await;
    let (status, replayed) = env
        .post("/api/v1/events/replay", json!({"streamId": stream.id}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        replayed,
        json!({"replayedCount": 1, "plannedActionCount": 1})
    );
    env.all_done(&stream, 2).await;
    assert!(env.revoked(email("frank@example.com")).await);
    assert_eq!(env.event_outcome(&stream, &change).await, "revoke");
}

#[tokio::test]
async fn a_disabled_stream_stores_and_plans_nothing_until_replayed() {
    let hook = WebhookRecorder::start().await;
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let env = Env::start(
        dir,
        vec![webhook("hook", &hook.url(), &secret, 3, 50)],
        |_| {},
    )
    .await;
    let stream = env.create_stream(json!({"enabled": false})).await;
    let before = now_unix() - 5;
    let jti = env
        .push_event(
            &stream,
            "session-revoked",
            payload("session-revoked"),
            email("henry@example.com"),
        )
        .await;
    assert_eq!(env.event_outcome(&stream, &jti).await, "stored");
    assert!(env.actions_for(&stream).await.is_empty());
    assert!(!env.revoked(email("henry@example.com")).await);
    let stats = env.stats(&stream).await;
    assert_eq!(stats["eventsReceivedCount"], 1);
    assert_eq!(stats["eventsActedOnCount"], 0);

    // While the stream is still disabled a replay plans nothing.
    let (status, replayed) = env
        .post("/api/v1/events/replay", json!({"streamId": stream.id}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        replayed,
        json!({"replayedCount": 0, "plannedActionCount": 0})
    );

    env.update_stream(&stream, json!({"enabled": true}), "enabled")
        .await;
    // A `since` after the event leaves it alone; one before it takes it.
    let (_, later) = env
        .post(
            "/api/v1/events/replay",
            json!({"streamId": stream.id, "since": rfc3339(now_unix() + 60)}),
        )
        .await;
    assert_eq!(later, json!({"replayedCount": 0, "plannedActionCount": 0}));
    let (_, replayed) = env
        .post(
            "/api/v1/events/replay",
            json!({"streamId": stream.id, "since": rfc3339(before)}),
        )
        .await;
    assert_eq!(
        replayed,
        json!({"replayedCount": 1, "plannedActionCount": 1})
    );
    let actions = env.all_done(&stream, 1).await;
    assert_eq!(actions[0]["jti"], jti.as_str());
    assert_eq!(hook.deliveries().len(), 1);

    let check = env.check(email("henry@example.com"), None).await;
    assert_eq!(check["revoked"], true);
    // The ledger says when the SET arrived, not when it was replayed.
    let events = env
        .get(&format!("/api/v1/events?streamId={}", stream.id))
        .await;
    assert_eq!(
        check["reasons"][0]["receivedAt"],
        events["list"][0]["receivedAt"]
    );
    assert_eq!(check["reasons"][0]["jti"], jti.as_str());

    let (_, again) = env
        .post("/api/v1/events/replay", json!({"streamId": stream.id}))
        .await;
    assert_eq!(again, json!({"replayedCount": 0, "plannedActionCount": 0}));
    assert_eq!(env.stats(&stream).await["eventsActedOnCount"], 1);

    let (status, err) = env
        .post(
            "/api/v1/events/replay",
            json!({"streamId": "no-such-stream"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["code"], "not_found");
    let (status, err) = env.post("/api/v1/events/replay", json!({})).await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().starts_with("streamId"));
    let (status, err) = env
        .post(
            "/api/v1/events/replay",
            json!({"streamId": stream.id, "since": "yesterday-ish"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().starts_with("since"));
}

// ---------------------------------------------------------------------------------------------
// Sinks

#[tokio::test]
async fn a_webhook_failing_twice_is_delivered_with_one_key_and_valid_signatures() {
    let hook = WebhookRecorder::start().await;
    hook.answer_next(2, 503, "try again");
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let env = Env::start(
        dir,
        vec![webhook("hook", &hook.url(), &secret, 5, 50)],
        |c| {
            c.identity = Some(IdentityConfig {
                map_file: None,
                rule: Some("email_local_part".into()),
            });
        },
    )
    .await;
    let stream = env.create_stream(json!({})).await;
    let t = now_unix() - 30;
    let subject = email("Alice@Example.com");
    let builder = env
        .tx
        .set()
        .event(
            "session-revoked",
            events::default_payload("session-revoked", Some("Admin ended it"), t),
        )
        .sub_id(subject.clone())
        .txn("txn-42");
    let jti = builder.claims()["jti"].as_str().unwrap().to_string();
    env.push(&stream, &builder.sign()).await;

    let actions = env.all_done(&stream, 1).await;
    let action = &actions[0];
    assert_eq!(action["attempts"], 3);
    assert_eq!(action["lastError"], "");
    assert_eq!(action["sink"], "hook");
    assert_eq!(action["action"], "REVOKE_ALL");
    assert!(action["finishedAt"].is_string());
    let key = format!("{}:{}:{}", stream.id, jti, events::SESSION_REVOKED);
    assert_eq!(action["idempotencyKey"], key.as_str());

    let deliveries = hook.deliveries();
    assert_eq!(deliveries.len(), 3);
    let mut bodies = Vec::new();
    for (i, d) in deliveries.iter().enumerate() {
        assert_eq!(d.header("idempotency-key"), key);
        verify_signature(d);
        let mut body = d.json();
        assert_eq!(body["attempt"], i + 1);
        body.as_object_mut().unwrap().remove("attempt");
        bodies.push(body);
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "same document on every attempt"
    );
    let doc = &bodies[0];
    assert_eq!(doc["idempotencyKey"], key.as_str());
    assert_eq!(doc["action"], "REVOKE_ALL");
    assert_eq!(doc["streamId"], stream.id.as_str());
    assert_eq!(doc["jti"], jti.as_str());
    assert_eq!(doc["txn"], "txn-42");
    assert_eq!(doc["eventType"], events::SESSION_REVOKED);
    assert_eq!(doc["eventTimestamp"], rfc3339(t).as_str());
    assert_eq!(doc["revokedBefore"], rfc3339(t).as_str());
    assert_eq!(doc["subject"], subject);
    assert_eq!(doc["subjectKeys"], json!(["email:alice@example.com"]));
    assert_eq!(doc["localUser"], "alice");
    assert_eq!(
        doc["reason"],
        json!({"reason_admin": {"en": "Admin ended it"}})
    );
    assert!(doc["receivedAt"].is_string());

    // Each attempt is on record with its result.
    let oks: Vec<bool> = env
        .daemon
        .app
        .store
        .list_attempts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.ok)
        .collect();
    assert_eq!(oks, vec![false, false, true]);
    assert_eq!(env.stats(&stream).await["eventsActedOnCount"], 1);
}

#[tokio::test]
async fn a_command_sink_gets_the_document_on_stdin_and_the_variables() {
    let dir = Env::prepare();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = dir.path().join("sink.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\ncat > \"$1/doc-$SSFD_ATTEMPT.json\"\n\
         env | sort > \"$1/env-$SSFD_ATTEMPT.txt\"\n\
         echo \"revoked $SSFD_LOCAL_USER\"\n",
    )
    .unwrap();
    let map = dir.path().join("users.toml");
    std::fs::write(&map, "\"email:carol@example.com\" = \"carol2\"\n").unwrap();
    let argv = ["/bin/sh", script.to_str().unwrap(), out.to_str().unwrap()];
    let env = Env::start(
        dir,
        vec![command("local", &argv, Duration::from_secs(10), 3)],
        |c| {
            c.identity = Some(IdentityConfig {
                map_file: Some(map.clone()),
                rule: Some("email_local_part".into()),
            });
        },
    )
    .await;
    let stream = env.create_stream(json!({})).await;
    let jti = env
        .push_event(
            &stream,
            "account-disabled",
            payload("account-disabled"),
            email("carol@example.com"),
        )
        .await;
    env.all_done(&stream, 1).await;

    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.join("doc-1.json")).unwrap()).unwrap();
    let key = format!("{}:{}:{}", stream.id, jti, events::ACCOUNT_DISABLED);
    assert_eq!(doc["idempotencyKey"], key.as_str());
    assert_eq!(doc["attempt"], 1);
    assert_eq!(doc["localUser"], "carol2");
    assert_eq!(doc["subject"], email("carol@example.com"));
    assert_eq!(doc["eventType"], events::ACCOUNT_DISABLED);
    let vars: HashMap<String, String> = std::fs::read_to_string(out.join("env-1.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(vars["SSFD_SUBJECT"], "email:carol@example.com");
    assert_eq!(vars["SSFD_LOCAL_USER"], "carol2");
    assert_eq!(vars["SSFD_EVENT_TYPE"], events::ACCOUNT_DISABLED);
    assert_eq!(vars["SSFD_IDEMPOTENCY_KEY"], key);
    // Nothing else of the daemon's environment leaks through (cargo sets CARGO_* for tests).
    assert!(vars.contains_key("PATH"));
    assert!(
        !vars.keys().any(|k| k.starts_with("CARGO")),
        "{:?}",
        vars.keys().collect::<Vec<_>>()
    );

    let attempts = env.daemon.app.store.list_attempts().await.unwrap();
    let detail = attempts.first().unwrap().detail.clone();
    assert_eq!(detail, "exit status 0; stdout: revoked carol2");
}

#[tokio::test]
async fn a_duplicate_set_plans_no_second_action() {
    let hook = WebhookRecorder::start().await;
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let env = Env::start(
        dir,
        vec![webhook("hook", &hook.url(), &secret, 3, 50)],
        |_| {},
    )
    .await;
    let stream = env.create_stream(json!({})).await;
    let set = env
        .tx
        .set()
        .event("session-revoked", payload("session-revoked"))
        .sub_id(email("ivan@example.com"))
        .sign();
    env.push(&stream, &set).await;
    env.push(&stream, &set).await;
    env.all_done(&stream, 1).await;
    // Another SET afterwards, so the worker has demonstrably moved past the duplicate.
    env.push_event(
        &stream,
        "session-revoked",
        payload("session-revoked"),
        email("judy@example.com"),
    )
    .await;
    env.all_done(&stream, 2).await;
    env.push(&stream, &set).await;
    let keys: Vec<String> = hook
        .deliveries()
        .iter()
        .map(|d| d.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(env.actions_for(&stream).await.len(), 2);
    assert_eq!(env.stats(&stream).await["eventsReceivedCount"], 2);
}

#[tokio::test]
async fn a_sink_that_never_recovers_ends_dead_and_can_be_retried() {
    let hook = WebhookRecorder::start().await;
    hook.answer_always(500, "receiver broken");
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let sinks = vec![
        webhook("hook", &hook.url(), &secret, 3, 20),
        command(
            "slow",
            &["/bin/sh", "-c", "sleep 30"],
            Duration::from_millis(300),
            1,
        ),
        command(
            "fails",
            &["/bin/sh", "-c", "echo boom >&2; exit 3"],
            Duration::from_secs(10),
            2,
        ),
    ];
    let env = Env::start(dir, sinks, |_| {}).await;
    let stream = env.create_stream(json!({})).await;
    let jti = env
        .push_event(
            &stream,
            "session-revoked",
            payload("session-revoked"),
            email("mallory@example.com"),
        )
        .await;
    let dead = wait_for("three dead actions", || async {
        let list = env.actions("status=dead").await;
        (list.len() == 3).then_some(list)
    })
    .await;
    let by_sink: HashMap<String, Value> = dead
        .iter()
        .map(|a| (a["sink"].as_str().unwrap().to_string(), a.clone()))
        .collect();
    assert!(dead.iter().all(|a| a["jti"] == jti.as_str()));
    assert_eq!(by_sink["hook"]["attempts"], 3);
    assert_eq!(by_sink["hook"]["lastError"], "HTTP 500: receiver broken");
    assert_eq!(by_sink["slow"]["attempts"], 1);
    assert!(
        by_sink["slow"]["lastError"]
            .as_str()
            .unwrap()
            .starts_with("killed after the 0.3s timeout"),
        "{}",
        by_sink["slow"]["lastError"]
    );
    assert_eq!(by_sink["fails"]["attempts"], 2);
    assert_eq!(by_sink["fails"]["lastError"], "exit status 3; stderr: boom");
    assert!(dead.iter().all(|a| a["finishedAt"].is_string()));
    // Failed SETs still revoke in the ledger: the ledger entry does not depend on the sinks.
    assert!(env.revoked(email("mallory@example.com")).await);
    let stats = env.stats(&stream).await;
    assert_eq!(stats["eventsFailedCount"], 3);
    assert_eq!(stats["eventsActedOnCount"], 0);

    // Paging through the dead list, newest first.
    let first = env.get("/api/v1/actions?status=dead&pageSize=2").await;
    assert_eq!(first["list"].as_array().unwrap().len(), 2);
    let token = first["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let second = env
        .get(&format!(
            "/api/v1/actions?status=dead&pageSize=2&pageToken={token}"
        ))
        .await;
    assert_eq!(second["list"].as_array().unwrap().len(), 1);
    assert_eq!(second["nextPageToken"], "");
    let ids: Vec<i64> = first["list"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["list"].as_array().unwrap())
        .map(|a| a["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // The receiver is repaired; the operator retries the dead webhook action.
    hook.answer_always(200, "");
    let id = by_sink["hook"]["id"].as_str().unwrap();
    let (status, retried) = env
        .post(&format!("/api/v1/actions/{id}/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["action"]["id"], id);
    assert!(["pending", "running", "done"].contains(&retried["action"]["status"].as_str().unwrap()));
    let done = wait_for("the retried action", || async {
        let list = env.actions("status=done").await;
        list.into_iter().find(|a| a["id"] == id)
    })
    .await;
    assert_eq!(done["attempts"], 4);
    assert_eq!(env.stats(&stream).await["eventsFailedCount"], 2);

    let (status, err) = env
        .post(&format!("/api/v1/actions/{id}/retry"), json!({}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_argument");
    let (status, err) = env.post("/api/v1/actions/999999/retry", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(err["code"], "not_found");
    let resp = env
        .http
        .get(env.url("/api/v1/actions?status=exploded"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = env
        .http
        .get(env.url("/api/v1/actions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

// ---------------------------------------------------------------------------------------------
// Crash recovery, with ssfd as a child process

#[tokio::test]
async fn after_kill_9_every_action_completes_exactly_once() {
    // Ports are chosen by binding port 0 and letting go, so a restarted ssfd and the receiver
    // can come back on the same addresses.
    const SETS: usize = 12;
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let hook_addr = common::free_addr();
    let mut settings = common::DaemonSettings::child_process(dir.path());
    // SQLite whatever the test backend: a restarted process takes over its own running actions
    // at once there. On PostgreSQL the restarted process is a new replica, which retries a dead
    // one's claims only after their lease (tests/postgres.rs and store::postgres::outbox cover
    // that with short leases).
    settings.storage = common::TestStorage::Sqlite(dir.path().join("ssfd.db"));
    settings.log_keys = "level = \"off\"\n".into();
    settings.extra = format!(
        r#"[[sink]]
type = "webhook"
name = "hook"
url = "http://{hook_addr}/hook"
secret_file = {secret}
max_attempts = 1000
retry_base = "100ms"
timeout = "60s"
"#,
        secret = common::toml_string(&secret),
    );
    let (push_addr, admin_addr) = (settings.push_listen, settings.admin_listen);
    let http = http_client();
    let admin = format!("http://{admin_addr}");
    let tx = TestTransmitter::start().await;
    let mut first = ChildDaemon::spawn_settings(dir.path(), &settings).await;

    let (stream_id, token) =
        common::create_stream_with(&http, &admin, &tx, json!({"displayName": "crash"})).await;
    let push_url = format!("http://{push_addr}/ssf/push/{stream_id}");
    let mut expected = Vec::new();
    for i in 0..SETS {
        let builder = tx
            .set()
            .event("session-revoked", payload("session-revoked"))
            .sub_id(email(&format!("crash{i}@example.com")));
        let jti = builder.claims()["jti"].as_str().unwrap().to_string();
        let resp = tx.push(&push_url, &token, &builder.sign()).await;
        assert_eq!(resp.status(), 202);
        expected.push(format!("{stream_id}:{jti}:{}", events::SESSION_REVOKED));
    }
    let list_actions = |http: reqwest::Client, admin: String| async move {
        let page: Value = http
            .get(format!("{admin}/api/v1/actions?pageSize=1000"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        page["list"].as_array().cloned()
    };
    // Every action has failed at least once against the missing receiver.
    wait_for("first attempts", || {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let list = list_actions(http, admin).await?;
            (list.len() == SETS && list.iter().all(|a| a["attempts"].as_i64() >= Some(1)))
                .then_some(())
        }
    })
    .await;
    // Then the receiver accepts connections but never answers, so that the retries are caught
    // mid-attempt by the kill.
    let hole = TcpListener::bind(hook_addr).await.unwrap();
    let hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    wait_for("attempts hanging in the receiver", || {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let list = list_actions(http, admin).await?;
            (list.len() == SETS && list.iter().all(|a| a["status"] == "running")).then_some(())
        }
    })
    .await;
    first.kill9();
    hole.abort();
    let _ = hole.await;

    let hook = WebhookRecorder::start_on(hook_addr).await.unwrap();
    let mut second = first.restart().await;
    let actions = wait_for("every action done after the restart", || {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let list = list_actions(http, admin).await?;
            (list.len() == SETS && list.iter().all(|a| a["status"] == "done")).then_some(list)
        }
    })
    .await;
    // Refused, interrupted by the kill, delivered.
    assert!(actions.iter().all(|a| a["attempts"].as_i64() >= Some(3)));

    let mut delivered: Vec<String> = hook
        .deliveries()
        .iter()
        .map(|d| {
            verify_signature(d);
            d.header("idempotency-key")
        })
        .collect();
    delivered.sort();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "each idempotency key delivered exactly once"
    );
    second.kill9();
}

// ---------------------------------------------------------------------------------------------
// The ledger

#[tokio::test]
async fn subjects_check_by_every_alias_by_the_user_of_a_complex_subject_and_by_issue_time() {
    let dir = Env::prepare();
    let env = Env::start(dir, Vec::new(), |_| {}).await;
    let stream = env.create_stream(json!({})).await;
    let t = now_unix() - 120;
    // Milliseconds in event_timestamp, as some transmitters send, are read as the same instant.
    let aliases = subjects::aliases(vec![
        email("dave@example.com"),
        subjects::phone_number("+12065550100"),
        subjects::iss_sub("https://idp.example.com", "dave-1"),
    ]);
    env.push_event(
        &stream,
        "session-revoked",
        events::default_payload("session-revoked", None, t * 1000),
        aliases,
    )
    .await;
    let complex = subjects::complex([
        ("user", email("erin@example.com")),
        ("session", subjects::opaque("sess-1")),
    ]);
    env.push_event(
        &stream,
        "session-revoked",
        events::default_payload("session-revoked", None, t),
        complex,
    )
    .await;

    for alias in [
        email("Dave@Example.com"),
        subjects::phone_number("+12065550100"),
        subjects::iss_sub("https://idp.example.com", "dave-1"),
        json!("dave@example.com"),
    ] {
        let answer = env.check(alias.clone(), None).await;
        assert_eq!(answer["revoked"], true, "{alias}");
        assert_eq!(answer["revokedBefore"], rfc3339(t).as_str(), "{alias}");
        assert_eq!(answer["reasons"][0]["streamId"], stream.id.as_str());
        assert_eq!(answer["reasons"][0]["eventType"], events::SESSION_REVOKED);
    }
    for user in [
        email("erin@example.com"),
        json!("erin@example.com"),
        subjects::complex([("user", email("erin@example.com"))]),
    ] {
        assert!(env.revoked(user.clone()).await, "{user}");
    }

    // A session issued before the event is revoked; one issued after it is not.
    let before = env.check(email("dave@example.com"), Some(t - 10)).await;
    assert_eq!(before["revoked"], true);
    let after = env.check(email("dave@example.com"), Some(t + 10)).await;
    assert_eq!(after["revoked"], false);
    assert!(after.get("revokedBefore").is_none());
    assert_eq!(after["reasons"], json!([]));
    let after = env.check(email("erin@example.com"), Some(t + 10)).await;
    assert_eq!(after["revoked"], false);

    assert!(!env.revoked(email("nobody@example.com")).await);
    let (status, err) = env
        .post(
            "/api/v1/subjects:check",
            json!({"subject": email("dave@example.com"), "issuedAt": "noon"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().starts_with("issuedAt"));
}

#[tokio::test]
async fn step_up_actions_reach_sinks_signed_with_the_requirement() {
    let hook = WebhookRecorder::start().await;
    hook.answer_next(1, 503, "try again");
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let env = Env::start(
        dir,
        vec![webhook("hook", &hook.url(), &secret, 5, 20)],
        |_| {},
    )
    .await;
    let op = ssfd_testkit::TestOpenIdProvider::start().await;
    let (status, p) = env
        .post(
            "/api/v1/step-up/providers",
            json!({"displayName": "Okta", "issuerUrl": op.issuer(),
                   "oauth2": {"acrValues": ["urn:okta:loa:2fa:any"]}}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let provider = p["stepUpProvider"]["id"].as_str().unwrap().to_string();
    let stream = env
        .create_stream(
            json!({"credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP",
                              "stepUpProviderId": provider}),
        )
        .await;
    let t = now_unix() - 30;
    let jti = env
        .push_event(
            &stream,
            events::CREDENTIAL_CHANGE,
            events::default_payload("credential-change", None, t),
            subjects::email("alice@example.com"),
        )
        .await;
    // One failed attempt, then the retry delivers the same document (but for `attempt`).
    let delivered = wait_for("two deliveries", || {
        let d = hook.deliveries();
        async move { (d.len() >= 2).then_some(d) }
    })
    .await;
    for d in &delivered {
        verify_signature(d);
    }
    let (first, second) = (delivered[0].json(), delivered[1].json());
    assert_eq!(second["action"], "STEP_UP");
    assert_eq!(second["jti"], jti);
    assert_eq!(second["revokedBefore"], Value::Null);
    assert_eq!(second["stepUp"]["providerId"], provider);
    assert_eq!(
        second["stepUp"]["acrValues"],
        json!(["urn:okta:loa:2fa:any"])
    );
    assert_eq!(second["stepUp"]["maxAge"], 0);
    assert_eq!(second["stepUp"]["since"], rfc3339(t));
    assert!(second["stepUp"]["wwwAuthenticate"]
        .as_str()
        .unwrap()
        .starts_with("Bearer error=\"insufficient_user_authentication\""));
    assert_eq!(first["idempotencyKey"], second["idempotencyKey"]);
    assert_eq!(first["stepUp"], second["stepUp"]);
    let actions = env.actions(&format!("streamId={}", stream.id)).await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["action"], "STEP_UP");
}

#[tokio::test]
async fn actions_of_a_sink_removed_on_reload_stay_pending() {
    let hook = WebhookRecorder::start().await;
    hook.answer_always(500, "");
    let dir = Env::prepare();
    let secret = Env::secret_path(dir.path());
    let sinks = vec![webhook("hook", &hook.url(), &secret, 1000, 50)];
    let env = Env::start(dir, sinks, |_| {}).await;
    let stream = env.create_stream(json!({})).await;
    env.push_event(
        &stream,
        "session-revoked",
        payload("session-revoked"),
        email("rita@example.com"),
    )
    .await;
    wait_for("a first failed attempt", || async {
        let list = env.actions_for(&stream).await;
        (list.len() == 1 && list[0]["attempts"].as_i64().unwrap_or(0) >= 1).then_some(())
    })
    .await;
    // The sink goes away on a reload (removed, or renamed).
    let mut config = (*env.daemon.app.config()).clone();
    config.sinks.clear();
    env.daemon.app.replace_config(config);
    let parked = wait_for("the action to wait for its sink", || async {
        let list = env.actions_for(&stream).await;
        list[0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("not in the configuration"))
            .then(|| list[0].clone())
    })
    .await;
    assert_eq!(parked["status"], "pending", "{parked}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = env.actions_for(&stream).await;
    assert_eq!(later[0]["status"], "pending", "{}", later[0]);
    assert_eq!(
        later[0]["attempts"], parked["attempts"],
        "waiting is not an attempt"
    );
}
