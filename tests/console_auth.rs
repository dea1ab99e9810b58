//! The web console's access rules over plain HTTP against a live daemon: no data without a
//! session, sign-in with the admin token only, the cookie's attributes, CSRF tokens on forms,
//! sign-out, and escaping of what operators and transmitters supply.

mod common;

use common::{TestDaemon, ADMIN_TOKEN};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

/// A client that shows redirects instead of following them and keeps no cookies of its own.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn is_sign_in_page(body: &str) -> bool {
    body.contains("action=\"/ui/sign-in\"") && body.contains("name=\"token\"")
}

/// Signs in; returns the `name=value` cookie pair and the Set-Cookie header.
async fn sign_in(d: &TestDaemon) -> (String, String) {
    let resp = client()
        .post(format!("{}/ui/sign-in", d.daemon.admin_url()))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/ui/streams");
    let set_cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let pair = set_cookie.split(';').next().unwrap().trim().to_string();
    (pair, set_cookie)
}

async fn get(d: &TestDaemon, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = client().get(format!("{}{path}", d.daemon.admin_url()));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn post(
    d: &TestDaemon,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", d.daemon.admin_url()))
        .form(form);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn without_a_session_every_console_route_answers_the_sign_in_page_and_no_data() {
    let d = TestDaemon::start().await;
    let tx = ssfd_testkit::TestTransmitter::start().await;
    let (id, _) = d
        .create_stream_for(&tx, json!({"displayName": "payroll-idp-feed"}))
        .await;
    let db = d.db_path().display().to_string();
    let gets = [
        "/ui".to_string(),
        "/ui/".into(),
        "/ui/streams".into(),
        format!("/ui/streams/{id}"),
        "/ui/actions".into(),
        "/ui/actions?status=dead".into(),
        "/ui/actions/1/retry".into(),
        "/ui/subjects?subject=email:alice@example.com".into(),
        "/ui/daemon".into(),
        "/ui/sign-out".into(),
        "/ui/no-such-page".into(),
    ];
    // No cookie, a made-up one, and the admin token itself as the cookie value.
    let raw_token = format!("ssfd_console={ADMIN_TOKEN}");
    for cookie in [None, Some("ssfd_console=made-up"), Some(raw_token.as_str())] {
        for path in &gets {
            let (status, body) = get(&d, path, cookie).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {cookie:?}");
            assert!(is_sign_in_page(&body), "{path}: {body}");
            for secret in [id.as_str(), "payroll-idp-feed", db.as_str()] {
                assert!(!body.contains(secret), "{path} shows {secret}");
            }
        }
        for path in ["/ui/actions/1/retry", "/ui/sign-out", "/ui/streams"] {
            let resp = post(&d, path, cookie, &[("csrf", "x")]).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "POST {path}");
            assert!(is_sign_in_page(&resp.text().await.unwrap()));
        }
    }
    // The API's bearer token does not open the console either.
    let resp = client()
        .get(format!("{}/ui/streams", d.daemon.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!resp.text().await.unwrap().contains("payroll-idp-feed"));
    // The sign-in page itself and the assets are there for everyone and carry no data.
    let (status, body) = get(&d, "/ui/sign-in", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_sign_in_page(&body));
    let (status, css) = get(&d, "/ui/assets/console.css", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains(".sparkline"));
    let (status, _) = get(&d, "/ui/assets/console.js", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_token_or_a_foreign_form_does_not_sign_in() {
    let d = TestDaemon::start().await;
    for token in ["", "wrong", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]] {
        let resp = post(&d, "/ui/sign-in", None, &[("token", token)]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert!(resp.headers().get(SET_COOKIE).is_none());
        let body = resp.text().await.unwrap();
        assert!(body.contains("That is not the admin token."), "{body}");
        assert!(is_sign_in_page(&body));
    }
    // The right token, but the form came from another site.
    let resp = client()
        .post(format!("{}/ui/sign-in", d.daemon.admin_url()))
        .header("origin", "https://evil.example")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_that_is_not_the_token() {
    let d = TestDaemon::start().await;
    let (pair, set_cookie) = sign_in(&d).await;
    let attrs: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for a in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(attrs.contains(&a), "{set_cookie} lacks {a}");
    }
    assert!(attrs.iter().any(|a| a.starts_with("Max-Age=")));
    let value = pair.strip_prefix("ssfd_console=").unwrap();
    assert!(value.len() >= 40, "{value}");
    assert!(!set_cookie.contains(ADMIN_TOKEN));
    // Two sign-ins are two sessions.
    let (other, _) = sign_in(&d).await;
    assert_ne!(other, pair);

    let resp = client()
        .get(format!("{}/ui/streams", d.daemon.admin_url()))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("No streams yet."), "{body}");
    assert!(!body.contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused_and_sign_out_ends_the_session() {
    let d = TestDaemon::start().await;
    let (cookie, _) = sign_in(&d).await;
    let (status, page) = get(&d, "/ui/actions", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&page);

    // Sign-out and retry without, or with a wrong, CSRF token.
    for form in [vec![], vec![("csrf", "")], vec![("csrf", "not-the-token")]] {
        for path in ["/ui/sign-out", "/ui/actions/1/retry"] {
            let resp = post(&d, path, Some(&cookie), &form).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path} {form:?}");
            assert!(resp.headers().get(SET_COOKIE).is_none());
            assert!(resp.text().await.unwrap().contains("CSRF"));
        }
    }
    // Another session's token is not this session's.
    let (other, _) = sign_in(&d).await;
    let (_, other_page) = get(&d, "/ui/actions", Some(&other)).await;
    let resp = post(
        &d,
        "/ui/sign-out",
        Some(&cookie),
        &[("csrf", &csrf_of(&other_page))],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The right token, sent from another site, is refused too.
    let resp = client()
        .post(format!("{}/ui/sign-out", d.daemon.admin_url()))
        .header(COOKIE, &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The session survived all that.
    assert_eq!(
        get(&d, "/ui/streams", Some(&cookie)).await.0,
        StatusCode::OK
    );

    // A retry of an action that does not exist is a clear answer, not a crash.
    let resp = post(
        &d,
        "/ui/actions/999/retry",
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("action not found"));

    let resp = post(&d, "/ui/sign-out", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/ui/sign-in");
    let cleared = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("ssfd_console=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie is dead on the daemon's side, not only in the browser.
    let (status, body) = get(&d, "/ui/streams", Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(is_sign_in_page(&body));
    // The other session is still signed in.
    assert_eq!(get(&d, "/ui/streams", Some(&other)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn what_operators_and_transmitters_supply_is_escaped() {
    let d = TestDaemon::start().await;
    let tx = ssfd_testkit::TestTransmitter::start().await;
    let evil = "<script>alert(1)</script>\"'&";
    let (id, token) = d
        .create_stream_for(&tx, json!({"displayName": evil, "description": evil}))
        .await;
    let jti = "<img src=x onerror=alert(2)>";
    let set = tx
        .set()
        .jti(jti)
        .event(
            "session-revoked",
            ssfd_testkit::events::default_payload("session-revoked", None, 0),
        )
        .sub_id(json!({"format": "email", "email": "<b>x</b>@example.com"}))
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    let (cookie, _) = sign_in(&d).await;
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;";
    for path in [
        "/ui/streams".to_string(),
        format!("/ui/streams/{id}"),
        "/ui/subjects?subject=email:%3Cb%3Ex%3C/b%3E@example.com".into(),
        "/ui/subjects?subject=%3Cscript%3E".into(),
    ] {
        let (status, body) = get(&d, &path, Some(&cookie)).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{path}"
        );
        assert!(!body.contains("<script>"), "{path}: {body}");
        assert!(!body.contains("<img"), "{path}: {body}");
        assert!(!body.contains("<b>x"), "{path}: {body}");
        if path == "/ui/streams" {
            assert!(body.contains(escaped), "{body}");
        }
        if path.ends_with(&id) {
            assert!(
                body.contains("&lt;img src=x onerror=alert(2)&gt;"),
                "{body}"
            );
        }
    }
}
