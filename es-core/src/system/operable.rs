//! What operators do to followers of any kind: catch them up, try a catch-up
//! that records nothing, reset them.

use crate::persistence::{Notification, View, ViewError};

use super::catch_up::{Batches, PageOutcome, decode, each_page, policy_error};
use super::error::SystemError;
use super::follower::{Leader, ProcessApplication};
use super::policy::ProcessingContext;
use super::projection::Projection;

/// A follower as the operator commands see it: a [`ProcessApplication`] or
/// a [`Projection`].
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::{Follower, Policies, ProcessApplication};
/// # #[aggregate] pub struct Bid { cents: u32 }
/// # #[aggregate] impl Bid { #[event("Placed")] pub fn place(cents: u32) -> Self { Bid { cents } } }
/// let auction = Application::builder().name("auction").in_memory().build()?;
/// auction.save(&mut Bid::place(500))?;
/// let audit = ProcessApplication::new(
///     Application::builder().name("audit").in_memory().build()?,
///     Policies::new().on(|_: DomainEvent<BidEvent>, _| Ok(())),
/// )?;
/// let follower: &dyn Follower = &audit;
/// assert_eq!(follower.dry_run(&auction)?, 1); // processed, nothing recorded
/// assert_eq!(follower.position("auction")?, None);
/// assert!(!follower.resettable()); // its derived events are its history
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Follower: Send + Sync {
    /// Its name.
    fn follower_name(&self) -> &str;

    /// The id of the last notification of `leader` it has recorded.
    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError>;

    /// Processes what is pending in `leader`'s log; how many events.
    fn pull_and_process(
        &self,
        leader: &dyn Leader,
        stop: Option<u64>,
    ) -> Result<usize, SystemError>;

    /// Processes what is pending in `leader`'s log and records nothing: a
    /// rehearsal that meets the same failures a catch-up would. How many
    /// events were processed.
    fn dry_run(&self, leader: &dyn Leader) -> Result<usize, SystemError>;

    /// Whether it can undo what it derived (see [`reset`](Self::reset)).
    fn resettable(&self) -> bool;

    /// Undoes what it derived from `leader` (from every leader, without
    /// one) and forgets its position, in one transaction, so that the next
    /// catch-up derives it all again. An error if it is not resettable.
    fn reset(&self, leader: Option<&str>) -> Result<(), SystemError>;
}

/// Every pending notification of `leader` that `reader` wants, to `each`.
fn each_pending(
    reader: &impl Batches,
    leader: &dyn Leader,
    page_size: usize,
    each: &mut dyn FnMut(&Notification) -> Result<(), SystemError>,
) -> Result<(), SystemError> {
    each_page(reader, leader, None, page_size, &mut |page| {
        page.iter()
            .filter(|notification| reader.wants(&notification.event.topic))
            .try_for_each(&mut *each)?;
        Ok(PageOutcome::Processed)
    })
}

impl Follower for ProcessApplication {
    fn follower_name(&self) -> &str {
        self.name()
    }

    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        ProcessApplication::position(self, leader)
    }

    fn pull_and_process(
        &self,
        leader: &dyn Leader,
        stop: Option<u64>,
    ) -> Result<usize, SystemError> {
        ProcessApplication::pull_and_process(self, leader, stop)
    }

    /// Runs the policy on every pending event in one context, so that each
    /// sees what the ones before it collected, and saves nothing.
    fn dry_run(&self, leader: &dyn Leader) -> Result<usize, SystemError> {
        let name = leader.leader_name();
        let mut context = ProcessingContext::new(self.application(), name);
        let mut processed = 0;
        each_pending(self, leader, self.page_size(), &mut |notification| {
            let event = decode(self.name(), leader, notification)?;
            context.at(notification.id);
            self.policy()
                .process(event, &mut context)
                .map_err(|source| policy_error(self.name(), name, notification, source))?;
            processed += 1;
            Ok(())
        })?;
        Ok(processed)
    }

    /// The events an application derived are its history: they cannot be
    /// taken back, and deriving them again would record them twice.
    fn resettable(&self) -> bool {
        false
    }

    fn reset(&self, _leader: Option<&str>) -> Result<(), SystemError> {
        Err(not_resettable(self.name()))
    }
}

fn not_resettable(name: &str) -> SystemError {
    SystemError::Runner(format!(
        "{name} cannot be reset: it is a process application, whose derived events are \
         its history and cannot be taken back (processing its leaders again would record \
         them twice); only a projection that declares how to clear its view \
         (Projection::with_reset) can be reset"
    ))
}

impl<V: View> Follower for Projection<V> {
    fn follower_name(&self) -> &str {
        self.name()
    }

    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        Projection::position(self, leader)
    }

    fn pull_and_process(
        &self,
        leader: &dyn Leader,
        stop: Option<u64>,
    ) -> Result<usize, SystemError> {
        Projection::pull_and_process(self, leader, stop)
    }

    /// Writes every pending event to the view in one transaction, then rolls
    /// it back.
    fn dry_run(&self, leader: &dyn Leader) -> Result<usize, SystemError> {
        let mut processed = 0;
        let mut failure = None;
        let rehearsed = self.view().rehearse(&mut |transaction| {
            each_pending(self, leader, self.page_size(), &mut |notification| {
                self.apply(leader, notification, transaction)?;
                processed += 1;
                Ok(())
            })
            .map_err(|error| {
                let message = error.to_string();
                failure = Some(error);
                message.into()
            })
        });
        match rehearsed {
            Ok(()) => Ok(processed),
            Err(ViewError::Work(source)) => {
                Err(failure.unwrap_or_else(|| SystemError::Runner(source.to_string())))
            }
            Err(ViewError::Store(source)) => Err(SystemError::Store {
                follower: self.name().to_owned(),
                leader: leader.leader_name().to_owned(),
                source: Box::new(source),
            }),
        }
    }

    fn resettable(&self) -> bool {
        self.clears()
    }

    fn reset(&self, leader: Option<&str>) -> Result<(), SystemError> {
        if !self.clears() {
            return Err(SystemError::Runner(format!(
                "{} cannot be reset: it does not say how to clear its view; declare it \
                 with Projection::with_reset",
                self.name()
            )));
        }
        self.reset_declared(leader)
    }
}
