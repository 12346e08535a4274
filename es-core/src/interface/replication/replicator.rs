//! The master's side: the replicating types, the subscriptions, and a
//! delivery per active subscription, kept in step with the store by a
//! supervising thread (so that subscriptions created, parked, resumed or
//! deleted by another process of the master are followed here too).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::delivery::{Counters, Delivery, DeliveryConfig};
use super::history::{RecordSource, Source};
use super::record::Replicating;
use super::store::SubscriptionStore;
use super::subscription::{Start, Status, Subscription, SubscriptionError, SubscriptionRequest};
use crate::application::Application;
use crate::system::FollowerRunner;

/// How often the supervisor looks at the store unless woken.
const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// Builds a [`Replicator`]: the types it replicates, the tokens that may
/// subscribe, how it delivers.
pub struct ReplicatorBuilder {
    app: Arc<Application>,
    store: Option<SubscriptionStore>,
    sources: Vec<Box<dyn RecordSource>>,
    tokens: BTreeMap<String, Option<BTreeSet<String>>>,
    config: DeliveryConfig,
    refresh: Duration,
}

impl std::fmt::Debug for ReplicatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatorBuilder")
            .field("contracts", &self.contracts())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ReplicatorBuilder {
    fn contracts(&self) -> Vec<&'static str> {
        self.sources
            .iter()
            .map(|source| source.contract())
            .collect()
    }

    /// Replicates the aggregate `A` under its contract name.
    pub fn replicate<A: Replicating>(mut self) -> Self {
        self.sources.push(Box::new(Source::<A>::new()));
        self
    }

    /// Keeps subscriptions in `store` rather than the application's database.
    pub fn store(mut self, store: SubscriptionStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Lets `token` manage subscriptions to `contracts` through the API.
    pub fn token(
        mut self,
        token: impl Into<String>,
        contracts: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let contracts = contracts.into_iter().map(Into::into).collect();
        self.tokens.insert(token.into(), Some(contracts));
        self
    }

    /// Lets `token` manage subscriptions to every type.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.tokens.insert(token.into(), None);
        self
    }

    /// Delivers as `config` says.
    pub fn delivery(mut self, config: DeliveryConfig) -> Self {
        self.config = config;
        self
    }

    /// Looks at the store every `interval` for subscriptions changed by
    /// another process (1 s).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh = interval;
        self
    }

    /// Starts delivering every active subscription.
    pub fn start(self) -> Result<Replicator, SubscriptionError> {
        if self.app.name().unwrap_or_default().is_empty() {
            return Err(SubscriptionError::Invalid(
                "the replicated application needs a name: positions are tracked under it; \
                 build it with Application::builder().name(..)"
                    .into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for source in &self.sources {
            if !seen.insert(source.contract()) {
                return Err(SubscriptionError::Invalid(format!(
                    "two replicated types share the contract name {:?}",
                    source.contract()
                )));
            }
        }
        let store = match self.store {
            Some(store) => store,
            None => SubscriptionStore::of(&self.app)?,
        };
        let inner = Arc::new(Inner {
            app: self.app,
            store,
            sources: Arc::new(self.sources),
            tokens: self.tokens,
            config: self.config,
            refresh: self.refresh,
            workers: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
        });
        inner.sync()?;
        let supervisor = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("es-replicator".into())
                .spawn(move || inner.supervise())
                .map_err(|e| {
                    SubscriptionError::Invalid(format!("starting the replicator's thread: {e}"))
                })?
        };
        Ok(Replicator {
            inner,
            supervisor: Some(supervisor),
        })
    }
}

/// The master's side of replication: subscriptions of other services to the
/// changes of the replicating aggregates of one application, and their
/// delivery.
///
/// Each active subscription is delivered by a follower of the application's
/// log in a thread of its own, from its recorded position. Several
/// processes may run a replicator of the same application: they share the
/// subscriptions and positions, and a batch both send is applied once.
///
/// ```
/// use std::sync::Arc;
/// use es_core::prelude::*;
/// use es_core::interface::replication::{Replicator, Start, SubscriptionRequest};
///
/// #[replicating("flat")]
/// #[aggregate]
/// pub struct Flat { rooms: u32 }
/// #[aggregate]
/// impl Flat { #[event("Listed")] pub fn list(rooms: u32) -> Self { Flat { rooms } } }
///
/// let app = Arc::new(Application::builder().name("lettings").in_memory().build()?);
/// let replicator = Replicator::builder(Arc::clone(&app)).replicate::<Flat>().start()?;
/// let request = SubscriptionRequest::new("agency", "http://127.0.0.1:9/cb", ["flat".parse()?])
///     .starting(Start::Beginning);
/// let subscription = replicator.subscribe(request)?;
/// assert_eq!(subscription.secret.len(), 64);
/// assert_eq!(replicator.subscriptions()?.len(), 1);
/// assert!(replicator.delete("agency")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Replicator {
    inner: Arc<Inner>,
    supervisor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("application", &self.inner.app.name())
            .field("contracts", &self.inner.contracts())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    app: Arc<Application>,
    store: SubscriptionStore,
    sources: Arc<Vec<Box<dyn RecordSource>>>,
    tokens: BTreeMap<String, Option<BTreeSet<String>>>,
    config: DeliveryConfig,
    refresh: Duration,
    workers: Mutex<BTreeMap<String, Worker>>,
    stopping: AtomicBool,
    wake: (Mutex<bool>, Condvar),
}

/// A subscription's delivery in this process.
struct Worker {
    subscription: Subscription,
    runner: Option<FollowerRunner<Delivery>>,
    stopping: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Worker {
    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Dropping the runner joins its thread, which sees `stopping`
        // within a few milliseconds, even mid-backoff.
        self.runner = None;
    }
}

/// How a subscription's delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SubscriptionStatus {
    /// The subscription's name.
    pub name: String,
    /// Delivered, or parked.
    pub status: Status,
    /// The id of the last notification delivered (or passed over).
    pub position: u64,
    /// The id of the last notification in the master's log.
    pub last_id: u64,
    /// Notifications of the log after the position.
    pub lag_events: u64,
    /// How long ago the oldest notification not yet delivered was saved.
    pub lag_seconds: f64,
    /// Records acknowledged by the receiver since this process started.
    pub delivered: u64,
    /// Failed deliveries since this process started.
    pub failed: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the last batch was acknowledged.
    pub last_delivery_at: Option<DateTime<Utc>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Replicator {
    /// A replicator of `app`'s changes; name the types with
    /// [`replicate`](ReplicatorBuilder::replicate).
    pub fn builder(app: Arc<Application>) -> ReplicatorBuilder {
        ReplicatorBuilder {
            app,
            store: None,
            sources: Vec::new(),
            tokens: BTreeMap::new(),
            config: DeliveryConfig::default(),
            refresh: DEFAULT_REFRESH,
        }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The application replicated.
    pub fn application(&self) -> &Arc<Application> {
        &self.inner.app
    }

    /// Creates a subscription and starts delivering it. The request is
    /// checked first ([`SubscriptionRequest::check`], and that each filter
    /// names a replicated type): nothing is stored if it fails.
    pub fn subscribe(
        &self,
        request: SubscriptionRequest,
    ) -> Result<Subscription, SubscriptionError> {
        self.inner.subscribe(request)
    }

    /// Every subscription, by name.
    pub fn subscriptions(&self) -> Result<Vec<Subscription>, SubscriptionError> {
        Ok(self.inner.store.all()?)
    }

    /// The subscription `name`, if there is one.
    pub fn subscription(&self, name: &str) -> Result<Option<Subscription>, SubscriptionError> {
        Ok(self.inner.store.get(name)?)
    }

    /// Deletes the subscription `name` and stops its delivery; whether there was one.
    pub fn delete(&self, name: &str) -> Result<bool, SubscriptionError> {
        let deleted = self.inner.store.delete(name)?;
        self.inner.sync()?;
        Ok(deleted)
    }

    /// How the subscription `name` stands, if there is one.
    pub fn status(&self, name: &str) -> Result<Option<SubscriptionStatus>, SubscriptionError> {
        self.inner.status(name)
    }

    /// Delivers the parked subscription `name` again from its position.
    pub fn resume(&self, name: &str) -> Result<Option<SubscriptionStatus>, SubscriptionError> {
        self.inner.resume(name)
    }

    /// Waits until the subscription `name` has delivered up to
    /// `notification_id`; an error if it is parked, deleted, or the time is up.
    pub fn wait(
        &self,
        name: &str,
        notification_id: u64,
        timeout: Duration,
    ) -> Result<(), SubscriptionError> {
        let deadline = Instant::now() + timeout;
        let Some(subscription) = self.inner.store.get(name)? else {
            return Err(SubscriptionError::NotFound(name.to_owned()));
        };
        // The position alone is read at each look; the whole status, which
        // reads the log too, a few times a second and at the end.
        let tracking = subscription.tracking_name();
        let mut looks = 0u64;
        loop {
            looks += 1;
            let position = self
                .inner
                .app
                .process_recorder()
                .max_tracking_id(&tracking)?
                .unwrap_or(0)
                .max(subscription.start_after);
            if position >= notification_id {
                return Ok(());
            }
            let timed_out = Instant::now() >= deadline;
            if looks.is_multiple_of(20) || timed_out {
                let Some(status) = self.inner.status(name)? else {
                    return Err(SubscriptionError::NotFound(name.to_owned()));
                };
                let last_error = status
                    .last_error
                    .map(|error| format!(": {error}"))
                    .unwrap_or_default();
                if status.status == Status::Parked {
                    return Err(SubscriptionError::Invalid(format!(
                        "subscription {name:?} is parked at {}{last_error}",
                        status.position
                    )));
                }
                if timed_out {
                    return Err(SubscriptionError::Invalid(format!(
                        "subscription {name:?} reached {} of {notification_id} within \
                         {timeout:?}{last_error}",
                        status.position
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops every delivery; a stopped replicator delivers nothing more.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.poke();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
        for worker in lock(&self.inner.workers).values_mut() {
            worker.stop();
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Inner {
    fn contracts(&self) -> Vec<&'static str> {
        self.sources
            .iter()
            .map(|source| source.contract())
            .collect()
    }

    /// Whether `token` may manage subscriptions to `contracts`.
    pub(crate) fn authorize<'a>(
        &self,
        token: Option<&str>,
        contracts: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), SubscriptionError> {
        let allowed = token
            .and_then(|token| self.tokens.get(token))
            .ok_or(SubscriptionError::Unauthenticated)?;
        if let Some(allowed) = allowed {
            for contract in contracts {
                if !allowed.contains(contract) {
                    return Err(SubscriptionError::Forbidden(contract.to_owned()));
                }
            }
        }
        Ok(())
    }

    /// Checks that every filter of `request` names a replicated type.
    pub(crate) fn check_types(
        &self,
        request: &SubscriptionRequest,
    ) -> Result<(), SubscriptionError> {
        let known = self.contracts();
        for filter in &request.filters {
            if !known.contains(&filter.contract.as_str()) {
                return Err(SubscriptionError::UnknownType(
                    filter.contract.clone(),
                    known.clone(),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn subscribe(
        &self,
        request: SubscriptionRequest,
    ) -> Result<Subscription, SubscriptionError> {
        request.check()?;
        self.check_types(&request)?;
        let start_after = match request.start {
            Start::Beginning => 0,
            Start::Now => self.app.recorder().max_notification_id()?.unwrap_or(0),
        };
        let subscription = Subscription::create(request, start_after);
        self.store.insert(&subscription)?;
        self.sync()?;
        Ok(subscription)
    }

    /// Delivers the subscription `name` again, parked or given up.
    pub(crate) fn resume(
        &self,
        name: &str,
    ) -> Result<Option<SubscriptionStatus>, SubscriptionError> {
        let Some(subscription) = self.store.get(name)? else {
            return Ok(None);
        };
        if let Some(worker) = lock(&self.workers).get_mut(name) {
            let gave_up = worker
                .runner
                .as_ref()
                .is_some_and(|runner| runner.failure().is_some());
            if gave_up {
                worker.stop();
            }
        }
        self.store
            .set_status(name, subscription.id, Status::Active, None)?;
        self.sync()?;
        self.status(name)
    }

    pub(crate) fn store(&self) -> &SubscriptionStore {
        &self.store
    }

    fn poke(&self) {
        let (woken, signal) = &self.wake;
        *lock(woken) = true;
        signal.notify_all();
    }

    fn supervise(&self) {
        while !self.stopping.load(Ordering::SeqCst) {
            if let Err(error) = self.sync() {
                tracing::warn!(%error, "the replicator cannot read its subscriptions");
            }
            let (woken, signal) = &self.wake;
            let mut woken = lock(woken);
            if !*woken {
                woken = signal
                    .wait_timeout(woken, self.refresh)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            *woken = false;
        }
    }

    /// Brings the deliveries of this process in line with the store: starts
    /// those of new or resumed subscriptions, stops those of deleted or
    /// parked ones, and parks those whose delivery gave up.
    pub(crate) fn sync(&self) -> Result<(), SubscriptionError> {
        let stored: BTreeMap<String, Subscription> = self
            .store
            .all()?
            .into_iter()
            .map(|subscription| (subscription.name.clone(), subscription))
            .collect();
        let mut workers = lock(&self.workers);
        workers.retain(|name, worker| {
            let keep = stored
                .get(name)
                .is_some_and(|subscription| subscription.id == worker.subscription.id);
            if !keep {
                worker.stop();
            }
            keep
        });
        for (name, mut subscription) in stored {
            let worker = workers.entry(name).or_insert_with(|| Worker {
                subscription: subscription.clone(),
                runner: None,
                stopping: Arc::new(AtomicBool::new(false)),
                counters: Arc::default(),
            });
            let gave_up = worker
                .runner
                .as_ref()
                .and_then(FollowerRunner::failure)
                .filter(|_| !self.stopping.load(Ordering::SeqCst));
            if let Some(error) = gave_up {
                let error = error.to_string();
                tracing::warn!(
                    subscription = subscription.name,
                    error,
                    "subscription parked"
                );
                self.store.set_status(
                    &subscription.name,
                    subscription.id,
                    Status::Parked,
                    Some(error.clone()),
                )?;
                subscription.status = Status::Parked;
                subscription.last_error = Some(error);
            }
            match (subscription.status, worker.runner.is_some()) {
                (Status::Parked, true) => worker.stop(),
                (Status::Active, false) if !self.stopping.load(Ordering::SeqCst) => {
                    worker.stopping = Arc::new(AtomicBool::new(false));
                    worker.counters.failures_in_a_row.store(0, Ordering::SeqCst);
                    let delivery = Delivery::new(
                        subscription.clone(),
                        Arc::clone(&self.app),
                        Arc::clone(&self.sources),
                        self.config.clone(),
                        Arc::clone(&worker.stopping),
                        Arc::clone(&worker.counters),
                    );
                    let runner = FollowerRunner::start(Arc::clone(&self.app), delivery)
                        .map_err(|e| SubscriptionError::Invalid(e.to_string()))?;
                    worker.runner = Some(runner);
                }
                _ => {}
            }
            worker.subscription = subscription;
        }
        Ok(())
    }

    pub(crate) fn status(
        &self,
        name: &str,
    ) -> Result<Option<SubscriptionStatus>, SubscriptionError> {
        let Some(subscription) = self.store.get(name)? else {
            return Ok(None);
        };
        let (counters, failure) = {
            let workers = lock(&self.workers);
            let worker = workers
                .get(name)
                .filter(|worker| worker.subscription.id == subscription.id);
            (
                worker.map(|worker| Arc::clone(&worker.counters)),
                worker
                    .and_then(|worker| worker.runner.as_ref()?.failure())
                    .map(|error| error.to_string()),
            )
        };
        let recorder = self.app.process_recorder();
        let position = recorder
            .max_tracking_id(&subscription.tracking_name())?
            .unwrap_or(0)
            .max(subscription.start_after);
        let last_id = self.app.recorder().max_notification_id()?.unwrap_or(0);
        let lag_events = last_id.saturating_sub(position);
        let lag_seconds = if lag_events == 0 {
            0.0
        } else {
            self.app
                .recorder()
                .select_notifications(position + 1, 1, None, &[])?
                .first()
                .and_then(|oldest| self.app.mapper().to_any_event(&oldest.event).ok())
                .map_or(0.0, |event| {
                    (Utc::now() - event.timestamp).num_milliseconds().max(0) as f64 / 1000.0
                })
        };
        let counters = counters.unwrap_or_default();
        let status = if failure.is_some() {
            Status::Parked
        } else {
            subscription.status
        };
        Ok(Some(SubscriptionStatus {
            name: subscription.name,
            status,
            position,
            last_id,
            lag_events,
            lag_seconds,
            delivered: counters.delivered.load(Ordering::SeqCst),
            failed: counters.failed.load(Ordering::SeqCst),
            last_error: failure
                .or(subscription.last_error)
                .or_else(|| lock(&counters.last_error).clone()),
            last_delivery_at: *lock(&counters.last_delivery),
        }))
    }
}
