//! The pre-1.0 SSE transmitter mode, driven over HTTP: every shape it is there to reproduce.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use ssfd_testkit::{legacy, subjects, TestTransmitter, TransmitterOptions};

async fn send(
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    method: reqwest::Method,
) -> (u16, Value) {
    let mut req = ssfd_testkit::http_client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn access_token(tx: &TestTransmitter) -> String {
    let (id, secret) = tx.client_credentials();
    let v: Value = ssfd_testkit::http_client()
        .post(tx.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn metadata_lives_at_the_sse_path_with_a_constant_issuer() {
    let tx = TestTransmitter::start_with(TransmitterOptions {
        issuer_path: Some("tenant".into()),
        ..TransmitterOptions::legacy()
    })
    .await;
    assert_eq!(tx.issuer(), legacy::DEFAULT_ISSUER);
    assert_eq!(
        tx.metadata_url(),
        format!("{}/.well-known/sse-configuration/tenant", tx.base_url())
    );
    let (status, meta) = send(&tx.metadata_url(), None, None, reqwest::Method::GET).await;
    assert_eq!(status, 200);
    assert_eq!(meta["issuer"], "https://most-secure.com/");
    assert_eq!(
        meta["delivery_methods_supported"],
        json!([legacy::DELIVERY_PUSH, legacy::DELIVERY_POLL])
    );
    let ssf = format!("{}/.well-known/ssf-configuration/tenant", tx.base_url());
    assert_eq!(send(&ssf, None, None, reqwest::Method::GET).await.0, 404);

    let own = TestTransmitter::start_with(TransmitterOptions {
        legacy_issuer: Some("{base}/".into()),
        ..TransmitterOptions::legacy()
    })
    .await;
    assert_eq!(own.issuer(), format!("{}/", own.base_url()));
}

#[tokio::test]
async fn sets_carry_the_subject_inside_the_event_and_no_txn_toe_or_audience() {
    let tx = TestTransmitter::start_with(TransmitterOptions::legacy()).await;
    let set = tx
        .set()
        .txn("dropped")
        .toe(5)
        .sub_id(subjects::email("bob@example.com"))
        .sign();
    let c = claims_of(&set);
    assert_eq!(c["iss"], legacy::DEFAULT_ISSUER);
    assert_eq!(c["aud"], json!([]));
    for absent in ["sub_id", "txn", "toe"] {
        assert!(c.get(absent).is_none(), "{absent}: {c}");
    }
    let (_, event) = c["events"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(event["subject"], subjects::email("bob@example.com"));
    assert_eq!(event["initiating_entity"], legacy::INITIATING_ENTITY);

    let v = claims_of(&tx.verification_set("ignored", Some("st")).sign());
    assert_eq!(v["events"][legacy::VERIFICATION], json!({"state": "st"}));
    assert!(v.get("sub_id").is_none());
}

#[tokio::test]
async fn one_stream_per_token_configured_without_stream_id_and_replaced_by_post() {
    let tx = TestTransmitter::start_with(TransmitterOptions::legacy()).await;
    let url = tx.configuration_endpoint();
    let token = tx.static_token();
    let post = reqwest::Method::POST;
    // The RFC URNs are refused.
    for urn in ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"] {
        let body = json!({"delivery": {"method": urn, "endpoint_url": "https://rx/push"}});
        assert_eq!(
            send(&url, Some(&token), Some(body), post.clone()).await.0,
            400
        );
    }
    let body = json!({"delivery": {"method": legacy::DELIVERY_POLL},
                      "events_requested": [ssfd_testkit::events::SESSION_REVOKED],
                      "description": "first"});
    let (status, cfg) = send(&url, Some(&token), Some(body), post.clone()).await;
    assert_eq!(status, 200, "{cfg}");
    assert!(cfg.get("stream_id").is_none(), "{cfg}");
    assert_eq!(cfg["aud"], json!([]));
    assert_eq!(cfg["delivery"]["method"], legacy::DELIVERY_POLL);
    let ids = tx.stream_ids();
    assert_eq!(ids.len(), 1);
    // POST again: the same stream, every omitted field now null.
    let body = json!({"delivery": {"method": legacy::DELIVERY_POLL}});
    let (status, cfg) = send(&url, Some(&token), Some(body), post.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(tx.stream_ids(), ids);
    assert_eq!(cfg["description"], Value::Null);
    assert_eq!(cfg["events_requested"], json!([]));
    let (_, read) = send(&url, Some(&token), None, reqwest::Method::GET).await;
    assert_eq!(read, cfg);
    // Another credential, another stream.
    let other = access_token(&tx).await;
    assert_eq!(
        send(&url, Some(&other), None, reqwest::Method::GET).await.0,
        404
    );
    let body = json!({"delivery": {"method": legacy::DELIVERY_POLL}});
    assert_eq!(
        send(&url, Some(&other), Some(body), post.clone()).await.0,
        200
    );
    assert_eq!(tx.stream_ids().len(), 2);
    // Verification names no stream; the event goes to the token's feed.
    let (status, _) = send(
        &tx.verification_endpoint(),
        Some(&token),
        Some(json!({"state": "abc"})),
        post,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(tx.queued(&ids[0]), 1);
}

#[tokio::test]
async fn polls_read_acks_and_refuse_long_polling() {
    let tx = TestTransmitter::start_with(TransmitterOptions::legacy()).await;
    tx.set_poll_hold(Duration::from_millis(100));
    let token = tx.static_token();
    let jti = tx.enqueue_set("f", &tx.set());
    let url = tx.poll_url("f");
    let post = reqwest::Method::POST;
    let (status, body) = send(
        &url,
        Some(&token),
        Some(json!({"maxEvents": 5})),
        post.clone(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], legacy::NO_LONG_POLLING);
    let short = json!({"maxEvents": 5, "returnImmediately": true});
    let (status, body) = send(&url, Some(&token), Some(short), post.clone()).await;
    assert_eq!(status, 200);
    assert!(body["sets"].get(&jti).is_some());
    // `ack` is not read: the SET stays queued.
    let with_ack = json!({"ack": [jti], "returnImmediately": true});
    send(&url, Some(&token), Some(with_ack), post.clone()).await;
    assert_eq!(tx.queued("f"), 1);
    let with_acks = json!({"acks": [jti], "returnImmediately": true});
    send(&url, Some(&token), Some(with_acks), post).await;
    assert_eq!(tx.queued("f"), 0);
    assert_eq!(tx.acked(), vec![jti]);
}
