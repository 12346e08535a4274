//! What a follower does with each event it receives: its policy, and the
//! context a policy records its outcome in.

use crate::application::{Application, Repository, Unsaved};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::{AggregateEvent, AnyEvent, DomainEvent};
use crate::domain::id::OriginatorId;
use crate::error::BoxError;

use super::handlers::{Handlers, Target};
use crate::error::Result;

/// How a process application responds to the events of the applications
/// it follows.
///
/// A policy is called once per event, with the event decoded through the
/// topic registry, and a [`ProcessingContext`] to load the follower's own
/// aggregates and collect those it changed. Everything collected is saved
/// with the follower's new position in one transaction, so an event is
/// processed exactly once; an error records nothing and stops the follower
/// at that event.
///
/// Most policies are built with [`Policies`] from typed closures. A closure
/// over any event is a policy too:
///
/// ```
/// use es_core::system::{Policy, ProcessingContext};
/// use es_core::{AnyEvent, BoxError, DomainEvent};
/// fn count(event: DomainEvent<Box<dyn AnyEvent>>, _: &mut ProcessingContext<'_>) -> Result<(), BoxError> {
///     println!("{}", event.topic());
///     Ok(())
/// }
/// fn assert_policy(_: impl Policy) {}
/// assert_policy(count);
/// ```
pub trait Policy: Send + Sync + 'static {
    /// Whether this policy processes events of `topic`. Events it does not
    /// want are never decoded; the follower's position passes them.
    fn wants(&self, topic: &str) -> bool {
        let _ = topic;
        true
    }

    /// Processes one event.
    fn process(
        &self,
        event: DomainEvent<Box<dyn AnyEvent>>,
        context: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError>;
}

impl<F> Policy for F
where
    F: Fn(DomainEvent<Box<dyn AnyEvent>>, &mut ProcessingContext<'_>) -> Result<(), BoxError>
        + Send
        + Sync
        + 'static,
{
    fn process(
        &self,
        event: DomainEvent<Box<dyn AnyEvent>>,
        context: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        self(event, context)
    }
}

/// What a policy sees of the follower while it processes an event.
///
/// Aggregates the policy changes are collected here and saved, with the
/// follower's position, when the event (or, with
/// [`ProcessApplication::with_batch_size`](super::ProcessApplication::with_batch_size),
/// the batch of events) has been processed.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::{Policies, ProcessApplication};
/// # #[aggregate] pub struct Vote { yes: bool }
/// # #[aggregate] impl Vote { #[event("Cast")] pub fn cast(yes: bool) -> Self { Vote { yes } } }
/// # #[aggregate] pub struct Tally { yes: u32, no: u32 }
/// # #[aggregate] impl Tally {
/// #     #[event("Opened", id = create_id("tally"))] pub fn open() -> Self { Tally { yes: 0, no: 0 } }
/// #     #[event("Counted")] pub fn count(&mut self, yes: bool) { if yes { self.yes += 1 } else { self.no += 1 } }
/// # }
/// let votes = Application::builder().name("votes").in_memory().build()?;
/// let counting = Policies::new().on(|event: DomainEvent<VoteEvent>, context| {
///     let VoteEvent::Cast { yes } = event.payload;
///     // The tally as this batch left it, or as saved, or a new one.
///     let mut tally = match context.get::<Tally>(create_id("tally")) {
///         Ok(tally) => tally,
///         Err(Error::AggregateNotFound { .. }) => Tally::open(),
///         Err(error) => return Err(error.into()),
///     };
///     tally.count(yes);
///     context.collect(tally);
///     Ok(())
/// });
/// let results = ProcessApplication::new(Application::builder().name("results").in_memory().build()?, counting)?
///     .with_batch_size(50);
/// for yes in [true, true, false] {
///     votes.save(&mut Vote::cast(yes))?;
/// }
/// results.pull_and_process(&votes, None)?;
/// let tally: Tally = results.application().repository().get(create_id("tally"))?;
/// assert_eq!((tally.yes, tally.no), (2, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProcessingContext<'a> {
    app: &'a Application,
    leader: &'a str,
    notification_id: u64,
    collected: Vec<Box<dyn Unsaved>>,
}

impl<'a> ProcessingContext<'a> {
    pub(crate) fn new(app: &'a Application, leader: &'a str) -> Self {
        ProcessingContext {
            app,
            leader,
            notification_id: 0,
            collected: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, notification_id: u64) {
        self.notification_id = notification_id;
    }

    /// The follower's aggregate `id` as this processing left it: the copy
    /// collected earlier in it if there is one (taken back out: collect it
    /// again once changed), else the saved one from the repository. Use it
    /// rather than the repository when a batch may change one aggregate twice.
    pub fn get<A: Aggregate>(&mut self, id: impl Into<OriginatorId>) -> Result<A> {
        let id = id.into();
        let found = self.collected.iter().position(|unsaved| {
            unsaved.aggregate_id() == id && unsaved.aggregate_name() == A::NAME
        });
        if let Some(index) = found {
            let unsaved = self.collected.remove(index);
            if let Ok(aggregate) = unsaved.into_any().downcast::<A>() {
                return Ok(*aggregate);
            }
            // Another type under the same name cannot be collected by one
            // program (names are unique); read the store as if none was.
        }
        self.app.repository().get(id)
    }

    /// The follower's repository: what is saved, without what this
    /// processing collected (see [`get`](Self::get)).
    pub fn repository(&self) -> Repository<'a> {
        self.app.repository()
    }

    /// The name of the application whose event this is.
    pub fn leader(&self) -> &str {
        self.leader
    }

    /// The event's notification id in its leader's log.
    pub fn notification_id(&self) -> u64 {
        self.notification_id
    }

    /// Saves `aggregate`'s pending events with this event's processing.
    pub fn collect<A: Aggregate>(&mut self, aggregate: A) {
        self.collected.push(Box::new(aggregate));
    }

    pub(crate) fn into_collected(self) -> Vec<Box<dyn Unsaved>> {
        self.collected
    }
}

/// A policy of typed handlers, one per event enum: each event goes to the
/// handler of its enum, decoded as that enum, and events of other enums are
/// passed over without being decoded.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::Policies;
/// # #[aggregate] pub struct Loan { lines: u32 }
/// # #[aggregate] impl Loan { #[event("Placed")] pub fn place(lines: u32) -> Self { Loan { lines } } }
/// # #[aggregate] pub struct Reminder { lines: u32 }
/// # #[aggregate] impl Reminder { #[event("Started")] pub fn start(lines: u32) -> Self { Reminder { lines } } }
/// let policy = Policies::new().on(|event: DomainEvent<LoanEvent>, context| {
///     match event.payload {
///         LoanEvent::Placed { lines } => context.collect(Reminder::start(lines)),
///     }
///     Ok(())
/// });
/// # let _ = policy;
/// ```
#[derive(Default)]
pub struct Policies {
    handlers: Handlers<Context>,
}

/// A policy's handlers write with a processing context.
pub(crate) struct Context;

impl Target for Context {
    type Of<'a> = ProcessingContext<'a>;
}

impl Policies {
    /// A policy that processes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the handler of the events of enum `E`.
    pub fn on<E, F>(mut self, handler: F) -> Self
    where
        E: AggregateEvent,
        F: Fn(DomainEvent<E>, &mut ProcessingContext<'_>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static,
    {
        self.handlers.push(handler);
        self
    }
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("handlers", &self.handlers.len())
            .finish()
    }
}

impl Policy for Policies {
    fn wants(&self, topic: &str) -> bool {
        self.handlers.wants(topic)
    }

    fn process(
        &self,
        event: DomainEvent<Box<dyn AnyEvent>>,
        context: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        self.handlers.handle(event, context)
    }
}
