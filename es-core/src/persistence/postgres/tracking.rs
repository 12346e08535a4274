//! A follower's positions in its leaders' logs: the table beside an events
//! table, one row per upstream application, raised in the transaction (and
//! the group commit's savepoint) of the events derived from it.

use super::recorder::PostgresRecorder;
use crate::error::{Error, Result};
use crate::persistence::recorder::{ProcessRecorder, Tracking, TrackingRecorder};
use crate::persistence::sql::notification_id_from_sql;
use crate::persistence::stored_event::StoredEvent;

/// The statements of one tracking table.
#[derive(Debug)]
pub(super) struct TrackingTable {
    /// `schema.table`, for messages.
    name: String,
    /// The table's DDL.
    pub(super) ddl: String,
    /// Inserts a position or raises it; touches no row (0 rows changed) if
    /// the recorded one is at or above the first id the record covers (`$3`).
    pub(super) upsert_sql: String,
    select_sql: String,
}

impl TrackingTable {
    /// `table` in `schema`; both passed `checked_identifier`.
    pub(super) fn new(schema: &str, table: &str) -> Self {
        let quoted = format!("\"{schema}\".\"{table}\"");
        TrackingTable {
            name: format!("{schema}.{table}"),
            ddl: format!(
                "CREATE TABLE IF NOT EXISTS {quoted} (
                    application_name text NOT NULL PRIMARY KEY,
                    notification_id bigint NOT NULL
                );"
            ),
            upsert_sql: format!(
                "INSERT INTO {quoted} AS t (application_name, notification_id) VALUES ($1, $2) \
                 ON CONFLICT (application_name) DO UPDATE SET notification_id = EXCLUDED.notification_id \
                 WHERE t.notification_id < $3"
            ),
            select_sql: format!("SELECT notification_id FROM {quoted} WHERE application_name = $1"),
        }
    }
}

/// A tracking record as the statements take it, its id checked.
pub(super) struct TrackingParam {
    pub(super) application_name: String,
    pub(super) notification_id: i64,
    /// [`Tracking::lowest`].
    pub(super) lowest_id: i64,
    tracking: Tracking,
}

impl TrackingParam {
    fn of(tracking: &Tracking) -> Result<Self> {
        let to_sql = |id: u64| {
            i64::try_from(id).map_err(|_| {
                Error::Corrupt(format!(
                    "notification id {id} of {:?} exceeds the store's 64-bit signed integer range",
                    tracking.application_name
                ))
            })
        };
        Ok(TrackingParam {
            application_name: tracking.application_name.clone(),
            notification_id: to_sql(tracking.notification_id)?,
            lowest_id: to_sql(tracking.lowest())?,
            tracking: tracking.clone(),
        })
    }

    /// The refusal of this record, at or below the recorded one.
    pub(super) fn conflict(&self) -> Error {
        Error::TrackingConflict {
            application_name: self.tracking.application_name.clone(),
            notification_id: self.tracking.notification_id,
        }
    }
}

impl PostgresRecorder {
    fn tracking_table(&self) -> Result<&TrackingTable> {
        self.tracking.as_ref().ok_or_else(|| {
            Error::database(
                "tracking",
                format!(
                    "{} is a snapshots table; a follower tracks its position with its events \
                     recorder (PostgresRecorder::events)",
                    self.table()
                ),
            )
        })
    }

    /// Whether the position of `save`'s tracking record is recorded, for a
    /// commit whose reply was lost (a save with events is checked by them).
    pub(super) fn tracking_recorded(&self, tracking: Option<&TrackingParam>) -> Result<bool> {
        let Some(tracking) = tracking else {
            return Ok(true);
        };
        Ok(self
            .max_tracking_id(&tracking.tracking.application_name)?
            .is_some_and(|max| max >= tracking.tracking.notification_id))
    }
}

impl TrackingRecorder for PostgresRecorder {
    fn insert_tracking(&self, tracking: &Tracking) -> Result<()> {
        self.insert_events_with_tracking(&[], tracking).map(drop)
    }

    fn max_tracking_id(&self, application_name: &str) -> Result<Option<u64>> {
        let table = self.tracking_table()?;
        let operation = "reading a tracking record";
        let row = self.db.read(operation, |connection| {
            let statement = connection.prepare(&table.select_sql)?;
            connection
                .client
                .query_opt(&statement, &[&application_name])
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0).map_err(|e| {
            Error::Corrupt(format!(
                "the tracking record of {application_name:?} in {}: the stored notification_id \
                 does not decode ({e})",
                table.name
            ))
        })?;
        notification_id_from_sql(id).map(Some)
    }
}

impl ProcessRecorder for PostgresRecorder {
    fn insert_events_with_tracking(
        &self,
        events: &[StoredEvent],
        tracking: &Tracking,
    ) -> Result<Vec<u64>> {
        self.tracking_table()?;
        self.submit(events, Some(TrackingParam::of(tracking)?))
    }
}
