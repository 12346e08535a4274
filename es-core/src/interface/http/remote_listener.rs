//! Hearing that a remote log grew without reading it in a loop: a thread
//! keeps one long poll open at the server (up to [`MAX_WAIT`]) and wakes the
//! reader when it answers, so an idle follower costs the server one request
//! every half minute, and a save reaches it within one round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{MAX_WAIT, RemoteLog};
use crate::error::Result;
use crate::persistence::{Listener, Signal, SignalListener};

/// How long the polling thread waits after a failed request before the
/// next: the reader's own reads meet the same failure and report it.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A listener of a remote log; its thread ends within one long poll of the
/// listener being dropped.
pub(super) struct RemoteListener {
    news: SignalListener,
    stopping: Arc<AtomicBool>,
}

impl RemoteListener {
    /// Starts the long poll from the log's current end. If the end cannot be
    /// read now (the server is away), the first answer is news: a reader
    /// woken for nothing only reads once more.
    pub(super) fn start(log: RemoteLog) -> Result<Self> {
        let signal = Arc::new(Signal::default());
        let news = SignalListener::new(Arc::clone(&signal));
        let stopping = Arc::new(AtomicBool::new(false));
        let seen = log.max_id().ok().flatten();
        let thread_stopping = Arc::clone(&stopping);
        std::thread::Builder::new()
            .name(format!("es-core-remote-listener-{}", log.name()))
            .spawn(move || poll(&log, seen, &signal, &thread_stopping))
            .map_err(|e| crate::Error::database("starting a remote log's listener", e))?;
        Ok(RemoteListener { news, stopping })
    }
}

impl Drop for RemoteListener {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}

impl Listener for RemoteListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        Ok(self.news.moved(timeout))
    }
}

/// Asks the server, again and again, for what follows `seen`, and bumps
/// `signal` when something does (or when asking fails, so that the reader
/// reads and meets the failure itself).
fn poll(log: &RemoteLog, mut seen: Option<u64>, signal: &Signal, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        let start = seen.map_or(1, |id| id + 1);
        match log.select_waiting(start, 1, MAX_WAIT) {
            Ok(found) => {
                let Some(first) = found.first() else { continue };
                // The end, so that one answer is not followed by one more
                // per notification already there.
                seen = Some(
                    log.max_id()
                        .ok()
                        .flatten()
                        .unwrap_or(first.id)
                        .max(first.id),
                );
                signal.bump();
            }
            Err(error) => {
                tracing::debug!(log = log.name(), %error, "listening to a remote log");
                signal.bump();
                std::thread::sleep(AFTER_FAILURE);
            }
        }
    }
}
