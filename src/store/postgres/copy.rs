//! `ssfd db migrate-to`: copies a SQLite database (stopped daemon) into an empty PostgreSQL one,
//! table by table in one transaction: streams with their push-token hashes, inbox, ledger,
//! outbox with its attempts, audit, verification states, pending poll acks, step-up providers
//! and requirements, and removed subjects. Row ids are kept,
//! and the id sequences continue after the largest copied id.

use std::path::Path;

use rusqlite::OpenFlags;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{PgError, PgPool, PgSettings};

/// Tables in copy order (referenced before referencing).
const TABLES: &[&str] = &[
    "streams",
    "inbox",
    "outbox",
    "attempts",
    "ledger",
    "audit",
    "verification_requests",
    "pending_acks",
    "step_up_providers",
    "step_up_requirements",
    "step_up_subjects",
    "removed_subjects",
];

/// Id columns whose sequence must continue after the copied rows.
const SERIALS: &[(&str, &str)] = &[
    ("inbox", "seq"),
    ("outbox", "id"),
    ("attempts", "id"),
    ("ledger", "id"),
    ("audit", "id"),
    ("step_up_requirements", "id"),
];

/// Rows read from SQLite per round.
const CHUNK: i64 = 2000;

/// How many rows each table received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySummary {
    pub tables: Vec<(&'static str, u64)>,
}

fn sqlite_err(e: rusqlite::Error) -> PgError {
    PgError::Source(e.to_string())
}

enum Cell {
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int(v) => v,
            Cell::Bool(v) => v,
            Cell::Bytes(v) => v,
            Cell::Text(v) => v,
        }
    }
}

/// Copies the SQLite database at `sqlite` into the database `target` names, which must be empty
/// (its schema is created or brought up to date first).
pub async fn copy_from_sqlite(sqlite: &Path, target: PgSettings) -> Result<CopySummary, PgError> {
    let src = rusqlite::Connection::open_with_flags(
        sqlite,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| PgError::Source(format!("{}: {e}", sqlite.display())))?;
    let version: i64 = src
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let expected = crate::store::sqlite::SCHEMA
        .lines()
        .filter(|l| l.trim_end().strip_prefix("-- migration ").is_some())
        .count() as i64;
    if version != expected {
        return Err(PgError::Source(format!(
            "{}: schema version {version}, this ssfd copies version {expected}; start this ssfd \
             version on it once (it upgrades the file), stop it, then copy",
            sqlite.display()
        )));
    }
    let pool = PgPool::open(target).await?;
    let mut client = pool.get().await?;
    let tx = tokio_postgres::Client::transaction(&mut client).await?;
    for table in TABLES {
        let has_rows = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await?
            .get::<_, bool>(0);
        if has_rows {
            return Err(PgError::NotEmpty(table.to_string()));
        }
    }
    let mut summary = CopySummary { tables: Vec::new() };
    for table in TABLES {
        let copied = copy_table(&src, &tx, table).await?;
        summary.tables.push((table, copied));
    }
    for (table, column) in SERIALS {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                               COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
            ),
            &[],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(summary)
}

async fn copy_table(
    src: &rusqlite::Connection,
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Result<u64, PgError> {
    // The SQLite columns, typed by their PostgreSQL twins.
    let mut columns: Vec<(String, Type)> = Vec::new();
    {
        let mut stmt = src
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .map_err(sqlite_err)?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sqlite_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite_err)?;
        for name in names {
            let data_type: Option<String> = tx
                .query_opt(
                    "SELECT data_type FROM information_schema.columns
                      WHERE table_schema = current_schema() AND table_name = $1
                        AND column_name = $2",
                    &[&table, &name],
                )
                .await?
                .map(|r| r.get(0));
            let ty = match data_type.as_deref() {
                Some("bigint") => Type::INT8,
                Some("boolean") => Type::BOOL,
                Some("bytea") => Type::BYTEA,
                Some("text") => Type::TEXT,
                other => {
                    return Err(PgError::Source(format!(
                        "column {table}.{name} has no PostgreSQL counterpart ({other:?})"
                    )))
                }
            };
            columns.push((name, ty));
        }
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let types: Vec<Type> = columns.iter().map(|(_, t)| t.clone()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN BINARY",
            names.join(", ")
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    let select = format!(
        "SELECT rowid, {} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        names.join(", ")
    );
    let mut after: i64 = 0;
    loop {
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        {
            let mut stmt = src.prepare_cached(&select).map_err(sqlite_err)?;
            let mut q = stmt
                .query(rusqlite::params![after, CHUNK])
                .map_err(sqlite_err)?;
            while let Some(r) = q.next().map_err(sqlite_err)? {
                after = r.get(0).map_err(sqlite_err)?;
                let mut cells = Vec::with_capacity(types.len());
                for (i, ty) in types.iter().enumerate() {
                    let at = i + 1;
                    cells.push(if *ty == Type::INT8 {
                        Cell::Int(r.get(at).map_err(sqlite_err)?)
                    } else if *ty == Type::BOOL {
                        Cell::Bool(
                            r.get::<_, Option<i64>>(at)
                                .map_err(sqlite_err)?
                                .map(|v| v != 0),
                        )
                    } else if *ty == Type::BYTEA {
                        Cell::Bytes(r.get(at).map_err(sqlite_err)?)
                    } else {
                        Cell::Text(r.get(at).map_err(sqlite_err)?)
                    });
                }
                rows.push(cells);
            }
        }
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let values: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::as_sql).collect();
            writer.as_mut().write(&values).await?;
        }
    }
    Ok(writer.finish().await?)
}

#[cfg(test)]
mod tests {
    use super::super::streams as pg_streams;
    use super::*;
    use crate::store::Store;
    use crate::stream::Stream;

    async fn sqlite_with_rows(path: &Path) {
        let store = Store::open(path).unwrap();
        let s = Stream {
            id: "s1".into(),
            display_name: "Okta".into(),
            push_token_hash: Some([9; 32]),
            created_at: 3,
            ..Stream::default()
        };
        store.upsert_stream(s).await.unwrap();
        drop(store);
        // Rows in every table, written as the SQLite backend stores them.
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(
            "UPDATE streams SET rejected_count = 4;
             INSERT INTO inbox (stream_id, jti, iss, event_types, subject_keys,
                                raw_token, claims, received_at_ms, delivery, outcome)
             VALUES ('s1', 'j1', 'https://idp', '[]', '[\"email:a@b\"]', 't', '{}', 7,
                     'push', 'revoke'),
                    ('s1', 'j2', 'https://idp', '[]', '[]', 't', '{}', 8, 'poll',
                     'log_only');
             INSERT INTO outbox (inbox_seq, stream_id, jti, event_type, action, sink,
                                 idempotency_key, status, attempts, next_attempt_ms,
                                 created_at_ms)
             VALUES (1, 's1', 'j1', 'e', 'REVOKE_ALL', 'hook', 's1:j1:e', 'pending', 1,
                     0, 0);
             INSERT INTO attempts (outbox_id, attempt, started_at_ms, duration_ms, ok,
                                   detail)
             VALUES (1, 1, 5, 6, 0, 'HTTP 500');
             INSERT INTO ledger (subject_key, revoked_before, stream_id, jti,
                                 event_type, received_at_ms)
             VALUES ('email:a@b', 100, 's1', 'j1', 'e', 7);
             INSERT INTO audit (at_ms, stream_id, jti, event_type, subject, action)
             VALUES (7, 's1', 'j1', 'e', '{}', 'REVOKE_ALL');
             INSERT INTO verification_requests (stream_id, state, requested_at)
             VALUES ('s1', 'st', 9);
             INSERT INTO pending_acks (stream_id, jti) VALUES ('s1', 'j2');
             INSERT INTO step_up_providers (id, display_name, issuer_url, enabled, settings,
                                            created_at, updated_at)
             VALUES ('p1', 'Okta MFA', 'https://idp', 1, '{\"oauth2\":{\"acrValues\":[]}}', 1, 1);
             INSERT INTO step_up_requirements (stream_id, jti, event_type, provider_id, kind,
                                               since, received_at_ms)
             VALUES ('s1', 'j1', 'e', 'p1', 'oauth2', 6, 7);
             INSERT INTO step_up_subjects (subject_key, requirement_id) VALUES ('email:a@b', 1);
             INSERT INTO removed_subjects (stream_id, subject_key, removed_at)
             VALUES ('s1', 'email:c@d', 9);",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_sqlite_database_moves_to_an_empty_postgres_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssfd.db");
        sqlite_with_rows(&path).await;
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let settings = PgSettings::new(&db.url, None).unwrap();
        let summary = copy_from_sqlite(&path, settings.clone()).await.unwrap();
        assert_eq!(
            summary.tables,
            vec![
                ("streams", 1),
                ("inbox", 2),
                ("outbox", 1),
                ("attempts", 1),
                ("ledger", 1),
                ("audit", 1),
                ("verification_requests", 1),
                ("pending_acks", 1),
                ("step_up_providers", 1),
                ("step_up_requirements", 1),
                ("step_up_subjects", 1),
                ("removed_subjects", 1)
            ]
        );
        let pool = PgPool::new(settings.clone()).unwrap();
        let c = pool.get().await.unwrap();
        let copied = pg_streams::get(&**c, "s1").await.unwrap().unwrap();
        let original = Store::open(&path)
            .unwrap()
            .get_stream("s1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copied, original);
        assert_eq!(copied.push_token_hash, Some([9; 32]));
        assert_eq!(pg_streams::counts(&**c, "s1").await.unwrap().failed, 4);
        let r = c
            .query_one(
                "SELECT (SELECT ok FROM attempts), (SELECT subject_key FROM ledger),
                        (SELECT jti FROM pending_acks)",
                &[],
            )
            .await
            .unwrap();
        assert!(!r.get::<_, bool>(0));
        assert_eq!(r.get::<_, String>(1), "email:a@b");
        assert_eq!(r.get::<_, String>(2), "j2");
        // New rows continue after the copied ids.
        let seq: i64 = c
            .query_one(
                "INSERT INTO inbox (stream_id, jti, iss, event_types, subject_keys, raw_token,
                                    claims, received_at_ms, delivery, outcome)
                 VALUES ('s1', 'j3', 'i', '[]', '[]', 't', '{}', 9, 'push', 'stored')
                 RETURNING seq",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(seq, 3);

        // A second copy into the now non-empty database is refused and changes nothing.
        let err = copy_from_sqlite(&path, settings).await.unwrap_err();
        assert!(
            matches!(err, PgError::NotEmpty(ref t) if t == "streams"),
            "{err}"
        );
        let n: i64 = c
            .query_one("SELECT COUNT(*) FROM inbox", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
    }

    #[tokio::test]
    async fn a_missing_source_is_an_error_naming_it() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let err = copy_from_sqlite(
            Path::new("/nonexistent/ssfd.db"),
            PgSettings::new(&db.url, None).unwrap(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ssfd.db"), "{err}");
    }
}
