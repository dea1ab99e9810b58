//! Benchmark: the time from pushing a SET to its webhook action arriving, at a fixed offered rate.
//!
//! Runs the daemon in-process with one webhook sink pointed at a loopback receiver (the testkit's
//! recorder), pushes pre-signed `session-revoked` SETs (RS256, a fresh subject each) at the offered
//! rate, and prints percentiles of "push sent -> webhook received" and the rates achieved.
//!
//! ```text
//! cargo run --release --example action_latency -- --rate 500 --seconds 10
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use ssfd::config::{Config, SinkConfig, SinkKind};
use ssfd::daemon::Daemon;
use ssfd_testkit::{events, http_client, push_set, subjects, TestTransmitter, WebhookRecorder};

#[derive(Parser)]
#[command(about = "Push-to-webhook latency of ssfd's action pipeline")]
struct Args {
    /// Offered rate, SETs per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// How long to offer that rate, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Directory for the database (default: a new temporary directory). The disk behind it
    /// decides the cost of each commit's fsync.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const ADMIN_TOKEN: &str = "benchmark-admin-token-0123456789abcdef";

/// The first arrival of each jti among the recorder's deliveries.
fn arrivals(hook: &WebhookRecorder) -> HashMap<String, Instant> {
    let mut first = HashMap::new();
    for d in hook.deliveries() {
        let jti = serde_json::from_slice::<Value>(&d.body)
            .ok()
            .and_then(|v| v["jti"].as_str().map(String::from));
        if let Some(jti) = jti {
            first.entry(jti).or_insert(d.received_at);
        }
    }
    first
}

/// CPU time this process has used (user + system), to report the cost per SET.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The 1-minute load average, so that figures from a busy machine are read as such.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} p50 {:>10}  p90 {:>10}  p99 {:>10}  max {:>10}  (n = {})",
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default()),
        samples.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rate == 0 || args.seconds == 0 {
        bail!("--rate and --seconds must be positive");
    }
    let total = (args.rate as usize) * (args.seconds as usize);

    let temp = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let secret = dir.join("webhook.secret");
    std::fs::write(&secret, "benchmark-webhook-secret\n")?;

    let hook = WebhookRecorder::start().await;
    let mut config = Config::default();
    config.server.push_listen = "127.0.0.1:0".parse()?;
    config.server.admin_listen = "127.0.0.1:0".parse()?;
    config.storage.path = dir.join("ssfd-bench.db");
    let _ = std::fs::remove_file(&config.storage.path);
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.jwks.allow_http = true;
    config.outbound.allow_private = true;
    config.sinks = vec![SinkConfig {
        name: "bench".into(),
        kind: SinkKind::Webhook(ssfd::config::WebhookSettings {
            url: hook.url(),
            secret_file: secret,
        }),
        timeout: Duration::from_secs(5),
        streams: Vec::new(),
        events: Vec::new(),
        max_attempts: 8,
        retry_base: Duration::from_secs(1),
    }];
    let daemon = Daemon::start(config).await?;
    let tx = TestTransmitter::start().await;
    let http = http_client();

    let created: Value = http
        .post(format!(
            "{}/api/v1/ssf-receiver-streams",
            daemon.admin_url()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "displayName": "benchmark", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url(),
            "expectedAudience": tx.audience(),
        }))
        .send()
        .await?
        .json()
        .await?;
    let stream_id = created["ssfReceiverStream"]["id"]
        .as_str()
        .context("stream create answer")?
        .to_string();
    let token = created["pushAuthTokenPlaintext"]
        .as_str()
        .context("push token")?
        .to_string();
    let push_url = format!("{}/ssf/push/{stream_id}", daemon.push_url());

    // Signing is the transmitter's cost, not ssfd's: do it all before the clock starts.
    eprintln!("signing {total} SETs ...");
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut signers = Vec::new();
    for w in 0..workers {
        let builders: Vec<_> = (w..total)
            .step_by(workers)
            .map(|i| {
                tx.set()
                    .event(
                        "session-revoked",
                        events::default_payload("session-revoked", None, 0),
                    )
                    .sub_id(subjects::email(&format!("user{i}@example.com")))
            })
            .collect();
        signers.push(tokio::task::spawn_blocking(move || {
            builders
                .into_iter()
                .map(|b| {
                    let jti = b.claims()["jti"].as_str().unwrap_or_default().to_string();
                    (jti, b.sign())
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut sets = Vec::with_capacity(total);
    for s in signers {
        sets.extend(s.await?);
    }

    // Warm the JWKS cache and the connections, outside the measurement.
    let warm = tx
        .set()
        .sub_id(subjects::email("warmup@example.com"))
        .sign();
    let answer = push_set(&http, &push_url, &token, &warm).await?;
    if answer.status() != 202 {
        bail!("warm-up push answered {}", answer.status());
    }

    eprintln!(
        "offering {} SETs/s for {} s ({total} SETs) ...",
        args.rate, args.seconds
    );
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let load_before = load_average();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut pushes = Vec::with_capacity(total);
    for (jti, set) in sets {
        tick.tick().await;
        let (http, url, token) = (http.clone(), push_url.clone(), token.clone());
        pushes.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = push_set(&http, &url, &token, &set)
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (jti, sent, sent.elapsed(), status)
        }));
    }
    let offered_for = started.elapsed();
    let mut sent_at = HashMap::with_capacity(total);
    let mut ack_latency = Vec::with_capacity(total);
    let mut rejected = 0usize;
    for p in pushes {
        let (jti, sent, ack, status) = p.await?;
        if status == 202 {
            ack_latency.push(ack);
            sent_at.insert(jti, sent);
        } else {
            rejected += 1;
        }
    }
    let pushed_for = started.elapsed();

    // Every accepted SET must reach the webhook; wait for the stragglers (bounded).
    // Bodies are read again only when more have arrived, so that waiting costs little CPU.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    let mut arrived = HashMap::new();
    loop {
        if hook.len() != seen {
            seen = hook.len();
            arrived = arrivals(&hook);
        }
        let complete = sent_at.keys().all(|j| arrived.contains_key(j));
        if complete || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latency = Vec::with_capacity(sent_at.len());
    let mut last_arrival = started;
    for (jti, sent) in &sent_at {
        if let Some(at) = arrived.get(jti) {
            latency.push(at.saturating_duration_since(*sent));
            last_arrival = last_arrival.max(*at);
        }
    }
    let delivered = latency.len();
    let cpu_used = cpu_time().saturating_sub(cpu_before);

    println!("ssfd action latency benchmark");
    println!(
        "offered       {} SETs/s for {} s = {total} SETs (pushes issued over {:.2} s)",
        args.rate,
        args.seconds,
        offered_for.as_secs_f64()
    );
    println!(
        "accepted      {} (202), {rejected} not accepted; push rate achieved {:.1}/s",
        sent_at.len(),
        sent_at.len() as f64 / pushed_for.as_secs_f64()
    );
    println!(
        "delivered     {delivered} webhook actions; delivery rate {:.1}/s (first push to last arrival)",
        delivered as f64 / last_arrival.duration_since(started).as_secs_f64().max(1e-9)
    );
    println!(
        "cpu           {:.2} s for the run ({:.0} us per SET: ssfd, this transmitter and this webhook \
         receiver together); {} cores; load average {load_before} before, {} after",
        cpu_used.as_secs_f64(),
        cpu_used.as_secs_f64() * 1e6 / (sent_at.len().max(1) as f64),
        workers,
        load_average()
    );
    summary("push sent -> 202", ack_latency);
    summary("push sent -> webhook", latency);

    daemon.shutdown().await;
    tx.shutdown().await;
    if delivered != sent_at.len() {
        bail!(
            "{} accepted SETs never reached the webhook",
            sent_at.len() - delivered
        );
    }
    Ok(())
}
