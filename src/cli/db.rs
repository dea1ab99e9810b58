//! `ssfd db`: database operations run beside a stopped daemon, such as moving the SQLite
//! database to PostgreSQL.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::store::postgres::{copy::copy_from_sqlite, PgSettings};

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    #[command(
        about = "Copy the SQLite database into an empty PostgreSQL database",
        long_about = "Copy the SQLite database (storage.path, or --from) into an empty PostgreSQL \
database: streams with their push-token hashes, inbox, ledger, outbox with its attempts, audit, \
verification states and pending poll acks, in one transaction. Stop the daemon first. A target \
that already holds rows is refused and left unchanged.

Examples:
  ssfd db migrate-to 'postgres://ssfd@db.example/ssfd?sslmode=require' \\
      --password-file /etc/ssfd/pg.password
  ssfd db migrate-to 'host=/run/postgresql user=ssfd dbname=ssfd' --from /var/lib/ssfd/ssfd.db"
    )]
    MigrateTo {
        /// The PostgreSQL database, as storage.url takes it (no password in it).
        #[arg(value_name = "URL")]
        url: String,
        /// File holding the PostgreSQL password (credential:NAME works as in the configuration).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// The SQLite file to copy [default: storage.path of the configuration].
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

pub fn run(cmd: DbCommand, config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        DbCommand::MigrateTo {
            url,
            password_file,
            from,
        } => {
            let source = from.unwrap_or_else(|| config.storage.path.clone());
            let settings = PgSettings::new(&url, password_file.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let summary = rt.block_on(copy_from_sqlite(&source, settings.clone()))?;
            writeln!(out, "Copied {} to {}:", source.display(), settings.target())?;
            for (table, rows) in summary.tables {
                writeln!(out, "  {table:<22} {rows:>10} rows")?;
            }
            writeln!(
                out,
                "Set [storage] url = \"{url}\" (and password_file) in place of path, then start ssfd."
            )?;
            Ok(())
        }
    }
}
