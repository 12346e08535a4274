//! History records made from the log: for each event of a replicating
//! aggregate, the aggregate's whole state after it.
//!
//! States are kept per entity in a bounded cache, so that the next event of
//! an entity is applied to the state the previous one left; an entity not
//! in the cache is loaded from the store at the event's version.

use std::any::Any;
use std::marker::PhantomData;

use hashlink::LruCache;

use super::record::{HistoryRecord, HistoryType, Replicating};
use crate::application::Application;
use crate::domain::aggregate::replay;
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::Notification;

/// How many entities' latest states a delivery keeps.
const CACHED_STATES: usize = 4096;

/// The states of entities as the last records left them.
pub(crate) struct States(LruCache<(&'static str, OriginatorId), Box<dyn Any + Send>>);

impl States {
    pub(crate) fn new() -> Self {
        States(LruCache::new(CACHED_STATES))
    }
}

/// Makes the records of one replicating aggregate type.
pub(crate) trait RecordSource: Send + Sync {
    /// The type's contract name.
    fn contract(&self) -> &'static str;

    /// The aggregate's name, which its topics are registered under.
    fn aggregate(&self) -> &'static str;

    /// The record of `notification`, an event of this aggregate.
    fn record(
        &self,
        app: &Application,
        notification: &Notification,
        states: &mut States,
    ) -> Result<HistoryRecord>;
}

pub(crate) struct Source<A>(PhantomData<fn() -> A>);

impl<A> Source<A> {
    pub(crate) fn new() -> Self {
        Source(PhantomData)
    }
}

impl<A: Replicating> RecordSource for Source<A> {
    fn contract(&self) -> &'static str {
        A::CONTRACT
    }

    fn aggregate(&self) -> &'static str {
        A::NAME
    }

    fn record(
        &self,
        app: &Application,
        notification: &Notification,
        states: &mut States,
    ) -> Result<HistoryRecord> {
        let stored = &notification.event;
        let event = app.mapper().to_domain_event::<A::Event>(stored)?;
        let metadata = app.mapper().metadata(stored)?;
        let (id, version, timestamp) = (
            event.originator_id.clone(),
            event.originator_version,
            event.timestamp,
        );
        let history_type = if version == 1 {
            HistoryType::Created
        } else if A::deletes(&event.payload) {
            HistoryType::Deleted
        } else {
            HistoryType::Changed
        };
        let key = (A::NAME, id.clone());
        let previous = states
            .0
            .remove(&key)
            .and_then(|state| state.downcast::<A>().ok())
            .filter(|state| state.version() + 1 == version);
        let state = match previous {
            Some(previous) => replay(Some(*previous), [Ok(event)])?,
            None if version == 1 => replay(None, [Ok(event)])?,
            None => Some(app.repository().get_at::<A>(id.clone(), version)?),
        }
        .ok_or_else(|| Error::Corrupt(format!("no state of {id} at version {version}")))?;
        let fields = match serde_json::to_value(&state) {
            Ok(serde_json::Value::Object(mut fields)) => {
                for excluded in A::EXCLUDED {
                    fields.remove(*excluded);
                }
                fields
            }
            Ok(other) => {
                return Err(Error::Corrupt(format!(
                    "the state of a {} serializes as {other}, not as an object of fields",
                    A::NAME
                )));
            }
            Err(e) => {
                return Err(Error::Corrupt(format!(
                    "the state of {} {id} does not serialize: {e}",
                    A::NAME
                )));
            }
        };
        states.0.insert(key, Box::new(state));
        Ok(HistoryRecord {
            history_id: notification.id,
            history_date: timestamp,
            history_change_reason: metadata.change_reason,
            history_user_id: metadata.user_id,
            history_type,
            uid: id.to_string(),
            kind: A::CONTRACT.to_owned(),
            version,
            fields,
        })
    }
}
