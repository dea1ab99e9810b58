//! Stream management against a transmitter (SSF §8): registration for push and poll in both the
//! Okta and SailPoint API styles, issuer checks, the 409 path, verification, status, remote
//! delete, outbound OAuth, stream health and the command line. Numbers refer to docs/receiver-checklist.md.

mod common;

use std::time::Duration;

use common::{Mode, TestDaemon, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd_testkit::{EndpointPaths, TestTransmitter, TransmitterOptions};

const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn transmitter(paths: EndpointPaths) -> TestTransmitter {
    transmitter_in(Mode::Ssf, paths).await
}

async fn transmitter_in(mode: Mode, paths: EndpointPaths) -> TestTransmitter {
    let tx = TestTransmitter::start_with(TransmitterOptions {
        paths: Some(paths),
        ..mode.options()
    })
    .await;
    tx.set_poll_hold(Duration::from_millis(200));
    tx
}

/// A daemon whose public base URL is its real push address, so registered push endpoints work.
async fn daemon_with(edit: impl FnOnce(&mut ssfd::config::Config)) -> TestDaemon {
    let d = TestDaemon::start_with(edit).await;
    let mut config = (*d.daemon.app.config()).clone();
    config.server.public_base_url = d.daemon.push_url();
    d.daemon.app.replace_config(config);
    d
}

async fn daemon() -> TestDaemon {
    daemon_with(|_| {}).await
}

fn bearer(tx: &TestTransmitter) -> Value {
    json!({"outboundAuthBearer": {"token": tx.static_token()}})
}

fn oauth(tx: &TestTransmitter, secret: Option<&str>) -> Value {
    let (id, real) = tx.client_credentials();
    json!({"outboundAuthOauth2": {"clientId": id, "clientSecret": secret.unwrap_or(&real),
                                  "tokenUrl": tx.token_url(), "scopes": []}})
}

fn merged(mut a: Value, b: Value) -> Value {
    for (k, v) in b.as_object().cloned().unwrap_or_default() {
        a[k] = v;
    }
    a
}

/// A POLL stream created disabled with a placeholder endpoint, as an operator would before the
/// transmitter assigns one.
async fn unregistered_poll_stream(d: &TestDaemon, tx: &TestTransmitter, auth: Value) -> String {
    let mut body = merged(
        json!({
            "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
            "pollEndpointUrl": tx.poll_url("placeholder"),
            "enabled": false,
        }),
        auth,
    );
    if tx.is_legacy() {
        // A legacy transmitter's metadata is not under its constant issuer; it polls short.
        body = merged(
            body,
            Mode::Legacy.with(json!({"metadataUrl": tx.metadata_url(), "pollInterval": "1s"})),
        );
    }
    d.create_stream_for(tx, body).await.0
}

async fn call(
    d: &TestDaemon,
    method: Method,
    id: &str,
    suffix: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, v) = d
        .api(
            method,
            &format!("/api/v1/ssf-receiver-streams/{id}{suffix}"),
            body,
        )
        .await;
    (status.as_u16(), v)
}

async fn register(d: &TestDaemon, id: &str) -> (u16, Value) {
    call(d, Method::POST, id, "/register", None).await
}

async fn enable(d: &TestDaemon, id: &str) {
    let (status, v) = call(
        d,
        Method::POST,
        id,
        "",
        Some(json!({"ssfReceiverStream": {"enabled": true}, "updateMask": "enabled"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

/// A registered, enabled POLL stream: (local id, transmitter stream id). A legacy transmitter
/// names no stream: its own id of the stream (the feed) is returned instead.
async fn registered_poll_stream(d: &TestDaemon, tx: &TestTransmitter) -> (String, String) {
    let id = unregistered_poll_stream(d, tx, bearer(tx)).await;
    let (status, v) = register(d, &id).await;
    assert_eq!(status, 200, "{v}");
    enable(d, &id).await;
    let tid = v["ssfReceiverStream"]["transmitterStreamId"]
        .as_str()
        .unwrap()
        .to_string();
    if tx.is_legacy() {
        assert_eq!(tid, "");
        return (id, tx.stream_ids().remove(0));
    }
    (id, tid)
}

fn local(d: &TestDaemon, id: &str) -> std::sync::Arc<ssfd::stream::Stream> {
    d.daemon.app.registry.get(id).unwrap()
}

#[tokio::test]
async fn register_for_push_in_the_okta_style() {
    // 9, 14, 16
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::okta()).await;
    let (id, old_token) = d.create_stream_for(&tx, bearer(&tx)).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 200, "{v}");
    let s = &v["ssfReceiverStream"];
    let tid = s["transmitterStreamId"].as_str().unwrap().to_string();
    assert_eq!(tx.stream_ids(), vec![tid.clone()]);
    let delivered = s["eventsDelivered"].as_array().unwrap();
    assert!(!delivered.is_empty());

    // First a look for a stream already held for this receiver (none), then the create.
    let calls = tx.management_calls();
    assert_eq!(
        (calls[0].method.as_str(), calls[0].uri.as_str()),
        ("GET", "/api/v1/ssf/stream")
    );
    let create = calls[1].clone();
    assert_eq!((create.method.as_str(), create.status), ("POST", 201));
    assert_eq!(create.uri, "/api/v1/ssf/stream");
    assert_eq!(
        create.authorization,
        Some(format!("Bearer {}", tx.static_token()))
    );
    assert_eq!(create.body["delivery"]["method"], PUSH);
    assert_eq!(create.body["delivery"]["endpoint_url"], d.push_url(&id));
    let header = create.body["delivery"]["authorization_header"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(header.starts_with("Bearer ") && header.len() > 40);
    let requested = create.body["events_requested"].as_array().unwrap();
    assert!(!requested.is_empty());
    assert!(requested.contains(&json!(
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
    )));
    assert_eq!(create.body["description"], "test stream");
    // The fresh token is handed to the transmitter only, never shown by the API.
    let token = header.trim_start_matches("Bearer ");
    assert!(!v.to_string().contains(token));

    let resp = tx.push_registered(&tid, &tx.set().sign()).await;
    assert_eq!(resp.status(), 202);
    // The token the stream had before keeps working for the overlap.
    let resp = d.push(&id, &old_token, &tx.set().sign()).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(d.events(&id).await.len(), 2);
}

#[tokio::test]
async fn register_for_poll_in_the_sailpoint_style_with_oauth() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let id = unregistered_poll_stream(&d, &tx, oauth(&tx, None)).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 200, "{v}");
    let tid = v["ssfReceiverStream"]["transmitterStreamId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["ssfReceiverStream"]["pollEndpointUrl"], tx.poll_url(&tid));
    let create = tx.management_calls().remove(1);
    assert_eq!(
        (create.method.as_str(), create.uri.as_str()),
        ("POST", "/ssf/streams")
    );
    assert_eq!(create.body["delivery"], json!({"method": POLL}));
    let token_requests = tx.token_requests();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].scope, "ssf.manage ssf.read");
    assert!(token_requests[0].secret_in_body);

    enable(&d, &id).await;
    let jti = tx.enqueue_set(&tid, &tx.set());
    until("the registered stream is polled", || {
        tx.acked().contains(&jti)
    })
    .await;
    // One token served registration and polling alike.
    assert_eq!(tx.tokens_issued(), 1);
}

#[tokio::test]
async fn a_foreign_issuer_in_the_answer_is_refused_and_the_stream_disabled() {
    // 5
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    tx.set_config_iss(Some("https://impostor.example.com".into()));
    let (id, token) = d.create_stream_for(&tx, bearer(&tx)).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["code"], "unavailable");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("register") && message.contains("iss"),
        "{message}"
    );
    assert!(!message.contains("impostor"));
    let s = d.get_stream(&id).await;
    assert_eq!(s["enabled"], false);
    assert_eq!(s["transmitterStreamId"], "");
    assert!(s["lastErrorMessage"].as_str().unwrap().contains("iss"));
    // The transmitter holds the new push token (it answered 200 with it): both tokens stay
    // valid, the old one as the current token, the new one for the overlap.
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    let created = tx.stream_ids().pop().unwrap();
    let header = tx.stream_authorization_header(&created).unwrap();
    let new = header.strip_prefix("Bearer ").unwrap();
    assert_ne!(new, token);
    assert_eq!(d.push(&id, new, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn a_registration_the_transmitter_refused_rolls_the_push_token_back() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, token) = d.create_stream_for(&tx, bearer(&tx)).await;
    tx.fail_management(Some(400));
    let (status, v) = register(&d, &id).await;
    assert_ne!(status, 200, "{v}");
    // The transmitter said no: nothing new is valid, the old token is as it was.
    let stream = local(&d, &id);
    assert_eq!(stream.prev_push_token_hash, None);
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn a_409_takes_over_the_existing_stream() {
    // 9
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::okta()).await;
    tx.set_one_stream_per_client(true);
    let existing = tx.create_stream(json!({"method": POLL}));
    // Ours: it delivers to this stream's poll URL.
    let body = merged(
        json!({
            "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
            "pollEndpointUrl": tx.poll_url(&existing),
            "enabled": false,
        }),
        bearer(&tx),
    );
    let id = d.create_stream_for(&tx, body).await.0;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["ssfReceiverStream"]["transmitterStreamId"],
        existing.as_str()
    );
    let calls: Vec<(String, u16)> = tx
        .management_calls()
        .into_iter()
        .map(|c| (c.method, c.status))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET".to_string(), 200),
            ("POST".to_string(), 409),
            ("GET".to_string(), 200),
            ("PUT".to_string(), 200)
        ]
    );
    let config = tx.stream_config(&existing).unwrap();
    assert_eq!(config["description"], "test stream");
    assert_eq!(tx.stream_ids(), vec![existing]);
}

#[tokio::test]
async fn registration_reuses_the_stream_the_transmitter_holds_for_this_receiver() {
    // 9: registered once, then forgotten here (a restored backup, a second install)
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, _) = d.create_stream_for(&tx, bearer(&tx)).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 200, "{v}");
    let first = v["ssfReceiverStream"]["transmitterStreamId"].clone();
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "",
        Some(json!({"ssfReceiverStream": {"transmitterStreamId": ""},
                    "updateMask": "transmitterStreamId"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ssfReceiverStream"]["transmitterStreamId"], first);
    assert_eq!(tx.stream_ids().len(), 1, "no second stream");
    let last = tx.management_calls().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("PUT", 200));
    // The new push token went to the transmitter with the update.
    let header = tx
        .stream_authorization_header(first.as_str().unwrap())
        .unwrap();
    let token = header.strip_prefix("Bearer ").unwrap();
    let set = tx.set().sign();
    assert_eq!(d.push(&id, token, &set).await.status(), 202);
}

#[tokio::test]
async fn two_local_streams_alike_never_share_one_transmitter_stream() {
    // Registration reuse must not hand one stream's registration to another.
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (first, _) = registered_poll_stream(&d, &tx).await;
    let (second, _) = registered_poll_stream(&d, &tx).await;
    let tid = |id: &str| local(&d, id).transmitter_stream_id.clone();
    assert_ne!(tid(&first), tid(&second));
    assert_eq!(tx.stream_ids().len(), 2);
}

#[tokio::test]
async fn subjects_are_added_and_removed_and_the_remote_configuration_read_back() {
    // SSF §8.1.3, §8.1.1.2
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::okta()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/subjects:add",
        Some(json!({"subject": "email:alice@example.com"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let bob = json!({"format": "iss_sub", "iss": "https://idp.example.com", "sub": "bob"});
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/subjects:add",
        Some(json!({"subject": bob})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        tx.stream_subjects(&tid),
        vec![
            json!({"format": "email", "email": "alice@example.com"}),
            bob.clone()
        ]
    );
    let add = tx
        .management_calls()
        .into_iter()
        .find(|c| c.uri.ends_with("subjects:add"))
        .unwrap();
    assert_eq!(add.body["stream_id"], tid.as_str());
    assert_eq!(add.body["verified"], true);
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/subjects:remove",
        Some(json!({"subject": bob})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(tx.stream_subjects(&tid).len(), 1);
    // Removing it again: the transmitter's 404 with its reason.
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/subjects:remove",
        Some(json!({"subject": bob})),
    )
    .await;
    assert_eq!(status, 502, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 404") && message.contains("no such subject"),
        "{message}"
    );
    for bad in [
        json!({}),
        json!({"subject": 5}),
        json!({"subject": "nonsense"}),
    ] {
        let (status, v) = call(&d, Method::POST, &id, "/subjects:add", Some(bad)).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["message"].as_str().unwrap().starts_with("subject"), "{v}");
    }

    let (status, v) = call(&d, Method::GET, &id, "/remote-config", None).await;
    assert_eq!(status, 200, "{v}");
    let config = &v["transmitterConfiguration"];
    assert_eq!(config["stream_id"], tid.as_str());
    assert_eq!(config["delivery"]["method"], POLL);
    assert_eq!(*config, tx.stream_config(&tid).unwrap());
}

#[tokio::test]
async fn registering_again_updates_the_registered_stream() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ssfReceiverStream"]["transmitterStreamId"], tid.as_str());
    assert_eq!(tx.stream_ids(), vec![tid.clone()]);
    let last = tx.management_calls().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("PUT", 200));
    assert_eq!(last.body["stream_id"], tid.as_str());
}

both_modes!(verification_with_the_requested_state_is_accepted);
async fn verification_with_the_requested_state_is_accepted(mode: Mode) {
    // 33
    let d = daemon().await;
    let tx = transmitter_in(mode, EndpointPaths::sailpoint()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    let state = v["state"].as_str().unwrap().to_string();
    assert!(v["requestedAt"].is_string());
    assert_eq!(tx.verification_requests(), vec![(tid.clone(), Some(state))]);
    until("the verification arrives", || {
        local(&d, &id).last_verified_at.is_some()
    })
    .await;
    until("it is acknowledged", || {
        tx.queued(&tid) == 0 && !tx.acked().is_empty()
    })
    .await;
    assert!(tx.set_errs().is_empty());
    assert!(d.get_stream(&id).await["lastVerifiedAt"].is_string());
}

both_modes!(verification_with_another_state_is_rejected_with_invalid_state);
async fn verification_with_another_state_is_rejected_with_invalid_state(mode: Mode) {
    // 33
    let d = daemon().await;
    let tx = transmitter_in(mode, EndpointPaths::sailpoint()).await;
    tx.set_verification_state(Some("forged-state".into()));
    let (id, _) = registered_poll_stream(&d, &tx).await;
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    until("the verification is rejected", || !tx.set_errs().is_empty()).await;
    let errs = tx.set_errs();
    let (key, err) = errs.iter().next().unwrap();
    assert_eq!(err["err"], "invalid_state");
    assert!(!tx.acked().contains(key));
    assert_eq!(local(&d, &id).last_verified_at, None);
}

both_modes!(a_verification_queued_behind_other_events_arrives);
async fn a_verification_queued_behind_other_events_arrives(mode: Mode) {
    // 34, CONF verification behind queued events
    let d = daemon_with(|c| c.poll.max_events = 2).await;
    let tx = transmitter_in(mode, EndpointPaths::sailpoint()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    tx.set_stream_status(&tid, "paused", Some("maintenance"));
    let events: Vec<String> = (0..5).map(|_| tx.enqueue_set(&tid, &tx.set())).collect();
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(tx.queued(&tid), 6);
    tx.set_stream_status(&tid, "enabled", None);
    until("everything is acknowledged", || {
        tx.queued(&tid) == 0 && events.iter().all(|e| tx.acked().contains(e))
    })
    .await;
    until("the verification counted", || {
        local(&d, &id).last_verified_at.is_some()
    })
    .await;
    let delivering: Vec<Vec<String>> = tx
        .poll_requests()
        .into_iter()
        .filter(|r| !r.delivered.is_empty())
        .map(|r| r.delivered)
        .collect();
    let last = delivering.last().unwrap();
    assert!(
        last.iter().any(|k| !events.contains(k)),
        "the verification came last"
    );
}

#[tokio::test]
async fn status_is_read_and_updated_at_the_transmitter() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let (status, v) = call(&d, Method::GET, &id, "/transmitter-status", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"status": "enabled", "reason": ""}));
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/transmitter-status",
        Some(json!({"status": "paused", "reason": "maintenance window"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"status": "paused", "reason": "maintenance window"})
    );
    assert_eq!(
        tx.stream_status(&tid),
        Some(("paused".into(), Some("maintenance window".into())))
    );
    let s = d.get_stream(&id).await;
    assert_eq!(s["transmitterStatus"], "paused");
    assert_eq!(s["transmitterStatusReason"], "maintenance window");
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/transmitter-status",
        Some(json!({"status": "asleep"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("status"));
}

#[tokio::test]
async fn verification_limits_are_respected() {
    // 12
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    tx.set_min_verification_interval(Some(3600));
    let (id, _) = registered_poll_stream(&d, &tx).await;
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["code"], "resource_exhausted");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("min_verification_interval"));
    assert_eq!(tx.verification_requests().len(), 1, "refused locally");
}

#[tokio::test]
async fn a_429_from_the_transmitter_is_honoured() {
    // 12
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, _) = registered_poll_stream(&d, &tx).await;
    // Announced only after registration: ssfd learns it from the 429.
    tx.set_min_verification_interval(Some(3600));
    assert_eq!(call(&d, Method::POST, &id, "/verify", None).await.0, 200);
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 429, "{v}");
    assert!(v["message"].as_str().unwrap().contains("HTTP 429"));
    let (status, _) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 429);
    let verify_calls = tx
        .management_calls()
        .iter()
        .filter(|c| c.uri.starts_with("/ssf/streams/verify"))
        .count();
    assert_eq!(verify_calls, 2, "the third was refused locally");
}

#[tokio::test]
async fn remote_delete_deletes_at_the_transmitter_first() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::okta()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let (status, v) = call(&d, Method::DELETE, &id, "?remote=maybe", None).await;
    assert_eq!(status, 400, "{v}");
    tx.fail_management(Some(500));
    let (status, v) = call(&d, Method::DELETE, &id, "?remote=true", None).await;
    assert_eq!(status, 502, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("delete") && message.contains("HTTP 500"),
        "{message}"
    );
    assert!(!message.contains(&tx.static_token()));
    assert_eq!(call(&d, Method::GET, &id, "", None).await.0, 200, "kept");
    tx.fail_management(None);
    let (status, v) = call(&d, Method::DELETE, &id, "?remote=true", None).await;
    assert_eq!(status, 200, "{v}");
    assert!(tx.stream_ids().is_empty());
    let delete = tx.management_calls().pop().unwrap();
    assert_eq!(delete.method, "DELETE");
    assert_eq!(delete.uri, format!("/api/v1/ssf/stream?stream_id={tid}"));
    assert_eq!(delete.status, 204);
    assert_eq!(call(&d, Method::GET, &id, "", None).await.0, 404);
    until("its poller stops", || {
        !d.daemon.app.transmitters.running_pollers().contains(&id)
    })
    .await;

    // A stream that was never registered cannot be deleted remotely.
    let other = unregistered_poll_stream(&d, &tx, bearer(&tx)).await;
    let (status, v) = call(&d, Method::DELETE, &other, "?remote=true", None).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "failed_precondition");
}

#[tokio::test]
async fn management_calls_fetch_a_new_token_after_a_401() {
    // 15
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let id = unregistered_poll_stream(&d, &tx, oauth(&tx, None)).await;
    assert_eq!(register(&d, &id).await.0, 200);
    assert_eq!(tx.tokens_issued(), 1);
    tx.revoke_tokens();
    let (status, v) = call(&d, Method::GET, &id, "/transmitter-status", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(tx.tokens_issued(), 2);
    assert_eq!(tx.unauthorized_count(), 1);
}

#[tokio::test]
async fn token_failures_name_the_step_but_never_the_secret() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let secret = "hunter2-this-secret-must-stay-inside";
    let id = unregistered_poll_stream(&d, &tx, oauth(&tx, Some(secret))).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 502, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("token")
            && message.contains("HTTP 401")
            && message.contains("invalid_client"),
        "{message}"
    );
    assert!(!v.to_string().contains(secret));
    assert!(!d.get_stream(&id).await.to_string().contains(secret));
}

#[tokio::test]
async fn a_stream_without_management_endpoints_cannot_be_registered() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    tx.set_metadata_member("configuration_endpoint", None);
    let (id, _) = d.create_stream_for(&tx, bearer(&tx)).await;
    let (status, v) = register(&d, &id).await;
    assert_eq!(status, 502, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("configuration_endpoint"));
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "failed_precondition");
    assert_eq!(
        call(&d, Method::POST, "nope", "/register", None).await.0,
        404
    );
}

#[tokio::test]
async fn stream_health_counts_missing_verifications_and_pauses_with_the_stream() {
    let d = daemon_with(|c| c.poll.verify_interval = Some(Duration::from_secs(1))).await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    tx.set_drop_verifications(true);
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let health = &d.daemon.app.transmitters.health;
    let missed = || {
        health
            .verifications_missed
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    until("a missing verification is counted", || missed() >= 1).await;
    until("verifications go on being requested", || {
        tx.verification_requests().len() >= 2
    })
    .await;

    // The transmitter pauses the stream (SSF §8.1.5): no verification is expected any more.
    let jti = tx.enqueue_set(
        &tid,
        &tx.stream_updated_set(&tid, "paused", Some("maintenance")),
    );
    until("the pause is known", || {
        tx.acked().contains(&jti) && local(&d, &id).transmitter_status == "paused"
    })
    .await;
    let rounds = || health.rounds.load(std::sync::atomic::Ordering::Relaxed);
    let start = rounds();
    until("two more rounds", || rounds() >= start + 2).await;
    let (requests, misses) = (tx.verification_requests().len(), missed());
    until("two rounds after that", || rounds() >= start + 4).await;
    assert_eq!(tx.verification_requests().len(), requests);
    assert_eq!(missed(), misses);
}

both_modes!(after_a_rejected_verification_the_next_requested_one_is_accepted);
async fn after_a_rejected_verification_the_next_requested_one_is_accepted(mode: Mode) {
    // 33, CONF: a rejection must not poison the stream's verification
    let d = daemon().await;
    let tx = transmitter_in(mode, EndpointPaths::sailpoint()).await;
    let (id, _) = registered_poll_stream(&d, &tx).await;
    tx.set_verification_state(Some("never-requested".into()));
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    until("the forged state is rejected", || !tx.set_errs().is_empty()).await;
    assert_eq!(
        tx.set_errs().values().next().unwrap()["err"],
        "invalid_state"
    );
    assert_eq!(local(&d, &id).last_verified_at, None);
    tx.set_verification_state(None);
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    until("the requested verification is accepted", || {
        local(&d, &id).last_verified_at.is_some()
    })
    .await;
    assert_eq!(tx.set_errs().len(), 1);
}

#[tokio::test]
async fn a_verification_nobody_requested_is_invalid_state_even_with_no_request_on_record() {
    // 33, CONF: no request at all is on record for the stream
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let key = tx.enqueue_set(&tid, &tx.verification_set(&tid, Some("unsolicited")));
    until("it is reported", || tx.set_errs().contains_key(&key)).await;
    assert_eq!(tx.set_errs()[&key]["err"], "invalid_state");
    // The wrong subject: another stream's id.
    let other = tx.enqueue_set(&tid, &tx.verification_set("another-stream", None));
    until("it is reported", || tx.set_errs().contains_key(&other)).await;
    assert_eq!(tx.set_errs()[&other]["err"], "invalid_request");
    assert_eq!(local(&d, &id).last_verified_at, None);
}

#[tokio::test]
async fn events_for_configured_subjects_are_acknowledged_and_a_removed_one_is_not_acted_on() {
    // 27, CONF: subjects as email or iss_sub; events after a removal
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    let alice = ssfd_testkit::subjects::email("alice@example.com");
    let bob = ssfd_testkit::subjects::iss_sub("https://idp.example.com", "bob");
    let carol = ssfd_testkit::subjects::email("carol@example.com");
    for s in [&alice, &bob, &carol] {
        let (status, v) = call(
            &d,
            Method::POST,
            &id,
            "/subjects:add",
            Some(json!({"subject": s})),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/subjects:remove",
        Some(json!({"subject": carol})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let jtis: Vec<String> = [&alice, &bob, &carol]
        .iter()
        .map(|s| tx.enqueue_set(&tid, &tx.set().sub_id((*s).clone())))
        .collect();
    until("all three are acknowledged", || {
        jtis.iter().all(|j| tx.acked().contains(j))
    })
    .await;
    assert!(tx.set_errs().is_empty());
    let events = d.events(&id).await;
    let outcome = |jti: &str| {
        events
            .iter()
            .find(|e| e["jti"] == jti)
            .map(|e| e["outcome"].clone())
            .unwrap()
    };
    assert_eq!(outcome(&jtis[0]), "revoke");
    assert_eq!(outcome(&jtis[1]), "revoke");
    assert_eq!(
        outcome(&jtis[2]),
        "stored",
        "removed subjects are not acted on"
    );
    let (_, check) = d
        .api(
            Method::POST,
            "/api/v1/subjects:check",
            Some(json!({"subject": "email:carol@example.com"})),
        )
        .await;
    assert_eq!(check["revoked"], false, "{check}");
    // Kept across a restart; adding the subject back makes its events count again.
    let dir = d.stop().await;
    let mut config = common::test_config(dir.path());
    config.jwks.allow_http = true;
    let d = TestDaemon::start_in(dir, config).await;
    assert!(d
        .daemon
        .app
        .transmitters
        .is_removed(&id, &["email:carol@example.com".to_string()]));
    let (status, v) = call(
        &d,
        Method::POST,
        &id,
        "/subjects:add",
        Some(json!({"subject": carol})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(!d
        .daemon
        .app
        .transmitters
        .is_removed(&id, &["email:carol@example.com".to_string()]));
}

#[tokio::test]
async fn scheduled_verification_waits_the_minimum_interval_and_honours_429() {
    // 12, CONF: periodic verification against min_verification_interval
    let d = daemon_with(|c| c.poll.verify_interval = Some(Duration::from_secs(1))).await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    tx.set_min_verification_interval(Some(3));
    let (_id, _) = registered_poll_stream(&d, &tx).await;
    let health = &d.daemon.app.transmitters.health;
    let rounds = || health.rounds.load(std::sync::atomic::Ordering::Relaxed);
    until("seven rounds", || rounds() >= 7).await;
    // One request per 3 s at most over 7 one-second rounds, and never one the transmitter
    // had to refuse.
    let requested = tx.verification_requests().len();
    assert!((1..=3).contains(&requested), "{requested}");
    let refused = tx
        .management_calls()
        .iter()
        .filter(|c| c.status == 429)
        .count();
    assert_eq!(refused, 0);

    // A transmitter whose limit ssfd cannot know: its 429 and Retry-After are honoured.
    let d = daemon_with(|c| c.poll.verify_interval = Some(Duration::from_secs(1))).await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (_id, _) = registered_poll_stream(&d, &tx).await;
    tx.set_min_verification_interval(Some(4));
    let health = &d.daemon.app.transmitters.health;
    let rounds = || health.rounds.load(std::sync::atomic::Ordering::Relaxed);
    until("seven rounds", || rounds() >= 7).await;
    let statuses: Vec<u16> = tx
        .management_calls()
        .iter()
        .filter(|c| c.uri.contains("verify"))
        .map(|c| c.status)
        .collect();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // After each 429 ssfd waits the Retry-After (up to 4 s) before asking again.
    assert!(refused <= 2, "{statuses:?}");
    assert!(statuses.contains(&204), "{statuses:?}");
}

#[tokio::test]
async fn a_quiet_stream_is_verified_within_the_inactivity_timeout() {
    // 13: no [poll] verify_interval; the transmitter drops streams quiet for 4 s
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    tx.set_inactivity_timeout(Some(4));
    let (id, tid) = registered_poll_stream(&d, &tx).await;
    until("a keep-alive verification is requested", || {
        !tx.verification_requests().is_empty()
    })
    .await;
    until("it arrives", || local(&d, &id).last_verified_at.is_some()).await;
    // Traffic counts as activity: SETs every second keep it from asking again.
    let asked = tx.verification_requests().len();
    for _ in 0..4 {
        let jti = tx.enqueue_set(&tid, &tx.set());
        until("the SET is acknowledged", || tx.acked().contains(&jti)).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(tx.verification_requests().len() <= asked + 1);
}

#[tokio::test]
async fn the_command_line_acts_through_the_admin_api() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, _) = registered_poll_stream(&d, &tx).await;
    let admin_url = d.daemon.admin_url();
    let run = move |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
            .arg("streams")
            .args(args)
            .arg("--json")
            .arg("--admin-url")
            .arg(&admin_url)
            .env("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    let run2 = run.clone();
    let sid = id.clone();
    let out = tokio::task::spawn_blocking(move || {
        run2(vec![
            "status".into(),
            sid,
            "--set".into(),
            "disabled".into(),
            "--reason".into(),
            "done".into(),
        ])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"status": "disabled", "reason": "done"}));

    let sid = id.clone();
    let out = tokio::task::spawn_blocking(move || run(vec!["verify".into(), sid]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["state"].is_string());

    // subjects add|remove and remote-config
    let admin_url = d.daemon.admin_url();
    let (sid, tid) = (id.clone(), tx.stream_ids().remove(0));
    let outs = tokio::task::spawn_blocking(move || {
        let ssfd = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
                .arg("streams")
                .args(args)
                .args(["--admin-url", &admin_url])
                .env("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
                .unwrap()
        };
        vec![
            ssfd(&["subjects", "add", &sid, "email:alice@example.com"]),
            ssfd(&["subjects", "add", &sid, r#"{"format":"opaque","id":"u-7"}"#]),
            ssfd(&["subjects", "remove", &sid, "email:alice@example.com"]),
            ssfd(&["remote-config", &sid]),
        ]
    })
    .await
    .unwrap();
    for out in &outs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        String::from_utf8_lossy(&outs[0].stdout).contains("Added subject email:alice@example.com")
    );
    assert_eq!(
        tx.stream_subjects(&tid),
        vec![json!({"format": "opaque", "id": "u-7"})]
    );
    let config: Value = serde_json::from_slice(&outs[3].stdout).unwrap();
    assert_eq!(config["stream_id"], tid.as_str());

    let admin_url = d.daemon.admin_url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
            .args([
                "streams",
                "register",
                "no-such-stream",
                "--admin-url",
                &admin_url,
            ])
            .env("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not_found"), "{stderr}");
}

#[tokio::test]
async fn huge_verification_intervals_and_retry_after_never_panic() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    // Announced at registration: refused locally, with saturating arithmetic.
    tx.set_min_verification_interval(Some(i64::MAX as u64));
    let (id, _) = registered_poll_stream(&d, &tx).await;
    assert_eq!(call(&d, Method::POST, &id, "/verify", None).await.0, 200);
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 429, "{v}");
    // Learnt from a 429 whose Retry-After is near i64::MAX.
    let tx = transmitter(EndpointPaths::sailpoint()).await;
    let (id, _) = registered_poll_stream(&d, &tx).await;
    tx.set_min_verification_interval(Some(u64::MAX));
    assert_eq!(call(&d, Method::POST, &id, "/verify", None).await.0, 200);
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 429, "{v}");
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(call(&d, Method::GET, &id, "", None).await.0, 200);
}

#[tokio::test]
async fn a_409_does_not_take_over_another_receivers_stream() {
    let d = daemon().await;
    let tx = transmitter(EndpointPaths::okta()).await;
    tx.set_one_stream_per_client(true);
    let theirs = tx.create_stream(
        json!({"method": PUSH, "endpoint_url": "https://other-receiver.example.com/ssf/push/x"}),
    );
    let before = tx.stream_config(&theirs).unwrap();
    let id = unregistered_poll_stream(&d, &tx, bearer(&tx)).await;
    let (status, v) = register(&d, &id).await;
    assert_ne!(status, 200, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("another receiver"),
        "{v}"
    );
    assert!(tx
        .management_calls()
        .iter()
        .all(|c| c.method != "PUT" && c.method != "PATCH"));
    assert_eq!(tx.stream_config(&theirs).unwrap(), before);
    assert_eq!(local(&d, &id).transmitter_stream_id, "");
}
