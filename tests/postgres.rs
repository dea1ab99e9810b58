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
