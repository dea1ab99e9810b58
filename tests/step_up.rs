//! Step-up providers against a real daemon and a real OpenID provider on loopback: CRUD in
//! ConductorOne's shape, the `test` checks, write-only secrets, and presented tokens verified
//! against the provider's keys.

mod common;

use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ssfd::config::JwksConfig;
use ssfd::step_up::token::{self, Discovery, TokenError};
use ssfd::verify::jwks::JwksCache;
use ssfd_testkit::TestOpenIdProvider;

const PROVIDERS: &str = "/api/v1/step-up/providers";

async fn create(d: &TestDaemon, body: Value) -> Value {
    let (status, v) = d.api(Method::POST, PROVIDERS, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["stepUpProvider"].clone()
}

fn oauth2_body(op: &TestOpenIdProvider, acr: &[&str]) -> Value {
    json!({
        "displayName": "Okta step-up",
        "issuerUrl": op.issuer(),
        "clientId": op.client_id(),
        "clientSecret": op.client_secret(),
        "oauth2": {"acrValues": acr},
    })
}

async fn test_call(d: &TestDaemon, id: &str) -> Value {
    let (status, v) = d
        .api(Method::POST, &format!("{PROVIDERS}/{id}/test"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

fn result_of(answer: &Value, check: &str) -> (String, String) {
    let c = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {answer}"));
    (
        c["result"].as_str().unwrap().to_string(),
        c["detail"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn provider_crud_in_conductorone_shape() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let created = create(&d, oauth2_body(&op, &["urn:okta:loa:2fa:any"])).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["displayName"], "Okta step-up");
    assert_eq!(created["issuerUrl"], op.issuer());
    assert_eq!(created["clientId"], op.client_id());
    assert_eq!(created["enabled"], true);
    assert_eq!(
        created["oauth2"]["acrValues"],
        json!(["urn:okta:loa:2fa:any"])
    );
    assert!(created.get("microsoft").is_none());
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(created.get("lastTestedAt").is_none());

    let (status, got) = d.api(Method::GET, &format!("{PROVIDERS}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["stepUpProvider"], created);

    // Update with a mask: only the named fields change; the oneof can switch kinds.
    let (status, v) = d
        .api(
            Method::POST,
            &format!("{PROVIDERS}/{id}"),
            Some(json!({
                "stepUpProvider": {"displayName": "Entra", "enabled": false,
                                   "microsoft": {"conditionalAccessIds": ["c1"], "tenant": "contoso",
                                                 "validationMode": "MICROSOFT_VALIDATION_MODE_ACRS"}},
                "updateMask": "displayName,microsoft"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let updated = &v["stepUpProvider"];
    assert_eq!(updated["displayName"], "Entra");
    assert_eq!(updated["enabled"], true, "enabled was not in the mask");
    assert!(updated.get("oauth2").is_none());
    assert_eq!(updated["microsoft"]["conditionalAccessIds"], json!(["c1"]));
    assert_eq!(
        updated["microsoft"]["validationMode"],
        "MICROSOFT_VALIDATION_MODE_ACRS"
    );

    let (status, v) = d
        .api(
            Method::PATCH,
            &format!("{PROVIDERS}/{id}?updateMask=createdAt"),
            Some(json!({"createdAt": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "updateMask: createdAt is read-only");

    // List pages like streams.
    for i in 0..3 {
        let mut b = oauth2_body(&op, &[]);
        b["displayName"] = json!(format!("p{i}"));
        create(&d, b).await;
    }
    let (_, page1) = d
        .api(Method::GET, &format!("{PROVIDERS}?pageSize=3"), None)
        .await;
    assert_eq!(page1["list"].as_array().unwrap().len(), 3);
    let next = page1["nextPageToken"].as_str().unwrap();
    assert!(!next.is_empty());
    let (_, page2) = d
        .api(
            Method::GET,
            &format!("{PROVIDERS}?pageSize=3&pageToken={next}"),
            None,
        )
        .await;
    assert_eq!(page2["list"].as_array().unwrap().len(), 1);
    assert_eq!(page2["nextPageToken"], "");
    let (status, v) = d
        .api(
            Method::GET,
            &format!("{PROVIDERS}?pageToken=garbage!"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("pageToken: "));

    let (status, _) = d
        .api(Method::DELETE, &format!("{PROVIDERS}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = d.api(Method::GET, &format!("{PROVIDERS}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "not_found");
    let (status, _) = d
        .api(Method::DELETE, &format!("{PROVIDERS}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_provider_records_get_a_field_error_and_store_nothing() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let cases = [
        (
            json!({"displayName": "x", "issuerUrl": op.issuer(),
                   "oauth2": {"acrValues": ["phr"]},
                   "microsoft": {"conditionalAccessIds": ["c1"]}}),
            "microsoft: ",
        ),
        (
            json!({"displayName": "x", "issuerUrl": op.issuer()}),
            "oauth2: ",
        ),
        (
            json!({"issuerUrl": op.issuer(), "oauth2": {}}),
            "displayName: is required",
        ),
        (
            json!({"displayName": "x", "issuerUrl": "ftp://idp", "oauth2": {}}),
            "issuerUrl: ",
        ),
        (
            json!({"displayName": "x", "issuerUrl": op.issuer(),
                   "oauth2": {"acrValues": ["a\"b"]}}),
            "oauth2.acrValues: ",
        ),
        (
            json!({"displayName": "x", "issuerUrl": op.issuer(),
                   "microsoft": {"conditionalAccessIds": ["c1"], "validationMode": "STRICT"}}),
            "microsoft.validationMode: ",
        ),
        (
            json!({"displayName": "x", "issuerUrl": op.issuer(), "clientSecret": "s",
                   "oauth2": {}}),
            "clientId: ",
        ),
    ];
    for (body, prefix) in cases {
        let (status, v) = d.api(Method::POST, PROVIDERS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["code"], "invalid_argument");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.starts_with(prefix), "{body}: {msg}");
    }
    let (_, list) = d.api(Method::GET, PROVIDERS, None).await;
    assert_eq!(list["list"], json!([]));
}

#[tokio::test]
async fn the_client_secret_is_never_echoed() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let secret = op.client_secret();
    let (_, created) = d
        .api(Method::POST, PROVIDERS, Some(oauth2_body(&op, &[])))
        .await;
    let id = created["stepUpProvider"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut answers = vec![created];
    answers.push(
        d.api(Method::GET, &format!("{PROVIDERS}/{id}"), None)
            .await
            .1,
    );
    answers.push(d.api(Method::GET, PROVIDERS, None).await.1);
    answers.push(test_call(&d, &id).await);
    answers.push(
        d.api(
            Method::POST,
            &format!("{PROVIDERS}/{id}?updateMask=displayName"),
            Some(json!({"displayName": "renamed"})),
        )
        .await
        .1,
    );
    for a in &answers {
        let text = a.to_string();
        assert!(!text.contains(&secret), "{text}");
        assert!(!text.contains("clientSecret"), "{text}");
    }
    // Still stored: the test call could use it.
    assert_eq!(result_of(&answers[3], "clientCredentials").0, "PASSED");
}

#[tokio::test]
async fn test_answers_each_check() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let p = create(&d, oauth2_body(&op, &["urn:okta:loa:2fa:any"])).await;
    let id = p["id"].as_str().unwrap();

    let ok = test_call(&d, id).await;
    assert_eq!(ok["passed"], true, "{ok}");
    for check in [
        "discovery",
        "issuer",
        "jwks",
        "acrValues",
        "clientCredentials",
    ] {
        assert_eq!(result_of(&ok, check).0, "PASSED", "{check}: {ok}");
    }
    assert!(ok["stepUpProvider"]["lastTestedAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(op.token_requests(), (1, 1));

    // An acr value the provider does not list.
    let (_, v) = d
        .api(
            Method::POST,
            &format!("{PROVIDERS}/{id}?updateMask=oauth2"),
            Some(json!({"oauth2": {"acrValues": ["urn:okta:loa:2fa:any", "phrh"]}})),
        )
        .await;
    assert_eq!(v["stepUpProvider"]["oauth2"]["acrValues"][1], "phrh");
    let a = test_call(&d, id).await;
    assert_eq!(a["passed"], false);
    assert_eq!(
        result_of(&a, "acrValues"),
        (
            "FAILED".into(),
            "not in the provider's acr_values_supported: phrh".into()
        )
    );
    // Without acr_values_supported there is nothing to compare with.
    op.set_acr_values_supported(None);
    assert_eq!(
        result_of(&test_call(&d, id).await, "acrValues").0,
        "SKIPPED"
    );

    // The provider names another issuer.
    op.set_issuer_claim(Some("https://impostor.example.com"));
    let a = test_call(&d, id).await;
    assert_eq!(a["passed"], false);
    let (result, detail) = result_of(&a, "issuer");
    assert_eq!(result, "FAILED");
    assert!(detail.contains("https://impostor.example.com"), "{detail}");
    op.set_issuer_claim(None);

    // A JWKS that does not load.
    op.set_jwks_status(500);
    let a = test_call(&d, id).await;
    let (result, detail) = result_of(&a, "jwks");
    assert_eq!(result, "FAILED");
    assert!(detail.contains("HTTP 500"), "{detail}");
    op.set_jwks_status(200);

    // A wrong secret.
    let (status, _) = d
        .api(
            Method::POST,
            &format!("{PROVIDERS}/{id}?updateMask=clientSecret"),
            Some(json!({"clientSecret": "wrong-secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (result, detail) = result_of(&test_call(&d, id).await, "clientCredentials");
    assert_eq!(result, "FAILED");
    assert!(detail.contains("HTTP 401 (invalid_client)"), "{detail}");
    // No secret: skipped.
    d.api(
        Method::POST,
        &format!("{PROVIDERS}/{id}?updateMask=clientSecret"),
        Some(json!({"clientSecret": null})),
    )
    .await;
    assert_eq!(
        result_of(&test_call(&d, id).await, "clientCredentials").0,
        "SKIPPED"
    );
}

#[tokio::test]
async fn test_of_an_unreachable_provider() {
    let d = TestDaemon::start().await;
    let port = common::free_port();
    let p = create(
        &d,
        json!({"displayName": "gone", "issuerUrl": format!("http://127.0.0.1:{port}/oauth2/default"),
               "oauth2": {"acrValues": ["phr"]}}),
    )
    .await;
    let a = test_call(&d, p["id"].as_str().unwrap()).await;
    assert_eq!(a["passed"], false);
    let (result, detail) = result_of(&a, "discovery");
    assert_eq!(result, "FAILED");
    assert!(detail.contains("could not be reached"), "{detail}");
    for check in ["issuer", "jwks", "acrValues", "clientCredentials"] {
        assert_eq!(result_of(&a, check).0, "SKIPPED", "{check}");
    }
    // lastTestedAt is set whatever the outcome.
    assert!(a["stepUpProvider"]["lastTestedAt"].is_string());
}

/// The key settings and outbound policy of the test harness's configuration.
fn jwks_settings() -> (JwksConfig, ssfd::outbound::Outbound) {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    (config.jwks, ssfd::outbound::Outbound::new(&config.outbound))
}

#[tokio::test]
async fn presented_tokens_are_verified_against_the_issuer_keys() {
    let op = TestOpenIdProvider::start().await;
    let (settings, outbound) = jwks_settings();
    let keys = JwksCache::new(&settings, &outbound).unwrap();
    let discovery = Discovery::default();
    let now = ssfd::clock::now_unix();
    let verify = |t: String| {
        let (keys, discovery, settings, issuer) = (&keys, &discovery, &settings, op.issuer());
        async move { token::verify(keys, discovery, settings, &issuer, &t, now).await }
    };

    let id_token = op
        .id_token("alice")
        .acr("urn:okta:loa:2fa:any")
        .amr(&["pwd", "otp"])
        .auth_time(now - 5)
        .sign();
    let facts = verify(id_token).await.unwrap();
    assert_eq!(facts.acr.as_deref(), Some("urn:okta:loa:2fa:any"));
    assert_eq!(facts.auth_time, Some(now - 5));
    assert_eq!(facts.amr, vec!["pwd", "otp"]);

    let access = op.access_token("alice").acrs(&["c1"]).sign();
    assert_eq!(verify(access).await.unwrap().acrs, vec!["c1"]);

    let forged = op.id_token("alice").acr("phr").sign_forged();
    assert_eq!(
        verify(forged).await.unwrap_err(),
        TokenError::Invalid("the signature does not verify".into())
    );

    let foreign = op
        .id_token("alice")
        .claim("iss", json!("https://other.example.com"))
        .sign();
    assert!(matches!(verify(foreign).await.unwrap_err(),
        TokenError::Invalid(m) if m.contains("iss")));

    let expired = op.id_token("alice").exp(now - 3600).sign();
    assert!(matches!(verify(expired).await.unwrap_err(),
        TokenError::Invalid(m) if m.contains("expired")));

    assert!(matches!(verify("not-a-token".into()).await.unwrap_err(),
        TokenError::Invalid(m) if m.contains("compact JWS")));

    // Keys are discovered once and then cached.
    assert_eq!(op.fetches(), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// STEP_UP actions, the requirements they record and subjects:check

use ssfd::clock::rfc3339;
use ssfd::stream::RevocationAction;
use ssfd_testkit::{events, subjects, TestTransmitter};

const ALICE: &str = "alice@example.com";

async fn check(d: &TestDaemon, body: Value) -> (StatusCode, Value) {
    d.api(Method::POST, "/api/v1/subjects:check", Some(body))
        .await
}

async fn check_ok(d: &TestDaemon, body: Value) -> Value {
    let (status, v) = check(d, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// Pushes one event about `who` with `event_timestamp` `t`; returns the jti.
async fn push_event(
    d: &TestDaemon,
    tx: &TestTransmitter,
    stream: &(String, String),
    event: &str,
    payload: Value,
    who: &str,
) -> String {
    let b = tx.set().event(event, payload).sub_id(subjects::email(who));
    let jti = b.claims()["jti"].as_str().unwrap().to_string();
    let resp = d.push(&stream.0, &stream.1, &b.sign()).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    jti
}

fn with_time(mut payload: Value, t: i64) -> Value {
    payload["event_timestamp"] = json!(t);
    payload
}

#[tokio::test]
async fn step_up_from_a_stream_knob_judged_by_stated_facts() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let tx = TestTransmitter::start().await;
    let provider = create(&d, oauth2_body(&op, &["urn:okta:loa:2fa:any", "phr"])).await;
    let pid = provider["id"].as_str().unwrap().to_string();
    let (status, v) = d
        .api(
            Method::POST,
            "/api/v1/ssf-receiver-streams",
            Some(
                json!({"displayName": "s", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url(),
                        "credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP",
                        "stepUpProviderId": "no-such-provider"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .starts_with("stepUpProviderId: "));
    let stream = d
        .create_stream_for(
            &tx,
            json!({"credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP",
                   "stepUpProviderId": pid}),
        )
        .await;
    assert_eq!(d.get_stream(&stream.0).await["stepUpProviderId"], pid);
    let (status, v) = d
        .api(Method::DELETE, &format!("{PROVIDERS}/{pid}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "failed_precondition");
    assert!(v["message"].as_str().unwrap().contains(&stream.0), "{v}");
    let t = ssfd::clock::now_unix() - 60;
    let jti = push_event(
        &d,
        &tx,
        &stream,
        events::CREDENTIAL_CHANGE,
        events::default_payload("credential-change", None, t),
        ALICE,
    )
    .await;

    let a = check_ok(&d, json!({"subject": ALICE})).await;
    assert_eq!(a["revoked"], false, "STEP_UP is not a revocation: {a}");
    let s = &a["stepUp"];
    assert_eq!(s["required"], true, "{a}");
    assert_eq!(s["providerId"], pid);
    assert_eq!(s["acrValues"], json!(["urn:okta:loa:2fa:any", "phr"]));
    assert_eq!(s["maxAge"], 0);
    assert_eq!(s["since"], rfc3339(t));
    assert_eq!(
        s["wwwAuthenticate"],
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"More recent authentication is required\", \
         acr_values=\"urn:okta:loa:2fa:any phr\", max_age=0"
    );
    assert_eq!(s["reasons"][0]["jti"], jti);
    assert_eq!(s["reasons"][0]["streamId"], stream.0);

    // A fresh authentication at an accepted level satisfies it.
    let a = check_ok(
        &d,
        json!({"subject": ALICE, "authTime": rfc3339(t + 5), "acr": "phr", "amr": ["hwk"]}),
    )
    .await;
    assert_eq!(a["stepUp"]["required"], false, "{a}");
    assert_eq!(a["stepUp"]["wwwAuthenticate"], "");
    // One before the event does not, nor a weaker level.
    let a = check_ok(
        &d,
        json!({"subject": ALICE, "authTime": rfc3339(t - 5), "acr": "phr"}),
    )
    .await;
    assert_eq!(a["stepUp"]["required"], true);
    assert!(a["stepUp"]["reasons"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("older than the event"));
    let a = check_ok(
        &d,
        json!({"subject": ALICE, "authTime": rfc3339(t + 5), "acr": "urn:okta:loa:1fa:pwd"}),
    )
    .await;
    assert_eq!(a["stepUp"]["required"], true);
    assert!(a["stepUp"]["wwwAuthenticate"]
        .as_str()
        .unwrap()
        .contains("A different authentication level is required"));
    // Another subject has nothing to do.
    let a = check_ok(&d, json!({"subject": "bob@example.com"})).await;
    assert_eq!(
        a["stepUp"],
        json!({"required": false, "reasons": [], "wwwAuthenticate": ""})
    );
    // Bad facts are field errors.
    let (status, v) = check(&d, json!({"subject": ALICE, "authTime": "yesterday"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("authTime: "));

    let events = d.events(&stream.0).await;
    assert_eq!(events[0]["outcome"], "step_up");
    assert_eq!(d.stats(&stream.0).await["stepUpActionsCount"], 1);
    let metrics = d
        .http
        .get(format!("{}/metrics", d.daemon.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ssfd_decisions_total{action=\"STEP_UP\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn step_up_from_policy_is_payload_aware_and_uses_the_default_provider() {
    let op = TestOpenIdProvider::start().await;
    let tx = TestTransmitter::start().await;
    let d = TestDaemon::start().await;
    let pid = create(&d, oauth2_body(&op, &["phr"])).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Restart with [policy] and [step_up] naming the provider just created.
    let dir = d.stop().await;
    let mut config = common::test_config(dir.path());
    config
        .policy
        .insert("risk-level-change".into(), RevocationAction::StepUp);
    config
        .policy
        .insert("assurance-level-change".into(), RevocationAction::StepUp);
    config.step_up.default_provider = pid.clone();
    config.step_up.max_age = std::time::Duration::from_secs(600);
    let d = TestDaemon::start_in(dir, config).await;
    let stream = d.create_stream_for(&tx, json!({})).await;
    let t = ssfd::clock::now_unix() - 60;
    let risk =
        |level: &str| json!({"principal": "USER", "current_level": level, "event_timestamp": t});
    push_event(
        &d,
        &tx,
        &stream,
        events::RISK_LEVEL_CHANGE,
        risk("MEDIUM"),
        "medium@example.com",
    )
    .await;
    push_event(
        &d,
        &tx,
        &stream,
        events::RISK_LEVEL_CHANGE,
        risk("HIGH"),
        "high@example.com",
    )
    .await;
    push_event(
        &d,
        &tx,
        &stream,
        events::RISK_LEVEL_CHANGE,
        risk("LOW"),
        "low@example.com",
    )
    .await;
    let assurance = |dir: &str| {
        with_time(
            json!({"namespace": "NIST-AAL", "current_level": "nist-aal1",
                   "previous_level": "nist-aal2", "change_direction": dir}),
            t,
        )
    };
    push_event(
        &d,
        &tx,
        &stream,
        events::ASSURANCE_LEVEL_CHANGE,
        assurance("decrease"),
        "down@example.com",
    )
    .await;
    push_event(
        &d,
        &tx,
        &stream,
        events::ASSURANCE_LEVEL_CHANGE,
        assurance("increase"),
        "up@example.com",
    )
    .await;

    let medium = check_ok(&d, json!({"subject": "medium@example.com"})).await;
    assert_eq!(medium["revoked"], false);
    assert_eq!(medium["stepUp"]["required"], true);
    assert_eq!(medium["stepUp"]["providerId"], pid);
    assert_eq!(medium["stepUp"]["maxAge"], 600);
    assert!(medium["stepUp"]["wwwAuthenticate"]
        .as_str()
        .unwrap()
        .ends_with("acr_values=\"phr\", max_age=600"));
    let high = check_ok(&d, json!({"subject": "high@example.com"})).await;
    assert_eq!(
        high["revoked"], true,
        "HIGH escalates to REVOKE_ALL: {high}"
    );
    assert_eq!(high["stepUp"]["required"], false);
    let low = check_ok(&d, json!({"subject": "low@example.com"})).await;
    assert_eq!(
        (low["revoked"].clone(), low["stepUp"]["required"].clone()),
        (json!(false), json!(false))
    );
    let down = check_ok(&d, json!({"subject": "down@example.com"})).await;
    assert_eq!(down["stepUp"]["required"], true);
    let up = check_ok(&d, json!({"subject": "up@example.com"})).await;
    assert_eq!(up["stepUp"]["required"], false);
    let outcomes: Vec<Value> = d
        .events(&stream.0)
        .await
        .iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        json!(["log_only", "step_up", "log_only", "revoke", "step_up"])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[tokio::test]
async fn without_a_provider_step_up_asks_for_a_fresh_authentication() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let stream = d
        .create_stream_for(
            &tx,
            json!({"sessionRevokedAction": "SSF_REVOCATION_ACTION_STEP_UP"}),
        )
        .await;
    let t = ssfd::clock::now_unix() - 10;
    push_event(
        &d,
        &tx,
        &stream,
        events::SESSION_REVOKED,
        events::default_payload("session-revoked", None, t),
        ALICE,
    )
    .await;
    let a = check_ok(&d, json!({"subject": ALICE})).await;
    assert_eq!(a["stepUp"]["providerId"], "");
    assert_eq!(a["stepUp"]["acrValues"], json!([]));
    assert_eq!(
        a["stepUp"]["wwwAuthenticate"],
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"More recent authentication is required\", max_age=0"
    );
    let a = check_ok(&d, json!({"subject": ALICE, "authTime": rfc3339(t + 1)})).await;
    assert_eq!(a["stepUp"]["required"], false);
    // A token needs a provider whose keys can verify it.
    let (status, v) = check(&d, json!({"subject": ALICE, "idToken": "a.b.c"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["message"].as_str().unwrap().starts_with("providerId: "),
        "{v}"
    );
}

#[tokio::test]
async fn subjects_check_with_real_signed_tokens() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let tx = TestTransmitter::start().await;
    let pid = create(&d, oauth2_body(&op, &["urn:okta:loa:2fa:any"])).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = d
        .create_stream_for(
            &tx,
            json!({"credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP",
                   "stepUpProviderId": pid}),
        )
        .await;
    let t = ssfd::clock::now_unix() - 120;
    push_event(
        &d,
        &tx,
        &stream,
        events::CREDENTIAL_CHANGE,
        events::default_payload("credential-change", None, t),
        ALICE,
    )
    .await;

    let satisfied = op
        .id_token("alice")
        .claim("email", json!(ALICE))
        .acr("urn:okta:loa:2fa:any")
        .amr(&["pwd", "otp"])
        .auth_time(t + 30)
        .sign();
    let a = check_ok(&d, json!({"subject": ALICE, "idToken": satisfied})).await;
    assert_eq!(a["stepUp"]["required"], false, "{a}");

    let stale = op
        .id_token("alice")
        .claim("email", json!(ALICE))
        .acr("urn:okta:loa:2fa:any")
        .auth_time(t - 30)
        .sign();
    let a = check_ok(&d, json!({"subject": ALICE, "idToken": stale})).await;
    assert_eq!(a["stepUp"]["required"], true);
    assert!(a["stepUp"]["reasons"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("older than the event"));

    let wrong_acr = op
        .access_token("alice")
        .claim("email", json!(ALICE))
        .acr("urn:okta:loa:1fa:pwd")
        .auth_time(t + 30)
        .sign();
    let a = check_ok(&d, json!({"subject": ALICE, "accessToken": wrong_acr})).await;
    assert_eq!(a["stepUp"]["required"], true);
    assert_eq!(
        a["stepUp"]["reasons"][0]["problem"],
        "acr \"urn:okta:loa:1fa:pwd\" is not among the required acr values"
    );

    let forged = op
        .id_token("alice")
        .claim("email", json!(ALICE))
        .acr("urn:okta:loa:2fa:any")
        .auth_time(t + 30)
        .sign_forged();
    let (status, v) = check(&d, json!({"subject": ALICE, "idToken": forged.clone()})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "invalid_argument");
    assert_eq!(v["message"], "idToken: the signature does not verify");

    // A genuine, fresh token of another user satisfies nothing for Alice.
    let bobs = op
        .id_token("bob")
        .claim("email", json!("bob@example.com"))
        .acr("urn:okta:loa:2fa:any")
        .auth_time(t + 30)
        .sign();
    let (status, v) = check(&d, json!({"subject": ALICE, "idToken": bobs})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("idToken: the token is about another user"),
        "{v}"
    );
    // Its iss and sub name the user as well as an email does.
    let by_sub = op
        .id_token("alice-sub")
        .acr("urn:okta:loa:2fa:any")
        .auth_time(t + 30)
        .sign();
    let a = check_ok(
        &d,
        json!({"subject": {"format": "iss_sub", "iss": op.issuer(), "sub": "alice-sub"},
               "idToken": by_sub}),
    )
    .await;
    assert_eq!(
        a["stepUp"]["required"], false,
        "no requirement on this subject: {a}"
    );
    let (status, v) = check(&d, json!({"subject": ALICE, "idToken": forged})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "invalid_argument");
    assert_eq!(v["message"], "idToken: the signature does not verify");

    let (status, v) = check(
        &d,
        json!({"subject": ALICE, "idToken": "x.y.z", "acr": "urn:okta:loa:2fa:any"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("acr: "), "{v}");
}

#[tokio::test]
async fn a_later_revoke_all_supersedes_a_step_up() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let stream = d
        .create_stream_for(
            &tx,
            json!({"credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP"}),
        )
        .await;
    let t = ssfd::clock::now_unix() - 100;
    push_event(
        &d,
        &tx,
        &stream,
        events::CREDENTIAL_CHANGE,
        events::default_payload("credential-change", None, t),
        ALICE,
    )
    .await;
    assert_eq!(
        check_ok(&d, json!({"subject": ALICE})).await["stepUp"]["required"],
        true
    );
    push_event(
        &d,
        &tx,
        &stream,
        events::SESSION_REVOKED,
        events::default_payload("session-revoked", None, t + 10),
        ALICE,
    )
    .await;
    let a = check_ok(&d, json!({"subject": ALICE})).await;
    assert_eq!(a["revoked"], true);
    assert_eq!(a["stepUp"]["required"], false, "{a}");
    // A step-up after the revocation stands again.
    push_event(
        &d,
        &tx,
        &stream,
        events::CREDENTIAL_CHANGE,
        events::default_payload("credential-change", None, t + 20),
        ALICE,
    )
    .await;
    let a = check_ok(&d, json!({"subject": ALICE, "issuedAt": rfc3339(t + 15)})).await;
    assert_eq!(a["revoked"], false);
    assert_eq!(a["stepUp"]["required"], true);
    assert_eq!(a["stepUp"]["since"], rfc3339(t + 20));
}

#[tokio::test]
async fn entra_providers_answer_with_a_claims_challenge() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let tx = TestTransmitter::start().await;
    let pid = create(
        &d,
        json!({"displayName": "Entra", "issuerUrl": op.issuer(),
               "microsoft": {"conditionalAccessIds": ["c1"], "tenant": "contoso",
                             "validationMode": "MICROSOFT_VALIDATION_MODE_ACRS"}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = d
        .create_stream_for(
            &tx,
            json!({"credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP",
                   "stepUpProviderId": pid}),
        )
        .await;
    let t = ssfd::clock::now_unix() - 60;
    push_event(
        &d,
        &tx,
        &stream,
        events::CREDENTIAL_CHANGE,
        events::default_payload("credential-change", None, t),
        ALICE,
    )
    .await;
    let a = check_ok(&d, json!({"subject": ALICE})).await;
    assert_eq!(a["stepUp"]["acrValues"], json!(["c1"]));
    assert_eq!(
        a["stepUp"]["wwwAuthenticate"],
        "Bearer error=\"insufficient_claims\", \
         claims=\"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19\""
    );
    // An Entra access token carries no auth_time: its issue time and acrs count.
    let token = op
        .access_token("alice")
        .claim("email", json!(ALICE))
        .claim("auth_time", Value::Null)
        .iat(t + 10)
        .acrs(&["c1"])
        .sign();
    let a = check_ok(&d, json!({"subject": ALICE, "accessToken": token})).await;
    assert_eq!(a["stepUp"]["required"], false, "{a}");
    let a = check_ok(
        &d,
        json!({"subject": ALICE, "issuedAt": rfc3339(t + 10), "acrs": ["c2"]}),
    )
    .await;
    assert_eq!(a["stepUp"]["required"], true);
}

#[tokio::test]
async fn a_step_up_acknowledged_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let tx = TestTransmitter::start().await;
    let mut child = common::ChildDaemon::spawn(dir.path(), "").await;
    let http = ssfd_testkit::http_client();
    let admin = child.admin_url();
    let v: Value = http
        .post(format!("{admin}/api/v1/ssf-receiver-streams"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(
            &json!({"displayName": "t", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url(),
                      "credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["ssfReceiverStream"]["id"].as_str().unwrap().to_string();
    let token = v["pushAuthTokenPlaintext"].as_str().unwrap().to_string();
    let t = ssfd::clock::now_unix() - 30;
    let set = tx
        .set()
        .event(
            events::CREDENTIAL_CHANGE,
            events::default_payload("credential-change", None, t),
        )
        .sub_id(subjects::email(ALICE))
        .sign();
    let resp = tx.push(&child.push_url(&id), &token, &set).await;
    assert_eq!(resp.status(), 202);
    // Killed right after the 202: the requirement was committed with the SET.
    child.kill9();
    let child = child.restart().await;
    let a: Value = http
        .post(format!("{}/api/v1/subjects:check", child.admin_url()))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"subject": ALICE}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["stepUp"]["required"], true, "{a}");
    assert_eq!(a["stepUp"]["since"], rfc3339(t));
}

#[tokio::test]
async fn the_console_subject_page_shows_a_step_up_requirement_and_its_header() {
    let d = TestDaemon::start().await;
    let op = TestOpenIdProvider::start().await;
    let tx = TestTransmitter::start().await;
    let provider = create(&d, oauth2_body(&op, &["urn:okta:loa:2fa:any"])).await;
    let pid = provider["id"].as_str().unwrap().to_string();
    let stream = d
        .create_stream_for(
            &tx,
            json!({"credentialChangeAction": "SSF_REVOCATION_ACTION_STEP_UP",
                   "stepUpProviderId": pid}),
        )
        .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = client
        .post(format!("{}/ui/sign-in", d.daemon.admin_url()))
        .form(&[("token", common::ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = |cookie: String| {
        let client = client.clone();
        let url = format!("{}/ui/subjects?subject=email:{ALICE}", d.daemon.admin_url());
        async move {
            let resp = client
                .get(url)
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.text().await.unwrap()
        }
    };
    let before = page(cookie.clone()).await;
    assert!(before.contains("No step-up required."), "{before}");

    let t = ssfd::clock::now_unix() - 60;
    let jti = push_event(
        &d,
        &tx,
        &stream,
        events::CREDENTIAL_CHANGE,
        events::default_payload("credential-change", None, t),
        ALICE,
    )
    .await;
    let after = page(cookie).await;
    assert!(after.contains("Step-up required since"), "{after}");
    assert!(after.contains(&pid), "{after}");
    assert!(after.contains(&jti), "{after}");
    // The header value as the application would send it (quotes HTML-escaped on the page).
    assert!(
        after.contains(
            "Bearer error=&quot;insufficient_user_authentication&quot;, \
             error_description=&quot;More recent authentication is required&quot;, \
             acr_values=&quot;urn:okta:loa:2fa:any&quot;, max_age=0"
        ),
        "{after}"
    );
}
