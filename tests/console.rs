//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against a live daemon fed by the test transmitter. Signs in, watches a stream turn from
//! "no events" to "healthy", finds a revoked subject, retries a dead action, signs out, and
//! checks that the console then shows only the sign-in page. A screenshot of each page goes to
//! `target/console-screenshots/`.
//!
//! Without Chromium and chromedriver the test skips loudly, unless `SSFD_REQUIRE_BROWSER=1`
//! (set by CI), where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, TestDaemon, ADMIN_TOKEN};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd::config::{SinkConfig, SinkKind};
use ssfd_testkit::TestTransmitter;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser and its driver, found by `SSFD_CHROMIUM` / `SSFD_CHROMEDRIVER` or at Debian's paths.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, default: &str| {
        let p = std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default));
        p.is_file().then_some(p)
    };
    Some((
        pick("SSFD_CHROMIUM", CHROMIUM)?,
        pick("SSFD_CHROMEDRIVER", CHROMEDRIVER)?,
    ))
}

/// chromedriver as a child process; ends it (and with it the browser) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(path: &Path, log: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Driver { child, port };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(driver.url() + "/status").send().await {
                if r.status().is_success() {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not answer on port {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn browser(&self, chromium: &Path, profile: &Path) -> Client {
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1440,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url())
            .await
            .unwrap()
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Reloads `path` until `probe` finds what it waits for in the page; bounded.
async fn reload_until(c: &Client, url: &str, what: &str, probe: impl Fn(&str) -> bool) -> String {
    for _ in 0..80 {
        c.goto(url).await.unwrap();
        let source = c.source().await.unwrap();
        if probe(&source) {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting for {what} at {url}");
}

/// Clicks and waits until the page it leads to shows `css`: a click returns before the
/// navigation it starts has finished.
async fn click_then(c: &Client, target: Locator<'_>, css: &str) -> fantoccini::elements::Element {
    c.find(target).await.unwrap().click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} after the click: {e}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operator_watches_streams_finds_a_revoked_subject_and_retries_a_dead_action() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        if std::env::var("SSFD_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("SSFD_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing");
        }
        eprintln!(
            "\n*** SKIPPED the console browser test: {CHROMIUM} and {CHROMEDRIVER} are needed \
             (apt-get install chromium chromium-driver) ***\n"
        );
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &work.path().join("chromedriver.log")).await;
    let browser = driver
        .browser(&chromium, &work.path().join("profile"))
        .await;
    // The scenario runs in its own task so that the browser is closed even when it fails.
    let scenario = tokio::spawn(scenario(browser.clone(), work.path().to_path_buf()));
    let outcome = scenario.await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(c: Client, work: PathBuf) {
    // A webhook sink at a port nobody listens on, tried once: every action on it ends dead.
    let secret = work.join("webhook.secret");
    std::fs::write(&secret, "webhook-secret-for-the-console-test\n").unwrap();
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    let d = TestDaemon::start_with(|config| {
        config.sinks = vec![SinkConfig {
            name: "closed-port".into(),
            kind: SinkKind::Webhook(ssfd::config::WebhookSettings {
                url: closed,
                secret_file: secret,
            }),
            timeout: Duration::from_secs(2),
            streams: Vec::new(),
            events: Vec::new(),
            max_attempts: 1,
            retry_base: Duration::from_millis(10),
        }];
    })
    .await;
    let tx = TestTransmitter::start().await;
    let (id, push_token) = d
        .create_stream_for(&tx, json!({"displayName": "Okta production"}))
        .await;
    // A second stream that stays quiet, for contrast on the streams page.
    d.create_stream_for(&tx, json!({"displayName": "SailPoint staging"}))
        .await;
    let base = d.daemon.admin_url();
    let url = |path: &str| format!("{base}{path}");

    // Not signed in: the console shows the sign-in page.
    c.goto(&url("/ui/streams")).await.unwrap();
    c.find(Locator::Id("token")).await.unwrap();
    assert!(!c.source().await.unwrap().contains("Okta production"));
    screenshot(&c, "sign-in").await;

    // A wrong token is refused; the right one signs in.
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("not-the-token")
        .await
        .unwrap();
    let refused = click_then(&c, Locator::Id("sign-in"), ".notice-error").await;
    assert_eq!(
        refused.text().await.unwrap(),
        "That is not the admin token."
    );
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    let badge = format!("span.health[data-stream=\"{id}\"]");
    click_then(&c, Locator::Id("sign-in"), &badge).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/streams");
    // The browser kept the Secure cookie on plain-http loopback, with its attributes.
    let cookie = c.get_named_cookie("ssfd_console").await.unwrap();
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_ne!(cookie.value(), ADMIN_TOKEN);

    assert_eq!(text_of(&c, &badge).await, "no events");
    screenshot(&c, "streams-before").await;

    // A push, and the stream turns healthy.
    let jti = "console-test-session-revoked";
    let set = tx
        .set()
        .jti(jti)
        .event(
            "session-revoked",
            ssfd_testkit::events::default_payload("session-revoked", None, ssfd::clock::now_unix()),
        )
        .sub_id(json!({"format": "email", "email": "alice@example.com"}))
        .sign();
    assert_eq!(d.push(&id, &push_token, &set).await.status(), 202);
    reload_until(&c, &url("/ui/streams"), "a healthy stream", |s| {
        s.contains(">healthy</span>")
    })
    .await;
    assert_eq!(text_of(&c, &badge).await, "healthy");
    let spark = c
        .find(Locator::Css(&format!(
            "tr[data-stream=\"{id}\"] svg.sparkline"
        )))
        .await
        .unwrap();
    assert_eq!(
        spark.attr("data-total").await.unwrap().as_deref(),
        Some("1")
    );
    // The script shows the time in the browser's zone and keeps RFC 3339 on hover.
    let when = c
        .find(Locator::Css(&format!("tr[data-stream=\"{id}\"] time")))
        .await
        .unwrap();
    let datetime = when.attr("datetime").await.unwrap().unwrap();
    assert!(datetime.ends_with('Z'), "{datetime}");
    assert_eq!(
        when.attr("title").await.unwrap().as_deref(),
        Some(datetime.as_str())
    );
    assert_ne!(
        when.text().await.unwrap(),
        datetime,
        "the script rewrote the time"
    );
    screenshot(&c, "streams").await;

    // One stream: settings without secrets, the event with its outcome and action.
    click_then(&c, Locator::LinkText("Okta production"), "table.events").await;
    let source = c.source().await.unwrap();
    assert!(source.contains(jti), "the event is listed");
    assert!(source.contains("session-revoked"));
    assert!(source.contains("REVOKE_ALL"), "its action");
    assert!(!source.contains(&push_token), "no secret on the page");
    screenshot(&c, "stream").await;

    // The subject lookup finds the revocation.
    c.goto(&url("/ui/subjects")).await.unwrap();
    c.find(Locator::Id("subject"))
        .await
        .unwrap()
        .send_keys("email:alice@example.com")
        .await
        .unwrap();
    let verdict = click_then(&c, Locator::Id("check"), "#verdict").await;
    assert!(verdict.text().await.unwrap().starts_with("Revoked"));
    assert!(c.source().await.unwrap().contains(jti));
    c.find(Locator::Id("step-up")).await.unwrap();
    screenshot(&c, "subjects").await;

    // The webhook at the closed port leaves a dead action; retry it from the page.
    let source = reload_until(&c, &url("/ui/actions?status=dead"), "a dead action", |s| {
        s.contains("class=\"retry\"")
    })
    .await;
    assert!(source.contains("closed-port"));
    screenshot(&c, "actions").await;
    let button = c.find(Locator::Css("button.retry")).await.unwrap();
    let action_id = button.attr("data-action").await.unwrap().unwrap();
    let notice = click_then(&c, Locator::Css("button.retry"), ".notice-info").await;
    assert_eq!(
        notice.text().await.unwrap(),
        format!("Action {action_id} is pending again.")
    );
    // The retry went through the admin API's own path: the sink got a second attempt.
    let mut attempts = 0;
    for _ in 0..200 {
        let (_, v) = d.api(Method::GET, "/api/v1/actions", None).await;
        attempts = v["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == action_id.as_str())
            .map(|a| a["attempts"].as_i64().unwrap())
            .unwrap_or(0);
        if attempts >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(attempts, 2, "the retried action was attempted again");

    // The daemon's own state.
    c.goto(&url("/ui/daemon")).await.unwrap();
    let state = text_of(&c, "#daemon-state").await;
    assert!(state.contains(env!("CARGO_PKG_VERSION")), "{state}");
    assert!(
        state.contains(&d.db_path().display().to_string()),
        "{state}"
    );
    screenshot(&c, "daemon").await;

    // Sign out: the cookie is gone and every page is the sign-in page again.
    click_then(&c, Locator::Id("sign-out"), "#token").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/sign-in");
    assert!(c.get_named_cookie("ssfd_console").await.is_err());
    for path in [
        "/ui/streams".to_string(),
        format!("/ui/streams/{id}"),
        "/ui/actions?status=dead".into(),
        "/ui/subjects?subject=email:alice@example.com".into(),
        "/ui/daemon".into(),
    ] {
        c.goto(&url(&path)).await.unwrap();
        c.find(Locator::Id("token")).await.unwrap();
        let source = c.source().await.unwrap();
        for data in [id.as_str(), "Okta production", jti, "closed-port"] {
            assert!(!source.contains(data), "{path} shows {data}");
        }
    }
}
