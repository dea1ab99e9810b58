//! ssfd: a Shared Signals Framework receiver.
//!
//! A Security Event Token flows through the modules in the order they are listed here:
//! it arrives through [`intake`] (push or poll), is checked by [`verify`], made durable by
//! [`store`] together with the actions [`act`] planned for it, and only then acknowledged.
//! [`admin`] manages the stream records the rest of the flow is bound to; [`transmitter`] talks
//! to the transmitters themselves (registration, verification, status); [`daemon`] wires
//! everything together, [`service`] runs it under a service manager and [`metrics`] counts what
//! it does; [`step_up`] turns some signals into "authenticate again, more strongly" instead of
//! a logout; [`compat`] names and counts the departures from SSF 1.0 it accepts; [`cli`] is the
//! operator's command line and [`console`] the operator's web pages.

pub mod act;
pub mod admin;
pub mod app;
pub mod cli;
pub mod clock;
pub mod compat;
pub mod config;
pub mod console;
pub mod daemon;
pub mod event_type;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod outbound;
pub mod push_token;
pub mod registry;
pub mod sanitize;
pub mod secrets;
pub mod service;
pub mod step_up;
pub mod store;
pub mod stream;
pub mod tls;
pub mod transmitter;
pub mod url_check;
pub mod verify;
