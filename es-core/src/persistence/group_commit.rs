//! Group commit: saves that arrive while another is being written share the
//! next transaction, and so its commit (and, on PostgreSQL, its turn with the
//! table lock). Both SQL stores use this one queue.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` each commit
//! waits for the disk; PostgreSQL's table lock (see `PostgresRecorder::new`)
//! makes writers take ids and commit one at a time. Without grouping, sixteen
//! threads saving at once queue for sixteen commits; with it, they wait for
//! about two. No save is acknowledged before the transaction holding it has
//! committed, and ids still follow commit order, since one transaction at a
//! time is written.
//!
//! The protocol: every saver puts its save in the queue. The one that finds no
//! write in progress becomes the leader: it takes the whole queue, writes it in
//! one transaction, then wakes exactly the savers whose saves it wrote, with
//! their results, and hands the writer role to the saver at the head of the
//! queue, which takes the queue as the next group. Waking only those threads
//! matters on a small machine, where a crowd woken at once delays the next
//! commit more than the disk or the server does. A `Drop` guard posts the
//! results, so that no waiting saver hangs even if the leader panics.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

/// A save waiting in the queue.
struct Queued<J, R> {
    waiter: Arc<Waiter<R>>,
    job: J,
}

/// Where a waiting saver is told what became of its save.
struct Waiter<R> {
    news: Mutex<News<R>>,
    wake: Condvar,
}

enum News<R> {
    Waiting,
    /// Written (or refused): the save's result.
    Done(Result<R>),
    /// The writer role is this saver's: it leads the next group.
    Lead,
}

impl<R> Waiter<R> {
    fn new() -> Self {
        Waiter {
            news: Mutex::new(News::Waiting),
            wake: Condvar::new(),
        }
    }

    fn tell(&self, news: News<R>) {
        *self.news.lock().unwrap_or_else(PoisonError::into_inner) = news;
        self.wake.notify_one();
    }

    fn wait(&self) -> News<R> {
        let mut news = self.news.lock().unwrap_or_else(PoisonError::into_inner);
        while matches!(*news, News::Waiting) {
            news = self.wake.wait(news).unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::replace(&mut *news, News::Waiting)
    }
}

struct Queue<J, R> {
    /// A leader is writing, or has been chosen to.
    writing: bool,
    queued: Vec<Queued<J, R>>,
}

/// The meeting point of concurrent savers to one database or table: each
/// gives a job `J` and gets back its result `R`.
pub(crate) struct GroupCommit<J, R> {
    queue: Mutex<Queue<J, R>>,
}

impl<J, R> Default for GroupCommit<J, R> {
    fn default() -> Self {
        GroupCommit {
            queue: Mutex::new(Queue {
                writing: false,
                queued: Vec::new(),
            }),
        }
    }
}

impl<J, R> std::fmt::Debug for GroupCommit<J, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<J, R> GroupCommit<J, R> {
    /// Saves `job`, alone or with others: `write` is given the jobs of one
    /// transaction and returns one result per job, in order.
    pub(crate) fn submit(&self, job: J, write: impl FnOnce(&[J]) -> Vec<Result<R>>) -> Result<R> {
        let waiter = Arc::new(Waiter::new());
        let mut queue = self.lock();
        queue.queued.push(Queued {
            waiter: Arc::clone(&waiter),
            job,
        });
        if queue.writing {
            drop(queue);
            match waiter.wait() {
                News::Done(result) => return result,
                // Our save is still queued, at the head: lead the next group.
                News::Lead | News::Waiting => {}
            }
            queue = self.lock();
        }
        queue.writing = true;
        let (waiters, jobs): (Vec<_>, Vec<_>) = std::mem::take(&mut queue.queued)
            .into_iter()
            .map(|queued| (queued.waiter, queued.job))
            .unzip();
        drop(queue);

        let mut leadership = Leadership {
            group: self,
            waiters,
            results: Vec::new(),
        };
        leadership.results = write(&jobs);
        drop(leadership);
        // Told to itself, with the others', by the leadership it just gave up.
        match waiter.wait() {
            News::Done(result) => result,
            News::Lead | News::Waiting => missing_result(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<J, R>> {
        // The queue is consistent between statements, so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Posts the results of the saves a leader took (an error for any it has none
/// for, so no saver waits for ever) and hands the writer role on, even if the
/// leader panicked.
struct Leadership<'a, J, R> {
    group: &'a GroupCommit<J, R>,
    waiters: Vec<Arc<Waiter<R>>>,
    results: Vec<Result<R>>,
}

impl<J, R> Drop for Leadership<'_, J, R> {
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn savers_that_arrive_during_a_write_share_the_next_one_and_each_gets_its_own_result() {
        let group = Arc::new(GroupCommit::<u64, Vec<u64>>::default());
        let writes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|n| {
                let (group, writes) = (group.clone(), writes.clone());
                std::thread::spawn(move || {
                    group.submit(n, |jobs| {
                        writes.fetch_add(1, Ordering::SeqCst);
                        // Slow enough that the others queue up behind it.
                        std::thread::sleep(Duration::from_millis(50));
                        jobs.iter().map(|&job| Ok(vec![job])).collect()
                    })
                })
            })
            .collect();
        for (n, thread) in threads.into_iter().enumerate() {
            let ids = thread.join().expect("no panic").expect("saved");
            assert_eq!(ids, [n as u64], "each saver gets its own save's result");
        }
        let writes = writes.load(Ordering::SeqCst);
        assert!(
            writes < 8,
            "{writes} writes for 8 savers: none were grouped"
        );
    }

    fn submit_one(
        group: &GroupCommit<u64, Vec<u64>>,
        write_ms: u64,
        panics: bool,
    ) -> Result<Vec<u64>> {
        group.submit(1, |jobs| {
            std::thread::sleep(Duration::from_millis(write_ms));
            assert!(!panics, "the write failed badly");
            jobs.iter().map(|_| Ok(vec![7])).collect()
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
            let error = outcome.expect_err("the leader took this save and never wrote it");
            assert!(error.to_string().contains("not acknowledged"), "{error}");
        }
        // The role was handed on: the next save goes through.
        assert_eq!(submit_one(&group, 0, false).expect("saved"), [7]);
    }
}
