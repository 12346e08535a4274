//! The multi-threaded runner: a thread per follower, woken by its leaders'
//! saves, and a thread per leader listening for what other processes save.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Backoff, application, is_transient, lock, process};
use crate::application::{Application, Signal};
use crate::persistence::Listener;
use crate::system::error::SystemError;
use crate::system::follower::ProcessApplication;
use crate::system::pipes::System;

/// How often a follower looks at its leaders' logs without being woken: a
/// bound on how late it can be for a store whose listener can only poll.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Runs a [`System`] with a thread per follower. A leader's save wakes its
/// followers, which process in their own threads; so does a save to a
/// leader's store by another process, heard by a thread per leader that
/// listens to its log ([`ApplicationRecorder::listen`](crate::persistence::ApplicationRecorder::listen)).
/// Each follower catches up from its recorded position when the runner
/// starts. While a follower's store fails (a server restarting), it tries
/// again, waiting from 0.1 s up to 5 s between tries, and goes on from its
/// position when the store is back. A follower that fails otherwise (its
/// policy, an event it cannot read) stops (the others go on); its error is in [`errors`](Self::errors) and is
/// the result of [`stop`](Self::stop) and of a [`wait`](Self::wait) on it.
///
/// ```
/// use std::time::Duration;
/// use es_core::prelude::*;
/// use es_core::system::{MultiThreadedRunner, Policies, ProcessApplication, System};
/// # #[aggregate] pub struct Visit { lines: u32 }
/// # #[aggregate] impl Visit { #[event("Placed")] pub fn place(lines: u32) -> Self { Visit { lines } } }
/// # #[aggregate] pub struct Badge { lines: u32 }
/// # #[aggregate] impl Badge { #[event("Started")] pub fn start(lines: u32) -> Self { Badge { lines } } }
/// let app = |name: &str| Application::builder().name(name).in_memory().build();
/// let picking = Policies::new().on(|event: DomainEvent<VisitEvent>, context| {
///     let VisitEvent::Placed { lines } = event.payload;
///     context.collect(Badge::start(lines));
///     Ok(())
/// });
/// let system = System::builder()
///     .application(app("visits")?)
///     .process(ProcessApplication::new(app("warehouse")?, picking)?)
///     .pipe(["visits", "warehouse"])
///     .build()?;
/// let runner = MultiThreadedRunner::start(system)?;
/// let recorded = runner.application("visits")?.save(&mut Visit::place(2))?;
/// // Read your writes: wait until the warehouse has processed the order.
/// runner.wait("warehouse", "visits", recorded[0].notification_id, Duration::from_secs(5))?;
/// assert_eq!(runner.application("warehouse")?.notification_log().max_id()?, Some(1));
/// runner.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MultiThreadedRunner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    system: System,
    /// One per application, used by followers: set when a leader saved.
    wakers: Vec<Waker>,
    stopping: AtomicBool,
    /// The failures of followers that stopped, with their indexes.
    errors: Mutex<Vec<(usize, Arc<SystemError>)>>,
    /// The last failure of each follower that is trying again (its store
    /// failing), until a try succeeds.
    retrying: Mutex<Vec<(usize, Arc<SystemError>)>>,
    /// Bumped after each round of processing, for `wait`.
    rounds: Signal,
    poll_interval: Duration,
}

#[derive(Default)]
struct Waker {
    woken: Mutex<bool>,
    wake: Condvar,
}

impl Waker {
    fn wake(&self) {
        *lock(&self.woken) = true;
        self.wake.notify_one();
    }

    /// Waits until woken or `timeout` passes, and clears the flag; whether
    /// it was woken.
    fn wait(&self, timeout: Duration) -> bool {
        let woken = lock(&self.woken);
        let (mut woken, _) = self
            .wake
            .wait_timeout_while(woken, timeout, |woken| !*woken)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *woken, false)
    }
}

impl std::fmt::Debug for MultiThreadedRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiThreadedRunner")
            .field("system", &self.shared.system)
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl MultiThreadedRunner {
    /// Starts a thread per follower, each catching up from its position.
    pub fn start(system: System) -> Result<Self, SystemError> {
        Self::start_with_poll_interval(system, DEFAULT_POLL_INTERVAL)
    }

    /// As [`start`](Self::start), looking at the leaders' logs at least every
    /// `poll_interval` even when not woken.
    pub fn start_with_poll_interval(
        mut system: System,
        poll_interval: Duration,
    ) -> Result<Self, SystemError> {
        let followers = system.followers();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let weak = weak.clone();
            system.on_each_save(move |leader| {
                if let Some(shared) = weak.upgrade() {
                    shared.wake_followers_of(leader);
                }
                Ok(())
            });
            Shared {
                wakers: (0..system.nodes.len()).map(|_| Waker::default()).collect(),
                system,
                stopping: AtomicBool::new(false),
                errors: Mutex::new(Vec::new()),
                retrying: Mutex::new(Vec::new()),
                rounds: Signal::default(),
                poll_interval,
            }
        });
        let mut threads = Vec::with_capacity(followers.len());
        let mut leaders: Vec<usize> = followers
            .iter()
            .flat_map(|(_, leaders)| leaders.iter().copied())
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        for leader in leaders {
            // Made here, before any follower's first catch-up, so that
            // nothing saved meanwhile goes unheard.
            let listener =
                super::listen_to(shared.system.nodes[leader].application(), poll_interval);
            let shared = Arc::clone(&shared);
            let name = format!("es-listener-{}", shared.system.name(leader));
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || shared.listen(leader, listener))
                .map_err(|e| SystemError::Runner(format!("starting a listener thread: {e}")))?;
            threads.push(thread);
        }
        for (follower, leaders) in followers {
            let shared = Arc::clone(&shared);
            let name = format!("es-follower-{}", shared.system.name(follower));
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || shared.follow(follower, &leaders))
                .map_err(|e| SystemError::Runner(format!("starting a follower thread: {e}")))?;
            threads.push(thread);
        }
        Ok(MultiThreadedRunner { shared, threads })
    }

    /// The application named `name`: save to it, read from it.
    pub fn application(&self, name: &str) -> Result<&Application, SystemError> {
        application(&self.shared.system, name)
    }

    /// The process application named `name`.
    pub fn process(&self, name: &str) -> Result<&ProcessApplication, SystemError> {
        process(&self.shared.system, name)
    }

    /// Waits until `follower` has processed notification `notification_id`
    /// of `leader` (read-your-writes for a request handler). Fails if the
    /// follower has stopped with an error, or when `timeout` passes.
    pub fn wait(
        &self,
        follower: &str,
        leader: &str,
        notification_id: u64,
        timeout: Duration,
    ) -> Result<(), SystemError> {
        let process = self.process(follower)?;
        let index = self.shared.system.index[follower];
        let deadline = Instant::now() + timeout;
        loop {
            // Read before looking, so that a round that ends while we look
            // is not waited for in vain; the lock is not held while reading
            // the store, which would hold up the followers.
            let seen = self.shared.rounds.count();
            if process
                .position(leader)?
                .is_some_and(|position| position >= notification_id)
            {
                return Ok(());
            }
            if let Some(error) = self.shared.error_of(index) {
                return Err(SystemError::Runner(format!(
                    "{follower} stopped before it reached notification {notification_id} \
                     of {leader}: {error}"
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                let retrying = self
                    .shared
                    .retrying_after(index)
                    .map(|error| format!(" (it is trying again after: {error})"))
                    .unwrap_or_default();
                return Err(SystemError::Runner(format!(
                    "{follower} did not reach notification {notification_id} of {leader} \
                     within {timeout:?}{retrying}"
                )));
            }
            // Bounded, so that a position reached by another process is seen too.
            let wait = (deadline - now).min(self.shared.poll_interval);
            self.shared.rounds.wait_past(seen, wait);
        }
    }

    /// The failures of followers that have stopped, as `(follower, error)`.
    pub fn errors(&self) -> Vec<(String, Arc<SystemError>)> {
        lock(&self.shared.errors)
            .iter()
            .map(|(index, error)| {
                (
                    self.shared.system.name(*index).to_owned(),
                    Arc::clone(error),
                )
            })
            .collect()
    }

    /// Stops every follower thread and waits for them; the first follower
    /// failure, if there was one.
    pub fn stop(mut self) -> Result<(), SystemError> {
        self.shut_down();
        match lock(&self.shared.errors).first() {
            Some((index, error)) => Err(SystemError::Runner(format!(
                "{} had stopped: {error}",
                self.shared.system.name(*index)
            ))),
            None => Ok(()),
        }
    }

    fn shut_down(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for waker in &self.shared.wakers {
            waker.wake();
        }
        for thread in self.threads.drain(..) {
            // A follower thread does not panic unless a policy does; that
            // policy's follower just stops.
            let _ = thread.join();
        }
    }
}

impl Drop for MultiThreadedRunner {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Shared {
    fn wake_followers_of(&self, leader: usize) {
        for &(l, follower) in &self.system.edges {
            if l == leader {
                self.wakers[follower].wake();
            }
        }
    }

    fn error_of(&self, follower: usize) -> Option<Arc<SystemError>> {
        lock(&self.errors)
            .iter()
            .find(|(index, _)| *index == follower)
            .map(|(_, error)| Arc::clone(error))
    }

    /// A leader's listener thread: wakes the leader's followers when its log
    /// may have grown, until stopped.
    fn listen(&self, leader: usize, mut listener: Box<dyn Listener>) {
        while super::wait_for_news(&mut *listener, self.poll_interval, &self.stopping) {
            self.wake_followers_of(leader);
        }
    }

    /// Waits out `follower`'s batch latency after a wake-up, so that what
    /// is saved meanwhile joins the catch-up's batches; a stop ends it.
    fn hold_back(&self, follower: usize) {
        let latency = self.system.nodes[follower]
            .process()
            .map_or(Duration::ZERO, ProcessApplication::batch_latency);
        let deadline = Instant::now() + latency;
        while !self.stopping.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(super::STOP_LATENCY));
        }
    }

    fn retrying_after(&self, follower: usize) -> Option<Arc<SystemError>> {
        lock(&self.retrying)
            .iter()
            .find(|(index, _)| *index == follower)
            .map(|(_, error)| Arc::clone(error))
    }

    /// A follower thread: catch up with each leader, then wait to be woken
    /// (or for the poll interval), until stopped or failed. While its store
    /// fails, it tries again, waiting longer each time.
    fn follow(&self, follower: usize, leaders: &[usize]) {
        let name = self.system.name(follower);
        let _span = tracing::debug_span!("es.follow", follower = name).entered();
        let mut backoff = Backoff::new();
        while !self.stopping.load(Ordering::SeqCst) {
            let pulled = leaders
                .iter()
                .try_for_each(|&leader| self.system.pull(leader, follower).map(drop));
            match pulled {
                Ok(()) => {
                    lock(&self.retrying).retain(|(index, _)| *index != follower);
                    backoff.reset();
                }
                Err(error) if is_transient(&error) => {
                    let wait = backoff.next();
                    tracing::warn!(follower = name, %error, ?wait, "follower trying again");
                    {
                        let mut retrying = lock(&self.retrying);
                        retrying.retain(|(index, _)| *index != follower);
                        retrying.push((follower, Arc::new(error)));
                    }
                    self.rounds.bump();
                    self.wakers[follower].wait(wait);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(follower = name, %error, "follower stopped");
                    lock(&self.errors).push((follower, Arc::new(error)));
                    self.rounds.bump();
                    return;
                }
            }
            self.rounds.bump();
            if self.wakers[follower].wait(self.poll_interval) {
                self.hold_back(follower);
            }
        }
    }
}
