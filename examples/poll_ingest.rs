//! Poll ingestion benchmark: a loopback test transmitter serves N signed SETs (default 20,000),
//! 1,000 per poll answer, to a real daemon on a temporary database; prints SETs per second from
//! the moment the stream is created until the last SET is acknowledged.
//!
//! ```text
//! cargo run --release --example poll_ingest [-- N]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use ssfd::config::Config;
use ssfd::daemon::Daemon;
use ssfd_testkit::{events, subjects, TestTransmitter};

const PER_ANSWER: u32 = 1000;
const ADMIN_TOKEN: &str = "benchmark-admin-token-0123456789abcdef0123";

fn main() -> anyhow::Result<()> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("N must be a number of SETs")?,
        None => 20_000,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(total))
}

async fn run(total: usize) -> anyhow::Result<()> {
    let tx = TestTransmitter::start().await;
    tx.set_poll_hold(Duration::from_millis(200));

    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut signing = Vec::new();
    for w in 0..workers {
        let tx = tx.clone();
        let count = total / workers + usize::from(w < total % workers);
        signing.push(tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|i| {
                    let user = format!("user{w}-{i}@example.com");
                    tx.set()
                        .sub_id(subjects::email(&user))
                        .event(
                            "session-revoked",
                            events::default_payload("session-revoked", None, 1_700_000_000),
                        )
                        .sign()
                })
                .collect::<Vec<String>>()
        }));
    }
    for task in signing {
        for token in task.await? {
            tx.enqueue("bench", &token);
        }
    }
    println!(
        "signed and queued {total} SETs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.push_listen = "127.0.0.1:0".parse()?;
    config.server.admin_listen = "127.0.0.1:0".parse()?;
    config.storage.path = dir.path().join("ssfd.db");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.jwks.allow_http = true;
    config.outbound.allow_private = true;
    config.poll.max_events = PER_ANSWER;
    let daemon = Daemon::start(config).await?;

    let client = ssfd_testkit::http_client();
    let started = Instant::now();
    let resp = client
        .post(format!(
            "{}/api/v1/ssf-receiver-streams",
            daemon.admin_url()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "displayName": "benchmark",
            "issuerUrl": tx.issuer(),
            "jwksUrl": tx.jwks_url(),
            "expectedAudience": tx.audience(),
            "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
            "pollEndpointUrl": tx.poll_url("bench"),
            "outboundAuthBearer": {"token": tx.static_token()},
        }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("creating the stream failed: {}", resp.text().await?);
    }
    let created: Value = resp.json().await?;
    let id = created["ssfReceiverStream"]["id"]
        .as_str()
        .context("no stream id")?
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(600);
    while tx.queued("bench") > 0 {
        if Instant::now() > deadline {
            bail!("{} SETs still queued after 10 minutes", tx.queued("bench"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();

    let stored = daemon.app.store.stream_counts(&id).await?.received;
    let answers = tx
        .poll_requests()
        .iter()
        .filter(|r| !r.delivered.is_empty())
        .count();
    daemon.shutdown().await;
    if stored as usize != total {
        bail!("stored {stored} of {total} SETs");
    }
    println!(
        "polled, verified, stored and acknowledged {total} SETs in {answers} answers of up to \
         {PER_ANSWER} in {:.2} s: {:.0} SETs/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
