//! Catching up with a leader's log: what process applications and
//! projections share. Pages of notifications are read after the reader's
//! position and cut into batches of wanted events, each recorded with the
//! id of its last notification.

use crate::domain::event::{AnyEvent, DomainEvent};
use crate::error::BoxError;
use crate::persistence::Notification;

use super::error::SystemError;
use super::follower::Leader;

/// A reader of leaders' logs that records its position with what it derives.
pub(crate) trait Batches {
    /// The reader's name, for errors.
    fn reader_name(&self) -> &str;

    /// The id of the last notification of `leader` recorded, if any.
    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError>;

    /// Whether events of `topic` are processed (others are never decoded).
    fn wants(&self, topic: &str) -> bool;

    /// Records the position `id` alone, past notifications not wanted.
    fn pass_over(&self, leader: &str, id: u64) -> Result<(), SystemError>;

    /// Processes the wanted notifications of `batch` and records the outcome
    /// with the position of its last notification, in one transaction; or
    /// records nothing.
    fn process_batch(&self, leader: &dyn Leader, batch: &[Notification])
    -> Result<(), SystemError>;
}

/// Processes every notification of `leader` after `reader`'s position, up
/// to `stop` (inclusive) if given, `page_size` at a time in batches of up to
/// `batch_size` wanted events; returns how many events were processed.
pub(crate) fn catch_up(
    reader: &impl Batches,
    leader: &dyn Leader,
    stop: Option<u64>,
    page_size: usize,
    batch_size: usize,
) -> Result<usize, SystemError> {
    let mut processed = 0;
    each_page(reader, leader, stop, page_size, &mut |page| {
        processed += process_page(reader, leader, page, batch_size)?;
        Ok(())
    })?;
    Ok(processed)
}

/// Hands `each` every page of `leader`'s notifications after `reader`'s
/// position, up to `stop` (inclusive) if given, `page_size` at a time.
/// A leader without a name is refused: positions are kept by name, so two
/// unnamed leaders would share one.
pub(crate) fn each_page(
    reader: &impl Batches,
    leader: &dyn Leader,
    stop: Option<u64>,
    page_size: usize,
    each: &mut dyn FnMut(&[Notification]) -> Result<(), SystemError>,
) -> Result<(), SystemError> {
    let name = leader.leader_name();
    if name.is_empty() {
        return Err(SystemError::Invalid(format!(
            "{} follows an application without a name; positions are kept by the \
             leader's name: build it with Application::builder().name(..)",
            reader.reader_name()
        )));
    }
    let mut position = reader.position(name)?;
    loop {
        let start = position.map_or(1, |id| id + 1);
        if stop.is_some_and(|stop| start > stop) {
            return Ok(());
        }
        let mut page =
            leader
                .notifications(start, page_size)
                .map_err(|source| SystemError::Store {
                    follower: reader.reader_name().to_owned(),
                    leader: name.to_owned(),
                    source: Box::new(source),
                })?;
        let full = page.len() == page_size;
        let before_stop = page
            .iter()
            .take_while(|notification| stop.is_none_or(|stop| notification.id <= stop))
            .count();
        let stopped = before_stop < page.len();
        page.truncate(before_stop);
        each(&page)?;
        position = page.last().map(|notification| notification.id).or(position);
        if !full || stopped {
            return Ok(());
        }
    }
}

/// Processes a page in batches of up to `batch_size` wanted events.
/// Notifications not wanted after the last batch are passed with one write.
fn process_page(
    reader: &impl Batches,
    leader: &dyn Leader,
    page: &[Notification],
    batch_size: usize,
) -> Result<usize, SystemError> {
    let mut processed = 0;
    let mut rest = page;
    while !rest.is_empty() {
        let (mut end, mut wanted) = (0, 0);
        while end < rest.len() && wanted < batch_size {
            if reader.wants(&rest[end].event.topic) {
                wanted += 1;
            }
            end += 1;
        }
        let (batch, after) = rest.split_at(end);
        if wanted == 0 {
            if let Some(last) = batch.last() {
                reader.pass_over(leader.leader_name(), last.id)?;
            }
        } else if let Err(error) = reader.process_batch(leader, batch) {
            if wanted == 1 {
                return Err(error);
            }
            // Nothing of the batch was recorded. One event at a time, the
            // events before the failing one are recorded as they would
            // have been without batches, and the failure is met again.
            for notification in batch {
                if reader.wants(&notification.event.topic) {
                    reader.process_batch(leader, std::slice::from_ref(notification))?;
                }
            }
        }
        processed += wanted;
        rest = after;
    }
    Ok(processed)
}

/// A leader's event decoded, or the error naming it.
pub(crate) fn decode(
    reader: &str,
    leader: &dyn Leader,
    notification: &Notification,
) -> Result<DomainEvent<Box<dyn AnyEvent>>, SystemError> {
    leader
        .decode(&notification.event)
        .map_err(|source| SystemError::Decode {
            follower: reader.to_owned(),
            leader: leader.leader_name().to_owned(),
            notification_id: notification.id,
            topic: notification.event.topic.clone(),
            source: Box::new(source),
        })
}

/// The error of a policy or projection handler, naming the event.
pub(crate) fn policy_error(
    reader: &str,
    leader: &str,
    notification: &Notification,
    source: BoxError,
) -> SystemError {
    SystemError::Policy {
        follower: reader.to_owned(),
        leader: leader.to_owned(),
        notification_id: notification.id,
        topic: notification.event.topic.clone(),
        source,
    }
}
