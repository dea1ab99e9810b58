//! Outbox claims shared between replicas: a replica takes due actions with `FOR UPDATE SKIP
//! LOCKED` and holds each under a lease (`claimed_by`, `lease_until_ms`). A claim whose lease ran
//! out (its replica died mid-attempt) is due again, so another replica retries it with the same
//! idempotency key; a result is recorded only by the replica that still holds the claim.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::PgError;
use crate::clock::UnixMillis;
use crate::store::outbox::{ActionRow, AttemptResult};
use crate::store::stats::OutboxCounts;

/// Claims up to `limit` actions that are due at `now` (pending with `next_attempt_ms <= now`, or
/// running under a lapsed lease) for `holder`, each for `lease`, and returns them with their
/// attempt number. Rows another replica is claiming at the same moment are skipped, not waited
/// for. Also returns when the earliest action left pending comes due.
pub async fn claim_due<C: GenericClient>(
    client: &C,
    holder: &str,
    limit: usize,
    now: UnixMillis,
    lease: Duration,
) -> Result<(Vec<ActionRow>, Option<UnixMillis>), PgError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "WITH due AS (
                 SELECT id FROM outbox
                  WHERE (status = 'pending' AND next_attempt_ms <= $2)
                     OR (status = 'running' AND lease_until_ms < ssfd_now_ms())
                  ORDER BY next_attempt_ms, id
                  LIMIT $3
                  FOR UPDATE SKIP LOCKED)
             UPDATE outbox o
                SET status = 'running', attempts = o.attempts + 1, claimed_by = $1,
                    lease_until_ms = ssfd_now_ms() + $4
               FROM due, inbox i
              WHERE o.id = due.id AND i.seq = o.inbox_seq
             RETURNING o.id, o.stream_id, o.jti, o.event_type, o.action, o.sink,
                       o.idempotency_key, o.attempts, o.budget_from, i.claims,
                       i.received_at_ms, i.subject_keys, o.next_attempt_ms",
            &[&holder, &now, &limit, &lease_ms],
        )
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        let keys: String = r.get(11);
        claimed.push(ActionRow {
            id: r.get(0),
            stream_id: r.get(1),
            jti: r.get(2),
            event_type: r.get(3),
            action: r.get(4),
            sink: r.get(5),
            idempotency_key: r.get(6),
            attempt: r.get(7),
            budget_from: r.get(8),
            claims: r.get(9),
            received_at_ms: r.get(10),
            subject_keys: serde_json::from_str(&keys)
                .map_err(|e| PgError::Corrupt(format!("inbox.subject_keys: {e}")))?,
            step_up: None,
        });
    }
    for row in claimed.iter_mut().filter(|r| r.action == "STEP_UP") {
        row.step_up =
            super::step_up::requirement_of(client, &row.stream_id, &row.jti, &row.event_type)
                .await?;
    }
    // The UPDATE's result order is not the claim order; attempts start earliest-due first.
    claimed.sort_by_key(|a| a.id);
    let later: Option<UnixMillis> = client
        .query_one(
            "SELECT MIN(next_attempt_ms) FROM outbox WHERE status = 'pending'",
            &[],
        )
        .await?
        .get(0);
    Ok((claimed, later))
}

/// Records attempts made under `holder`'s claims: every attempt gets its `attempts` row (it
/// happened), but the action's state changes only where `holder` still holds the claim. Returns
/// how many actions changed state; the others were taken over after their lease lapsed.
pub async fn record_attempts<C: GenericClient>(
    client: &C,
    holder: &str,
    results: &[&AttemptResult],
    now_ms: UnixMillis,
) -> Result<usize, PgError> {
    let insert = client
        .prepare(
            "INSERT INTO attempts (outbox_id, attempt, started_at_ms, duration_ms, ok, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    let update = client
        .prepare(
            "UPDATE outbox SET status = $3, next_attempt_ms = COALESCE($4, next_attempt_ms),
                    finished_at_ms = $5, last_error = $6, claimed_by = NULL,
                    lease_until_ms = NULL
              WHERE id = $1 AND status = 'running' AND claimed_by = $2",
        )
        .await?;
    // Not an attempt (its sink is not configured now): back to pending, nothing recorded or
    // counted, as on SQLite.
    let park = client
        .prepare(
            "UPDATE outbox SET status = 'pending',
                    next_attempt_ms = COALESCE($3, next_attempt_ms), last_error = $4,
                    attempts = GREATEST(attempts - 1, 0), claimed_by = NULL,
                    lease_until_ms = NULL
              WHERE id = $1 AND status = 'running' AND claimed_by = $2",
        )
        .await?;
    let mut changed = 0;
    for r in results {
        if r.parked {
            changed += client
                .execute(
                    &park,
                    &[&r.outbox_id, &holder, &r.next_attempt_ms, &r.detail],
                )
                .await? as usize;
            continue;
        }
        client
            .execute(
                &insert,
                &[
                    &r.outbox_id,
                    &r.attempt,
                    &r.started_ms,
                    &r.duration_ms,
                    &r.ok,
                    &r.detail,
                ],
            )
            .await?;
        let last_error = if r.ok { "" } else { r.detail.as_str() };
        let finished_at_ms = (r.status != "pending").then_some(now_ms);
        changed += client
            .execute(
                &update,
                &[
                    &r.outbox_id,
                    &holder,
                    &r.status,
                    &r.next_attempt_ms,
                    &finished_at_ms,
                    &last_error,
                ],
            )
            .await? as usize;
    }
    Ok(changed)
}

/// On start: actions this replica's previous run left running are due again at `now` (other
/// replicas' claims are left to their leases).
pub async fn recover<C: GenericClient>(
    client: &C,
    holder: &str,
    now: UnixMillis,
) -> Result<u64, PgError> {
    Ok(client
        .execute(
            "UPDATE outbox SET status = 'pending', next_attempt_ms = $2, claimed_by = NULL,
                    lease_until_ms = NULL
              WHERE status = 'running' AND claimed_by = $1",
            &[&holder, &now],
        )
        .await?)
}

/// Actions waiting or running, and dead ones (for `/metrics`).
pub async fn counts<C: GenericClient>(client: &C) -> Result<OutboxCounts, PgError> {
    let r = client
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE status IN ('pending', 'running')),
                    COUNT(*) FILTER (WHERE status = 'dead')
               FROM outbox",
            &[],
        )
        .await?;
    Ok(OutboxCounts {
        depth: r.try_get(0)?,
        dead: r.try_get(1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    pub(crate) async fn seed(pool: &PgPool, n: i64) {
        let c = pool.get().await.unwrap();
        c.batch_execute(
            "INSERT INTO streams (id, display_name, issuer_url, delivery_method,
                 session_revoked_action, credential_change_action, credential_compromise_action,
                 account_disabled_action, created_at, updated_at)
             VALUES ('s1', 'n', 'https://idp', 'push', 'REVOKE_ALL', 'REVOKE_ALL', 'REVOKE_ALL',
                     'REVOKE_ALL', 0, 0)",
        )
        .await
        .unwrap();
        for i in 0..n {
            let jti = format!("j{i}");
            let seq: i64 = c
                .query_one(
                    "INSERT INTO inbox (stream_id, jti, iss, event_types, subject_keys, raw_token,
                                        claims, received_at_ms, delivery, outcome)
                     VALUES ('s1', $1, 'https://idp', '[]', '[\"email:a@b\"]', 't', '{}', 1,
                             'push', 'revoke') RETURNING seq",
                    &[&jti],
                )
                .await
                .unwrap()
                .get(0);
            c.execute(
                "INSERT INTO outbox (inbox_seq, stream_id, jti, event_type, action, sink,
                                     idempotency_key, status, next_attempt_ms, created_at_ms)
                 VALUES ($1, 's1', $2, 'e', 'REVOKE_ALL', 'hook', 's1:' || $2 || ':e',
                         'pending', 0, 0)",
                &[&seq, &jti],
            )
            .await
            .unwrap();
        }
    }

    async fn pool() -> (ssfd_testkit::pg::PgDatabase, PgPool) {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::open(PgSettings::new(&db.url, None).unwrap())
            .await
            .unwrap();
        (db, pool)
    }

    fn done(row: &ActionRow) -> AttemptResult {
        AttemptResult {
            outbox_id: row.id,
            attempt: row.attempt,
            started_ms: 1,
            duration_ms: 1,
            ok: true,
            detail: "204".into(),
            status: "done",
            next_attempt_ms: None,
            parked: false,
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn concurrent_replicas_claim_disjoint_actions() {
        let (_db, pool) = pool().await;
        seed(&pool, 200).await;
        let mut workers = Vec::new();
        for r in 0..4 {
            let pool = pool.clone();
            workers.push(tokio::spawn(async move {
                let holder = format!("replica-{r}");
                let mut mine = Vec::new();
                loop {
                    let c = pool.get().await.unwrap();
                    let (rows, _) = claim_due(&**c, &holder, 7, 10, LONG).await.unwrap();
                    if rows.is_empty() {
                        return mine;
                    }
                    let results: Vec<_> = rows.iter().map(done).collect();
                    assert_eq!(
                        record_attempts(&**c, &holder, &results.iter().collect::<Vec<_>>(), 2)
                            .await
                            .unwrap(),
                        rows.len()
                    );
                    mine.extend(rows.into_iter().map(|r| r.id));
                }
            }));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "an action was claimed twice");
        assert_eq!(all.len(), 200);
        let c = pool.get().await.unwrap();
        let (attempts, done): (i64, i64) = {
            let r = c
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM attempts),
                            (SELECT COUNT(*) FROM outbox WHERE status = 'done' AND attempts = 1)",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!((attempts, done), (200, 200));
        assert_eq!(counts(&**c).await.unwrap(), OutboxCounts::default());
    }

    #[tokio::test]
    async fn a_lapsed_claim_is_retried_elsewhere_with_the_same_key() {
        let (_db, pool) = pool().await;
        seed(&pool, 1).await;
        let c = pool.get().await.unwrap();
        let (a, later) = claim_due(&**c, "replica-a", 10, 10, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!((a.len(), a[0].attempt, later), (1, 1, None));
        // While the claim is live nobody else gets the action.
        assert!(claim_due(&**c, "replica-b", 10, 10, LONG)
            .await
            .unwrap()
            .0
            .is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (b, _) = claim_due(&**c, "replica-b", 10, 10, LONG).await.unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].idempotency_key, a[0].idempotency_key);
        assert_eq!(b[0].attempt, 2);
        // The replica that lost its claim records its attempt but does not decide the action.
        assert_eq!(
            record_attempts(&**c, "replica-a", &[&done(&a[0])], 2)
                .await
                .unwrap(),
            0
        );
        let status: String = c
            .query_one("SELECT status FROM outbox", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, "running");
        assert_eq!(
            record_attempts(&**c, "replica-b", &[&done(&b[0])], 2)
                .await
                .unwrap(),
            1
        );
        let r = c
            .query_one(
                "SELECT status, claimed_by, (SELECT COUNT(*) FROM attempts) FROM outbox",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.get::<_, String>(0), "done");
        assert_eq!(r.get::<_, Option<String>>(1), None);
        assert_eq!(r.get::<_, i64>(2), 2);
    }

    #[tokio::test]
    async fn a_restarted_replica_recovers_only_its_own_claims() {
        let (_db, pool) = pool().await;
        seed(&pool, 2).await;
        let c = pool.get().await.unwrap();
        assert_eq!(
            claim_due(&**c, "replica-a", 1, 10, LONG)
                .await
                .unwrap()
                .0
                .len(),
            1
        );
        let (_, later) = claim_due(&**c, "replica-b", 1, 10, LONG).await.unwrap();
        assert_eq!(later, None);
        assert_eq!(recover(&**c, "replica-a", 50).await.unwrap(), 1);
        let (again, later) = claim_due(&**c, "replica-c", 10, 40, LONG).await.unwrap();
        assert!(again.is_empty(), "due only from the recovery time");
        assert_eq!(later, Some(50));
        let (again, _) = claim_due(&**c, "replica-c", 10, 50, LONG).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempt, 2);
    }
}
