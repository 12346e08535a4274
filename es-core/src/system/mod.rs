//! Systems of applications, as the Python library's `system` module: process
//! applications that follow others' notification logs and run a policy on
//! each event exactly once, the pipes that say who follows whom, and the
//! runners that make them go.
//!
//! Exactly once: a follower saves what its policy derived from an event
//! together with its position in the leader's log (a tracking record) in one
//! transaction, and a position at or below the recorded one is refused. A
//! follower killed at any moment resumes after the last event whose outcome
//! was committed, and a notification processed twice is never recorded twice.

mod catch_up;
mod error;
mod follower;
mod handlers;
mod operable;
mod pipes;
mod policy;
mod projection;
mod runner;

pub use error::SystemError;
pub use follower::{DEFAULT_PAGE_SIZE, Leader, ProcessApplication};
pub use operable::Follower;
pub use pipes::{System, SystemBuilder};
pub use policy::{Policies, Policy, ProcessingContext};
pub use projection::{Projection, ProjectionRunner};
pub use runner::{
    DEFAULT_POLL_INTERVAL, FollowerRunner, MultiThreadedRunner, SingleThreadedRunner,
};
