//! Views: tables of the user's own, in a store's database, that a projection
//! keeps up to date, with its positions in the logs it reads beside them.

use super::recorder::Tracking;
use crate::error::{BoxError, Error, Result};

/// A database a projection writes its view to: the user's own tables, and a
/// table of the projection's positions (`projection_tracking`), written in
/// one transaction so that each event changes the view exactly once.
///
/// Several projections may share one database: positions are kept per
/// projection name and leader name.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use es_core::persistence::{SqliteDatabase, SqliteView, Tracking, View, ViewError};
/// let view = SqliteView::new(SqliteDatabase::open_in_memory()?)?;
/// view.execute_batch("CREATE TABLE seen (n INTEGER)")?;
/// let insert = |transaction: &mut es_core::rusqlite::Transaction<'_>| {
///     transaction.execute("INSERT INTO seen VALUES (1)", [])?;
///     Ok(())
/// };
/// view.write("seen", &Tracking::new("orders", 4), &mut |t| insert(t))?;
/// // The same position again: refused, and the row it would add is not added.
/// let again = view.write("seen", &Tracking::new("orders", 4), &mut |t| insert(t));
/// assert!(matches!(again, Err(ViewError::Store(es_core::Error::TrackingConflict { .. }))));
/// // A rehearsal leaves the table as it was.
/// view.rehearse(&mut |t| insert(t))?;
/// let rows: i64 = view.read(|c| c.query_row("SELECT count(*) FROM seen", [], |row| row.get(0)))?;
/// assert_eq!((rows, view.position("seen", "orders")?), (1, Some(4)));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait View: Send + Sync + 'static {
    /// What a projection writes with: a transaction of the view's database.
    type Transaction<'t>;

    /// The id of the last notification of `leader` that `projection` has
    /// recorded, if any.
    fn position(&self, projection: &str, leader: &str) -> Result<Option<u64>>;

    /// Runs `work` in a transaction, records `tracking` as `projection`'s
    /// position in it, and commits; or, if `work` fails or the recorded
    /// position is at or above the first id `tracking` covers, rolls
    /// everything back.
    fn write(
        &self,
        projection: &str,
        tracking: &Tracking,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError>;

    /// Runs `work` in a transaction and rolls it back, whatever happens: a
    /// rehearsal of a catch-up that leaves every table as it was.
    fn rehearse(
        &self,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError>;

    /// Runs `work` (which empties the projection's tables) and forgets the
    /// projection's positions (of `leader` only, if given) in one
    /// transaction, so that the next catch-up rebuilds the view from the
    /// start of the log.
    fn reset(
        &self,
        projection: &str,
        leader: Option<&str>,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError>;
}

/// Why a view's write was rolled back: the projection's code failed
/// ([`Work`](Self::Work), with its error), or the store did
/// ([`Store`](Self::Store)); see [`View`] for an example.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The projection's own code failed.
    #[error("{0}")]
    Work(BoxError),
    /// The database failed, or the position was already recorded
    /// ([`Error::TrackingConflict`]).
    #[error(transparent)]
    Store(#[from] Error),
}

/// The error for a position at or below the recorded one.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn already_recorded(tracking: &Tracking) -> ViewError {
    ViewError::Store(Error::TrackingConflict {
        application_name: tracking.application_name.clone(),
        notification_id: tracking.notification_id,
    })
}

/// The position a record sets and the lowest id it covers
/// ([`Tracking::lowest`]), as the SQL stores keep them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn ids_to_sql(tracking: &Tracking) -> Result<(i64, i64), ViewError> {
    let to_sql = |id: u64| {
        i64::try_from(id).map_err(|_| {
            ViewError::Store(Error::Corrupt(format!(
                "notification id {id} of {:?} exceeds the store's 64-bit signed integer range",
                tracking.application_name
            )))
        })
    };
    Ok((
        to_sql(tracking.notification_id)?,
        to_sql(tracking.lowest())?,
    ))
}
