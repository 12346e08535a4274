//! An [`Application`] for async programs (feature `async`, tokio).
//!
//! The stores' calls block: SQLite works on the calling thread, and the
//! PostgreSQL store waits for the server's reply. Called from an async
//! handler, such a call holds one of the executor's few threads for as long
//! as it takes, and every task queued behind it waits too.
//! [`AsyncApplication`] runs each call on tokio's blocking pool instead
//! (`spawn_blocking`), so the executor's threads only ever wait for a
//! wake-up.
//!
//! Why the blocking pool rather than async database clients: a hop to the
//! pool and back costs about 20 µs on a two-core machine (benchmark A0 in
//! BENCHMARKS.md), beside 150 µs for a SQLite save synced to disk and
//! 390 µs for a PostgreSQL one there, while one code path for both kinds of
//! program keeps the store's guarantees (group commit, the checked retry of
//! a lost COMMIT reply) written and tested once. A command is best given
//! to [`AsyncApplication::call`] whole (load, decide, save), which makes one
//! hop for all of it.
//!
//! Work handed to the pool runs to its end even if the future awaiting it
//! is dropped (a client that hangs up): a save that was started is either
//! committed or refused, never cut off half-way, and it is then simply not
//! reported to anyone.

use std::sync::Arc;

use super::{Application, Recording, Save};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::DomainEvent;
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::{Notification, select_notifications_waiting};

/// An [`Application`] whose calls never block the async executor: each runs
/// on tokio's blocking pool. Cheap to clone (an `Arc`); share one per
/// application between handlers, as axum's state.
///
/// ```
/// # #[cfg(feature = "async")] {
/// use es_core::AsyncApplication;
/// use es_core::prelude::*;
/// # #[aggregate] pub struct Teapot { cups: u32 }
/// # #[aggregate] impl Teapot {
/// #     #[event("Brewed")] pub fn brew(cups: u32) -> Self { Teapot { cups } }
/// #     #[event("Poured")] pub fn pour(&mut self) { self.cups -= 1; }
/// # }
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
/// let (pot, _) = app.save(Teapot::brew(4)).await?;
///
/// // A command as one call: loaded, changed and saved on the blocking pool.
/// let id = pot.id();
/// let cups = app
///     .call({
///         let id = id.clone();
///         move |app| {
///             let mut pot: Teapot = app.repository().get(id)?;
///             pot.pour();
///             app.save(&mut pot)?;
///             Ok::<_, es_core::Error>(pot.cups)
///         }
///     })
///     .await?;
/// assert_eq!(cups, 3);
/// assert_eq!(app.get::<Teapot>(id).await?.version(), 2);
/// # Ok::<(), es_core::Error>(())
/// # })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AsyncApplication {
    app: Arc<Application>,
}

impl std::fmt::Debug for AsyncApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AsyncApplication").field(&self.app).finish()
    }
}

impl From<Application> for AsyncApplication {
    fn from(app: Application) -> Self {
        AsyncApplication::new(app)
    }
}

impl From<Arc<Application>> for AsyncApplication {
    fn from(app: Arc<Application>) -> Self {
        AsyncApplication { app }
    }
}

impl AsyncApplication {
    /// Wraps `app` for async callers.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// let app = AsyncApplication::new(Application::builder().name("shop").in_memory().build()?);
    /// assert_eq!(app.application().name(), Some("shop"));
    /// # }
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn new(app: Application) -> Self {
        AsyncApplication { app: Arc::new(app) }
    }

    /// The application itself, for what blocks briefly or is done outside
    /// the executor (serving its log, running followers from it).
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use std::sync::Arc;
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// let app = AsyncApplication::new(Application::builder().name("shop").in_memory().build()?);
    /// let shared: Arc<Application> = Arc::clone(app.application()); // for log_router, say
    /// assert_eq!(shared.name(), Some("shop"));
    /// # }
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn application(&self) -> &Arc<Application> {
        &self.app
    }

    /// Runs `work` with the application on tokio's blocking pool and gives
    /// back what it returns: the way to run a command (load, decide, save) in
    /// one hop. A panic in `work` is resumed here, as if `work` had run in
    /// place. If the runtime is shutting down before `work` starts, it never
    /// runs and the answer is [`Error::ShuttingDown`].
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
    /// let max = app.call(|app| app.notification_log().max_id()).await?;
    /// assert_eq!(max, None);
    /// # Ok::<(), es_core::Error>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn call<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&Application) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let app = Arc::clone(&self.app);
        on_blocking_pool(move || work(&app)).await
    }

    /// Saves `aggregates` (one aggregate, a tuple, an array or a `Vec` of
    /// them, owned) as [`Application::save`] does, atomically, and hands them
    /// back with the recordings. On an error they are dropped: a conflict
    /// means they are out of date, so load them again.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Parasol { open: bool }
    /// # #[aggregate] impl Parasol { #[event("Planted")] pub fn plant() -> Self { Parasol { open: false } } }
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
    /// let ((left, right), recordings) = app.save((Parasol::plant(), Parasol::plant())).await?;
    /// assert_eq!(recordings.len(), 2);
    /// assert_ne!(left.id(), right.id());
    /// # Ok::<(), es_core::Error>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn save<S>(&self, mut aggregates: S) -> Result<(S, Vec<Recording>)>
    where
        S: Save + Send + 'static,
    {
        self.call(move |app| {
            let recordings = app.save(&mut aggregates)?;
            Ok((aggregates, recordings))
        })
        .await
    }

    /// The aggregate of type `A` with `id`, as [`Repository::get`](super::Repository::get).
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Kayak { seats: u8 }
    /// # #[aggregate] impl Kayak { #[event("Launched")] pub fn launch(seats: u8) -> Self { Kayak { seats } } }
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
    /// let (kayak, _) = app.save(Kayak::launch(2)).await?;
    /// assert_eq!(app.get::<Kayak>(kayak.id()).await?.seats, 2);
    /// assert!(app.get::<Kayak>(Uuid::new_v4()).await.is_err());
    /// # Ok::<(), es_core::Error>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn get<A: Aggregate>(&self, id: impl Into<OriginatorId>) -> Result<A> {
        let id = id.into();
        self.call(move |app| app.repository().get(id)).await
    }

    /// The events of the aggregate of type `A` with `id`, oldest first, as
    /// [`Repository::history`](super::Repository::history).
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Hammock { swings: u32 }
    /// # #[aggregate] impl Hammock {
    /// #     #[event("Hung")] pub fn hang() -> Self { Hammock { swings: 0 } }
    /// #     #[event("Swung")] pub fn swing(&mut self) { self.swings += 1; }
    /// # }
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
    /// let mut hammock = Hammock::hang();
    /// hammock.swing();
    /// let (hammock, _) = app.save(hammock).await?;
    /// let history = app.history::<Hammock>(hammock.id()).await?;
    /// assert!(matches!(history[1].payload, HammockEvent::Swung {}));
    /// # Ok::<(), es_core::Error>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn history<A: Aggregate>(
        &self,
        id: impl Into<OriginatorId>,
    ) -> Result<Vec<DomainEvent<A::Event>>> {
        let id = id.into();
        self.call(move |app| app.repository().history::<A>(id))
            .await
    }

    /// Up to `limit` notifications from id `start` on, as
    /// [`NotificationLog::select`](super::NotificationLog::select).
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Skiff { oars: u8 }
    /// # #[aggregate] impl Skiff { #[event("Rowed")] pub fn row() -> Self { Skiff { oars: 2 } } }
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
    /// app.save(Skiff::row()).await?;
    /// let notifications = app.notifications(1, 10).await?;
    /// assert_eq!(notifications[0].event.topic, "Skiff.Rowed");
    /// # Ok::<(), es_core::Error>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn notifications(&self, start: u64, limit: usize) -> Result<Vec<Notification>> {
        self.call(move |app| app.notification_log().select(start, limit))
            .await
    }

    /// The notifications after id `after` (from the start with `None`), as
    /// soon as there are any: waits up to `timeout` for the log to grow, and
    /// answers an empty list if it did not. Waiting holds a thread of the
    /// blocking pool, not of the executor.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use std::time::Duration;
    /// use es_core::AsyncApplication;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Canoe { paddles: u8 }
    /// # #[aggregate] impl Canoe { #[event("Carried")] pub fn carry() -> Self { Canoe { paddles: 1 } } }
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// # runtime.block_on(async {
    /// let app = AsyncApplication::new(Application::builder().in_memory().build()?);
    /// let waiting = {
    ///     let app = app.clone();
    ///     tokio::spawn(async move { app.wait_for_notifications(None, 100, Duration::from_secs(10)).await })
    /// };
    /// app.save(Canoe::carry()).await?;
    /// let news = waiting.await.expect("the waiting task")?;
    /// assert_eq!(news[0].event.topic, "Canoe.Carried");
    /// # Ok::<(), es_core::Error>(())
    /// # })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait_for_notifications(
        &self,
        after: Option<u64>,
        limit: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<Notification>> {
        self.call(move |app| {
            let start = after.map_or(1, |id| id.saturating_add(1));
            select_notifications_waiting(app.recorder(), start, limit, &[], timeout)
        })
        .await
    }
}

/// Runs `work` on tokio's blocking pool; a panic in it is resumed here, and
/// work the runtime never started (it is shutting down) is
/// [`Error::ShuttingDown`].
pub(crate) async fn on_blocking_pool<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(failure) => match failure.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::ShuttingDown.into()),
        },
    }
}
