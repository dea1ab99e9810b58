//! The state the poller, the management client and the health check share: one HTTP client,
//! the access-token cache, verification limits, counters.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::auth::TokenCache;
use super::error::TransmitterError;
use crate::outbound::{ClientLimits, HttpClient, Outbound, Redirects};

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct HealthStats {
    /// Verifications requested by the health check.
    pub verifications_requested: AtomicU64,
    /// Requested verifications that had not arrived one interval later.
    pub verifications_missed: AtomicU64,
    /// Verification requests the transmitter did not accept.
    pub verification_errors: AtomicU64,
    /// Completed rounds over all streams.
    pub rounds: AtomicU64,
}

/// What ssfd knows about a stream's verification limits (SSF §8.1.4.2).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VerifyLimit {
    /// `min_verification_interval` from the stream configuration; `None` until learnt.
    pub min_interval: Option<Duration>,
    /// Whether the configuration was read at all (a transmitter may not announce a minimum).
    pub known: bool,
    /// Unix seconds before which the transmitter asked not to be asked again (429).
    pub not_before: i64,
    /// `inactivity_timeout` from the stream configuration: the stream is kept busy with
    /// verifications when it is quiet for half of it.
    pub inactivity_timeout: Option<Duration>,
}

/// State shared by the poller, the management client and the health check. Lives in
/// [`crate::app::App`].
pub struct Transmitters {
    outbound: Outbound,
    http: Mutex<Option<HttpClient>>,
    pub tokens: TokenCache,
    pub health: HealthStats,
    limits: Mutex<HashMap<String, VerifyLimit>>,
    pollers: Mutex<BTreeSet<String>>,
    /// Canonical subject keys removed from each stream at its transmitter (mirrors the
    /// `removed_subjects` rows, so that intake need not read the database).
    removed: Mutex<HashMap<String, HashSet<String>>>,
    /// When each stream last carried a SET ssfd accepted.
    activity: Mutex<HashMap<String, std::time::Instant>>,
    /// Woken when a stream's limits change (the health task then looks again at once).
    pub(crate) limits_changed: tokio::sync::Notify,
}

impl Default for Transmitters {
    fn default() -> Self {
        Transmitters::new(Outbound::default())
    }
}

impl Transmitters {
    /// The shared state, its clients following `outbound`.
    pub fn new(outbound: Outbound) -> Transmitters {
        Transmitters {
            outbound,
            http: Mutex::new(None),
            tokens: TokenCache::default(),
            health: HealthStats::default(),
            limits: Mutex::new(HashMap::new()),
            pollers: Mutex::new(BTreeSet::new()),
            removed: Mutex::new(HashMap::new()),
            activity: Mutex::new(HashMap::new()),
            limits_changed: tokio::sync::Notify::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Transmitters {
    /// The HTTP client for every call to a transmitter, built on first use. Redirects are not
    /// followed: a management or poll endpoint that redirects would receive credentials meant
    /// for another URL.
    pub fn http(&self) -> Result<HttpClient, TransmitterError> {
        let mut slot = lock(&self.http);
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // Every request sets its own total time; this is the bound for one that does not.
        let limits = ClientLimits {
            connect_timeout: Duration::from_secs(10),
            timeout: super::MANAGEMENT_TIMEOUT,
        };
        let client = self
            .outbound
            .client(&limits, Redirects::None)
            .map_err(|_| TransmitterError::failed("http", "the HTTP client cannot be built"))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    pub(crate) fn verify_limit(&self, stream_id: &str) -> VerifyLimit {
        lock(&self.limits)
            .get(stream_id)
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn update_verify_limit(&self, stream_id: &str, edit: impl FnOnce(&mut VerifyLimit)) {
        edit(lock(&self.limits).entry(stream_id.to_string()).or_default());
        self.limits_changed.notify_waiters();
    }

    /// Ids of the streams whose poller is running right now.
    pub fn running_pollers(&self) -> Vec<String> {
        lock(&self.pollers).iter().cloned().collect()
    }

    /// Notes that a stream just carried an accepted SET.
    pub fn note_activity(&self, stream_id: &str) {
        lock(&self.activity).insert(stream_id.to_string(), std::time::Instant::now());
    }

    /// When the stream last carried an accepted SET, if it did since start.
    pub(crate) fn last_activity(&self, stream_id: &str) -> Option<std::time::Instant> {
        lock(&self.activity).get(stream_id).copied()
    }

    /// The shortest `inactivity_timeout` any stream's transmitter announced.
    pub(crate) fn shortest_inactivity(&self) -> Option<Duration> {
        lock(&self.limits)
            .values()
            .filter_map(|l| l.inactivity_timeout)
            .min()
    }

    /// Whether an event about a subject with these keys concerns a subject removed from the
    /// stream.
    pub fn is_removed(&self, stream_id: &str, keys: &[String]) -> bool {
        lock(&self.removed)
            .get(stream_id)
            .is_some_and(|set| keys.iter().any(|k| set.contains(k)))
    }

    /// Records in memory that these keys were removed from (or added back to) the stream.
    pub fn note_subject(&self, stream_id: &str, keys: &[String], removed: bool) {
        let mut map = lock(&self.removed);
        let set = map.entry(stream_id.to_string()).or_default();
        for k in keys {
            if removed {
                set.insert(k.clone());
            } else {
                set.remove(k);
            }
        }
    }

    pub(crate) fn set_running_pollers(&self, ids: impl IntoIterator<Item = String>) {
        *lock(&self.pollers) = ids.into_iter().collect();
    }
}
