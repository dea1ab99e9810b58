//! The push endpoint (RFC 8935) end to end: every row of the answer table in docs/push.md#answers and every validation
//! code, against a real daemon and a real transmitter on loopback. Numbers in comments refer to
//! docs/receiver-checklist.md.

mod common;

use common::{assert_set_error, Mode, TestDaemon};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd_testkit::{events, subjects, KeyKind, TestTransmitter};

async fn setup() -> (TestDaemon, TestTransmitter, String, String) {
    setup_in(Mode::Ssf).await
}

/// A daemon and a PUSH stream for a transmitter of this mode.
async fn setup_in(mode: Mode) -> (TestDaemon, TestTransmitter, String, String) {
    let d = TestDaemon::start().await;
    let tx = mode.transmitter().await;
    let (id, token) = d.create_stream_for(&tx, mode.stream_fields()).await;
    (d, tx, id, token)
}

async fn stored_count(d: &TestDaemon, id: &str) -> usize {
    d.events(id).await.len()
}

both_modes!(valid_set_is_accepted_with_empty_202_and_stored);
async fn valid_set_is_accepted_with_empty_202_and_stored(mode: Mode) {
    // 36, 38
    let (d, tx, id, token) = setup_in(mode).await;
    let set = tx.set().txn("t-1").sign();
    let resp = d.push(&id, &token, &set).await;
    assert_eq!(resp.status(), 202);
    assert!(resp.bytes().await.unwrap().is_empty());
    let events = d.events(&id).await;
    assert_eq!(events.len(), 1);
    // A legacy transmitter sends no txn.
    let txn = if mode == Mode::Ssf {
        json!("t-1")
    } else {
        Value::Null
    };
    assert_eq!(events[0]["txn"], txn);
    assert_eq!(events[0]["subjectKeys"], json!(["email:alice@example.com"]));
    let stats = d.stats(&id).await;
    assert_eq!(stats["eventsReceivedCount"], 1);
    assert!(stats["lastEventReceivedAt"].is_string());
}

both_modes!(duplicate_jti_is_accepted_again_and_changes_nothing);
async fn duplicate_jti_is_accepted_again_and_changes_nothing(mode: Mode) {
    // 39
    let (d, tx, id, token) = setup_in(mode).await;
    let set = tx.set().jti("dup-1").sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    // Even a different token body with the same jti is a duplicate.
    let other = tx
        .set()
        .jti("dup-1")
        .event("credential-change", json!({"change_type": "create"}))
        .sign();
    assert_eq!(d.push(&id, &token, &other).await.status(), 202);
    assert_eq!(stored_count(&d, &id).await, 1);
    assert_eq!(d.stats(&id).await["eventsReceivedCount"], 1);
}

#[tokio::test]
async fn authentication_failures_are_401_with_www_authenticate() {
    // 40
    let (d, tx, id, _token) = setup().await;
    let set = tx.set().sign();
    let desc = assert_set_error(d.push(&id, "", &set).await, 401, "authentication_failed").await;
    assert!(!desc.is_empty());
    assert_set_error(
        d.push(&id, "wrong-token", &set).await,
        401,
        "authentication_failed",
    )
    .await;
    // Basic auth is not a bearer token.
    let resp = d
        .http
        .post(d.push_url(&id))
        .header("content-type", "application/secevent+jwt")
        .basic_auth("u", Some("p"))
        .body(set.clone())
        .send()
        .await
        .unwrap();
    assert_set_error(resp, 401, "authentication_failed").await;
    assert_eq!(stored_count(&d, &id).await, 0);
    // Rejected before authentication: not counted as a rejected SET of this stream.
    assert_eq!(d.stats(&id).await["eventsFailedCount"], 0);
}

#[tokio::test]
async fn unknown_and_deleted_streams_are_404() {
    let (d, tx, id, token) = setup().await;
    let set = tx.set().sign();
    assert_eq!(d.push("no-such-stream", &token, &set).await.status(), 404);
    let (status, _) = d
        .api(
            Method::DELETE,
            &format!("/api/v1/ssf-receiver-streams/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(d.push(&id, &token, &set).await.status(), 404);
}

#[tokio::test]
async fn media_type_rules() {
    let (d, tx, id, token) = setup().await;
    let send = |ct: Option<&'static str>, body: String| {
        let mut req = d.http.post(d.push_url(&id)).bearer_auth(&token).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    for ct in [
        "application/secevent+jwt",
        "Application/SecEvent+JWT",
        "application/secevent+jwt; charset=utf-8",
        "application/jwt",
    ] {
        let resp = send(Some(ct), tx.set().sign()).await.unwrap();
        assert_eq!(resp.status(), 202, "{ct}");
    }
    for ct in [Some("application/json"), Some("text/plain"), None] {
        let resp = send(ct, tx.set().sign()).await.unwrap();
        assert_eq!(resp.status(), 415, "{ct:?}");
    }
    assert_eq!(stored_count(&d, &id).await, 4);
}

#[tokio::test]
async fn oversized_bodies_are_413_with_or_without_length() {
    let (d, _tx, id, token) = setup().await;
    let big = "a".repeat(64 * 1024 + 1);
    let resp = d.push(&id, &token, &big).await;
    assert_eq!(resp.status(), 413);
    // Chunked: no Content-Length, the limit is enforced while reading.
    let status = chunked_push(&d, &id, &token, 20, 8 * 1024).await;
    assert_eq!(status, 413);
    assert_eq!(stored_count(&d, &id).await, 0);
}

/// Sends a chunked request by hand (no Content-Length) and returns the status code.
async fn chunked_push(d: &TestDaemon, id: &str, token: &str, chunks: usize, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(d.daemon.push_addr)
        .await
        .unwrap();
    let head = format!(
        "POST /ssf/push/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/secevent+jwt\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{size:x}\r\n{}\r\n", "a".repeat(size));
    for _ in 0..chunks {
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before reading everything
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn malformed_envelopes_are_invalid_request() {
    // 17, 18
    let (d, tx, id, token) = setup().await;
    let claims = tx.set().claims();
    let valid_header = json!({"typ": "secevent+jwt", "alg": "RS256", "kid": tx.current_kid()});
    let b64 = |v: &str| ssfd_testkit::jws::b64(v.as_bytes());
    let cases = vec![
        "not a jws".to_string(),
        "a.b".to_string(),
        "a.b.c.d".to_string(),
        "!!!.###.$$$".to_string(),
        format!(
            "{}.{}.{}",
            b64("{not json"),
            b64(&claims.to_string()),
            b64("sig")
        ),
        format!(
            "{}.{}.{}",
            b64(&valid_header.to_string()),
            b64("[1,2]"),
            b64("sig")
        ),
        // typ missing, typ wrong
        tx.sign_with_header(json!({"alg": "RS256", "kid": tx.current_kid()}), &claims),
        tx.sign_with_header(
            json!({"typ": "JWT", "alg": "RS256", "kid": tx.current_kid()}),
            &claims,
        ),
    ];
    for body in cases {
        assert_set_error(d.push(&id, &token, &body).await, 400, "invalid_request").await;
    }
    for typ in ["SECEVENT+JWT", "application/secevent+jwt"] {
        let set = tx.sign_with_header(
            json!({"typ": typ, "alg": "RS256", "kid": tx.current_kid()}),
            &tx.set().claims(),
        );
        assert_eq!(d.push(&id, &token, &set).await.status(), 202, "{typ}");
    }
    assert_eq!(stored_count(&d, &id).await, 2);
    // Rejections count as failures and are recorded on the stream.
    let stats = d.stats(&id).await;
    assert_eq!(stats["eventsFailedCount"], 8);
    assert!(stats["lastErrorMessage"]
        .as_str()
        .unwrap()
        .starts_with("invalid_request"));
    assert!(stats["lastErrorAt"].is_string());
}

// Never tolerated in any profile: signature, alg, key.
both_modes!(key_problems_are_invalid_key);
async fn key_problems_are_invalid_key(mode: Mode) {
    // 19, 20
    let (d, tx, id, token) = setup_in(mode).await;
    let claims = tx.set().claims();
    assert_set_error(
        d.push(&id, &token, &tx.unsigned_none(&claims)).await,
        400,
        "invalid_key",
    )
    .await;
    let secret = [7u8; 32];
    assert_set_error(
        d.push(&id, &token, &tx.sign_hs256(&secret, &claims)).await,
        400,
        "invalid_key",
    )
    .await;
    assert_set_error(
        d.push(&id, &token, &tx.sign_with_unpublished_key(&claims))
            .await,
        400,
        "invalid_key",
    )
    .await;
    // Bad signature: flip a character of the signature.
    let good = tx.sign_claims(&claims);
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let forged = format!("{head}.{}", sig.into_iter().collect::<String>());
    assert_set_error(d.push(&id, &token, &forged).await, 400, "invalid_key").await;
    // A payload swapped under a valid signature.
    let other = tx.set().jti("swapped").claims();
    let parts: Vec<&str> = good.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        ssfd_testkit::jws::b64(other.to_string().as_bytes()),
        parts[2]
    );
    assert_set_error(d.push(&id, &token, &swapped).await, 400, "invalid_key").await;
    assert_eq!(stored_count(&d, &id).await, 0);
}

both_modes!(rsa_keys_under_2048_bits_are_refused);
async fn rsa_keys_under_2048_bits_are_refused(mode: Mode) {
    // 19
    let d = TestDaemon::start().await;
    let tx = mode.transmitter().await;
    tx.add_key(KeyKind::Rs256Bits(1024), "small");
    let (id, token) = d.create_stream_for(&tx, mode.stream_fields()).await;
    let small = tx.set().key("small").sign();
    let desc = assert_set_error(d.push(&id, &token, &small).await, 400, "invalid_key").await;
    assert!(desc.contains("2048"), "{desc}");
    assert_eq!(stored_count(&d, &id).await, 0);
}

both_modes!(other_algorithms_are_accepted);
async fn other_algorithms_are_accepted(mode: Mode) {
    let (d, tx, id, token) = setup_in(mode).await;
    tx.add_key(KeyKind::Rs256Bits(4096), "rsa4096");
    let kinds = [
        (KeyKind::Rs256Bits(4096), "rsa4096"),
        (KeyKind::Es256, "ec256"),
        (KeyKind::Es384, "ec384"),
        (KeyKind::EdDsa, "ed"),
        (KeyKind::Ps256, "ps"),
    ];
    // Published before the first fetch: one refresh per cooldown would not pick up four
    // rotations in a row.
    for (kind, kid) in &kinds[1..] {
        tx.add_key(*kind, kid);
    }
    for (_, kid) in kinds {
        let set = tx.set().key(kid).sign();
        assert_eq!(d.push(&id, &token, &set).await.status(), 202, "{kid}");
    }
}

#[tokio::test]
async fn issuer_and_audience_checks_do_not_echo_expected_values() {
    // 21, 22
    let (d, tx, id, token) = setup().await;
    let set = tx.set().iss("https://evil.example.com").sign();
    let desc = assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_issuer").await;
    assert!(!desc.contains(&tx.issuer()));
    let set = tx.set().remove_claim("iss").sign();
    assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_issuer").await;
    let set = tx.set().aud("https://someone-else.example.com").sign();
    let desc = assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_audience").await;
    assert!(!desc.contains(&tx.audience()));
    let set = tx
        .set()
        .aud(json!(["https://a.example.com", "https://b.example.com"]))
        .sign();
    assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_audience").await;
    let set = tx.set().remove_claim("aud").sign();
    assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_audience").await;
    // aud as an array that contains ours is fine.
    let set = tx
        .set()
        .aud(json!(["https://a.example.com", tx.audience()]))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert_eq!(stored_count(&d, &id).await, 1);
}

#[tokio::test]
async fn audience_is_not_checked_when_not_configured() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d
        .create_stream_for(&tx, json!({"expectedAudience": ""}))
        .await;
    let set = tx.set().aud("https://anyone.example.com").sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
}

#[tokio::test]
async fn claim_rules_are_invalid_request() {
    // 23, 24
    let (d, tx, id, token) = setup().await;
    let cases = vec![
        tx.set().remove_claim("jti").sign(),
        tx.set().claim("jti", json!(42)).sign(),
        tx.set().remove_claim("iat").sign(),
        tx.set().claim("iat", json!("yesterday")).sign(),
        tx.set().remove_claim("events").sign(),
        tx.set().claim("events", json!({})).sign(),
        tx.set().claim("events", json!([])).sign(),
        tx.set()
            .claim("events", json!({events::uri("session-revoked"): "revoked"}))
            .sign(),
        tx.set().claim("sub", json!("alice")).sign(),
        tx.set().claim("exp", json!(9_999_999_999i64)).sign(),
        tx.set().sub_id(json!({"format": "email"})).sign(),
        tx.set()
            .sub_id(json!({"format": "email", "email": "not-an-address"}))
            .sign(),
        tx.set().sub_id(json!("alice@example.com")).sign(),
        tx.set().remove_claim("sub_id").sign(),
    ];
    for (i, set) in cases.into_iter().enumerate() {
        let resp = d.push(&id, &token, &set).await;
        assert_eq!(resp.status(), 400, "case {i}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["err"], "invalid_request", "case {i}: {body}");
    }
    assert_eq!(stored_count(&d, &id).await, 0);
}

#[tokio::test]
async fn unknown_claims_and_event_types_are_accepted() {
    // 25, 26
    let (d, tx, id, token) = setup().await;
    let set = tx
        .set()
        .claim("x-vendor", json!({"anything": [1, 2]}))
        .event(
            "https://vendor.example.com/event/custom",
            json!({"foo": "bar"}),
        )
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let events = d.events(&id).await;
    assert_eq!(events[0]["outcome"], "log_only");
}

#[tokio::test]
async fn legacy_subject_inside_the_event_is_used() {
    // 29
    let (d, tx, id, token) = setup().await;
    let set = tx
        .set()
        .remove_claim("sub_id")
        .event(
            "account-disabled",
            json!({"subject": {"subject_type": "iss_sub", "iss": "https://idp.example.com", "sub": "42"}}),
        )
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let events = d.events(&id).await;
    assert_eq!(
        events[0]["subjectKeys"],
        json!(["iss_sub:https://idp.example.com|42"])
    );
}

#[tokio::test]
async fn complex_and_alias_subjects_are_keyed() {
    // 30
    let (d, tx, id, token) = setup().await;
    let set = tx
        .set()
        .sub_id(subjects::complex([
            ("user", subjects::email("Bob@Example.com")),
            ("session", subjects::opaque("s-1")),
        ]))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let set = tx
        .set()
        .sub_id(subjects::aliases(vec![
            subjects::email("carol@example.com"),
            subjects::phone_number("+12065550100"),
        ]))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let events = d.events(&id).await;
    assert_eq!(
        events[0]["subjectKeys"],
        json!(["email:carol@example.com", "phone_number:+12065550100"])
    );
    assert_eq!(
        events[1]["subjectKeys"],
        json!(["email:bob@example.com", "session:opaque:s-1"])
    );
}

#[tokio::test]
async fn unsolicited_verification_sets_last_verified_at() {
    // 34
    let (d, tx, id, token) = setup().await;
    assert!(d.get_stream(&id).await.get("lastVerifiedAt").is_none());
    let set = tx.verification_set("any-stream-id", None).sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert!(d.get_stream(&id).await["lastVerifiedAt"].is_string());
    let stats = d.stats(&id).await;
    assert!(stats["lastVerifiedAt"].is_string());
    assert_eq!(stats["eventsReceivedCount"], 1);
    assert_eq!(d.events(&id).await[0]["outcome"], "control");
}

#[tokio::test]
async fn verification_with_unrequested_state_is_invalid_state() {
    // 33
    let (d, tx, id, token) = setup().await;
    let set = tx
        .verification_set("x", Some("a-state-nobody-asked-for"))
        .sign();
    assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_state").await;
    assert!(d.get_stream(&id).await.get("lastVerifiedAt").is_none());
    assert_eq!(stored_count(&d, &id).await, 0);
}

#[tokio::test]
async fn verification_must_name_the_registered_stream() {
    // 32
    let (d, tx, id, token) = setup().await;
    let (status, _) = d
        .api(
            Method::POST,
            &format!("/api/v1/ssf-receiver-streams/{id}"),
            Some(json!({"ssfReceiverStream": {"transmitterStreamId": "tx-stream-1"}, "updateMask": "transmitterStreamId"})),
        )
        .await;
    assert_eq!(status, 200);
    let wrong = tx.verification_set("tx-stream-2", None).sign();
    assert_set_error(d.push(&id, &token, &wrong).await, 400, "invalid_request").await;
    let not_opaque = tx
        .verification_set("tx-stream-1", None)
        .sub_id(subjects::email("a@b.c"))
        .sign();
    assert_set_error(
        d.push(&id, &token, &not_opaque).await,
        400,
        "invalid_request",
    )
    .await;
    let right = tx.verification_set("tx-stream-1", None).sign();
    assert_eq!(d.push(&id, &token, &right).await.status(), 202);
}

#[tokio::test]
async fn stream_updated_records_transmitter_status() {
    // 35
    let (d, tx, id, token) = setup().await;
    let set = tx
        .stream_updated_set("s", "paused", Some("maintenance"))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let s = d.get_stream(&id).await;
    assert_eq!(s["transmitterStatus"], "paused");
    assert_eq!(s["transmitterStatusReason"], "maintenance");
    let stats = d.stats(&id).await;
    assert_eq!(stats["transmitterStatus"], "paused");
    let set = tx.stream_updated_set("s", "enabled", None).sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert_eq!(d.get_stream(&id).await["transmitterStatus"], "enabled");
    let bad = tx.stream_updated_set("s", "sleeping", None).sign();
    assert_set_error(d.push(&id, &token, &bad).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn rotated_transmitter_key_is_picked_up_with_one_refresh() {
    // 20: one forced refresh on an unknown kid, rate limited by refresh_cooldown.
    let (d, tx, id, token) = setup().await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    let fetches = tx.jwks_fetches();
    tx.add_key(KeyKind::Rs256, "k2");
    tx.use_key("k2");
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    assert_eq!(tx.jwks_fetches(), fetches + 1);
    // Unknown kids within the cooldown do not trigger more fetches. No refresh ran for them,
    // and the key may have been published since: 503 with the rest of the cooldown as
    // Retry-After, not a final 400.
    for _ in 0..5 {
        let set = tx.sign_with_unpublished_key(&tx.set().claims());
        let resp = d.push(&id, &token, &set).await;
        assert_eq!(resp.status(), 503);
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
    }
    assert_eq!(tx.jwks_fetches(), fetches + 1);
    // The old key is still trusted while published.
    assert_eq!(
        d.push(&id, &token, &tx.set().key("k1").sign())
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn cached_keys_survive_a_jwks_outage_and_unknown_keys_then_fail() {
    let (d, tx, id, token) = setup().await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    tx.set_jwks_status(500);
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    // An unknown kid cannot be judged while the keys cannot be fetched: 503, deliver again
    // later (docs/push.md#answers), and nothing stored.
    let set = tx.sign_with_unpublished_key(&tx.set().claims());
    let resp = d.push(&id, &token, &set).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(stored_count(&d, &id).await, 2);
}

#[tokio::test]
async fn unreachable_keys_answer_503_and_store_nothing() {
    let cooldown = std::time::Duration::from_millis(200);
    let d = TestDaemon::start_with(|c| c.jwks.refresh_cooldown = cooldown).await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    tx.set_jwks_status(500);
    let resp = d.push(&id, &token, &tx.set().sign()).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(stored_count(&d, &id).await, 0);
    assert!(d.get_stream(&id).await["lastErrorMessage"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    // Within the cooldown the failure is answered again without another fetch.
    let fetches = tx.jwks_fetches();
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 503);
    assert_eq!(tx.jwks_fetches(), fetches);
    // The transmitter retries once the keys are back.
    tx.set_jwks_status(200);
    tokio::time::sleep(cooldown * 2).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn keys_are_discovered_from_the_issuer_metadata() {
    // 1, 2, 4
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start_with(ssfd_testkit::TransmitterOptions {
        issuer_path: Some("tenant1".into()),
        ..Default::default()
    })
    .await;
    let (id, token) = d.create_stream_for(&tx, json!({"jwksUrl": ""})).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    assert_eq!(tx.metadata_fetches(), 1);
}

#[tokio::test]
async fn metadata_with_a_foreign_issuer_is_not_used() {
    // 2
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    tx.set_metadata_issuer(Some("https://impostor.example.com".into()));
    let (id, token) = d.create_stream_for(&tx, json!({"jwksUrl": ""})).await;
    let desc = assert_set_error(
        d.push(&id, &token, &tx.set().sign()).await,
        400,
        "invalid_key",
    )
    .await;
    assert!(desc.contains("metadata could not be validated"), "{desc}");
    let s = d.get_stream(&id).await;
    assert!(s["lastErrorMessage"].as_str().unwrap().contains("metadata"));
    assert!(s["lastErrorAt"].is_string());
    assert_eq!(stored_count(&d, &id).await, 0);
}

#[tokio::test]
async fn rotated_push_token_overlap() {
    let (d, tx, id, old) = setup().await;
    let (status, v) = d
        .api(
            Method::POST,
            &format!("/api/v1/ssf-receiver-streams/{id}/rotate-push-token"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let new = v["pushAuthTokenPlaintext"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(d.push(&id, &new, &tx.set().sign()).await.status(), 202);
    assert_eq!(d.push(&id, &old, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn old_push_token_stops_working_after_the_overlap() {
    let d =
        TestDaemon::start_with(|c| c.server.push_token_overlap = std::time::Duration::ZERO).await;
    let tx = TestTransmitter::start().await;
    let (id, old) = d.create_stream_for(&tx, json!({})).await;
    let (_, v) = d
        .api(
            Method::POST,
            &format!("/api/v1/ssf-receiver-streams/{id}/rotate-push-token"),
            None,
        )
        .await;
    let new = v["pushAuthTokenPlaintext"].as_str().unwrap().to_string();
    assert_set_error(
        d.push(&id, &old, &tx.set().sign()).await,
        401,
        "authentication_failed",
    )
    .await;
    assert_eq!(d.push(&id, &new, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn disabled_stream_still_stores() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({"enabled": false})).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    let events = d.events(&id).await;
    assert_eq!(events[0]["outcome"], "stored");
}

#[tokio::test]
async fn poll_streams_have_no_push_endpoint() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d
        .create_stream_for(
            &tx,
            json!({"deliveryMethod": "SSF_DELIVERY_METHOD_POLL", "pollEndpointUrl": format!("{}/poll", tx.issuer())}),
        )
        .await;
    assert!(token.is_empty());
    assert_eq!(
        d.push(&id, "anything", &tx.set().sign()).await.status(),
        404
    );
}

#[tokio::test]
async fn push_listener_healthz() {
    let d = TestDaemon::start().await;
    let resp = d
        .http
        .get(format!("{}/healthz", d.daemon.push_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn oversized_or_overfull_key_sets_are_not_used() {
    let cooldown = std::time::Duration::from_millis(100);
    let d = TestDaemon::start_with(|c| c.jwks.refresh_cooldown = cooldown).await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    // Over 256 KiB.
    let huge = json!({"keys": [], "padding": "x".repeat(300 * 1024)}).to_string();
    tx.set_jwks_body(Some(huge));
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 503);
    // More than 100 keys.
    let mut keys: Vec<Value> = (0..101)
        .map(|i| json!({"kty": "oct", "kid": format!("x{i}"), "k": "AAAA"}))
        .collect();
    keys.push(tx.jwks()["keys"][0].clone());
    tx.set_jwks_body(Some(json!({ "keys": keys }).to_string()));
    tokio::time::sleep(cooldown * 2).await;
    let fetches = tx.jwks_fetches();
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 503);
    assert_eq!(tx.jwks_fetches(), fetches + 1);
    assert_eq!(stored_count(&d, &id).await, 0);
    tx.set_jwks_body(None);
    tokio::time::sleep(cooldown * 2).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn after_a_jwks_outage_a_rotated_key_is_picked_up() {
    let d =
        TestDaemon::start_with(|c| c.jwks.refresh_cooldown = std::time::Duration::from_millis(200))
            .await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    tx.set_jwks_status(500);
    tx.add_key(KeyKind::Rs256, "k2");
    tx.use_key("k2");
    // The refresh fails and the cached set has no k2: not judged now, delivered again later.
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 503);
    // Known keys still verify during the outage.
    assert_eq!(
        d.push(&id, &token, &tx.set().key("k1").sign())
            .await
            .status(),
        202
    );
    tx.set_jwks_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn slow_clients_cannot_starve_others() {
    use tokio::io::AsyncWriteExt;
    let (d, tx, id, token) = setup().await;
    // Fifty connections that send half a request line and then nothing.
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut c = tokio::net::TcpStream::connect(d.daemon.push_addr)
            .await
            .unwrap();
        c.write_all(b"POST /ssf/push/").await.unwrap();
        idle.push(c);
    }
    // And one that sends headers but dribbles its body.
    let mut dribbler = tokio::net::TcpStream::connect(d.daemon.push_addr)
        .await
        .unwrap();
    dribbler
        .write_all(
            format!(
                "POST /ssf/push/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/secevent+jwt\r\nContent-Length: 1000\r\n\r\nabc"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    }
    drop(idle);
    drop(dribbler);
}

#[tokio::test]
async fn an_unknown_kid_after_a_refresh_that_ran_is_invalid_key() {
    // The conformance case: the cooldown has passed, the forced refresh runs and the key is
    // still absent: a final 400.
    let cooldown = std::time::Duration::from_millis(200);
    let d = TestDaemon::start_with(|c| c.jwks.refresh_cooldown = cooldown).await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    let fetches = tx.jwks_fetches();
    let set = tx.sign_with_unpublished_key(&tx.set().claims());
    assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_key").await;
    assert_eq!(tx.jwks_fetches(), fetches + 1);
}

#[tokio::test]
async fn html_pages_in_front_of_the_keys_are_503_not_invalid_key() {
    // A maintenance page or a web application firewall answering 200 with HTML is not the
    // transmitter's word on its keys: deliver again later.
    let cooldown = std::time::Duration::from_millis(200);
    let d = TestDaemon::start_with(|c| c.jwks.refresh_cooldown = cooldown).await;
    let tx = TestTransmitter::start().await;
    let (discovered, dtoken) = d.create_stream_for(&tx, json!({"jwksUrl": ""})).await;
    let (direct, token) = d.create_stream_for(&tx, json!({})).await;
    tx.set_page(Some((
        "text/html",
        "<html><body>Down for maintenance</body></html>",
    )));
    for (id, token) in [(&discovered, &dtoken), (&direct, &token)] {
        let resp = d.push(id, token, &tx.set().sign()).await;
        assert_eq!(resp.status(), 503, "{id}");
        assert!(resp.headers().get("retry-after").is_some());
    }
    // Not even labelled as HTML: still not JSON, still temporary.
    tokio::time::sleep(cooldown * 2).await;
    tx.set_page(Some(("text/plain", "service unavailable")));
    assert_eq!(
        d.push(&discovered, &dtoken, &tx.set().sign())
            .await
            .status(),
        503
    );
    let s = d.get_stream(&discovered).await;
    assert!(
        s["lastErrorMessage"].as_str().unwrap().contains("not JSON"),
        "{s}"
    );
    tx.set_page(None);
    tokio::time::sleep(cooldown * 2).await;
    assert_eq!(
        d.push(&discovered, &dtoken, &tx.set().sign())
            .await
            .status(),
        202
    );
    assert_eq!(
        d.push(&direct, &token, &tx.set().sign()).await.status(),
        202
    );
    assert_eq!(stored_count(&d, &discovered).await, 1);
}

#[tokio::test]
async fn a_forced_refresh_outlives_the_client_that_caused_it() {
    let (d, tx, id, token) = setup().await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    tx.add_key(KeyKind::Rs256, "k2");
    tx.use_key("k2");
    tx.set_jwks_delay(std::time::Duration::from_millis(600));
    // The client gives up while the refresh is still waiting for the JWKS.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(150))
        .build()
        .unwrap();
    let fetches = tx.jwks_fetches();
    let gone = ssfd_testkit::push_set(&impatient, &d.push_url(&id), &token, &tx.set().sign()).await;
    assert!(gone.is_err());
    tx.set_jwks_delay(std::time::Duration::ZERO);
    // Within the cooldown no new refresh may run, so k2 is only known if the first one
    // finished without its client.
    let mut status = 0;
    for _ in 0..40 {
        status = d
            .push(&id, &token, &tx.set().sign())
            .await
            .status()
            .as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 202);
    assert_eq!(tx.jwks_fetches(), fetches + 1);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refresh() {
    let (d, tx, id, token) = setup().await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    tx.add_key(KeyKind::Rs256, "k2");
    tx.use_key("k2");
    tx.set_jwks_delay(std::time::Duration::from_millis(300));
    let fetches = tx.jwks_fetches();
    let pushes: Vec<_> = (0..6)
        .map(|_| {
            let (http, url, token, set) = (
                d.http.clone(),
                d.push_url(&id),
                token.clone(),
                tx.set().sign(),
            );
            tokio::spawn(async move {
                ssfd_testkit::push_set(&http, &url, &token, &set)
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for p in pushes {
        assert_eq!(p.await.unwrap(), 202);
    }
    assert_eq!(tx.jwks_fetches(), fetches + 1);
}

#[tokio::test]
async fn the_stream_test_does_not_put_back_keys_whose_metadata_failed() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({"jwksUrl": ""})).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    tx.set_metadata_issuer(Some("https://impostor.example.com".into()));
    let (status, v) = d
        .api(
            Method::POST,
            &format!("/api/v1/ssf-receiver-streams/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["jwksReachable"], false);
    assert!(v["jwksError"].as_str().unwrap().contains("metadata"), "{v}");
    // The keys found through metadata that no longer validates are gone.
    assert_set_error(
        d.push(&id, &token, &tx.set().sign()).await,
        400,
        "invalid_key",
    )
    .await;
    assert_eq!(stored_count(&d, &id).await, 1);
}

#[tokio::test]
async fn rsa_keys_of_2041_to_2047_bits_are_refused() {
    // The size is counted in bits: a 2044-bit modulus still fills 256 bytes.
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    tx.add_key(KeyKind::Rs256Bits(2044), "short");
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    let set = tx.set().key("short").sign();
    let desc = assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_key").await;
    assert!(desc.contains("2048"), "{desc}");
    assert_eq!(stored_count(&d, &id).await, 0);
}

#[tokio::test]
async fn a_control_event_beside_another_event_is_invalid_request() {
    let (d, tx, id, token) = setup().await;
    for control in ["verification", "stream-updated"] {
        let set = tx
            .set()
            .claim(
                "events",
                json!({
                    events::uri(control): {"state": "s", "status": "enabled"},
                    events::uri("session-revoked"): {"event_timestamp": 1_700_000_000},
                }),
            )
            .sign();
        let desc = assert_set_error(d.push(&id, &token, &set).await, 400, "invalid_request").await;
        assert!(desc.contains("only event"), "{desc}");
    }
    assert_eq!(stored_count(&d, &id).await, 0);
}

#[tokio::test]
async fn refused_push_tokens_show_on_the_stream() {
    let (d, tx, id, _token) = setup().await;
    for _ in 0..3 {
        assert_set_error(
            d.push(&id, "stale-token", &tx.set().sign()).await,
            401,
            "authentication_failed",
        )
        .await;
    }
    let s = d.get_stream(&id).await;
    let msg = s["lastErrorMessage"].as_str().unwrap();
    assert!(msg.contains("bearer token"), "{s}");
    assert!(s["lastErrorAt"].is_string());
    // Still not counted as a rejected SET.
    assert_eq!(d.stats(&id).await["eventsFailedCount"], 0);
}

#[tokio::test]
async fn revocation_cut_offs_are_read_as_milliseconds_or_clamped_to_the_receive_time() {
    let (d, tx, id, token) = setup().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let check = |email: &'static str, issued_at: String| {
        let d = &d;
        async move {
            d.api(
                Method::POST,
                "/api/v1/subjects:check",
                Some(
                    json!({"subject": {"format": "email", "email": email}, "issuedAt": issued_at}),
                ),
            )
            .await
            .1
        }
    };
    let revoke = |email: &str, ts: i64| {
        tx.set()
            .event(
                &events::uri("session-revoked"),
                json!({"event_timestamp": ts}),
            )
            .sub_id(subjects::email(email))
            .sign()
    };
    let rfc = |secs: i64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64),
        )
        .to_string()
    };
    // In milliseconds: the revocation is of now, not of the year 50000.
    assert_eq!(
        d.push(&id, &token, &revoke("ms@example.com", now * 1000))
            .await
            .status(),
        202
    );
    // Ten years ahead, in seconds: clamped to the receive time plus a small skew.
    assert_eq!(
        d.push(
            &id,
            &token,
            &revoke("future@example.com", now + 10 * 365 * 24 * 3600)
        )
        .await
        .status(),
        202
    );
    let stored: Vec<(String, i64)> = d
        .storage()
        .open()
        .await
        .check_subjects(vec![
            "email:ms@example.com".into(),
            "email:future@example.com".into(),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.jti, e.revoked_before))
        .collect();
    for email in ["ms@example.com", "future@example.com"] {
        let before = check(email, rfc(now - 60)).await;
        assert_eq!(
            before["revoked"],
            true,
            "{email} {} {before} {stored:?}",
            rfc(now - 60)
        );
        // A session started an hour from now is not revoked.
        let later = check(email, rfc(now + 3600)).await;
        assert_eq!(later["revoked"], false, "{email}: {later}");
    }
    let metrics = d
        .http
        .get(format!("{}/metrics", d.daemon.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("reason=\"milliseconds\""), "{metrics}");
    assert!(metrics.contains("reason=\"future\""), "{metrics}");
}

#[tokio::test]
async fn an_operator_lifts_a_revocation_with_a_reason_and_it_is_audited() {
    let (d, tx, id, token) = setup().await;
    let set = tx
        .set()
        .event(&events::uri("session-revoked"), json!({}))
        .sub_id(subjects::email("lou@example.com"))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let subject = json!({"format": "email", "email": "lou@example.com"});
    let check = || {
        d.api(
            Method::POST,
            "/api/v1/subjects:check",
            Some(json!({ "subject": subject })),
        )
    };
    assert_eq!(check().await.1["revoked"], true);
    // A reason is required.
    let (status, v) = d
        .api(
            Method::POST,
            "/api/v1/subjects:lift",
            Some(json!({ "subject": subject })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("reason"), "{v}");
    assert_eq!(check().await.1["revoked"], true);
    let (status, v) = d
        .api(
            Method::POST,
            "/api/v1/subjects:lift",
            Some(json!({"subject": subject, "reason": "revoked by a bad timestamp (INC-7)"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["lifted"], 1);
    assert_eq!(check().await.1["revoked"], false);
    let audit = d.daemon.app.store.audit_entries(&id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "LIFTED" && a.detail == "revoked by a bad timestamp (INC-7)"),
        "{audit:?}"
    );
}
