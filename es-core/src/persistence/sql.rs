//! What the SQL backends share: their integer columns are signed 64-bit, while
//! versions and notification ids are unsigned, so every value crosses checked.

use super::stored_event::{Notification, StoredEvent};
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};

/// A row of the notification log, its integers checked.
pub(super) fn notification_from_sql(
    id: i64,
    originator_id: OriginatorId,
    version: i64,
    topic: String,
    state: Vec<u8>,
) -> Result<Notification> {
    Ok(Notification {
        id: notification_id_from_sql(id)?,
        event: StoredEvent {
            originator_version: version_from_sql(&originator_id, version)?,
            originator_id,
            topic,
            state,
        },
    })
}

/// A version as a column value; one past the signed range cannot be stored.
pub(super) fn version_to_sql(originator_id: &OriginatorId, version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| {
        Error::Corrupt(format!(
            "version {version} of {originator_id} exceeds the store's 64-bit signed integer range"
        ))
    })
}

/// A stored version; a negative one is corrupt data, not a version.
pub(super) fn version_from_sql(originator_id: &OriginatorId, version: i64) -> Result<u64> {
    u64::try_from(version).map_err(|_| {
        Error::Corrupt(format!(
            "stored version {version} of {originator_id} is negative"
        ))
    })
}

/// A stored notification id; a negative one is corrupt data.
pub(super) fn notification_id_from_sql(id: i64) -> Result<u64> {
    u64::try_from(id).map_err(|_| Error::Corrupt(format!("notification id {id} is negative")))
}

/// A stored row one of whose columns does not decode (a column of another SQL
/// type than this crate creates, or text that is not UTF-8): corrupt data,
/// named as other corrupt rows are. `row` names it as far as it could be read.
pub(super) fn undecodable(
    row: impl std::fmt::Display,
    table: &str,
    column: &str,
    error: impl std::fmt::Display,
) -> Error {
    Error::Corrupt(format!(
        "{row} in {table}: the stored {column} does not decode ({error}); the row was \
         written by something other than this crate, or the table was made with other \
         column types"
    ))
}

/// A bound or limit for a comparison: values past `i64::MAX` compare as it,
/// which selects the same rows since no stored value is larger.
pub(super) fn clamp(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cross_the_signed_range_checked() {
        let id = OriginatorId::from(uuid::Uuid::nil());
        assert_eq!(version_to_sql(&id, 7).ok(), Some(7));
        assert!(version_to_sql(&id, u64::MAX).is_err());
        assert_eq!(version_from_sql(&id, 7).ok(), Some(7));
        assert!(
            version_from_sql(&id, -1)
                .expect_err("negative")
                .to_string()
                .contains("negative")
        );
        assert!(notification_id_from_sql(-3).is_err());
        assert_eq!(clamp(u64::MAX), i64::MAX);
        assert_eq!(clamp(5usize), 5);
    }
}
