//! What every PostgreSQL test shares: where the server is, whether it is
//! there, and tables that are dropped when the test is done.
//!
//! The server is `ES_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it cannot be reached, a test
//! fails under `CI=true`, and otherwise says plainly that it was skipped.

#![allow(dead_code)] // Each test target uses its own part of this module.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use es_core::Uuid;
use es_core::persistence::PostgresConfig;

/// The server the tests use when `ES_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn url() -> String {
    std::env::var("ES_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// The test server's configuration, or `None` (after saying so) if it cannot
/// be reached and this is not CI. Under `CI=true` an unreachable server fails
/// the test.
pub fn server(test: &str) -> Option<PostgresConfig> {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let url = url();
    let reachable = REACHABLE.get_or_init(|| {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        config.connect_timeout(Duration::from_secs(5));
        let mut client =
            config
                .connect(postgres::NoTls)
                .map_err(|e| match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                })?;
        client.simple_query("SELECT 1").map_err(|e| e.to_string())?;
        Ok(())
    });
    match reachable {
        Ok(()) => {
            Some(PostgresConfig::from_url(&url).expect("ES_TEST_POSTGRES_URL is a valid URL"))
        }
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {url} is not reachable and CI=true: {why}")
        }
        Err(why) => {
            // Straight to stderr: the test harness swallows `eprintln!` of a
            // passing test, and a skip must not look like a pass.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: PostgreSQL at {url} is not reachable ({why}); \
                 start it or set ES_TEST_POSTGRES_URL (CI=true makes this a failure)"
            );
            None
        }
    }
}

/// A table prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("es_test_{}", Uuid::new_v4().simple())
}

/// Drops the tables of `prefix` (in `schema`) when dropped.
pub struct DropTables {
    pub schema: String,
    pub prefix: String,
}

impl DropTables {
    pub fn new(prefix: &str) -> Self {
        DropTables {
            schema: "public".into(),
            prefix: prefix.into(),
        }
    }
}

impl Drop for DropTables {
    fn drop(&mut self) {
        // Names made by `unique_prefix`, so safe to write into the statement.
        let sql = format!(
            "DROP TABLE IF EXISTS \"{schema}\".\"{prefix}_events\", \"{schema}\".\"{prefix}_snapshots\"",
            schema = self.schema,
            prefix = self.prefix
        );
        match postgres::Client::connect(&url(), postgres::NoTls) {
            Ok(mut client) => {
                if let Err(error) = client.batch_execute(&sql) {
                    eprintln!("could not drop the test tables of {}: {error}", self.prefix);
                }
            }
            Err(error) => eprintln!("could not drop the test tables of {}: {error}", self.prefix),
        }
    }
}

/// Drops, when dropped, every table of `schema` whose name starts with
/// `start`: for tables whose exact names the test does not choose.
pub struct DropTablesStartingWith {
    pub schema: String,
    pub start: String,
}

impl Drop for DropTablesStartingWith {
    fn drop(&mut self) {
        let result = postgres::Client::connect(&url(), postgres::NoTls).and_then(|mut client| {
            let names: Vec<String> = client
                .query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND starts_with(tablename, $2)",
                    &[&self.schema, &self.start],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            for name in names {
                // Names read from the catalog, quoted with their quotes doubled.
                client.batch_execute(&format!(
                    "DROP TABLE IF EXISTS \"{}\".\"{}\"",
                    self.schema.replace('"', "\"\""),
                    name.replace('"', "\"\"")
                ))?;
            }
            Ok(())
        });
        if let Err(error) = result {
            eprintln!(
                "could not drop the test tables starting with {}: {error}",
                self.start
            );
        }
    }
}
