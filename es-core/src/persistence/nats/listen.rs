//! Hearing other processes' saves: the stream republishes each stored
//! event's headers, and one subscription per recorder bumps the signal its
//! listeners wait on, as this process's own saves do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::connection::NatsConnection;
use super::requests::header;
use crate::error::{Error, Result};
use crate::persistence::listen::{Listener, Signal, SignalListener};

/// How often a listener says "maybe" with nothing heard: what was
/// republished while the connection was being remade is heard by no one.
const HEARD_NOTHING_INTERVAL: Duration = Duration::from_secs(1);

/// Subscribes to `subject` (the stream's republished commits): at each
/// message, raises `high_water` to its sequence and bumps `signal`, for as
/// long as the connection lives.
pub(crate) fn hear_commits(
    connection: &NatsConnection,
    subject: String,
    signal: Arc<Signal>,
    high_water: Arc<AtomicU64>,
) -> Result<()> {
    let client = connection.inner.client.clone();
    let mut commits = connection.run(async move {
        client
            .subscribe(subject)
            .await
            .map_err(|error| Error::database("subscribing to the NATS stream's commits", error))
    })?;
    connection.spawn(async move {
        while let Some(commit) = commits.next().await {
            let sequence = commit
                .headers
                .as_ref()
                .and_then(|headers| header(headers, "Nats-Sequence"))
                .and_then(|sequence| sequence.parse().ok());
            if let Some(sequence) = sequence {
                high_water.fetch_max(sequence, Ordering::AcqRel);
            }
            signal.bump();
        }
    });
    Ok(())
}

/// A listener of a NATS recorder: woken by saves of this process and by
/// the commits the recorder's subscription hears, and at least every
/// [`HEARD_NOTHING_INTERVAL`].
pub(crate) struct NatsListener {
    signal: SignalListener,
    next_maybe: Instant,
}

impl NatsListener {
    pub(crate) fn new(signal: Arc<Signal>) -> Self {
        NatsListener {
            signal: SignalListener::new(signal),
            next_maybe: Instant::now() + HEARD_NOTHING_INTERVAL,
        }
    }
}

impl Listener for NatsListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let now = Instant::now();
        let until_maybe = self.next_maybe.saturating_duration_since(now);
        if self.signal.moved(timeout.min(until_maybe)) {
            self.next_maybe = Instant::now() + HEARD_NOTHING_INTERVAL;
            return Ok(true);
        }
        if Instant::now() >= self.next_maybe {
            self.next_maybe = Instant::now() + HEARD_NOTHING_INTERVAL;
            return Ok(true);
        }
        Ok(false)
    }
}
