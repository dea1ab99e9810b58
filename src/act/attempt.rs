//! What one attempt of an action works from: the outbox row and the document a sink is handed.
//! Kept apart from the building of the document, so that sinks need nothing of the
//! configuration to read them.

/// An outbox row joined with its inbox row: everything an attempt needs.
#[derive(Debug, Clone)]
pub struct ActionRow {
    pub id: i64,
    pub stream_id: String,
    pub jti: String,
    pub event_type: String,
    pub action: String,
    pub sink: String,
    pub idempotency_key: String,
    /// The number of this attempt, from 1.
    pub attempt: i64,
    /// Attempts made before the last operator retry (the budget counts from there).
    pub budget_from: i64,
    /// `inbox.claims`: the decoded SET payload as received.
    pub claims: String,
    pub received_at_ms: i64,
    pub subject_keys: Vec<String>,
    /// The requirement a STEP_UP action recorded (STEP_UP only).
    pub step_up: Option<crate::step_up::Requirement>,
}

/// A document ready to hand to a sink, with the values sinks also get outside the body.
#[derive(Debug, Clone)]
pub struct ActionDocument {
    pub body: Vec<u8>,
    /// The first canonical subject key (`SSFD_SUBJECT`); empty when the SET had none.
    pub subject_key: String,
    pub local_user: Option<String>,
}
