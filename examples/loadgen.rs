//! Load generator and benchmark for ssfd's push path.
//!
//! Starts a loopback test transmitter and the release `ssfd` binary as a child process (so its
//! memory can be measured on its own), creates a stream, pre-signs N SETs with distinct jti and
//! subjects, pushes them over C keep-alive connections, and prints the acknowledged rate,
//! latency percentiles, errors by code and the daemon's RSS. Other modes measure start-up time
//! with many streams and idle memory.
//!
//!     cargo build --release && cargo run --release --example loadgen -- ingest --sets 20000 --concurrency 64
//!     cargo run --release --example loadgen -- ingest --alg es256
//!     cargo run --release --example loadgen -- ingest --rate 2000 --sets 20000   # fixed offered rate
//!     cargo run --release --example loadgen -- startup --streams 1000
//!     cargo run --release --example loadgen -- idle --streams 100

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use ssfd_testkit::{subjects, KeyKind, TestTransmitter, TransmitterOptions};

const ADMIN_TOKEN: &str = "loadgen-admin-token-0123456789abcdef";

#[derive(Parser)]
#[command(about = "Push-path load generator and benchmarks for ssfd")]
struct Args {
    /// The ssfd binary (default: the release build beside this example).
    #[arg(long, global = true)]
    ssfd: Option<PathBuf>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    Rs256,
    Es256,
}

#[derive(Subcommand)]
enum Mode {
    /// Push SETs as fast as possible (or at --rate) and report throughput and latency.
    Ingest {
        #[arg(long, default_value_t = 20_000)]
        sets: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, value_enum, default_value_t = Alg::Rs256)]
        alg: Alg,
        /// Offered rate in SETs/s; 0 pushes as fast as the connections allow.
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Time from process start to /readyz with this many streams in the database.
    Startup {
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Resident memory of an idle daemon with this many streams.
    Idle {
        #[arg(long, default_value_t = 100)]
        streams: usize,
    },
}

struct Daemon {
    child: Child,
    admin: String,
    push: String,
    http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn ssfd_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    // target/release/examples/loadgen -> target/release/ssfd
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    let bin = dir.join("ssfd");
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line; the first field after the name is 3.
    let hz = 100.0; // USER_HZ on Linux
    (ticks(11) + ticks(12)) / hz
}

/// Peak and current resident set size of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn start_daemon(bin: &Path, dir: &Path) -> anyhow::Result<(Daemon, Duration)> {
    let push_port = free_port()?;
    let admin_port = free_port()?;
    let config = dir.join("receiver.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\npush_listen = \"127.0.0.1:{push_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             [storage]\npath = \"{}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[jwks]\nallow_http = true\n[outbound]\nallow_private = true\n\
             [log]\nlevel = \"warn\"\n",
            dir.join("ssfd.db").display()
        ),
    )?;
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    let d = Daemon {
        child,
        admin: format!("http://127.0.0.1:{admin_port}"),
        push: format!("http://127.0.0.1:{push_port}"),
        http,
    };
    for _ in 0..10_000 {
        if let Ok(r) = d.http.get(format!("{}/readyz", d.admin)).send().await {
            if r.status() == 200 {
                return Ok((d, started.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("ssfd did not become ready")
}

async fn create_stream(d: &Daemon, tx: &TestTransmitter) -> anyhow::Result<(String, String)> {
    let v: Value = d
        .http
        .post(format!("{}/api/v1/ssf-receiver-streams", d.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"displayName": "bench", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url(),
                      "expectedAudience": tx.audience()}),
        )
        .send()
        .await?
        .json()
        .await?;
    let id = v["ssfReceiverStream"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let token = v["pushAuthTokenPlaintext"]
        .as_str()
        .context("no token")?
        .to_string();
    Ok((id, token))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The machine's raw RSA-2048 verify rate on one core, from `openssl speed`.
fn openssl_rsa_verify_rate() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000600s 0.000017s   1666.7  58823.5" : sign/s, verify/s are the last two.
    text.lines()
        .filter(|l| {
            l.trim_start().starts_with("rsa 2048") || l.trim_start().starts_with("rsa  2048")
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .next()
}

async fn ingest(
    bin: &Path,
    sets: usize,
    concurrency: usize,
    alg: Alg,
    rate: u64,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kind = match alg {
        Alg::Rs256 => KeyKind::Rs256,
        Alg::Es256 => KeyKind::Es256,
    };
    let tx = TestTransmitter::start_with(TransmitterOptions {
        key_kind: Some(kind),
        ..Default::default()
    })
    .await;
    let (d, _) = start_daemon(bin, dir.path()).await?;
    let (id, token) = create_stream(&d, &tx).await?;
    let (_, idle_rss) = rss_mib(d.child.id());

    eprintln!("pre-signing {sets} SETs ...");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let per = sets.div_ceil(threads);
    let mut handles = Vec::new();
    for t in 0..threads {
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || {
            (t * per..((t + 1) * per).min(sets))
                .map(|i| {
                    tx.set()
                        .jti(format!("bench-{i}"))
                        .sub_id(subjects::email(&format!("user{i}@example.com")))
                        .sign()
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut signed = Vec::with_capacity(sets);
    for h in handles {
        signed.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("signing thread panicked"))?,
        );
    }
    // Warm the key cache so the first pushes do not measure a JWKS fetch.
    let warm = tx.set().sign();
    ssfd_testkit::push_set(&d.http, &format!("{}/ssf/push/{id}", d.push), &token, &warm).await?;

    eprintln!("pushing (daemon pid {}) ...", d.child.id());
    let queue = Arc::new(tokio::sync::Mutex::new(signed.into_iter().enumerate()));
    let url = Arc::new(format!("{}/ssf/push/{id}", d.push));
    let cpu_before = cpu_seconds(d.child.id());
    let start = Instant::now();
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (queue, url, token, http) = (queue.clone(), url.clone(), token.clone(), d.http.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let Some((i, set)) = queue.lock().await.next() else {
                    break;
                };
                if let Some(iv) = interval {
                    // Open-loop schedule: SET i is due at start + i * interval.
                    let due = start + iv * i as u32;
                    tokio::time::sleep_until(due.into()).await;
                }
                let t0 = Instant::now();
                match ssfd_testkit::push_set(&http, &url, &token, &set).await {
                    Ok(r) if r.status() == 202 => lat.push(t0.elapsed()),
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        let code = body["err"]
                            .as_str()
                            .map(String::from)
                            .unwrap_or(status.to_string());
                        *errors.entry(code).or_default() += 1;
                    }
                    Err(e) => *errors.entry(format!("transport: {e}")).or_default() += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for w in workers {
        let (l, e) = w.await?;
        lat.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed();
    let daemon_cpu = cpu_seconds(d.child.id()) - cpu_before;
    lat.sort();
    let (peak, _) = rss_mib(d.child.id());
    let acked = lat.len();
    let rate_achieved = acked as f64 / elapsed.as_secs_f64();
    let alg_name = match alg {
        Alg::Rs256 => "RS256",
        Alg::Es256 => "ES256",
    };
    println!("mode            ingest ({alg_name}, durable: synchronous=FULL)");
    println!(
        "offered         {}",
        if rate > 0 {
            format!("{rate} SETs/s")
        } else {
            "as fast as possible".into()
        }
    );
    println!("connections     {concurrency}");
    println!(
        "acked           {acked} of {sets} in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!("rate            {rate_achieved:.0} SETs/s");
    println!(
        "latency ms      p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!("errors          {errors:?}");
    println!(
        "daemon CPU      {:.2} s = {:.0} us per acked SET ({:.2} of one core)",
        daemon_cpu,
        daemon_cpu * 1e6 / acked.max(1) as f64,
        daemon_cpu / elapsed.as_secs_f64()
    );
    println!("daemon RSS MiB  idle {idle_rss:.1}  peak {peak:.1}");
    if let Some(v) = openssl_rsa_verify_rate() {
        println!(
            "openssl rsa2048 verify/s (1 core) {v:.0}; ingest/verify ratio {:.3}",
            rate_achieved / v
        );
    }
    Ok(())
}

async fn seed_streams(d: &Daemon, tx: &TestTransmitter, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        let resp = d
            .http
            .post(format!("{}/api/v1/ssf-receiver-streams", d.admin))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"displayName": format!("s{i}"), "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url()}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("create failed: {}", resp.status());
        }
    }
    Ok(())
}

async fn startup(bin: &Path, streams: usize, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tx = TestTransmitter::start().await;
    {
        let (d, _) = start_daemon(bin, dir.path()).await?;
        seed_streams(&d, &tx, streams).await?;
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let (d, t) = start_daemon(bin, dir.path()).await?;
        times.push(t);
        drop(d);
    }
    times.sort();
    println!("mode            startup to /readyz with {streams} streams");
    println!(
        "time ms         min {:.1}  median {:.1}  max {:.1}  ({runs} runs)",
        percentile(&times, 0.0),
        percentile(&times, 0.5),
        percentile(&times, 1.0)
    );
    Ok(())
}

async fn idle(bin: &Path, streams: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tx = TestTransmitter::start().await;
    {
        let (d, _) = start_daemon(bin, dir.path()).await?;
        seed_streams(&d, &tx, streams).await?;
    }
    let (d, _) = start_daemon(bin, dir.path()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (peak, now) = rss_mib(d.child.id());
    println!("mode            idle with {streams} streams");
    println!("daemon RSS MiB  {now:.1} (peak {peak:.1})");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = ssfd_binary(args.ssfd)?;
    match args.mode {
        Mode::Ingest {
            sets,
            concurrency,
            alg,
            rate,
        } => ingest(&bin, sets, concurrency, alg, rate).await,
        Mode::Startup { streams, runs } => startup(&bin, streams, runs).await,
        Mode::Idle { streams } => idle(&bin, streams).await,
    }
}
