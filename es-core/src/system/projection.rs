//! Projections: a leader's events folded into a view, tables of the user's
//! own, each change recorded with the projection's position in one
//! transaction, as the Python library's `Projection` and `ProjectionRunner`.

use std::marker::PhantomData;

use crate::domain::event::{AggregateEvent, DomainEvent};
use crate::error::BoxError;
use crate::persistence::{Notification, Tracking, View, ViewError};

use super::catch_up::{Batches, batch_tracking, catch_up, decode, policy_error};
use super::error::SystemError;
use super::follower::{DEFAULT_PAGE_SIZE, Leader};
use super::handlers::{Handlers, Target};
use super::runner::FollowerRunner;

/// A view kept by handlers, one per event enum, that write to the view's
/// database with its transaction: the change of each event (or batch of
/// events) and the projection's new position commit together, so a view is
/// changed exactly once by each event, across crashes and restarts.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::persistence::{SqliteDatabase, SqliteView};
/// use es_core::system::Projection;
/// # #[aggregate] pub struct Flight { seats: u32 }
/// # #[aggregate] impl Flight { #[event("Scheduled")] pub fn schedule(seats: u32) -> Self { Flight { seats } } }
/// let airline = Application::builder().name("airline").in_memory().build()?;
/// let view = SqliteView::new(SqliteDatabase::open_in_memory()?)?;
/// view.execute_batch("CREATE TABLE seats (total INTEGER NOT NULL); INSERT INTO seats VALUES (0)")?;
/// let seats = Projection::new("seats", view).on(|event: DomainEvent<FlightEvent>, transaction| {
///     let FlightEvent::Scheduled { seats } = event.payload;
///     transaction.execute("UPDATE seats SET total = total + ?1", [seats])?;
///     Ok(())
/// });
/// airline.save(&mut Flight::schedule(180))?;
/// airline.save(&mut Flight::schedule(90))?;
/// assert_eq!(seats.pull_and_process(&airline, None)?, 2);
/// let total: u32 = seats.view().read(|c| c.query_row("SELECT total FROM seats", [], |row| row.get(0)))?;
/// assert_eq!(total, 270);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Projection<V: View> {
    name: String,
    view: V,
    handlers: Handlers<Transactions<V>>,
    page_size: usize,
    batch_size: usize,
    clear: Option<Box<Clear<V>>>,
}

/// How a projection empties its view, for a reset.
type Clear<V> = dyn Fn(&mut <V as View>::Transaction<'_>) -> Result<(), BoxError> + Send + Sync;

impl<V: View> std::fmt::Debug for Projection<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("name", &self.name)
            .field("handlers", &self.handlers.len())
            .field("page_size", &self.page_size)
            .field("batch_size", &self.batch_size)
            .field("resettable", &self.clear.is_some())
            .finish_non_exhaustive()
    }
}

impl<V: View> Projection<V> {
    /// A projection named `name` (its positions are kept under it) into
    /// `view`, with no handler yet.
    pub fn new(name: impl Into<String>, view: V) -> Self {
        Projection {
            name: name.into(),
            view,
            handlers: Handlers::default(),
            page_size: DEFAULT_PAGE_SIZE,
            batch_size: 1,
            clear: None,
        }
    }

    /// Declares how to empty the view, so that operators can reset the
    /// projection (the `reset-follower` command) and rebuild it.
    pub fn with_reset<F>(mut self, clear: F) -> Self
    where
        F: Fn(&mut V::Transaction<'_>) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.clear = Some(Box::new(clear));
        self
    }

    pub(crate) fn clears(&self) -> bool {
        self.clear.is_some()
    }

    /// Resets with the declared clearing.
    pub(crate) fn reset_declared(&self, leader: Option<&str>) -> Result<(), SystemError> {
        match &self.clear {
            Some(clear) => self.reset(leader, |transaction| clear(transaction)),
            None => Ok(()),
        }
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    /// One notification, written with `transaction` by its handler.
    pub(crate) fn apply(
        &self,
        leader: &dyn Leader,
        notification: &Notification,
        transaction: &mut V::Transaction<'_>,
    ) -> Result<(), SystemError> {
        let event = decode(&self.name, leader, notification)?;
        self.handlers
            .handle(event, transaction)
            .map_err(|source| policy_error(&self.name, leader.leader_name(), notification, source))
    }

    /// Adds the handler of the events of enum `E`; events of enums without a
    /// handler are passed over without being decoded.
    pub fn on<E, F>(mut self, handler: F) -> Self
    where
        E: AggregateEvent,
        F: Fn(DomainEvent<E>, &mut V::Transaction<'_>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static,
    {
        self.handlers.push(handler);
        self
    }

    /// Reads leaders' logs `page_size` notifications at a time (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Writes up to `batch_size` events already in the log in one transaction
    /// (at least 1, the default). A failing batch is done again one event at
    /// a time, so that the events before the failure are recorded.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The view, to read it.
    pub fn view(&self) -> &V {
        &self.view
    }

    /// The id of the last notification of `leader` the view has taken in.
    pub fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        self.view
            .position(&self.name, leader)
            .map_err(|source| self.store_error(leader, source))
    }

    /// Takes in every notification of `leader` after the view's position, up
    /// to `stop` (inclusive) if given; returns how many events the handlers
    /// processed. Stops at the first failure, which names the event.
    pub fn pull_and_process(
        &self,
        leader: &dyn Leader,
        stop: Option<u64>,
    ) -> Result<usize, SystemError> {
        catch_up(self, leader, stop, self.page_size, self.batch_size)
    }

    /// Empties the view with `clear` and forgets the projection's position
    /// in `leader`'s log (in every log, without one), in one transaction, so
    /// that the next catch-up rebuilds the view from the start.
    pub fn reset(
        &self,
        leader: Option<&str>,
        mut clear: impl FnMut(&mut V::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), SystemError> {
        self.view
            .reset(&self.name, leader, &mut clear)
            .map_err(|error| match error {
                ViewError::Work(source) => SystemError::Runner(format!(
                    "{}: clearing the view failed: {source}",
                    self.name
                )),
                ViewError::Store(source) => self.store_error(leader.unwrap_or_default(), source),
            })
    }

    fn store_error(&self, leader: &str, source: crate::error::Error) -> SystemError {
        SystemError::Store {
            follower: self.name.clone(),
            leader: leader.to_owned(),
            source: Box::new(source),
        }
    }
}

impl<V: View> Batches for Projection<V> {
    fn reader_name(&self) -> &str {
        &self.name
    }

    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        Projection::position(self, leader)
    }

    fn wants(&self, topic: &str) -> bool {
        self.handlers.wants(topic)
    }

    fn pass_over(&self, leader: &str, batch: &[Notification]) -> Result<(), SystemError> {
        let Some(tracking) = batch_tracking(leader, batch) else {
            return Ok(());
        };
        self.write(leader, &tracking, &mut |_| Ok(()))
    }

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
            "es.project",
            projection = self.name.as_str(),
            leader = name,
            first_id = tracking.first_notification_id,
            last_id = tracking.notification_id,
        )
        .entered();
        self.write(name, &tracking, &mut |transaction| {
            for notification in batch {
                if self.wants(&notification.event.topic) {
                    self.apply(leader, notification, transaction)?;
                }
            }
            Ok(())
        })
    }
}

impl<V: View> Projection<V> {
    /// One transaction of the view: `work`'s changes and the position.
    fn write(
        &self,
        leader: &str,
        tracking: &Tracking,
        work: &mut dyn FnMut(&mut V::Transaction<'_>) -> Result<(), SystemError>,
    ) -> Result<(), SystemError> {
        // The view knows the work's errors only as boxed errors: keep the
        // named one here, and give it back once the view has rolled back.
        let mut failure = None;
        let written = self.view.write(&self.name, tracking, &mut |transaction| {
            work(transaction).map_err(|error| {
                let message = error.to_string();
                failure = Some(error);
                BoxError::from(message)
            })
        });
        match written {
            Ok(()) => Ok(()),
            Err(ViewError::Work(source)) => Err(failure
                .take()
                .unwrap_or_else(|| SystemError::Runner(format!("{}: {source}", self.name)))),
            Err(ViewError::Store(source)) => Err(self.store_error(leader, source)),
        }
    }
}

/// A projection's handlers write with its view's transaction.
struct Transactions<V>(PhantomData<fn() -> V>);

impl<V: View> Target for Transactions<V> {
    type Of<'a> = V::Transaction<'a>;
}

/// Keeps a projection up to date with one application in a thread of its
/// own (a [`FollowerRunner`] of a projection): it catches up from the view's position when started, then takes in
/// each save to the application's store as it happens, by this process or
/// another (heard by the store's listener; looked for every poll interval
/// besides). [`wait`](Self::wait) gives a request
/// handler read-your-writes.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use es_core::prelude::*;
/// use es_core::persistence::{SqliteDatabase, SqliteView};
/// use es_core::system::{Projection, ProjectionRunner};
/// # #[aggregate] pub struct Booking { nights: u32 }
/// # #[aggregate] impl Booking { #[event("Made")] pub fn make(nights: u32) -> Self { Booking { nights } } }
/// let hotel = Arc::new(Application::builder().name("hotel").in_memory().build()?);
/// let view = SqliteView::new(SqliteDatabase::open_in_memory()?)?;
/// view.execute_batch("CREATE TABLE nights (total INTEGER NOT NULL); INSERT INTO nights VALUES (0)")?;
/// let nights = Projection::new("nights", view).on(|event: DomainEvent<BookingEvent>, transaction| {
///     let BookingEvent::Made { nights } = event.payload;
///     transaction.execute("UPDATE nights SET total = total + ?1", [nights])?;
///     Ok(())
/// });
/// let runner = ProjectionRunner::start(hotel.clone(), nights)?;
/// let saved = hotel.save(&mut Booking::make(3))?;
/// runner.wait(saved[0].notification_id, Duration::from_secs(5))?;
/// let total: u32 = runner.projection().view().read(|c| c.query_row("SELECT total FROM nights", [], |row| row.get(0)))?;
/// assert_eq!(total, 3);
/// runner.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ProjectionRunner<V> = FollowerRunner<Projection<V>>;

impl<V: View> FollowerRunner<Projection<V>> {
    /// The projection, to read its view.
    pub fn projection(&self) -> &Projection<V> {
        self.follower()
    }
}
