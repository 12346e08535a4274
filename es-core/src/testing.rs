//! Tests of aggregates that read as specifications: given the events that
//! already happened, when a command is given, then these new events are
//! recorded, or the command is refused with this error.
//!
//! No store and no application are involved: the given events are replayed
//! into the aggregate as a repository would replay them, the command runs on
//! it, and what the command recorded is compared with what was expected.
//! Events are equal when their topics and their stored fields are, so event
//! enums need no `PartialEq`.
//!
//! ```
//! use es_core::prelude::*;
//! use es_core::testing::AggregateTest;
//!
//! #[aggregate]
//! pub struct Account { balance: u64 }
//!
//! #[aggregate]
//! impl Account {
//!     #[event("Opened")]
//!     pub fn open(balance: u64) -> Self { Account { balance } }
//!
//!     #[event("Withdrawn")]
//!     fn debit(&mut self, amount: u64) { self.balance -= amount; }
//!
//!     pub fn withdraw(&mut self, amount: u64) -> Result<(), String> {
//!         if amount > self.balance {
//!             return Err(format!("cannot take {amount} from {}", self.balance));
//!         }
//!         self.debit(amount);
//!         Ok(())
//!     }
//! }
//!
//! // Given past events, as the aggregate's event enum:
//! AggregateTest::<Account>::given([AccountEvent::Opened { balance: 100 }])
//!     .when(|account| account.withdraw(30))
//!     .then_expect([AccountEvent::Withdrawn { amount: 30 }]);
//!
//! // Or given the commands that made them:
//! AggregateTest::<Account>::given_created(|| Account::open(100))
//!     .and(|account| account.withdraw(80))
//!     .when(|account| account.withdraw(30))
//!     .then_expect_error("cannot take 30 from 20".to_owned());
//! ```
//!
//! A failed expectation panics, as `assert_eq!` does, with both lists of
//! events:
//!
//! ```should_panic
//! # use es_core::prelude::*;
//! # use es_core::testing::AggregateTest;
//! # #[aggregate] pub struct Account { balance: u64 }
//! # #[aggregate] impl Account {
//! #     #[event("Opened")] pub fn open(balance: u64) -> Self { Account { balance } }
//! #     #[event("Withdrawn")] pub fn withdraw(&mut self, amount: u64) { self.balance -= amount; }
//! # }
//! AggregateTest::<Account>::given([AccountEvent::Opened { balance: 100 }])
//!     .when(|account| account.withdraw(30))
//!     .then_expect([AccountEvent::Withdrawn { amount: 20 }]);
//! // the command recorded other events than expected (first difference: event 1)
//! // expected 1 event:
//! //   1. Withdrawn { amount: 20 }
//! // recorded 1 event:
//! //   1. Withdrawn { amount: 30 }
//! ```

use std::convert::Infallible;
use std::fmt::{self, Debug, Write as _};
use std::marker::PhantomData;

use chrono::Utc;
use serde::{Serialize, Serializer};

use crate::domain::aggregate::{Aggregate, INITIAL_VERSION, replay};
use crate::domain::event::{AggregateEvent, DomainEvent};
use crate::domain::id::OriginatorId;

/// Where a specification of the aggregate `A` starts: from past events, from
/// the commands that made them, or from nothing, for a creation command.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::testing::AggregateTest;
///
/// #[aggregate]
/// pub struct Dog { tricks: Vec<String> }
///
/// #[aggregate]
/// impl Dog {
///     #[event("Registered")]
///     pub fn register(name: String) -> Self { Dog { tricks: Vec::new() } }
///     #[event("TrickAdded")]
///     pub fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
/// }
///
/// let dog = AggregateTest::<Dog>::when_created(|| Dog::register("Fido".into()))
///     .then_expect([DogEvent::Registered { name: "Fido".into() }]);
/// assert_eq!(dog.version(), 1);
/// ```
pub struct AggregateTest<A>(PhantomData<fn() -> A>);

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from `events`, replayed in order: the first is the creation
    /// event. They get a fresh id, versions from 1 and the current time.
    ///
    /// # Panics
    ///
    /// If there are no events, or they cannot be replayed in this order (the
    /// first is not a creation event, or a later one is).
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use es_core::testing::AggregateTest;
    /// # #[aggregate] pub struct Dog { tricks: Vec<String> }
    /// # #[aggregate] impl Dog {
    /// #     #[event("Registered")] pub fn register(name: String) -> Self { Dog { tricks: Vec::new() } }
    /// #     #[event("TrickAdded")] pub fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
    /// # }
    /// let given = AggregateTest::<Dog>::given([
    ///     DogEvent::Registered { name: "Fido".into() },
    ///     DogEvent::TrickAdded { trick: "sit".into() },
    /// ]);
    /// assert_eq!(given.aggregate().tricks, ["sit"]);
    /// assert_eq!(given.aggregate().version(), 2);
    /// ```
    #[track_caller]
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
        let id = OriginatorId::from(uuid::Uuid::new_v4());
        let timestamp = Utc::now();
        let history =
            events
                .into_iter()
                .zip(INITIAL_VERSION..)
                .map(|(payload, originator_version)| {
                    Ok(DomainEvent {
                        originator_id: id.clone(),
                        originator_version,
                        timestamp,
                        payload,
                    })
                });
        match replay::<A>(None, history) {
            Ok(Some(aggregate)) => Given { aggregate },
            Ok(None) => panic!(
                "given no events: give at least the creation event of {}, or start with \
                 AggregateTest::when_created for a creation command",
                A::NAME
            ),
            Err(error) => panic!("the given events cannot be replayed: {error}"),
        }
    }

    /// Starts from the aggregate that `create` makes with a creation command.
    /// Its events are history: only what [`Given::when`]'s command records is
    /// compared.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use es_core::testing::AggregateTest;
    /// # #[aggregate] pub struct Dog { tricks: Vec<String> }
    /// # #[aggregate] impl Dog {
    /// #     #[event("Registered")] pub fn register(name: String) -> Self { Dog { tricks: Vec::new() } }
    /// #     #[event("TrickAdded")] fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
    /// #     pub fn teach(&mut self, trick: &str) -> Result<(), String> {
    /// #         if self.tricks.iter().any(|t| t == trick) { return Err(format!("knows {trick}")); }
    /// #         self.add_trick(trick.to_owned());
    /// #         Ok(())
    /// #     }
    /// # }
    /// AggregateTest::<Dog>::given_created(|| Dog::register("Fido".into()))
    ///     .when(|dog| dog.teach("sit"))
    ///     .then_expect([DogEvent::TrickAdded { trick: "sit".into() }]); // not Registered
    /// ```
    ///
    /// # Panics
    ///
    /// If `create` returns an error.
    #[track_caller]
    pub fn given_created<R: Creation<A>>(create: impl FnOnce() -> R) -> Given<A> {
        match create().into_result() {
            Ok(aggregate) => Given { aggregate },
            Err(error) => panic!("the given creation command was refused: {error:?}"),
        }
    }

    /// Gives a creation command, with no history before it: `create` returns
    /// the new aggregate, or a `Result` of it.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use es_core::testing::AggregateTest;
    /// # #[aggregate] pub struct User { name: String }
    /// # #[aggregate] impl User {
    /// #     #[event("Registered")] fn registered(name: String) -> Self { User { name } }
    /// #     pub fn register(name: &str) -> Result<Self, String> {
    /// #         if name.is_empty() { return Err("a user needs a name".into()); }
    /// #         Ok(Self::registered(name.to_owned()))
    /// #     }
    /// # }
    /// AggregateTest::<User>::when_created(|| User::register(""))
    ///     .then_expect_error("a user needs a name".to_owned());
    /// ```
    pub fn when_created<R: Creation<A>>(create: impl FnOnce() -> R) -> Then<A, (), R::Error> {
        match create().into_result() {
            Ok(aggregate) => Then {
                events: payloads(aggregate.pending_events()),
                outcome: Ok(((), aggregate)),
            },
            Err(error) => Then {
                events: Vec::new(),
                outcome: Err(error),
            },
        }
    }
}

/// An aggregate with its history, waiting for the command under test.
///
/// ```
/// # use es_core::prelude::*;
/// # use es_core::testing::AggregateTest;
/// # #[aggregate] pub struct Dog { tricks: Vec<String> }
/// # #[aggregate] impl Dog {
/// #     #[event("Registered")] pub fn register(name: String) -> Self { Dog { tricks: Vec::new() } }
/// #     #[event("TrickAdded")] fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
/// #     pub fn teach(&mut self, trick: &str) -> Result<(), String> {
/// #         if self.tricks.iter().any(|t| t == trick) { return Err(format!("knows {trick}")); }
/// #         self.add_trick(trick.to_owned());
/// #         Ok(())
/// #     }
/// # }
/// let given = AggregateTest::<Dog>::given([DogEvent::Registered { name: "Fido".into() }])
///     .and(|dog| dog.teach("sit"));
/// assert_eq!(given.aggregate().version(), 2);
/// given
///     .when(|dog| dog.teach("sit"))
///     .then_expect_error("knows sit".to_owned());
/// ```
pub struct Given<A> {
    aggregate: A,
}

impl<A: Aggregate> Given<A> {
    /// Adds to the history with another command, whose events are not
    /// compared either.
    ///
    /// # Panics
    ///
    /// If the command returns an error.
    #[track_caller]
    pub fn and<R: Outcome>(mut self, command: impl FnOnce(&mut A) -> R) -> Self {
        if let Err(error) = command(&mut self.aggregate).into_result() {
            panic!("a given command was refused: {error:?}");
        }
        self
    }

    /// The aggregate as the history left it.
    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }

    /// Gives the command under test: `command` calls a method of the
    /// aggregate that returns nothing or a `Result`.
    pub fn when<R: Outcome>(
        mut self,
        command: impl FnOnce(&mut A) -> R,
    ) -> Then<A, R::Value, R::Error> {
        let before = self.aggregate.pending_events().len();
        let result = command(&mut self.aggregate).into_result();
        Then {
            events: payloads(&self.aggregate.pending_events()[before..]),
            outcome: result.map(|value| (value, self.aggregate)),
        }
    }
}

/// What the command under test did: its result and the events it recorded,
/// to compare with what was expected.
///
/// ```
/// # use es_core::prelude::*;
/// # use es_core::testing::AggregateTest;
/// # #[aggregate] pub struct Dog { tricks: Vec<String> }
/// # #[aggregate] impl Dog {
/// #     #[event("Registered")] pub fn register(name: String) -> Self { Dog { tricks: Vec::new() } }
/// #     #[event("TrickAdded")] fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
/// #     pub fn teach(&mut self, trick: &str) -> Result<(), String> {
/// #         if self.tricks.iter().any(|t| t == trick) { return Err(format!("knows {trick}")); }
/// #         self.add_trick(trick.to_owned());
/// #         Ok(())
/// #     }
/// # }
/// let then = AggregateTest::<Dog>::given([DogEvent::Registered { name: "Fido".into() }])
///     .when(|dog| dog.teach("sit"));
/// assert_eq!(then.result(), Ok(&()));
/// assert!(matches!(then.events(), [DogEvent::TrickAdded { trick }] if trick == "sit"));
///
/// AggregateTest::<Dog>::given([DogEvent::Registered { name: "Fido".into() }])
///     .when(|_dog| ())
///     .then_expect_no_events();
/// ```
pub struct Then<A: Aggregate, T, E> {
    /// The command's value and the aggregate after it, or why it was refused.
    outcome: Result<(T, A), E>,
    events: Vec<A::Event>,
}

impl<A: Aggregate, T: Debug, E: Debug> Then<A, T, E> {
    /// Expects the command to succeed and to record exactly `expected`, in
    /// order; returns the aggregate, for checks of its state.
    ///
    /// # Panics
    ///
    /// If the command returned an error, or recorded other events; the message
    /// lists both the expected and the recorded events.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let aggregate = match self.outcome {
            Ok((_, aggregate)) => aggregate,
            Err(error) => panic!(
                "the command was refused with {error:?}\nexpected {}",
                EventList(&expected)
            ),
        };
        if let Some(index) = first_difference(&expected, &self.events) {
            panic!(
                "the command recorded other events than expected (first difference: event {})\n\
                 expected {}recorded {}",
                index + 1,
                EventList(&expected),
                EventList(&self.events)
            );
        }
        aggregate
    }

    /// Expects the command to succeed and to record nothing.
    ///
    /// # Panics
    ///
    /// If the command returned an error or recorded events.
    #[track_caller]
    pub fn then_expect_no_events(self) -> A {
        self.then_expect([])
    }

    /// Expects the command to be refused with an error equal to `expected`,
    /// and to record nothing: a command checks, then triggers its events.
    ///
    /// # Panics
    ///
    /// If the command succeeded, failed otherwise, or recorded events.
    #[track_caller]
    pub fn then_expect_error(self, expected: E)
    where
        E: PartialEq,
    {
        self.then_expect_error_matching(|error| *error == expected, &expected)
    }

    /// Expects the command to be refused with an error for which `check`
    /// holds, and to record nothing: for errors without `PartialEq`, or to
    /// check only part of one.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use es_core::testing::AggregateTest;
    /// # #[aggregate] pub struct Account { balance: u64 }
    /// # #[aggregate] impl Account {
    /// #     #[event("Opened")] pub fn open(balance: u64) -> Self { Account { balance } }
    /// #     pub fn withdraw(&mut self, amount: u64) -> Result<(), es_core::BoxError> {
    /// #         Err(format!("cannot take {amount} from {}", self.balance).into())
    /// #     }
    /// # }
    /// AggregateTest::<Account>::given([AccountEvent::Opened { balance: 10 }])
    ///     .when(|account| account.withdraw(30))
    ///     .then_expect_error_where(|error| error.to_string().contains("cannot take 30"));
    /// ```
    ///
    /// # Panics
    ///
    /// If the command succeeded, `check` does not hold, or events were recorded.
    #[track_caller]
    pub fn then_expect_error_where(self, check: impl FnOnce(&E) -> bool) {
        self.then_expect_error_matching(check, &"an error for which the check holds")
    }

    #[track_caller]
    fn then_expect_error_matching(self, check: impl FnOnce(&E) -> bool, expected: &dyn Debug) {
        match &self.outcome {
            Ok((value, _)) => panic!(
                "the command succeeded with {value:?}, recording {}expected it to be refused \
                 with {expected:?}",
                EventList(&self.events)
            ),
            Err(error) if !check(error) => {
                panic!("the command was refused with {error:?}\nexpected {expected:?}")
            }
            Err(error) if !self.events.is_empty() => panic!(
                "the command was refused with {error:?}, as expected, but recorded {}a refused \
                 command should record nothing: check, then trigger the events",
                EventList(&self.events)
            ),
            Err(_) => {}
        }
    }

    /// The events the command recorded, to check by hand.
    pub fn events(&self) -> &[A::Event] {
        &self.events
    }

    /// What the command returned.
    pub fn result(&self) -> Result<&T, &E> {
        self.outcome.as_ref().map(|(value, _)| value)
    }
}

/// What a command method returns that [`Given::when`] understands: nothing,
/// or a `Result` (whose `Ok` value is kept in [`Then::result`]).
///
/// ```
/// use es_core::testing::Outcome;
/// assert_eq!(().into_result(), Ok(()));
/// assert_eq!(Err::<u8, _>("no").into_result(), Err("no"));
/// ```
pub trait Outcome {
    /// What the command gives back when it succeeds.
    type Value: Debug;
    /// Why the command was refused.
    type Error: Debug;
    /// The outcome as a `Result`.
    fn into_result(self) -> Result<Self::Value, Self::Error>;
}

impl Outcome for () {
    type Value = ();
    type Error = Infallible;
    fn into_result(self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<T: Debug, E: Debug> Outcome for Result<T, E> {
    type Value = T;
    type Error = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// What a creation command returns: the aggregate, or a `Result` of it, for
/// [`AggregateTest::given_created`] and [`AggregateTest::when_created`].
///
/// ```
/// # use es_core::prelude::*;
/// use es_core::testing::Creation;
/// # #[aggregate] pub struct Cup { full: bool }
/// # #[aggregate] impl Cup { #[event("Made")] pub fn make() -> Self { Cup { full: false } } }
/// assert!(Creation::<Cup>::into_result(Cup::make()).is_ok());
/// assert!(Creation::<Cup>::into_result(Err::<Cup, _>("broken")).is_err());
/// ```
pub trait Creation<A> {
    /// Why the command was refused.
    type Error: Debug;
    /// The outcome as a `Result`.
    fn into_result(self) -> Result<A, Self::Error>;
}

impl<A: Aggregate> Creation<A> for A {
    type Error = Infallible;
    fn into_result(self) -> Result<A, Infallible> {
        Ok(self)
    }
}

impl<A: Aggregate, E: Debug> Creation<A> for Result<A, E> {
    type Error = E;
    fn into_result(self) -> Result<A, E> {
        self
    }
}

fn payloads<E: Clone>(events: &[DomainEvent<E>]) -> Vec<E> {
    events.iter().map(|event| event.payload.clone()).collect()
}

/// Where two lists of events first differ, if they do.
fn first_difference<E: AggregateEvent>(expected: &[E], recorded: &[E]) -> Option<usize> {
    let differing = expected
        .iter()
        .zip(recorded)
        .position(|(expected, recorded)| !same_event(expected, recorded));
    match differing {
        Some(index) => Some(index),
        None if expected.len() != recorded.len() => Some(expected.len().min(recorded.len())),
        None => None,
    }
}

/// Events are the same when they would be stored the same: topic and fields.
fn same_event<E: AggregateEvent>(a: &E, b: &E) -> bool {
    if a.topic() != b.topic() {
        return false;
    }
    match (
        serde_json::to_value(Fields(a)),
        serde_json::to_value(Fields(b)),
    ) {
        (Ok(a), Ok(b)) => a == b,
        // Fields JSON cannot hold (maps with keys that are not strings): compare as shown.
        _ => format!("{a:?}") == format!("{b:?}"),
    }
}

/// An event's fields, as the mapper serializes them.
struct Fields<'a, E>(&'a E);

impl<E: AggregateEvent> Serialize for Fields<'_, E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_fields(serializer)
    }
}

/// A numbered list of events, one a line, after how many there are.
struct EventList<'a, E>(&'a [E]);

impl<E: Debug> fmt::Display for EventList<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = match self.0.len() {
            0 => "no events\n".to_owned(),
            1 => "1 event:\n".to_owned(),
            count => format!("{count} events:\n"),
        };
        for (index, event) in self.0.iter().enumerate() {
            let _ = writeln!(text, "  {}. {event:?}", index + 1);
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use crate::prelude::*;

    use super::*;

    #[aggregate]
    pub(super) struct Shelf {
        books: Vec<String>,
    }

    #[aggregate]
    impl Shelf {
        #[event("Built")]
        fn build(room: String) -> Self {
            let _ = room;
            Shelf { books: Vec::new() }
        }

        #[event("Shelved")]
        fn shelved(&mut self, title: String) {
            self.books.push(title);
        }

        fn shelve(&mut self, title: &str) -> Result<(), String> {
            if self.books.len() >= 2 {
                return Err("the shelf is full".into());
            }
            self.shelved(title.to_owned());
            Ok(())
        }

        /// A command that breaks the rule: it records, then refuses.
        fn shelve_carelessly(&mut self, title: &str) -> Result<(), String> {
            self.shelved(title.to_owned());
            Err("too late".into())
        }
    }

    fn shelved(title: &str) -> ShelfEvent {
        ShelfEvent::Shelved {
            title: title.into(),
        }
    }

    fn built() -> ShelfEvent {
        ShelfEvent::Built {
            room: "hall".into(),
        }
    }

    /// The panic message of `run`, which must panic.
    fn failure(run: impl FnOnce()) -> String {
        let payload = catch_unwind(AssertUnwindSafe(run)).expect_err("the expectation fails");
        match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => (*payload.downcast::<&str>().expect("a message")).to_owned(),
        }
    }

    #[test]
    fn expected_events_pass_and_return_the_aggregate() {
        let shelf = AggregateTest::<Shelf>::given([built(), shelved("Emma")])
            .when(|shelf| shelf.shelve("Persuasion"))
            .then_expect([shelved("Persuasion")]);
        assert_eq!(shelf.books, ["Emma", "Persuasion"]);
        assert_eq!(shelf.version(), 3);
    }

    #[test]
    fn other_events_fail_showing_both_lists() {
        let message = failure(|| {
            AggregateTest::<Shelf>::given([built()])
                .when(|shelf| shelf.shelve("Emma"))
                .then_expect([shelved("Persuasion"), shelved("Emma")]);
        });
        assert_eq!(
            message,
            "the command recorded other events than expected (first difference: event 1)\n\
             expected 2 events:\n  1. Shelved { title: \"Persuasion\" }\n  \
             2. Shelved { title: \"Emma\" }\n\
             recorded 1 event:\n  1. Shelved { title: \"Emma\" }\n"
        );
    }

    #[test]
    fn a_missing_event_at_the_end_is_the_first_difference() {
        let message = failure(|| {
            AggregateTest::<Shelf>::given([built()])
                .when(|shelf| shelf.shelve("Emma"))
                .then_expect([shelved("Emma"), shelved("Emma")]);
        });
        assert!(message.contains("first difference: event 2"), "{message}");
    }

    #[test]
    fn history_made_by_commands_is_not_compared() {
        AggregateTest::<Shelf>::given_created(|| Shelf::build("hall".into()))
            .and(|shelf| shelf.shelve("Emma"))
            .when(|shelf| shelf.shelve("Persuasion"))
            .then_expect([shelved("Persuasion")]);
        let shelf = AggregateTest::<Shelf>::when_created(|| Shelf::build("hall".into()))
            .then_expect([built()]);
        assert_eq!(shelf.pending_events().len(), 1);
    }

    #[test]
    fn an_expected_error_passes_and_other_outcomes_fail() {
        let full =
            || AggregateTest::<Shelf>::given([built(), shelved("Emma"), shelved("Persuasion")]);
        full()
            .when(|shelf| shelf.shelve("Mansfield Park"))
            .then_expect_error("the shelf is full".to_owned());

        let message = failure(|| {
            full()
                .when(|shelf| shelf.shelve("Mansfield Park"))
                .then_expect([shelved("Mansfield Park")]);
        });
        assert!(
            message.starts_with("the command was refused with \"the shelf is full\"")
                && message.contains("expected 1 event:\n  1. Shelved"),
            "{message}"
        );

        let message = failure(|| {
            AggregateTest::<Shelf>::given([built()])
                .when(|shelf| shelf.shelve("Emma"))
                .then_expect_error("the shelf is full".to_owned());
        });
        assert!(
            message.starts_with("the command succeeded with (), recording 1 event:")
                && message.contains("refused with \"the shelf is full\""),
            "{message}"
        );

        let message = failure(|| {
            AggregateTest::<Shelf>::given([built()])
                .when(|shelf| shelf.shelve_carelessly("Emma"))
                .then_expect_error("too late".to_owned());
        });
        assert!(
            message.contains("as expected, but recorded 1 event"),
            "{message}"
        );
    }

    #[test]
    fn given_events_that_cannot_be_replayed_say_why() {
        let message = failure(|| {
            AggregateTest::<Shelf>::given([shelved("Emma")]);
        });
        assert!(message.contains("creation event"), "{message}");
        let message = failure(|| {
            AggregateTest::<Shelf>::given([]);
        });
        assert!(message.contains("given no events"), "{message}");
    }
}
