//! Runners: what makes followers process their leaders' events, in the
//! calling thread ([`SingleThreadedRunner`]) or in a thread per follower
//! ([`MultiThreadedRunner`]). The applications and their code are the same
//! under either.

mod following;
mod multi;
mod single;

pub use following::FollowerRunner;
pub use multi::{DEFAULT_POLL_INTERVAL, MultiThreadedRunner};
pub use single::SingleThreadedRunner;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::error::SystemError;
use super::follower::{Leader, ProcessApplication};
use super::pipes::System;
use crate::application::Application;
use crate::error::BoxError;
use crate::persistence::{Listener, PollingListener};

impl System {
    /// Has every leader tell `prompt` (with the leader's index) after each
    /// save, so that its followers can be woken.
    pub(crate) fn on_each_save(
        &mut self,
        prompt: impl Fn(usize) -> Result<(), SystemError> + Clone + Send + Sync + 'static,
    ) {
        let leaders: Vec<usize> = {
            let mut leaders: Vec<usize> = self.edges.iter().map(|&(leader, _)| leader).collect();
            leaders.sort_unstable();
            leaders.dedup();
            leaders
        };
        for leader in leaders {
            let prompt = prompt.clone();
            self.nodes[leader]
                .application_mut()
                .subscribe(move |_| prompt(leader).map_err(|e| Box::new(e) as BoxError));
        }
    }

    /// The followers, with the indexes of their leaders.
    pub(crate) fn followers(&self) -> Vec<(usize, Vec<usize>)> {
        let mut followers: Vec<(usize, Vec<usize>)> = Vec::new();
        for &(leader, follower) in &self.edges {
            match followers.iter_mut().find(|(f, _)| *f == follower) {
                Some((_, leaders)) => leaders.push(leader),
                None => followers.push((follower, vec![leader])),
            }
        }
        followers
    }

    /// `follower` catching up with `leader`.
    pub(crate) fn pull(&self, leader: usize, follower: usize) -> Result<usize, SystemError> {
        let Some(process) = self.nodes[follower].process() else {
            return Ok(0);
        };
        process.pull_and_process(self.nodes[leader].application(), None)
    }
}

/// What both runners answer about the system they run.
pub(crate) fn application<'a>(
    system: &'a System,
    name: &str,
) -> Result<&'a Application, SystemError> {
    system
        .application(name)
        .ok_or_else(|| unknown(system, name))
}

pub(crate) fn process<'a>(
    system: &'a System,
    name: &str,
) -> Result<&'a ProcessApplication, SystemError> {
    system.process(name).ok_or_else(|| unknown(system, name))
}

fn unknown(system: &System, name: &str) -> SystemError {
    SystemError::Runner(format!(
        "no application {name:?} in this system (its applications: {:?})",
        system.names()
    ))
}

/// A listener of `leader`'s log; if it cannot give one (its server is
/// down as the runner starts), one that says "maybe" every `poll_interval`,
/// with a warning.
pub(crate) fn listen_to(leader: &dyn Leader, poll_interval: Duration) -> Box<dyn Listener> {
    leader.listen().unwrap_or_else(|error| {
        tracing::warn!(
            application = leader.leader_name(),
            %error,
            "cannot listen to the log; polling it instead",
        );
        Box::new(PollingListener::every(poll_interval))
    })
}

/// The longest a runner's thread waits on a listener before it looks
/// whether it is asked to stop.
pub(crate) const STOP_LATENCY: Duration = Duration::from_millis(100);

/// Waits for news from `listener` for up to `poll_interval`, looking at
/// `stopping` at least every [`STOP_LATENCY`]. True if there may be news,
/// or the poll interval is up; false if asked to stop. A listener that
/// fails (a server gone) is waited out: the next read of the log says what
/// is wrong.
pub(crate) fn wait_for_news(
    listener: &mut dyn Listener,
    poll_interval: Duration,
    stopping: &AtomicBool,
) -> bool {
    let deadline = Instant::now() + poll_interval;
    loop {
        if stopping.load(Ordering::SeqCst) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let slice = left.min(STOP_LATENCY);
        match listener.wait(slice) {
            Ok(true) => return true,
            Ok(false) => {}
            Err(error) => {
                tracing::debug!(%error, "listening to a log");
                std::thread::sleep(slice);
            }
        }
    }
}

/// A runner's lock; a thread that panicked holding it (a policy's panic)
/// left nothing half-changed in what these locks guard.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a follower's failure may pass by itself, so that the runner
/// tries again rather than stopping the follower: the store could not be
/// reached or failed (a server restarting, a network gone), or another
/// writer changed one of the follower's aggregates first (the next try
/// reads it anew). Its policy's errors, events it cannot decode and corrupt
/// rows stop it.
pub(crate) fn is_transient(error: &SystemError) -> bool {
    matches!(
        error,
        SystemError::Store { source, .. }
            if matches!(
                **source,
                crate::Error::Database { .. }
                    | crate::Error::OutcomeUnknown { .. }
                    | crate::Error::Conflict { .. }
            )
    )
}

/// The waits between a follower's tries while its store is failing: from a
/// tenth of a second, doubling to at most five.
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Self {
        Backoff(Self::FIRST)
    }

    /// The next wait, and doubles the one after.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MOST);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}
