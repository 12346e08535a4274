//! The single-threaded runner: followers process in the thread that saved,
//! before its save returns. Deterministic, for tests and small programs.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::{application, process};
use crate::application::Application;
use crate::system::error::SystemError;
use crate::system::follower::ProcessApplication;
use crate::system::pipes::System;

/// Runs a [`System`] in the calling thread: a save to a leader returns only
/// once every follower downstream has processed it (and what they saved in
/// turn), so a test can save and then look. A follower's failure is the
/// error of the save that prompted it (an [`Error::Subscriber`] whose source
/// is the [`SystemError`]); the leader's events are saved all the same, and
/// the follower resumes at the failed event on the next [`run`](Self::run).
///
/// [`Error::Subscriber`]: crate::Error::Subscriber
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::{Policies, ProcessApplication, SingleThreadedRunner, System};
/// # #[aggregate] pub struct Parcel { lines: u32 }
/// # #[aggregate] impl Parcel { #[event("Placed")] pub fn place(lines: u32) -> Self { Parcel { lines } } }
/// # #[aggregate] pub struct Label { lines: u32 }
/// # #[aggregate] impl Label { #[event("Started")] pub fn start(lines: u32) -> Self { Label { lines } } }
/// let app = |name: &str| Application::builder().name(name).in_memory().build();
/// let picking = Policies::new().on(|event: DomainEvent<ParcelEvent>, context| {
///     let ParcelEvent::Placed { lines } = event.payload;
///     context.collect(Label::start(lines));
///     Ok(())
/// });
/// let system = System::builder()
///     .application(app("parcels")?)
///     .process(ProcessApplication::new(app("warehouse")?, picking)?)
///     .pipe(["parcels", "warehouse"])
///     .build()?;
/// let runner = SingleThreadedRunner::start(system)?;
/// runner.application("parcels")?.save(&mut Parcel::place(2))?;
/// let warehouse = runner.application("warehouse")?;
/// assert_eq!(warehouse.notification_log().max_id()?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SingleThreadedRunner {
    inner: Arc<Inner>,
}

struct Inner {
    system: System,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A run is in progress (in this thread, when prompted from within it).
    running: bool,
    /// A leader saved while the run was in progress: go round again.
    again: bool,
}

impl std::fmt::Debug for SingleThreadedRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleThreadedRunner")
            .field("system", &self.inner.system)
            .finish()
    }
}

impl SingleThreadedRunner {
    /// Takes the system, has its leaders prompt their followers on each
    /// save, and catches every follower up with what its leaders hold.
    pub fn start(mut system: System) -> Result<Self, SystemError> {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            system.on_each_save(move |_| match weak.upgrade() {
                Some(inner) => inner.run().map(drop),
                None => Ok(()),
            });
            Inner {
                system,
                state: Mutex::new(State::default()),
            }
        });
        let runner = SingleThreadedRunner { inner };
        runner.run()?;
        Ok(runner)
    }

    /// Processes everything pending, until no follower finds anything new;
    /// returns how many events the policies processed.
    pub fn run(&self) -> Result<usize, SystemError> {
        self.inner.run()
    }

    /// The application named `name`: save to it, read from it.
    pub fn application(&self, name: &str) -> Result<&Application, SystemError> {
        application(&self.inner.system, name)
    }

    /// The process application named `name`.
    pub fn process(&self, name: &str) -> Result<&ProcessApplication, SystemError> {
        process(&self.inner.system, name)
    }
}

impl Inner {
    fn run(&self) -> Result<usize, SystemError> {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.running {
                state.again = true;
                return Ok(0);
            }
            state.running = true;
        }
        let result = self.run_to_quiet();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.running = false;
        state.again = false;
        result
    }

    /// Rounds over every pipe until one finds nothing new. A follower that
    /// fails is left out of the rest of the run (the others carry on), and
    /// the first failure is the run's result.
    fn run_to_quiet(&self) -> Result<usize, SystemError> {
        let mut total = 0;
        let mut failed: Vec<usize> = Vec::new();
        let mut first_failure = None;
        loop {
            let mut processed = 0;
            for &(leader, follower) in &self.system.edges {
                if failed.contains(&follower) {
                    continue;
                }
                match self.system.pull(leader, follower) {
                    Ok(count) => processed += count,
                    Err(error) => {
                        failed.push(follower);
                        first_failure.get_or_insert(error);
                    }
                }
            }
            total += processed;
            let again = std::mem::take(
                &mut self
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .again,
            );
            if processed == 0 && !again {
                return first_failure.map_or(Ok(total), Err);
            }
        }
    }
}
