//! `ssfd step-up ...`: manage step-up providers through the admin API (list, get, create,
//! update, delete, test).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use super::client::AdminClient;
use super::table::{list, or_dash, strings, text, time, truncate, write_fields, yes_no, Table};
use super::{fetch_pages, Out, UsageError};
use crate::config::read_secret;

const PROVIDERS: [&str; 4] = ["api", "v1", "step-up", "providers"];

fn path<'a>(id: &'a str, tail: Option<&'a str>) -> Vec<&'a str> {
    let mut p = PROVIDERS.to_vec();
    p.push(id);
    p.extend(tail);
    p
}

#[derive(Subcommand, Debug)]
pub enum StepUpCommand {
    #[command(
        about = "List step-up providers",
        long_about = "List step-up providers: the OpenID providers that make a user authenticate \
again, more strongly, when a signal calls for STEP_UP rather than a logout.

Examples:
  ssfd step-up list
  ssfd step-up list --json | jq -r '.list[].id'"
    )]
    List {
        /// Show at most this many providers.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },

    #[command(
        about = "Show one step-up provider",
        long_about = "Show one step-up provider. The client secret is write-only and never shown.

Example:
  ssfd step-up get 3f9c2a..."
    )]
    Get {
        /// The provider's ID (see `ssfd step-up list`).
        id: String,
    },

    #[command(
        about = "Create a step-up provider",
        long_about = "Create a step-up provider: an OAuth 2.0 provider that understands RFC 9470 \
challenges (--acr-value, any number), or Microsoft Entra with Conditional Access authentication \
contexts (--conditional-access-id, at least one). The client secret is read from a file so that \
it never appears in the process list.

Examples:
  ssfd step-up create --name 'Okta MFA' --issuer https://example.okta.com/oauth2/default \\
      --acr-value urn:okta:loa:2fa:any --client-id 0oa... --client-secret-file /etc/ssfd/okta.secret
  ssfd step-up create --name Entra --issuer https://login.microsoftonline.com/TENANT/v2.0 \\
      --conditional-access-id c1 --tenant contoso.onmicrosoft.com"
    )]
    Create(CreateArgs),

    #[command(
        about = "Change a step-up provider",
        long_about = "Change the named settings of a step-up provider; everything else stays as it \
is (the call carries an updateMask of exactly the fields given). Giving --acr-value switches the \
provider to OAuth 2.0, --conditional-access-id to Microsoft.

Examples:
  ssfd step-up update 3f9c2a... --acr-value phr --acr-value phrh
  ssfd step-up update 3f9c2a... --disable"
    )]
    Update(UpdateArgs),

    #[command(
        about = "Delete a step-up provider",
        long_about = "Delete a step-up provider. Step-up requirements already on record keep the \
acr values they were recorded with.

Example:
  ssfd step-up delete 3f9c2a..."
    )]
    Delete {
        /// The provider's ID.
        id: String,
    },

    #[command(
        about = "Check that a step-up provider works",
        long_about = "Check a step-up provider: its OpenID configuration is read, must name the \
provider's issuer, its keys must load, the requested acr values must be among those it supports \
(when it lists them), and with a client secret a client-credentials token must be issued. Each \
check is shown with its result; the exit code is 0 either way (use --json and `passed`).

Example:
  ssfd step-up test 3f9c2a..."
    )]
    Test {
        /// The provider's ID.
        id: String,
    },
}

/// `--validation-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidationModeArg {
    Unspecified,
    Acrs,
    Oidc,
}

impl ValidationModeArg {
    fn as_api(self) -> &'static str {
        match self {
            ValidationModeArg::Unspecified => "MICROSOFT_VALIDATION_MODE_UNSPECIFIED",
            ValidationModeArg::Acrs => "MICROSOFT_VALIDATION_MODE_ACRS",
            ValidationModeArg::Oidc => "MICROSOFT_VALIDATION_MODE_OIDC",
        }
    }
}

/// Options create and update share.
#[derive(Args, Debug, Default)]
pub struct FieldArgs {
    /// The OAuth 2.0 client ID ssfd uses for the provider's token endpoint.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Read the client secret from FILE (write-only: it is never shown again).
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// An RFC 9470 acr value the user must reach (repeatable): an OAuth 2.0 provider.
    #[arg(long = "acr-value", value_name = "ACR", help_heading = "OAuth 2.0")]
    pub acr_values: Vec<String>,
    /// An Entra authentication context id such as c1 (repeatable): a Microsoft provider.
    #[arg(
        long = "conditional-access-id",
        value_name = "ID",
        conflicts_with = "acr_values",
        help_heading = "Microsoft"
    )]
    pub conditional_access_ids: Vec<String>,
    /// The Entra tenant.
    #[arg(
        long,
        value_name = "TENANT",
        requires = "conditional_access_ids",
        help_heading = "Microsoft"
    )]
    pub tenant: Option<String>,
    /// How an Entra token proves conditional access: acrs (the acrs claim) or oidc (acrs or acr).
    #[arg(
        long,
        value_enum,
        requires = "conditional_access_ids",
        help_heading = "Microsoft"
    )]
    pub validation_mode: Option<ValidationModeArg>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The provider's display name.
    #[arg(long)]
    pub name: String,
    /// The OpenID issuer URL (its /.well-known/openid-configuration is read).
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub fields: FieldArgs,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The provider's ID.
    pub id: String,
    /// A new display name.
    #[arg(long)]
    pub name: Option<String>,
    /// A new issuer URL.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// Enable the provider.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable the provider.
    #[arg(long)]
    pub disable: bool,
    /// Forget the client secret.
    #[arg(long, conflicts_with = "client_secret_file")]
    pub no_client_secret: bool,
    #[command(flatten)]
    pub fields: FieldArgs,
}

fn field_values(f: &FieldArgs) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    if let Some(v) = &f.client_id {
        m.insert("clientId".into(), json!(v));
    }
    if let Some(p) = &f.client_secret_file {
        let secret = read_secret(p).with_context(|| format!("client secret ({})", p.display()))?;
        m.insert("clientSecret".into(), json!(secret));
    }
    if !f.acr_values.is_empty() {
        m.insert("oauth2".into(), json!({ "acrValues": f.acr_values }));
    }
    if !f.conditional_access_ids.is_empty() {
        let mut ms = Map::new();
        ms.insert(
            "conditionalAccessIds".into(),
            json!(f.conditional_access_ids),
        );
        if let Some(t) = &f.tenant {
            ms.insert("tenant".into(), json!(t));
        }
        if let Some(v) = f.validation_mode {
            ms.insert("validationMode".into(), json!(v.as_api()));
        }
        m.insert("microsoft".into(), Value::Object(ms));
    }
    Ok(m)
}

/// The body of a create call. Without Microsoft options the provider is an OAuth 2.0 one.
pub fn create_body(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut m = field_values(&a.fields)?;
    m.insert("displayName".into(), json!(a.name));
    m.insert("issuerUrl".into(), json!(a.issuer));
    m.insert("enabled".into(), json!(!a.disabled));
    if !m.contains_key("microsoft") && !m.contains_key("oauth2") {
        m.insert("oauth2".into(), json!({ "acrValues": [] }));
    }
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
    if a.enable || a.disable {
        m.insert("enabled".into(), json!(a.enable));
    }
    if a.no_client_secret {
        m.insert("clientSecret".into(), Value::Null);
    }
    if m.is_empty() {
        return Err(UsageError(
            "nothing to update: give at least one option that sets a field (see `ssfd step-up update --help`)"
                .into(),
        )
        .into());
    }
    let mask = m.keys().cloned().collect::<Vec<_>>().join(",");
    Ok(json!({ "stepUpProvider": Value::Object(m), "updateMask": mask }))
}

pub async fn run(cmd: StepUpCommand, api: &AdminClient, out: &mut Out<'_>) -> anyhow::Result<()> {
    match cmd {
        StepUpCommand::List { limit } => {
            let (items, next) = fetch_pages(api, &PROVIDERS, Vec::new(), limit.max(1)).await?;
            if out.json {
                return out.print_json(&json!({ "list": items, "nextPageToken": next }));
            }
            if items.is_empty() {
                writeln!(out.w, "No step-up providers.")?;
                return Ok(());
            }
            let mut t = Table::new(&["ID", "NAME", "KIND", "ENABLED", "ISSUER", "LAST TESTED"]);
            for p in &items {
                t.row(vec![
                    text(p, "id"),
                    truncate(&text(p, "displayName"), 40),
                    kind(p),
                    yes_no(p, "enabled"),
                    text(p, "issuerUrl"),
                    time(p, "lastTestedAt"),
                ]);
            }
            t.write(out.w)?;
            Ok(())
        }
        StepUpCommand::Get { id } => {
            let answer = api.get(&path(&id, None), &[]).await?;
            if out.json {
                return out.print_json(&answer);
            }
            write_provider(out, answer.get("stepUpProvider").unwrap_or(&Value::Null))
        }
        StepUpCommand::Create(a) => {
            let answer = api.post(&PROVIDERS, &create_body(&a)?).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let p = answer.get("stepUpProvider").unwrap_or(&Value::Null);
            writeln!(
                out.w,
                "Created step-up provider {} ({}).",
                text(p, "id"),
                text(p, "displayName")
            )?;
            write_provider(out, p)
        }
        StepUpCommand::Update(a) => {
            let body = update_body(&a)?;
            let answer = api.post(&path(&a.id, None), &body).await?;
            if out.json {
                return out.print_json(&answer);
            }
            let mask = text(&body, "updateMask").replace(',', ", ");
            writeln!(out.w, "Updated step-up provider {} ({mask}).", a.id)?;
            write_provider(out, answer.get("stepUpProvider").unwrap_or(&Value::Null))
        }
        StepUpCommand::Delete { id } => {
            let answer = api.delete(&path(&id, None), &[]).await?;
            if out.json {
                return out.print_json(&answer);
            }
            writeln!(out.w, "Deleted step-up provider {id}.")?;
            Ok(())
        }
        StepUpCommand::Test { id } => {
            let answer = api.post(&path(&id, Some("test")), &json!({})).await?;
            if out.json {
                return out.print_json(&answer);
            }
            write_test(out, &id, &answer)
        }
    }
}

fn kind(p: &Value) -> String {
    if p.get("microsoft").is_some_and(Value::is_object) {
        "MICROSOFT".into()
    } else {
        "OAUTH2".into()
    }
}

fn write_provider(out: &mut Out<'_>, p: &Value) -> anyhow::Result<()> {
    let mut f: Vec<(&str, String)> = vec![
        ("ID", text(p, "id")),
        ("Name", text(p, "displayName")),
        ("Enabled", yes_no(p, "enabled")),
        ("Kind", kind(p)),
        ("Issuer", text(p, "issuerUrl")),
        ("Client ID", or_dash(text(p, "clientId"))),
    ];
    match p.get("microsoft") {
        Some(m) if m.is_object() => {
            f.push((
                "Conditional access",
                or_dash(strings(m, "conditionalAccessIds").join(", ")),
            ));
            f.push(("Tenant", or_dash(text(m, "tenant"))));
            f.push(("Validation mode", or_dash(text(m, "validationMode"))));
        }
        _ => {
            let acr = strings(p.get("oauth2").unwrap_or(&Value::Null), "acrValues");
            f.push((
                "ACR values",
                if acr.is_empty() {
                    "(any)".into()
                } else {
                    acr.join(" ")
                },
            ));
        }
    }
    f.push(("Created", time(p, "createdAt")));
    f.push(("Updated", time(p, "updatedAt")));
    f.push(("Last tested", time(p, "lastTestedAt")));
    write_fields(out.w, &f)?;
    Ok(())
}

fn write_test(out: &mut Out<'_>, id: &str, a: &Value) -> anyhow::Result<()> {
    write_fields(
        out.w,
        &[
            ("Provider", id.to_string()),
            ("Passed", yes_no(a, "passed")),
        ],
    )?;
    let checks = list(&json!({ "list": a.get("checks").cloned().unwrap_or(Value::Null) }));
    if !checks.is_empty() {
        writeln!(out.w)?;
        let mut t = Table::new(&["CHECK", "RESULT", "DETAIL"]);
        for c in &checks {
            t.row(vec![text(c, "check"), text(c, "result"), text(c, "detail")]);
        }
        t.write(out.w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> StepUpCommand {
        let mut argv = vec!["ssfd", "step-up"];
        argv.extend(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::StepUp(c) => c,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn update_mask_names_exactly_the_fields_given() {
        let StepUpCommand::Update(a) = parse(&["update", "p1", "--acr-value", "phr", "--disable"])
        else {
            panic!()
        };
        let body = update_body(&a).unwrap();
        assert_eq!(body["updateMask"], "oauth2,enabled");
        assert_eq!(
            body["stepUpProvider"]["oauth2"]["acrValues"],
            json!(["phr"])
        );
        let StepUpCommand::Update(a) = parse(&["update", "p1"]) else {
            panic!()
        };
        assert!(update_body(&a).is_err());
    }

    #[test]
    fn create_defaults_to_oauth2_and_refuses_mixed_kinds() {
        let StepUpCommand::Create(a) = parse(&["create", "--name", "n", "--issuer", "https://i"])
        else {
            panic!()
        };
        let body = create_body(&a).unwrap();
        assert_eq!(body["oauth2"], json!({"acrValues": []}));
        let argv = [
            "ssfd",
            "step-up",
            "create",
            "--name",
            "n",
            "--issuer",
            "https://i",
            "--acr-value",
            "phr",
            "--conditional-access-id",
            "c1",
        ];
        assert!(crate::cli::Cli::try_parse_from(argv).is_err());
        let StepUpCommand::Create(a) = parse(&[
            "create",
            "--name",
            "n",
            "--issuer",
            "https://i",
            "--conditional-access-id",
            "c1",
            "--validation-mode",
            "acrs",
        ]) else {
            panic!()
        };
        let body = create_body(&a).unwrap();
        assert_eq!(
            body["microsoft"]["validationMode"],
            "MICROSOFT_VALIDATION_MODE_ACRS"
        );
        assert!(body.get("oauth2").is_none());
    }
}
