//! What one attempt of an action works from: the outbox row and the document a sink is handed.
//! Kept apart from the building of the document, so that sinks need nothing of the
//! configuration to read them.

/// An outbox row joined with its inbox row: everything an attempt needs (the store reads it).
pub use crate::store::outbox::ActionRow;

/// A document ready to hand to a sink, with the values sinks also get outside the body.
#[derive(Debug, Clone)]
pub struct ActionDocument {
    pub body: Vec<u8>,
    /// The first canonical subject key (`SSFD_SUBJECT`); empty when the SET had none.
    pub subject_key: String,
    pub local_user: Option<String>,
}
