//! A process application: an application that follows others, running its
//! policy on each of their events exactly once.

use std::time::Duration;

use crate::application::Application;
use crate::domain::event::{AnyEvent, DomainEvent};
use crate::error::Result;
use crate::persistence::{
    DEFAULT_LISTEN_POLL_INTERVAL, Listener, Notification, PollingListener, StoredEvent,
};

use super::catch_up::{Batches, batch_tracking, catch_up, decode, policy_error};
use super::error::SystemError;
use super::policy::{Policy, ProcessingContext};

/// An application whose notification log a follower reads: a local
/// [`Application`], or one across the network (`RemoteLeader`, feature
/// `http-client`).
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::Leader;
/// # #[aggregate] pub struct Memo { text: String }
/// # #[aggregate] impl Memo { #[event("Written")] pub fn write(text: String) -> Self { Memo { text } } }
/// let memos = Application::builder().name("memos").in_memory().build()?;
/// memos.save(&mut Memo::write("hello".into()))?;
/// let leader: &dyn Leader = &memos;
/// assert_eq!((leader.leader_name(), leader.last_id()?), ("memos", Some(1)));
/// let first = leader.notifications(1, 10)?.remove(0);
/// assert_eq!(leader.decode(&first.event)?.topic(), "Memo.Written");
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait Leader: Send + Sync {
    /// The name the follower tracks its position under.
    fn leader_name(&self) -> &str;

    /// Up to `limit` notifications from id `start` on, in id order.
    fn notifications(&self, start: u64, limit: usize) -> Result<Vec<Notification>>;

    /// One of its events decoded, as the leader encoded it (its transcoder,
    /// compressor and cipher).
    fn decode(&self, stored: &StoredEvent) -> Result<DomainEvent<Box<dyn AnyEvent>>>;

    /// The id of its last notification, if it has any.
    fn last_id(&self) -> Result<Option<u64>>;

    /// A listener that says when its log may have grown, so that a runner
    /// of its followers waits for news rather than reading the log in a
    /// loop. By default one that says "maybe" every
    /// [`DEFAULT_LISTEN_POLL_INTERVAL`](crate::persistence::DEFAULT_LISTEN_POLL_INTERVAL);
    /// an [`Application`] gives its store's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use es_core::prelude::*;
    /// use es_core::system::Leader;
    /// # #[aggregate] pub struct Quill { nib: u8 }
    /// # #[aggregate] impl Quill { #[event("Cut")] pub fn cut() -> Self { Quill { nib: 1 } } }
    /// let scribes = Application::builder().name("scribes").in_memory().build()?;
    /// let mut listener = Leader::listen(&scribes)?;
    /// scribes.save(&mut Quill::cut())?;
    /// assert!(listener.wait(Duration::from_secs(5))?);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    fn listen(&self) -> Result<Box<dyn Listener>> {
        Ok(Box::new(PollingListener::every(
            DEFAULT_LISTEN_POLL_INTERVAL,
        )))
    }
}

impl Leader for Application {
    fn leader_name(&self) -> &str {
        self.name().unwrap_or_default()
    }

    fn notifications(&self, start: u64, limit: usize) -> Result<Vec<Notification>> {
        self.recorder()
            .select_notifications(start, limit, None, &[])
    }

    fn decode(&self, stored: &StoredEvent) -> Result<DomainEvent<Box<dyn AnyEvent>>> {
        self.mapper().to_any_event(stored)
    }

    fn last_id(&self) -> Result<Option<u64>> {
        self.recorder().max_notification_id()
    }

    fn listen(&self) -> Result<Box<dyn Listener>> {
        self.recorder().listen()
    }
}

/// How many notifications a follower reads from its leader at a time.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// An application that follows others: for each event in a leader's log
/// after its position there, it runs its [`Policy`], and saves what the
/// policy collected together with its new position in one transaction.
/// Run again after any failure or crash, it resumes after the last event
/// whose processing was committed: each event is processed exactly once.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::{Policies, ProcessApplication};
/// # #[aggregate] pub struct Sale { lines: u32 }
/// # #[aggregate] impl Sale { #[event("Placed")] pub fn place(lines: u32) -> Self { Sale { lines } } }
/// # #[aggregate] pub struct Slip { lines: u32 }
/// # #[aggregate] impl Slip { #[event("Started")] pub fn start(lines: u32) -> Self { Slip { lines } } }
/// let sales = Application::builder().name("sales").in_memory().build()?;
/// let warehouse = ProcessApplication::new(
///     Application::builder().name("warehouse").in_memory().build()?,
///     Policies::new().on(|event: DomainEvent<SaleEvent>, context| {
///         let SaleEvent::Placed { lines } = event.payload;
///         context.collect(Slip::start(lines));
///         Ok(())
///     }),
/// )?;
/// sales.save(&mut Sale::place(3))?;
/// assert_eq!(warehouse.pull_and_process(&sales, None)?, 1);
/// assert_eq!(warehouse.pull_and_process(&sales, None)?, 0); // nothing new
/// assert_eq!(warehouse.application().notification_log().max_id()?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProcessApplication {
    app: Application,
    name: String,
    policy: Box<dyn Policy>,
    page_size: usize,
    batch_size: usize,
    batch_latency: Duration,
}

impl std::fmt::Debug for ProcessApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessApplication")
            .field("name", &self.name)
            .field("page_size", &self.page_size)
            .field("batch_size", &self.batch_size)
            .field("batch_latency", &self.batch_latency)
            .finish_non_exhaustive()
    }
}

impl ProcessApplication {
    /// `app` following with `policy`. The application must have a name (its
    /// leaders' followers are told apart by it).
    pub fn new(app: Application, policy: impl Policy) -> Result<Self, SystemError> {
        let name = match app.name() {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => {
                return Err(SystemError::Invalid(
                    "a process application needs a name: build its application with \
                     Application::builder().name(..)"
                        .into(),
                ));
            }
        };
        Ok(ProcessApplication {
            app,
            name,
            policy: Box::new(policy),
            page_size: DEFAULT_PAGE_SIZE,
            batch_size: 1,
            batch_latency: Duration::ZERO,
        })
    }

    /// Reads leaders' logs `page_size` notifications at a time (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Records up to `batch_size` processed events in one transaction (at
    /// least 1, the default), with one tracking record: the id of the last.
    /// A batch is made of the events already in the leader's log, never
    /// waited for, so it adds no latency (unless a
    /// [`batch_latency`](Self::with_batch_latency) is set); it saves commits
    /// when a follower has a backlog. The outcome is the one of processing one at a time
    /// provided the policy reads its own aggregates with
    /// [`ProcessingContext::get`], which sees what the batch collected so far.
    /// A failing event is met again one at a time, so that the events
    /// before it are recorded as they would have been.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Under the [`MultiThreadedRunner`](super::MultiThreadedRunner), how
    /// long the follower may hold back a catch-up it was woken for, so that
    /// events saved meanwhile share its batches' transactions: the bound on
    /// the latency batching adds. Zero, the default, processes at once;
    /// worth raising with [`with_batch_size`](Self::with_batch_size) when
    /// leaders save often and commits cost (a disk's sync).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use es_core::prelude::*;
    /// # use es_core::system::{Policies, ProcessApplication};
    /// let app = Application::builder().name("audit").in_memory().build()?;
    /// let audit = ProcessApplication::new(app, Policies::new())?
    ///     .with_batch_size(100)
    ///     .with_batch_latency(Duration::from_millis(5));
    /// assert_eq!(audit.batch_latency(), Duration::from_millis(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_batch_latency(mut self, latency: Duration) -> Self {
        self.batch_latency = latency;
        self
    }

    /// See [`with_batch_latency`](Self::with_batch_latency).
    pub fn batch_latency(&self) -> Duration {
        self.batch_latency
    }

    /// The follower's own application: its repository, its log.
    pub fn application(&self) -> &Application {
        &self.app
    }

    pub(crate) fn application_mut(&mut self) -> &mut Application {
        &mut self.app
    }

    /// The follower's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    pub(crate) fn policy(&self) -> &dyn Policy {
        &*self.policy
    }

    /// Whether the policy processes events of `topic`.
    pub fn wants(&self, topic: &str) -> bool {
        self.policy.wants(topic)
    }

    /// The id of the last notification of `leader` this follower has
    /// processed (or passed over), if any.
    pub fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        self.app
            .process_recorder()
            .max_tracking_id(leader)
            .map_err(|source| self.store_error(leader, source))
    }

    /// Processes every notification of `leader` after this follower's
    /// position, up to `stop` (inclusive) if given, and returns how many
    /// events the policy processed. Stops at the first failure, which names
    /// the event; everything before it stays recorded.
    pub fn pull_and_process(
        &self,
        leader: &dyn Leader,
        stop: Option<u64>,
    ) -> Result<usize, SystemError> {
        catch_up(self, leader, stop, self.page_size, self.batch_size)
    }

    fn store_error(&self, leader: &str, source: crate::error::Error) -> SystemError {
        SystemError::Store {
            follower: self.name.clone(),
            leader: leader.to_owned(),
            source: Box::new(source),
        }
    }
}

impl Batches for ProcessApplication {
    fn reader_name(&self) -> &str {
        &self.name
    }

    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        ProcessApplication::position(self, leader)
    }

    fn wants(&self, topic: &str) -> bool {
        self.policy.wants(topic)
    }

    fn pass_over(&self, leader: &str, batch: &[Notification]) -> Result<(), SystemError> {
        let Some(tracking) = batch_tracking(leader, batch) else {
            return Ok(());
        };
        self.app
            .process_recorder()
            .insert_tracking(&tracking)
            .map_err(|source| self.store_error(leader, source))
    }

    /// Runs the policy on each wanted notification of `batch` and records
    /// what it collected with the position of the batch's last notification,
    /// in one transaction; or records nothing.
    fn process_batch(
        &self,
        leader: &dyn Leader,
        batch: &[Notification],
    ) -> Result<(), SystemError> {
        let name = leader.leader_name();
        let Some(tracking) = batch_tracking(name, batch) else {
            return Ok(());
        };
        let _span = tracing::debug_span!(
            "es.process",
            follower = self.name.as_str(),
            leader = name,
            first_id = tracking.first_notification_id,
            last_id = tracking.notification_id,
        )
        .entered();
        let mut context = ProcessingContext::new(&self.app, name);
        for notification in batch {
            if !self.policy.wants(&notification.event.topic) {
                continue;
            }
            let event = decode(&self.name, leader, notification)?;
            context.at(notification.id);
            self.policy
                .process(event, &mut context)
                .map_err(|source| policy_error(&self.name, name, notification, source))?;
        }
        let mut collected = context.into_collected();
        self.app
            .save_with_tracking(&mut collected, &tracking)
            .map(drop)
            .map_err(|source| self.store_error(name, source))
    }
}
