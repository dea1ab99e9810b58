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
    assert!(detail.contains("connection failed"), "{detail}");
    for check in ["issuer", "jwks", "acrValues", "clientCredentials"] {
        assert_eq!(result_of(&a, check).0, "SKIPPED", "{check}");
    }
    // lastTestedAt is set whatever the outcome.
    assert!(a["stepUpProvider"]["lastTestedAt"].is_string());
}

fn jwks_settings() -> JwksConfig {
    let mut c = ssfd::config::Config::default().jwks;
    c.allow_http = true;
    c
}

#[tokio::test]
async fn presented_tokens_are_verified_against_the_issuer_keys() {
    let op = TestOpenIdProvider::start().await;
    let settings = jwks_settings();
    let keys = JwksCache::new(&settings).unwrap();
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
