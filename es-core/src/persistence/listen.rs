//! Learning that a log may have grown, without reading it in a loop: a
//! listener per reader, woken by saves in this process at once, and by other
//! processes' saves as the store can tell (PostgreSQL's `LISTEN`, SQLite's
//! `data_version`), and a subscription that reads the log from any position
//! with it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::recorder::ApplicationRecorder;
use super::stored_event::Notification;
use crate::error::Result;

/// Tells a reader of a log when it may have grown, including by other
/// processes where the store can tell. A wake-up is a hint, never a promise:
/// the reader reads the log after its own position to find out, so a
/// spurious one costs a read and a missed one cannot happen for what was
/// committed after the listener was made.
///
/// ```
/// use std::time::Duration;
/// use es_core::persistence::{ApplicationRecorder, MemoryRecorder, StoredEvent, AggregateRecorder};
/// let recorder = MemoryRecorder::new();
/// let mut listener = recorder.listen()?;
/// assert!(!listener.wait(Duration::from_millis(1))?);
/// recorder.insert_events(&[StoredEvent {
///     originator_id: uuid::Uuid::new_v4().into(), originator_version: 1, topic: "T".into(), state: vec![],
/// }])?;
/// assert!(listener.wait(Duration::from_secs(5))?);
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait Listener: Send {
    /// Waits until the log may have grown since this listener was made or
    /// last said so, or until `timeout` passes; says which. An error means
    /// the store could not be asked (a server gone); the next call tries again.
    fn wait(&mut self, timeout: Duration) -> Result<bool>;
}

/// How often a listener that can only poll says the log may have grown.
pub const DEFAULT_LISTEN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A listener of a store that cannot tell: it says "maybe" every
/// `interval`. The default of [`ApplicationRecorder::listen`], so a backend
/// of another crate works unchanged, only later.
#[derive(Debug)]
pub struct PollingListener {
    interval: Duration,
    next: Instant,
}

impl PollingListener {
    /// Says "maybe" every `interval`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use es_core::persistence::{Listener, PollingListener};
    /// let mut listener = PollingListener::every(Duration::from_millis(5));
    /// assert!(!listener.wait(Duration::ZERO)?);
    /// assert!(listener.wait(Duration::from_secs(1))?);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn every(interval: Duration) -> Self {
        PollingListener {
            interval,
            next: Instant::now() + interval,
        }
    }
}

impl Listener for PollingListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let now = Instant::now();
        if self.next > now + timeout {
            std::thread::sleep(timeout);
            return Ok(false);
        }
        std::thread::sleep(self.next.saturating_duration_since(now));
        self.next = Instant::now() + self.interval;
        Ok(true)
    }
}

/// A count that threads in the same process can wait on instead of polling
/// the store: a store's commits, an application's saves, a runner's rounds.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SignalState {
    count: u64,
    /// Threads in `wait_past`: a bump with none wakes no one, and spares
    /// every save a system call.
    waiting: usize,
}

impl Signal {
    pub(crate) fn count(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count
    }

    pub(crate) fn bump(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.count += 1;
        let anyone = state.waiting > 0;
        drop(state);
        if anyone {
            self.changed.notify_all();
        }
    }

    /// Waits until the count is past `seen` or `timeout` passes; the count.
    pub(crate) fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.count <= seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Counted under the lock the wait gives up, so a bump after it
            // sees the waiter.
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        }
        state.count
    }
}

/// A listener of the commits made in this process, through one [`Signal`].
#[derive(Debug)]
pub(crate) struct SignalListener {
    signal: Arc<Signal>,
    seen: u64,
}

impl SignalListener {
    pub(crate) fn new(signal: Arc<Signal>) -> Self {
        let seen = signal.count();
        SignalListener { signal, seen }
    }

    /// Whether the signal moved since last asked, waiting up to `timeout`.
    pub(crate) fn moved(&mut self, timeout: Duration) -> bool {
        let count = self.signal.wait_past(self.seen, timeout);
        let moved = count > self.seen;
        self.seen = count;
        moved
    }
}

impl Listener for SignalListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        Ok(self.moved(timeout))
    }
}

/// How many notifications a subscription reads at a time.
const SUBSCRIPTION_PAGE: usize = 500;

/// Every notification of a log after a position, in order, each once, as
/// they are recorded: reads what is there, then waits on the store's
/// [`Listener`] for more. Its position moves only past notifications it
/// handed out, so after an error (a server gone) the next call goes on
/// from there, and nothing is skipped or repeated.
///
/// ```
/// use std::time::Duration;
/// use es_core::persistence::{AggregateRecorder, ApplicationRecorder, MemoryRecorder, StoredEvent, Subscription};
/// let recorder = std::sync::Arc::new(MemoryRecorder::new());
/// let event = |v| StoredEvent {
///     originator_id: uuid::Uuid::nil().into(), originator_version: v, topic: "T".into(), state: vec![],
/// };
/// recorder.insert_events(&[event(1), event(2)])?;
/// let mut subscription = Subscription::new(recorder.clone(), Some(1))?;
/// assert_eq!(subscription.next_within(Duration::ZERO)?.map(|n| n.id), Some(2));
/// assert!(subscription.next_within(Duration::from_millis(1))?.is_none());
/// recorder.insert_events(&[event(3)])?;
/// assert_eq!(subscription.next_within(Duration::from_secs(5))?.map(|n| n.id), Some(3));
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct Subscription {
    recorder: Arc<dyn ApplicationRecorder>,
    listener: Box<dyn Listener>,
    position: Option<u64>,
    read: VecDeque<Notification>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("position", &self.position)
            .field("read", &self.read.len())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The notifications of `recorder`'s log after `after` (from the start
    /// if `None`). The listener is made before the first read, so a save
    /// committed while that read runs still wakes it.
    pub fn new(recorder: Arc<dyn ApplicationRecorder>, after: Option<u64>) -> Result<Self> {
        let listener = recorder.listen()?;
        Ok(Subscription {
            recorder,
            listener,
            position: after,
            read: VecDeque::new(),
        })
    }

    /// The id of the last notification handed out (or the starting one).
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// The next notification, waiting up to `timeout` for one to be
    /// recorded; `None` if none was by then.
    pub fn next_within(&mut self, timeout: Duration) -> Result<Option<Notification>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(notification) = self.read.pop_front() {
                self.position = Some(notification.id);
                return Ok(Some(notification));
            }
            let start = self.position.map_or(1, |id| id + 1);
            self.read = self
                .recorder
                .select_notifications(start, SUBSCRIPTION_PAGE, None, &[])?
                .into();
            if !self.read.is_empty() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Read again whatever it says: at the deadline, that last read
            // finds what was committed while the listener was being reset.
            self.listener.wait(left)?;
        }
    }
}

/// Blocks until the next notification; stops only at an error (after which
/// it may be called again).
impl Iterator for Subscription {
    type Item = Result<Notification>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_within(Duration::from_secs(3600)) {
                Ok(Some(notification)) => return Some(Ok(notification)),
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// Up to `limit` notifications of `recorder`'s log from id `start` on (of
/// `topics` only, unless it is empty), waiting up to `timeout` for there to
/// be any: a long poll. The listener is made before the first read, so a
/// save committed between a read and the wait is still heard.
#[cfg(any(feature = "async", feature = "http-server"))]
pub(crate) fn select_notifications_waiting(
    recorder: &dyn ApplicationRecorder,
    start: u64,
    limit: usize,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<Notification>> {
    let read = || recorder.select_notifications(start, limit, None, topics);
    if timeout.is_zero() {
        return read();
    }
    let mut listener = recorder.listen()?;
    let deadline = Instant::now() + timeout;
    loop {
        let found = read()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !found.is_empty() || left.is_zero() {
            return Ok(found);
        }
        listener.wait(left)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_wakes_a_waiting_thread_at_once() {
        let signal = Arc::new(Signal::default());
        signal.bump();
        let seen = signal.count();
        let waiter = {
            let signal = Arc::clone(&signal);
            std::thread::spawn(move || {
                let started = Instant::now();
                (
                    signal.wait_past(seen, Duration::from_secs(30)),
                    started.elapsed(),
                )
            })
        };
        while signal.state.lock().map(|state| state.waiting).unwrap_or(0) == 0 {
            std::thread::yield_now();
        }
        signal.bump();
        let (count, waited) = waiter.join().expect("the waiter does not panic");
        assert_eq!(count, seen + 1);
        assert!(
            waited < Duration::from_secs(10),
            "woken, not timed out: {waited:?}"
        );
        assert_eq!(signal.state.lock().map(|state| state.waiting).ok(), Some(0));
    }

    #[test]
    fn a_wait_for_a_count_already_passed_returns_at_once() {
        let signal = Signal::default();
        signal.bump();
        signal.bump();
        assert_eq!(signal.wait_past(1, Duration::from_secs(30)), 2);
        assert_eq!(signal.wait_past(5, Duration::ZERO), 2);
    }
}
