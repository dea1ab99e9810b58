//! `ssfd subject check`: ask the revocation ledger whether a subject's session was revoked, the
//! same question applications ask through `POST /api/v1/subjects:check`; `ssfd subject lift`
//! removes a subject's revocations (audited, with a reason) through `subjects:lift`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::AdminClient;
use super::table::{clean, short_event_type, text, time, Table};
use super::{parse_rfc3339_arg, Out};

#[derive(Subcommand, Debug)]
pub enum SubjectCommand {
    #[command(
        about = "Ask whether a subject's sessions were revoked",
        long_about = "Ask the revocation ledger whether a subject's sessions were revoked. With \
--issued-at (when the session in question was created) the answer is REVOKED only when a \
revocation applies to sessions issued at that time; without it, when any revocation exists \
for the subject. The matching revocations are listed with the stream and event they came from.

This is a query: the exit code is 0 whether or not the subject is revoked; use --json and the \
`revoked` member in scripts.

The subject is an email address, a shorthand (email:ADDR, phone_number:+E164, iss_sub:ISS|SUB, \
opaque:ID, account:URI, did:URL, uri:URI) or a JSON subject identifier.

Examples:
  ssfd subject check alice@example.com
  ssfd subject check email:alice@example.com --issued-at 2026-01-31T08:00:00Z
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
    let answer = api
        .post(&["api", "v1", "subjects:check"], &Value::Object(body))
        .await?;
    if out.json {
        return out.print_json(&answer);
    }
    write_answer(out, &a.subject, &answer)
}

fn write_answer(out: &mut Out<'_>, subject: &str, a: &Value) -> anyhow::Result<()> {
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
    }
}
