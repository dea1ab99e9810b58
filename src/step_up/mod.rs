//! Step-up: some signals call for "prove it is you again, more strongly" rather than a logout.
//! A [`provider`] is the OpenID provider that can do that (ConductorOne's StepUpProvider); a
//! [`requirement`] says what a subject must prove and judges the facts of an authentication
//! against it, building the challenge an application returns; [`token`] verifies a presented
//! ID or access token against the provider's keys; [`probe`] is the provider `test` call.

pub mod probe;
pub mod provider;
pub mod requirement;
pub mod token;

pub use provider::{Provider, Settings, ValidationMode};
pub use requirement::{Demand, Requirement, TokenFacts, Unmet};
