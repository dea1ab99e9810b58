//! A stand-in SSF transmitter for trying ssfd by hand: `serve` publishes metadata and a JWKS,
//! `push` signs SETs with the same key and delivers them to a push URL.
//!
//! ```text
//! cargo run --example transmitter -- serve
//! cargo run --example transmitter -- push --push-url URL --token TOKEN --event credential-change
//! ```

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;
use ssfd_testkit::{events, subjects, Jwk, SetBuilder, SigningKey, TestTransmitter};

/// Keeps a mistyped count from flooding the receiver.
const MAX_COUNT: u32 = 100_000;

#[derive(Parser)]
#[command(about = "A test Shared Signals Framework transmitter on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SSF metadata and the JWKS until Ctrl-C.
    Serve {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Private JWK file; created (mode 0600) with a fresh RSA-2048 key if missing.
        #[arg(long, default_value = "transmitter-key.json")]
        key: PathBuf,
    },
    /// Sign SETs with the served key and push them to a receiver (RFC 8935).
    Push {
        /// The stream's push endpoint, e.g. http://127.0.0.1:8080/ssf/push/<streamId>.
        #[arg(long)]
        push_url: String,
        /// The stream's push bearer token.
        #[arg(long)]
        token: String,
        /// The `iss` of the SETs: the URL `serve` printed.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        issuer: String,
        #[arg(long, default_value = "transmitter-key.json")]
        key: PathBuf,
        /// Event type: a short name such as session-revoked, credential-change,
        /// device-compliance-change, risk-level-change, account-disabled, or a full URI.
        #[arg(long, default_value = "session-revoked")]
        event: String,
        /// email:ADDR, iss_sub:ISS|SUB or opaque:ID.
        #[arg(long, default_value = "email:alice@example.com")]
        subject: String,
        #[arg(long, default_value = ssfd_testkit::DEFAULT_AUDIENCE)]
        aud: String,
        /// Text for the event's `reason_admin`.
        #[arg(long)]
        reason: Option<String>,
        /// How many SETs to send, each with its own jti.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_COUNT as i64))]
        count: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { listen, key } => serve(listen, &key).await,
        Command::Push {
            push_url,
            token,
            issuer,
            key,
            event,
            subject,
            aud,
            reason,
            count,
        } => {
            let event_type = match events::try_uri(&event) {
                Some(uri) => uri.to_owned(),
                None if event.contains(':') => event,
                None => {
                    bail!("unknown event type {event:?}: use a CAEP/RISC/SSF short name or a URI")
                }
            };
            let subject = subjects::parse(&subject).with_context(|| {
                format!("subject {subject:?}: use email:ADDR, iss_sub:ISS|SUB or opaque:ID")
            })?;
            let key = load_key(&key)
                .with_context(|| format!("run `serve` first to create {}", key.display()))?;
            let push = Push {
                push_url,
                token,
                issuer,
                key,
                event_type,
                subject,
                aud,
                reason,
            };
            push.run(count).await
        }
    }
}

async fn serve(listen: SocketAddr, key_path: &Path) -> anyhow::Result<()> {
    let key = match load_key(key_path) {
        Ok(key) => key,
        Err(_) if !key_path.exists() => {
            let key = SigningKey::generate(ssfd_testkit::KeyKind::Rs256, "k1");
            save_key(key_path, &key)?;
            println!("created signing key {}", key_path.display());
            key
        }
        Err(e) => return Err(e),
    };
    let transmitter = TestTransmitter::try_start_with(ssfd_testkit::TransmitterOptions {
        listen: Some(listen),
        key: Some(key.private_jwk()),
        ..Default::default()
    })
    .await?;
    println!("issuer:   {}", transmitter.issuer());
    println!("metadata: {}", transmitter.metadata_url());
    println!("jwks:     {}", transmitter.jwks_url());
    println!("key:      kid {} ({})", key.kid(), key.alg());
    println!("serving until Ctrl-C");
    tokio::signal::ctrl_c().await?;
    transmitter.shutdown().await;
    Ok(())
}

fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let jwk = Jwk::from_bytes(&text).with_context(|| format!("{} is not a JWK", path.display()))?;
    SigningKey::from_private_jwk(&jwk, None)
        .with_context(|| format!("{} holds no usable private key", path.display()))
}

/// Writes the private JWK readable by its owner only: it is the transmitter's identity.
fn save_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", key.private_jwk())?;
    Ok(())
}

struct Push {
    push_url: String,
    token: String,
    issuer: String,
    key: SigningKey,
    event_type: String,
    subject: Value,
    aud: String,
    reason: Option<String>,
}

impl Push {
    async fn run(&self, count: u32) -> anyhow::Result<()> {
        let client = ssfd_testkit::http_client();
        let mut failures = 0u32;
        for i in 1..=count {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let payload = events::default_payload(&self.event_type, self.reason.as_deref(), now);
            let builder = SetBuilder::new(&self.issuer, self.key.clone())
                .aud(self.aud.as_str())
                .sub_id(self.subject.clone())
                .event(&self.event_type, payload);
            let jti = builder.claims()["jti"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let response =
                ssfd_testkit::push_set(&client, &self.push_url, &self.token, &builder.sign())
                    .await
                    .with_context(|| format!("pushing to {}", self.push_url))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            println!("[{i}/{count}] jti {jti}: {status}");
            if !body.is_empty() {
                println!("{body}");
            }
            if !status.is_success() {
                failures += 1;
            }
        }
        if failures > 0 {
            bail!("{failures} of {count} pushes were not accepted");
        }
        Ok(())
    }
}
