//! The SQLite recorder: the embedded default, through rusqlite and its bundled SQLite.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, TransactionBehavior, params_from_iter, types::Value,
};

mod listen;
mod open;
mod tracking;
mod view;

use super::group_commit::GroupCommit;
pub use listen::SQLITE_LISTEN_POLL_INTERVAL;
pub use open::SqliteOpenError;
pub(crate) use open::empty_path;
pub use view::SqliteView;

use super::listen::{Listener, Signal};
use super::recorder::{
    AggregateRecorder, ApplicationRecorder, EventQuery, Tracking, collect_visited,
};
use super::sql::{
    clamp, notification_from_sql, notification_id_from_sql, undecodable, version_from_sql,
    version_to_sql,
};
use super::stored_event::{Notification, StoredEvent};
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};

/// Table of the events and the notification log.
const EVENTS_TABLE: &str = "stored_events";
/// Table of the snapshots.
const SNAPSHOTS_TABLE: &str = "snapshots";
use tracking::TRACKING_DDL;

/// How hard a commit works to survive a power loss, as SQLite's `synchronous` pragma.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is synced to disk before the save returns: an acknowledged
    /// save survives a power loss. The default.
    #[default]
    Full,
    /// Commits are synced at checkpoints only: faster, still never corrupt, but the
    /// last saves acknowledged before a power loss (not a process crash) may be lost.
    Normal,
}

impl Synchronous {
    /// Reads `FULL` or `NORMAL` (any case), as `SQLITE_SYNCHRONOUS` is written.
    ///
    /// ```
    /// use es_core::persistence::Synchronous;
    /// assert_eq!(Synchronous::parse("normal"), Some(Synchronous::Normal));
    /// assert_eq!(Synchronous::parse("OFF"), None);
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "FULL" => Some(Synchronous::Full),
            "NORMAL" => Some(Synchronous::Normal),
            _ => None,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "PRAGMA synchronous = FULL",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// One SQLite database, shared by the recorders of an application.
///
/// A file database runs in WAL mode: one writer connection, behind a lock,
/// and a small pool of reader connections that read while the writer writes.
/// Saves from several threads that arrive while one is being written are
/// committed together in the next transaction (group commit), each in its own
/// savepoint, so one save's conflict never undoes another's.
/// An in-memory database (`":memory:"`) is a single connection.
///
/// ```
/// use es_core::persistence::SqliteDatabase;
/// let dir = tempfile::tempdir().unwrap();
/// let db = SqliteDatabase::open(dir.path().join("events.db"), std::time::Duration::from_secs(5))?;
/// assert!(!db.is_in_memory());
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct SqliteDatabase {
    path: Option<PathBuf>,
    lock_timeout: Duration,
    writer: Mutex<Connection>,
    commits: GroupCommit<Batch, Vec<u64>>,
    readers: Mutex<Vec<Connection>>,
    /// Bumped after each commit of events, for listeners in this process.
    recorded: Arc<Signal>,
}

impl std::fmt::Debug for SqliteDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDatabase")
            .field("path", &self.path)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

/// The most reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

impl SqliteDatabase {
    /// Opens (creating if need be) the database file at `path`, or an in-memory
    /// database if `path` is `":memory:"`. `lock_timeout` is how long a write waits
    /// for another process's lock before failing. Commits are
    /// [`Synchronous::Full`].
    ///
    /// An empty `path` is an [`Error::Config`] about `SQLITE_DBNAME`. A path that
    /// is a directory, a file that is not a SQLite database, a missing
    /// directory or a permission problem is an [`Error::Database`] whose
    /// source is a [`SqliteOpenError`] naming the path.
    pub fn open(path: impl AsRef<Path>, lock_timeout: Duration) -> Result<Arc<Self>> {
        Self::open_with(path, lock_timeout, Synchronous::Full)
    }

    /// As [`open`](Self::open), with the durability of commits chosen.
    ///
    /// ```
    /// use es_core::persistence::{SqliteDatabase, Synchronous};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("events.db");
    /// let db = SqliteDatabase::open_with(path, std::time::Duration::from_secs(5), Synchronous::Normal)?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn open_with(
        path: impl AsRef<Path>,
        lock_timeout: Duration,
        synchronous: Synchronous,
    ) -> Result<Arc<Self>> {
        let path = path.as_ref();
        if path == Path::new(":memory:") {
            return Self::open_in_memory();
        }
        open::check_path(path)?;
        let writer = Connection::open(path)
            .map_err(|e| open::failed(path, "opening the SQLite database", e))?;
        configure(&writer, lock_timeout)?;
        // WAL lets readers read while the writer writes, and survives a crash of the
        // process mid-commit: a commit is in the log whole or not at all. It is
        // also the first statement that reads the file.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| open::failed(path, "switching the SQLite database to WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::database(
                "switching the SQLite database to WAL",
                format!("journal mode stayed {mode:?}"),
            ));
        }
        // Said outright rather than left to the build's default, which a
        // distribution's SQLite may set lower.
        writer
            .execute_batch(synchronous.pragma())
            .map_err(|e| Error::database("setting SQLite's synchronous mode", e))?;
        Ok(Arc::new(SqliteDatabase {
            path: Some(path.to_owned()),
            lock_timeout,
            writer: Mutex::new(writer),
            commits: GroupCommit::default(),
            readers: Mutex::new(Vec::new()),
            recorded: Arc::default(),
        }))
    }

    /// A private in-memory database, gone when the last recorder using it is dropped.
    ///
    /// ```
    /// let db = es_core::persistence::SqliteDatabase::open_in_memory()?;
    /// assert!(db.is_in_memory());
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn open_in_memory() -> Result<Arc<Self>> {
        let writer = Connection::open_in_memory()
            .map_err(|e| Error::database("opening an in-memory SQLite database", e))?;
        configure(&writer, Duration::ZERO)?;
        Ok(Arc::new(SqliteDatabase {
            path: None,
            lock_timeout: Duration::ZERO,
            writer: Mutex::new(writer),
            commits: GroupCommit::default(),
            readers: Mutex::new(Vec::new()),
            recorded: Arc::default(),
        }))
    }

    /// Whether this is an in-memory database.
    pub fn is_in_memory(&self) -> bool {
        self.path.is_none()
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held rolled its transaction back as it unwound.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on a reader connection (the writer's, for an in-memory database).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.read_with(|connection| read(connection).map_err(reading))
    }

    /// Runs `sql` (statements separated by `;`) on the writer connection,
    /// outside any transaction: for the crate's other layers' tables.
    #[cfg(feature = "replication")]
    pub(crate) fn execute_batch(&self, operation: &'static str, sql: &str) -> Result<()> {
        self.writer()
            .execute_batch(sql)
            .map_err(|e| Error::database(operation, e))
    }

    /// Runs `work` in an immediate transaction of the writer connection, so
    /// it queues with the application's saves, and commits it, or rolls it
    /// back if `work` fails: for the crate's other layers (a replica's
    /// copies), whose errors `E` wrap the store's.
    #[cfg(feature = "replication")]
    pub(crate) fn in_transaction<E: From<Error>>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut connection = self.writer();
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::database("beginning a transaction", e))?;
        // Dropping the transaction on an error rolls it back.
        work(&transaction)?;
        transaction
            .commit()
            .map_err(|e| Error::database("committing a transaction", e))?;
        Ok(())
    }

    /// [`read`](Self::read), for reading that fails with errors of its own.
    fn read_with<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            return read(&self.writer());
        };
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => Self::open_reader_of(path, self.lock_timeout)?,
        };
        let result = read(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(connection);
        }
        result
    }
}

impl SqliteDatabase {
    /// A new reader connection of the database file, or `None` for an
    /// in-memory database (whose only connection is the writer's).
    fn open_reader(&self) -> Result<Option<Connection>> {
        self.path
            .as_deref()
            .map(|path| Self::open_reader_of(path, self.lock_timeout))
            .transpose()
    }

    fn open_reader_of(path: &Path, lock_timeout: Duration) -> Result<Connection> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| Error::database("opening a SQLite reader", e))?;
        configure(&connection, lock_timeout)?;
        Ok(connection)
    }
}

fn reading(error: rusqlite::Error) -> Error {
    Error::database("reading", error)
}

fn configure(connection: &Connection, lock_timeout: Duration) -> Result<()> {
    connection
        .busy_timeout(lock_timeout)
        .map_err(|e| Error::database("setting the SQLite lock timeout", e))?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// A recorder over one table of a [`SqliteDatabase`]: the events table (with the
/// notification log) or the snapshots table.
///
/// Each insert is one `BEGIN IMMEDIATE` transaction; statements are prepared once
/// per connection and reused.
///
/// ```
/// use es_core::persistence::{AggregateRecorder, ApplicationRecorder, SqliteDatabase, SqliteRecorder, StoredEvent};
/// let recorder = SqliteRecorder::events(SqliteDatabase::open_in_memory()?, true)?;
/// let event = StoredEvent {
///     originator_id: uuid::Uuid::new_v4().into(), originator_version: 1, topic: "T".into(), state: vec![1],
/// };
/// assert_eq!(recorder.insert_events(&[event.clone()])?, [1]);
/// assert!(recorder.insert_events(&[event]).unwrap_err().is_conflict());
/// assert_eq!(recorder.max_notification_id()?, Some(1));
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SqliteRecorder {
    db: Arc<SqliteDatabase>,
    table: &'static str,
    insert_sql: Arc<str>,
    with_log: bool,
}

impl SqliteRecorder {
    /// The database the recorder writes to, for tables kept beside its own.
    #[cfg(feature = "replication")]
    pub(crate) fn database(&self) -> &Arc<SqliteDatabase> {
        &self.db
    }

    /// The recorder of events and the notification log, and of a follower's
    /// positions in its leaders' logs (it is a
    /// [`ProcessRecorder`](crate::persistence::ProcessRecorder)). Creates
    /// its tables (`stored_events`, `notification_tracking`) if
    /// `create_table` and they do not exist yet.
    pub fn events(db: Arc<SqliteDatabase>, create_table: bool) -> Result<Self> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
                notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
                originator_id TEXT NOT NULL,
                originator_version INTEGER NOT NULL,
                topic TEXT NOT NULL,
                state BLOB NOT NULL,
                UNIQUE (originator_id, originator_version)
            );
            CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_topic ON {EVENTS_TABLE} (topic, notification_id);
            {TRACKING_DDL}"
        );
        Self::new(db, EVENTS_TABLE, true, create_table.then_some(ddl))
    }

    /// The recorder of snapshots. Creates its table if `create_table` and it does
    /// not exist yet.
    pub fn snapshots(db: Arc<SqliteDatabase>, create_table: bool) -> Result<Self> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {SNAPSHOTS_TABLE} (
                originator_id TEXT NOT NULL,
                originator_version INTEGER NOT NULL,
                topic TEXT NOT NULL,
                state BLOB NOT NULL,
                PRIMARY KEY (originator_id, originator_version)
            ) WITHOUT ROWID;"
        );
        Self::new(db, SNAPSHOTS_TABLE, false, create_table.then_some(ddl))
    }

    fn new(
        db: Arc<SqliteDatabase>,
        table: &'static str,
        with_log: bool,
        ddl: Option<String>,
    ) -> Result<Self> {
        if let Some(ddl) = ddl {
            db.writer()
                .execute_batch(&ddl)
                .map_err(|e| Error::database("creating the SQLite tables", e))?;
        }
        // AUTOINCREMENT never reuses an id, even after deletes: a follower that has
        // seen id n can trust that nothing new will ever appear at or below it.
        let insert_sql = format!(
            "INSERT INTO {table} (originator_id, originator_version, topic, state) VALUES (?1, ?2, ?3, ?4)"
        );
        Ok(SqliteRecorder {
            db,
            table,
            insert_sql: insert_sql.into(),
            with_log,
        })
    }
}

impl SqliteRecorder {
    /// Records `events` and `tracking` in the next group's transaction.
    fn write(&self, events: &[StoredEvent], tracking: Option<&Tracking>) -> Result<Vec<u64>> {
        let batch = Batch {
            insert_sql: Arc::clone(&self.insert_sql),
            with_log: self.with_log,
            events: events.to_vec(),
            tracking: tracking.cloned(),
        };
        let ids = self
            .db
            .commits
            .submit(batch, |batches| write_group(&mut self.db.writer(), batches))?;
        if !ids.is_empty() {
            self.db.recorded.bump();
        }
        Ok(ids)
    }
}

fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// Writes the batches of one group in one transaction, each in a savepoint of its
/// own when there are several: a batch that conflicts is rolled back alone and
/// gets its [`Error::Conflict`]; the others commit. Any other failure fails the
/// whole group, since SQLite may already have rolled the transaction back.
fn write_group(connection: &mut Connection, batches: &[Batch]) -> Vec<Result<Vec<u64>>> {
    let fail_all = |operation: &'static str, error: rusqlite::Error| {
        let error = Arc::new(error);
        batches
            .iter()
            .map(|_| Err(Error::database(operation, Arc::clone(&error))))
            .collect()
    };
    let mut transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate)
    {
        Ok(transaction) => transaction,
        Err(e) => return fail_all("beginning a write transaction", e),
    };
    let mut results = Vec::with_capacity(batches.len());
    if let [batch] = batches {
        match insert_batch(&transaction, batch) {
            Ok(ids) => results.push(Ok(ids)),
            // Dropping the transaction rolls it back.
            Err(BatchError::Refused(error)) => return vec![Err(error)],
            Err(BatchError::Database(operation, e)) => return fail_all(operation, e),
        }
    } else {
        for batch in batches {
            let savepoint = match transaction.savepoint() {
                Ok(savepoint) => savepoint,
                Err(e) => return fail_all("starting a savepoint", e),
            };
            match insert_batch(&savepoint, batch) {
                Ok(ids) => match savepoint.commit() {
                    Ok(()) => results.push(Ok(ids)),
                    Err(e) => return fail_all("releasing a savepoint", e),
                },
                // Dropping the savepoint rolls back this batch only.
                Err(BatchError::Refused(error)) => results.push(Err(error)),
                Err(BatchError::Database(operation, e)) => return fail_all(operation, e),
            }
        }
        if results.iter().all(Result::is_err) {
            return results;
        }
    }
    match transaction.commit() {
        Ok(()) => results,
        Err(e) => fail_all("committing events", e),
    }
}

/// Events to insert into one table in one save, as queued for the group commit.
struct Batch {
    /// The table's insert statement.
    insert_sql: Arc<str>,
    /// Whether the table keeps the notification log (ids are returned).
    with_log: bool,
    events: Vec<StoredEvent>,
    /// The follower's position to record with the events, if any.
    tracking: Option<Tracking>,
}

enum BatchError {
    /// This batch alone cannot be written (a conflict, or a version out of range).
    Refused(Error),
    /// The database failed: the whole group fails.
    Database(&'static str, rusqlite::Error),
}

fn insert_batch(connection: &Connection, batch: &Batch) -> Result<Vec<u64>, BatchError> {
    let mut insert = connection
        .prepare_cached(&batch.insert_sql)
        .map_err(|e| BatchError::Database("preparing the insert", e))?;
    let mut ids = Vec::with_capacity(if batch.with_log {
        batch.events.len()
    } else {
        0
    });
    for event in &batch.events {
        // The column is TEXT: the id's canonical text, which reads back as the
        // same id (a UUID as the UUID).
        let version = version_to_sql(&event.originator_id, event.originator_version)
            .map_err(BatchError::Refused)?;
        let inserted = event.originator_id.with_str(|id| {
            insert.execute(rusqlite::params![id, version, event.topic, event.state])
        });
        match inserted {
            Ok(_) => {}
            Err(e) if is_constraint_violation(&e) => {
                return Err(BatchError::Refused(Error::Conflict {
                    originator_id: event.originator_id.clone(),
                    originator_version: event.originator_version,
                }));
            }
            Err(e) => return Err(BatchError::Database("inserting events", e)),
        }
        if batch.with_log {
            let id = connection.last_insert_rowid();
            ids.push(notification_id_from_sql(id).map_err(BatchError::Refused)?);
        }
    }
    if let Some(tracking) = &batch.tracking {
        tracking::record(connection, tracking)?;
    }
    Ok(ids)
}

impl AggregateRecorder for SqliteRecorder {
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.write(events, None)
    }

    fn select_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>> {
        collect_visited(|visit| self.visit_events(originator_id, query, visit))
    }

    /// Steps through the rows, each decoded and visited before the next is
    /// read. For an in-memory database this holds its one connection, so
    /// `visit` must not use the same database.
    fn visit_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
        visit: &mut dyn FnMut(StoredEvent) -> Result<()>,
    ) -> Result<()> {
        let mut sql = format!(
            "SELECT originator_version, topic, state FROM {} WHERE originator_id = ?1",
            self.table
        );
        let mut params = vec![Value::Text(originator_id.to_string())];
        if let Some(gt) = query.gt {
            params.push(Value::Integer(clamp(gt)));
            let _ = write!(sql, " AND originator_version > ?{}", params.len());
        }
        if let Some(lte) = query.lte {
            params.push(Value::Integer(clamp(lte)));
            let _ = write!(sql, " AND originator_version <= ?{}", params.len());
        }
        sql.push_str(if query.desc {
            " ORDER BY originator_version DESC"
        } else {
            " ORDER BY originator_version"
        });
        if let Some(limit) = query.limit {
            params.push(Value::Integer(clamp(limit)));
            let _ = write!(sql, " LIMIT ?{}", params.len());
        }
        self.db.read_with(|connection| {
            let mut statement = connection.prepare_cached(&sql).map_err(reading)?;
            let mut rows = statement
                .query(params_from_iter(&params))
                .map_err(reading)?;
            while let Some(row) = rows.next().map_err(reading)? {
                visit(self.event_from_row(originator_id, row)?)?;
            }
            Ok(())
        })
    }
}

impl SqliteRecorder {
    /// One of `originator_id`'s events from a row of (version, topic, state):
    /// a column that does not decode is an [`Error::Corrupt`] naming the event.
    fn event_from_row(
        &self,
        originator_id: &OriginatorId,
        row: &rusqlite::Row<'_>,
    ) -> Result<StoredEvent> {
        let version: i64 = row.get(0).map_err(|e| {
            undecodable(
                format_args!("an event of {originator_id}"),
                self.table,
                "originator_version",
                e,
            )
        })?;
        let name = || format!("event {originator_id} version {version}");
        let topic: String = row
            .get(1)
            .map_err(|e| undecodable(name(), self.table, "topic", e))?;
        let state: Vec<u8> = row
            .get(2)
            .map_err(|e| undecodable(name(), self.table, "state", e))?;
        Ok(StoredEvent {
            originator_id: originator_id.clone(),
            originator_version: version_from_sql(originator_id, version)?,
            topic,
            state,
        })
    }

    /// A notification from a row of (id, originator id, version, topic,
    /// state), each column checked as in [`event_from_row`](Self::event_from_row).
    fn notification_from_row(&self, row: &rusqlite::Row<'_>) -> Result<Notification> {
        let id: i64 = row
            .get(0)
            .map_err(|e| undecodable("a notification", self.table, "notification_id", e))?;
        let name = format!("notification {id}");
        let originator_id: String = row
            .get(1)
            .map_err(|e| undecodable(&name, self.table, "originator_id", e))?;
        // Ids are checked when they are made, so one that does not parse
        // was written by something else: name it, do not panic.
        let originator_id = OriginatorId::text(&originator_id).map_err(|error| {
            Error::Corrupt(format!(
                "{name}: stored originator id is not valid: {error}"
            ))
        })?;
        let name = format!("notification {id} (an event of {originator_id})");
        let version: i64 = row
            .get(2)
            .map_err(|e| undecodable(&name, self.table, "originator_version", e))?;
        let name = format!("notification {id} (event {originator_id} version {version})");
        let topic: String = row
            .get(3)
            .map_err(|e| undecodable(&name, self.table, "topic", e))?;
        let state: Vec<u8> = row
            .get(4)
            .map_err(|e| undecodable(&name, self.table, "state", e))?;
        notification_from_sql(id, originator_id, version, topic, state)
    }
}

impl ApplicationRecorder for SqliteRecorder {
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        stop: Option<u64>,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        let mut sql = format!(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} \
             WHERE notification_id >= ?1",
            self.table
        );
        let mut params = vec![Value::Integer(clamp(start))];
        if let Some(stop) = stop {
            params.push(Value::Integer(clamp(stop)));
            let _ = write!(sql, " AND notification_id <= ?{}", params.len());
        }
        if !topics.is_empty() {
            sql.push_str(" AND topic IN (");
            for (i, topic) in topics.iter().enumerate() {
                params.push(Value::Text((*topic).to_owned()));
                let _ = write!(sql, "{}?{}", if i == 0 { "" } else { ", " }, params.len());
            }
            sql.push(')');
        }
        params.push(Value::Integer(clamp(limit)));
        let _ = write!(sql, " ORDER BY notification_id LIMIT ?{}", params.len());
        self.db.read_with(|connection| {
            let mut statement = connection.prepare_cached(&sql).map_err(reading)?;
            let mut rows = statement
                .query(params_from_iter(&params))
                .map_err(reading)?;
            let mut notifications = Vec::new();
            while let Some(row) = rows.next().map_err(reading)? {
                notifications.push(self.notification_from_row(row)?);
            }
            Ok(notifications)
        })
    }

    fn max_notification_id(&self) -> Result<Option<u64>> {
        let sql = format!("SELECT MAX(notification_id) FROM {}", self.table);
        let max: Option<i64> = self.db.read(|connection| {
            connection
                .prepare_cached(&sql)?
                .query_row([], |row| row.get(0))
        })?;
        max.map(notification_id_from_sql).transpose()
    }

    /// Woken at once by this process's commits, and within
    /// [`SQLITE_LISTEN_POLL_INTERVAL`] by other processes'.
    fn listen(&self) -> Result<Box<dyn Listener>> {
        Ok(Box::new(listen::SqliteListener::new(&self.db)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_id_that_is_not_valid_is_an_error_naming_it_not_a_panic() {
        let db = SqliteDatabase::open_in_memory().expect("open");
        let recorder = SqliteRecorder::events(db.clone(), true).expect("recorder");
        // Rows written by something other than this crate, with ids it would refuse.
        db.writer()
            .execute_batch(&format!(
                "INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state) \
                 VALUES ('', 1, 'T', x''), ('ok' || char(0) || 'not', 1, 'T', x'')"
            ))
            .expect("insert");
        let error = recorder
            .select_notifications(1, 10, None, &[])
            .expect_err("an empty id");
        let message = error.to_string();
        assert!(matches!(error, Error::Corrupt(_)), "{message}");
        assert!(
            message.contains("notification 1") && message.contains("empty"),
            "{message}"
        );
        let error = recorder
            .select_notifications(2, 10, None, &[])
            .expect_err("an id with NUL");
        assert!(error.to_string().contains("NUL"), "{error}");
    }

    #[test]
    fn a_row_that_does_not_decode_is_corrupt_and_named_never_a_bare_database_error() {
        let db = SqliteDatabase::open_in_memory().expect("open");
        let recorder = SqliteRecorder::events(db.clone(), true).expect("recorder");
        // Rows another program wrote: SQLite keeps values of any type in any column.
        db.writer()
            .execute_batch(&format!(
                "INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state) VALUES \
                 ('state-as-text', 1, 'T', 'not a blob'), \
                 ('topic-not-utf8', 1, CAST(x'fffe41' AS TEXT), x''), \
                 ('version-as-text', 'one', 'T', x'')"
            ))
            .expect("insert");
        let cases = [
            ("state-as-text", "version 1", "state"),
            ("topic-not-utf8", "version 1", "topic"),
            ("version-as-text", "version-as-text", "originator_version"),
        ];
        for (id, names, column) in cases {
            let id = OriginatorId::text(id).expect("id");
            let error = recorder
                .select_events(&id, EventQuery::new())
                .expect_err("a row that does not decode");
            let message = error.to_string();
            assert!(matches!(error, Error::Corrupt(_)), "{message}");
            assert!(
                message.contains(&format!("{id}")) && message.contains(names),
                "{message}"
            );
            assert!(message.contains(column), "{message}");
        }
        for (notification, column) in [(1, "state"), (2, "topic"), (3, "originator_version")] {
            let error = recorder
                .select_notifications(notification, 1, None, &[])
                .expect_err("a row that does not decode");
            let message = error.to_string();
            assert!(matches!(error, Error::Corrupt(_)), "{message}");
            assert!(
                message.contains(&format!("notification {notification}"))
                    && message.contains(column),
                "{message}"
            );
        }
    }

    #[test]
    fn concurrent_saves_in_one_group_commit_or_conflict_each_on_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = SqliteDatabase::open(dir.path().join("events.db"), Duration::from_secs(5))
            .expect("open");
        let recorder = Arc::new(SqliteRecorder::events(db, true).expect("recorder"));
        let contested: OriginatorId = uuid::Uuid::new_v4().into();
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let recorder = recorder.clone();
                // Half the threads race for one version of one id; the rest do not race.
                let id = if n % 2 == 0 {
                    contested.clone()
                } else {
                    uuid::Uuid::new_v4().into()
                };
                std::thread::spawn(move || {
                    let event = |version| StoredEvent {
                        originator_id: id.clone(),
                        originator_version: version,
                        topic: "T".into(),
                        state: vec![n],
                    };
                    recorder.insert_events(&[event(1), event(2)])
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|thread| thread.join().expect("no panic"))
            .collect();
        let saved: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let conflicts = results
            .iter()
            .filter(|r| r.as_ref().is_err_and(Error::is_conflict))
            .count();
        assert_eq!((saved.len(), conflicts), (9, 7), "{results:?}");
        // The log holds exactly the acknowledged events, numbered without gaps.
        let mut acknowledged: Vec<u64> = saved.into_iter().flatten().copied().collect();
        acknowledged.sort_unstable();
        let logged: Vec<u64> = recorder
            .select_notifications(1, 100, None, &[])
            .expect("log")
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(acknowledged, logged);
        assert_eq!(logged, (1..=18).collect::<Vec<_>>());
    }
}
