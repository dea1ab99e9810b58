//! A Shared Signals Framework transmitter on loopback, for ssfd's tests, benchmarks and demo.
//!
//! [`TestTransmitter`] serves real SSF metadata and a real JWKS, signs real Security Event
//! Tokens and pushes them, and lets a test break any of that on purpose: rotate or withdraw
//! keys, fail the JWKS, lie about the issuer, or forge headers. It also runs the SSF §8
//! management API (streams, status, verification), an OAuth 2.0 client-credentials token
//! endpoint, and RFC 8936 poll endpoints serving queued SETs, each with knobs to misbehave.
//! With [`TransmitterOptions::legacy`] it speaks the pre-1.0 SSE draft instead ([`legacy`]).
//! [`WebhookRecorder`] is the other end of an action sink: it records what arrives.
//! [`TestOpenIdProvider`] is an OpenID provider for step-up: discovery, JWKS, a token endpoint
//! and signed ID and access tokens with `acr`, `amr`, `auth_time` and Entra's `acrs`.
//!
//! ```no_run
//! # async fn demo(push_url: &str, token: &str) {
//! use ssfd_testkit::{events, subjects, TestTransmitter};
//!
//! let tx = TestTransmitter::start().await;
//! let set = tx
//!     .set()
//!     .sub_id(subjects::email("bob@example.com"))
//!     .event("credential-change", events::default_payload("credential-change", None, 0))
//!     .sign();
//! let answer = tx.push(push_url, token, &set).await;
//! assert_eq!(answer.status(), 202);
//! # }
//! ```

pub mod events;
mod handle_mgmt;
mod handle_poll;
pub mod jws;
mod keys;
pub mod legacy;
mod mgmt;
mod oidc;
pub mod pg;
mod poll;
mod push;
mod rsa_small;
mod server;
mod set;
mod state;
pub mod subjects;
pub mod tcp_proxy;
mod transmitter;
mod webhook;
mod wire;

pub use josekit::jwk::Jwk;
pub use keys::{KeyKind, SigningKey};
pub use oidc::{TestOpenIdProvider, TokenBuilder, DEFAULT_ACR_VALUES};
pub use push::{http_client, push_set, push_set_with_header, SET_MEDIA_TYPE};
pub use set::{random_jti, SetBuilder, DEFAULT_AUDIENCE};
pub use state::{EndpointPaths, ManagementCall, PollRequest, TokenRequest};
pub use transmitter::{TestTransmitter, TransmitterOptions};
pub use webhook::{Answer, Delivery, WebhookRecorder};
pub use wire::{DELIVERY_METHOD_POLL, DELIVERY_METHOD_PUSH};
