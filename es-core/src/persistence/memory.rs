//! The in-memory recorder ("POPO" in the Python library): fast, and gone with the process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use super::listen::{Listener, Signal, SignalListener};
use super::recorder::{
    AggregateRecorder, ApplicationRecorder, EventQuery, ProcessRecorder, Tracking, TrackingRecorder,
};
use super::stored_event::{Notification, StoredEvent};
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};

/// Keeps events in memory: for tests, examples and short-lived processes.
///
/// Writers are serialized by one lock, so notification ids follow commit order.
///
/// ```
/// use es_core::persistence::{AggregateRecorder, EventQuery, MemoryRecorder, StoredEvent};
/// let recorder = MemoryRecorder::new();
/// let id = es_core::OriginatorId::from(uuid::Uuid::new_v4());
/// let ids = recorder.insert_events(&[StoredEvent {
///     originator_id: id, originator_version: 1, topic: "T".into(), state: b"{}".to_vec(),
/// }])?;
/// assert_eq!(ids, [1]);
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    inner: RwLock<Inner>,
    /// Bumped after each insert of events, for listeners.
    recorded: Arc<Signal>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The log: the event with notification id `n` is at index `n - 1`.
    log: Vec<StoredEvent>,
    /// Per originator, version to index in `log`.
    by_originator: HashMap<OriginatorId, BTreeMap<u64, usize>>,
    /// Per upstream application, the highest notification id processed.
    tracking: HashMap<String, u64>,
}

impl Inner {
    /// Records `events` and `tracking` if neither conflicts, else nothing.
    fn insert(&mut self, events: &[StoredEvent], tracking: Option<&Tracking>) -> Result<Vec<u64>> {
        let mut in_batch = HashSet::with_capacity(events.len());
        for event in events {
            let key = (&event.originator_id, event.originator_version);
            let taken = self
                .by_originator
                .get(&event.originator_id)
                .is_some_and(|versions| versions.contains_key(&event.originator_version));
            if taken || !in_batch.insert(key) {
                return Err(Error::Conflict {
                    originator_id: event.originator_id.clone(),
                    originator_version: event.originator_version,
                });
            }
        }
        if let Some(tracking) = tracking {
            self.check_tracking(tracking)?;
        }
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let index = self.log.len();
            self.log.push(event.clone());
            self.by_originator
                .entry(event.originator_id.clone())
                .or_default()
                .insert(event.originator_version, index);
            ids.push(index as u64 + 1);
        }
        if let Some(tracking) = tracking {
            self.tracking
                .insert(tracking.application_name.clone(), tracking.notification_id);
        }
        Ok(ids)
    }

    fn check_tracking(&self, tracking: &Tracking) -> Result<()> {
        match self.tracking.get(&tracking.application_name) {
            Some(&max) if max >= tracking.lowest() => Err(Error::TrackingConflict {
                application_name: tracking.application_name.clone(),
                notification_id: tracking.notification_id,
            }),
            _ => Ok(()),
        }
    }
}

impl MemoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `events` and `tracking` if neither conflicts, else nothing,
    /// and wakes the listeners if events were recorded.
    fn insert(&self, events: &[StoredEvent], tracking: Option<&Tracking>) -> Result<Vec<u64>> {
        let ids = self.write().insert(events, tracking)?;
        if !ids.is_empty() {
            self.recorded.bump();
        }
        Ok(ids)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked; the data itself is
        // only changed after every check has passed, so it is still whole.
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AggregateRecorder for MemoryRecorder {
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        self.insert(events, None)
    }

    fn select_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>> {
        let inner = self.read();
        let Some(versions) = inner.by_originator.get(originator_id) else {
            return Ok(Vec::new());
        };
        let lower = query
            .gt
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let upper = query
            .lte
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
        if matches!((query.gt, query.lte), (Some(gt), Some(lte)) if gt >= lte) {
            return Ok(Vec::new());
        }
        let range = versions.range((lower, upper));
        let limit = query.limit.unwrap_or(usize::MAX);
        let events = if query.desc {
            range
                .rev()
                .take(limit)
                .map(|(_, &i)| inner.log[i].clone())
                .collect()
        } else {
            range
                .take(limit)
                .map(|(_, &i)| inner.log[i].clone())
                .collect()
        };
        Ok(events)
    }
}

impl ApplicationRecorder for MemoryRecorder {
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        stop: Option<u64>,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        let inner = self.read();
        let first = usize::try_from(start.max(1) - 1).unwrap_or(usize::MAX);
        let end = stop.map_or(inner.log.len(), |stop| {
            usize::try_from(stop)
                .unwrap_or(usize::MAX)
                .min(inner.log.len())
        });
        let Some(window) = inner.log.get(first..end.max(first)) else {
            return Ok(Vec::new());
        };
        Ok(window
            .iter()
            .enumerate()
            .filter(|(_, event)| topics.is_empty() || topics.contains(&event.topic.as_str()))
            .take(limit)
            .map(|(offset, event)| Notification {
                id: (first + offset) as u64 + 1,
                event: event.clone(),
            })
            .collect())
    }

    fn max_notification_id(&self) -> Result<Option<u64>> {
        let inner = self.read();
        Ok((!inner.log.is_empty()).then_some(inner.log.len() as u64))
    }

    /// Woken by every insert of events, at once.
    fn listen(&self) -> Result<Box<dyn Listener>> {
        Ok(Box::new(SignalListener::new(Arc::clone(&self.recorded))))
    }
}

impl TrackingRecorder for MemoryRecorder {
    fn insert_tracking(&self, tracking: &Tracking) -> Result<()> {
        self.insert(&[], Some(tracking)).map(drop)
    }

    fn max_tracking_id(&self, application_name: &str) -> Result<Option<u64>> {
        Ok(self.read().tracking.get(application_name).copied())
    }
}

impl ProcessRecorder for MemoryRecorder {
    fn insert_events_with_tracking(
        &self,
        events: &[StoredEvent],
        tracking: &Tracking,
    ) -> Result<Vec<u64>> {
        self.insert(events, Some(tracking))
    }
}
