//! The test's controls over the RFC 8936 poll endpoints: queue SETs, make polls fail or hold,
//! and read what the receiver acknowledged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::poll::jti_of;
use crate::set::SetBuilder;
use crate::state::{Feed, Mgmt, PollRequest};
use crate::transmitter::TestTransmitter;

/// Poll endpoint controls.
impl TestTransmitter {
    fn with_feeds<R>(&self, f: impl FnOnce(&mut Mgmt) -> R) -> R {
        let r = f(&mut self.shared().mgmt());
        self.shared().feeds_changed.notify_waiters();
        r
    }

    /// The RFC 8936 poll endpoint of a feed. A stream created through the management API
    /// polls the feed named by its stream id.
    pub fn poll_url(&self, feed: &str) -> String {
        self.shared()
            .url(&format!("{}/{feed}", self.shared().paths.poll_prefix))
    }

    /// Queues a compact SET under its own `jti`, which it returns. Panics when the token has
    /// no readable `jti` (use [`TestTransmitter::enqueue_as`] for such tokens).
    pub fn enqueue(&self, feed: &str, token: &str) -> String {
        let jti = jti_of(token).unwrap_or_else(|| panic!("the token has no readable jti"));
        self.enqueue_as(feed, &jti, token);
        jti
    }

    /// Queues a token under any key, e.g. one that is not its `jti`.
    pub fn enqueue_as(&self, feed: &str, key: &str, token: &str) {
        self.with_feeds(|m| m.feed(feed).push(key.to_owned(), token.to_owned()));
    }

    /// Signs and queues a SET; returns its `jti`.
    pub fn enqueue_set(&self, feed: &str, set: &SetBuilder) -> String {
        self.enqueue(feed, &set.sign())
    }

    /// SETs queued and not yet acknowledged or reported.
    pub fn queued(&self, feed: &str) -> usize {
        self.with_mgmt_ref(|m| m.feeds.get(feed).map_or(0, Feed::len))
    }

    fn with_mgmt_ref<R>(&self, f: impl FnOnce(&Mgmt) -> R) -> R {
        f(&self.shared().mgmt())
    }

    /// How long a long poll is held when nothing is queued (default 5 s).
    pub fn set_poll_hold(&self, hold: Duration) {
        self.with_feeds(|m| m.poll_hold = hold);
    }

    /// Keep delivering acknowledged and rejected SETs (or honour `ack` and `setErrs` again).
    pub fn set_poll_ignores_acks(&self, ignore: bool) {
        self.with_feeds(|m| m.ignore_acks = ignore);
    }

    /// Deliver everything queued in one answer, whatever `maxEvents` says (or obey it again).
    pub fn set_poll_ignores_max_events(&self, ignore: bool) {
        self.with_feeds(|m| m.ignore_max_events = ignore);
    }

    /// Every poll request answers `status` for `duration` from now.
    pub fn fail_polls(&self, status: u16, duration: Duration) {
        self.with_feeds(|m| m.poll_failure = Some((status, Instant::now() + duration, None)));
    }

    /// Like [`TestTransmitter::fail_polls`], with a `Retry-After` of `retry_after_secs`.
    pub fn fail_polls_with_retry_after(
        &self,
        status: u16,
        duration: Duration,
        retry_after_secs: u64,
    ) {
        self.with_feeds(|m| {
            m.poll_failure = Some((status, Instant::now() + duration, Some(retry_after_secs)))
        });
    }

    /// Every poll request so far, in arrival order.
    pub fn poll_requests(&self) -> Vec<PollRequest> {
        self.with_mgmt_ref(|m| m.polls.clone())
    }

    /// Every jti acknowledged so far, in order (repeats included).
    pub fn acked(&self) -> Vec<String> {
        self.with_mgmt_ref(|m| m.acked.clone())
    }

    /// Every `setErrs` entry received, by key (the latest wins).
    pub fn set_errs(&self) -> BTreeMap<String, Value> {
        self.with_mgmt_ref(|m| m.set_errs.clone())
    }
}
