//! Creating an application's tables, and checking those already there.

use std::fmt::Write as _;

use super::config::PostgresConfig;
use super::pool::pg_error;
use super::recorder::PostgresRecorder;
use crate::error::{Error, Result};

/// An arbitrary constant: the advisory lock es-core holds while creating tables.
const DDL_LOCK_KEY: i64 = 0x0065_732d_636f_7265;

impl PostgresRecorder {
    pub(super) fn create_table(&self) -> Result<()> {
        let quoted = &self.quoted;
        let id_type = self.id_type.as_str();
        let mut ddl = String::new();
        if self.db.schema != PostgresConfig::DEFAULT_SCHEMA {
            let _ = writeln!(ddl, "CREATE SCHEMA IF NOT EXISTS \"{}\";", self.db.schema);
        }
        // The unique constraint is the unique index on notification_id; letting
        // the server name it (and the sequence) keeps long prefixes within 63 bytes.
        let log_column = if self.with_log {
            "notification_id bigserial NOT NULL UNIQUE,"
        } else {
            ""
        };
        let _ = write!(
            ddl,
            "CREATE TABLE IF NOT EXISTS {quoted} (
                originator_id {id_type} NOT NULL,
                originator_version bigint NOT NULL,
                topic text NOT NULL,
                state bytea NOT NULL,
                {log_column}
                PRIMARY KEY (originator_id, originator_version)
            );"
        );
        if let Some(tracking) = &self.tracking {
            ddl.push_str(&tracking.ddl);
        }
        let mut connection = self.db.connection()?;
        let mut transaction = connection
            .client
            .transaction()
            .map_err(|e| pg_error("creating the PostgreSQL tables", e))?;
        // Two processes creating the same table at once can both pass IF NOT
        // EXISTS and one then fails on the catalog's unique index: a lock of
        // our own serializes the creation instead.
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK_KEY])
            .and_then(|_| transaction.batch_execute(&ddl))
            .map_err(|e| pg_error("creating the PostgreSQL tables", e))?;
        // A table made earlier keeps its column type whatever the setting says
        // now: catch a mismatch with an explicit setting (an unset one took
        // the table's type) here, by name, rather than as a driver error on
        // the first write.
        let (schema, table) = self.name.split_once('.').unwrap_or(("", &self.name));
        let found: Option<String> = transaction
            .query_opt(
                "SELECT data_type FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 AND column_name = 'originator_id'",
                &[&schema, &table],
            )
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|e| pg_error("checking the PostgreSQL tables", e))?;
        if let Some(found) = found
            && found != id_type
        {
            return Err(Error::Config {
                variable: "ORIGINATOR_ID_TYPE".into(),
                value: id_type.into(),
                expected: format!(
                    "{found}, the type of originator_id in the existing table {} \
                     (the setting chooses the type of new tables only; leave it unset to \
                     use each table's own)",
                    self.name
                ),
            });
        }
        transaction
            .commit()
            .map_err(|e| pg_error("creating the PostgreSQL tables", e))
    }
}
