#![warn(missing_docs, unreachable_pub)]
// On docs.rs (see Cargo.toml), each item gated by a feature says which.
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Event sourcing for Rust.
//!
//! Annotate a plain struct and its methods with [`#[aggregate]`](macro@aggregate)
//! and [`#[event]`](macro@event); call the generated command methods; save the
//! aggregate with an [`Application`]; get it back, rebuilt from its stored events,
//! from the application's [`Repository`].
//!
//! ```
//! use es_core::prelude::*;
//!
//! #[aggregate]
//! pub struct Dog { name: String, tricks: Vec<String> }
//!
//! #[aggregate]
//! impl Dog {
//!     #[event("Registered")]
//!     pub fn register(name: String) -> Self { Dog { name, tricks: Vec::new() } }
//!
//!     #[event("TrickAdded")]
//!     pub fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
//! }
//!
//! let app = Application::builder().in_memory().build()?;
//! let mut dog = Dog::register("Fido".into());
//! dog.add_trick("roll over".into());
//! app.save(&mut dog)?;
//! let dog = app.repository().get::<Dog>(dog.id())?;
//! assert_eq!(dog.tricks, ["roll over"]);
//! assert_eq!(dog.version(), 2);
//! # Ok::<(), es_core::Error>(())
//! ```
//!
//! The crate is layered as the Python `eventsourcing` library is: the domain
//! ([`Aggregate`], [`DomainEvent`], [`Snapshot`], [`topics`]) knows nothing of
//! storage; [`persistence`] (the mapper and the recorders) knows nothing of
//! applications; the application ([`Application`], [`Repository`],
//! [`NotificationLog`]) binds the two. The README is the guide.

// The README's examples run as doctests, so the README cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

// Generated code names `::es_core::...`; this makes that path work inside the crate too.
extern crate self as es_core;

mod application;
mod domain;
mod error;
pub mod interface;
pub mod persistence;
pub mod system;
pub mod testing;

#[doc = include_str!("docs/aggregate.md")]
pub use es_macros::aggregate;
#[doc = include_str!("docs/event.md")]
pub use es_macros::event;
#[cfg(feature = "replication")]
#[doc = include_str!("docs/replicated.md")]
pub use es_macros::replicated;
#[cfg(feature = "replication")]
#[doc = include_str!("docs/replicating.md")]
pub use es_macros::replicating;

#[cfg(feature = "async")]
pub use application::AsyncApplication;
#[doc(hidden)]
pub use application::PersistenceModule;
pub use application::{
    Application, ApplicationBuilder, DEFAULT_SECTION_SIZE, DEFAULT_SQLITE_DBNAME,
    DEFAULT_SQLITE_LOCK_TIMEOUT, Environment, FactorySettings, NotificationIter, NotificationLog,
    OpenedPersistence, Persistence, PersistenceFactory, Recording, Repository, Save, Section,
};
pub use chrono::{DateTime, Utc};
pub use domain::aggregate::{Aggregate, AggregateMeta, INITIAL_VERSION};
pub use domain::event::{AggregateEvent, AnyEvent, DomainEvent};
pub use domain::id::{OriginatorId, create_id};
pub use domain::metadata::Metadata;
pub use domain::snapshot::Snapshot;
pub use error::{BoxError, Error, Result};
/// The PostgreSQL driver, whose transactions a projection into a
/// [`PostgresView`](persistence::PostgresView) writes with.
#[cfg(feature = "postgres")]
pub use postgres;
/// The SQLite driver, whose transactions a projection into a
/// [`SqliteView`](persistence::SqliteView) writes with.
#[cfg(feature = "sqlite")]
pub use rusqlite;
/// The JSON values that upcast steps rewrite: `fn(&mut serde_json::Value)`.
pub use serde_json;
pub use uuid::Uuid;

/// The topic registry: which topics this program can decode.
pub mod topics {
    pub use crate::domain::topic::{check_unique, registered};
}

/// Everything a user of the macros needs: `use es_core::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Aggregate, AnyEvent, Application, DomainEvent, Error, OriginatorId, Recording, Snapshot,
        Uuid, aggregate, create_id, event, persistence::Notification,
    };
    #[cfg(feature = "replication")]
    pub use crate::{replicated, replicating};
}

/// What generated code names. Not part of the public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::application::{Save, Unsaved};
    pub use crate::domain::aggregate::{
        AggregateStruct, IdParam, IntoOriginatorId, created, triggered,
    };
    pub use crate::domain::event::{deserialize_tagged, serialize_tagged};
    pub use crate::domain::topic::RegisteredTopic;
    pub use crate::{Aggregate, AggregateEvent, AggregateMeta, OriginatorId};
    pub use core::clone::Clone;
    pub use core::fmt::Debug;
    pub use core::option::Option;
    pub use core::result::Result;
    pub use inventory;
    pub use serde;
    pub use serde_json::Value as JsonValue;
    pub use uuid::Uuid;

    /// What a creation event's hidden applier returns: the new aggregate, in a
    /// type that rustc does not suggest as a constructor.
    pub struct Built<A>(pub A);

    /// Marks a struct whose `#[aggregate]` reported an error, so that a generic
    /// impl block, which reports nothing itself, can check that it did.
    #[diagnostic::on_unimplemented(
        message = "an aggregate cannot be generic, and `{Self}` is",
        label = "its events are stored under fixed topics and decoded without knowing type parameters",
        note = "give the struct concrete field types, and write its impl block as `#[aggregate] impl Name {{ .. }}`"
    )]
    pub trait RejectedAggregate {}

    /// Asserts that the struct of a generic `#[aggregate]` impl block was refused.
    pub const fn assert_rejected_aggregate<T: ?Sized + RejectedAggregate>() {}

    /// The events of a stub aggregate, whose `impl` block lacks `#[aggregate]`
    /// and was reported: there are none.
    #[derive(Clone, Debug)]
    pub enum NoEvents {}

    impl AggregateEvent for NoEvents {
        fn topic(&self) -> &'static str {
            match *self {}
        }
        fn has_topic(_: &str) -> bool {
            false
        }
        fn is_creation(&self) -> bool {
            match *self {}
        }
        fn serialize_fields<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            match *self {}
        }
        fn deserialize_fields<'de, D: serde::Deserializer<'de>>(
            topic: &str,
            _: D,
        ) -> Result<Self, D::Error> {
            Err(<D::Error as serde::de::Error>::custom(format_args!(
                "topic {topic:?} is not an event of an aggregate whose impl block lacks #[aggregate]"
            )))
        }
    }

    /// The metadata field's type for aggregate `A`.
    pub type MetaOf<A> = AggregateMeta<<A as Aggregate>::Event>;

    /// Asserts, at the span of an event field's type, that it can be stored.
    pub const fn assert_event_field<T: EventField>() {}

    /// What an event field's type needs. One trait rather than four bounds, so
    /// that an error about a field type says what to do rather than naming a
    /// serde trait bound.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be an event field",
        label = "event fields are stored and replayed, so this type needs `Clone`, `Debug`, `Serialize` and `Deserialize`",
        note = "derive them: `#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]`, or declare the type with `#[event]`"
    )]
    pub trait EventField: Clone + Debug + serde::Serialize + serde::de::DeserializeOwned {}

    impl<T: Clone + Debug + serde::Serialize + serde::de::DeserializeOwned> EventField for T {}

    /// Asserts, at the span of a method's parameter type, that it was declared with `#[event]`.
    pub const fn assert_event_struct<T: EventStruct>() {}

    /// Marks a struct declared with `#[event]`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not an event struct",
        label = "this type is not declared with `#[event]`",
        note = "declare it with `#[event] struct {Self} {{ .. }}`, or name the event with a string: `#[event(\"Name\")]`"
    )]
    pub trait EventStruct:
        Clone + Debug + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static
    {
    }

    /// What `#[replicating]` and `#[replicated]` implement.
    #[cfg(feature = "replication")]
    pub mod replication {
        pub use crate::interface::replication::{Replicated, Replicating};

        /// Asserts, at the name of a `#[replicated]` struct, that a replica can
        /// read it from records.
        pub const fn assert_replicated_struct<T: ReplicatedStruct>() {}

        /// What a `#[replicated]` struct needs. One trait rather than serde's
        /// bound, so that the error says what to add.
        #[diagnostic::on_unimplemented(
            message = "`{Self}` cannot be a replicated copy: a replica reads it from records",
            label = "a `#[replicated]` struct needs `serde::Deserialize` (and `Send`, and no borrowed fields)",
            note = "add `#[derive(serde::Deserialize)]` to the struct"
        )]
        pub trait ReplicatedStruct: serde::de::DeserializeOwned + Send + 'static {}

        impl<T: serde::de::DeserializeOwned + Send + 'static> ReplicatedStruct for T {}
    }
}
