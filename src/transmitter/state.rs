//! The state the poller, the management client and the health check share: one HTTP client,
//! the access-token cache, verification limits, counters.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::auth::TokenCache;
use super::error::TransmitterError;

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
}

/// State shared by the poller, the management client and the health check. Lives in
/// [`crate::app::App`].
pub struct Transmitters {
    http: Mutex<Option<reqwest::Client>>,
    pub tokens: TokenCache,
    pub health: HealthStats,
    limits: Mutex<HashMap<String, VerifyLimit>>,
    pollers: Mutex<BTreeSet<String>>,
}

impl Default for Transmitters {
    fn default() -> Self {
        Transmitters {
            http: Mutex::new(None),
            tokens: TokenCache::default(),
            health: HealthStats::default(),
            limits: Mutex::new(HashMap::new()),
            pollers: Mutex::new(BTreeSet::new()),
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
    pub fn http(&self) -> Result<reqwest::Client, TransmitterError> {
        let mut slot = lock(&self.http);
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ssfd/", env!("CARGO_PKG_VERSION")))
            .build()
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
    }

    /// Ids of the streams whose poller is running right now.
    pub fn running_pollers(&self) -> Vec<String> {
        lock(&self.pollers).iter().cloned().collect()
    }

    pub(crate) fn set_running_pollers(&self, ids: impl IntoIterator<Item = String>) {
        *lock(&self.pollers) = ids.into_iter().collect();
    }
}
