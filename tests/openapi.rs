//! `docs/openapi.json` matches the admin router: every route is described and every described
//! operation is routed; the document is served without a token.

mod common;

use std::collections::BTreeSet;

use common::TestDaemon;
use serde_json::Value;

/// Paths the document leaves out by design: the operator console's HTML pages.
fn undocumented(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

fn routed() -> BTreeSet<(String, String)> {
    ssfd::admin::api_routes()
        .iter()
        .chain(ssfd::admin::public_routes().iter())
        .filter(|r| !undocumented(r.path))
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc: Value = serde_json::from_str(ssfd::admin::openapi::DOCUMENT).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routed = routed();
    let documented = documented(&doc);
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routed but not in docs/openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        extra.is_empty(),
        "in docs/openapi.json but not routed: {extra:?}"
    );
}

#[test]
fn open_routes_are_marked_open_and_token_routes_need_the_token() {
    let doc: Value = serde_json::from_str(ssfd::admin::openapi::DOCUMENT).unwrap();
    let security = |method: &str, path: &str| {
        doc["paths"][path][method.to_lowercase()]
            .get("security")
            .cloned()
    };
    for r in ssfd::admin::public_routes() {
        assert_eq!(
            security(r.method, r.path),
            Some(serde_json::json!([])),
            "{} {}",
            r.method,
            r.path
        );
    }
    for r in ssfd::admin::api_routes() {
        assert_eq!(security(r.method, r.path), None, "{} {}", r.method, r.path);
    }
    assert_eq!(doc["security"], serde_json::json!([{"adminToken": []}]));
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let d = TestDaemon::start().await;
    let resp = d
        .http
        .get(format!("{}/api/openapi.json", d.daemon.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served: Value = resp.json().await.unwrap();
    let kept: Value = serde_json::from_str(ssfd::admin::openapi::DOCUMENT).unwrap();
    assert_eq!(served, kept);
    // The rest of /api still needs the token.
    let resp = d
        .http
        .get(format!(
            "{}/api/v1/ssf-receiver-streams",
            d.daemon.admin_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
