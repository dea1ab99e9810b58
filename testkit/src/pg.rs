//! A fresh PostgreSQL database per test on the server named by `SSFD_TEST_PG_URL` (default: the
//! loopback server with trust authentication), so that tests are isolated and may run in
//! parallel. The server must answer: a PostgreSQL test fails rather than skip without it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// The server used when `SSFD_TEST_PG_URL` is not set. TLS is off: the loopback server's
/// certificate is self-signed.
pub const DEFAULT_BASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// Prefix of every database this module creates.
const PREFIX: &str = "ssfd_test_";

/// The maintenance-database URL tests connect to first.
pub fn base_url() -> String {
    std::env::var("SSFD_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
}

/// The TCP address of the server [`base_url`] names (URL form, numeric host or `localhost`).
pub fn server_addr() -> std::net::SocketAddr {
    let url = base_url();
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .expect("SSFD_TEST_PG_URL must be a postgres:// URL for this test");
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    let with_port = with_port.replace("localhost:", "127.0.0.1:");
    with_port
        .parse()
        .unwrap_or_else(|e| panic!("{with_port}: not a socket address ({e})"))
}

/// `url` with its database name replaced (URL form) or set (key=value form).
pub fn url_with_dbname(url: &str, dbname: &str) -> String {
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (main, query) = match rest.split_once('?') {
                Some((m, q)) => (m, Some(q)),
                None => (rest, None),
            };
            let authority = main.split('/').next().unwrap_or(main);
            let mut out = format!("{scheme}{authority}/{dbname}");
            if let Some(q) = query {
                out.push('?');
                out.push_str(q);
            }
            return out;
        }
    }
    format!("{url} dbname={dbname}")
}

/// A database that exists for one test; dropped (best effort) when this value is.
#[derive(Debug)]
pub struct PgDatabase {
    /// Connection URL of this database.
    pub url: String,
    pub name: String,
    base: String,
}

impl PgDatabase {
    /// [`PgDatabase::url`] with its host and port replaced by `addr` (e.g. a
    /// [`crate::tcp_proxy::TcpProxy`] in front of the server). Needs the URL form.
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = self.url.strip_prefix(scheme) {
                let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let user = authority.rsplit_once('@').map(|(u, _)| u);
                return match user {
                    Some(u) => format!("{scheme}{u}@{addr}{tail}"),
                    None => format!("{scheme}{addr}{tail}"),
                };
            }
        }
        panic!("SSFD_TEST_PG_URL must be a postgres:// URL for this test");
    }
}

async fn admin_client(base: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {base} does not answer ({e}); start it (.ci/run does) or set \
                 SSFD_TEST_PG_URL"
            )
        });
    tokio::spawn(connection);
    client
}

/// Creates a uniquely named, empty database and returns its URL.
pub async fn fresh_pg_database() -> PgDatabase {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SWEEP: Once = Once::new();
    let base = base_url();
    let client = admin_client(&base).await;
    let mut sweep = false;
    SWEEP.call_once(|| sweep = true);
    if sweep {
        drop_orphans(&client).await;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "{PREFIX}{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    PgDatabase {
        url: url_with_dbname(&base, &name),
        name,
        base,
    }
}

/// Drops the databases left by test processes that no longer run (killed, crashed).
async fn drop_orphans(client: &tokio_postgres::Client) {
    let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'ssfd\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let base = self.base.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&base, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_replace_the_url_path() {
        assert_eq!(
            url_with_dbname(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "t1"
            ),
            "postgres://postgres@127.0.0.1:5432/t1?sslmode=disable"
        );
        assert_eq!(
            url_with_dbname("postgresql://u@h", "t1"),
            "postgresql://u@h/t1"
        );
        assert_eq!(
            url_with_dbname("host=/run/postgresql user=postgres", "t1"),
            "host=/run/postgresql user=postgres dbname=t1"
        );
    }

    #[tokio::test]
    async fn a_fresh_database_exists_until_dropped() {
        let db = fresh_pg_database().await;
        let other = fresh_pg_database().await;
        assert_ne!(db.name, other.name);
        let admin = admin_client(&base_url()).await;
        let exists = |name: String| {
            let admin = &admin;
            async move {
                admin
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                    .await
                    .unwrap()
                    .is_some()
            }
        };
        assert!(exists(db.name.clone()).await);
        let name = db.name.clone();
        drop(db);
        assert!(!exists(name).await);
        assert!(exists(other.name.clone()).await);
    }
}
