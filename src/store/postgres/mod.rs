//! The PostgreSQL backend's building blocks: connection settings and pool, schema migrations,
//! leases between replicas and the change channel that tells every replica about a stream
//! change. Several ssfd replicas share one database through these.

pub(in crate::store) mod backend;
pub mod copy;
pub mod inbox;
pub mod lease;
pub mod ledger;
pub mod migrate;
pub mod notify;
pub mod outbox;
pub mod poll_acks;
pub mod replica;
pub mod set_write;
pub mod settings;
pub mod step_up;
pub mod streams;
pub mod subjects;
pub mod verification;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

pub use settings::{check_url, PgSettings};

/// Connections a replica keeps open at most.
const POOL_SIZE: usize = 16;
/// How long a caller waits for a free connection before the database counts as unavailable.
const POOL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A setting is wrong; the message names the key.
    #[error("{0}")]
    Settings(String),
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A failure of a step shared with the SQLite backend (a stored value that does not decode).
    #[error(transparent)]
    Store(Box<crate::store::StoreError>),
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the target database is not empty (table {0} has rows); copy only into an empty database"
    )]
    NotEmpty(String),
    /// Reading the SQLite database a copy starts from.
    #[error("source database: {0}")]
    Source(String),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("the database schema is at version {found}, newer than this ssfd knows ({known}); upgrade ssfd")]
    SchemaTooNew { found: i64, known: i64 },
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Db(e),
            other => PgError::Unavailable(other.to_string()),
        }
    }
}

/// A replica's pool of connections to the shared database.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    settings: std::sync::Arc<PgSettings>,
}

impl PgPool {
    /// Builds the pool; no connection is made until the first use.
    pub fn new(settings: PgSettings) -> Result<PgPool, PgError> {
        let manager = Manager::from_config(
            settings.driver_config().clone(),
            settings.tls()?,
            ManagerConfig {
                // A connection that broke while idle (database restart) is noticed on checkout.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Settings(format!("connection pool: {e}")))?;
        Ok(PgPool {
            pool,
            settings: std::sync::Arc::new(settings),
        })
    }

    /// Builds the pool and brings the schema up to date (see [`migrate::migrate`]).
    pub async fn open(settings: PgSettings) -> Result<PgPool, PgError> {
        let pool = PgPool::new(settings)?;
        let mut client = pool.get().await?;
        migrate::migrate(&mut client).await?;
        Ok(pool)
    }

    pub async fn get(&self) -> Result<deadpool_postgres::Object, PgError> {
        Ok(self.pool.get().await?)
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// True when the database answers a trivial query (used by `/readyz`).
    pub async fn reachable(&self) -> bool {
        match self.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}

/// Opens a dedicated connection outside the pool (for LISTEN) and drives it on a task; the
/// receiver yields each notification's payload and closes when the connection ends.
pub(crate) async fn connect_listening(
    settings: &PgSettings,
) -> Result<
    (
        tokio_postgres::Client,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ),
    PgError,
> {
    use futures_util::StreamExt;
    let mut config = settings.driver_config().clone();
    // Named apart from the pooled connections, for an operator looking at pg_stat_activity.
    config.application_name("ssfd listener");
    let (client, mut connection) = config.connect(settings.tls()?).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL listening connection ended");
                    return;
                }
            }
        }
    });
    Ok((client, rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssfd_testkit::tcp_proxy::TcpProxy;

    async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn the_pool_reports_an_outage_and_recovers_without_a_restart() {
        let db = ssfd_testkit::pg::fresh_pg_database().await;
        let proxy = TcpProxy::start(ssfd_testkit::pg::server_addr()).await;
        let pool = PgPool::open(PgSettings::new(&db.url_via(proxy.addr()), None).unwrap())
            .await
            .unwrap();
        assert!(pool.reachable().await);
        proxy.cut();
        wait_until("the outage shows", async || !pool.reachable().await).await;
        let err = pool
            .get()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("PostgreSQL"), "{err}");
        proxy.restore();
        wait_until("the database is back", async || pool.reachable().await).await;
        let c = pool.get().await.unwrap();
        let n: i64 = c
            .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, migrate::latest_version());
    }
}
