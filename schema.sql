-- ssfd database schema: the single source of truth, embedded in the binary.
-- Times are Unix seconds (UTC) unless a column name ends in _ms.
-- Migrations: each block below, headed by a "migration N" comment line, upgrades PRAGMA user_version from N-1 to N.

-- migration 1
CREATE TABLE streams (
    id                          TEXT PRIMARY KEY,
    display_name                TEXT NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    issuer_url                  TEXT NOT NULL,
    jwks_url                    TEXT NOT NULL DEFAULT '',
    expected_audience           TEXT NOT NULL DEFAULT '',
    delivery_method             TEXT NOT NULL,           -- 'push' | 'poll'
    poll_endpoint_url           TEXT NOT NULL DEFAULT '',
    poll_interval_secs          INTEGER,
    outbound_auth               TEXT,                    -- JSON; holds secrets, never returned by the API
    enabled                     INTEGER NOT NULL DEFAULT 1,
    event_types_enabled         TEXT NOT NULL DEFAULT '[]',  -- JSON array of URIs
    session_revoked_action      TEXT NOT NULL,
    credential_change_action    TEXT NOT NULL,
    credential_compromise_action TEXT NOT NULL,
    account_disabled_action     TEXT NOT NULL,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    deleted_at                  INTEGER,
    last_error_at               INTEGER,
    last_error_message          TEXT NOT NULL DEFAULT '',
    last_verified_at            INTEGER,
    transmitter_stream_id       TEXT NOT NULL DEFAULT '',
    transmitter_status          TEXT NOT NULL DEFAULT '',
    transmitter_status_reason   TEXT NOT NULL DEFAULT '',
    events_delivered            TEXT NOT NULL DEFAULT '[]',  -- JSON array of URIs the transmitter said it delivers
    push_token_hash             BLOB,                    -- SHA-256 of the push token; the token itself is never stored
    prev_push_token_hash        BLOB,
    prev_push_token_expires_at  INTEGER,
    rejected_count              INTEGER NOT NULL DEFAULT 0  -- SETs answered with an error code
);

-- Every SET that passed verification, once per (stream, jti).
CREATE TABLE inbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT NOT NULL REFERENCES streams(id),
    jti             TEXT NOT NULL,
    iss             TEXT NOT NULL,
    txn             TEXT,
    event_types     TEXT NOT NULL,                       -- JSON array of URIs
    subject_keys    TEXT NOT NULL,                       -- JSON array of canonical keys
    raw_token       TEXT NOT NULL,
    claims          TEXT NOT NULL,                       -- decoded payload, JSON
    received_at_ms  INTEGER NOT NULL,
    delivery        TEXT NOT NULL,                       -- 'push' | 'poll'
    outcome         TEXT NOT NULL,                       -- 'revoke' | 'log_only' | 'stored' | 'control' | 'discarded'
    decision        TEXT NOT NULL DEFAULT '',            -- human-readable reason for the outcome
    UNIQUE (stream_id, jti)
);
CREATE INDEX inbox_received ON inbox (received_at_ms);

-- Planned actions: written in the same transaction as their inbox row (persist, then acknowledge).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    inbox_seq       INTEGER NOT NULL REFERENCES inbox(seq),
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    action          TEXT NOT NULL,                       -- 'REVOKE_ALL' | 'LOG_ONLY'
    sink            TEXT NOT NULL,                       -- '' for the ledger/log step, else the sink name
    idempotency_key TEXT NOT NULL,                       -- streamId:jti:eventType
    status          TEXT NOT NULL,                       -- 'pending' | 'running' | 'done' | 'dead'
    attempts        INTEGER NOT NULL DEFAULT 0,
    budget_from     INTEGER NOT NULL DEFAULT 0,          -- attempts made before the last operator retry;
                                                         -- max_attempts counts from here
    next_attempt_ms INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    UNIQUE (idempotency_key, sink)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
CREATE INDEX outbox_inbox ON outbox (inbox_seq);
CREATE INDEX outbox_status ON outbox (status, id);           -- GET /api/v1/actions?status=
CREATE INDEX outbox_stream ON outbox (stream_id, status, id); -- ?streamId=, dead count in stats

-- One row per attempt of an outbox action.
CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id       INTEGER NOT NULL REFERENCES outbox(id),
    attempt         INTEGER NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    ok              INTEGER NOT NULL,
    detail          TEXT NOT NULL DEFAULT ''             -- status, exit code, bounded output
);
CREATE INDEX attempts_outbox ON attempts (outbox_id);

-- Revocation ledger: subject key -> sessions issued before revoked_before are revoked.
CREATE TABLE ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key     TEXT NOT NULL,
    revoked_before  INTEGER NOT NULL,
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    UNIQUE (subject_key, stream_id, jti, event_type)
);
CREATE INDEX ledger_key ON ledger (subject_key, revoked_before);

-- Audit trail: one row per decided action (LOG_ONLY and REVOKE_ALL alike).
CREATE TABLE audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    action          TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT ''
);

-- Verification states ssfd asked a transmitter to echo (SSF §8.1.4).
CREATE TABLE verification_requests (
    stream_id       TEXT NOT NULL,
    state           TEXT NOT NULL,
    requested_at    INTEGER NOT NULL,
    answered_at     INTEGER,
    PRIMARY KEY (stream_id, state)
);

-- Poll acknowledgements not yet sent to the transmitter (survive a restart).
CREATE TABLE pending_acks (
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    PRIMARY KEY (stream_id, jti)
);

-- migration 2
-- Step-up providers: OpenID providers that make a user authenticate again, more strongly.
CREATE TABLE step_up_providers (
    id              TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    issuer_url      TEXT NOT NULL,
    client_id       TEXT NOT NULL DEFAULT '',
    client_secret   TEXT NOT NULL DEFAULT '',            -- for the token request; never returned by the API
    enabled         INTEGER NOT NULL DEFAULT 1,
    settings        TEXT NOT NULL,                       -- JSON: {"oauth2": {...}} or {"microsoft": {...}}
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_tested_at  INTEGER
);
CREATE INDEX step_up_providers_order ON step_up_providers (created_at, id);

-- migration 3
-- STEP_UP actions: the stream's step-up provider, and the requirements they record.
ALTER TABLE streams ADD COLUMN step_up_provider_id TEXT NOT NULL DEFAULT '';

-- One row per STEP_UP decision, written in the same transaction as its inbox row. What must be
-- proven is copied from the provider at that moment.
CREATE TABLE step_up_requirements (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    txn             TEXT,
    event_type      TEXT NOT NULL,
    provider_id     TEXT NOT NULL DEFAULT '',            -- '' when no usable provider was configured
    kind            TEXT NOT NULL,                       -- 'oauth2' | 'microsoft'
    acr_values      TEXT NOT NULL DEFAULT '[]',          -- JSON array: acr values or conditional access ids
    validation_mode TEXT NOT NULL DEFAULT '',
    max_age         INTEGER NOT NULL DEFAULT 0,
    since           INTEGER NOT NULL,                    -- the event time
    received_at_ms  INTEGER NOT NULL,
    UNIQUE (stream_id, jti, event_type)
);

-- Subject key -> the step-up requirements on it.
CREATE TABLE step_up_subjects (
    subject_key     TEXT NOT NULL,
    requirement_id  INTEGER NOT NULL REFERENCES step_up_requirements(id),
    PRIMARY KEY (subject_key, requirement_id)
);

-- migration 4
-- Compatibility profiles (docs/push.md#compatibility-profiles): the dialect a stream accepts, an
-- explicit metadata URL, and the tolerances applied to each stored SET.
ALTER TABLE streams ADD COLUMN compatibility_profile TEXT NOT NULL DEFAULT 'SSF_1_0';
ALTER TABLE streams ADD COLUMN metadata_url TEXT NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN tolerances TEXT NOT NULL DEFAULT '[]';  -- JSON array of tolerance kinds
-- Subjects ssfd removed from a stream at its transmitter (SSF §8.1.3.3): events about them are
-- acknowledged and logged, not acted on, until the subject is added again.
CREATE TABLE removed_subjects (
    stream_id       TEXT NOT NULL,
    subject_key     TEXT NOT NULL,                       -- canonical key, as in inbox.subject_keys
    removed_at      INTEGER NOT NULL,
    PRIMARY KEY (stream_id, subject_key)
);
