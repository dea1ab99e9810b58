//! The operator command line against a real daemon started in-process: every client command is
//! the built `ssfd` binary talking to the admin API over loopback, checked by its output and its
//! exit code.

mod common;

use std::path::Path;
use std::process::Output;

use common::{TestDaemon, ADMIN_TOKEN};
use serde_json::Value;

/// The client commands, run against an in-process daemon of the harness.
impl TestDaemon {
    /// Runs `ssfd ARGS` against this daemon with the right URL and token.
    async fn ssfd(&self, args: &[&str]) -> Run {
        let url = self.daemon.admin_url();
        let mut all = vec!["--admin-url", url.as_str()];
        all.extend(args);
        run_in(self.dir.path(), &all, &[("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)]).await
    }

    /// Runs `ssfd ARGS` and expects success.
    async fn ok(&self, args: &[&str]) -> Run {
        let r = self.ssfd(args).await;
        assert_eq!(r.code, 0, "ssfd {args:?}: {r:?}");
        r
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let r = self.ok(&all).await;
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
    }

    /// Creates a PUSH stream; returns its ID and push token.
    async fn create(&self, name: &str) -> (String, String) {
        let v = self
            .json(&[
                "streams",
                "create",
                "--name",
                name,
                "--issuer",
                "http://127.0.0.1:1/issuer",
            ])
            .await;
        (
            v["ssfReceiverStream"]["id"].as_str().unwrap().to_string(),
            v["pushAuthTokenPlaintext"].as_str().unwrap().to_string(),
        )
    }

    /// The status a push with `token` gets: 401 for a wrong token, 400 for a right one (the body
    /// is not a SET).
    async fn push_status(&self, id: &str, token: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/ssf/push/{id}", self.daemon.push_url()))
            .bearer_auth(token)
            .header("content-type", "application/secevent+jwt")
            .body("not-a-jws")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `dir` with a clean client environment plus `env`.
async fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssfd"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SSFD_ADMIN_URL")
        .env_remove("SSFD_ADMIN_TOKEN")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().await.unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The value after `Label:` in a block of `Label:  value` lines.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label:?} in\n{text}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_the_push_url_and_a_working_token_once() {
    let h = TestDaemon::start().await;
    let r = h
        .ok(&[
            "streams",
            "create",
            "--name",
            "Okta prod",
            "--issuer",
            "http://127.0.0.1:1/issuer",
            "--audience",
            "https://ssfd.example.net",
        ])
        .await;
    let first = r.stdout.lines().next().unwrap();
    let id = first
        .strip_prefix("Created stream ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(first.ends_with("(Okta prod)."), "{first}");
    assert_eq!(
        field(&r.stdout, "Push URL"),
        format!("http://127.0.0.1:8080/ssf/push/{id}")
    );
    let token = field(&r.stdout, "Push token").to_string();
    assert!(token.len() >= 32, "{token}");
    assert!(r.stderr.contains("shown only now"), "{}", r.stderr);

    assert_eq!(h.push_status(&id, "wrong-token").await, 401);
    assert_eq!(h.push_status(&id, &token).await, 400);

    // The token is not shown again.
    let get = h.ok(&["streams", "get", &id]).await;
    assert!(!get.stdout.contains(&token));
    assert!(!get.stderr.contains(&token));
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle() {
    let h = TestDaemon::start().await;
    let (id, token) = h.create("first").await;

    // list: a table, and the raw answer with --json.
    let list = h.ok(&["streams", "list"]).await;
    let mut lines = list.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "NAME", "METHOD", "ENABLED", "ISSUER", "LAST", "VERIFIED", "LAST", "ERROR"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            id.as_str(),
            "first",
            "PUSH",
            "yes",
            "http://127.0.0.1:1/issuer",
            "-",
            "-"
        ]
    );
    let v = h.json(&["streams", "list"]).await;
    assert_eq!(v["list"][0]["id"], id.as_str());
    assert_eq!(v["list"].as_array().unwrap().len(), 1);

    // get
    let get = h.ok(&["streams", "get", &id]).await;
    assert_eq!(field(&get.stdout, "ID"), id);
    assert_eq!(field(&get.stdout, "Name"), "first");
    assert_eq!(field(&get.stdout, "Enabled"), "yes");
    assert_eq!(field(&get.stdout, "Delivery"), "PUSH");
    assert_eq!(field(&get.stdout, "Issuer"), "http://127.0.0.1:1/issuer");
    assert_eq!(
        field(&get.stdout, "JWKS URL"),
        "(discovered from the issuer)"
    );
    assert_eq!(field(&get.stdout, "Session revoked"), "policy default");
    assert_eq!(field(&get.stdout, "Profile"), "SSF_1_0");
    assert_eq!(field(&get.stdout, "Metadata URL"), "-");
    h.ok(&[
        "streams",
        "update",
        &id,
        "--compatibility-profile",
        "LEGACY_SSE",
        "--metadata-url",
        "http://127.0.0.1:1/.well-known/sse-configuration",
    ])
    .await;
    let get = h.ok(&["streams", "get", &id]).await;
    assert_eq!(field(&get.stdout, "Profile"), "LEGACY_SSE");
    assert_eq!(
        field(&get.stdout, "Metadata URL"),
        "http://127.0.0.1:1/.well-known/sse-configuration"
    );
    let bad = h
        .ssfd(&["streams", "update", &id, "--compatibility-profile", "SSE"])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("compatibilityProfile"), "{bad:?}");
    h.ok(&[
        "streams",
        "update",
        &id,
        "--compatibility-profile",
        "SSF_1_0",
        "--metadata-url",
        "",
    ])
    .await;

    // update: only the fields given change.
    let up = h
        .ok(&[
            "streams",
            "update",
            &id,
            "--name",
            "renamed",
            "--disable",
            "--session-revoked-action",
            "log-only",
            "--event-type",
            "session-revoked",
        ])
        .await;
    assert!(
        up.stdout.starts_with(&format!("Updated stream {id} (")),
        "{}",
        up.stdout
    );
    assert_eq!(field(&up.stdout, "Name"), "renamed");
    let s = &h.json(&["streams", "get", &id]).await["ssfReceiverStream"];
    assert_eq!(s["displayName"], "renamed");
    assert_eq!(s["enabled"], false);
    assert_eq!(s["sessionRevokedAction"], "SSF_REVOCATION_ACTION_LOG_ONLY");
    assert_eq!(
        s["credentialChangeAction"],
        "SSF_REVOCATION_ACTION_UNSPECIFIED"
    );
    assert_eq!(
        s["eventTypesEnabled"],
        serde_json::json!(["session-revoked"])
    );
    assert_eq!(s["issuerUrl"], "http://127.0.0.1:1/issuer");
    let up = h
        .ok(&["streams", "update", &id, "--enable", "--all-event-types"])
        .await;
    assert_eq!(field(&up.stdout, "Enabled"), "yes");
    assert_eq!(field(&up.stdout, "Event types"), "all");
    // The push token survives an update.
    assert_eq!(h.push_status(&id, &token).await, 400);

    // stats
    let stats = h.ok(&["streams", "stats", &id]).await;
    assert_eq!(field(&stats.stdout, "Stream"), id);
    assert_eq!(field(&stats.stdout, "Events received"), "0");
    let v = h.json(&["streams", "stats", &id]).await;
    assert_eq!(v["stats"]["eventsReceivedCount"], 0);
    // The push above was rejected (its body is no SET), which counts as a failure.
    assert_eq!(
        field(&stats.stdout, "Events failed"),
        v["stats"]["eventsFailedCount"].to_string()
    );

    // rotate-token: a new token, the old one still valid during the overlap.
    let rot = h.ok(&["streams", "rotate-token", &id]).await;
    let new_token = field(&rot.stdout, "New push token").to_string();
    assert_ne!(new_token, token);
    assert!(rot.stderr.contains("shown only now"), "{}", rot.stderr);
    assert_eq!(h.push_status(&id, &new_token).await, 400);
    assert_eq!(h.push_status(&id, &token).await, 400);

    // delete
    let del = h.ok(&["streams", "delete", &id]).await;
    assert_eq!(del.stdout, format!("Deleted stream {id}.\n"));
    let gone = h.ssfd(&["streams", "get", &id]).await;
    assert_eq!(gone.code, 1);
    assert_eq!(gone.stderr, "error: not_found: stream not found\n");
    assert_eq!(h.ok(&["streams", "list"]).await.stdout, "No streams.\n");
    let again = h.ssfd(&["streams", "delete", &id]).await;
    assert_eq!(again.code, 1);
    assert_eq!(again.stderr, "error: not_found: stream not found\n");
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_pages_with_all() {
    let h = TestDaemon::start().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(h.create(name).await.0);
    }
    let one = h.ok(&["streams", "list", "--page-size", "1"]).await;
    assert_eq!(one.stdout.lines().count(), 2, "{}", one.stdout);
    assert!(one.stderr.contains("--all"), "{}", one.stderr);

    let all = h
        .ok(&["streams", "list", "--page-size", "1", "--all"])
        .await;
    assert_eq!(all.stdout.lines().count(), 4, "{}", all.stdout);
    assert!(all.stderr.is_empty(), "{}", all.stderr);
    let v = h
        .json(&["streams", "list", "--page-size", "2", "--all"])
        .await;
    let listed: Vec<&str> = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut got = listed.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(v["nextPageToken"], "");
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_streams_have_no_push_token() {
    let h = TestDaemon::start().await;
    let r = h
        .ok(&[
            "streams",
            "create",
            "--name",
            "kc",
            "--issuer",
            "http://127.0.0.1:1/issuer",
            "--poll",
            "--poll-url",
            "http://127.0.0.1:1/poll",
            "--poll-interval",
            "45s",
        ])
        .await;
    assert_eq!(field(&r.stdout, "Poll URL"), "http://127.0.0.1:1/poll");
    assert!(!r.stdout.contains("Push token"), "{}", r.stdout);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let id = h.json(&["streams", "list"]).await["list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let get = h.ok(&["streams", "get", &id]).await;
    assert_eq!(field(&get.stdout, "Delivery"), "POLL");
    assert_eq!(field(&get.stdout, "Poll interval"), "45s");

    // Switching to PUSH issues a token, shown once as on create.
    let up = h.ok(&["streams", "update", &id, "--push"]).await;
    let token = field(&up.stdout, "Push token").to_string();
    assert!(token.len() >= 32);
    assert!(up.stderr.contains("shown only now"), "{}", up.stderr);
    assert_eq!(h.push_status(&id, &token).await, 400);
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplied_push_token_is_taken_over() {
    let h = TestDaemon::start().await;
    let token = "transmitter-already-holds-this-token-0123456789";
    let file = h.dir.path().join("push.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let v = h
        .json(&[
            "streams",
            "create",
            "--name",
            "x",
            "--issuer",
            "http://127.0.0.1:1/issuer",
            "--push-token-file",
            file.to_str().unwrap(),
        ])
        .await;
    assert_eq!(v["pushAuthTokenPlaintext"], token);
    let id = v["ssfReceiverStream"]["id"].as_str().unwrap();
    assert_eq!(h.push_status(id, token).await, 400);

    let short = h
        .ssfd(&[
            "streams",
            "create",
            "--name",
            "x",
            "--issuer",
            "http://127.0.0.1:1/issuer",
            "--push-token",
            "short",
        ])
        .await;
    assert_eq!(short.code, 1);
    assert!(
        short
            .stderr
            .starts_with("error: invalid_argument: pushAuthToken: "),
        "{}",
        short.stderr
    );
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_test_reports_unreachable_keys() {
    let h = TestDaemon::start().await;
    let (id, _) = h.create("t").await;
    let r = h
        .ok(&["streams", "test", &id, "--subject", "alice@example.com"])
        .await;
    assert_eq!(field(&r.stdout, "Ready"), "no");
    assert!(field(&r.stdout, "Transmitter keys").starts_with("NOT reachable"));
    assert_eq!(field(&r.stdout, "Subject keys"), "email:alice@example.com");
    assert!(r.stdout.contains("session-revoked"), "{}", r.stdout);
    let v = h.json(&["streams", "test", &id]).await;
    assert_eq!(v["ready"], false);
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_list_is_empty_at_first() {
    let h = TestDaemon::start().await;
    let (id, _) = h.create("e").await;
    assert_eq!(h.ok(&["events", "list"]).await.stdout, "No events.\n");
    let r = h
        .ok(&[
            "events", "list", "--stream", &id, "--since", "1h", "--limit", "10",
        ])
        .await;
    assert_eq!(r.stdout, "No events.\n");
    let v = h
        .json(&["events", "list", "--since", "2020-01-01T00:00:00Z"])
        .await;
    assert_eq!(v["list"], serde_json::json!([]));
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_check_answers_not_revoked() {
    let h = TestDaemon::start().await;
    let r = h.ok(&["subject", "check", "email:alice@example.com"]).await;
    assert_eq!(r.stdout, "NOT REVOKED  email:alice@example.com\n");
    let v = h
        .json(&[
            "subject",
            "check",
            "alice@example.com",
            "--issued-at",
            "2026-01-31T08:00:00Z",
        ])
        .await;
    assert_eq!(v["revoked"], false);
    let bad = h.ssfd(&["subject", "check", "nonsense:"]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.starts_with("error: invalid_argument: subject: "),
        "{}",
        bad.stderr
    );
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let h = TestDaemon::start().await;
    for args in [
        &["streams", "create", "--name", "x"][..],
        &["streams", "frobnicate"],
        &["streams", "update", "some-id"],
        &[
            "streams",
            "create",
            "--name",
            "x",
            "--issuer",
            "https://i",
            "--poll-url",
            "https://p",
        ],
        &["streams", "list", "--page-size", "none"],
        &["events", "list", "--since", "yesterday"],
        &["actions", "retry", "not-a-number"],
        &["actions", "list", "--status", "sleeping"],
        &["subject", "check", "a@b", "--issued-at", "noon"],
        &[],
    ] {
        let r = h.ssfd(args).await;
        assert_eq!(r.code, 2, "ssfd {args:?}: {r:?}");
        assert!(
            r.stderr.starts_with("error: ") || r.stderr.contains("Usage"),
            "{r:?}"
        );
        assert!(r.stdout.is_empty(), "{r:?}");
    }
    // Nothing reached the daemon.
    assert_eq!(h.ok(&["streams", "list"]).await.stdout, "No streams.\n");
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_is_an_error_with_the_api_message() {
    let h = TestDaemon::start().await;
    for args in [
        &["streams", "get", "no-such-stream"][..],
        &["streams", "stats", "no-such-stream"],
        &["streams", "rotate-token", "no-such-stream"],
        &["streams", "update", "no-such-stream", "--disable"],
        &["streams", "get", "../../healthz"],
    ] {
        let r = h.ssfd(args).await;
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert_eq!(r.stderr, "error: not_found: stream not found\n", "{args:?}");
        assert!(r.stdout.is_empty());
    }
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_token_is_refused() {
    let h = TestDaemon::start().await;
    let url = h.daemon.admin_url();
    let r = run_in(
        h.dir.path(),
        &["--admin-url", &url, "streams", "list"],
        &[("SSFD_ADMIN_TOKEN", "not-the-token")],
    )
    .await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: unauthenticated: a valid admin bearer token is required\n"
    );
    h.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_not_running_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let r = run_in(
        dir.path(),
        &["--admin-url", &url, "streams", "list"],
        &[("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains(&url), "{}", r.stderr);
    assert!(r.stderr.contains("is the daemon running?"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_and_token_come_from_the_configuration() {
    let h = TestDaemon::start().await;
    let token_file = h.dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let toml = format!(
        "[server]\nadmin_listen = \"{}\"\n\n[admin]\ntoken_file = \"{}\"\n",
        h.daemon.admin_addr,
        token_file.display()
    );
    // ./receiver.toml is read when --config is not given.
    std::fs::write(h.dir.path().join("receiver.toml"), &toml).unwrap();
    let r = run_in(h.dir.path(), &["streams", "list"], &[]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "No streams.\n"), "{r:?}");

    // --config from elsewhere, with the inline token form.
    let other = tempfile::tempdir().unwrap();
    let inline = other.path().join("inline.toml");
    std::fs::write(
        &inline,
        format!(
            "[server]\nadmin_listen = \"0.0.0.0:{}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
            h.daemon.admin_addr.port()
        ),
    )
    .unwrap();
    let r = run_in(
        other.path(),
        &["streams", "list", "--config", inline.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "No streams.\n"), "{r:?}");

    // The environment overrides the file; --token-file overrides the environment.
    let r = run_in(
        h.dir.path(),
        &["streams", "list"],
        &[("SSFD_ADMIN_TOKEN", "wrong")],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let r = run_in(
        h.dir.path(),
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "streams",
            "list",
        ],
        &[("SSFD_ADMIN_TOKEN", "wrong")],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_in(
        other.path(),
        &["streams", "list"],
        &[
            ("SSFD_ADMIN_URL", &h.daemon.admin_url()),
            ("SSFD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");

    // Without any token source the message says where to put one.
    let r = run_in(other.path(), &["streams", "list"], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("error: no admin token: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("SSFD_ADMIN_TOKEN"), "{}", r.stderr);
    h.daemon.shutdown().await;
}

#[tokio::test]
async fn check_config_names_the_line_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\n\npush_listen = \"not an address\"\n").unwrap();
    let r = run_in(
        dir.path(),
        &["check-config", "--config", bad.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(r.stderr.contains("server.push_listen"), "{}", r.stderr);
    assert!(r.stdout.is_empty());

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[admin]\ntoken = \"very-secret-admin-token\"\n").unwrap();
    let r = run_in(
        dir.path(),
        &["check-config", "-c", good.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("<redacted>"), "{}", r.stdout);
    assert!(!r.stdout.contains("very-secret-admin-token"));
    assert!(
        r.stdout.contains("admin_listen = \"127.0.0.1:8081\""),
        "{}",
        r.stdout
    );

    // No file at all: the defaults.
    let r = run_in(dir.path(), &["check-config"], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("push_listen = \"127.0.0.1:8080\""),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), &["version"], &[]).await;
    assert_eq!(r.stdout, format!("ssfd {}\n", env!("CARGO_PKG_VERSION")));
    // The server side of these commands lives elsewhere; here they must at least parse.
    for args in [
        &["actions", "list", "--help"][..],
        &["actions", "retry", "--help"],
        &["events", "replay", "--help"],
        &["subject", "check", "--help"],
        &["streams", "create", "--help"],
        &["--help"],
    ] {
        let r = run_in(dir.path(), args, &[]).await;
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stdout.contains("Usage: ssfd"), "{args:?}: {}", r.stdout);
        assert!(r.stdout.contains("Example"), "{args:?}: {}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_providers_from_the_command_line() {
    let h = TestDaemon::start().await;
    let op = ssfd_testkit::TestOpenIdProvider::start().await;
    let secret_file = h.dir.path().join("op.secret");
    std::fs::write(&secret_file, format!("{}\n", op.client_secret())).unwrap();
    let issuer = op.issuer();
    let client_id = op.client_id();
    let secret_path = secret_file.to_str().unwrap();
    let created = h
        .ok(&[
            "step-up",
            "create",
            "--name",
            "Okta MFA",
            "--issuer",
            &issuer,
            "--acr-value",
            "urn:okta:loa:2fa:any",
            "--client-id",
            &client_id,
            "--client-secret-file",
            secret_path,
        ])
        .await;
    assert!(created.stdout.starts_with("Created step-up provider "));
    assert_eq!(field(&created.stdout, "ACR values"), "urn:okta:loa:2fa:any");
    assert!(!created.stdout.contains(&op.client_secret()));
    let id = field(&created.stdout, "ID").to_string();

    let listed = h.ok(&["step-up", "list"]).await;
    assert!(listed.stdout.contains(&id) && listed.stdout.contains("OAUTH2"));

    let tested = h.ok(&["step-up", "test", &id]).await;
    assert_eq!(field(&tested.stdout, "Passed"), "yes", "{}", tested.stdout);
    assert!(tested.stdout.contains("clientCredentials  PASSED"));

    let updated = h
        .ok(&[
            "step-up",
            "update",
            &id,
            "--conditional-access-id",
            "c1",
            "--tenant",
            "contoso",
        ])
        .await;
    assert!(updated.stdout.contains("(microsoft)"), "{}", updated.stdout);
    assert_eq!(field(&updated.stdout, "Kind"), "MICROSOFT");
    assert_eq!(field(&updated.stdout, "Conditional access"), "c1");

    let json = h.json(&["step-up", "get", &id]).await;
    assert_eq!(json["stepUpProvider"]["microsoft"]["tenant"], "contoso");
    assert!(!json.to_string().contains(&op.client_secret()));

    let bad = h
        .ssfd(&["step-up", "create", "--name", "x", "--issuer", "ftp://nope"])
        .await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalid_argument: issuerUrl:"),
        "{}",
        bad.stderr
    );

    h.ok(&["step-up", "delete", &id]).await;
    let gone = h.ssfd(&["step-up", "get", &id]).await;
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("not_found"), "{}", gone.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_check_shows_the_step_up_requirement_and_its_header() {
    let h = TestDaemon::start().await;
    let tx = ssfd_testkit::TestTransmitter::start().await;
    let issuer = tx.issuer();
    let jwks = tx.jwks_url();
    let v = h
        .json(&[
            "streams",
            "create",
            "--name",
            "okta",
            "--issuer",
            &issuer,
            "--jwks-url",
            &jwks,
            "--credential-change-action",
            "step-up",
        ])
        .await;
    let s = &v["ssfReceiverStream"];
    assert_eq!(s["credentialChangeAction"], "SSF_REVOCATION_ACTION_STEP_UP");
    let id = s["id"].as_str().unwrap();
    let token = v["pushAuthTokenPlaintext"].as_str().unwrap();
    let set = tx
        .set()
        .event(
            ssfd_testkit::events::CREDENTIAL_CHANGE,
            ssfd_testkit::events::default_payload("credential-change", None, 1_700_000_000),
        )
        .sub_id(ssfd_testkit::subjects::email("alice@example.com"))
        .sign();
    let url = format!("{}/ssf/push/{id}", h.daemon.push_url());
    assert_eq!(tx.push(&url, token, &set).await.status(), 202);

    let out = h
        .ok(&["subject", "check", "alice@example.com"])
        .await
        .stdout;
    assert!(
        out.starts_with("NOT REVOKED  alice@example.com\n\nSTEP-UP REQUIRED\n"),
        "{out}"
    );
    assert_eq!(field(&out, "Since"), "2023-11-14T22:13:20Z");
    assert_eq!(
        field(&out, "WWW-Authenticate"),
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"More recent authentication is required\", max_age=0"
    );
    let out = h
        .ok(&[
            "subject",
            "check",
            "alice@example.com",
            "--auth-time",
            "2023-11-14T22:13:21Z",
        ])
        .await
        .stdout;
    assert_eq!(out, "NOT REVOKED  alice@example.com\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_not_sent_where_a_stray_receiver_toml_points() {
    let dir = tempfile::tempdir().unwrap();
    // A receiver.toml someone left in the working directory, naming a host elsewhere.
    std::fs::write(
        dir.path().join("receiver.toml"),
        "[server]\nadmin_listen = \"192.0.2.1:8081\"\n",
    )
    .unwrap();
    let r = run_in(
        dir.path(),
        &["streams", "list"],
        &[("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("loopback"), "{r:?}");
    let r = run_in(
        dir.path(),
        &["streams", "list", "--admin-url", "http://198.51.100.7:8081"],
        &[("SSFD_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("https"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_lift_needs_a_reason_and_reports_what_it_lifted() {
    let h = TestDaemon::start().await;
    let r = h
        .ssfd(&["subject", "lift", "email:nobody@example.com"])
        .await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("--reason"), "{r:?}");
    let r = h
        .ok(&[
            "subject",
            "lift",
            "email:nobody@example.com",
            "--reason",
            "a test",
        ])
        .await;
    assert_eq!(
        r.stdout, "Lifted 0 revocation(s) of email:nobody@example.com.\n",
        "{r:?}"
    );
}
