//! The outbound policy end to end: where ssfd's own requests may go, redirects, and error text
//! that does not tell open ports from closed ones. Traffic stays on loopback: the refusals are
//! shown against the loopback transmitter with `[outbound] allow_private` off.

mod common;

use std::time::Duration;

use common::{free_port, TestDaemon};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd_testkit::TestTransmitter;

async fn wait_for_error(d: &TestDaemon, id: &str, needle: &str) -> String {
    for _ in 0..200 {
        let msg = d.get_stream(id).await["lastErrorMessage"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if msg.contains(needle) {
            return msg;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lastErrorMessage never mentioned {needle:?}");
}

#[tokio::test]
async fn loopback_destinations_are_refused_unless_allow_private() {
    let d = TestDaemon::start_with(|c| c.outbound.allow_private = false).await;
    let tx = TestTransmitter::start().await;
    // A literal loopback address, and a name that resolves to one.
    let (literal, token) = d.create_stream_for(&tx, json!({})).await;
    let by_name = tx.jwks_url().replace("127.0.0.1", "localhost");
    let (named, named_token) = d
        .create_stream_for(&tx, json!({ "jwksUrl": by_name }))
        .await;
    for (id, token) in [(&literal, &token), (&named, &named_token)] {
        let resp = d.push(id, token, &tx.set().sign()).await;
        assert_eq!(resp.status(), 503, "{id}");
        let msg = d.get_stream(id).await["lastErrorMessage"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("allow_private"), "{msg}");
    }
    // Nothing ever reached the transmitter.
    assert_eq!(tx.jwks_fetches(), 0);

    // A poller and the management client are held to the same rule.
    let poll = d
        .create_stream_for(
            &tx,
            json!({
                "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
                "pollEndpointUrl": tx.poll_url("f"),
                "outboundAuthBearer": {"token": tx.static_token()},
            }),
        )
        .await
        .0;
    wait_for_error(&d, &poll, "allow_private").await;
    assert!(tx.poll_requests().is_empty());
}

#[tokio::test]
async fn the_same_policy_allows_loopback_for_local_trials() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    let by_name = tx.jwks_url().replace("127.0.0.1", "localhost");
    let (id, token) = d
        .create_stream_for(&tx, json!({ "jwksUrl": by_name }))
        .await;
    assert_eq!(d.push(&id, &token, &tx.set().sign()).await.status(), 202);
}

/// A server that accepts connections and then closes them, or holds them without answering.
async fn silent_server(hold: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            if hold {
                held.push(conn);
            } else {
                drop(conn);
            }
        }
    });
    port
}

#[tokio::test]
async fn probe_errors_do_not_tell_open_ports_from_closed_ones() {
    let d = TestDaemon::start_with(|c| {
        c.jwks.timeout = Duration::from_millis(300);
        c.jwks.connect_timeout = Duration::from_millis(300);
    })
    .await;
    let tx = TestTransmitter::start().await;
    let ports = [
        free_port(),
        silent_server(false).await,
        silent_server(true).await,
    ];
    let mut errors = Vec::new();
    for port in ports {
        let url = format!("http://127.0.0.1:{port}/jwks.json");
        let (id, _) = d.create_stream_for(&tx, json!({ "jwksUrl": url })).await;
        let (status, v) = d
            .api(
                Method::POST,
                &format!("/api/v1/ssf-receiver-streams/{id}/test"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["jwksReachable"], false);
        let text = v["jwksError"]
            .as_str()
            .unwrap()
            .replace(&port.to_string(), "PORT");
        errors.push(text);
    }
    assert_eq!(errors[0], errors[1], "closed vs open-and-closing");
    assert_eq!(errors[0], errors[2], "closed vs open-and-silent");
}

#[tokio::test]
async fn a_credential_never_follows_a_redirect() {
    let tx = TestTransmitter::start().await;
    // Another origin that sends every request on to the real poll endpoint.
    let target = tx.poll_url("f");
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, target)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector = format!("http://{}/poll", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let d = TestDaemon::start().await;
    let (id, _) = d
        .create_stream_for(
            &tx,
            json!({
                "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
                "pollEndpointUrl": redirector,
                "outboundAuthBearer": {"token": tx.static_token()},
            }),
        )
        .await;
    wait_for_error(&d, &id, "HTTP 307").await;
    assert!(tx.poll_requests().is_empty());
}

#[tokio::test]
async fn check_config_redacts_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("receiver.toml");
    std::fs::write(
        &path,
        "[[sink]]\ntype = \"webhook\"\nname = \"w\"\nurl = \"https://ops:hunter2@hooks.example.com/revoke?token=s3cret\"\nsecret_file = \"/etc/ssfd/hook.key\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );
    assert!(text.contains("hooks.example.com/revoke"), "{text}");
    let _: Value = json!(null);
}

#[tokio::test]
async fn an_access_token_is_only_presented_to_the_origin_it_was_obtained_for() {
    use std::sync::{Arc, Mutex};
    let tx = TestTransmitter::start().await;
    tx.set_poll_hold(Duration::from_millis(100));
    // A poll endpoint on another origin that records what it is sent.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = record.clone();
        async move {
            if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                record.lock().unwrap().push(v.to_string());
            }
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"sets":{},"moreAvailable":false}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}/poll", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let d = TestDaemon::start().await;
    let (client_id, client_secret) = tx.client_credentials();
    let (id, _) = d
        .create_stream_for(
            &tx,
            json!({
                "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
                "pollEndpointUrl": other,
                "pollInterval": "1s",
                "transmitterStreamId": "s-1",
                "outboundAuthOauth2": {"clientId": client_id, "clientSecret": client_secret,
                                       "tokenUrl": tx.token_url(), "scopes": []},
            }),
        )
        .await;
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let polled = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the poll endpoint was called");
    // A management call to the transmitter's own origin gets a token of its own.
    let _ = d
        .api(
            Method::GET,
            &format!("/api/v1/ssf-receiver-streams/{id}/transmitter-status"),
            None,
        )
        .await;
    let managed = tx
        .management_calls()
        .into_iter()
        .find_map(|c| c.authorization)
        .expect("the management endpoint was called");
    assert_ne!(polled, managed);
    assert_eq!(tx.tokens_issued(), 2);
}
