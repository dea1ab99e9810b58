//! The test's controls over the management API and the token endpoint: their URLs and
//! credentials, the failures and quirks to inject, and what the transmitter was asked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events;
use crate::mgmt::{apply, registered_authorization};
use crate::set::random_jti;
use crate::state::{EndpointPaths, ManagementCall, Mgmt, TokenRequest, TxStream};
use crate::transmitter::TestTransmitter;

/// Management, token and stream controls.
impl TestTransmitter {
    fn with_mgmt<R>(&self, f: impl FnOnce(&mut Mgmt) -> R) -> R {
        f(&mut self.shared().mgmt())
    }

    /// The endpoint paths this transmitter serves.
    pub fn paths(&self) -> EndpointPaths {
        self.shared().paths.clone()
    }

    pub fn configuration_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.configuration)
    }

    pub fn status_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.status)
    }

    pub fn verification_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.verification)
    }

    pub fn token_url(&self) -> String {
        self.shared().url(&self.shared().paths.token)
    }

    /// A bearer token the management and poll endpoints always accept.
    pub fn static_token(&self) -> String {
        self.with_mgmt(|m| m.static_tokens.iter().next().cloned().unwrap_or_default())
    }

    /// The client id and secret the token endpoint accepts.
    pub fn client_credentials(&self) -> (String, String) {
        self.with_mgmt(|m| (m.client_id.clone(), m.client_secret.clone()))
    }

    /// Lifetime (`expires_in`) of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with_mgmt(|m| m.token_lifetime = lifetime);
    }

    /// Makes every access token issued so far invalid (401 from now on).
    pub fn revoke_tokens(&self) {
        self.with_mgmt(|m| m.issued.clear());
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.with_mgmt(|m| m.token_requests.iter().filter(|r| r.granted).count())
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.with_mgmt(|m| m.token_requests.clone())
    }

    /// Management and poll requests refused with 401 so far.
    pub fn unauthorized_count(&self) -> usize {
        self.with_mgmt(|m| m.unauthorized)
    }

    /// Every management request so far, in arrival order.
    pub fn management_calls(&self) -> Vec<ManagementCall> {
        self.with_mgmt(|m| m.calls.clone())
    }

    /// Makes every management endpoint answer `status` (`None`: work again).
    pub fn fail_management(&self, status: Option<u16>) {
        self.with_mgmt(|m| {
            m.management_failure = status;
            m.management_failure_body = None;
        });
    }

    /// Like [`TestTransmitter::fail_management`] with this body; `{authorization}` in it is
    /// replaced by the request's `Authorization` header, as a transmitter echoing credentials.
    pub fn fail_management_with_body(&self, status: u16, body: &str) {
        self.with_mgmt(|m| {
            m.management_failure = Some(status);
            m.management_failure_body = Some(body.to_owned());
        });
    }

    /// Like Okta and SailPoint, allow one stream per client: a second create gets 409.
    pub fn set_one_stream_per_client(&self, on: bool) {
        self.with_mgmt(|m| m.one_stream_per_client = on);
    }

    /// Announces another `iss` in stream configurations (`None`: the real issuer).
    pub fn set_config_iss(&self, iss: Option<String>) {
        self.with_mgmt(|m| m.config_iss = iss);
    }

    /// `min_verification_interval` in seconds; verifying sooner gets 429 with `Retry-After`.
    pub fn set_min_verification_interval(&self, secs: Option<u64>) {
        self.with_mgmt(|m| m.min_verification_interval = secs);
    }

    /// `inactivity_timeout` in seconds, announced in stream configurations.
    pub fn set_inactivity_timeout(&self, secs: Option<u64>) {
        self.with_mgmt(|m| m.inactivity_timeout = secs);
    }

    /// Verification events carry this `state` instead of the requested one.
    pub fn set_verification_state(&self, state: Option<String>) {
        self.with_mgmt(|m| m.verification_state = state);
    }

    /// Accept verification requests (204) but never send the event.
    pub fn set_drop_verifications(&self, drop: bool) {
        self.with_mgmt(|m| m.drop_verifications = drop);
    }

    /// (stream id, requested state) of every accepted verification request.
    pub fn verification_requests(&self) -> Vec<(String, Option<String>)> {
        self.with_mgmt(|m| m.verifications.clone())
    }

    /// Creates a stream directly, as an earlier registration would have. `delivery` is an SSF
    /// delivery object (`{"method": ...}`); returns the stream id.
    pub fn create_stream(&self, delivery: Value) -> String {
        let shared = self.shared().clone();
        let mut m = shared.mgmt();
        let mut s = TxStream {
            id: random_jti(),
            method: String::new(),
            endpoint_url: String::new(),
            authorization_header: None,
            events_requested: vec![events::SESSION_REVOKED.to_owned()],
            description: Some("created by hand".into()),
            status: "enabled".into(),
            reason: None,
            subjects: Vec::new(),
        };
        let body = json!({"delivery": delivery});
        if let Some(obj) = body.as_object() {
            if let Err(problem) = apply(&shared, &mut s, obj, false) {
                panic!("create_stream: {problem}");
            }
        }
        let id = s.id.clone();
        m.streams.insert(id.clone(), s);
        id
    }

    /// Pushes send the registered authorization header without its `Bearer ` scheme (`true`),
    /// as some legacy transmitters do, or as registered (`false`, the default).
    pub fn set_strip_bearer(&self, strip: bool) {
        self.with_mgmt(|m| m.strip_bearer = strip);
    }

    /// The stream configuration as the transmitter serves it.
    pub fn stream_config(&self, stream_id: &str) -> Option<Value> {
        let shared = self.shared().clone();
        let m = shared.mgmt();
        m.streams.get(stream_id).map(|s| {
            if shared.legacy {
                crate::legacy::config_json(&m, s, &shared.issuer)
            } else {
                m.config_json(s, &shared.issuer, &shared.audience)
            }
        })
    }

    pub fn stream_ids(&self) -> Vec<String> {
        self.with_mgmt(|m| m.streams.keys().cloned().collect())
    }

    /// The subjects the receiver added to a stream (SSF §8.1.3), in order.
    pub fn stream_subjects(&self, stream_id: &str) -> Vec<Value> {
        self.with_mgmt(|m| {
            m.streams
                .get(stream_id)
                .map(|s| s.subjects.clone())
                .unwrap_or_default()
        })
    }

    pub fn add_subject_endpoint(&self) -> String {
        self.shared().url(&self.shared().paths.add_subject)
    }

    /// The authorization header a push stream was registered with.
    pub fn stream_authorization_header(&self, stream_id: &str) -> Option<String> {
        self.with_mgmt(|m| {
            m.streams
                .get(stream_id)
                .and_then(|s| s.authorization_header.clone())
        })
    }

    /// (status, reason) at the transmitter.
    pub fn stream_status(&self, stream_id: &str) -> Option<(String, Option<String>)> {
        self.with_mgmt(|m| {
            m.streams
                .get(stream_id)
                .map(|s| (s.status.clone(), s.reason.clone()))
        })
    }

    /// Sets the status as the transmitter would on its own. A stream that is not enabled holds
    /// its poll queue.
    pub fn set_stream_status(&self, stream_id: &str, status: &str, reason: Option<&str>) {
        self.with_mgmt(|m| {
            let s = m
                .streams
                .get_mut(stream_id)
                .unwrap_or_else(|| panic!("no stream {stream_id}"));
            s.status = status.to_owned();
            s.reason = reason.map(String::from);
        });
        self.shared().feeds_changed.notify_waiters();
    }

    /// Pushes `set` to a registered push stream's endpoint with the authorization header it was
    /// registered with (without its `Bearer ` scheme after [`TestTransmitter::set_strip_bearer`]).
    pub async fn push_registered(&self, stream_id: &str, set: &str) -> reqwest::Response {
        let (url, auth) = self.with_mgmt(|m| {
            let s = m
                .streams
                .get(stream_id)
                .unwrap_or_else(|| panic!("no stream {stream_id}"));
            (
                s.endpoint_url.clone(),
                registered_authorization(s.authorization_header.clone(), m.strip_bearer),
            )
        });
        crate::push::push_set_with_header(&self.shared().client, &url, auth.as_deref(), set)
            .await
            .unwrap_or_else(|e| panic!("pushing to {url} failed: {e}"))
    }
}
