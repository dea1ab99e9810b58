//! Drives a live test transmitter over HTTP and checks its tokens with an independent verifier.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{EdDSA, JwsVerifier, ES256, ES384, HS256, PS256, RS256, RS384};
use serde_json::{json, Value};
use ssfd_testkit::{
    events, jws, subjects, KeyKind, SetBuilder, SigningKey, TestTransmitter, TransmitterOptions,
    WebhookRecorder, DEFAULT_AUDIENCE,
};

async fn get(url: &str) -> (u16, HeaderMap, String) {
    let response = ssfd_testkit::http_client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn get_json(url: &str) -> Value {
    let (status, headers, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    assert_eq!(headers["content-type"], "application/json");
    serde_json::from_str(&body).unwrap()
}

fn segment(token: &str, index: usize) -> Vec<u8> {
    let part = token.split('.').nth(index).expect("three segments");
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&segment(token, 0)).unwrap()
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&segment(token, 1)).unwrap()
}

fn signing_input(token: &str) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    input.to_owned()
}

fn verifier(alg: &str, jwk: &Jwk) -> Box<dyn JwsVerifier> {
    match alg {
        "RS256" => Box::new(RS256.verifier_from_jwk(jwk).unwrap()),
        "RS384" => Box::new(RS384.verifier_from_jwk(jwk).unwrap()),
        "PS256" => Box::new(PS256.verifier_from_jwk(jwk).unwrap()),
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).unwrap()),
        "ES384" => Box::new(ES384.verifier_from_jwk(jwk).unwrap()),
        "EdDSA" => Box::new(EdDSA.verifier_from_jwk(jwk).unwrap()),
        other => panic!("no verifier for {other}"),
    }
}

/// Verifies `token` as a receiver would: the key named by `kid` in the JWKS fetched over
/// HTTP, the algorithm from the header, the JWK's own `alg` enforced by the library.
async fn verify_against_served_jwks(tx: &TestTransmitter, token: &str) -> Value {
    let jwks = JwkSet::from_bytes(get_json(&tx.jwks_url()).await.to_string()).unwrap();
    let header = header_of(token);
    let kid = header["kid"].as_str().unwrap();
    let jwk = jwks.get(kid).first().copied().expect("kid published");
    let alg = header["alg"].as_str().unwrap();
    verifier(alg, jwk)
        .verify(signing_input(token).as_bytes(), &segment(token, 2))
        .unwrap_or_else(|e| panic!("{alg} signature under {kid} does not verify: {e}"));
    claims_of(token)
}

/// The published JWK of `kid` with its `alg` removed, to check signatures whose header
/// algorithm deliberately differs from the key's.
fn published_without_alg(tx: &TestTransmitter, kid: &str) -> Jwk {
    let mut jwk = tx.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone();
    jwk.as_object_mut().unwrap().remove("alg");
    Jwk::from_bytes(jwk.to_string()).unwrap()
}

#[tokio::test]
async fn metadata_and_jwks_are_served_and_parse() {
    let tx = TestTransmitter::start().await;
    assert!(tx.issuer().starts_with("http://127.0.0.1:"));
    assert_eq!(
        tx.metadata_url(),
        format!("{}/.well-known/ssf-configuration", tx.issuer())
    );
    assert_eq!(tx.jwks_url(), format!("{}/jwks.json", tx.issuer()));

    let metadata = get_json(&tx.metadata_url()).await;
    assert_eq!(metadata["spec_version"], "1_0");
    assert_eq!(metadata["issuer"], tx.issuer());
    assert_eq!(metadata["jwks_uri"], tx.jwks_url());
    assert_eq!(
        metadata["delivery_methods_supported"],
        json!(["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"])
    );

    let jwks = get_json(&tx.jwks_url()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["kid"], "k1");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "RSA-2048 modulus");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(key.get(private).is_none(), "JWKS leaks {private}");
    }
    let set = JwkSet::from_bytes(jwks.to_string()).unwrap();
    assert_eq!(set.get("k1").len(), 1);

    assert_eq!(tx.metadata_fetches(), 1);
    assert_eq!(tx.jwks_fetches(), 1);
}

#[tokio::test]
async fn issuer_path_moves_metadata_after_the_well_known_prefix() {
    let tx = TestTransmitter::start_with(TransmitterOptions {
        issuer_path: Some("/tenant1/".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(tx.issuer(), format!("{}/tenant1", tx.base_url()));
    assert_eq!(
        tx.metadata_url(),
        format!("{}/.well-known/ssf-configuration/tenant1", tx.base_url())
    );
    let metadata = get_json(&tx.metadata_url()).await;
    assert_eq!(metadata["issuer"], tx.issuer());
    assert_eq!(metadata["jwks_uri"], format!("{}/jwks.json", tx.issuer()));
    get_json(&tx.jwks_url()).await;

    // Appending the well-known suffix to the issuer is the classic discovery bug: not served.
    let (status, _, _) = get(&format!("{}/.well-known/ssf-configuration", tx.issuer())).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&format!("{}/.well-known/ssf-configuration", tx.base_url())).await;
    assert_eq!(status, 404);

    let bad = TestTransmitter::try_start_with(TransmitterOptions {
        issuer_path: Some("a/{b}".into()),
        ..Default::default()
    })
    .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn default_set_is_valid_and_verifies_against_the_served_jwks() {
    let tx = TestTransmitter::start().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = tx.set().sign();
    assert_eq!(
        header_of(&token),
        json!({"typ": "secevent+jwt", "alg": "RS256", "kid": "k1"})
    );
    let claims = verify_against_served_jwks(&tx, &token).await;
    assert_eq!(claims["iss"], tx.issuer());
    assert_eq!(claims["aud"], DEFAULT_AUDIENCE);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before - 1..=before + 60).contains(&iat));
    assert_eq!(claims["sub_id"], subjects::email("alice@example.com"));
    let events = claims["events"].as_object().unwrap();
    assert_eq!(events.len(), 1);
    let revoked = &events[events::SESSION_REVOKED];
    assert!(revoked["reason_admin"]["en"].as_str().is_some());
    assert!(revoked["event_timestamp"].as_i64().is_some());
    assert!(claims.get("sub").is_none() && claims.get("exp").is_none());

    assert_ne!(
        claims_of(&tx.set().sign())["jti"],
        claims["jti"],
        "each builder draws a fresh jti"
    );
}

#[tokio::test]
async fn every_key_kind_signs_verifiable_tokens() {
    let tx = TestTransmitter::start().await;
    let kinds = [
        (KeyKind::Es256, "ec256", "ES256"),
        (KeyKind::Es384, "ec384", "ES384"),
        (KeyKind::EdDsa, "ed", "EdDSA"),
        (KeyKind::Ps256, "pss", "PS256"),
        (KeyKind::Rs256Bits(3072), "rsa3072", "RS256"),
    ];
    for (kind, kid, alg) in kinds {
        tx.add_key(kind, kid);
        tx.use_key(kid);
        let token = tx.set().sign();
        assert_eq!(header_of(&token)["alg"], alg);
        assert_eq!(header_of(&token)["kid"], kid);
        verify_against_served_jwks(&tx, &token).await;
    }
}

#[tokio::test]
async fn keys_rotate_and_withdraw() {
    let tx = TestTransmitter::start().await;
    tx.add_key(KeyKind::Rs256, "k2");
    assert_eq!(tx.published_kids(), ["k1", "k2"]);
    assert_eq!(
        header_of(&tx.set().sign())["kid"],
        "k1",
        "adding does not switch"
    );

    tx.use_key("k2");
    assert_eq!(tx.current_kid(), "k2");
    let rotated = tx.set().sign();
    assert_eq!(header_of(&rotated)["kid"], "k2");
    verify_against_served_jwks(&tx, &rotated).await;

    tx.remove_key("k1");
    let served = get_json(&tx.jwks_url()).await;
    let kids: Vec<_> = served["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, [json!("k2")]);

    // A withdrawn key still signs, which is how "unknown kid" tokens are made.
    let stale = tx.set().key("k1").sign();
    assert_eq!(header_of(&stale)["kid"], "k1");

    tx.republish_key("k1");
    verify_against_served_jwks(&tx, &stale).await;
}

#[tokio::test]
async fn jwks_status_body_and_cache_control_can_be_steered() {
    let tx = TestTransmitter::start().await;
    tx.set_jwks_status(500);
    let (status, _, body) = get(&tx.jwks_url()).await;
    assert_eq!(status, 500);
    assert!(!body.contains("\"keys\""));
    tx.set_jwks_status(404);
    assert_eq!(get(&tx.jwks_url()).await.0, 404);
    tx.set_jwks_status(200);
    let (status, headers, _) = get(&tx.jwks_url()).await;
    assert_eq!(status, 200);
    assert!(headers.get("cache-control").is_none());
    assert_eq!(tx.jwks_fetches(), 3, "failed fetches count too");

    tx.set_jwks_cache_control(Some("max-age=60".into()));
    assert_eq!(get(&tx.jwks_url()).await.1["cache-control"], "max-age=60");

    tx.set_jwks_body(Some("{not json".into()));
    assert_eq!(get(&tx.jwks_url()).await.2, "{not json");
    tx.set_jwks_body(None);
    get_json(&tx.jwks_url()).await;
}

#[tokio::test]
async fn metadata_can_lie_or_fail() {
    let tx = TestTransmitter::start().await;
    tx.set_metadata_issuer(Some("https://impostor.example".into()));
    assert_eq!(
        get_json(&tx.metadata_url()).await["issuer"],
        "https://impostor.example"
    );
    tx.set_metadata_issuer(None);
    assert_eq!(get_json(&tx.metadata_url()).await["issuer"], tx.issuer());

    tx.set_metadata_member("jwks_uri", None);
    tx.set_metadata_member("default_subjects", Some(json!("ALL")));
    let metadata = get_json(&tx.metadata_url()).await;
    assert!(metadata.get("jwks_uri").is_none());
    assert_eq!(metadata["default_subjects"], "ALL");

    tx.set_metadata_status(503);
    assert_eq!(get(&tx.metadata_url()).await.0, 503);
    tx.reset_metadata();
    assert_eq!(
        get_json(&tx.metadata_url()).await["jwks_uri"],
        tx.jwks_url()
    );
    assert_eq!(tx.metadata_fetches(), 5);
}

#[tokio::test]
async fn header_overrides_decide_how_the_token_is_signed() {
    let tx = TestTransmitter::start().await;

    let none = tx.set().header("alg", json!("none")).sign();
    assert!(none.ends_with('.'));
    assert_eq!(header_of(&none)["alg"], "none");

    let hs = tx.set().header("alg", json!("HS256")).sign();
    HS256
        .verifier_from_bytes(jws::HMAC_SECRET)
        .unwrap()
        .verify(signing_input(&hs).as_bytes(), &segment(&hs, 2))
        .unwrap();

    // Another algorithm the key can serve: signed for real with it.
    let rs384 = tx.set().header("alg", json!("RS384")).sign();
    RS384
        .verifier_from_jwk(&published_without_alg(&tx, "k1"))
        .unwrap()
        .verify(signing_input(&rs384).as_bytes(), &segment(&rs384, 2))
        .unwrap();

    // One it cannot: the header lies and the signature is the key's own RS256.
    let lying = tx.set().header("alg", json!("ES256")).sign();
    assert_eq!(header_of(&lying)["alg"], "ES256");
    RS256
        .verifier_from_jwk(&published_without_alg(&tx, "k1"))
        .unwrap()
        .verify(signing_input(&lying).as_bytes(), &segment(&lying, 2))
        .unwrap();

    let odd = tx
        .set()
        .header("typ", json!("JWT"))
        .header("kid", json!("nobody"))
        .header("crit", json!(["exp"]))
        .sign();
    assert_eq!(
        header_of(&odd),
        json!({"typ": "JWT", "alg": "RS256", "kid": "nobody", "crit": ["exp"]})
    );
    let untyped = tx.set().remove_header("typ").sign();
    assert!(header_of(&untyped).get("typ").is_none());
}

#[tokio::test]
async fn claims_and_events_can_be_reshaped() {
    let tx = TestTransmitter::start().await;
    let builder = tx
        .set()
        .jti("fixed-jti")
        .iss("https://other.example")
        .aud(json!(["a", "b"]))
        .iat(1_700_000_000)
        .txn("txn-1")
        .toe(1_699_999_999)
        .sub_id(subjects::iss_sub("https://idp.example", "248289761001"))
        .event(
            "credential-change",
            json!({"credential_type": "pin", "change_type": "delete"}),
        )
        .add_event(events::ACCOUNT_DISABLED, json!({}))
        .claim("sub", json!("forbidden"))
        .remove_claim("iat");
    let claims = builder.claims();
    assert_eq!(claims["jti"], "fixed-jti");
    assert_eq!(claims["iss"], "https://other.example");
    assert_eq!(claims["aud"], json!(["a", "b"]));
    assert_eq!(claims["txn"], "txn-1");
    assert_eq!(claims["toe"], 1_699_999_999);
    assert_eq!(claims["sub_id"]["format"], "iss_sub");
    assert_eq!(claims["sub"], "forbidden");
    assert!(claims.get("iat").is_none());
    let events = claims["events"].as_object().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[events::CREDENTIAL_CHANGE]["change_type"], "delete");
    assert!(events.contains_key(events::ACCOUNT_DISABLED));

    let token = builder.sign();
    assert_eq!(verify_against_served_jwks(&tx, &token).await, claims);
    assert_eq!(
        claims_of(&builder.sign())["jti"],
        "fixed-jti",
        "re-signing keeps the jti"
    );

    let custom = tx.set().event("urn:example:custom", json!({})).claims();
    assert!(custom["events"].get("urn:example:custom").is_some());

    let verification = tx.verification_set("stream-1", Some("st4te")).claims();
    assert_eq!(verification["sub_id"], subjects::opaque("stream-1"));
    assert_eq!(
        verification["events"][events::VERIFICATION],
        json!({"state": "st4te"})
    );
    let updated = tx
        .stream_updated_set("stream-1", "paused", Some("maintenance"))
        .claims();
    assert_eq!(
        updated["events"][events::STREAM_UPDATED],
        json!({"status": "paused", "reason": "maintenance"})
    );
}

#[tokio::test]
async fn raw_signing_helpers() {
    let tx = TestTransmitter::start().await;
    let claims = tx.set().claims();

    let plain = tx.sign_claims(&claims);
    assert_eq!(verify_against_served_jwks(&tx, &plain).await, claims);

    let custom_header = json!({"alg": "RS256", "kid": "k1", "typ": "secevent+jwt", "x-extra": 1});
    let with_header = tx.sign_with_header(custom_header.clone(), &claims);
    assert_eq!(header_of(&with_header), custom_header);
    verify_against_served_jwks(&tx, &with_header).await;

    let foreign = tx.sign_with_unpublished_key(&claims);
    let kid = header_of(&foreign)["kid"].as_str().unwrap().to_owned();
    assert!(!tx.published_kids().contains(&kid));
    assert_eq!(
        header_of(&tx.sign_with_unpublished_key(&claims))["kid"],
        kid.as_str(),
        "the unpublished key is reused"
    );

    let secret = [7u8; 32];
    let hs = tx.sign_hs256(&secret, &claims);
    assert_eq!(header_of(&hs)["alg"], "HS256");
    HS256
        .verifier_from_bytes(secret)
        .unwrap()
        .verify(signing_input(&hs).as_bytes(), &segment(&hs, 2))
        .unwrap();

    let none = tx.unsigned_none(&claims);
    assert!(none.ends_with('.'));
    assert_eq!(header_of(&none)["alg"], "none");
    assert_eq!(claims_of(&none), claims);
}

#[tokio::test]
async fn short_rsa_keys_are_published_and_sign_but_libraries_refuse_them() {
    let tx = TestTransmitter::start().await;
    tx.add_key(KeyKind::Rs256Bits(1024), "weak");
    tx.use_key("weak");
    let token = tx.set().sign();
    assert_eq!(header_of(&token)["alg"], "RS256");
    assert_eq!(segment(&token, 2).len(), 128);
    let served = get_json(&tx.jwks_url()).await;
    let weak = served["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "weak")
        .unwrap();
    let n = URL_SAFE_NO_PAD.decode(weak["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 128);
    assert!(RS256
        .verifier_from_jwk(&Jwk::from_bytes(weak.to_string()).unwrap())
        .is_err());
}

#[tokio::test]
async fn options_fix_key_kid_and_audience() {
    let key = SigningKey::generate(KeyKind::Es256, "ignored");
    let tx = TestTransmitter::start_with(TransmitterOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        key: Some(key.private_jwk()),
        kid: Some("stable".into()),
        audience: Some("urn:example:receiver".into()),
        ..Default::default()
    })
    .await;
    let mut expected = key.public_jwk();
    expected["kid"] = json!("stable");
    assert_eq!(get_json(&tx.jwks_url()).await["keys"], json!([expected]));
    let token = tx.set().sign();
    assert_eq!(header_of(&token)["alg"], "ES256");
    let claims = verify_against_served_jwks(&tx, &token).await;
    assert_eq!(claims["aud"], "urn:example:receiver");

    let bad = TestTransmitter::try_start_with(TransmitterOptions {
        key: Some(Jwk::from_bytes(key.public_jwk().to_string()).unwrap()),
        ..Default::default()
    })
    .await;
    assert!(bad.is_err(), "a public key cannot sign");
}

#[tokio::test]
async fn standalone_builder_signs_with_one_key() {
    let key = SigningKey::generate(KeyKind::Rs256, "solo");
    let token = SetBuilder::new("https://tr.example.com", key.clone())
        .event(
            "account-disabled",
            events::default_payload("account-disabled", None, 5),
        )
        .sign();
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], "https://tr.example.com");
    assert_eq!(
        claims["events"][events::ACCOUNT_DISABLED]["reason"],
        "hijacking"
    );
    let jwk = Jwk::from_bytes(key.public_jwk().to_string()).unwrap();
    RS256
        .verifier_from_jwk(&jwk)
        .unwrap()
        .verify(signing_input(&token).as_bytes(), &segment(&token, 2))
        .unwrap();
}

#[tokio::test]
async fn push_sends_an_rfc8935_request() {
    let receiver = WebhookRecorder::start().await;
    receiver.answer_always(202, "");
    let url = format!("http://{}/ssf/push/s1", receiver.addr());

    let tx = TestTransmitter::start().await;
    let token = tx.set().sign();
    let answer = tx.push(&url, "push-token", &token).await;
    assert_eq!(answer.status(), 202);
    let anonymous = tx.push(&url, "", &token).await;
    assert_eq!(anonymous.status(), 202);

    let requests = receiver.deliveries();
    let first = &requests[0];
    assert_eq!(first.method, axum::http::Method::POST);
    assert_eq!(first.path, "/ssf/push/s1");
    let headers = &first.headers;
    assert_eq!(headers["content-type"], "application/secevent+jwt");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["authorization"], "Bearer push-token");
    assert_eq!(first.body, token.as_bytes());
    assert!(requests[1].headers.get("authorization").is_none());
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let tx = TestTransmitter::start().await;
    let url = tx.jwks_url();
    get_json(&url).await;
    tx.shutdown().await;
    assert!(ssfd_testkit::http_client().get(&url).send().await.is_err());

    let dropped = TestTransmitter::start().await;
    let url = dropped.jwks_url();
    get_json(&url).await;
    drop(dropped);
    let mut refused = false;
    for _ in 0..50 {
        if ssfd_testkit::http_client().get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the server outlived its last handle");
}
