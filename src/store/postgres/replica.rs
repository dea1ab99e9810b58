//! This replica among several: its id (the holder name in leases and outbox claims) and the
//! leases it keeps, by name, for the work only one replica may do at a time (polling a stream,
//! its scheduled verification).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::lease::{keep, Lease, LeaseKeeper};
use super::PgPool;

/// A replica id: the host name and a random suffix, so that two replicas on one host (or one
/// replica restarted) never share claims.
pub fn new_replica_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length and gethostname NUL-terminates within it
    // or truncates; the length passed is the buffer's.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let host = if host.is_empty() {
        "ssfd".to_string()
    } else {
        host
    };
    let suffix: u32 = rand::random();
    format!("{host}-{suffix:08x}")
}

/// The leases this replica keeps (see [`keep`]).
pub struct Replica {
    id: String,
    pool: PgPool,
    keepers: Mutex<BTreeMap<String, LeaseKeeper>>,
}

impl Replica {
    pub fn new(id: String, pool: PgPool) -> Replica {
        Replica {
            id,
            pool,
            keepers: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn keepers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LeaseKeeper>> {
        match self.keepers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Starts competing for lease `name` (no-op when already competing); returns whether this
    /// replica holds it right now.
    pub fn compete(&self, name: &str, ttl: Duration) -> bool {
        let mut keepers = self.keepers();
        let keeper = keepers
            .entry(name.to_string())
            .or_insert_with(|| keep(self.pool.clone(), name.to_string(), self.id.clone(), ttl));
        keeper.current().is_some()
    }

    /// The lease `name` while this replica holds it.
    pub fn held(&self, name: &str) -> Option<Lease> {
        self.keepers().get(name).and_then(LeaseKeeper::current)
    }

    /// Resolves once this replica holds `name` (after [`Replica::compete`]); `None` when it does
    /// not compete for it.
    pub async fn acquired(&self, name: &str) -> Option<Lease> {
        let watch = self.keepers().get(name).map(LeaseKeeper::watcher)?;
        Some(watch.acquired().await)
    }

    /// Stops competing for `name` and releases it if held (stream disabled or deleted).
    pub async fn withdraw(&self, name: &str) {
        let keeper = self.keepers().remove(name);
        if let Some(k) = keeper {
            k.stop().await;
        }
    }

    /// Names of the leases held now, for `/metrics`.
    pub fn held_names(&self) -> Vec<String> {
        self.keepers()
            .iter()
            .filter(|(_, k)| k.current().is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Releases every lease (shutdown), so other replicas take over without waiting.
    pub async fn release_all(&self) {
        let all = std::mem::take(&mut *self.keepers());
        for (_, k) in all {
            k.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    #[test]
    fn replica_ids_differ() {
        assert_ne!(new_replica_id(), new_replica_id());
    }

    #[tokio::test]
    async fn two_replicas_one_holder_and_a_handover_on_withdraw() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        let a = Replica::new("a".into(), pool.clone());
        let b = Replica::new("b".into(), pool.clone());
        let ttl = Duration::from_secs(3);
        a.compete("poll:s1", ttl);
        let lease = tokio::time::timeout(Duration::from_secs(10), a.acquired("poll:s1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.holder, "a");
        assert!(!b.compete("poll:s1", ttl));
        assert_eq!(a.held_names(), ["poll:s1"]);
        a.withdraw("poll:s1").await;
        assert!(a.held("poll:s1").is_none());
        let taken = tokio::time::timeout(Duration::from_secs(30), b.acquired("poll:s1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.holder, "b");
        assert!(taken.token > lease.token);
        b.release_all().await;
        assert!(b.held_names().is_empty());
    }
}
