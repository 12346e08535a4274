//! A follower's positions in its leaders' logs: one row per upstream
//! application, written in the transaction of the events derived from it.

use rusqlite::Connection;

use super::{BatchError, SqliteRecorder};
use crate::error::{Error, Result};
use crate::persistence::recorder::{ProcessRecorder, Tracking, TrackingRecorder};
use crate::persistence::sql::notification_id_from_sql;
use crate::persistence::stored_event::StoredEvent;

/// The table, created with the events table (as the Python library's Django
/// integration does), so that any application can follow another.
pub(super) const TRACKING_DDL: &str = "CREATE TABLE IF NOT EXISTS notification_tracking (
    application_name TEXT NOT NULL PRIMARY KEY,
    notification_id INTEGER NOT NULL
) WITHOUT ROWID;";

/// Inserts the position, or raises it; a row at or above the first id the
/// record covers (`?3`, never above `?2`) is left alone, so that no row
/// changes.
const UPSERT: &str = "INSERT INTO notification_tracking (application_name, notification_id) \
     VALUES (?1, ?2) \
     ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id \
     WHERE notification_tracking.notification_id < ?3";

/// Records `tracking` on `connection`, inside the save's transaction or savepoint.
pub(super) fn record(connection: &Connection, tracking: &Tracking) -> Result<(), BatchError> {
    let to_sql = |id: u64| {
        i64::try_from(id).map_err(|_| {
            BatchError::Refused(Error::Corrupt(format!(
                "notification id {id} of {:?} exceeds the store's 64-bit signed integer range",
                tracking.application_name
            )))
        })
    };
    let (id, lowest) = (
        to_sql(tracking.notification_id)?,
        to_sql(tracking.lowest())?,
    );
    let changed = connection
        .prepare_cached(UPSERT)
        .and_then(|mut upsert| {
            upsert.execute(rusqlite::params![tracking.application_name, id, lowest])
        })
        .map_err(|e| BatchError::Database("recording a tracking record", e))?;
    if changed == 0 {
        return Err(BatchError::Refused(Error::TrackingConflict {
            application_name: tracking.application_name.clone(),
            notification_id: tracking.notification_id,
        }));
    }
    Ok(())
}

impl TrackingRecorder for SqliteRecorder {
    fn insert_tracking(&self, tracking: &Tracking) -> Result<()> {
        self.write(&[], Some(tracking)).map(drop)
    }

    fn max_tracking_id(&self, application_name: &str) -> Result<Option<u64>> {
        let max: Option<i64> = self.db.read(|connection| {
            let mut select = connection.prepare_cached(
                "SELECT notification_id FROM notification_tracking WHERE application_name = ?1",
            )?;
            let mut rows = select.query([application_name])?;
            rows.next()?.map(|row| row.get(0)).transpose()
        })?;
        max.map(notification_id_from_sql).transpose()
    }
}

impl ProcessRecorder for SqliteRecorder {
    fn insert_events_with_tracking(
        &self,
        events: &[StoredEvent],
        tracking: &Tracking,
    ) -> Result<Vec<u64>> {
        self.write(events, Some(tracking))
    }
}
