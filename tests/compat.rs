//! Compatibility profiles end to end: a real daemon against the testkit's pre-1.0 SSE
//! transmitter (push, poll with `acks`, no long poll, the SSE verification, configurations
//! without `stream_id`, the SSE metadata path), the claim tolerances every profile applies, what
//! is never tolerated, and the errors that tell an operator what a transmitter answered.

mod common;

use std::time::Duration;

use common::{assert_set_error, TestDaemon};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd::stream::RevocationAction;
use ssfd_testkit::{legacy, subjects, TestTransmitter, TransmitterOptions};

const OKTA_RISK: &str = "https://schemas.okta.com/secevent/okta/event-type/user-risk-change";

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A daemon whose public base URL is its real push address, so registered push endpoints work.
async fn daemon_with(edit: impl FnOnce(&mut ssfd::config::Config)) -> TestDaemon {
    let d = TestDaemon::start_with(edit).await;
    let mut config = (*d.daemon.app.config()).clone();
    config.server.public_base_url = d.daemon.push_url();
    d.daemon.app.replace_config(config);
    d
}

async fn legacy_tx() -> TestTransmitter {
    let tx = TestTransmitter::start_with(TransmitterOptions::legacy()).await;
    tx.set_poll_hold(Duration::from_millis(200));
    tx
}

async fn create(d: &TestDaemon, body: Value) -> (String, String) {
    let (status, v) = d
        .api(Method::POST, "/api/v1/ssf-receiver-streams", Some(body))
        .await;
    assert_eq!(status, 200, "{v}");
    (
        v["ssfReceiverStream"]["id"].as_str().unwrap().to_string(),
        v["pushAuthTokenPlaintext"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
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

async fn update(d: &TestDaemon, id: &str, fields: Value, mask: &str) -> (u16, Value) {
    call(
        d,
        Method::POST,
        id,
        "",
        Some(json!({"ssfReceiverStream": fields, "updateMask": mask})),
    )
    .await
}

fn tolerances(event: &Value) -> Vec<String> {
    event["tolerances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

async fn metrics(d: &TestDaemon) -> String {
    d.http
        .get(format!("{}/metrics", d.daemon.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A legacy stream: the constant issuer without its trailing slash, keys from the JWKS URL.
fn legacy_stream(tx: &TestTransmitter, extra: Value) -> Value {
    let mut body = json!({
        "displayName": "apple business manager",
        "issuerUrl": tx.issuer().trim_end_matches('/'),
        "metadataUrl": tx.metadata_url(),
        "compatibilityProfile": "LEGACY_SSE",
        "outboundAuthBearer": {"token": tx.static_token()},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    body
}

#[tokio::test]
async fn profile_and_metadata_url_are_validated_and_survive_a_restart() {
    let d = TestDaemon::start().await;
    let tx = legacy_tx().await;
    let base = json!({"displayName": "s", "issuerUrl": tx.issuer()});
    let (id, _) = create(&d, base.clone()).await;
    let s = d.get_stream(&id).await;
    assert_eq!(s["compatibilityProfile"], "SSF_1_0");
    assert_eq!(s["metadataUrl"], "");

    for (field, value, why) in [
        (
            "compatibilityProfile",
            json!("SSE"),
            "must be SSF_1_0 or LEGACY_SSE",
        ),
        ("compatibilityProfile", json!(1), "must be a string"),
        ("metadataUrl", json!("ftp://tr/meta"), ""),
        ("metadataUrl", json!("not a url"), ""),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, v) = d
            .api(Method::POST, "/api/v1/ssf-receiver-streams", Some(body))
            .await;
        assert_eq!(status, 400, "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with(field) && message.contains(why),
            "{message}"
        );
    }
    let (status, v) = update(
        &d,
        &id,
        json!({"compatibilityProfile": "LEGACY_SSE", "metadataUrl": tx.metadata_url()}),
        "compatibilityProfile,metadataUrl",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ssfReceiverStream"]["compatibilityProfile"], "LEGACY_SSE");
    let (status, _) = update(
        &d,
        &id,
        json!({"compatibilityProfile": "X"}),
        "compatibilityProfile",
    )
    .await;
    assert_eq!(status, 400);

    let dir = d.stop().await;
    let config = common::test_config(dir.path());
    let d = TestDaemon::start_in(dir, config).await;
    let s = d.get_stream(&id).await;
    assert_eq!(s["compatibilityProfile"], "LEGACY_SSE");
    assert_eq!(s["metadataUrl"], tx.metadata_url());
}

#[tokio::test]
async fn legacy_sets_are_accepted_only_under_the_profile_and_each_tolerance_is_counted() {
    let d = TestDaemon::start().await;
    let tx = legacy_tx().await;
    let (legacy_id, legacy_token) = create(&d, legacy_stream(&tx, json!({}))).await;
    // The same transmitter under strict SSF 1.0, with the issuer exactly as it announces it.
    let (strict_id, strict_token) = create(
        &d,
        json!({"displayName": "strict", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url()}),
    )
    .await;

    let set = tx.set().sign();
    assert_eq!(tx.set().claims()["aud"], json!([]));
    assert!(tx.set().claims().get("sub_id").is_none());
    assert_eq!(d.push(&legacy_id, &legacy_token, &set).await.status(), 202);
    let events = d.events(&legacy_id).await;
    assert_eq!(events[0]["subjectKeys"], json!(["email:alice@example.com"]));
    let kinds = tolerances(&events[0]);
    for k in [
        "issuer_trailing_slash",
        "subject_in_event",
        "unknown_initiating_entity",
    ] {
        assert!(kinds.contains(&k.to_string()), "{kinds:?}");
    }
    // A second SET: counted again, warned about once.
    assert_eq!(
        d.push(&legacy_id, &legacy_token, &tx.set().sign())
            .await
            .status(),
        202
    );
    let stats = d.stats(&legacy_id).await;
    assert_eq!(stats["tolerancesApplied"]["issuer_trailing_slash"], 2);
    assert_eq!(stats["tolerancesApplied"]["subject_in_event"], 2);
    let text = metrics(&d).await;
    let line =
        format!("ssfd_tolerances_total{{stream=\"{legacy_id}\",kind=\"issuer_trailing_slash\"}} 2");
    assert!(text.contains(&line), "{text}");

    // Strict: the slash is an issuer mismatch; the subject inside the event is tolerated.
    let strict_set = tx.set().iss(tx.issuer().trim_end_matches('/')).sign();
    assert_set_error(
        d.push(&strict_id, &strict_token, &strict_set).await,
        400,
        "invalid_issuer",
    )
    .await;
    assert_eq!(d.push(&strict_id, &strict_token, &set).await.status(), 202);
    assert_eq!(
        tolerances(&d.events(&strict_id).await[0]),
        vec!["unknown_initiating_entity", "subject_in_event"]
    );
    // The SSE verification names no subject: strict SSF 1.0 refuses it.
    let verification = tx.verification_set("", Some("s1")).sign();
    assert_set_error(
        d.push(&strict_id, &strict_token, &verification).await,
        400,
        "invalid_request",
    )
    .await;

    // Never tolerated, whatever the profile: more than one slash, another host, exp.
    for iss in ["https://most-secure.com//", "https://most-secure.co", ""] {
        let bad = tx.set().iss(iss).sign();
        assert_set_error(
            d.push(&legacy_id, &legacy_token, &bad).await,
            400,
            "invalid_issuer",
        )
        .await;
    }
    let expiring = tx.set().claim("exp", json!(4_000_000_000i64)).sign();
    assert_set_error(
        d.push(&legacy_id, &legacy_token, &expiring).await,
        400,
        "invalid_request",
    )
    .await;
    // An audience is still checked when the stream expects one.
    let (aud_id, aud_token) = create(
        &d,
        legacy_stream(
            &tx,
            json!({"expectedAudience": "https://receiver.example.com"}),
        ),
    )
    .await;
    assert_set_error(
        d.push(&aud_id, &aud_token, &tx.set().sign()).await,
        400,
        "invalid_audience",
    )
    .await;
}

#[tokio::test]
async fn legacy_push_registration_verification_and_a_bare_token() {
    let d = daemon_with(|_| {}).await;
    let tx = legacy_tx().await;
    let (id, _) = create(&d, legacy_stream(&tx, json!({}))).await;
    let (status, v) = call(&d, Method::POST, &id, "/register", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ssfReceiverStream"]["transmitterStreamId"], "");
    let create_call = tx.management_calls().remove(0);
    assert_eq!(create_call.method, "POST");
    assert_eq!(
        create_call.body["delivery"]["method"],
        legacy::DELIVERY_PUSH
    );
    // One stream per token: registering again replaces it.
    let (status, v) = call(&d, Method::POST, &id, "/register", None).await;
    assert_eq!(status, 200, "{v}");
    let streams = tx.stream_ids();
    assert_eq!(streams.len(), 1);

    // The transmitter sends the registered header without "Bearer ".
    tx.set_strip_bearer(true);
    let resp = tx.push_registered(&streams[0], &tx.set().sign()).await;
    assert_eq!(resp.status(), 202);
    assert!(tolerances(&d.events(&id).await[0]).contains(&"bare_push_token".to_string()));

    // Verification: the SSE event, matched on its state.
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    let requested = tx.verification_requests();
    let verify_call = tx
        .management_calls()
        .into_iter()
        .rev()
        .find(|c| c.uri.contains("verify"))
        .unwrap();
    assert!(
        verify_call.body.get("stream_id").is_none(),
        "{:?}",
        verify_call.body
    );
    assert!(requested[0].1.is_some());
    for _ in 0..300 {
        if d.get_stream(&id).await["lastVerifiedAt"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(d.get_stream(&id).await["lastVerifiedAt"].is_string());
    let stats = d.stats(&id).await;
    for k in [
        "legacy_delivery_method",
        "config_without_stream_id",
        "legacy_verification",
        "bare_push_token",
    ] {
        assert!(
            stats["tolerancesApplied"][k].as_u64() >= Some(1),
            "{k}: {stats}"
        );
    }
    // An SSE verification with a state nobody asked for is still invalid_state.
    let forged = tx.verification_set("", Some("never-asked")).sign();
    let resp = tx.push_registered(&streams[0], &forged).await;
    assert_set_error(resp, 400, "invalid_state").await;

    // Under SSF 1.0 a bare token is not a bearer token.
    let (strict_id, strict_token) = create(
        &d,
        json!({"displayName": "strict", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url()}),
    )
    .await;
    let resp = ssfd_testkit::push_set_with_header(
        &d.http,
        &d.push_url(&strict_id),
        Some(&strict_token),
        &tx.set().sign(),
    )
    .await
    .unwrap();
    assert_set_error(resp, 401, "authentication_failed").await;
}

#[tokio::test]
async fn legacy_poll_short_polls_and_sends_acks_beside_ack() {
    let d = daemon_with(|_| {}).await;
    let tx = legacy_tx().await;
    let (id, _) = create(
        &d,
        legacy_stream(
            &tx,
            json!({"deliveryMethod": "SSF_DELIVERY_METHOD_POLL", "enabled": false,
                   "pollInterval": "1s"}),
        ),
    )
    .await;
    let (status, v) = call(&d, Method::POST, &id, "/register", None).await;
    assert_eq!(status, 200, "{v}");
    let feed = tx.stream_ids().remove(0);
    assert_eq!(
        v["ssfReceiverStream"]["pollEndpointUrl"],
        tx.poll_url(&feed)
    );
    assert_eq!(
        tx.management_calls()[0].body["delivery"]["method"],
        legacy::DELIVERY_POLL
    );
    let jtis: Vec<String> = (0..3).map(|_| tx.enqueue_set(&feed, &tx.set())).collect();
    let (status, v) = update(&d, &id, json!({"enabled": true}), "enabled").await;
    assert_eq!(status, 200, "{v}");
    until(
        "the legacy transmitter removed every acknowledged SET",
        || tx.queued(&feed) == 0,
    )
    .await;
    assert_eq!(d.events(&id).await.len(), 3);
    let acked = tx.acked();
    assert!(jtis.iter().all(|j| acked.contains(j)));
    for r in tx.poll_requests() {
        assert!(r.return_immediately(), "short polling: {:?}", r.body);
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["ack"], r.body["acks"]);
    }
    // The verification arrives in the feed, under the SSE URI.
    let (status, v) = call(&d, Method::POST, &id, "/verify", None).await;
    assert_eq!(status, 200, "{v}");
    for _ in 0..300 {
        if d.get_stream(&id).await["lastVerifiedAt"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(d.get_stream(&id).await["lastVerifiedAt"].is_string());
    assert_eq!(d.get_stream(&id).await["lastErrorMessage"], "");
    let stats = d.stats(&id).await;
    assert!(
        stats["tolerancesApplied"]["poll_acks"].as_u64() >= Some(1),
        "{stats}"
    );
}

#[tokio::test]
async fn strict_streams_against_a_legacy_transmitter_say_what_to_change() {
    let d = daemon_with(|_| {}).await;
    // An SSE transmitter whose issuer is its own address (with the trailing slash), so that
    // its metadata can be found from the issuer.
    let tx = TestTransmitter::start_with(TransmitterOptions {
        legacy_issuer: Some("{base}/".into()),
        ..TransmitterOptions::legacy()
    })
    .await;
    tx.set_poll_hold(Duration::from_millis(200));
    let bearer = json!({"token": tx.static_token()});
    let (id, _) = create(
        &d,
        json!({"displayName": "s", "issuerUrl": tx.issuer(), "outboundAuthBearer": bearer}),
    )
    .await;
    let (status, v) = call(&d, Method::POST, &id, "/register", None).await;
    assert_eq!(status, 502, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 404")
            && message.contains("LEGACY_SSE")
            && message.contains("metadataUrl"),
        "{message}"
    );
    // LEGACY_SSE looks at the SSE path after the 1.0 path.
    let (status, v) = update(
        &d,
        &id,
        json!({"compatibilityProfile": "LEGACY_SSE"}),
        "compatibilityProfile",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(&d, Method::POST, &id, "/register", None).await;
    assert_eq!(status, 200, "{v}");
    assert!(d.stats(&id).await["tolerancesApplied"]["sse_metadata_path"].as_u64() >= Some(1));

    // A strict POLL stream long-polls; the answer and the way out are in lastErrorMessage.
    let feed = tx.stream_ids().remove(0);
    let (poll_id, _) = create(
        &d,
        json!({"displayName": "p", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url(),
               "deliveryMethod": "SSF_DELIVERY_METHOD_POLL", "pollEndpointUrl": tx.poll_url(&feed),
               "outboundAuthBearer": {"token": tx.static_token()}}),
    )
    .await;
    let mut message = String::new();
    for _ in 0..300 {
        message = d.get_stream(&poll_id).await["lastErrorMessage"]
            .as_str()
            .unwrap()
            .to_string();
        if !message.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        message.contains("HTTP 404")
            && message.contains(legacy::NO_LONG_POLLING)
            && message.contains("LEGACY_SSE"),
        "{message}"
    );
    assert!(!message.contains(&tx.static_token()));
}

#[tokio::test]
async fn claim_tolerances_apply_to_every_profile_and_proprietary_types_follow_the_policy() {
    let d = TestDaemon::start_with(|c| {
        c.policy
            .insert(OKTA_RISK.to_string(), RevocationAction::RevokeAll);
    })
    .await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    let now = ssfd::clock::now_unix();
    let set = tx
        .set()
        .claim("txn", json!(12345))
        .sub_id(subjects::complex([
            ("user", subjects::email("bob@example.com")),
            ("session", json!("ALL")),
        ]))
        .event(
            "session-revoked",
            json!({"event_timestamp": (now - 60) * 1000, "initiating_entity": "okta_workflow",
                   "reason_admin": "plain text"}),
        )
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let e = &d.events(&id).await[0];
    assert_eq!(e["txn"], "12345");
    assert_eq!(e["subjectKeys"], json!(["email:bob@example.com"]));
    assert_eq!(e["outcome"], "revoke");
    assert_eq!(
        tolerances(e),
        vec![
            "numeric_txn",
            "millisecond_timestamp",
            "unknown_initiating_entity",
            "nonstandard_reason",
            "session_all"
        ]
    );
    // The millisecond timestamp was read as such: sessions issued before it are revoked, later
    // ones are not.
    for (issued, revoked) in [(now - 120, true), (now, false)] {
        let (status, v) = d
            .api(
                Method::POST,
                "/api/v1/subjects:check",
                Some(json!({"subject": "email:bob@example.com",
                            "issuedAt": ssfd::clock::rfc3339(issued)})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["revoked"], revoked, "{issued}: {v}");
    }
    // A fractional txn is not a number with one decimal form.
    let bad = tx.set().claim("txn", json!(1.5)).sign();
    assert_set_error(d.push(&id, &token, &bad).await, 400, "invalid_request").await;

    // Okta's proprietary risk event: stored, and routed by [policy] by its URI.
    let okta = tx
        .set()
        .remove_claim("sub_id")
        .event(
            OKTA_RISK,
            json!({"subject": {"user": {"format": "email", "email": "carol@example.com"},
                               "format": "complex"},
                   "current_level": "high", "previous_level": "low",
                   "event_timestamp": now}),
        )
        .sign();
    assert_eq!(d.push(&id, &token, &okta).await.status(), 202);
    let e = &d.events(&id).await[0];
    assert_eq!(e["eventTypes"], json!([OKTA_RISK]));
    assert_eq!(e["outcome"], "revoke", "{e}");
    assert!(e["decision"].as_str().unwrap().contains("[policy]"), "{e}");
    // Risk going down to low never ends sessions, whatever [policy] says.
    let lower = tx
        .set()
        .event(
            OKTA_RISK,
            json!({"current_level": "low", "previous_level": "high", "event_timestamp": now}),
        )
        .sign();
    assert_eq!(d.push(&id, &token, &lower).await.status(), 202);
    assert_eq!(d.events(&id).await[0]["outcome"], "log_only");
}

#[tokio::test]
async fn management_errors_show_the_status_and_a_scrubbed_excerpt() {
    let d = daemon_with(|_| {}).await;
    let tx = TestTransmitter::start().await;
    let (id, _) = d
        .create_stream_for(
            &tx,
            json!({"outboundAuthBearer": {"token": tx.static_token()}}),
        )
        .await;
    tx.fail_management_with_body(
        400,
        r#"{"error":"invalid_request","error_description":"bad credential {authorization}"}"#,
    );
    let (status, v) = call(&d, Method::POST, &id, "/register", None).await;
    assert_eq!(status, 502, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 400") && message.contains("bad credential"),
        "{message}"
    );
    assert!(!message.contains(&tx.static_token()), "{message}");
    assert!(!message.contains(&tx.static_token()[..16]), "{message}");
}
