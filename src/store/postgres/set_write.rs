//! The write of one SET on PostgreSQL, in one transaction: the inbox row, the control event's
//! bookkeeping, the ledger, audit and outbox rows of its plan, and its pending poll ack. The
//! caller answers the transmitter only after this returns (the COMMIT has happened).
//!
//! The inbox row is inserted first: when two replicas store the same SET at once, the second
//! insert waits for the first transaction and then finds the row, so exactly one of them writes
//! the plan (one action) and both report success.

use tokio_postgres::GenericClient;

use super::{inbox, poll_acks, PgError};
use crate::clock::UnixMillis;
use crate::store::set::{ControlWrite, DecisionWrite, SetStored, SetWrite};

/// Stores `rec` and commits; nothing is written unless the outcome is `New` (or `Duplicate` with
/// its pending ack).
pub async fn store_set(
    client: &mut tokio_postgres::Client,
    rec: &SetWrite,
) -> Result<SetStored, PgError> {
    let now_ms = rec.inbox.received_at_ms;
    let tx = client.transaction().await?;
    let stream_id = rec.inbox.stream_id.as_str();
    let jti = rec.inbox.jti.as_str();
    let Some(seq) = inbox::insert(&tx, &rec.inbox).await? else {
        if rec.pending_ack {
            poll_acks::record(&tx, stream_id, jti).await?;
        }
        tx.commit().await?;
        return Ok(SetStored::Duplicate);
    };
    let now = now_ms / 1000;
    match &rec.control {
        Some(ControlWrite::Verification { state }) => {
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
                    return Ok(SetStored::BadState);
                }
            }
            tx.execute(
                "UPDATE streams SET last_verified_at = $2 WHERE id = $1",
                &[&stream_id, &now],
            )
            .await?;
        }
        Some(ControlWrite::StreamUpdated { status, reason }) => {
            tx.execute(
                "UPDATE streams SET transmitter_status = $2, transmitter_status_reason = $3
                  WHERE id = $1",
                &[&stream_id, status, reason],
            )
            .await?;
        }
        None => {}
    }
    record_decisions(
        &tx,
        seq,
        stream_id,
        jti,
        rec.inbox.txn.as_deref(),
        &rec.subject,
        &rec.inbox.subject_keys,
        &rec.decisions,
        now_ms,
    )
    .await?;
    if rec.pending_ack {
        poll_acks::record(&tx, stream_id, jti).await?;
    }
    tx.commit().await?;
    Ok(SetStored::New)
}

/// The ledger entries (every subject key of each REVOKE_ALL), a step-up requirement on them for
/// each STEP_UP, an audit row per decision and an outbox row per sink, as the SQLite backend
/// writes them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_decisions<C: GenericClient>(
    client: &C,
    inbox_seq: i64,
    stream_id: &str,
    jti: &str,
    txn: Option<&str>,
    subject: &str,
    subject_keys: &[String],
    decisions: &[DecisionWrite],
    now_ms: UnixMillis,
) -> Result<(), PgError> {
    for d in decisions {
        if let Some(step_up) = &d.step_up {
            super::step_up::record_requirement(
                client,
                stream_id,
                jti,
                txn,
                &d.event_type,
                step_up,
                subject_keys,
                now_ms,
            )
            .await?;
        }
        if let Some(revoked_before) = d.revoked_before {
            for key in subject_keys {
                client
                    .execute(
                        "INSERT INTO ledger (subject_key, revoked_before, stream_id, jti,
                                             event_type, received_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        &[
                            key,
                            &revoked_before,
                            &stream_id,
                            &jti,
                            &d.event_type,
                            &now_ms,
                        ],
                    )
                    .await
                    .map_err(PgError::from)?;
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
                    &subject,
                    &d.action,
                    &d.reason,
                ],
            )
            .await
            .map_err(PgError::from)?;
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
                        &d.action,
                        sink,
                        &d.idempotency_key,
                        &now_ms,
                    ],
                )
                .await
                .map_err(PgError::from)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{streams, PgPool, PgSettings};
    use super::*;
    use crate::store::inbox::NewInboxRow;

    fn record(jti: &str) -> SetWrite {
        SetWrite {
            inbox: NewInboxRow {
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
                tolerances: vec![],
            },
            subject: "{\"format\":\"email\"}".into(),
            control: None,
            decisions: vec![DecisionWrite {
                event_type: "https://e/credential-change".into(),
                action: "REVOKE_ALL",
                reason: "policy".into(),
                revoked_before: Some(900),
                idempotency_key: format!("s1:{jti}:https://e/credential-change"),
                sinks: vec!["".into(), "hook".into()],
                step_up: None,
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
                async move { store_set(&mut pa.get().await.unwrap(), &ra).await },
                async move { store_set(&mut pb.get().await.unwrap(), &rb).await },
            );
            let mut outcomes = [x.unwrap(), y.unwrap()];
            outcomes.sort_by_key(|o| *o != SetStored::New);
            assert_eq!(outcomes, [SetStored::New, SetStored::Duplicate], "{jti}");
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
        rec.inbox.received_at_ms = 5_000;
        rec.decisions.clear();
        rec.pending_ack = false;
        rec.control = Some(ControlWrite::Verification {
            state: Some("never-asked".into()),
        });
        let mut c = a.get().await.unwrap();
        assert_eq!(store_set(&mut c, &rec).await.unwrap(), SetStored::BadState);
        assert_eq!(count(&a, "inbox").await, 0);
        c.execute(
            "INSERT INTO verification_requests (stream_id, state, requested_at)
             VALUES ('s1', 'asked', 1)",
            &[],
        )
        .await
        .unwrap();
        rec.control = Some(ControlWrite::Verification {
            state: Some("asked".into()),
        });
        assert_eq!(store_set(&mut c, &rec).await.unwrap(), SetStored::New);
        let s = streams::get(&**c, "s1").await.unwrap().unwrap();
        assert_eq!(s.last_verified_at, Some(5));
        // The same SET again is a duplicate, not a bad state.
        assert_eq!(store_set(&mut c, &rec).await.unwrap(), SetStored::Duplicate);
    }
}
