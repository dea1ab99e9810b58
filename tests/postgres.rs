//! The PostgreSQL backend against a real server: `ssfd db migrate-to` moves a database a real
//! daemon wrote to a fresh PostgreSQL database (and refuses a second copy into it).

mod common;

use common::TestDaemon;
use serde_json::json;
use ssfd::store::inbox::EventFilter;
use ssfd::store::postgres::{inbox, streams, PgPool, PgSettings};
use ssfd_testkit::{events, subjects, TestTransmitter};

async fn migrate_to(url: &str, from: &std::path::Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ssfd"))
        .args(["db", "migrate-to", url, "--from"])
        .arg(from)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_daemons_database_moves_to_postgres_once() {
    let tx = TestTransmitter::start().await;
    let d = TestDaemon::start().await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    for i in 0..3 {
        let set = tx
            .set()
            .jti(format!("jti-{i}"))
            .sub_id(subjects::email("bob@example.com"))
            .event(
                "credential-change",
                events::default_payload("credential-change", None, 0),
            )
            .sign();
        assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    }
    let db_path = d.db_path();
    let dir = d.stop().await;

    let pg = ssfd_testkit::pg::fresh_pg_database().await;
    let out = migrate_to(&pg.url, &db_path).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("inbox") && stdout.contains("3 rows"),
        "{stdout}"
    );

    let pool = PgPool::new(PgSettings::new(&pg.url, None).unwrap()).unwrap();
    let c = pool.get().await.unwrap();
    let stream = streams::get(&**c, &id).await.unwrap().unwrap();
    assert!(
        stream.push_token_hash.is_some(),
        "the push token hash moves along"
    );
    let stored = inbox::list(
        &**c,
        &EventFilter {
            stream_id: Some(id.clone()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(stored.len(), 3);

    let again = migrate_to(&pg.url, &db_path).await;
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    drop(dir);
}

#[tokio::test]
async fn a_daemon_on_postgres_stores_and_answers_duplicates_like_on_sqlite() {
    let pg = ssfd_testkit::pg::fresh_pg_database().await;
    let tx = TestTransmitter::start().await;
    let url = pg.url.clone();
    let d = TestDaemon::start_with(move |c| c.storage.url = Some(url)).await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    let set = tx
        .set()
        .jti("pg-1")
        .sub_id(subjects::email("bob@example.com"))
        .event(
            "credential-change",
            events::default_payload("credential-change", None, 0),
        )
        .sign();
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert_eq!(d.push(&id, &token, &set).await.status(), 202);
    assert_eq!(d.events(&id).await.len(), 1);
    assert!(!d.db_path().exists(), "nothing was written to SQLite");
    let pool = PgPool::new(PgSettings::new(&pg.url, None).unwrap()).unwrap();
    let c = pool.get().await.unwrap();
    assert!(inbox::exists(&**c, &id, "pg-1").await.unwrap());
    d.stop().await;
}

/// Two replicas on one database; the second starts once the stream exists (it loads the streams
/// at start).
async fn two_replicas(
    pg: &ssfd_testkit::pg::PgDatabase,
    tx: &TestTransmitter,
) -> (TestDaemon, TestDaemon, String, String) {
    // A command sink gives every revocation one outbox row (one action) to count.
    let replica = |url: String| {
        move |c: &mut ssfd::config::Config| {
            c.storage.url = Some(url);
            c.sinks = vec![ssfd::config::SinkConfig {
                name: "cmd".into(),
                kind: ssfd::config::SinkKind::Command(ssfd::config::CommandSettings {
                    argv: vec!["true".into()],
                }),
                timeout: std::time::Duration::from_secs(5),
                streams: Vec::new(),
                events: Vec::new(),
                max_attempts: 3,
                retry_base: std::time::Duration::from_millis(20),
            }];
        }
    };
    let a = TestDaemon::start_with(replica(pg.url.clone())).await;
    let (id, token) = a.create_stream_for(tx, json!({})).await;
    let b = TestDaemon::start_with(replica(pg.url.clone())).await;
    (a, b, id, token)
}

#[tokio::test]
async fn the_same_set_pushed_to_two_replicas_at_once_is_one_row_and_one_action() {
    let pg = ssfd_testkit::pg::fresh_pg_database().await;
    let tx = TestTransmitter::start().await;
    let (a, b, id, token) = two_replicas(&pg, &tx).await;
    const SETS: usize = 20;
    for i in 0..SETS {
        let set = tx
            .set()
            .jti(format!("both-{i}"))
            .sub_id(subjects::email("bob@example.com"))
            .event(
                "session-revoked",
                events::default_payload("session-revoked", None, 0),
            )
            .sign();
        let (ra, rb) = tokio::join!(a.push(&id, &token, &set), b.push(&id, &token, &set));
        assert_eq!(
            (ra.status().as_u16(), rb.status().as_u16()),
            (202, 202),
            "SET {i}"
        );
    }
    let stored = a.events(&id).await;
    assert_eq!(stored.len(), SETS);
    assert_eq!(stored[0]["outcome"], "revoke", "{}", stored[0]);
    assert_eq!(b.events(&id).await.len(), SETS);
    let (status, actions) = a
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/actions?streamId={id}&pageSize=1000"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{actions}");
    let list = actions["list"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), SETS, "one action per SET: {actions}");
    let mut keys: Vec<&str> = list
        .iter()
        .filter_map(|x| x["idempotencyKey"].as_str())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), SETS);
    // Each replica names itself in /metrics.
    let metrics = |d: &TestDaemon| {
        let url = format!("{}/metrics", d.daemon.admin_url());
        let http = d.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (ma, mb) = (metrics(&a).await, metrics(&b).await);
    let id_of = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("ssfd_replica{replica=\""))
            .and_then(|r| r.split('"').next())
            .map(str::to_string)
    };
    let (ra, rb) = (id_of(&ma), id_of(&mb));
    assert!(ra.is_some() && rb.is_some() && ra != rb, "{ma}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_stream_disabled_through_one_replica_stops_being_acted_on_at_the_other_within_2s() {
    let pg = ssfd_testkit::pg::fresh_pg_database().await;
    let tx = TestTransmitter::start().await;
    let (a, b, id, token) = two_replicas(&pg, &tx).await;
    let revoke = |jti: String| {
        tx.set()
            .jti(jti)
            .sub_id(subjects::email("bob@example.com"))
            .event(
                "session-revoked",
                events::default_payload("session-revoked", None, 0),
            )
            .sign()
    };
    assert_eq!(
        b.push(&id, &token, &revoke("before".into())).await.status(),
        202
    );
    let (status, v) = a
        .api(
            reqwest::Method::PATCH,
            &format!("/api/v1/ssf-receiver-streams/{id}"),
            Some(json!({"ssfReceiverStream": {"enabled": false}, "updateMask": "enabled"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let disabled_at = std::time::Instant::now();
    // SETs pushed to b from now on: the first one b stores without planning an action comes
    // within 2 s of the change.
    let mut n = 0;
    loop {
        n += 1;
        let jti = format!("after-{n}");
        assert_eq!(
            b.push(&id, &token, &revoke(jti.clone())).await.status(),
            202
        );
        let stored = b.events(&id).await;
        let outcome = stored
            .iter()
            .find(|e| e["jti"] == jti.as_str())
            .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        if outcome == "stored" {
            break;
        }
        assert!(
            disabled_at.elapsed() < std::time::Duration::from_secs(2),
            "b still acts on the disabled stream after 2 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(b.get_stream(&id).await["enabled"], false);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn while_postgres_is_unreachable_push_answers_503_and_recovers_without_a_restart() {
    let pg = ssfd_testkit::pg::fresh_pg_database().await;
    let proxy = ssfd_testkit::tcp_proxy::TcpProxy::start(ssfd_testkit::pg::server_addr()).await;
    let tx = TestTransmitter::start().await;
    let url = pg.url_via(proxy.addr());
    let d = TestDaemon::start_with(move |c| c.storage.url = Some(url)).await;
    let (id, token) = d.create_stream_for(&tx, json!({})).await;
    let ready = |d: &TestDaemon| {
        let url = format!("{}/readyz", d.daemon.admin_url());
        let http = d.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&d).await, 200);
    proxy.cut();
    let down = d
        .push(&id, &token, &tx.set().jti("while-down").sign())
        .await;
    assert_eq!(down.status(), 503);
    assert!(
        down.headers().contains_key("retry-after"),
        "{:?}",
        down.headers()
    );
    assert_eq!(ready(&d).await, 503);
    proxy.restore();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ready(&d).await != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The transmitter retries the unanswered SET: stored once now.
    let again = d
        .push(&id, &token, &tx.set().jti("while-down").sign())
        .await;
    assert_eq!(again.status(), 202);
    let stored = d.events(&id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["jti"], "while-down");
    d.stop().await;
}

/// Poll requests a replica has made for `stream`, from its `/metrics`.
async fn poll_requests(d: &TestDaemon, stream: &str) -> u64 {
    let url = format!("{}/metrics", d.daemon.admin_url());
    let text = d.http.get(url).send().await.unwrap().text().await.unwrap();
    let prefix = format!("ssfd_poll_requests_total{{stream=\"{stream}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn one_replica_polls_a_stream_and_the_other_takes_over_when_it_stops() {
    let pg = ssfd_testkit::pg::fresh_pg_database().await;
    let tx = TestTransmitter::start().await;
    tx.set_poll_hold(std::time::Duration::from_millis(100));
    let url = pg.url.clone();
    let a = TestDaemon::start_with(move |c| c.storage.url = Some(url)).await;
    let body = json!({
        "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
        "pollEndpointUrl": tx.poll_url("f"),
        "outboundAuthBearer": {"token": tx.static_token()},
    });
    let (id, _) = a.create_stream_for(&tx, body).await;
    let url = pg.url.clone();
    let b = TestDaemon::start_with(move |c| c.storage.url = Some(url)).await;
    let first: Vec<String> = (0..5).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let acked = |jtis: &[String]| {
        let acked = tx.acked();
        jtis.iter().all(|j| acked.contains(j))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !acked(&first) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first SETs were not acked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (pa, pb) = (poll_requests(&a, &id).await, poll_requests(&b, &id).await);
    assert!(
        (pa > 0) != (pb > 0),
        "exactly one replica polls: a={pa} b={pb}"
    );
    let (holder, other) = if pa > 0 { (a, b) } else { (b, a) };
    holder.stop().await;
    let second: Vec<String> = (0..5).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !acked(&second) {
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica did not take over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(poll_requests(&other, &id).await > 0);
    assert_eq!(other.events(&id).await.len(), 10, "every SET stored once");
    other.stop().await;
}
