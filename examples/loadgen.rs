//! Load generator and benchmark for ssfd's push and poll ingest.
//!
//! Starts a loopback test transmitter and the release `ssfd` binary as child processes (so their
//! CPU and memory are measured on their own), creates a stream, pre-signs N SETs with distinct
//! jti and subjects, pushes them over C keep-alive connections, and prints the acknowledged rate,
//! latency percentiles, errors by code, the daemons' CPU per SET and RSS. `bench` runs the whole
//! set of ingest figures in one go and prints a table. With `--storage-url postgres://...` the
//! daemons use a fresh PostgreSQL database (created for the run, dropped after it);
//! `--replicas N` starts N daemons on it and spreads the load round-robin. Other modes measure
//! start-up time with many streams and idle memory.
//!
//!     cargo build --release && cargo run --release --example loadgen -- bench
//!     cargo run --release --example loadgen -- ingest --sets 20000 --concurrency 64
//!     cargo run --release --example loadgen -- ingest --alg es256
//!     cargo run --release --example loadgen -- ingest --rate 2000 --sets 20000   # fixed offered rate
//!     cargo run --release --example loadgen -- --storage-url 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' --replicas 2 bench
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
/// SETs per poll answer in the poll figures.
const POLL_PER_ANSWER: u32 = 1000;

#[derive(Parser)]
#[command(about = "Ingest load generator and benchmarks for ssfd")]
struct Args {
    /// The ssfd binary (default: the release build beside this example).
    #[arg(long, global = true)]
    ssfd: Option<PathBuf>,
    /// A PostgreSQL server URL (its database is only used to create and drop a fresh one for
    /// the run); without it each run uses a fresh SQLite file.
    #[arg(long, global = true)]
    storage_url: Option<String>,
    /// Daemons sharing the database (PostgreSQL only); pushes go to them round-robin.
    #[arg(long, global = true, default_value_t = 1)]
    replicas: usize,
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
    /// Every ingest figure in one run (RS256): saturation push with daemon CPU per SET and the
    /// machine's RSA-2048 verify cost, p99 at a fixed offered rate, poll ingest, peak RSS.
    Bench {
        /// SETs pushed at saturation.
        #[arg(long, default_value_t = 20_000)]
        sets: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Offered rate of the latency run, SETs/s.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// SETs pushed in the latency run.
        #[arg(long, default_value_t = 10_000)]
        rate_sets: usize,
        /// SETs served by poll (1,000 per answer).
        #[arg(long, default_value_t = 20_000)]
        poll_sets: usize,
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

/// Where the daemons of one run keep their data: a temporary SQLite file or a fresh
/// PostgreSQL database, dropped with [`Storage::drop_database`].
struct Storage {
    dir: tempfile::TempDir,
    /// The server URL given (to drop the database from), the fresh database's name and URL.
    postgres: Option<(String, String, String)>,
}

impl Storage {
    async fn new(server_url: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let Some(server) = server_url else {
            return Ok(Self {
                dir,
                postgres: None,
            });
        };
        let name = format!("ssfd_bench_{}", std::process::id());
        let client = pg_connect(server).await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = with_database(server, &name)?;
        eprintln!("created database {name}");
        Ok(Self {
            dir,
            postgres: Some((server.to_string(), name, url)),
        })
    }

    /// The `[storage]` section for a daemon.
    fn toml(&self) -> String {
        match &self.postgres {
            Some((_, _, url)) => format!("[storage]\nurl = \"{url}\"\n"),
            None => format!(
                "[storage]\npath = \"{}\"\n",
                self.dir.path().join("ssfd.db").display()
            ),
        }
    }

    /// Drops the run's PostgreSQL database (after its daemons are stopped).
    async fn drop_database(&self) -> anyhow::Result<()> {
        if let Some((server, name, _)) = &self.postgres {
            let client = pg_connect(server).await?;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            eprintln!("dropped database {name}");
        }
        Ok(())
    }
}

async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The same server URL naming another database.
fn with_database(server: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(server).context("--storage-url must be a postgres:// URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
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

/// CPU seconds used so far by all the daemons together.
fn cpu_all(ds: &[Daemon]) -> f64 {
    ds.iter().map(|d| cpu_seconds(d.child.id())).sum()
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

/// The largest peak RSS of the daemons (each is its own process), in MiB.
fn peak_rss_all(ds: &[Daemon]) -> f64 {
    ds.iter()
        .map(|d| rss_mib(d.child.id()).0)
        .fold(0.0, f64::max)
}

async fn start_daemon(
    bin: &Path,
    storage: &Storage,
    tag: usize,
) -> anyhow::Result<(Daemon, Duration)> {
    let push_port = free_port()?;
    let admin_port = free_port()?;
    let config = storage.dir.path().join(format!("receiver-{tag}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\npush_listen = \"127.0.0.1:{push_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             {}[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[jwks]\nallow_http = true\n[outbound]\nallow_private = true\n\
             [poll]\nmax_events = {POLL_PER_ANSWER}\n[log]\nlevel = \"warn\"\n",
            storage.toml()
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

async fn start_daemons(bin: &Path, storage: &Storage, n: usize) -> anyhow::Result<Vec<Daemon>> {
    if n > 1 && storage.postgres.is_none() {
        bail!("--replicas > 1 needs --storage-url postgres://...");
    }
    let mut ds = Vec::new();
    for i in 0..n.max(1) {
        ds.push(start_daemon(bin, storage, i).await?.0);
    }
    Ok(ds)
}

async fn create_stream(
    d: &Daemon,
    tx: &TestTransmitter,
    extra: Value,
) -> anyhow::Result<(String, String)> {
    let mut body = json!({"displayName": "bench", "issuerUrl": tx.issuer(), "jwksUrl": tx.jwks_url(),
                          "expectedAudience": tx.audience()});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let resp = d
        .http
        .post(format!("{}/api/v1/ssf-receiver-streams", d.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("creating the stream failed: {}", resp.text().await?);
    }
    let v: Value = resp.json().await?;
    let id = v["ssfReceiverStream"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let token = v["pushAuthTokenPlaintext"]
        .as_str()
        .unwrap_or_default()
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
        .args(["speed", "-seconds", "3", "rsa2048"])
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

/// Signs `n` SETs with distinct `jti` and subjects on all cores.
fn presign(tx: &TestTransmitter, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let per = n.div_ceil(threads);
    let mut handles = Vec::new();
    for t in 0..threads {
        let tx = tx.clone();
        let prefix = prefix.to_string();
        handles.push(std::thread::spawn(move || {
            (t * per..((t + 1) * per).min(n))
                .map(|i| {
                    tx.set()
                        .jti(format!("{prefix}-{i}"))
                        .sub_id(subjects::email(&format!("{prefix}{i}@example.com")))
                        .sign()
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut signed = Vec::with_capacity(n);
    for h in handles {
        signed.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("signing thread panicked"))?,
        );
    }
    Ok(signed)
}

/// Pushes one SET to every daemon (retrying while a replica has not yet learnt of the
/// stream), so that the measured pushes do not include a JWKS fetch.
async fn warm(ds: &[Daemon], tx: &TestTransmitter, id: &str, token: &str) -> anyhow::Result<()> {
    for d in ds {
        let url = format!("{}/ssf/push/{id}", d.push);
        let mut ok = false;
        for _ in 0..200 {
            let r = ssfd_testkit::push_set(&d.http, &url, token, &tx.set().sign()).await?;
            if r.status() == 202 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !ok {
            bail!("{} did not accept the warm-up SET", d.push);
        }
    }
    Ok(())
}

/// One push run's outcome.
struct PushRun {
    acked: usize,
    elapsed: Duration,
    /// Latencies of the acknowledged SETs, sorted.
    lat: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    /// CPU seconds of all daemons during the run.
    cpu: f64,
}

impl PushRun {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64()
    }
    fn cpu_per_set_us(&self) -> f64 {
        self.cpu * 1e6 / self.acked.max(1) as f64
    }
}

/// Pushes `signed` over `concurrency` connections, SET i to daemon i mod N; `rate` > 0 paces
/// them open-loop (SET i is due at start + i / rate, whatever the earlier answers).
async fn push_all(
    ds: &[Daemon],
    id: &str,
    token: &str,
    signed: Vec<String>,
    concurrency: usize,
    rate: u64,
) -> anyhow::Result<PushRun> {
    let queue = Arc::new(tokio::sync::Mutex::new(signed.into_iter().enumerate()));
    let urls: Arc<Vec<String>> = Arc::new(
        ds.iter()
            .map(|d| format!("{}/ssf/push/{id}", d.push))
            .collect(),
    );
    let cpu_before = cpu_all(ds);
    let start = Instant::now();
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (queue, urls, token, http) = (
            queue.clone(),
            urls.clone(),
            token.to_string(),
            ds[0].http.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let Some((i, set)) = queue.lock().await.next() else {
                    break;
                };
                if let Some(iv) = interval {
                    let due = start + iv * i as u32;
                    tokio::time::sleep_until(due.into()).await;
                }
                let url = &urls[i % urls.len()];
                let t0 = Instant::now();
                match ssfd_testkit::push_set(&http, url, &token, &set).await {
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
    let cpu = cpu_all(ds) - cpu_before;
    lat.sort();
    Ok(PushRun {
        acked: lat.len(),
        elapsed,
        lat,
        errors,
        cpu,
    })
}

/// One poll run's outcome.
struct PollRun {
    sets: usize,
    elapsed: Duration,
    cpu: f64,
}

/// Queues `n` SETs at the transmitter, creates a poll stream (1,000 SETs per answer) and
/// waits until all are acknowledged.
async fn poll_all(ds: &[Daemon], tx: &TestTransmitter, n: usize) -> anyhow::Result<PollRun> {
    tx.set_poll_hold(Duration::from_millis(200));
    let feed = "bench-poll";
    for set in presign(tx, "poll", n)? {
        tx.enqueue(feed, &set);
    }
    let cpu_before = cpu_all(ds);
    let start = Instant::now();
    create_stream(
        &ds[0],
        tx,
        json!({"deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
               "pollEndpointUrl": tx.poll_url(feed),
               "outboundAuthBearer": {"token": tx.static_token()}}),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while tx.queued(feed) > 0 {
        if Instant::now() > deadline {
            bail!("{} SETs still queued after 10 minutes", tx.queued(feed));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(PollRun {
        sets: n,
        elapsed: start.elapsed(),
        cpu: cpu_all(ds) - cpu_before,
    })
}

fn storage_name(storage: &Storage, replicas: usize) -> String {
    match storage.postgres {
        Some(_) => format!("PostgreSQL, {replicas} replica(s)"),
        None => "SQLite, synchronous=FULL".into(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn ingest_on(
    bin: &Path,
    storage: &Storage,
    replicas: usize,
    sets: usize,
    concurrency: usize,
    alg: Alg,
    rate: u64,
) -> anyhow::Result<()> {
    let kind = match alg {
        Alg::Rs256 => KeyKind::Rs256,
        Alg::Es256 => KeyKind::Es256,
    };
    let tx = TestTransmitter::start_with(TransmitterOptions {
        key_kind: Some(kind),
        ..Default::default()
    })
    .await;
    let ds = start_daemons(bin, storage, replicas).await?;
    let (id, token) = create_stream(&ds[0], &tx, json!({})).await?;
    let idle_rss = rss_mib(ds[0].child.id()).1;

    eprintln!("pre-signing {sets} SETs ...");
    let signed = presign(&tx, "bench", sets)?;
    warm(&ds, &tx, &id, &token).await?;
    let pids: Vec<u32> = ds.iter().map(|d| d.child.id()).collect();
    eprintln!("pushing (daemon pid(s) {pids:?}) ...");
    let run = push_all(&ds, &id, &token, signed, concurrency, rate).await?;
    let peak = peak_rss_all(&ds);
    let alg_name = match alg {
        Alg::Rs256 => "RS256",
        Alg::Es256 => "ES256",
    };
    println!(
        "mode            ingest ({alg_name}, durable, {})",
        storage_name(storage, replicas)
    );
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
        "acked           {} of {sets} in {:.2} s",
        run.acked,
        run.elapsed.as_secs_f64()
    );
    println!("rate            {:.0} SETs/s", run.rate());
    println!(
        "latency ms      p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&run.lat, 0.50),
        percentile(&run.lat, 0.90),
        percentile(&run.lat, 0.99),
        percentile(&run.lat, 1.0)
    );
    println!("errors          {:?}", run.errors);
    println!(
        "daemon CPU      {:.2} s = {:.0} us per acked SET ({:.2} of one core)",
        run.cpu,
        run.cpu_per_set_us(),
        run.cpu / run.elapsed.as_secs_f64()
    );
    println!("daemon RSS MiB  idle {idle_rss:.1}  peak {peak:.1}");
    if let Some(v) = openssl_rsa_verify_rate() {
        println!(
            "openssl rsa2048 verify/s (1 core) {v:.0} = {:.1} us; daemon CPU per SET / verify {:.1}",
            1e6 / v,
            run.cpu_per_set_us() * v / 1e6
        );
    }
    Ok(())
}

async fn bench_on(
    bin: &Path,
    storage: &Storage,
    replicas: usize,
    (sets, concurrency): (usize, usize),
    (rate, rate_sets): (u64, usize),
    poll_sets: usize,
) -> anyhow::Result<()> {
    let tx = TestTransmitter::start_with(TransmitterOptions {
        key_kind: Some(KeyKind::Rs256),
        ..Default::default()
    })
    .await;
    let ds = start_daemons(bin, storage, replicas).await?;
    let (id, token) = create_stream(&ds[0], &tx, json!({})).await?;
    eprintln!("pre-signing {} SETs ...", sets + rate_sets);
    let saturating = presign(&tx, "sat", sets)?;
    let paced = presign(&tx, "paced", rate_sets)?;
    warm(&ds, &tx, &id, &token).await?;
    let pids: Vec<u32> = ds.iter().map(|d| d.child.id()).collect();
    eprintln!(
        "saturation: {sets} SETs over {concurrency} connections (daemon pid(s) {pids:?}) ..."
    );
    let sat = push_all(&ds, &id, &token, saturating, concurrency, 0).await?;
    eprintln!("latency: {rate_sets} SETs offered at {rate}/s ...");
    let lat = push_all(&ds, &id, &token, paced, concurrency, rate).await?;
    eprintln!("poll: {poll_sets} SETs, {POLL_PER_ANSWER} per answer ...");
    let poll = poll_all(&ds, &tx, poll_sets).await?;
    let peak = peak_rss_all(&ds);
    drop(ds);
    eprintln!("openssl speed -seconds 3 rsa2048 ...");
    let verify = openssl_rsa_verify_rate();

    let cpu_us = sat.cpu_per_set_us();
    println!(
        "ssfd ingest bench: RS256, durable, {}; {} vCPUs shared by daemon(s) and load generator",
        storage_name(storage, replicas),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| figure | measured |");
    println!("|---|---|");
    println!(
        "| daemon CPU per durable RS256 SET at saturation | {cpu_us:.0} µs ({:.2} s CPU, {:.2} cores) |",
        sat.cpu,
        sat.cpu / sat.elapsed.as_secs_f64()
    );
    match verify {
        Some(v) => {
            println!(
                "| one RSA-2048 verify (`openssl speed -seconds 3 rsa2048`, 1 core) | {:.1} µs ({v:.0}/s) |",
                1e6 / v
            );
            println!(
                "| daemon CPU per SET ÷ one RSA-2048 verify | {:.1} |",
                cpu_us * v / 1e6
            );
        }
        None => println!("| one RSA-2048 verify | openssl not available |"),
    }
    println!(
        "| push ingest, {concurrency} connections | {:.0} SETs/s ({} of {sets} in {:.2} s; p50 {:.1} / p99 {:.1} ms) |",
        sat.rate(),
        sat.acked,
        sat.elapsed.as_secs_f64(),
        percentile(&sat.lat, 0.5),
        percentile(&sat.lat, 0.99)
    );
    println!(
        "| p99 at {rate} SETs/s offered | {:.2} ms (p50 {:.2}, p90 {:.2}, max {:.2}; {} of {rate_sets} acked) |",
        percentile(&lat.lat, 0.99),
        percentile(&lat.lat, 0.5),
        percentile(&lat.lat, 0.9),
        percentile(&lat.lat, 1.0),
        lat.acked
    );
    println!(
        "| poll ingest, {POLL_PER_ANSWER} SETs per response | {:.0} SETs/s ({} in {:.2} s, {:.0} µs CPU per SET) |",
        poll.sets as f64 / poll.elapsed.as_secs_f64(),
        poll.sets,
        poll.elapsed.as_secs_f64(),
        poll.cpu * 1e6 / poll.sets.max(1) as f64
    );
    println!("| peak RSS (VmHWM, largest daemon) | {peak:.1} MiB |");
    let mut errors = sat.errors;
    for (k, v) in lat.errors {
        *errors.entry(k).or_default() += v;
    }
    if !errors.is_empty() {
        println!();
        println!("errors: {errors:?}");
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

async fn startup(bin: &Path, storage: &Storage, streams: usize, runs: usize) -> anyhow::Result<()> {
    let tx = TestTransmitter::start().await;
    {
        let (d, _) = start_daemon(bin, storage, 0).await?;
        seed_streams(&d, &tx, streams).await?;
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let (d, t) = start_daemon(bin, storage, 0).await?;
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

async fn idle(bin: &Path, storage: &Storage, streams: usize) -> anyhow::Result<()> {
    let tx = TestTransmitter::start().await;
    {
        let (d, _) = start_daemon(bin, storage, 0).await?;
        seed_streams(&d, &tx, streams).await?;
    }
    let (d, _) = start_daemon(bin, storage, 0).await?;
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
    // One fresh database per run (a new SQLite file, or a PostgreSQL database dropped after it).
    let storage = Storage::new(args.storage_url.as_deref()).await?;
    let replicas = args.replicas;
    let result = match args.mode {
        Mode::Ingest {
            sets,
            concurrency,
            alg,
            rate,
        } => ingest_on(&bin, &storage, replicas, sets, concurrency, alg, rate).await,
        Mode::Bench {
            sets,
            concurrency,
            rate,
            rate_sets,
            poll_sets,
        } => {
            bench_on(
                &bin,
                &storage,
                replicas,
                (sets, concurrency),
                (rate, rate_sets),
                poll_sets,
            )
            .await
        }
        Mode::Startup { streams, runs } => startup(&bin, &storage, streams, runs).await,
        Mode::Idle { streams } => idle(&bin, &storage, streams).await,
    };
    storage.drop_database().await?;
    result
}
