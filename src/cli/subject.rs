//! `ssfd subject check`: ask the revocation ledger whether a subject's session was revoked, and
//! whether it must step up, the same question applications ask through
//! `POST /api/v1/subjects:check`; `ssfd subject lift`
//! removes a subject's revocations (audited, with a reason) through `subjects:lift`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::AdminClient;
use anyhow::Context;

use super::table::{clean, or_dash, short_event_type, text, time, write_fields, Table};
use super::{parse_rfc3339_arg, Out};

#[derive(Subcommand, Debug)]
pub enum SubjectCommand {
    #[command(
        about = "Ask whether a subject's sessions were revoked",
        long_about = "Ask the revocation ledger whether a subject's sessions were revoked. With \
--issued-at (when the session in question was created) the answer is REVOKED only when a \
revocation applies to sessions issued at that time; without it, when any revocation exists \
for the subject. The matching revocations are listed with the stream and event they came from.

When a STEP_UP action applies, the requirement (provider, acr values, max age) is shown with the \
exact WWW-Authenticate header an application returns. The authentication behind the session \
can be described (--auth-time, --acr, --amr, --acrs) or its ID or access token given \
(--id-token-file, --access-token-file), which ssfd verifies against the provider's keys.

This is a query: the exit code is 0 whether or not the subject is revoked; use --json and the \
`revoked` and `stepUp.required` members in scripts.

The subject is an email address, a shorthand (email:ADDR, phone_number:+E164, iss_sub:ISS|SUB, \
opaque:ID, account:URI, did:URL, uri:URI) or a JSON subject identifier.

Examples:
  ssfd subject check alice@example.com
  ssfd subject check email:alice@example.com --issued-at 2026-01-31T08:00:00Z
  ssfd subject check alice@example.com --auth-time 2026-01-31T08:05:00Z --acr urn:okta:loa:2fa:any
  ssfd subject check alice@example.com --id-token-file session.jwt
  ssfd subject check '{\"format\":\"opaque\",\"id\":\"u-123\"}' --json"
    )]
    Check(CheckArgs),
    #[command(
        about = "Lift every revocation of a subject (audited, with a reason)",
        long_about = "Remove every revocation of a subject from the ledger, for a revocation that \
should never have happened (a transmitter's wrong timestamp, the wrong user). Each removed entry \
leaves an audit row with the reason. Sinks that already ran are not undone.

Examples:
  ssfd subject lift alice@example.com --reason 'bad event_timestamp from the IdP (INC-42)'"
    )]
    Lift(LiftArgs),
}

#[derive(Args, Debug)]
pub struct LiftArgs {
    /// The subject: an email address, a shorthand such as `email:alice@example.com`, or JSON.
    pub subject: String,
    /// Why the revocations are lifted; kept in the audit trail.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The subject: an email address, a shorthand such as `email:alice@example.com`, or JSON.
    pub subject: String,
    /// When the session was issued (RFC 3339); only revocations of sessions issued before a
    /// later time count.
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339_arg)]
    pub issued_at: Option<String>,
    /// When the user last authenticated (RFC 3339), the `auth_time` of the session's token.
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339_arg, help_heading = "Step-up")]
    pub auth_time: Option<String>,
    /// The `acr` of the session's authentication.
    #[arg(long, value_name = "ACR", help_heading = "Step-up")]
    pub acr: Option<String>,
    /// An `amr` value of the session's authentication (repeatable).
    #[arg(long, value_name = "METHOD", help_heading = "Step-up")]
    pub amr: Vec<String>,
    /// An Entra authentication context in the token's `acrs` (repeatable).
    #[arg(long, value_name = "ID", help_heading = "Step-up")]
    pub acrs: Vec<String>,
    /// Read the session's ID token from FILE; ssfd verifies it and reads its claims.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["access_token_file", "auth_time", "acr", "amr", "acrs"], help_heading = "Step-up")]
    pub id_token_file: Option<std::path::PathBuf>,
    /// Read the session's access token from FILE; ssfd verifies it and reads its claims.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["auth_time", "acr", "amr", "acrs"], help_heading = "Step-up")]
    pub access_token_file: Option<std::path::PathBuf>,
    /// The step-up provider whose keys verify the token [default: the requirement's].
    #[arg(long, value_name = "ID", help_heading = "Step-up")]
    pub provider: Option<String>,
}

pub async fn run(cmd: SubjectCommand, api: &AdminClient, out: &mut Out<'_>) -> anyhow::Result<()> {
    let a = match cmd {
        SubjectCommand::Check(a) => a,
        SubjectCommand::Lift(l) => {
            let answer = api
                .post(
                    &["api", "v1", "subjects:lift"],
                    &json!({"subject": l.subject, "reason": l.reason}),
                )
                .await?;
            if out.json {
                return out.print_json(&answer);
            }
            let lifted = answer.get("lifted").and_then(Value::as_u64).unwrap_or(0);
            writeln!(
                out.w,
                "Lifted {lifted} revocation(s) of {}.",
                clean(&l.subject)
            )?;
            return Ok(());
        }
    };
    let mut body = Map::new();
    body.insert("subject".into(), json!(a.subject));
    if let Some(t) = &a.issued_at {
        body.insert("issuedAt".into(), json!(t));
    }
    if let Some(t) = &a.auth_time {
        body.insert("authTime".into(), json!(t));
    }
    if let Some(v) = &a.acr {
        body.insert("acr".into(), json!(v));
    }
    if !a.amr.is_empty() {
        body.insert("amr".into(), json!(a.amr));
    }
    if !a.acrs.is_empty() {
        body.insert("acrs".into(), json!(a.acrs));
    }
    for (field, file) in [
        ("idToken", &a.id_token_file),
        ("accessToken", &a.access_token_file),
    ] {
        if let Some(p) = file {
            let token = crate::config::read_secret(p)
                .with_context(|| format!("{field} ({})", p.display()))?;
            body.insert(field.into(), json!(token));
        }
    }
    if let Some(v) = &a.provider {
        body.insert("providerId".into(), json!(v));
    }
    let answer = api
        .post(&["api", "v1", "subjects:check"], &Value::Object(body))
        .await?;
    if out.json {
        return out.print_json(&answer);
    }
    write_answer(out, &a.subject, &answer)
}

fn write_answer(out: &mut Out<'_>, subject: &str, a: &Value) -> anyhow::Result<()> {
    write_revocation(out, subject, a)?;
    write_step_up(out, a.get("stepUp").unwrap_or(&Value::Null))
}

/// The step-up requirement, when one applies: what is asked, the header, and why.
fn write_step_up(out: &mut Out<'_>, s: &Value) -> anyhow::Result<()> {
    if s.get("required").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    writeln!(out.w)?;
    writeln!(out.w, "STEP-UP REQUIRED")?;
    let values = super::table::strings(s, "acrValues");
    write_fields(
        out.w,
        &[
            ("Provider", or_dash(text(s, "providerId"))),
            (
                "ACR values",
                if values.is_empty() {
                    "(any)".into()
                } else {
                    values.join(" ")
                },
            ),
            ("Max age", format!("{} s", text(s, "maxAge"))),
            ("Since", time(s, "since")),
            ("WWW-Authenticate", text(s, "wwwAuthenticate")),
        ],
    )?;
    let reasons = s
        .get("reasons")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !reasons.is_empty() {
        writeln!(out.w)?;
        let mut t = Table::new(&["SINCE", "STREAM", "JTI", "EVENT", "PROBLEM"]);
        for r in &reasons {
            t.row(vec![
                time(r, "since"),
                text(r, "streamId"),
                text(r, "jti"),
                short_event_type(&text(r, "eventType")).to_string(),
                text(r, "problem"),
            ]);
        }
        t.write(out.w)?;
    }
    Ok(())
}

fn write_revocation(out: &mut Out<'_>, subject: &str, a: &Value) -> anyhow::Result<()> {
    let revoked = a.get("revoked").and_then(Value::as_bool) == Some(true);
    let subject = clean(subject);
    if !revoked {
        writeln!(out.w, "NOT REVOKED  {subject}")?;
        return Ok(());
    }
    writeln!(out.w, "REVOKED  {subject}")?;
    writeln!(
        out.w,
        "Sessions issued before {} are revoked.",
        time(a, "revokedBefore")
    )?;
    let reasons = a
        .get("reasons")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !reasons.is_empty() {
        writeln!(out.w)?;
        let mut t = Table::new(&["RECEIVED", "STREAM", "JTI", "EVENT"]);
        for r in &reasons {
            t.row(vec![
                time(r, "receivedAt"),
                text(r, "streamId"),
                text(r, "jti"),
                short_event_type(&text(r, "eventType")).to_string(),
            ]);
        }
        t.write(out.w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(a: Value) -> String {
        let mut buf = Vec::new();
        let mut out = Out {
            json: false,
            w: &mut buf,
        };
        write_answer(&mut out, "alice@example.com", &a).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn answers() {
        assert_eq!(
            render(json!({"revoked": false, "reasons": []})),
            "NOT REVOKED  alice@example.com\n"
        );
        let text = render(json!({
            "revoked": true, "revokedBefore": "2026-01-02T03:04:05Z",
            "reasons": [{"streamId": "s1", "jti": "j1",
                         "eventType": "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
                         "receivedAt": "2026-01-02T03:04:06.100Z"}]
        }));
        assert!(text.starts_with("REVOKED  alice@example.com\n"));
        assert!(text.contains("before 2026-01-02T03:04:05Z"));
        assert!(text.contains("session-revoked"));
        let text = render(json!({
            "revoked": false, "reasons": [],
            "stepUp": {"required": true, "providerId": "p1", "acrValues": ["phr"], "maxAge": 0,
                       "since": "2026-01-02T03:04:05Z",
                       "wwwAuthenticate": "Bearer error=\"insufficient_user_authentication\"",
                       "reasons": [{"since": "2026-01-02T03:04:05Z", "streamId": "s1", "jti": "j1",
                                    "eventType": "https://schemas.openid.net/secevent/caep/event-type/risk-level-change",
                                    "problem": "the authentication has no acr"}]}
        }));
        assert!(text.starts_with("NOT REVOKED  alice@example.com\n\nSTEP-UP REQUIRED\n"));
        assert!(
            text.contains("WWW-Authenticate:  Bearer error=\"insufficient_user_authentication\"")
        );
        assert!(text.contains("risk-level-change"));
        let quiet = render(json!({"revoked": false, "reasons": [],
                                  "stepUp": {"required": false, "reasons": []}}));
        assert_eq!(quiet, "NOT REVOKED  alice@example.com\n");
    }
}
