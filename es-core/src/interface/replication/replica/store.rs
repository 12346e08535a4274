//! What a backend of [`Replica`](super::Replica) does: two tables, written in
//! one transaction per batch. A new backend implements [`Store`] and gets a
//! constructor on `Replica`; nothing else changes.

use crate::error::Result;

use super::ReplicaError;

/// One record as the tables hold it: versions and ids as SQL's signed
/// integers, dates as RFC 3339 text, fields as JSON text.
#[derive(Debug)]
pub(super) struct RecordRow<'a> {
    pub(super) kind: &'a str,
    pub(super) uid: &'a str,
    pub(super) version: i64,
    pub(super) deleted: bool,
    pub(super) state: String,
    pub(super) history_id: i64,
    pub(super) history_date: String,
    pub(super) history_type: &'static str,
    pub(super) change_reason: Option<&'a str>,
    pub(super) user_id: Option<&'a str>,
}

/// A row of `replica_entities`, as read.
#[derive(Debug)]
pub(super) struct EntityRow {
    pub(super) uid: String,
    pub(super) version: i64,
    pub(super) deleted: bool,
    pub(super) state: String,
    pub(super) history_id: i64,
    pub(super) history_date: String,
}

/// A row of `replica_history`, as read.
#[derive(Debug)]
pub(super) struct HistoryRow {
    pub(super) version: i64,
    pub(super) history_id: i64,
    pub(super) history_date: String,
    pub(super) history_type: String,
    pub(super) change_reason: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) fields: String,
}

/// A replica's database.
pub(super) trait Store: Send + Sync + std::fmt::Debug {
    /// Creates `replica_history` if it is not there.
    fn create_history_table(&self) -> Result<()>;

    /// Runs `work` in one transaction, committed if it succeeds.
    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn Writer) -> Result<(), ReplicaError>,
    ) -> Result<(), ReplicaError>;

    /// The row of `uid` of type `kind`, live or tombstone.
    fn entity(&self, kind: &str, uid: &str) -> Result<Option<EntityRow>>;

    /// The live rows of type `kind`, in `uid` order.
    fn live_entities(&self, kind: &str) -> Result<Vec<EntityRow>>;

    /// The history rows of `uid` of type `kind`, in version order.
    fn history(&self, kind: &str, uid: &str) -> Result<Vec<HistoryRow>>;
}

/// The writes of one transaction.
pub(super) trait Writer {
    /// Writes `rows` in their order, each over its entity's stored row if
    /// its version is newer than the stored one (and than the rows of the
    /// entity written before it), and with `history` a history row for each
    /// written; which were written.
    fn write_rows(&mut self, rows: &[&RecordRow<'_>], history: bool) -> Result<Vec<bool>>;
}
