//! The test transmitter's management API, token endpoint and poll endpoints, driven over HTTP
//! the way a receiver would.

use std::time::Duration;

use serde_json::{json, Value};
use ssfd_testkit::{EndpointPaths, TestTransmitter, TransmitterOptions};

const POLL: &str = "urn:ietf:rfc:8936";
const PUSH: &str = "urn:ietf:rfc:8935";

async fn send(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = ssfd_testkit::http_client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn token(tx: &TestTransmitter, secret: &str) -> (u16, Value) {
    let (id, _) = tx.client_credentials();
    let resp = ssfd_testkit::http_client()
        .post(tx.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret),
            ("scope", "ssf.manage ssf.read"),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn metadata_names_the_management_endpoints_of_the_chosen_style() {
    let okta = TestTransmitter::start_with(TransmitterOptions {
        paths: Some(EndpointPaths::okta()),
        ..Default::default()
    })
    .await;
    let meta = okta.metadata();
    assert_eq!(
        meta["configuration_endpoint"],
        format!("{}/api/v1/ssf/stream", okta.base_url())
    );
    assert_eq!(
        meta["verification_endpoint"],
        format!("{}/api/v1/ssf/stream/verification", okta.base_url())
    );
    let sailpoint = TestTransmitter::start().await;
    assert_eq!(
        sailpoint.metadata()["status_endpoint"],
        format!("{}/ssf/streams/status", sailpoint.base_url())
    );
}

#[tokio::test]
async fn tokens_are_issued_to_the_client_and_refused_once_expired() {
    let tx = TestTransmitter::start().await;
    tx.set_token_lifetime(Duration::from_secs(1));
    let (_, secret) = tx.client_credentials();
    assert_eq!(token(&tx, "wrong").await.0, 401);
    let (status, t) = token(&tx, &secret).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 1);
    let access = t["access_token"].as_str().unwrap().to_string();
    let url = tx.configuration_endpoint();
    let get = reqwest::Method::GET;
    assert_eq!(send(get.clone(), &url, Some(&access), None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, headers, _) = send(get.clone(), &url, Some(&access), None).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(tx.tokens_issued(), 1);
    assert_eq!(send(get, &url, None, None).await.0, 401);
}

#[tokio::test]
async fn streams_are_created_read_replaced_and_deleted() {
    let tx = TestTransmitter::start().await;
    let auth = tx.static_token();
    let url = tx.configuration_endpoint();
    let (status, _, created) = send(
        reqwest::Method::POST,
        &url,
        Some(&auth),
        Some(json!({"events_requested": [
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
            "urn:example:unsupported"]})),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["stream_id"].as_str().unwrap().to_string();
    // No delivery: poll, with an endpoint the transmitter chose.
    assert_eq!(created["delivery"]["method"], POLL);
    assert_eq!(created["delivery"]["endpoint_url"], tx.poll_url(&id));
    assert_eq!(created["iss"], tx.issuer());
    assert_eq!(
        created["events_delivered"],
        json!(["https://schemas.openid.net/secevent/caep/event-type/session-revoked"])
    );
    let (_, _, list) = send(reqwest::Method::GET, &url, Some(&auth), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let one = format!("{url}?stream_id={id}");
    let (_, _, single) = send(reqwest::Method::GET, &one, Some(&auth), None).await;
    assert_eq!(single["stream_id"], id.as_str());

    let (status, _, replaced) = send(
        reqwest::Method::PUT,
        &url,
        Some(&auth),
        Some(json!({"stream_id": id, "delivery": {"method": PUSH,
            "endpoint_url": "http://127.0.0.1:9/push", "authorization_header": "Bearer x"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(replaced["delivery"]["method"], PUSH);
    assert!(replaced["delivery"].get("authorization_header").is_none());
    assert_eq!(replaced["events_requested"], json!([]));
    assert_eq!(
        tx.stream_authorization_header(&id).as_deref(),
        Some("Bearer x")
    );

    tx.set_one_stream_per_client(true);
    let (status, _, _) = send(reqwest::Method::POST, &url, Some(&auth), Some(json!({}))).await;
    assert_eq!(status, 409);
    tx.set_config_iss(Some("https://elsewhere.example".into()));
    let (_, _, foreign) = send(reqwest::Method::GET, &one, Some(&auth), None).await;
    assert_eq!(foreign["iss"], "https://elsewhere.example");

    assert_eq!(
        send(reqwest::Method::DELETE, &one, Some(&auth), None)
            .await
            .0,
        204
    );
    assert_eq!(
        send(reqwest::Method::DELETE, &one, Some(&auth), None)
            .await
            .0,
        404
    );
    assert!(tx.stream_ids().is_empty());
}

#[tokio::test]
async fn status_and_verification() {
    let tx = TestTransmitter::start().await;
    tx.set_poll_hold(Duration::from_millis(100));
    let auth = tx.static_token();
    let id = tx.create_stream(json!({"method": POLL}));
    let status_url = tx.status_endpoint();
    let (status, _, v) = send(
        reqwest::Method::POST,
        &status_url,
        Some(&auth),
        Some(json!({"stream_id": id, "status": "paused", "reason": "why not"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"stream_id": id, "status": "paused", "reason": "why not"})
    );
    let (_, _, v) = send(
        reqwest::Method::GET,
        &format!("{status_url}?stream_id={id}"),
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(v["status"], "paused");

    tx.set_min_verification_interval(Some(60));
    let verify = tx.verification_endpoint();
    let body = json!({"stream_id": id, "state": "s-1"});
    let (status, _, _) = send(
        reqwest::Method::POST,
        &verify,
        Some(&auth),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 204);
    let (status, headers, _) = send(reqwest::Method::POST, &verify, Some(&auth), Some(body)).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    // Paused: the verification waits in the queue.
    let poll = tx.poll_url(&id);
    let (_, _, answer) = send(
        reqwest::Method::POST,
        &poll,
        Some(&auth),
        Some(json!({"returnImmediately": true})),
    )
    .await;
    assert_eq!(answer["sets"], json!({}));
    tx.set_stream_status(&id, "enabled", None);
    let (_, _, answer) = send(reqwest::Method::POST, &poll, Some(&auth), Some(json!({}))).await;
    let sets = answer["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1);
    let token = sets.values().next().unwrap().as_str().unwrap();
    let claims = tx_claims(token);
    assert_eq!(
        claims["events"]["https://schemas.openid.net/secevent/ssf/event-type/verification"]
            ["state"],
        "s-1"
    );
    assert_eq!(claims["sub_id"], json!({"format": "opaque", "id": id}));
}

fn tx_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn poll_pages_records_acks_and_errors_and_can_fail() {
    let tx = TestTransmitter::start().await;
    tx.set_poll_hold(Duration::from_millis(100));
    let auth = tx.static_token();
    let url = tx.poll_url("feed");
    let jtis: Vec<String> = (0..3).map(|_| tx.enqueue_set("feed", &tx.set())).collect();
    let post = |body: Value| send(reqwest::Method::POST, &url, Some(&auth), Some(body));
    let (_, _, a) = post(json!({"maxEvents": 2})).await;
    assert_eq!(a["sets"].as_object().unwrap().len(), 2);
    assert_eq!(a["moreAvailable"], true);
    // Unacknowledged SETs come again.
    let (_, _, a) = post(json!({"maxEvents": 2})).await;
    assert_eq!(a["sets"].as_object().unwrap().len(), 2);
    let (_, _, a) = post(json!({
        "ack": [jtis[0]],
        "setErrs": {jtis[1].clone(): {"err": "invalid_key", "description": "no"}},
        "maxEvents": 5,
    }))
    .await;
    assert_eq!(a["sets"].as_object().unwrap().len(), 1);
    assert_eq!(a["moreAvailable"], false);
    assert_eq!(tx.acked(), vec![jtis[0].clone()]);
    assert_eq!(tx.set_errs()[&jtis[1]]["err"], "invalid_key");
    assert_eq!(tx.queued("feed"), 1);
    // Nothing left: a long poll is held, then answered empty.
    let (_, _, a) = post(json!({"ack": [jtis[2]]})).await;
    assert_eq!(a["sets"], json!({}));

    tx.fail_polls_with_retry_after(503, Duration::from_secs(60), 7);
    let (status, headers, _) = post(json!({})).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "7");
    tx.fail_polls(503, Duration::ZERO);
    assert_eq!(post(json!({"returnImmediately": true})).await.0, 200);
    assert_eq!(
        send(reqwest::Method::POST, &url, None, Some(json!({})))
            .await
            .0,
        401
    );
    let requests = tx.poll_requests();
    assert_eq!(requests.len(), 7);
    assert_eq!(requests[2].acks(), vec![jtis[0].clone()]);
    assert_eq!(requests[6].status, 401);
}
