//! A follower of one leader, kept up to date in a thread of its own: a
//! projection, or a process application whose leader is in another process
//! (across the network through `RemoteLeader`), or any [`Follower`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Backoff, DEFAULT_POLL_INTERVAL, is_transient, listen_to, lock, wait_for_news};
use crate::persistence::Signal;
use crate::system::{Follower, Leader, SystemError};

/// Keeps one follower up to date with one leader in a thread of its own: it
/// catches up from the follower's position when started, then takes in each
/// save to the leader as it happens, by this process or another (heard by
/// the leader's [`listen`](Leader::listen); looked for every poll interval
/// besides). [`wait`](Self::wait) gives a request handler read-your-writes.
/// A failure of the store or the network is tried again (0.1 s doubling to
/// 5 s); any other stops it ([`failure`](Self::failure)).
///
/// [`ProjectionRunner`](crate::system::ProjectionRunner) is this runner for
/// a projection.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use es_core::prelude::*;
/// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
/// # #[aggregate] pub struct Pallet { boxes: u32 }
/// # #[aggregate] impl Pallet { #[event("Loaded")] pub fn load(boxes: u32) -> Self { Pallet { boxes } } }
/// # #[aggregate] pub struct Manifest { boxes: u32 }
/// # #[aggregate] impl Manifest { #[event("Drawn")] pub fn draw(boxes: u32) -> Self { Manifest { boxes } } }
/// let yard = Arc::new(Application::builder().name("yard").in_memory().build()?);
/// let manifests = ProcessApplication::new(
///     Application::builder().name("manifests").in_memory().build()?,
///     Policies::new().on(|event: DomainEvent<PalletEvent>, context| {
///         let PalletEvent::Loaded { boxes } = event.payload;
///         context.collect(Manifest::draw(boxes));
///         Ok(())
///     }),
/// )?;
/// let runner = FollowerRunner::start(yard.clone(), manifests)?;
/// let saved = yard.save(&mut Pallet::load(12))?;
/// runner.wait(saved[0].notification_id, Duration::from_secs(5))?;
/// assert_eq!(runner.follower().position("yard")?, Some(1));
/// runner.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FollowerRunner<F: Follower + 'static> {
    shared: Arc<RunnerShared<F>>,
    thread: Option<JoinHandle<()>>,
}

struct RunnerShared<F> {
    leader: Arc<dyn Leader>,
    follower: F,
    stopping: AtomicBool,
    failure: Mutex<Option<Arc<SystemError>>>,
    /// The last failure while the store fails and the projection tries
    /// again, until a try succeeds.
    retrying: Mutex<Option<Arc<SystemError>>>,
    poll_interval: Duration,
    /// Bumped after each catch-up (and when it stops), for `wait`.
    rounds: Signal,
}

impl<F: Follower + 'static> std::fmt::Debug for FollowerRunner<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerRunner")
            .field("follower", &self.shared.follower.follower_name())
            .field("leader", &self.shared.leader.leader_name())
            .finish_non_exhaustive()
    }
}

impl<F: Follower + 'static> FollowerRunner<F> {
    /// Starts keeping `follower` up to date with `leader`, looking at its
    /// log at least every [`DEFAULT_POLL_INTERVAL`]. A leader without a name
    /// is a [`SystemError::Invalid`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use es_core::prelude::*;
    /// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
    /// # #[aggregate] pub struct Kettledrum { n: u32 }
    /// # #[aggregate] impl Kettledrum { #[event("Struck")] pub fn make() -> Self { Kettledrum { n: 1 } } }
    /// let leader = Arc::new(Application::builder().name("kettledrums").in_memory().build()?);
    /// let follower = ProcessApplication::new(
    ///     Application::builder().name("kettledrum-audit").in_memory().build()?,
    ///     Policies::new().on(|_: DomainEvent<KettledrumEvent>, _| Ok(())),
    /// )?;
    /// let runner = FollowerRunner::start(leader, follower)?;
    /// runner.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start<L: Leader + 'static>(leader: Arc<L>, follower: F) -> Result<Self, SystemError> {
        Self::start_with_poll_interval(leader, follower, DEFAULT_POLL_INTERVAL)
    }

    /// As [`start`](Self::start), with the poll interval given: how often
    /// the leader's log is read when its listener says nothing.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use es_core::prelude::*;
    /// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
    /// # #[aggregate] pub struct Tambourine { n: u32 }
    /// # #[aggregate] impl Tambourine { #[event("Shaken")] pub fn make() -> Self { Tambourine { n: 1 } } }
    /// let leader = Arc::new(Application::builder().name("tambourines").in_memory().build()?);
    /// let follower = ProcessApplication::new(
    ///     Application::builder().name("tambourine-audit").in_memory().build()?,
    ///     Policies::new().on(|_: DomainEvent<TambourineEvent>, _| Ok(())),
    /// )?;
    /// let runner = FollowerRunner::start_with_poll_interval(leader, follower, Duration::from_secs(60))?;
    /// runner.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_with_poll_interval<L: Leader + 'static>(
        leader: Arc<L>,
        follower: F,
        poll_interval: Duration,
    ) -> Result<Self, SystemError> {
        let leader: Arc<dyn Leader> = leader;
        if leader.leader_name().is_empty() {
            return Err(SystemError::Invalid(
                "a follower follows a named application: build it with \
                 Application::builder().name(..)"
                    .into(),
            ));
        }
        let shared = Arc::new(RunnerShared {
            leader,
            follower,
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
            retrying: Mutex::new(None),
            poll_interval,
            rounds: Signal::default(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("es-follower-{}", shared.follower.follower_name()))
                .spawn(move || shared.run())
                .map_err(|e| SystemError::Runner(format!("starting a follower's thread: {e}")))?
        };
        Ok(FollowerRunner {
            shared,
            thread: Some(thread),
        })
    }

    /// The follower, to read what it derived.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use es_core::prelude::*;
    /// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
    /// # #[aggregate] pub struct Triangle { n: u32 }
    /// # #[aggregate] impl Triangle { #[event("Rung")] pub fn make() -> Self { Triangle { n: 1 } } }
    /// let leader = Arc::new(Application::builder().name("triangles").in_memory().build()?);
    /// let follower = ProcessApplication::new(
    ///     Application::builder().name("triangle-audit").in_memory().build()?,
    ///     Policies::new().on(|_: DomainEvent<TriangleEvent>, _| Ok(())),
    /// )?;
    /// let runner = FollowerRunner::start(leader, follower)?;
    /// assert_eq!(runner.follower().name(), "triangle-audit");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn follower(&self) -> &F {
        &self.shared.follower
    }

    /// Waits until the follower has taken in notification `notification_id`
    /// of the leader. Fails if the follower stopped with an error, or when
    /// `timeout` passes.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use es_core::prelude::*;
    /// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
    /// # #[aggregate] pub struct Gong { n: u32 }
    /// # #[aggregate] impl Gong { #[event("Struck")] pub fn make() -> Self { Gong { n: 1 } } }
    /// let leader = Arc::new(Application::builder().name("gongs").in_memory().build()?);
    /// let follower = ProcessApplication::new(
    ///     Application::builder().name("gong-audit").in_memory().build()?,
    ///     Policies::new().on(|_: DomainEvent<GongEvent>, _| Ok(())),
    /// )?;
    /// let runner = FollowerRunner::start(leader.clone(), follower)?;
    /// let saved = leader.save(&mut Gong::make())?;
    /// runner.wait(saved[0].notification_id, Duration::from_secs(5))?;
    /// assert!(runner.wait(2, Duration::from_millis(10)).is_err()); // nothing saved yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self, notification_id: u64, timeout: Duration) -> Result<(), SystemError> {
        let leader = self.shared.leader.leader_name();
        let deadline = Instant::now() + timeout;
        loop {
            // Read before looking, so that a round that ends while we look
            // is not waited for in vain.
            let seen = self.shared.rounds.count();
            if self
                .shared
                .follower
                .position(leader)?
                .is_some_and(|position| position >= notification_id)
            {
                return Ok(());
            }
            if let Some(error) = self.shared.failure() {
                return Err(SystemError::Runner(format!(
                    "{} stopped before it reached notification {notification_id}: {error}",
                    self.shared.follower.follower_name()
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                let retrying = lock(&self.shared.retrying)
                    .as_ref()
                    .map(|error| format!(" (it is trying again after: {error})"))
                    .unwrap_or_default();
                return Err(SystemError::Runner(format!(
                    "{} did not reach notification {notification_id} within {timeout:?}{retrying}",
                    self.shared.follower.follower_name()
                )));
            }
            // Bounded, so that a position recorded by another process is seen too.
            let wait = (deadline - now).min(self.shared.poll_interval);
            self.shared.rounds.wait_past(seen, wait);
        }
    }

    /// The failure that stopped the follower, if one did: a policy's error,
    /// an event that does not decode; not a store's failure, which is tried
    /// again.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use es_core::prelude::*;
    /// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
    /// # #[aggregate] pub struct Cymbal { n: u32 }
    /// # #[aggregate] impl Cymbal { #[event("Crashed")] pub fn make() -> Self { Cymbal { n: 1 } } }
    /// let leader = Arc::new(Application::builder().name("cymbals").in_memory().build()?);
    /// let follower = ProcessApplication::new(
    ///     Application::builder().name("cymbal-audit").in_memory().build()?,
    ///     Policies::new().on(|_: DomainEvent<CymbalEvent>, _| Err("no cymbals today".into())),
    /// )?;
    /// let runner = FollowerRunner::start(leader.clone(), follower)?;
    /// let saved = leader.save(&mut Cymbal::make())?;
    /// assert!(runner.wait(saved[0].notification_id, Duration::from_secs(5)).is_err());
    /// assert!(runner.failure().is_some_and(|e| e.to_string().contains("no cymbals today")));
    /// assert!(runner.stop().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure(&self) -> Option<Arc<SystemError>> {
        self.shared.failure()
    }

    /// Stops the thread and waits for it; the failure that stopped the
    /// follower before, if there was one. Dropping the runner stops it too.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use es_core::prelude::*;
    /// use es_core::system::{FollowerRunner, Policies, ProcessApplication};
    /// # #[aggregate] pub struct Maraca { n: u32 }
    /// # #[aggregate] impl Maraca { #[event("Shaken")] pub fn make() -> Self { Maraca { n: 1 } } }
    /// let leader = Arc::new(Application::builder().name("maracas").in_memory().build()?);
    /// let follower = ProcessApplication::new(
    ///     Application::builder().name("maraca-audit").in_memory().build()?,
    ///     Policies::new().on(|_: DomainEvent<MaracaEvent>, _| Ok(())),
    /// )?;
    /// let runner = FollowerRunner::start(leader, follower)?;
    /// assert!(runner.stop().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(mut self) -> Result<(), SystemError> {
        self.shut_down();
        match self.shared.failure() {
            Some(error) => Err(SystemError::Runner(format!(
                "{} had stopped: {error}",
                self.shared.follower.follower_name()
            ))),
            None => Ok(()),
        }
    }

    fn shut_down(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // The thread notices within a tenth of a second; it does not
            // panic unless a handler does, which only ends the thread.
            let _ = thread.join();
        }
    }
}

impl<F: Follower + 'static> Drop for FollowerRunner<F> {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl<F: Follower> RunnerShared<F> {
    fn failure(&self) -> Option<Arc<SystemError>> {
        lock(&self.failure).clone()
    }

    fn run(&self) {
        // Made before the first catch-up, so that nothing saved while it
        // runs goes unheard.
        let mut listener = listen_to(&*self.leader, self.poll_interval);
        let mut backoff = Backoff::new();
        let name = self.follower.follower_name();
        while !self.stopping.load(Ordering::SeqCst) {
            let mut wait = self.poll_interval;
            match self.follower.pull_and_process(&*self.leader, None) {
                Ok(_) => {
                    *lock(&self.retrying) = None;
                    backoff.reset();
                }
                Err(error) if is_transient(&error) => {
                    wait = backoff.next();
                    tracing::warn!(follower = name, %error, ?wait, "follower trying again");
                    *lock(&self.retrying) = Some(Arc::new(error));
                }
                Err(error) => {
                    tracing::warn!(follower = name, %error, "follower stopped");
                    *lock(&self.failure) = Some(Arc::new(error));
                    self.rounds.bump();
                    return;
                }
            }
            self.rounds.bump();
            if !wait_for_news(&mut *listener, wait, &self.stopping) {
                return;
            }
        }
    }
}
