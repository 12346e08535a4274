//! Listening to a SQLite database: this process's commits wake a listener at
//! once; other processes' are seen by `PRAGMA data_version`, which changes
//! on a connection whenever another connection has committed, checked every
//! few milliseconds on a connection of the listener's own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::SqliteDatabase;
use crate::error::{Error, Result};
use crate::persistence::listen::{Listener, SignalListener};

/// How often a listener asks whether another process has committed: the
/// longest a save of another process waits to be noticed. The question reads
/// the shared memory of the write-ahead log, not the file.
pub const SQLITE_LISTEN_POLL_INTERVAL: Duration = Duration::from_millis(10);

pub(super) struct SqliteListener {
    in_process: SignalListener,
    /// `None` for an in-memory database, which no other process can open.
    other_processes: Option<DataVersion>,
}

struct DataVersion {
    connection: Connection,
    seen: i64,
}

impl DataVersion {
    fn open(db: &SqliteDatabase) -> Result<Option<Self>> {
        let Some(connection) = db.open_reader()? else {
            return Ok(None);
        };
        let seen = Self::read(&connection)?;
        Ok(Some(DataVersion { connection, seen }))
    }

    fn read(connection: &Connection) -> Result<i64> {
        connection
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| Error::database("reading SQLite's data_version", e))
    }

    /// Whether another connection committed since last asked.
    fn changed(&mut self) -> Result<bool> {
        let version = Self::read(&self.connection)?;
        let changed = version != self.seen;
        self.seen = version;
        Ok(changed)
    }
}

impl SqliteListener {
    pub(super) fn new(db: &Arc<SqliteDatabase>) -> Result<Self> {
        Ok(SqliteListener {
            in_process: SignalListener::new(Arc::clone(&db.recorded)),
            other_processes: DataVersion::open(db)?,
        })
    }
}

impl Listener for SqliteListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let Some(other_processes) = &mut self.other_processes else {
            return Ok(self.in_process.moved(timeout));
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Both are asked each time round, so that neither keeps a change
            // to say later: a wake-up is then the first news of both.
            let in_process = self.in_process.moved(left.min(SQLITE_LISTEN_POLL_INTERVAL));
            if other_processes.changed()? || in_process {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }
}
