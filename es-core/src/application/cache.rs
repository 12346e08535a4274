//! The repository's aggregate cache, as the Python library's
//! `AGGREGATE_CACHE_MAXSIZE` and `AGGREGATE_CACHE_FASTFORWARD`: the latest
//! copy of recently used aggregates, so that `get` reads only the events
//! recorded since (or none at all without fast-forward).
//!
//! Aggregates need not be `Clone`, so a copy is kept encoded, as a snapshot
//! with the application's codec but neither compressed nor encrypted, and
//! each `get` decodes its own copy: no caller ever shares state with another
//! or with the cache (the Python library's `DEEPCOPY_FROM_AGGREGATE_CACHE`,
//! always on).
//!
//! The protocol, so that racing threads never leave an older copy in place
//! of a newer one:
//! - A copy goes in only if it is newer than the one there (a slow thread
//!   cannot overwrite what a fast one put).
//! - Every removal (a conflict, an error, the least recently used making
//!   room) moves an epoch on. A thread notes the epoch before it reads the
//!   store or records a save, and its copy goes in only if the epoch has not
//!   moved since: else the copy it would put may be older than one that was
//!   removed, and the next `get` reads the store instead.
//! - A copy turned away for that reason still removes a cached copy older
//!   than itself, and moves the epoch on: so a copy read before it, which may
//!   be older, is turned away too. Once a save has put (or tried to put) its
//!   version, the cache never again holds an older one, and a `get` after a
//!   save sees at least what the save recorded, with or without fast-forward.
//!
//! Entries are keyed by id and carry the aggregate's name, so an id asked for
//! as another type is a miss, and its error comes from the store as without a
//! cache.
//!
//! The LRU list is `hashlink`'s `LruCache`: already in the build through
//! rusqlite, well kept, O(1) for each operation, with no cleverness of ours
//! to get wrong.

use std::sync::{Mutex, PoisonError};

use hashlink::LruCache;

use crate::domain::aggregate::Aggregate;
use crate::domain::id::OriginatorId;
use crate::persistence::{Mapper, StoredEvent, Transcoder};

/// How the cache is configured: see the builder's `aggregate_cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheSettings {
    /// The most aggregates kept; 0 for no limit.
    pub(crate) maxsize: usize,
    /// Whether `get` reads the events recorded since the cached version.
    pub(crate) fastforward: bool,
}

/// The position of the cache's removals; see the module's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epoch(u64);

struct Entry {
    aggregate: &'static str,
    snapshot: StoredEvent,
}

struct Inner {
    entries: LruCache<OriginatorId, Entry>,
    epoch: u64,
}

/// The latest copies of recently used aggregates.
pub(crate) struct AggregateCache {
    inner: Mutex<Inner>,
    mapper: Mapper,
    maxsize: usize,
    fastforward: bool,
}

impl std::fmt::Debug for AggregateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateCache")
            .field("maxsize", &self.maxsize)
            .field("fastforward", &self.fastforward)
            .finish_non_exhaustive()
    }
}

impl AggregateCache {
    /// An empty cache; copies are encoded with `transcoder`.
    pub(crate) fn new(settings: CacheSettings, transcoder: Transcoder) -> Self {
        let entries = match settings.maxsize {
            0 => LruCache::new_unbounded(),
            maxsize => LruCache::new(maxsize),
        };
        AggregateCache {
            inner: Mutex::new(Inner { entries, epoch: 0 }),
            mapper: Mapper::new(transcoder),
            maxsize: settings.maxsize,
            fastforward: settings.fastforward,
        }
    }

    /// Whether `get` must read the events recorded after the cached version.
    pub(crate) fn fastforward(&self) -> bool {
        self.fastforward
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A thread that panicked while holding the lock left every entry whole:
        // each change is one call on the LRU list.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The epoch to note before reading the store or recording a save.
    pub(crate) fn epoch(&self) -> Epoch {
        Epoch(self.lock().epoch)
    }

    /// A fresh copy of the cached `A` of `id`, if there is one. A copy that
    /// does not decode is removed and is a miss: the store has the truth.
    pub(crate) fn get<A: Aggregate>(&self, id: &OriginatorId) -> Option<A> {
        let snapshot = {
            let mut inner = self.lock();
            let entry = inner.entries.get(id)?;
            if entry.aggregate != A::NAME {
                return None;
            }
            entry.snapshot.clone()
        };
        match self.mapper.stored_to_snapshot::<A>(&snapshot) {
            Ok(snapshot) => Some(snapshot.into_aggregate()),
            Err(_) => {
                self.evict(id);
                None
            }
        }
    }

    /// Keeps `aggregate` (without its pending events) if it is newer than
    /// the copy there and nothing was removed since `epoch`.
    pub(crate) fn put<A: Aggregate>(&self, aggregate: &A, epoch: Epoch) {
        match self.mapper.snapshot_to_stored(aggregate) {
            Ok(snapshot) => self.put_encoded(A::NAME, snapshot, epoch),
            Err(_) => self.evict(&aggregate.id()),
        }
    }

    /// As [`put`](Self::put), for a copy encoded by [`encoder`](Self::encoder).
    pub(crate) fn put_encoded(&self, aggregate: &'static str, snapshot: StoredEvent, epoch: Epoch) {
        let mut inner = self.lock();
        let id = snapshot.originator_id.clone();
        if inner.epoch != epoch.0 {
            // This copy may be older than one removed since, so it stays out;
            // but it is newer than any copy older than it, which goes too. The
            // epoch moves on so that no copy read before this one goes in.
            if inner.entries.peek(&id).is_some_and(|entry| {
                entry.snapshot.originator_version < snapshot.originator_version
            }) {
                inner.entries.remove(&id);
            }
            inner.epoch += 1;
            return;
        }
        match inner.entries.peek(&id) {
            Some(entry) if entry.snapshot.originator_version >= snapshot.originator_version => {
                return;
            }
            Some(_) => {}
            None => {
                let full = self.maxsize != 0 && inner.entries.len() >= self.maxsize;
                if full && inner.entries.remove_lru().is_some() {
                    inner.epoch += 1;
                }
            }
        }
        inner.entries.insert(
            id,
            Entry {
                aggregate,
                snapshot,
            },
        );
    }

    /// The mapper that encodes copies, for a save that puts what it saved.
    pub(crate) fn encoder(&self) -> &Mapper {
        &self.mapper
    }

    /// Forgets the copy of `id`, if any.
    pub(crate) fn evict(&self, id: &OriginatorId) {
        let mut inner = self.lock();
        inner.entries.remove(id);
        inner.epoch += 1;
    }

    /// How many aggregates are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[aggregate]
    #[derive(Clone)]
    struct Meter {
        reading: u32,
    }

    #[aggregate]
    impl Meter {
        #[event("Fitted")]
        fn fit() -> Self {
            Meter { reading: 0 }
        }
        #[event("Read")]
        fn read(&mut self, reading: u32) {
            self.reading = reading;
        }
    }

    fn cache(maxsize: usize) -> AggregateCache {
        AggregateCache::new(
            CacheSettings {
                maxsize,
                fastforward: true,
            },
            Transcoder::Json,
        )
    }

    fn version_of(cache: &AggregateCache, id: &OriginatorId) -> Option<u64> {
        cache.get::<Meter>(id).map(|meter| meter.version())
    }

    #[test]
    fn an_older_copy_never_replaces_a_newer_one() {
        let cache = cache(0);
        let mut meter = Meter::fit();
        meter.read(1);
        let older = meter.clone();
        meter.read(2);
        cache.put(&meter, cache.epoch());
        cache.put(&older, cache.epoch());
        assert_eq!(version_of(&cache, &meter.id()), Some(3));
        assert_eq!(cache.get::<Meter>(&meter.id()).map(|m| m.reading), Some(2));
    }

    #[test]
    fn a_copy_read_before_a_removal_stays_out_and_pushes_older_copies_out() {
        let cache = cache(0);
        let mut meter = Meter::fit();
        cache.put(&meter, cache.epoch());
        let before_removal = cache.epoch();
        cache.evict(&uuid::Uuid::new_v4().into()); // any removal moves the epoch
        meter.read(7);
        cache.put(&meter, before_removal);
        assert_eq!(
            version_of(&cache, &meter.id()),
            None,
            "v1 is older than v2: out"
        );

        let stale_reader = cache.epoch();
        meter.read(8);
        cache.put(&meter, before_removal); // turned away, but moves the epoch
        cache.put(&Meter::fit(), stale_reader);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn making_room_drops_the_least_recently_used() {
        let cache = cache(2);
        let meters: Vec<Meter> = (0..3).map(|_| Meter::fit()).collect();
        cache.put(&meters[0], cache.epoch());
        cache.put(&meters[1], cache.epoch());
        assert!(cache.get::<Meter>(&meters[0].id()).is_some()); // now the most recent
        cache.put(&meters[2], cache.epoch());
        assert_eq!(cache.len(), 2);
        assert!(cache.get::<Meter>(&meters[1].id()).is_none());
        assert!(cache.get::<Meter>(&meters[0].id()).is_some());
    }
}
