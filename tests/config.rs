//! The shipped receiver.toml is valid, differs from the defaults only where it says so, and its
//! commented-out examples are valid too; file errors name the key and its line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ssfd::config::{Config, ConfigError, SinkKind, DEFAULT_SINK_MAX_ATTEMPTS};
use ssfd::stream::RevocationAction;

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("receiver.toml")
}

#[test]
fn shipped_receiver_toml_is_valid() {
    let path = shipped_path();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.source.as_deref(), Some(path.as_path()));
}

#[test]
fn shipped_receiver_toml_keeps_the_defaults_it_does_not_change() {
    let cfg = Config::load(&shipped_path()).unwrap();
    let d = Config::default();
    assert_eq!(cfg.server, d.server);
    assert_eq!(cfg.storage, d.storage);
    assert_eq!(cfg.admin, d.admin);
    assert_eq!(cfg.poll, d.poll);
    assert_eq!(cfg.log, d.log);
    assert_eq!(cfg.sinks, d.sinks);
    assert_eq!(cfg.identity, d.identity);

    // The deliberate differences: http:// JWKS and loopback destinations for the local example
    // transmitter, and the policy example.
    assert!(cfg.jwks.allow_http);
    assert!(cfg.outbound.allow_private);
    let mut jwks = cfg.jwks.clone();
    jwks.allow_http = d.jwks.allow_http;
    assert_eq!(jwks, d.jwks);
    assert_eq!(cfg.policy.len(), 1);
    assert_eq!(
        cfg.policy.get("device-compliance-change"),
        Some(&RevocationAction::RevokeAll)
    );
}

#[test]
fn shipped_receiver_toml_uses_loopback_listeners_and_local_files() {
    let cfg = Config::load(&shipped_path()).unwrap();
    assert_eq!(cfg.server.push_listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(cfg.server.admin_listen, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(cfg.storage.path, PathBuf::from("./ssfd.db"));
    assert_eq!(cfg.admin.token_file, PathBuf::from("./ssfd-admin.token"));
    assert_eq!(cfg.admin.token, None);
}

/// Uncomments the example blocks below `[log]`: lines that are a commented table header or a
/// commented `key = value`.
fn uncomment_examples(text: &str) -> String {
    let mut past_log = false;
    text.lines()
        .map(|line| {
            if line.starts_with("[log]") {
                past_log = true;
            }
            let Some(rest) = line.strip_prefix("# ").filter(|_| past_log) else {
                return line.to_string();
            };
            let is_header = rest == "[[sink]]" || rest == "[identity]";
            let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            if is_header || is_key {
                rest.to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn commented_out_examples_in_the_shipped_file_are_valid() {
    let text = std::fs::read_to_string(shipped_path()).unwrap();
    let cfg = Config::parse(&uncomment_examples(&text), &shipped_path()).unwrap();
    assert_eq!(cfg.sinks.len(), 2);
    assert_eq!(cfg.sinks[0].name, "idp");
    assert_eq!(
        cfg.sinks[0].kind,
        SinkKind::Webhook(ssfd::config::WebhookSettings {
            url: "https://revoker.internal/hooks/ssf".into(),
            secret_file: "/etc/ssfd/webhook.secret".into(),
        })
    );
    assert_eq!(cfg.sinks[0].timeout, Duration::from_secs(5));
    assert_eq!(cfg.sinks[1].name, "local-sessions");
    assert_eq!(
        cfg.sinks[1].kind,
        SinkKind::Command(ssfd::config::CommandSettings {
            argv: vec!["/usr/local/libexec/revoke-sessions".into()],
        })
    );
    assert_eq!(cfg.sinks[1].timeout, Duration::from_secs(10));
    assert!(cfg
        .sinks
        .iter()
        .all(|s| s.max_attempts == DEFAULT_SINK_MAX_ATTEMPTS));
    let identity = cfg.identity.unwrap();
    assert_eq!(identity.rule.as_deref(), Some("email_local_part"));
}

#[test]
fn shipped_receiver_toml_survives_check_config_output() {
    let cfg = Config::load(&shipped_path()).unwrap();
    let again = Config::parse(&cfg.redacted_toml(), Path::new("effective.toml")).unwrap();
    assert_eq!(again.server, cfg.server);
    assert_eq!(again.jwks, cfg.jwks);
    assert_eq!(again.policy, cfg.policy);
}

#[test]
fn unknown_key_reports_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("receiver.toml");
    let text = std::fs::read_to_string(shipped_path()).unwrap();
    // Insert an unknown key right after the [jwks] header.
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| *l == "[jwks]").unwrap();
    lines.insert(header + 1, "max_keys = 5");
    std::fs::write(&path, lines.join("\n")).unwrap();

    match Config::load(&path) {
        Err(ConfigError::Invalid {
            path: p,
            line,
            key,
            message,
        }) => {
            assert_eq!(p, path);
            assert_eq!(line, header + 2, "1-based line of the inserted key");
            assert_eq!(key, "jwks.max_keys");
            assert!(message.contains("unknown key"), "{message}");
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn unknown_key_in_a_sink_reports_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("receiver.toml");
    std::fs::write(
        &path,
        "[[sink]]\n\
         type = \"command\"\n\
         name = \"a\"\n\
         argv = [\"/bin/true\"]\n\
         \n\
         [[sink]]\n\
         type = \"webhook\"\n\
         name = \"b\"\n\
         uri = \"https://example.com/hook\"\n",
    )
    .unwrap();
    let err = Config::load(&path).unwrap_err();
    let shown = err.to_string();
    match err {
        ConfigError::Invalid { line, key, .. } => {
            assert_eq!(line, 9);
            assert_eq!(key, "sink[1].uri");
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
    assert!(shown.contains("line 9: sink[1].uri:"), "{shown}");
}
