//! The write of one SET on PostgreSQL, in one transaction: the inbox row, the control event's
//! bookkeeping, the ledger, audit and outbox rows of its plan, and its pending poll ack. The
//! caller answers the transmitter only after this returns (the COMMIT has happened).
//!
//! The inbox row is inserted first: when two replicas store the same SET at once, the second
//! insert waits for the first transaction and then finds the row, so exactly one of them writes
//! the plan (one action) and both report success.

use tokio_postgres::GenericClient;

use super::{inbox, poll_acks, PgError};
use crate::act::{idempotency_key, Decision};
use crate::clock::UnixMillis;
use crate::store::inbox::NewInboxRow;
use crate::stream::RevocationAction;

/// What a control event changes on its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A verification event; with a state, it must answer an outstanding request.
    Verification { state: Option<String> },
    /// The transmitter changed the stream's status.
    StreamUpdated { status: String, reason: String },
}

/// Everything one SET's transaction writes.
#[derive(Debug, Clone)]
pub struct SetRecord {
    pub row: NewInboxRow,
    /// The subject as received, for the audit rows.
    pub subject: String,
    pub control: Option<Control>,
    pub decisions: Vec<Decision>,
    /// A polled SET: its ack is owed, duplicates included.
    pub pending_ack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    New,
    Duplicate,
    /// A verification event echoing a state ssfd never asked for (or already saw answered).
    BadState,
}

/// Stores `rec` and commits; nothing is written unless the outcome is `New` (or `Duplicate` with
/// its pending ack).
pub async fn store_set(
    client: &mut tokio_postgres::Client,
    rec: &SetRecord,
    now_ms: UnixMillis,
) -> Result<SetOutcome, PgError> {
    let tx = client.transaction().await?;
    let stream_id = rec.row.stream_id.as_str();
    let jti = rec.row.jti.as_str();
    let Some(seq) = inbox::insert(&tx, &rec.row).await? else {
        if rec.pending_ack {
            poll_acks::record(&tx, stream_id, jti).await?;
        }
        tx.commit().await?;
        return Ok(SetOutcome::Duplicate);
    };
    let now = now_ms / 1000;
    match &rec.control {
        Some(Control::Verification { state }) => {
            if let Some(state) = state {
                let answered = tx
                    .execute(
                        "UPDATE verification_requests SET answered_at = $3
                          WHERE stream_id = $1 AND state = $2 AND answered_at IS NULL",
                        &[&stream_id, state, &now],
                    )
                    .await?;
                if answered == 0 {
                    // Dropping the transaction rolls the inbox row back.
                    return Ok(SetOutcome::BadState);
                }
            }
            tx.execute(
                "UPDATE streams SET last_verified_at = $2 WHERE id = $1",
                &[&stream_id, &now],
            )
            .await?;
        }
        Some(Control::StreamUpdated { status, reason }) => {
            tx.execute(
                "UPDATE streams SET transmitter_status = $2, transmitter_status_reason = $3
                  WHERE id = $1",
                &[&stream_id, status, reason],
            )
            .await?;
        }
        None => {}
    }
    record_plan(&tx, seq, rec, now_ms).await?;
    if rec.pending_ack {
        poll_acks::record(&tx, stream_id, jti).await?;
    }
    tx.commit().await?;
    Ok(SetOutcome::New)
}

/// The ledger entries (every subject key of each REVOKE_ALL), an audit row per decision and an
/// outbox row per sink, as `act::record` writes them on SQLite.
async fn record_plan<C: GenericClient>(
    client: &C,
    inbox_seq: i64,
    rec: &SetRecord,
    now_ms: UnixMillis,
) -> Result<(), PgError> {
    let stream_id = rec.row.stream_id.as_str();
    let jti = rec.row.jti.as_str();
    for d in &rec.decisions {
        if d.action == RevocationAction::RevokeAll {
            for key in &rec.row.subject_keys {
                client
                    .execute(
                        "INSERT INTO ledger (subject_key, revoked_before, stream_id, jti,
                                             event_type, received_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        &[
                            key,
                            &d.revoked_before,
                            &stream_id,
                            &jti,
                            &d.event_type,
                            &now_ms,
                        ],
                    )
                    .await?;
            }
        }
        client
            .execute(
                "INSERT INTO audit (at_ms, stream_id, jti, event_type, subject, action, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &now_ms,
                    &stream_id,
                    &jti,
                    &d.event_type,
                    &rec.subject,
                    &d.action.as_short(),
                    &d.reason,
                ],
            )
            .await?;
        let key = idempotency_key(stream_id, jti, &d.event_type);
        for sink in &d.sinks {
            client
                .execute(
                    "INSERT INTO outbox (inbox_seq, stream_id, jti, event_type, action, sink,
                                         idempotency_key, status, next_attempt_ms,
                                         created_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)
                     ON CONFLICT DO NOTHING",
                    &[
                        &inbox_seq,
                        &stream_id,
                        &jti,
                        &d.event_type,
                        &d.action.as_short(),
                        sink,
                        &key,
                        &now_ms,
                    ],
                )
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{streams, PgPool, PgSettings};
    use super::*;

    fn record(jti: &str) -> SetRecord {
        SetRecord {
            row: NewInboxRow {
                stream_id: "s1".into(),
                jti: jti.into(),
                iss: "https://idp".into(),
                txn: None,
                event_types: vec!["https://e/credential-change".into()],
                subject_keys: vec!["email:bob@example.com".into(), "iss_sub:i:bob".into()],
                raw_token: "t".into(),
                claims: "{}".into(),
                received_at_ms: 1_000,
                delivery: "poll",
                outcome: "revoke".into(),
                decision: "REVOKE_ALL".into(),
            },
            subject: "{\"format\":\"email\"}".into(),
            control: None,
            decisions: vec![Decision {
                event_type: "https://e/credential-change".into(),
                action: RevocationAction::RevokeAll,
                reason: "policy".into(),
                revoked_before: 900,
                sinks: vec!["".into(), "hook".into()],
            }],
            pending_ack: true,
        }
    }

    async fn two_replicas() -> (ssfd_testkit::pg::PgDatabase, PgPool, PgPool) {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let settings = PgSettings::new(&db.url, None).unwrap();
        let a = PgPool::open(settings.clone()).await.unwrap();
        let b = PgPool::open(settings).await.unwrap();
        let stream = crate::stream::Stream {
            id: "s1".into(),
            ..Default::default()
        };
        streams::upsert(&**a.get().await.unwrap(), &stream)
            .await
            .unwrap();
        (db, a, b)
    }

    async fn count(pool: &PgPool, table: &str) -> i64 {
        let c = pool.get().await.unwrap();
        c.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn the_same_set_on_two_replicas_at_once_is_one_row_and_one_action() {
        let (_db, a, b) = two_replicas().await;
        for round in 0..20 {
            let jti = format!("j{round}");
            let (ra, rb) = (record(&jti), record(&jti));
            let (pa, pb) = (a.clone(), b.clone());
            let (x, y) = tokio::join!(
                async move { store_set(&mut pa.get().await.unwrap(), &ra, 1_000).await },
                async move { store_set(&mut pb.get().await.unwrap(), &rb, 1_000).await },
            );
            let mut outcomes = [x.unwrap(), y.unwrap()];
            outcomes.sort_by_key(|o| *o != SetOutcome::New);
            assert_eq!(outcomes, [SetOutcome::New, SetOutcome::Duplicate], "{jti}");
        }
        assert_eq!(count(&a, "inbox").await, 20);
        assert_eq!(count(&a, "outbox").await, 40, "two sinks per SET, once");
        assert_eq!(
            count(&a, "ledger").await,
            40,
            "two subject keys per SET, once"
        );
        assert_eq!(count(&a, "audit").await, 20);
        assert_eq!(count(&a, "pending_acks").await, 20);
    }

    #[tokio::test]
    async fn a_verification_with_an_unknown_state_writes_nothing() {
        let (_db, a, _b) = two_replicas().await;
        let mut rec = record("v1");
        rec.decisions.clear();
        rec.pending_ack = false;
        rec.control = Some(Control::Verification {
            state: Some("never-asked".into()),
        });
        let mut c = a.get().await.unwrap();
        assert_eq!(
            store_set(&mut c, &rec, 5_000).await.unwrap(),
            SetOutcome::BadState
        );
        assert_eq!(count(&a, "inbox").await, 0);
        c.execute(
            "INSERT INTO verification_requests (stream_id, state, requested_at)
             VALUES ('s1', 'asked', 1)",
            &[],
        )
        .await
        .unwrap();
        rec.control = Some(Control::Verification {
            state: Some("asked".into()),
        });
        assert_eq!(
            store_set(&mut c, &rec, 5_000).await.unwrap(),
            SetOutcome::New
        );
        let s = streams::get(&**c, "s1").await.unwrap().unwrap();
        assert_eq!(s.last_verified_at, Some(5));
        // The same SET again is a duplicate, not a bad state.
        assert_eq!(
            store_set(&mut c, &rec, 6_000).await.unwrap(),
            SetOutcome::Duplicate
        );
    }
}
