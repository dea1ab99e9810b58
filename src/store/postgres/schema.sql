-- ssfd database schema for PostgreSQL: the same tables as schema.sql (SQLite), embedded in the binary.
-- Times are Unix seconds (UTC) unless a column name ends in _ms.
-- Migrations: each block below, headed by a "migration N" comment line, is applied once, in order,
-- and recorded in schema_migrations (see src/store/postgres/migrate.rs).

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
    poll_interval_secs          BIGINT,
    outbound_auth               TEXT,                    -- JSON; holds secrets, never returned by the API
    enabled                     BOOLEAN NOT NULL DEFAULT TRUE,
    event_types_enabled         TEXT NOT NULL DEFAULT '[]',  -- JSON array of URIs
    session_revoked_action      TEXT NOT NULL,
    credential_change_action    TEXT NOT NULL,
    credential_compromise_action TEXT NOT NULL,
    account_disabled_action     TEXT NOT NULL,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL,
    deleted_at                  BIGINT,
    last_error_at               BIGINT,
    last_error_message          TEXT NOT NULL DEFAULT '',
    last_verified_at            BIGINT,
    transmitter_stream_id       TEXT NOT NULL DEFAULT '',
    transmitter_status          TEXT NOT NULL DEFAULT '',
    transmitter_status_reason   TEXT NOT NULL DEFAULT '',
    events_delivered            TEXT NOT NULL DEFAULT '[]',  -- JSON array of URIs the transmitter said it delivers
    push_token_hash             BYTEA,                   -- SHA-256 of the push token; the token itself is never stored
    prev_push_token_hash        BYTEA,
    prev_push_token_expires_at  BIGINT,
    rejected_count              BIGINT NOT NULL DEFAULT 0  -- SETs answered with an error code
);

-- Every SET that passed verification, once per (stream, jti), whichever replica received it.
CREATE TABLE inbox (
    seq             BIGSERIAL PRIMARY KEY,
    stream_id       TEXT NOT NULL REFERENCES streams(id),
    jti             TEXT NOT NULL,
    iss             TEXT NOT NULL,
    txn             TEXT,
    event_types     TEXT NOT NULL,                       -- JSON array of URIs
    subject_keys    TEXT NOT NULL,                       -- JSON array of canonical keys
    raw_token       TEXT NOT NULL,
    claims          TEXT NOT NULL,                       -- decoded payload, JSON
    received_at_ms  BIGINT NOT NULL,
    delivery        TEXT NOT NULL,                       -- 'push' | 'poll'
    outcome         TEXT NOT NULL,                       -- 'revoke' | 'log_only' | 'stored' | 'control' | 'discarded'
    decision        TEXT NOT NULL DEFAULT '',            -- human-readable reason for the outcome
    UNIQUE (stream_id, jti)
);
CREATE INDEX inbox_received ON inbox (received_at_ms);

-- Planned actions: written in the same transaction as their inbox row (persist, then acknowledge).
-- A replica claims a due row by setting claimed_by and lease_until_ms (FOR UPDATE SKIP LOCKED);
-- a row whose lease ran out is due again, so an attempt cut short by a dying replica is retried
-- elsewhere with the same idempotency key.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    inbox_seq       BIGINT NOT NULL REFERENCES inbox(seq),
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    action          TEXT NOT NULL,                       -- 'REVOKE_ALL' | 'LOG_ONLY'
    sink            TEXT NOT NULL,                       -- '' for the ledger/log step, else the sink name
    idempotency_key TEXT NOT NULL,                       -- streamId:jti:eventType
    status          TEXT NOT NULL,                       -- 'pending' | 'running' | 'done' | 'dead'
    attempts        BIGINT NOT NULL DEFAULT 0,
    budget_from     BIGINT NOT NULL DEFAULT 0,           -- attempts made before the last operator retry;
                                                         -- max_attempts counts from here
    next_attempt_ms BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    finished_at_ms  BIGINT,
    last_error      TEXT NOT NULL DEFAULT '',
    claimed_by      TEXT,                                -- replica id of the current attempt
    lease_until_ms  BIGINT,                              -- the claim lapses after this instant
    UNIQUE (idempotency_key, sink)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
CREATE INDEX outbox_inbox ON outbox (inbox_seq);
CREATE INDEX outbox_status ON outbox (status, id);           -- GET /api/v1/actions?status=
CREATE INDEX outbox_stream ON outbox (stream_id, status, id); -- ?streamId=, dead count in stats
CREATE INDEX outbox_lease ON outbox (lease_until_ms) WHERE status = 'running';

-- One row per attempt of an outbox action.
CREATE TABLE attempts (
    id              BIGSERIAL PRIMARY KEY,
    outbox_id       BIGINT NOT NULL REFERENCES outbox(id),
    attempt         BIGINT NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    duration_ms     BIGINT NOT NULL,
    ok              BOOLEAN NOT NULL,
    detail          TEXT NOT NULL DEFAULT ''             -- status, exit code, bounded output
);
CREATE INDEX attempts_outbox ON attempts (outbox_id);

-- Revocation ledger: subject key -> sessions issued before revoked_before are revoked.
CREATE TABLE ledger (
    id              BIGSERIAL PRIMARY KEY,
    subject_key     TEXT NOT NULL,
    revoked_before  BIGINT NOT NULL,
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    received_at_ms  BIGINT NOT NULL,
    UNIQUE (subject_key, stream_id, jti, event_type)
);
CREATE INDEX ledger_key ON ledger (subject_key, revoked_before);

-- Audit trail: one row per decided action (LOG_ONLY and REVOKE_ALL alike).
CREATE TABLE audit (
    id              BIGSERIAL PRIMARY KEY,
    at_ms           BIGINT NOT NULL,
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    action          TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT ''
);

-- Verification states ssfd asked a transmitter to echo.
CREATE TABLE verification_requests (
    stream_id       TEXT NOT NULL,
    state           TEXT NOT NULL,
    requested_at    BIGINT NOT NULL,
    answered_at     BIGINT,
    PRIMARY KEY (stream_id, state)
);

-- Poll acknowledgements not yet sent to the transmitter (survive a restart and a lease move:
-- whichever replica holds the stream's poll lease sends them). seq keeps them in arrival order.
CREATE TABLE pending_acks (
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    seq             BIGSERIAL NOT NULL,
    PRIMARY KEY (stream_id, jti)
);

-- Milliseconds since the Unix epoch on the database's clock: every replica reads the same clock,
-- so a lease never depends on how well the replicas' clocks agree.
CREATE FUNCTION ssfd_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE
    AS $$ SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT $$;

-- Leases between replicas: one holder at a time per name (e.g. 'poll:<stream id>'). The token
-- grows by one whenever the lease changes hands, so work done under an older token can be told
-- apart (fencing). Times come from the database clock, never a replica's.
CREATE TABLE leases (
    name            TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,
    token           BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL
);

-- A change to a stream's configuration is announced to every replica on channel ssfd_changes
-- (payload: the stream id) when its transaction commits. Per-SET bookkeeping (rejected_count,
-- last error, last verification) is not configuration and stays quiet.
CREATE FUNCTION ssfd_stream_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('ssfd_changes', OLD.id);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('ssfd_changes', NEW.id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER streams_changed_insert_delete AFTER INSERT OR DELETE ON streams
    FOR EACH ROW EXECUTE FUNCTION ssfd_stream_changed();
CREATE TRIGGER streams_changed_update AFTER UPDATE ON streams
    FOR EACH ROW WHEN ((OLD.display_name, OLD.description, OLD.issuer_url, OLD.jwks_url,
                        OLD.expected_audience, OLD.delivery_method, OLD.poll_endpoint_url,
                        OLD.poll_interval_secs, OLD.outbound_auth, OLD.enabled,
                        OLD.event_types_enabled, OLD.session_revoked_action,
                        OLD.credential_change_action, OLD.credential_compromise_action,
                        OLD.account_disabled_action, OLD.deleted_at, OLD.transmitter_stream_id,
                        OLD.transmitter_status, OLD.transmitter_status_reason,
                        OLD.events_delivered, OLD.push_token_hash, OLD.prev_push_token_hash,
                        OLD.prev_push_token_expires_at)
                       IS DISTINCT FROM
                       (NEW.display_name, NEW.description, NEW.issuer_url, NEW.jwks_url,
                        NEW.expected_audience, NEW.delivery_method, NEW.poll_endpoint_url,
                        NEW.poll_interval_secs, NEW.outbound_auth, NEW.enabled,
                        NEW.event_types_enabled, NEW.session_revoked_action,
                        NEW.credential_change_action, NEW.credential_compromise_action,
                        NEW.account_disabled_action, NEW.deleted_at, NEW.transmitter_stream_id,
                        NEW.transmitter_status, NEW.transmitter_status_reason,
                        NEW.events_delivered, NEW.push_token_hash, NEW.prev_push_token_hash,
                        NEW.prev_push_token_expires_at))
    EXECUTE FUNCTION ssfd_stream_changed();

-- migration 2
-- Step-up (SQLite migrations 2 and 3) and compatibility profiles (SQLite migration 4).
-- Step-up providers: OpenID providers that make a user authenticate again, more strongly.
CREATE TABLE step_up_providers (
    id              TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    issuer_url      TEXT NOT NULL,
    client_id       TEXT NOT NULL DEFAULT '',
    client_secret   TEXT NOT NULL DEFAULT '',            -- for the token request; never returned by the API
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    settings        TEXT NOT NULL,                       -- JSON: {"oauth2": {...}} or {"microsoft": {...}}
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_tested_at  BIGINT
);
CREATE INDEX step_up_providers_order ON step_up_providers (created_at, id);

-- STEP_UP actions: the stream's step-up provider, and the requirements they record.
ALTER TABLE streams ADD COLUMN step_up_provider_id TEXT NOT NULL DEFAULT '';

-- One row per STEP_UP decision, written in the same transaction as its inbox row. What must be
-- proven is copied from the provider at that moment.
CREATE TABLE step_up_requirements (
    id              BIGSERIAL PRIMARY KEY,
    stream_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    txn             TEXT,
    event_type      TEXT NOT NULL,
    provider_id     TEXT NOT NULL DEFAULT '',            -- '' when no usable provider was configured
    kind            TEXT NOT NULL,                       -- 'oauth2' | 'microsoft'
    acr_values      TEXT NOT NULL DEFAULT '[]',          -- JSON array: acr values or conditional access ids
    validation_mode TEXT NOT NULL DEFAULT '',
    max_age         BIGINT NOT NULL DEFAULT 0,
    since           BIGINT NOT NULL,                     -- the event time
    received_at_ms  BIGINT NOT NULL,
    UNIQUE (stream_id, jti, event_type)
);

-- Subject key -> the step-up requirements on it.
CREATE TABLE step_up_subjects (
    subject_key     TEXT NOT NULL,
    requirement_id  BIGINT NOT NULL REFERENCES step_up_requirements(id),
    PRIMARY KEY (subject_key, requirement_id)
);

-- Compatibility profiles (docs/push.md#compatibility-profiles): the dialect a stream accepts, an
-- explicit metadata URL, and the tolerances applied to each stored SET.
ALTER TABLE streams ADD COLUMN compatibility_profile TEXT NOT NULL DEFAULT 'SSF_1_0';
ALTER TABLE streams ADD COLUMN metadata_url TEXT NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN tolerances TEXT NOT NULL DEFAULT '[]';  -- JSON array of tolerance kinds
-- Subjects ssfd removed from a stream at its transmitter: events about them are acknowledged and
-- logged, not acted on, until the subject is added again.
CREATE TABLE removed_subjects (
    stream_id       TEXT NOT NULL,
    subject_key     TEXT NOT NULL,                       -- canonical key, as in inbox.subject_keys
    removed_at      BIGINT NOT NULL,
    PRIMARY KEY (stream_id, subject_key)
);
