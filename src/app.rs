//! The shared state every listener and worker holds: configuration, store, streams, keys.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::Notify;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::registry::Registry;
use crate::store::Store;
use crate::verify::jwks::JwksCache;

pub struct App {
    config: RwLock<Arc<Config>>,
    pub store: Store,
    pub registry: Registry,
    pub keys: JwksCache,
    /// Where outbound requests may go; every HTTP client is built from it.
    pub outbound: Outbound,
    /// SHA-256 of the admin token; the token itself is not kept.
    pub admin_token_hash: [u8; 32],
    /// Shared by the pollers and the management client: HTTP client, access tokens, counters.
    pub transmitters: crate::transmitter::Transmitters,
    /// Woken when new actions are committed, so the worker need not wait for its next tick.
    pub actions_ready: Notify,
    pub started: Instant,
    /// Counters and histograms behind `/metrics`.
    pub metrics: Metrics,
    /// Tolerances applied per stream since start (stats, warnings).
    pub tolerances: crate::compat::ToleranceLedger,
    /// Refused push requests, noted on their stream at a bounded rate.
    pub push_auth_failures: crate::intake::refusals::AuthFailures,
    /// Wrong tokens per client address, on both listeners.
    pub failed_auth: crate::http::fairness::FailedAuth,
    /// Where each step-up provider's keys are (from its OpenID configuration).
    pub step_up_discovery: crate::step_up::token::Discovery,
}

impl App {
    pub fn new(
        config: Config,
        store: Store,
        registry: Registry,
        keys: JwksCache,
        outbound: Outbound,
        admin_token_hash: [u8; 32],
    ) -> App {
        App {
            config: RwLock::new(Arc::new(config)),
            store,
            registry,
            keys,
            admin_token_hash,
            transmitters: crate::transmitter::Transmitters::new(outbound.clone()),
            outbound,
            actions_ready: Notify::new(),
            started: Instant::now(),
            metrics: Metrics::new(),
            tolerances: Default::default(),
            push_auth_failures: Default::default(),
            failed_auth: Default::default(),
            step_up_discovery: Default::default(),
        }
    }

    /// The configuration in force (replaced as a whole on reload).
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Counts tolerances applied on a stream: metric, stats, a warning the first time.
    pub fn note_tolerances(&self, stream: &str, kinds: &[crate::compat::Tolerance]) {
        self.tolerances.note(&self.metrics, stream, kinds);
    }

    /// `Some(retry after)` when `client` used up its wrong tokens for this minute.
    pub fn auth_blocked(
        &self,
        client: Option<crate::http::fairness::ClientAddr>,
    ) -> Option<std::time::Duration> {
        let limit = self.config().server.max_failed_auth_per_minute;
        self.failed_auth.blocked(client?.0, limit, Instant::now())
    }

    /// Counts a wrong or missing token from `client`.
    pub fn auth_failed(&self, client: Option<crate::http::fairness::ClientAddr>) {
        if let Some(client) = client {
            self.failed_auth.record(client.0, Instant::now());
        }
    }

    pub fn replace_config(&self, config: Config) {
        self.keys.reconfigure(&config.jwks);
        self.outbound.reconfigure(&config.outbound);
        let mut slot = match self.config.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        *slot = Arc::new(config);
    }
}
