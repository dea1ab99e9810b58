//! The change channel between replicas: a stream row's configuration change is announced by a
//! trigger on channel `ssfd_changes` (see `schema.sql`), and [`listen`] turns those
//! notifications into [`Change`]s. A notification sent while the listener was not connected is
//! lost, so every (re)connection and a periodic tick also yield [`Change::Resync`]: the consumer
//! then re-reads everything, which bounds how long a missed change can go unseen.

use std::time::Duration;

use tokio::sync::broadcast;

use super::{connect_listening, PgSettings};

/// The channel the `streams` trigger notifies.
pub const CHANNEL: &str = "ssfd_changes";

/// Longest wait between two attempts to reconnect the listener.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This stream's row changed (created, updated, disabled, deleted, token rotated).
    Stream(String),
    /// Changes may have been missed: re-read every stream.
    Resync,
}

/// The running listener; every subscriber sees every change from the moment it subscribed.
pub struct ChangeFeed {
    tx: broadcast::Sender<Change>,
    task: tokio::task::JoinHandle<()>,
}

impl ChangeFeed {
    /// A lagging subscriber gets `RecvError::Lagged`, which it must treat as [`Change::Resync`].
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts listening on [`CHANNEL`] on a dedicated connection, reconnecting whenever it drops;
/// `backstop` is the period of the [`Change::Resync`] tick, which also checks that the
/// connection still answers.
pub fn listen(settings: PgSettings, backstop: Duration) -> ChangeFeed {
    let (tx, _) = broadcast::channel(1024);
    let feed_tx = tx.clone();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match connect_listening(&settings).await {
                Ok((client, mut notes)) => {
                    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        tracing::warn!(error = %e, "cannot LISTEN for stream changes");
                    } else {
                        backoff = Duration::from_millis(100);
                        // Whatever changed while nobody listened is picked up by a re-read.
                        let _ = tx.send(Change::Resync);
                        let mut tick = tokio::time::interval(backstop);
                        tick.reset();
                        loop {
                            tokio::select! {
                                note = notes.recv() => match note {
                                    Some(id) => { let _ = tx.send(Change::Stream(id)); }
                                    None => break,
                                },
                                _ = tick.tick() => {
                                    let _ = tx.send(Change::Resync);
                                    // A connection cut without a reset would otherwise wait
                                    // for TCP keepalive; a query that does not answer ends it.
                                    let alive = tokio::time::timeout(
                                        backstop.min(Duration::from_secs(5)),
                                        client.simple_query("SELECT 1"),
                                    )
                                    .await;
                                    if !matches!(alive, Ok(Ok(_))) {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    tracing::warn!(
                        target = settings.target(),
                        "stream change listener disconnected; reconnecting"
                    );
                }
                Err(e) => {
                    tracing::debug!(error = %e, "stream change listener cannot connect");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    });
    ChangeFeed { tx: feed_tx, task }
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    async fn next_stream_change(rx: &mut broadcast::Receiver<Change>) -> String {
        let wait = async {
            loop {
                if let Change::Stream(id) = rx.recv().await.unwrap() {
                    return id;
                }
            }
        };
        // Replicas must see a configuration change within 2 s.
        tokio::time::timeout(Duration::from_secs(2), wait)
            .await
            .expect("no stream change within 2 s")
    }

    async fn next_resync(rx: &mut broadcast::Receiver<Change>, within: Duration) {
        let wait = async { while rx.recv().await.unwrap() != Change::Resync {} };
        tokio::time::timeout(within, wait).await.unwrap()
    }

    const INSERT: &str = "INSERT INTO streams (id, display_name, issuer_url, delivery_method,
        session_revoked_action, credential_change_action, credential_compromise_action,
        account_disabled_action, created_at, updated_at)
        VALUES ($1, 'n', 'https://idp', 'push', 'REVOKE_ALL', 'REVOKE_ALL', 'REVOKE_ALL',
                'REVOKE_ALL', 0, 0)";

    #[tokio::test]
    async fn configuration_changes_are_announced_and_bookkeeping_is_not() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let settings = PgSettings::new(&db.url, None).unwrap();
        let pool = PgPool::open(settings.clone()).await.unwrap();
        let feed = listen(settings, Duration::from_secs(60));
        let mut rx = feed.subscribe();
        next_resync(&mut rx, Duration::from_secs(5)).await;

        let c = pool.get().await.unwrap();
        c.execute(INSERT, &[&"s1"]).await.unwrap();
        assert_eq!(next_stream_change(&mut rx).await, "s1");
        // Per-SET bookkeeping stays quiet; the next announced change is the configuration one.
        c.execute(
            "UPDATE streams SET rejected_count = rejected_count + 1, last_error_at = 5,
             last_error_message = 'x' WHERE id = 's1'",
            &[],
        )
        .await
        .unwrap();
        c.execute("UPDATE streams SET enabled = FALSE WHERE id = 's1'", &[])
            .await
            .unwrap();
        assert_eq!(next_stream_change(&mut rx).await, "s1");
        assert!(rx.try_recv().is_err(), "one notification per change");
        c.execute(
            "UPDATE streams SET push_token_hash = '\\x00' WHERE id = 's1'",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(next_stream_change(&mut rx).await, "s1");
        c.execute("DELETE FROM streams WHERE id = 's1'", &[])
            .await
            .unwrap();
        assert_eq!(next_stream_change(&mut rx).await, "s1");
    }

    #[tokio::test]
    async fn the_backstop_ticks_and_a_killed_listener_reconnects() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let settings = PgSettings::new(&db.url, None).unwrap();
        let pool = PgPool::open(settings.clone()).await.unwrap();
        let feed = listen(settings, Duration::from_millis(300));
        let mut rx = feed.subscribe();
        next_resync(&mut rx, Duration::from_secs(5)).await;
        next_resync(&mut rx, Duration::from_secs(2)).await;

        // The server ends the listening session; the feed reconnects and listens again.
        let c = pool.get().await.unwrap();
        let killed: i64 = c
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND application_name = 'ssfd listener'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(killed, 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listening: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = 'ssfd listener'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if listening == 1 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the listener did not come back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while rx.try_recv().is_ok() {}
        c.execute(INSERT, &[&"s2"]).await.unwrap();
        assert_eq!(next_stream_change(&mut rx).await, "s2");
    }

    #[tokio::test]
    async fn the_feed_survives_a_database_outage() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let direct = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        let proxy = ssfd_testkit::tcp_proxy::TcpProxy::start(ssfd_testkit::pg::server_addr()).await;
        let feed = listen(
            PgSettings::new(&db.url_via(proxy.addr()), None).unwrap(),
            Duration::from_millis(500),
        );
        let mut rx = feed.subscribe();
        next_resync(&mut rx, Duration::from_secs(5)).await;
        proxy.cut();
        // A change made while the listener is cut off is missed as a notification...
        let c = direct.get().await.unwrap();
        c.execute(INSERT, &[&"while-down"]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        while rx.try_recv().is_ok() {}
        proxy.restore();
        // ...and made up for by the re-read the reconnection asks for; new changes flow again.
        next_resync(&mut rx, Duration::from_secs(15)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            c.execute(
                "UPDATE streams SET display_name = display_name || '!' WHERE id = 'while-down'",
                &[],
            )
            .await
            .unwrap();
            let got = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    if let Ok(Change::Stream(id)) = rx.recv().await {
                        return id;
                    }
                }
            })
            .await;
            if let Ok(id) = got {
                assert_eq!(id, "while-down");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no notification after the outage"
            );
        }
    }
}
