//! `ssfd transmitter register|verify|status|delete ID`: asks the running daemon, through its admin
//! API, to act at a stream's transmitter, and prints the JSON answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::config::{read_secret, Config};

#[derive(Args, Debug)]
pub struct TransmitterArgs {
    #[command(subcommand)]
    pub action: TransmitterAction,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// How to reach the admin API. The token comes from `SSFD_ADMIN_TOKEN`, else `--token-file`,
/// else the configuration; it is never taken from the command line, where `ps` would show it.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Configuration file naming [server] admin_listen and the [admin] token.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Admin API base URL (default: http:// + [server] admin_listen).
    #[arg(long, env = "SSFD_ADMIN_URL", value_name = "URL", global = true)]
    pub admin_url: Option<String>,
    /// File holding the admin token (default: [admin] token_file).
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TransmitterAction {
    /// Create (or take over) the stream at its transmitter and store what it assigned.
    Register { id: String },
    /// Ask the transmitter for a verification event with a fresh state.
    Verify { id: String },
    /// Show the stream status at the transmitter, or change it with --set.
    Status {
        id: String,
        #[arg(long, value_parser = ["enabled", "paused", "disabled"])]
        set: Option<String>,
        #[arg(long, requires = "set")]
        reason: Option<String>,
    },
    /// Delete the stream here; with --remote, at its transmitter first.
    Delete {
        id: String,
        #[arg(long)]
        remote: bool,
    },
}

struct Admin {
    base: reqwest::Url,
    token: String,
}

fn admin_of(args: &AdminArgs) -> anyhow::Result<Admin> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let base = match &args.admin_url {
        Some(u) => u.clone(),
        None => {
            let mut addr: SocketAddr = config.server.admin_listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            format!("http://{addr}")
        }
    };
    let base = reqwest::Url::parse(&base).with_context(|| format!("admin URL {base:?}"))?;
    let token = match std::env::var("SSFD_ADMIN_TOKEN") {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => match (&args.token_file, &config.admin.token) {
            (Some(p), _) => read_secret(p)?,
            (None, Some(t)) => t.clone(),
            (None, None) => read_secret(&config.admin.token_file)?,
        },
    };
    Ok(Admin { base, token })
}

fn stream_url(base: &reqwest::Url, id: &str, suffix: Option<&str>) -> anyhow::Result<reqwest::Url> {
    let mut url = base.clone();
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|_| anyhow::anyhow!("the admin URL cannot have a path"))?;
        segs.pop_if_empty()
            .extend(["api", "v1", "ssf-receiver-streams", id]);
        if let Some(s) = suffix {
            segs.push(s);
        }
    }
    Ok(url)
}

pub fn run(args: TransmitterArgs) -> anyhow::Result<()> {
    let admin = admin_of(&args.admin)?;
    let rt = tokio::runtime::Runtime::new()?;
    let answer = rt.block_on(call(&admin, &args.action))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

async fn call(admin: &Admin, action: &TransmitterAction) -> anyhow::Result<Value> {
    use reqwest::Method;
    let (method, url, body) = match action {
        TransmitterAction::Register { id } => (
            Method::POST,
            stream_url(&admin.base, id, Some("register"))?,
            None,
        ),
        TransmitterAction::Verify { id } => (
            Method::POST,
            stream_url(&admin.base, id, Some("verify"))?,
            None,
        ),
        TransmitterAction::Status { id, set, reason } => {
            let url = stream_url(&admin.base, id, Some("transmitter-status"))?;
            match set {
                None => (Method::GET, url, None),
                Some(status) => (
                    Method::POST,
                    url,
                    Some(json!({"status": status, "reason": reason.clone().unwrap_or_default()})),
                ),
            }
        }
        TransmitterAction::Delete { id, remote } => {
            let mut url = stream_url(&admin.base, id, None)?;
            if *remote {
                url.query_pairs_mut().append_pair("remote", "true");
            }
            (Method::DELETE, url, None)
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let mut req = client.request(method, url).bearer_auth(&admin.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .context("the admin API could not be reached")?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let message = doc
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| doc.to_string());
        bail!("HTTP {}: {message}", status.as_u16());
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        let base = reqwest::Url::parse("http://127.0.0.1:8081/").unwrap();
        assert_eq!(
            stream_url(&base, "abc", Some("verify")).unwrap().as_str(),
            "http://127.0.0.1:8081/api/v1/ssf-receiver-streams/abc/verify"
        );
        assert_eq!(
            stream_url(&base, "a/b", None).unwrap().as_str(),
            "http://127.0.0.1:8081/api/v1/ssf-receiver-streams/a%2Fb"
        );
    }
}
