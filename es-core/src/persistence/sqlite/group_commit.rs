//! Group commit: saves that arrive while another save is being written share the
//! next transaction, so one sync to disk acknowledges all of them.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` each commit waits
//! for the disk. Without grouping, sixteen threads saving at once would queue for
//! sixteen syncs; with it, they wait for about two. No save is acknowledged before
//! the transaction holding it has committed.
//!
//! The protocol: the first saver to find no write in progress becomes the leader
//! and writes its own batch, by reference. Savers that arrive meanwhile copy their
//! batch into the queue and wait, each on a condition variable of its own. When
//! the leader is done it wakes exactly the savers whose batches it wrote, with
//! their results, and hands the writer role to the saver at the head of the
//! queue, which takes the whole queue as the next group. Waking only those
//! threads (not every waiter) matters: on a small machine, a crowd of threads
//! woken at once delays the next commit more than the disk does.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::persistence::StoredEvent;

/// Events to insert into one table in one save.
pub(super) struct Batch<'a> {
    /// The table's insert statement.
    pub insert_sql: &'a str,
    /// Whether the table keeps the notification log (ids are returned).
    pub with_log: bool,
    pub events: &'a [StoredEvent],
}

/// A batch copied into the queue by a saver waiting for the leader.
struct Queued {
    waiter: Arc<Waiter>,
    insert_sql: String,
    with_log: bool,
    events: Vec<StoredEvent>,
}

/// Where a waiting saver is told what became of its batch.
#[derive(Default)]
struct Waiter {
    news: Mutex<News>,
    wake: Condvar,
}

#[derive(Default)]
enum News {
    #[default]
    Waiting,
    /// Written (or refused): the save's result.
    Done(Result<Vec<u64>>),
    /// The writer role is this saver's: it leads the next group.
    Lead,
}

impl Waiter {
    fn tell(&self, news: News) {
        *self.news.lock().unwrap_or_else(PoisonError::into_inner) = news;
        self.wake.notify_one();
    }

    fn wait(&self) -> News {
        let mut news = self.news.lock().unwrap_or_else(PoisonError::into_inner);
        while matches!(*news, News::Waiting) {
            news = self.wake.wait(news).unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::take(&mut *news)
    }
}

#[derive(Default)]
struct Queue {
    /// A leader is writing, or has been chosen to.
    writing: bool,
    queued: Vec<Queued>,
}

/// The meeting point of concurrent savers to one database.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
}

impl GroupCommit {
    /// Saves `batch`, alone or with others: `write` is given the batches of one
    /// transaction and returns one result per batch, in order.
    pub(super) fn submit(
        &self,
        batch: Batch<'_>,
        write: impl FnOnce(&[Batch<'_>]) -> Vec<Result<Vec<u64>>>,
    ) -> Result<Vec<u64>> {
        let mut queue = self.lock();
        let mut own_waiter = None;
        if queue.writing {
            let waiter = Arc::new(Waiter::default());
            queue.queued.push(Queued {
                waiter: Arc::clone(&waiter),
                insert_sql: batch.insert_sql.to_owned(),
                with_log: batch.with_log,
                events: batch.events.to_vec(),
            });
            drop(queue);
            match waiter.wait() {
                News::Done(result) => return result,
                // Our batch is still queued: lead the next group with it.
                News::Lead | News::Waiting => {}
            }
            own_waiter = Some(waiter);
            queue = self.lock();
        }
        queue.writing = true;
        let queued = std::mem::take(&mut queue.queued);
        drop(queue);

        let mut leadership = Leadership {
            group: self,
            waiters: queued.iter().map(|q| Arc::clone(&q.waiter)).collect(),
            results: Vec::new(),
        };
        let mut batches = Vec::with_capacity(queued.len() + 1);
        if own_waiter.is_none() {
            batches.push(batch);
        }
        batches.extend(queued.iter().map(|queued| Batch {
            insert_sql: &queued.insert_sql,
            with_log: queued.with_log,
            events: &queued.events,
        }));
        let mut results = write(&batches).into_iter();
        let own = match &own_waiter {
            None => Some(results.next().unwrap_or_else(missing_result)),
            Some(_) => None,
        };
        leadership.results = results.collect();
        drop(leadership);
        match (own, own_waiter) {
            (Some(result), _) => result,
            // Told to itself by the leadership it just gave up.
            (None, Some(waiter)) => match waiter.wait() {
                News::Done(result) => result,
                News::Lead | News::Waiting => missing_result(),
            },
            (None, None) => missing_result(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between statements, so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Posts the results of the batches a leader took (an error for any it has
/// none for, so no saver waits for ever) and hands the writer role on, even if
/// the leader panicked.
struct Leadership<'a> {
    group: &'a GroupCommit,
    waiters: Vec<Arc<Waiter>>,
    results: Vec<Result<Vec<u64>>>,
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        let mut results = std::mem::take(&mut self.results).into_iter();
        for waiter in &self.waiters {
            waiter.tell(News::Done(results.next().unwrap_or_else(missing_result)));
        }
        let mut queue = self.group.lock();
        match queue.queued.first() {
            Some(next) => next.waiter.tell(News::Lead),
            None => queue.writing = false,
        }
    }
}

fn missing_result<T>() -> Result<T> {
    Err(Error::database(
        "writing a group of saves",
        "the writing thread stopped before reporting this save's result; it was not acknowledged",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn event(version: u64) -> StoredEvent {
        StoredEvent {
            originator_id: uuid::Uuid::new_v4().into(),
            originator_version: version,
            topic: "T".into(),
            state: Vec::new(),
        }
    }

    #[test]
    fn savers_that_arrive_during_a_write_share_the_next_one_and_each_gets_its_own_result() {
        let group = Arc::new(GroupCommit::default());
        let writes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|n| {
                let (group, writes) = (group.clone(), writes.clone());
                std::thread::spawn(move || {
                    let events = vec![event(n + 1)];
                    let batch = Batch {
                        insert_sql: "insert",
                        with_log: true,
                        events: &events,
                    };
                    group.submit(batch, |batches| {
                        writes.fetch_add(1, Ordering::SeqCst);
                        // Slow enough that the others queue up behind it.
                        std::thread::sleep(Duration::from_millis(50));
                        batches
                            .iter()
                            .map(|batch| Ok(vec![batch.events[0].originator_version]))
                            .collect()
                    })
                })
            })
            .collect();
        for (n, thread) in threads.into_iter().enumerate() {
            let ids = thread.join().expect("no panic").expect("saved");
            assert_eq!(
                ids,
                [n as u64 + 1],
                "each saver gets its own batch's result"
            );
        }
        let writes = writes.load(Ordering::SeqCst);
        assert!(
            writes < 8,
            "{writes} writes for 8 savers: none were grouped"
        );
    }

    fn submit_one(group: &GroupCommit, write_ms: u64, panics: bool) -> Result<Vec<u64>> {
        let events = vec![event(1)];
        let batch = Batch {
            insert_sql: "insert",
            with_log: true,
            events: &events,
        };
        group.submit(batch, |batches| {
            std::thread::sleep(Duration::from_millis(write_ms));
            assert!(!panics, "the write failed badly");
            batches.iter().map(|_| Ok(vec![7])).collect()
        })
    }

    #[test]
    fn a_leader_that_panics_leaves_its_followers_an_error_not_a_hang() {
        let group = Arc::new(GroupCommit::default());
        let spawn = |delay_ms: u64, write_ms: u64, panics: bool| {
            let group = group.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay_ms));
                submit_one(&group, write_ms, panics)
            })
        };
        // The first leader is slow, so the other two queue behind it and are
        // written as one group by whichever of them leads next, which panics.
        let first = spawn(0, 150, false);
        let second = spawn(40, 0, true);
        let third = spawn(80, 0, true);
        assert_eq!(first.join().expect("no panic").expect("saved"), [7]);
        let outcomes = [second.join(), third.join()];
        let panicked = outcomes.iter().filter(|outcome| outcome.is_err()).count();
        assert_eq!(panicked, 1, "one of the two led the group and panicked");
        for outcome in outcomes.into_iter().flatten() {
            let error = outcome.expect_err("the leader took this batch and never wrote it");
            assert!(error.to_string().contains("not acknowledged"), "{error}");
        }
        // The role was handed on: the next save goes through.
        assert_eq!(submit_one(&group, 0, false).expect("saved"), [7]);
    }
}
