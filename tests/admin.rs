//! The admin API contract (docs/admin-api.md): shapes, validation naming fields, pagination,
//! updateMask, soft delete, stats, test, rotation, authentication, and that no secret ever
//! appears in an answer.

mod common;

use common::{TestDaemon, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd_testkit::TestTransmitter;

const STREAMS: &str = "/api/v1/ssf-receiver-streams";

fn base(tx: &TestTransmitter) -> Value {
    json!({"displayName": "okta prod", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url()})
}

#[tokio::test]
async fn create_returns_the_token_once_and_the_record() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let mut body = base(&tx);
    body["description"] = json!("from the IdP");
    let (status, v) = d.api(Method::POST, STREAMS, Some(body)).await;
    assert_eq!(status, 200);
    let token = v["pushAuthTokenPlaintext"].as_str().unwrap();
    assert!(token.len() >= 32);
    let s = &v["ssfReceiverStream"];
    let id = s["id"].as_str().unwrap();
    assert_eq!(s["displayName"], "okta prod");
    assert_eq!(s["description"], "from the IdP");
    assert_eq!(s["enabled"], true);
    assert_eq!(s["deliveryMethod"], "SSF_DELIVERY_METHOD_PUSH");
    assert_eq!(
        s["sessionRevokedAction"],
        "SSF_REVOCATION_ACTION_UNSPECIFIED"
    );
    assert_eq!(
        s["pushEndpointUrl"],
        format!("http://127.0.0.1:8080/ssf/push/{id}")
    );
    assert!(s["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(s.get("pushAuthToken").is_none());
    // Only create shows the token.
    let got = d.get_stream(id).await;
    assert!(!got.to_string().contains(token));
    let (_, list) = d.api(Method::GET, STREAMS, None).await;
    assert!(!list.to_string().contains(token));
    // The database holds a hash, not the token.
    let db = match std::fs::read_to_string(d.dir.path().join(common::PG_URL_FILE)) {
        Ok(url) => pg_dump(&url).await,
        Err(_) => std::fs::read(d.db_path()).unwrap(),
    };
    assert!(!db.is_empty());
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"issuerUrl": tx.issuer()}), "displayName"),
        (json!({"displayName": "x"}), "issuerUrl"),
        (
            json!({"displayName": "x", "issuerUrl": "not a url"}),
            "issuerUrl",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "jwksUrl": "ftp://x"}),
            "jwksUrl",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "deliveryMethod": "SMOKE"}),
            "deliveryMethod",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "deliveryMethod": "SSF_DELIVERY_METHOD_POLL"}),
            "pollEndpointUrl",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "pollInterval": "often"}),
            "pollInterval",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "pushAuthToken": "short"}),
            "pushAuthToken",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "enabled": "yes"}),
            "enabled",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "eventTypesEnabled": "all"}),
            "eventTypesEnabled",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "sessionRevokedAction": "KILL"}),
            "sessionRevokedAction",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "accountDisabledAction": 3}),
            "accountDisabledAction",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "outboundAuthBearer": {}}),
            "outboundAuthBearer.token",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "outboundAuthOauth2": {"clientId": "c", "clientSecret": "s"}}),
            "outboundAuthOauth2.tokenUrl",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "outboundAuthOauth2": {"clientId": "c", "clientSecret": "s", "tokenUrl": "https://as/t", "scopes": "a b"}}),
            "outboundAuthOauth2.scopes",
        ),
        (
            json!({"displayName": "x", "issuerUrl": tx.issuer(), "outboundAuthBearer": {"token": "t"}, "outboundAuthOauth2": {"clientId": "c", "clientSecret": "s", "tokenUrl": "https://as/t"}}),
            "outboundAuthBearer",
        ),
    ];
    for (body, field) in cases {
        let (status, v) = d.api(Method::POST, STREAMS, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["code"], "invalid_argument", "{body}");
        assert!(
            v["message"].as_str().unwrap().starts_with(field),
            "{body} -> {v}, expected field {field}"
        );
    }
    // Not JSON at all.
    let resp = d
        .http
        .post(format!("{}{STREAMS}", d.daemon.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "invalid_argument");
    // Nothing was created by any of it.
    let (_, list) = d.api(Method::GET, STREAMS, None).await;
    assert_eq!(list["list"], json!([]));
}

#[tokio::test]
async fn http_issuers_need_allow_http() {
    let d = TestDaemon::start_with(|c| c.jwks.allow_http = false).await;
    let (status, v) = d
        .api(
            Method::POST,
            STREAMS,
            Some(json!({"displayName": "x", "issuerUrl": "http://idp.example.com"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("issuerUrl"));
    let (status, _) = d
        .api(
            Method::POST,
            STREAMS,
            Some(json!({"displayName": "x", "issuerUrl": "https://idp.example.com"})),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn poll_streams_have_no_push_url_or_token() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let mut body = base(&tx);
    body["deliveryMethod"] = json!("SSF_DELIVERY_METHOD_POLL");
    body["pollEndpointUrl"] = json!(format!("{}/poll", tx.issuer()));
    body["pollInterval"] = json!("30s");
    let (status, v) = d.api(Method::POST, STREAMS, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("pushAuthTokenPlaintext").is_none());
    let s = &v["ssfReceiverStream"];
    assert_eq!(s["pushEndpointUrl"], "");
    assert_eq!(s["pollInterval"], "30s");
    assert_eq!(s["deliveryMethod"], "SSF_DELIVERY_METHOD_POLL");
    let id = s["id"].as_str().unwrap();
    let (status, v) = d
        .api(
            Method::POST,
            &format!("{STREAMS}/{id}/rotate-push-token"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn unspecified_delivery_means_push_and_a_supplied_token_is_taken_over() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let supplied = "a-token-the-transmitter-already-holds-0123456789";
    let mut body = base(&tx);
    body["deliveryMethod"] = json!("SSF_DELIVERY_METHOD_UNSPECIFIED");
    body["pushAuthToken"] = json!(supplied);
    let (status, v) = d.api(Method::POST, STREAMS, Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(v["pushAuthTokenPlaintext"], supplied);
    assert_eq!(
        v["ssfReceiverStream"]["deliveryMethod"],
        "SSF_DELIVERY_METHOD_PUSH"
    );
    let id = v["ssfReceiverStream"]["id"].as_str().unwrap();
    assert_eq!(d.push(id, supplied, &tx.set().sign()).await.status(), 202);
}

#[tokio::test]
async fn list_paginates() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = base(&tx);
        body["displayName"] = json!(format!("s{i}"));
        let (_, v) = d.api(Method::POST, STREAMS, Some(body)).await;
        ids.push(v["ssfReceiverStream"]["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let (status, v) = d
            .api(
                Method::GET,
                &format!("{STREAMS}?pageSize=2&pageToken={token}"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        for s in v["list"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_string());
        }
        token = v["nextPageToken"].as_str().unwrap_or("").to_string();
        if token.is_empty() {
            break;
        }
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let (_, all) = d.api(Method::GET, STREAMS, None).await;
    assert_eq!(all["list"].as_array().unwrap().len(), 5);
    assert!(all["nextPageToken"].as_str().unwrap_or("").is_empty());
    let (status, v) = d
        .api(Method::GET, &format!("{STREAMS}?pageSize=lots"), None)
        .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("pageSize"));
    let (status, v) = d
        .api(Method::GET, &format!("{STREAMS}?pageToken=garbage!"), None)
        .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("pageToken"));
}

#[tokio::test]
async fn get_unknown_is_404() {
    let d = TestDaemon::start().await;
    let (status, v) = d.api(Method::GET, &format!("{STREAMS}/nope"), None).await;
    assert_eq!(status, 404);
    assert_eq!(v["code"], "not_found");
}

#[tokio::test]
async fn update_with_and_without_mask() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, _) = d
        .create_stream_for(&tx, json!({"description": "before"}))
        .await;
    let path = format!("{STREAMS}/{id}");
    // With a mask, only the named fields change even if others are present.
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(json!({"ssfReceiverStream": {"displayName": "renamed", "enabled": false, "description": "ignored"},
                        "updateMask": "displayName,enabled"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let s = &v["ssfReceiverStream"];
    assert_eq!(s["displayName"], "renamed");
    assert_eq!(s["enabled"], false);
    assert_eq!(s["description"], "before");
    // Without a mask, every field present is updated (PATCH accepted too).
    let (status, v) = d
        .api(
            Method::PATCH,
            &path,
            Some(json!({"ssfReceiverStream": {"description": "after", "sessionRevokedAction": "SSF_REVOCATION_ACTION_LOG_ONLY"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let s = &v["ssfReceiverStream"];
    assert_eq!(s["description"], "after");
    assert_eq!(s["displayName"], "renamed");
    assert_eq!(s["sessionRevokedAction"], "SSF_REVOCATION_ACTION_LOG_ONLY");
    // Read-only fields sent back by a client are ignored without a mask...
    let mut echoed = d.get_stream(&id).await;
    echoed["id"] = json!("something-else");
    echoed["createdAt"] = json!("2000-01-01T00:00:00Z");
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(json!({"ssfReceiverStream": echoed})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ssfReceiverStream"]["id"], id.as_str());
    // ...and refused when named in a mask; unknown mask fields too.
    for mask in ["id", "pushEndpointUrl", "colour"] {
        let (status, v) = d
            .api(
                Method::POST,
                &path,
                Some(json!({"ssfReceiverStream": {}, "updateMask": mask})),
            )
            .await;
        assert_eq!(status, 400, "{mask}");
        assert!(
            v["message"].as_str().unwrap().starts_with("updateMask"),
            "{v}"
        );
    }
    // Validation applies to updates and leaves the record as it was.
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(json!({"ssfReceiverStream": {"displayName": ""}, "updateMask": "displayName"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("displayName"));
    assert_eq!(d.get_stream(&id).await["displayName"], "renamed");
    // snake_case masks are accepted.
    let (status, v) = d
        .api(Method::POST, &path, Some(json!({"ssfReceiverStream": {"expectedAudience": "aud-2"}, "updateMask": "expected_audience"})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["ssfReceiverStream"]["expectedAudience"], "aud-2");
    let (status, _) = d
        .api(
            Method::POST,
            &format!("{STREAMS}/nope"),
            Some(json!({"ssfReceiverStream": {}})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn soft_delete() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    let (status, v) = d
        .api(Method::DELETE, &format!("{STREAMS}/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({}));
    let (status, _) = d.api(Method::GET, &format!("{STREAMS}/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = d
        .api(Method::DELETE, &format!("{STREAMS}/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let (_, list) = d.api(Method::GET, STREAMS, None).await;
    assert_eq!(list["list"], json!([]));
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 404);
    // Soft: the row and its events are still in the database.
    let store = &d.daemon.app.store;
    let row = store.get_stream(&id).await.unwrap().unwrap();
    assert!(row.deleted_at.is_some());
    assert_eq!(store.stream_counts(&id).await.unwrap().received, 1);
}

#[tokio::test]
async fn every_api_call_needs_the_admin_token() {
    // The per-address limit on wrong tokens would answer 429 part way through.
    let d = TestDaemon::start_with(|c| c.server.max_failed_auth_per_minute = 100_000).await;
    let tx = TestTransmitter::start().await;
    let (id, _) = d.create_stream_for(&tx, json!({})).await;
    // Every route the router serves behind the token.
    let calls: Vec<(Method, String)> = ssfd::admin::api_routes()
        .iter()
        .map(|r| {
            (
                Method::from_bytes(r.method.as_bytes()).unwrap(),
                r.path.replace("{id}", &id),
            )
        })
        .collect();
    assert!(calls.len() >= 18);
    for (method, path) in calls {
        for auth in [None, Some("Bearer wrong"), Some("Basic YTpi")] {
            let mut req = d
                .http
                .request(method.clone(), format!("{}{path}", d.daemon.admin_url()));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} {auth:?}");
            assert!(resp.headers().get("www-authenticate").is_some());
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["code"], "unauthenticated");
        }
    }
    // The stream is untouched.
    assert_eq!(d.get_stream(&id).await["id"], id.as_str());
    for path in ["/healthz", "/readyz"] {
        let resp = d
            .http
            .get(format!("{}{path}", d.daemon.admin_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_answers() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let bearer = "outbound-bearer-secret-value-123";
    let client_secret = "oauth-client-secret-value-456";
    let (id, _) = d
        .create_stream_for(&tx, json!({"outboundAuthBearer": {"token": bearer}}))
        .await;
    let mut answers = Vec::new();
    answers.push(d.get_stream(&id).await);
    let (_, v) = d
        .api(
            Method::POST,
            &format!("{STREAMS}/{id}"),
            Some(json!({"ssfReceiverStream": {"outboundAuthBearer": null,
                         "outboundAuthOauth2": {"clientId": "cid", "clientSecret": client_secret,
                                                "scopes": ["ssf.read"], "tokenUrl": "http://127.0.0.1:9/token"}},
                        "updateMask": "outboundAuthBearer,outboundAuthOauth2"})),
        )
        .await;
    assert_eq!(
        v["ssfReceiverStream"]["outboundAuthOauth2"]["clientId"],
        "cid"
    );
    assert_eq!(
        v["ssfReceiverStream"]["outboundAuthOauth2"]["scopes"],
        json!(["ssf.read"])
    );
    assert!(v["ssfReceiverStream"].get("outboundAuthBearer").is_none());
    answers.push(v);
    // Echoing the record back (without the write-only secret) keeps the secret.
    let echoed = d.get_stream(&id).await;
    let (status, v) = d
        .api(
            Method::POST,
            &format!("{STREAMS}/{id}"),
            Some(json!({"ssfReceiverStream": echoed})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    answers.push(v);
    answers.push(d.api(Method::GET, STREAMS, None).await.1);
    answers.push(d.stats(&id).await);
    answers.push(
        d.api(
            Method::POST,
            &format!("{STREAMS}/{id}/test"),
            Some(json!({})),
        )
        .await
        .1,
    );
    for a in &answers {
        let text = a.to_string();
        assert!(!text.contains(bearer), "{text}");
        assert!(!text.contains(client_secret), "{text}");
        assert!(!text.contains(ADMIN_TOKEN), "{text}");
    }
    let stored = d.daemon.app.store.get_stream(&id).await.unwrap().unwrap();
    assert!(
        matches!(
            &stored.outbound_auth,
            Some(ssfd::stream::OutboundAuth::Oauth2 { client_secret: s, .. }) if s == client_secret
        ),
        "the secret must be kept for outbound calls"
    );
}

#[tokio::test]
async fn stats_shape() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    let s = d.stats(&id).await;
    assert_eq!(s["streamId"], id.as_str());
    for k in [
        "eventsReceivedCount",
        "eventsActedOnCount",
        "eventsFailedCount",
    ] {
        assert_eq!(s[k], 0, "{k}");
    }
    assert!(s.get("lastEventReceivedAt").is_none());
    d.push(&id, &token, &tx.set().sign()).await;
    d.push(
        &id,
        &token,
        &tx.set().iss("https://other.example.com").sign(),
    )
    .await;
    let s = d.stats(&id).await;
    assert_eq!(s["eventsReceivedCount"], 1);
    assert_eq!(s["eventsFailedCount"], 1);
    assert!(s["eventsReceivedCount"].is_number());
    assert!(s["lastErrorMessage"]
        .as_str()
        .unwrap()
        .starts_with("invalid_issuer"));
    let (status, _) = d
        .api(Method::GET, &format!("{STREAMS}/nope/stats"), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn test_endpoint_reports_keys_policy_and_subject() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, _) = d.create_stream_for(&tx, json!({})).await;
    let path = format!("{STREAMS}/{id}/test");
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(json!({"testSubject": "alice@example.com"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["jwksReachable"], true);
    assert_eq!(v["jwksKeyCount"], 1);
    assert_eq!(v["jwksError"], "");
    assert_eq!(v["upstreamSubject"], "email:alice@example.com");
    assert_eq!(
        v["configuredSessionRevokedAction"],
        "SSF_REVOCATION_ACTION_REVOKE_ALL"
    );
    assert_eq!(v["identityLinkFound"], false);
    assert_eq!(v["ready"], true);
    // No body at all is fine.
    let (status, _) = d.api(Method::POST, &path, None).await;
    assert_eq!(status, 200);
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(json!({"testSubject": "not a subject"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("testSubject"));
    // Knobs show up in the preview.
    d.api(
        Method::POST,
        &format!("{STREAMS}/{id}"),
        Some(json!({"ssfReceiverStream": {"sessionRevokedAction": "SSF_REVOCATION_ACTION_LOG_ONLY"}})),
    )
    .await;
    let (_, v) = d.api(Method::POST, &path, None).await;
    assert_eq!(
        v["configuredSessionRevokedAction"],
        "SSF_REVOCATION_ACTION_LOG_ONLY"
    );
    // An unreachable JWKS is reported, not an error.
    tx.set_jwks_status(503);
    let (status, v) = d.api(Method::POST, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["jwksReachable"], false);
    assert_eq!(v["ready"], false);
    assert!(v["jwksError"].as_str().unwrap().contains("503"));
}

#[tokio::test]
async fn restart_keeps_streams_events_and_tokens() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    let set = tx.set().jti("before-restart").sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let before = d.get_stream(&id).await;
    let config = common::test_config(d.dir.path());
    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, config).await;
    assert_eq!(d.get_stream(&id).await, before);
    let events = d.events(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["jti"], "before-restart");
    // The same token still works, and the jti is still known.
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert_eq!(d.events(&id).await.len(), 1);
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
    assert_eq!(d.stats(&id).await["eventsReceivedCount"], 2);
}

#[tokio::test]
async fn events_listing_filters() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (a, ta) = d.create_stream_for(&tx, json!({})).await;
    let (b, tb) = d.create_stream_for(&tx, json!({})).await;
    d.push(&a, &ta, &tx.set().sign()).await;
    d.push(&b, &tb, &tx.set().sign()).await;
    d.push(&b, &tb, &tx.set().sign()).await;
    let (_, all) = d.api(Method::GET, "/api/v1/events", None).await;
    assert_eq!(all["list"].as_array().unwrap().len(), 3);
    assert_eq!(d.events(&b).await.len(), 2);
    let (_, recent) = d.api(Method::GET, "/api/v1/events?since=1h", None).await;
    assert_eq!(recent["list"].as_array().unwrap().len(), 3);
    let (_, future) = d
        .api(
            Method::GET,
            "/api/v1/events?since=2100-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(future["list"].as_array().unwrap().len(), 0);
    let (status, v) = d
        .api(Method::GET, "/api/v1/events?since=whenever", None)
        .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("since"));
}

#[tokio::test]
async fn admin_updates_keep_the_rejected_count() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    d.push(
        &id,
        &token,
        &tx.set().iss("https://other.example.com").sign(),
    )
    .await;
    assert_eq!(d.stats(&id).await["eventsFailedCount"], 1);
    let (status, _) = d
        .api(
            Method::POST,
            &format!("{STREAMS}/{id}"),
            Some(json!({"ssfReceiverStream": {"description": "x"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(d.stats(&id).await["eventsFailedCount"], 1);
}

#[tokio::test]
async fn absurd_inputs_get_answers_not_crashes() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    // A SET dated far beyond the year 9999 in seconds is stored and can be queried; its iat is
    // read as milliseconds (2001), not as a revocation until the end of time.
    let set = tx
        .set()
        .iat(1_000_000_000_000)
        .event("session-revoked", json!({}))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let (status, v) = d
        .api(
            Method::POST,
            "/api/v1/subjects:check",
            Some(json!({"subject": {"format": "email", "email": "alice@example.com"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["revoked"], true);
    assert_eq!(v["revokedBefore"], "2001-09-09T01:46:40Z");
    let (status, _) = d
        .api(
            Method::POST,
            "/api/v1/subjects:check",
            Some(json!({"subject": "email:alice@example.com", "issuedAt": "2026-01-01T10:00:00+02:00"})),
        )
        .await;
    assert_eq!(status, 200);
    // Huge durations are field errors.
    let mut body = base(&tx);
    body["pollInterval"] = json!("1e300s");
    let (status, v) = d.api(Method::POST, STREAMS, Some(body)).await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("pollInterval"));
    let (status, v) = d
        .api(Method::GET, "/api/v1/events?since=1e300s", None)
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = d
        .api(Method::GET, "/api/v1/events?pageSize=abc", None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(v["code"], "invalid_argument");
    // A push token must be visible ASCII.
    let mut body = base(&tx);
    body["pushAuthToken"] = json!("€".repeat(11));
    let (status, v) = d.api(Method::POST, STREAMS, Some(body)).await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().starts_with("pushAuthToken"));
}

#[tokio::test]
async fn unknown_api_paths_need_the_token_first() {
    let d = TestDaemon::start().await;
    let url = format!("{}/api/v1/nothing-here", d.daemon.admin_url());
    let resp = d.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = d
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "not_found");
    let resp = d
        .http
        .put(format!("{}{STREAMS}", d.daemon.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_disabled_poll_stream_may_wait_for_its_url() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let mut body = base(&tx);
    body["deliveryMethod"] = json!("SSF_DELIVERY_METHOD_POLL");
    body["enabled"] = json!(false);
    let (status, v) = d.api(Method::POST, STREAMS, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let id = v["ssfReceiverStream"]["id"].as_str().unwrap().to_string();
    // Enabling it without a URL names the field.
    let (status, v) = d
        .api(
            Method::POST,
            &format!("{STREAMS}/{id}"),
            Some(json!({"ssfReceiverStream": {"enabled": true}, "updateMask": "enabled"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .starts_with("pollEndpointUrl"));
}

#[tokio::test]
async fn a_stored_secret_never_follows_its_url_to_another_host() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let elsewhere = TestTransmitter::start().await;
    let (id, _) = d
        .create_stream_for(
            &tx,
            json!({"deliveryMethod": "SSF_DELIVERY_METHOD_POLL", "enabled": false,
                   "pollEndpointUrl": tx.poll_url("f"),
                   "outboundAuthBearer": {"token": "bearer-for-the-first-host"}}),
        )
        .await;
    let path = format!("{STREAMS}/{id}");
    let update = |body: Value| d.api(Method::PATCH, &path, Some(body));
    // Only the URL, to another host: refused, and nothing changed.
    let (status, v) = update(
        json!({"ssfReceiverStream": {"pollEndpointUrl": elsewhere.poll_url("f")},
                                    "updateMask": "pollEndpointUrl"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "invalid_argument");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("pollEndpointUrl"),
        "{v}"
    );
    assert_eq!(d.get_stream(&id).await["pollEndpointUrl"], tx.poll_url("f"));
    // Another path on the same host keeps the token.
    let (status, v) = update(
        json!({"ssfReceiverStream": {"pollEndpointUrl": tx.poll_url("g")},
                                    "updateMask": "pollEndpointUrl"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // The new host with the secret given again.
    let (status, v) = update(json!({"ssfReceiverStream": {"pollEndpointUrl": elsewhere.poll_url("f"),
                                      "outboundAuthBearer": {"token": "bearer-for-the-second-host"}},
                                    "updateMask": "pollEndpointUrl,outboundAuthBearer"}))
    .await;
    assert_eq!(status, 200, "{v}");

    // The same for an OAuth client secret and its tokenUrl.
    let oauth = json!({"clientId": "cid", "clientSecret": "secret-for-the-first-host",
                       "scopes": [], "tokenUrl": tx.token_url()});
    let (status, v) = update(
        json!({"ssfReceiverStream": {"outboundAuthBearer": null, "outboundAuthOauth2": oauth},
                                    "updateMask": "outboundAuthBearer,outboundAuthOauth2"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let moved = json!({"clientId": "cid", "scopes": [], "tokenUrl": elsewhere.token_url()});
    let (status, v) = update(json!({"ssfReceiverStream": {"outboundAuthOauth2": moved},
                                    "updateMask": "outboundAuthOauth2"}))
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("outboundAuthOauth2.tokenUrl"),
        "{v}"
    );
    assert_eq!(
        d.get_stream(&id).await["outboundAuthOauth2"]["tokenUrl"],
        tx.token_url()
    );
    let mut given = moved.clone();
    given["clientSecret"] = json!("secret-for-the-second-host");
    let (status, v) = update(json!({"ssfReceiverStream": {"outboundAuthOauth2": given},
                                    "updateMask": "outboundAuthOauth2"}))
    .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn urls_with_credentials_in_them_are_refused() {
    let d = TestDaemon::start().await;
    let (status, v) = d
        .api(
            Method::POST,
            STREAMS,
            Some(json!({"displayName": "x", "issuerUrl": "https://user:pw@tr.example.com"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("issuerUrl"),
        "{v}"
    );
    assert!(!v.to_string().contains("pw@"), "{v}");
}

#[tokio::test]
async fn without_the_token_wrong_methods_do_not_reveal_routes() {
    let d = TestDaemon::start().await;
    let url = |p: &str| format!("{}{p}", d.daemon.admin_url());
    for (method, path) in [
        (Method::PUT, STREAMS),
        (Method::DELETE, "/api/v1/events"),
        (Method::GET, "/api/v1/subjects:check"),
        (Method::PUT, "/api/v1/no-such-route"),
    ] {
        let resp = d
            .http
            .request(method.clone(), url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
        assert!(resp.headers().get("allow").is_none(), "{method} {path}");
    }
    // With the token, a wrong method is a plain 405.
    let resp = d
        .http
        .put(url(STREAMS))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn an_admin_token_file_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.admin.token = None;
    let file = dir.path().join("admin.token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    config.admin.token_file = file.clone();
    let err = match ssfd::daemon::Daemon::start(config.clone()).await {
        Ok(_) => panic!("started with a world-writable admin token file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("writable by group or others"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = ssfd::daemon::Daemon::start(config).await.unwrap();
    d.shutdown().await;
}

/// A query string axum cannot read (a key given twice) is an API error like any other bad
/// input, `{"code", "message"}` as JSON, not axum's plain-text rejection (found by schemathesis).
#[tokio::test]
async fn a_bad_query_string_is_a_json_api_error() {
    let d = TestDaemon::start().await;
    for path in [
        "/api/v1/ssf-receiver-streams?pageSize=1&pageSize=2",
        "/api/v1/events?since=1h&since=2h",
        "/api/v1/actions?status=dead&status=done",
    ] {
        let resp = d
            .http
            .get(format!("{}{path}", d.daemon.admin_url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "invalid_argument", "{path}");
        assert!(v["message"].as_str().unwrap().contains("duplicate"), "{v}");
    }
    let resp = d
        .http
        .delete(format!(
            "{}/api/v1/ssf-receiver-streams/x?remote=true&remote=false",
            d.daemon.admin_url()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/json");
}

/// Every stored row of the PostgreSQL database at `url`, as text (what a database dump holds).
async fn pg_dump(url: &str) -> Vec<u8> {
    let out = tokio::process::Command::new("pg_dump")
        .args(["--data-only", url])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
