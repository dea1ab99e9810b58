//! Leases between replicas: at most one holder per name (e.g. `poll:<stream id>`), renewed while
//! the work goes on and taken over by another replica once it lapses. Each change of hands raises
//! the lease's fencing token, and [`hold_for_update`] lets a transaction commit only while its
//! token is still current, so a replica that lost its lease cannot record work under it.

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::GenericClient;

use super::{PgError, PgPool};

/// A lease as granted: who holds it, under which fencing token, until when (database clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub token: i64,
    pub expires_at_ms: i64,
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Takes the lease `name` for `holder` when it is free, lapsed or already `holder`'s, for `ttl`.
/// `None` while another holder's lease runs. The token grows whenever the lease was not live in
/// `holder`'s hands, so a lapsed and retaken lease never shares a token with its past.
pub async fn acquire<C: GenericClient>(
    client: &C,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, PgError> {
    let row = client
        .query_opt(
            "INSERT INTO leases AS l (name, holder, token, expires_at_ms)
             VALUES ($1, $2, 1, ssfd_now_ms() + $3)
             ON CONFLICT (name) DO UPDATE SET
                 token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at_ms > ssfd_now_ms()
                              THEN l.token ELSE l.token + 1 END,
                 holder = EXCLUDED.holder,
                 expires_at_ms = EXCLUDED.expires_at_ms
             WHERE l.holder = EXCLUDED.holder OR l.expires_at_ms <= ssfd_now_ms()
             RETURNING token, expires_at_ms",
            &[&name, &holder, &ttl_ms(ttl)],
        )
        .await?;
    Ok(row.map(|r| Lease {
        name: name.to_string(),
        holder: holder.to_string(),
        token: r.get(0),
        expires_at_ms: r.get(1),
    }))
}

/// Extends a live lease by `ttl` from now. `None` when it lapsed or changed hands meanwhile:
/// the caller must stop the work it guards.
pub async fn renew<C: GenericClient>(
    client: &C,
    lease: &Lease,
    ttl: Duration,
) -> Result<Option<Lease>, PgError> {
    let row = client
        .query_opt(
            "UPDATE leases SET expires_at_ms = ssfd_now_ms() + $4
             WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at_ms > ssfd_now_ms()
             RETURNING expires_at_ms",
            &[&lease.name, &lease.holder, &lease.token, &ttl_ms(ttl)],
        )
        .await?;
    Ok(row.map(|r| Lease {
        expires_at_ms: r.get(0),
        ..lease.clone()
    }))
}

/// Gives the lease up at once (on shutdown) so another replica need not wait for it to lapse.
/// The row stays, so the next holder's token is still larger.
pub async fn release<C: GenericClient>(client: &C, lease: &Lease) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE leases SET expires_at_ms = 0
             WHERE name = $1 AND holder = $2 AND token = $3",
            &[&lease.name, &lease.holder, &lease.token],
        )
        .await?;
    Ok(n == 1)
}

/// Inside a transaction: true when `lease` is still live, and locks its row until the
/// transaction ends, so no other replica can take the lease over before this one commits.
pub async fn hold_for_update<C: GenericClient>(client: &C, lease: &Lease) -> Result<bool, PgError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM leases
             WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at_ms > ssfd_now_ms()
             FOR UPDATE",
            &[&lease.name, &lease.holder, &lease.token],
        )
        .await?;
    Ok(row.is_some())
}

/// The live leases `holder` has, by name (for `/metrics`).
pub async fn held_by<C: GenericClient>(client: &C, holder: &str) -> Result<Vec<Lease>, PgError> {
    let rows = client
        .query(
            "SELECT name, token, expires_at_ms FROM leases
             WHERE holder = $1 AND expires_at_ms > ssfd_now_ms() ORDER BY name",
            &[&holder],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Lease {
            name: r.get(0),
            holder: holder.to_string(),
            token: r.get(1),
            expires_at_ms: r.get(2),
        })
        .collect())
}

/// Keeps trying to hold one lease for as long as it runs: acquires it whenever it is free and
/// renews it at a third of `ttl`. [`LeaseKeeper::current`] shows the lease only while this
/// replica may act on it: until `ttl` after the last successful renewal began, on this host's
/// monotonic clock (the database's expiry is later still). Work recorded under the lease is
/// still fenced at commit by [`hold_for_update`].
pub fn keep(pool: PgPool, name: String, holder: String, ttl: Duration) -> LeaseKeeper {
    let (tx, rx) = watch::channel(None::<Held>);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut held: Option<Held> = None;
        loop {
            let started = tokio::time::Instant::now();
            let attempt = async {
                let client = pool.get().await?;
                match &held {
                    Some(h) => renew(&**client, &h.lease, ttl).await,
                    None => acquire(&**client, &name, &holder, ttl).await,
                }
            };
            match tokio::time::timeout(ttl / 3, attempt).await {
                Ok(Ok(Some(lease))) => {
                    held = Some(Held {
                        lease,
                        valid_until: started + ttl,
                    })
                }
                Ok(Ok(None)) => held = None,
                // Unreachable database: the lease stays ours only until its local deadline.
                Ok(Err(_)) | Err(_) => held = held.filter(Held::valid),
            }
            tx.send_if_modified(|cur| {
                if *cur != held {
                    cur.clone_from(&held);
                    true
                } else {
                    false
                }
            });
            // Stop when told to or when the keeper is dropped; a released lease frees the name
            // at once.
            tokio::select! {
                _ = tokio::time::sleep(ttl / 3) => {}
                _ = &mut stop_rx => {
                    if let Some(h) = held {
                        if let Ok(client) = pool.get().await {
                            let _ = release(&**client, &h.lease).await;
                        }
                    }
                    return;
                }
            }
        }
    });
    LeaseKeeper {
        watch: LeaseWatch { rx },
        stop: stop_tx,
        task,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    lease: Lease,
    valid_until: tokio::time::Instant,
}

impl Held {
    fn valid(&self) -> bool {
        tokio::time::Instant::now() < self.valid_until
    }
}

/// Watches a [`LeaseKeeper`]'s lease.
#[derive(Clone)]
pub struct LeaseWatch {
    rx: watch::Receiver<Option<Held>>,
}

impl LeaseWatch {
    pub fn current(&self) -> Option<Lease> {
        self.rx
            .borrow()
            .as_ref()
            .filter(|h| h.valid())
            .map(|h| h.lease.clone())
    }

    /// Resolves once the lease is held (again) and returns it.
    pub async fn acquired(&self) -> Lease {
        let mut rx = self.rx.clone();
        loop {
            if let Some(lease) = self.current() {
                return lease;
            }
            if rx.changed().await.is_err() {
                // The keeper ended; nothing will ever be held again.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The running keeper of one lease; [`LeaseKeeper::stop`] ends it and releases the lease.
pub struct LeaseKeeper {
    watch: LeaseWatch,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// The lease while this replica holds it, else `None`.
    pub fn current(&self) -> Option<Lease> {
        self.watch.current()
    }

    /// A handle that watches this keeper's lease without owning the keeper.
    pub fn watcher(&self) -> LeaseWatch {
        self.watch.clone()
    }

    /// Resolves once the lease is held (again) and returns it.
    pub async fn acquired(&self) -> Lease {
        self.watch.acquired().await
    }

    /// Stops keeping the lease and releases it; returns once the keeper has finished.
    pub async fn stop(self) {
        let LeaseKeeper { stop, task, .. } = self;
        let _ = stop.send(());
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    async fn pool() -> (ssfd_testkit::pg::PgDatabase, PgPool) {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        (db, pool)
    }

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn one_holder_at_a_time_and_the_token_grows_on_takeover() {
        let (_db, pool) = pool().await;
        let c = pool.get().await.unwrap();
        let a = acquire(&**c, "poll:s1", "replica-a", LONG)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.token, 1);
        assert_eq!(
            acquire(&**c, "poll:s1", "replica-b", LONG).await.unwrap(),
            None
        );
        // Re-acquiring a live lease one holds keeps its token.
        let again = acquire(&**c, "poll:s1", "replica-a", LONG)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.token, 1);
        // Another name is independent.
        assert!(acquire(&**c, "poll:s2", "replica-b", LONG)
            .await
            .unwrap()
            .is_some());

        assert!(release(&**c, &a).await.unwrap());
        let b = acquire(&**c, "poll:s1", "replica-b", LONG)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.token, 2);
        // The old holder's renewal and fencing check fail; the new holder's pass.
        assert_eq!(renew(&**c, &a, LONG).await.unwrap(), None);
        assert!(!hold_for_update(&**c, &a).await.unwrap());
        assert!(hold_for_update(&**c, &b).await.unwrap());
        assert!(renew(&**c, &b, LONG).await.unwrap().is_some());
        let held: Vec<String> = held_by(&**c, "replica-b")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(held, vec!["poll:s1", "poll:s2"]);
        assert!(held_by(&**c, "replica-a").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lapsed_lease_can_be_taken_over() {
        let (_db, pool) = pool().await;
        let c = pool.get().await.unwrap();
        let short = Duration::from_millis(200);
        let a = acquire(&**c, "verify:s1", "replica-a", short)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            acquire(&**c, "verify:s1", "replica-b", LONG).await.unwrap(),
            None
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let b = loop {
            if let Some(b) = acquire(&**c, "verify:s1", "replica-b", LONG).await.unwrap() {
                break b;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease never lapsed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(b.token, a.token + 1);
        assert_eq!(renew(&**c, &a, LONG).await.unwrap(), None);
        // The same holder retaking its own lapsed lease also gets a new token.
        let c2 = pool.get().await.unwrap();
        let a2 = acquire(&**c2, "verify:s2", "replica-a", short)
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let a3 = acquire(&**c2, "verify:s2", "replica-a", LONG)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a3.token, a2.token + 1);
    }

    #[tokio::test]
    async fn a_held_lease_blocks_a_takeover_until_the_transaction_ends() {
        let (_db, pool) = pool().await;
        let short = Duration::from_millis(300);
        let mut c = pool.get().await.unwrap();
        let a = acquire(&**c, "poll:s1", "replica-a", short)
            .await
            .unwrap()
            .unwrap();
        let tx = tokio_postgres::Client::transaction(&mut c).await.unwrap();
        assert!(hold_for_update(&tx, &a).await.unwrap());
        // Once the lease lapses, a takeover waits for the locking transaction to finish.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let other = pool.clone();
        let takeover = tokio::spawn(async move {
            let c = other.get().await.unwrap();
            acquire(&**c, "poll:s1", "replica-b", LONG).await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !takeover.is_finished(),
            "the takeover did not wait for the lock"
        );
        tx.commit().await.unwrap();
        let b = takeover.await.unwrap().unwrap();
        assert_eq!(b.token, a.token + 1);
    }

    #[tokio::test]
    async fn keepers_hand_a_lease_over_when_the_holder_stops() {
        let (_db, pool) = pool().await;
        let ttl = Duration::from_millis(600);
        let a = keep(pool.clone(), "poll:s1".into(), "replica-a".into(), ttl);
        tokio::time::timeout(Duration::from_secs(10), a.acquired())
            .await
            .unwrap();
        let b = keep(pool.clone(), "poll:s1".into(), "replica-b".into(), ttl);
        // Renewals keep replica-a's lease for several lease times.
        tokio::time::sleep(ttl * 3).await;
        assert!(a.current().is_some());
        assert!(b.current().is_none());
        let token_a = a.current().unwrap().token;
        a.stop().await;
        let lease = tokio::time::timeout(Duration::from_secs(10), b.acquired())
            .await
            .unwrap();
        assert_eq!(lease.holder, "replica-b");
        assert!(lease.token > token_a);
        b.stop().await;
    }

    #[tokio::test]
    async fn a_replica_cut_off_from_the_database_stops_holding_before_another_takes_over() {
        let (db, pool) = pool().await;
        let proxy = ssfd_testkit::tcp_proxy::TcpProxy::start(ssfd_testkit::pg::server_addr()).await;
        let cut_pool =
            PgPool::new(PgSettings::new(&db.url_via(proxy.addr()), None).unwrap()).unwrap();
        let ttl = Duration::from_millis(900);
        let a = keep(cut_pool, "poll:s1".into(), "replica-a".into(), ttl);
        tokio::time::timeout(Duration::from_secs(10), a.acquired())
            .await
            .unwrap();
        let b = keep(pool.clone(), "poll:s1".into(), "replica-b".into(), ttl);
        proxy.cut();
        let cut_at = tokio::time::Instant::now();
        let taken = tokio::time::timeout(Duration::from_secs(20), b.acquired())
            .await
            .unwrap();
        // By the time b holds the lease, a has stopped counting on it: it never acts on a
        // lease another replica holds.
        assert!(a.current().is_none(), "a still believes it holds the lease");
        assert!(
            cut_at.elapsed() >= ttl / 2,
            "b took over before a's lease ran out"
        );
        assert_eq!(taken.holder, "replica-b");
        // Back online, a does not get the lease back while b keeps it.
        proxy.restore();
        tokio::time::sleep(ttl * 2).await;
        assert!(a.current().is_none());
        assert_eq!(b.current().map(|l| l.token), Some(taken.token));
        a.stop().await;
        b.stop().await;
    }
}
