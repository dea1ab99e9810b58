//! Text a transmitter controls (jti, txn, subject) never reaches a log line, a header value or
//! a command's environment with its line breaks or control characters.

mod common;

use std::time::Duration;

use common::{create_stream_at, ChildDaemon};
use ssfd_testkit::{events, subjects, TestTransmitter};

#[tokio::test]
async fn line_breaks_from_a_set_stay_out_of_logs_and_command_environments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let script = format!(
        "printf '%s|%s|%s' \"$SSFD_JTI\" \"$SSFD_SUBJECT\" \"$SSFD_IDEMPOTENCY_KEY\" > {}",
        out.display()
    );
    let mut settings = common::DaemonSettings::child_process(dir.path());
    settings.log_keys = "level = \"info\"\n".to_string();
    settings.extra = format!(
        "[[sink]]\ntype = \"command\"\nname = \"cmd\"\nargv = [\"/bin/sh\", \"-c\", {script:?}]\n"
    );
    let daemon = ChildDaemon::spawn_settings(dir.path(), &settings).await;
    let tx = TestTransmitter::start().await;
    let http = ssfd_testkit::http_client();
    let (id, token) = create_stream_at(&http, &daemon.admin_url(), &tx).await;
    let set = tx
        .set()
        .jti("j1\nFORGED line one")
        .txn("t1\r\nFORGED line two")
        .event(
            &events::uri("session-revoked"),
            serde_json::json!({"event_timestamp": 1_700_000_000}),
        )
        .sub_id(subjects::email("eve@example.com"))
        .sign();
    let resp = ssfd_testkit::push_set(&http, &daemon.push_url(&id), &token, &set)
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let mut written = String::new();
    for _ in 0..200 {
        if let Ok(t) = std::fs::read_to_string(&out) {
            if !t.is_empty() {
                written = t;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !written.contains('\n') && !written.contains('\r'),
        "{written:?}"
    );
    assert!(written.starts_with("j1%0AFORGED line one|"), "{written:?}");
    let log = std::fs::read_to_string(daemon.config_path.with_extension("log")).unwrap();
    assert!(log.contains("SET accepted"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "{log}");
    }
}
