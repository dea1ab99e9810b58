//! `ssfd streams ...`: manage receiver streams through the admin API (list, get, create, update,
//! delete, push-token rotation, stats, readiness test).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use super::client::AdminClient;
use super::table::{
    list, or_dash, short_event_type, strings, text, time, truncate, write_fields, yes_no, Table,
};
use super::{parse_duration_arg, Out, UsageError};
use crate::config::read_secret;

const STREAMS: [&str; 3] = ["api", "v1", "ssf-receiver-streams"];

fn path<'a>(id: &'a str, tail: Option<&'a str>) -> Vec<&'a str> {
    let mut p = STREAMS.to_vec();
    p.push(id);
    p.extend(tail);
    p
}

#[derive(Subcommand, Debug)]
pub enum StreamsCommand {
    #[command(
        about = "List receiver streams",
        long_about = "List receiver streams: one line per stream with its delivery method, whether it \
is enabled, its issuer, and when its transmitter's keys were last verified or it last failed.

One page (50 streams unless --page-size says otherwise) is shown; --all follows the pages to \
the end.

Examples:
  ssfd streams list
  ssfd streams list --all --json | jq -r '.list[].id'"
    )]
    List(ListArgs),

    #[command(
        about = "Show one stream",
        long_about = "Show every setting of one stream: issuer, keys, delivery, event types, the \
revocation knobs, and its transmitter status and last error. Secrets (push token, outbound \
credentials) are write-only and never shown.

Examples:
  ssfd streams get 3f9c2a...
  ssfd streams get 3f9c2a... --json"
    )]
    Get {
        /// The stream's ID (see `ssfd streams list`).
        id: String,
    },

    #[command(
        about = "Create a stream and print its push URL and push token",
        long_about = "Create a receiver stream for one transmitter. For a PUSH stream (the default) \
the push URL and the push token are printed: configure the transmitter with both. The push \
token is shown only this once; ssfd keeps only its hash. To take over a token the transmitter \
already holds, pass it with --push-token-file (or --push-token).

A POLL stream (--poll --poll-url URL) fetches events from the transmitter instead; it has no \
push URL and no push token, and usually needs outbound credentials (--outbound-token-file, or \
the --oauth2-* options).

The four --*-action options take revoke-all (revoke every session of the subject issued before \
the event), log-only (record and log only) or unspecified (the [policy] table of receiver.toml \
decides, then the shipped defaults).

Examples:
  ssfd streams create --name 'Okta prod' --issuer https://example.okta.com \\
      --audience https://ssfd.example.net
  ssfd streams create --name 'Keycloak' --issuer https://sso.example.net/realms/main \\
      --poll --poll-url https://sso.example.net/ssf/poll --poll-interval 30s \\
      --outbound-token-file /etc/ssfd/keycloak.token
  ssfd streams create --name staging --issuer https://idp.example.net \\
      --session-revoked-action log-only --event-type session-revoked --disabled"
    )]
    Create(Box<CreateArgs>),

    #[command(
        about = "Change some fields of a stream",
        long_about = "Change some fields of a stream. Only the options given are changed (they are \
sent as the updateMask); everything else stays as it is. An empty value clears a text field \
(--jwks-url '' goes back to discovery). --event-type replaces the whole list; \
--all-event-types clears it.

The four --*-action options take revoke-all (revoke every session of the subject issued before \
the event), log-only (record and log only) or unspecified (the [policy] table of receiver.toml \
decides, then the shipped defaults).

When the change gives the stream a push token (--push-token-file, or --push on a POLL stream), \
the token is printed once, as on create.

Examples:
  ssfd streams update 3f9c2a... --disable
  ssfd streams update 3f9c2a... --name 'Okta (prod)' --credential-change-action log-only
  ssfd streams update 3f9c2a... --event-type session-revoked --event-type credential-change"
    )]
    Update(Box<UpdateArgs>),

    #[command(
        about = "Delete a stream",
        long_about = "Delete a stream. Its push URL answers 404 from then on and it disappears from \
lists; the events it received stay in the database (a soft delete).

With --remote the stream is first deleted at its transmitter (SSF stream management); if that \
fails, nothing is deleted here.

Examples:
  ssfd streams delete 3f9c2a...
  ssfd streams delete 3f9c2a... --remote"
    )]
    Delete {
        /// The stream's ID.
        id: String,
        /// Delete the stream at its transmitter too (first).
        #[arg(long)]
        remote: bool,
    },

    #[command(
        about = "Register the stream at its transmitter",
        long_about = "Create the stream at its transmitter (SSF stream management): read the \
transmitter's metadata from the issuer URL, create or take over the stream at its \
configuration endpoint, and store what the transmitter assigned (stream ID, events delivered, \
and for POLL streams the poll URL). For a PUSH stream a fresh push token is issued and handed to \
the transmitter as its authorization header.

Example:
  ssfd streams register 3f9c2a..."
    )]
    Register {
        /// The stream's ID.
        id: String,
    },

    #[command(
        about = "Ask the transmitter for a verification event",
        long_about = "Ask the stream's transmitter to send a verification event carrying a fresh \
random state. When it arrives, the stream's lastVerifiedAt is set; a verification carrying a \
state ssfd did not ask for is refused with invalid_state.

Example:
  ssfd streams verify 3f9c2a..."
    )]
    Verify {
        /// The stream's ID.
        id: String,
    },

    #[command(
        about = "Add or remove a subject of the stream at its transmitter",
        long_about = "Tell the transmitter to send (add) or stop sending (remove) events about one \
subject on this stream (SSF stream management). The subject is a shorthand such as \
email:alice@example.com or iss_sub:https://idp.example.com|alice, or a subject identifier as JSON.

Examples:
  ssfd streams subjects add 3f9c2a... email:alice@example.com
  ssfd streams subjects remove 3f9c2a... email:alice@example.com"
    )]
    Subjects {
        #[command(subcommand)]
        change: SubjectChange,
    },

    #[command(
        about = "Show the stream configuration its transmitter holds",
        long_about = "Read the stream's configuration back from its transmitter (delivery method and \
endpoint, events requested and delivered, audience) and print it as the transmitter answered.

Example:
  ssfd streams remote-config 3f9c2a..."
    )]
    RemoteConfig {
        /// The stream's ID.
        id: String,
    },

    #[command(
        about = "Show or change the stream's status at its transmitter",
        long_about = "Read the stream's status at its transmitter (enabled, paused or disabled), or \
change it with --set and an optional --reason.

Examples:
  ssfd streams status 3f9c2a...
  ssfd streams status 3f9c2a... --set paused --reason 'maintenance window'"
    )]
    Status {
        /// The stream's ID.
        id: String,
        /// The new status.
        #[arg(long, value_parser = ["enabled", "paused", "disabled"])]
        set: Option<String>,
        /// Why (sent with --set).
        #[arg(long, requires = "set")]
        reason: Option<String>,
    },

    #[command(
        about = "Issue a new push token for a stream",
        long_about = "Issue a new push token for a PUSH stream and print it once. The previous token \
keeps working for [server] push_token_overlap (default 1h), so the transmitter can be switched \
over without losing events.

Example:
  ssfd streams rotate-token 3f9c2a..."
    )]
    RotateToken {
        /// The stream's ID.
        id: String,
    },

    #[command(
        about = "Show a stream's counters and last error",
        long_about = "Show a stream's counters (SETs received, acted on, failed), when it last \
received an event, and its last error and transmitter status.

Example:
  ssfd streams stats 3f9c2a..."
    )]
    Stats {
        /// The stream's ID.
        id: String,
    },

    #[command(
        about = "Check that a stream is ready to receive events",
        long_about = "Check that a stream is ready: fetches the transmitter's keys now, and shows \
the action each kind of event would get. With --subject, also shows the subject keys and the \
local user a subject maps to.

The answer is a report: the exit code is 0 whether or not the stream is ready.

Examples:
  ssfd streams test 3f9c2a...
  ssfd streams test 3f9c2a... --subject alice@example.com
  ssfd streams test 3f9c2a... --subject 'iss_sub:https://idp.example.net|248289761001'"
    )]
    Test {
        /// The stream's ID.
        id: String,
        /// A subject to try: an email address, a shorthand such as `email:alice@example.com`
        /// or `iss_sub:ISS|SUB`, or a JSON subject identifier.
        #[arg(long, value_name = "SUBJECT")]
        subject: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Streams per page (1 to 1000; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,
    /// Follow nextPageToken until the last page.
    #[arg(long)]
    pub all: bool,
    /// Start at this page (the nextPageToken of a previous answer).
    #[arg(long, value_name = "TOKEN", conflicts_with = "all")]
    pub page_token: Option<String>,
}

/// The revocation knob values, as typed on the command line.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    RevokeAll,
    LogOnly,
    /// Ask for a fresh, stronger authentication (see `ssfd step-up`).
    StepUp,
    Unspecified,
}

impl Knob {
    fn as_api(self) -> &'static str {
        match self {
            Knob::RevokeAll => "SSF_REVOCATION_ACTION_REVOKE_ALL",
            Knob::LogOnly => "SSF_REVOCATION_ACTION_LOG_ONLY",
            Knob::StepUp => "SSF_REVOCATION_ACTION_STEP_UP",
            Knob::Unspecified => "SSF_REVOCATION_ACTION_UNSPECIFIED",
        }
    }
}

/// `ssfd streams subjects add|remove ID SUBJECT`.
#[derive(Subcommand, Debug)]
pub enum SubjectChange {
    #[command(
        about = "Ask the transmitter to send events about this subject",
        long_about = "Ask the stream's transmitter to send events about this subject (SSF add \
subject). Adding a subject removed earlier makes its events count again.

Example:
  ssfd streams subjects add 3f9c2a... email:alice@example.com"
    )]
    Add {
        /// The stream's ID.
        id: String,
        /// email:alice@example.com, iss_sub:ISS|SUB, ..., or a subject identifier as JSON.
        subject: String,
    },
    #[command(
        about = "Ask the transmitter to stop sending events about this subject",
        long_about = "Ask the stream's transmitter to stop sending events about this subject (SSF \
remove subject). Events about it that still arrive are stored and acknowledged, not acted on.

Example:
  ssfd streams subjects remove 3f9c2a... email:alice@example.com"
    )]
    Remove {
        /// The stream's ID.
        id: String,
        /// email:alice@example.com, iss_sub:ISS|SUB, ..., or a subject identifier as JSON.
        subject: String,
    },
}

/// Fields that create and update set the same way.
#[derive(Args, Debug, Default)]
pub struct FieldArgs {
    /// Free text describing the stream.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The transmitter's JWKS URL. Without it, the keys are found through the issuer's
    /// /.well-known/ssf-configuration.
    #[arg(long, value_name = "URL", help_heading = "Verification")]
    pub jwks_url: Option<String>,
    /// The audience every SET must name in `aud`. Without it, `aud` is not checked.
    #[arg(long, value_name = "AUD", help_heading = "Verification")]
    pub audience: Option<String>,
    /// SSF_1_0 (strict, the default) or LEGACY_SSE for a pre-1.0 "SSE" draft transmitter;
    /// see docs/push.md#compatibility-profiles.
    #[arg(long, value_name = "PROFILE", help_heading = "Verification")]
    pub compatibility_profile: Option<String>,
    /// The transmitter's metadata document, when it is not found from the issuer URL
    /// ('' goes back to the issuer's well-known path).
    #[arg(long, value_name = "URL", help_heading = "Verification")]
    pub metadata_url: Option<String>,
    /// The transmitter's poll endpoint (POLL streams).
    #[arg(long, value_name = "URL", help_heading = "Delivery")]
    pub poll_url: Option<String>,
    /// Time between polls, such as 30s or 5m (POLL streams).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, help_heading = "Delivery")]
    pub poll_interval: Option<String>,
    /// Act only on this event type: a full URI or its last segment (session-revoked). Repeat
    /// for several; others are stored and logged. Without it, every type is acted on.
    #[arg(long = "event-type", value_name = "URI", help_heading = "Policy")]
    pub event_types: Vec<String>,
    /// What a CAEP session-revoked (RISC sessions-revoked) does.
    #[arg(long, value_name = "ACTION", help_heading = "Policy")]
    pub session_revoked_action: Option<Knob>,
    /// What a CAEP credential-change does.
    #[arg(long, value_name = "ACTION", help_heading = "Policy")]
    pub credential_change_action: Option<Knob>,
    /// What a RISC credential-compromise does.
    #[arg(long, value_name = "ACTION", help_heading = "Policy")]
    pub credential_compromise_action: Option<Knob>,
    /// What a RISC account-disabled or account-purged does.
    #[arg(long, value_name = "ACTION", help_heading = "Policy")]
    pub account_disabled_action: Option<Knob>,
    /// The step-up provider STEP_UP actions of this stream name (see `ssfd step-up list`);
    /// "" for [step_up] default_provider.
    #[arg(long, value_name = "ID", help_heading = "Policy")]
    pub step_up_provider: Option<String>,
    /// Use this push token (at least 32 characters) instead of a generated one. It shows in the
    /// process list; prefer --push-token-file.
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with = "push_token_file",
        help_heading = "Delivery"
    )]
    pub push_token: Option<String>,
    /// Read the push token from FILE (trailing whitespace removed).
    #[arg(long, value_name = "FILE", help_heading = "Delivery")]
    pub push_token_file: Option<PathBuf>,
    /// The transmitter's own ID for this stream, when it was registered there by hand.
    #[arg(long, value_name = "ID")]
    pub transmitter_stream_id: Option<String>,
    /// Present the bearer token in FILE to the transmitter (polling, stream management).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "oauth2_client_id",
        help_heading = "Outbound credentials"
    )]
    pub outbound_token_file: Option<PathBuf>,
    /// Get tokens for the transmitter with OAuth 2 client credentials, as this client.
    #[arg(
        long,
        value_name = "ID",
        requires = "oauth2_token_url",
        help_heading = "Outbound credentials"
    )]
    pub oauth2_client_id: Option<String>,
    /// The OAuth 2 client secret, read from FILE. On update, leaving it out keeps the old one.
    #[arg(
        long,
        value_name = "FILE",
        requires = "oauth2_client_id",
        help_heading = "Outbound credentials"
    )]
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// The OAuth 2 token endpoint.
    #[arg(
        long,
        value_name = "URL",
        requires = "oauth2_client_id",
        help_heading = "Outbound credentials"
    )]
    pub oauth2_token_url: Option<String>,
    /// An OAuth 2 scope to ask for; repeat for several.
    #[arg(
        long = "oauth2-scope",
        value_name = "SCOPE",
        requires = "oauth2_client_id",
        help_heading = "Outbound credentials"
    )]
    pub oauth2_scopes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A name for people (displayName).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The transmitter's issuer URL; every SET's `iss` must equal it.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Poll the transmitter for events (RFC 8936) instead of receiving pushes. Needs --poll-url.
    #[arg(long, requires = "poll_url", help_heading = "Delivery")]
    pub poll: bool,
    /// Create the stream disabled: it stores what it receives but plans no actions.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The stream's ID.
    pub id: String,
    /// A new name (displayName).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A new issuer URL.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Switch to POLL delivery (needs a poll URL, given now or before).
    #[arg(long, conflicts_with = "push", help_heading = "Delivery")]
    pub poll: bool,
    /// Switch to PUSH delivery; a new push token is generated and printed.
    #[arg(long, help_heading = "Delivery")]
    pub push: bool,
    /// Enable the stream.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable the stream: it keeps storing what it receives but plans no actions.
    #[arg(long)]
    pub disable: bool,
    /// Act on every event type again (clears the --event-type list).
    #[arg(long, conflicts_with = "event_types", help_heading = "Policy")]
    pub all_event_types: bool,
    /// Remove the outbound credentials.
    #[arg(long, conflicts_with_all = ["outbound_token_file", "oauth2_client_id"], help_heading = "Outbound credentials")]
    pub no_outbound_auth: bool,
}

fn read_file_secret(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    read_secret(path).with_context(|| format!("{what} ({})", path.display()))
}

/// The stream fields the options set, in API form.
fn field_values(f: &FieldArgs) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    if let Some(v) = &f.description {
        put("description", json!(v));
    }
    if let Some(v) = &f.jwks_url {
        put("jwksUrl", json!(v));
    }
    if let Some(v) = &f.audience {
        put("expectedAudience", json!(v));
    }
    if let Some(v) = &f.compatibility_profile {
        put("compatibilityProfile", json!(v));
    }
    if let Some(v) = &f.metadata_url {
        put("metadataUrl", json!(v));
    }
    if let Some(v) = &f.poll_url {
        put("pollEndpointUrl", json!(v));
    }
    if let Some(v) = &f.poll_interval {
        put("pollInterval", json!(v));
    }
    if !f.event_types.is_empty() {
        put("eventTypesEnabled", json!(f.event_types));
    }
    let knobs = [
        ("sessionRevokedAction", f.session_revoked_action),
        ("credentialChangeAction", f.credential_change_action),
        ("credentialCompromiseAction", f.credential_compromise_action),
        ("accountDisabledAction", f.account_disabled_action),
    ];
    for (k, v) in knobs {
        if let Some(v) = v {
            put(k, json!(v.as_api()));
        }
    }
    if let Some(v) = &f.step_up_provider {
        put("stepUpProviderId", json!(v));
    }
    if let Some(v) = &f.push_token {
        put("pushAuthToken", json!(v));
    }
    if let Some(p) = &f.push_token_file {
        put("pushAuthToken", json!(read_file_secret(p, "push token")?));
    }
    if let Some(v) = &f.transmitter_stream_id {
        put("transmitterStreamId", json!(v));
    }
    if let Some(p) = &f.outbound_token_file {
        let token = read_file_secret(p, "outbound bearer token")?;
        put("outboundAuthBearer", json!({ "token": token }));
    }
    if let Some(client_id) = &f.oauth2_client_id {
        let mut o = Map::new();
        o.insert("clientId".into(), json!(client_id));
        if let Some(p) = &f.oauth2_client_secret_file {
            o.insert(
                "clientSecret".into(),
                json!(read_file_secret(p, "OAuth 2 client secret")?),
            );
        }
        o.insert(
            "tokenUrl".into(),
            json!(f.oauth2_token_url.clone().unwrap_or_default()),
        );
        o.insert("scopes".into(), json!(f.oauth2_scopes));
        put("outboundAuthOauth2", Value::Object(o));
    }
    Ok(m)
}

/// The body of a create call.
pub fn create_body(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut m = field_values(&a.fields)?;
    if a.fields.poll_url.is_some() && !a.poll {
        return Err(UsageError(
            "--poll-url is for POLL streams: add --poll (or leave --poll-url out for a PUSH stream)"
                .into(),
        )
        .into());
    }
    m.insert("displayName".into(), json!(a.name));
    m.insert("issuerUrl".into(), json!(a.issuer));
    m.insert(
        "deliveryMethod".into(),
        json!(if a.poll {
            "SSF_DELIVERY_METHOD_POLL"
        } else {
            "SSF_DELIVERY_METHOD_PUSH"
        }),
    );
    m.insert("enabled".into(), json!(!a.disabled));
    Ok(Value::Object(m))
}

/// The body of an update call: the record and an updateMask naming exactly the fields set.
pub fn update_body(a: &UpdateArgs) -> anyhow::Result<Value> {
    let mut m = field_values(&a.fields)?;
    if let Some(v) = &a.name {
        m.insert("displayName".into(), json!(v));
    }
    if let Some(v) = &a.issuer {
        m.insert("issuerUrl".into(), json!(v));
    }
    if a.poll {
        m.insert("deliveryMethod".into(), json!("SSF_DELIVERY_METHOD_POLL"));
    }
    if a.push {
        m.insert("deliveryMethod".into(), json!("SSF_DELIVERY_METHOD_PUSH"));
    }
    if a.enable || a.disable {
        m.insert("enabled".into(), json!(a.enable));
    }
    if a.all_event_types {
        m.insert("eventTypesEnabled".into(), json!([]));
    }
    if a.no_outbound_auth {
        m.insert("outboundAuthBearer".into(), Value::Null);
        m.insert("outboundAuthOauth2".into(), Value::Null);
    }
    if m.is_empty() {
        return Err(UsageError(
            "nothing to update: give at least one option that sets a field (see `ssfd streams update --help`)"
                .into(),
        )
        .into());
    }
    let mask = m.keys().cloned().collect::<Vec<_>>().join(",");
    Ok(json!({ "ssfReceiverStream": Value::Object(m), "updateMask": mask }))
}

pub async fn run(cmd: StreamsCommand, api: &AdminClient, out: &mut Out<'_>) -> anyhow::Result<()> {
    match cmd {
        StreamsCommand::List(a) => list_streams(a, api, out).await,
        StreamsCommand::Get { id } => {
            let answer = api.get(&path(&id, None), &[]).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let s = answer.get("ssfReceiverStream").unwrap_or(&Value::Null);
            write_stream(out, s)
        }
        StreamsCommand::Create(a) => {
            let body = create_body(&a)?;
            let answer = api.post(&STREAMS, &body).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let s = answer.get("ssfReceiverStream").unwrap_or(&Value::Null);
            let id = text(s, "id");
            writeln!(out.w, "Created stream {id} ({}).", text(s, "displayName"))?;
            write_delivery_and_token(out, s, &answer, &id)
        }
        StreamsCommand::Update(a) => {
            let body = update_body(&a)?;
            let answer = api.post(&path(&a.id, None), &body).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let s = answer.get("ssfReceiverStream").unwrap_or(&Value::Null);
            let mask = text(&body, "updateMask").replace(',', ", ");
            writeln!(out.w, "Updated stream {} ({mask}).", text(s, "id"))?;
            if answer.get("pushAuthTokenPlaintext").is_some() {
                write_delivery_and_token(out, s, &answer, &a.id)?;
            }
            writeln!(out.w)?;
            write_stream(out, s)
        }
        StreamsCommand::Delete { id, remote } => {
            let query = if remote {
                vec![("remote", "true".to_string())]
            } else {
                Vec::new()
            };
            let answer = api.delete(&path(&id, None), &query).await?;
            if out.json {
                return out.print_json(&answer);
            }
            if remote {
                writeln!(out.w, "Deleted stream {id} at its transmitter and here.")?;
            } else {
                writeln!(out.w, "Deleted stream {id}.")?;
            }
            Ok(())
        }
        StreamsCommand::Register { id } => {
            let answer = api.post(&path(&id, Some("register")), &json!({})).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let s = answer.get("ssfReceiverStream").unwrap_or(&Value::Null);
            writeln!(
                out.w,
                "Registered stream {id} at its transmitter (transmitter stream {}).",
                text(s, "transmitterStreamId")
            )?;
            writeln!(out.w)?;
            write_stream(out, s)
        }
        StreamsCommand::Verify { id } => {
            let answer = api.post(&path(&id, Some("verify")), &json!({})).await?;
            if out.json {
                return out.print_json(&answer);
            }
            write_fields(
                out.w,
                &[
                    ("Stream", id.clone()),
                    ("Verification requested", text(&answer, "requestedAt")),
                    ("State", text(&answer, "state")),
                ],
            )?;
            writeln!(
                out.w,
                "The transmitter will send a verification event; `ssfd streams get {id}` shows \
                 lastVerifiedAt once it arrives."
            )?;
            Ok(())
        }
        StreamsCommand::Subjects { change } => {
            let (id, subject, tail, done) = match change {
                SubjectChange::Add { id, subject } => (id, subject, "subjects:add", "Added"),
                SubjectChange::Remove { id, subject } => {
                    (id, subject, "subjects:remove", "Removed")
                }
            };
            // JSON objects go as they are; anything else is the shorthand the API parses.
            let subject_value = match serde_json::from_str::<Value>(&subject) {
                Ok(v @ Value::Object(_)) => v,
                _ => Value::String(subject.clone()),
            };
            let answer = api
                .post(&path(&id, Some(tail)), &json!({"subject": subject_value}))
                .await?;
            if out.json {
                return out.print_json(&answer);
            }
            writeln!(
                out.w,
                "{done} subject {subject} at the transmitter of stream {id}."
            )?;
            Ok(())
        }
        StreamsCommand::RemoteConfig { id } => {
            let answer = api.get(&path(&id, Some("remote-config")), &[]).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let config = answer
                .get("transmitterConfiguration")
                .unwrap_or(&Value::Null);
            writeln!(out.w, "{}", serde_json::to_string_pretty(config)?)?;
            Ok(())
        }
        StreamsCommand::Status { id, set, reason } => {
            let answer = match set {
                Some(status) => {
                    let body = json!({"status": status, "reason": reason.unwrap_or_default()});
                    api.post(&path(&id, Some("transmitter-status")), &body)
                        .await?
                }
                None => api.get(&path(&id, Some("transmitter-status")), &[]).await?,
            };
            if out.json {
                return out.print_json(&answer);
            }
            write_fields(
                out.w,
                &[
                    ("Stream", id.clone()),
                    ("Status at the transmitter", text(&answer, "status")),
                    ("Reason", text(&answer, "reason")),
                ],
            )?;
            Ok(())
        }
        StreamsCommand::RotateToken { id } => {
            let answer = api
                .post(&path(&id, Some("rotate-push-token")), &json!({}))
                .await?;
            if out.json {
                return out.print_json(&answer);
            }
            write_fields(
                out.w,
                &[
                    ("Stream", id.clone()),
                    ("New push token", text(&answer, "pushAuthTokenPlaintext")),
                ],
            )?;
            eprintln!(
                "warning: the new push token is shown only now. The previous token keeps working \
                 for [server] push_token_overlap (default 1h): give the transmitter the new one \
                 before then."
            );
            Ok(())
        }
        StreamsCommand::Stats { id } => {
            let answer = api.get(&path(&id, Some("stats")), &[]).await?;
            if out.json {
                return out.print_json(&answer);
            }
            write_stats(out, answer.get("stats").unwrap_or(&Value::Null))
        }
        StreamsCommand::Test { id, subject } => {
            let mut body = Map::new();
            if let Some(s) = subject {
                body.insert("testSubject".into(), json!(s));
            }
            let answer = api
                .post(&path(&id, Some("test")), &Value::Object(body))
                .await?;
            if out.json {
                return out.print_json(&answer);
            }
            write_test(out, &id, &answer)
        }
    }
}

async fn list_streams(a: ListArgs, api: &AdminClient, out: &mut Out<'_>) -> anyhow::Result<()> {
    let mut streams = Vec::new();
    let mut token = a.page_token.clone().unwrap_or_default();
    let next = loop {
        let mut q = Vec::new();
        if let Some(n) = a.page_size {
            q.push(("pageSize", n.to_string()));
        }
        if !token.is_empty() {
            q.push(("pageToken", token.clone()));
        }
        let page = api.get(&STREAMS, &q).await?;
        streams.extend(list(&page));
        let next = text(&page, "nextPageToken");
        // A server that hands back the token it was given would otherwise keep us here forever.
        if !a.all || next.is_empty() || next == token {
            break next;
        }
        token = next;
    };
    if out.json {
        return out.print_json(&json!({ "list": streams, "nextPageToken": next }));
    }
    if streams.is_empty() {
        writeln!(out.w, "No streams.")?;
    } else {
        let mut t = Table::new(&[
            "ID",
            "NAME",
            "METHOD",
            "ENABLED",
            "ISSUER",
            "LAST VERIFIED",
            "LAST ERROR",
        ]);
        for s in &streams {
            t.row(vec![
                text(s, "id"),
                truncate(&text(s, "displayName"), 40),
                delivery(s),
                yes_no(s, "enabled"),
                text(s, "issuerUrl"),
                time(s, "lastVerifiedAt"),
                time(s, "lastErrorAt"),
            ]);
        }
        t.write(out.w)?;
    }
    if !next.is_empty() && !a.all {
        eprintln!("More streams follow: add --all, or --page-token {next} for the next page.");
    }
    Ok(())
}

fn delivery(s: &Value) -> String {
    let m = text(s, "deliveryMethod");
    match m.strip_prefix("SSF_DELIVERY_METHOD_").unwrap_or(&m) {
        // The API defines UNSPECIFIED as PUSH.
        "" | "UNSPECIFIED" => "PUSH".into(),
        short => short.to_string(),
    }
}

fn knob(s: &Value, key: &str) -> String {
    let k = text(s, key);
    match k.strip_prefix("SSF_REVOCATION_ACTION_").unwrap_or(&k) {
        "" | "UNSPECIFIED" => "policy default".into(),
        short => short.to_string(),
    }
}

fn outbound_auth(s: &Value) -> String {
    if s.get("outboundAuthBearer").is_some_and(Value::is_object) {
        return "bearer token".into();
    }
    match s.get("outboundAuthOauth2") {
        Some(o @ Value::Object(_)) => {
            let scopes = strings(o, "scopes").join(" ");
            let mut out = format!(
                "OAuth 2 client {} at {}",
                text(o, "clientId"),
                text(o, "tokenUrl")
            );
            if !scopes.is_empty() {
                out.push_str(&format!(" (scopes: {scopes})"));
            }
            out
        }
        _ => "none".into(),
    }
}

fn last_error(v: &Value) -> String {
    let at = text(v, "lastErrorAt");
    let msg = text(v, "lastErrorMessage");
    match (at.is_empty(), msg.is_empty()) {
        (true, true) => "-".into(),
        (false, true) => time(v, "lastErrorAt"),
        (true, false) => msg,
        (false, false) => format!("{} {msg}", time(v, "lastErrorAt")),
    }
}

fn transmitter_status(v: &Value) -> String {
    let status = text(v, "transmitterStatus");
    let reason = text(v, "transmitterStatusReason");
    match (status.is_empty(), reason.is_empty()) {
        (true, _) => "-".into(),
        (false, true) => status,
        (false, false) => format!("{status} ({reason})"),
    }
}

fn write_stream(out: &mut Out<'_>, s: &Value) -> anyhow::Result<()> {
    let is_poll = delivery(s) == "POLL";
    let event_types = strings(s, "eventTypesEnabled");
    let mut f: Vec<(&str, String)> = vec![
        ("ID", text(s, "id")),
        ("Name", text(s, "displayName")),
        ("Description", or_dash(text(s, "description"))),
        ("Enabled", yes_no(s, "enabled")),
        ("Delivery", delivery(s)),
        ("Issuer", text(s, "issuerUrl")),
        ("JWKS URL", {
            let u = text(s, "jwksUrl");
            if u.is_empty() {
                "(discovered from the issuer)".into()
            } else {
                u
            }
        }),
        ("Audience", {
            let a = text(s, "expectedAudience");
            if a.is_empty() {
                "(not checked)".into()
            } else {
                a
            }
        }),
        ("Profile", or_dash(text(s, "compatibilityProfile"))),
        ("Metadata URL", or_dash(text(s, "metadataUrl"))),
    ];
    if is_poll {
        f.push(("Poll URL", or_dash(text(s, "pollEndpointUrl"))));
        f.push(("Poll interval", or_dash(text(s, "pollInterval"))));
    } else {
        f.push(("Push URL", or_dash(text(s, "pushEndpointUrl"))));
    }
    f.push(("Outbound auth", outbound_auth(s)));
    f.push((
        "Event types",
        if event_types.is_empty() {
            "all".into()
        } else {
            event_types
                .iter()
                .map(|t| short_event_type(t))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    f.push(("Session revoked", knob(s, "sessionRevokedAction")));
    f.push(("Credential change", knob(s, "credentialChangeAction")));
    f.push((
        "Credential compromise",
        knob(s, "credentialCompromiseAction"),
    ));
    f.push(("Account disabled", knob(s, "accountDisabledAction")));
    f.push(("Step-up provider", or_dash(text(s, "stepUpProviderId"))));
    f.push((
        "Transmitter stream",
        or_dash(text(s, "transmitterStreamId")),
    ));
    f.push(("Transmitter status", transmitter_status(s)));
    f.push(("Created", time(s, "createdAt")));
    f.push(("Updated", time(s, "updatedAt")));
    f.push(("Last verified", time(s, "lastVerifiedAt")));
    f.push(("Last error", last_error(s)));
    write_fields(out.w, &f)?;
    Ok(())
}

/// After a create (or an update that issued a token): where the transmitter delivers, and the
/// token it must present, which is never shown again.
fn write_delivery_and_token(
    out: &mut Out<'_>,
    s: &Value,
    answer: &Value,
    id: &str,
) -> anyhow::Result<()> {
    let token = text(answer, "pushAuthTokenPlaintext");
    if delivery(s) == "POLL" {
        write_fields(out.w, &[("Poll URL", or_dash(text(s, "pollEndpointUrl")))])?;
        return Ok(());
    }
    write_fields(
        out.w,
        &[
            ("Push URL", or_dash(text(s, "pushEndpointUrl"))),
            ("Push token", or_dash(token.clone())),
        ],
    )?;
    if !token.is_empty() {
        eprintln!(
            "warning: the push token is shown only now; ssfd keeps only its hash. Give it to the \
             transmitter as the bearer token for the push URL. If it is lost, issue a new one \
             with `ssfd streams rotate-token {id}`."
        );
    }
    Ok(())
}

fn write_stats(out: &mut Out<'_>, s: &Value) -> anyhow::Result<()> {
    write_fields(
        out.w,
        &[
            ("Stream", text(s, "streamId")),
            ("Events received", or_dash(text(s, "eventsReceivedCount"))),
            ("Events acted on", or_dash(text(s, "eventsActedOnCount"))),
            ("Events failed", or_dash(text(s, "eventsFailedCount"))),
            ("Last event", time(s, "lastEventReceivedAt")),
            ("Last verified", time(s, "lastVerifiedAt")),
            ("Last error", last_error(s)),
            ("Transmitter status", transmitter_status(s)),
        ],
    )?;
    Ok(())
}

fn write_test(out: &mut Out<'_>, id: &str, a: &Value) -> anyhow::Result<()> {
    let jwks = if a.get("jwksReachable").and_then(Value::as_bool) == Some(true) {
        format!("reachable, {} key(s)", text(a, "jwksKeyCount"))
    } else {
        format!("NOT reachable: {}", or_dash(text(a, "jwksError")))
    };
    let mut f: Vec<(&str, String)> = vec![
        ("Stream", id.to_string()),
        ("Ready", yes_no(a, "ready")),
        ("Transmitter keys", jwks),
    ];
    let keys = strings(a, "subjectKeys");
    if !keys.is_empty() || !text(a, "upstreamSubject").is_empty() {
        f.push(("Subject keys", or_dash(keys.join(", "))));
        f.push((
            "Local user",
            if a.get("identityLinkFound").and_then(Value::as_bool) == Some(true) {
                text(a, "matchedUserId")
            } else {
                "(no identity link found)".into()
            },
        ));
    }
    write_fields(out.w, &f)?;
    if let Some(preview) = a.get("actionPreview").and_then(Value::as_object) {
        writeln!(out.w)?;
        let mut t = Table::new(&["EVENT", "ACTION"]);
        for (event, action) in preview {
            let action = action.as_str().unwrap_or_default();
            let short = action
                .strip_prefix("SSF_REVOCATION_ACTION_")
                .unwrap_or(action);
            t.row(vec![event.clone(), short.to_string()]);
        }
        t.write(out.w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> StreamsCommand {
        let mut argv = vec!["ssfd", "streams"];
        argv.extend(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Streams(c) => c,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn update_mask_names_exactly_the_fields_given() {
        let StreamsCommand::Update(a) = parse(&[
            "update",
            "abc",
            "--disable",
            "--name",
            "New",
            "--session-revoked-action",
            "log-only",
            "--event-type",
            "session-revoked",
        ]) else {
            panic!()
        };
        let body = update_body(&a).unwrap();
        let mask: Vec<&str> = body["updateMask"].as_str().unwrap().split(',').collect();
        let mut sorted = mask.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "displayName",
                "enabled",
                "eventTypesEnabled",
                "sessionRevokedAction"
            ]
        );
        let rec = &body["ssfReceiverStream"];
        assert_eq!(rec["enabled"], json!(false));
        assert_eq!(
            rec["sessionRevokedAction"],
            json!("SSF_REVOCATION_ACTION_LOG_ONLY")
        );
    }

    #[test]
    fn update_without_fields_is_a_usage_error() {
        let StreamsCommand::Update(a) = parse(&["update", "abc"]) else {
            panic!()
        };
        let err = update_body(&a).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
    }

    #[test]
    fn clearing_fields() {
        let StreamsCommand::Update(a) = parse(&[
            "update",
            "abc",
            "--all-event-types",
            "--no-outbound-auth",
            "--jwks-url",
            "",
        ]) else {
            panic!()
        };
        let body = update_body(&a).unwrap();
        let rec = &body["ssfReceiverStream"];
        assert_eq!(rec["eventTypesEnabled"], json!([]));
        assert_eq!(rec["outboundAuthBearer"], Value::Null);
        assert_eq!(rec["jwksUrl"], json!(""));
    }

    #[test]
    fn create_body_for_a_poll_stream() {
        let StreamsCommand::Create(a) = parse(&[
            "create",
            "--name",
            "kc",
            "--issuer",
            "https://idp",
            "--poll",
            "--poll-url",
            "https://idp/poll",
            "--poll-interval",
            "30s",
            "--disabled",
        ]) else {
            panic!()
        };
        let body = create_body(&a).unwrap();
        assert_eq!(body["deliveryMethod"], json!("SSF_DELIVERY_METHOD_POLL"));
        assert_eq!(body["pollEndpointUrl"], json!("https://idp/poll"));
        assert_eq!(body["pollInterval"], json!("30s"));
        assert_eq!(body["enabled"], json!(false));
    }

    #[test]
    fn poll_url_without_poll_is_a_usage_error() {
        let StreamsCommand::Create(a) = parse(&[
            "create",
            "--name",
            "kc",
            "--issuer",
            "https://idp",
            "--poll-url",
            "https://idp/poll",
        ]) else {
            panic!()
        };
        assert!(create_body(&a)
            .unwrap_err()
            .downcast_ref::<UsageError>()
            .is_some());
    }

    #[test]
    fn bad_values_are_refused_by_the_parser() {
        let bad = |args: &[&str]| {
            let mut argv = vec!["ssfd", "streams"];
            argv.extend(args);
            crate::cli::Cli::try_parse_from(argv).unwrap_err()
        };
        bad(&["create", "--name", "x", "--issuer", "https://i", "--poll"]);
        bad(&[
            "create",
            "--name",
            "x",
            "--issuer",
            "https://i",
            "--session-revoked-action",
            "maybe",
        ]);
        bad(&[
            "create",
            "--name",
            "x",
            "--issuer",
            "https://i",
            "--poll-interval",
            "soon",
        ]);
        bad(&["update", "abc", "--enable", "--disable"]);
        bad(&["list", "--page-size", "0"]);
    }
}
