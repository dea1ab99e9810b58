//! PostgreSQL schema migrations: the `-- migration N` blocks of `schema.sql` in this directory,
//! applied in order and recorded in `schema_migrations`. An advisory lock makes replicas that
//! start at the same moment take turns, so each migration runs exactly once.

use super::PgError;

/// The PostgreSQL schema, with `-- migration N` markers.
pub const SCHEMA: &str = include_str!("schema.sql");

/// Advisory lock key held while migrating ("ssfd" in ASCII, then "mig").
const MIGRATION_LOCK: i64 = 0x7373_6664_006d_6967;

/// Brings the schema to the newest version and returns how many migrations this call applied.
/// Everything happens in one transaction under a transaction-level advisory lock: a second
/// replica waits, then finds nothing left to do; a failed migration leaves no partial schema.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<usize, PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version       BIGINT PRIMARY KEY,
             applied_at_ms BIGINT NOT NULL
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let all = migrations();
    let known = all.last().map_or(0, |m| m.0);
    if current > known {
        return Err(PgError::SchemaTooNew {
            found: current,
            known,
        });
    }
    let mut applied = 0;
    for (version, sql) in all {
        if version <= current {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms)
             VALUES ($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
            &[&version],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    migrations().last().map_or(0, |m| m.0)
}

fn migrations() -> Vec<(i64, &'static str)> {
    crate::store::split_migrations(SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::super::{PgPool, PgSettings};
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one() {
        let m = migrations();
        assert_eq!(m.first().map(|m| m.0), Some(1));
        for (i, (v, _)) in m.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1);
        }
    }

    #[test]
    fn every_sqlite_table_has_a_postgres_twin() {
        let tables = |sql: &str| -> Vec<String> {
            sql.lines()
                .filter_map(|l| l.strip_prefix("CREATE TABLE "))
                .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
                .collect()
        };
        let pg = tables(SCHEMA);
        for t in tables(crate::store::sqlite::SCHEMA) {
            assert!(
                pg.contains(&t),
                "table {t} is missing from the PostgreSQL schema"
            );
        }
    }

    async fn pool() -> (ssfd_testkit::pg::PgDatabase, PgPool) {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let pool = PgPool::new(PgSettings::new(&db.url, None).unwrap()).unwrap();
        (db, pool)
    }

    #[tokio::test]
    async fn migrates_once_and_again_is_a_no_op() {
        let (_db, pool) = pool().await;
        let mut c = pool.get().await.unwrap();
        assert_eq!(migrate(&mut c).await.unwrap(), migrations().len());
        assert_eq!(migrate(&mut c).await.unwrap(), 0);
        let v: i64 = c
            .query_one("SELECT MAX(version) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, latest_version());
    }

    #[tokio::test]
    async fn two_replicas_starting_at_once_migrate_once() {
        let (_db, pool) = pool().await;
        let mut runs = Vec::new();
        for _ in 0..4 {
            let pool = pool.clone();
            runs.push(tokio::spawn(async move {
                let mut c = pool.get().await.unwrap();
                migrate(&mut c).await.unwrap()
            }));
        }
        let mut applied = Vec::new();
        for r in runs {
            applied.push(r.await.unwrap());
        }
        applied.sort();
        assert_eq!(applied, vec![0, 0, 0, migrations().len()]);
        let c = pool.get().await.unwrap();
        let rows: i64 = c
            .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, migrations().len() as i64);
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let (_db, pool) = pool().await;
        let mut c = pool.get().await.unwrap();
        migrate(&mut c).await.unwrap();
        c.execute(
            "INSERT INTO schema_migrations VALUES ($1, 0)",
            &[&(latest_version() + 1)],
        )
        .await
        .unwrap();
        let err = migrate(&mut c).await.unwrap_err();
        assert!(matches!(err, PgError::SchemaTooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade ssfd"), "{err}");
    }
}
