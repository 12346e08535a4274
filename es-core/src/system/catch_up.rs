//! Catching up with a leader's log: what process applications and
//! projections share. Pages of notifications are read after the reader's
//! position and cut into batches of wanted events, each recorded with the
//! id of its last notification.

use crate::domain::event::{AnyEvent, DomainEvent};
use crate::error::BoxError;
use crate::persistence::{Notification, Tracking};

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

    /// Records the position of the last of `batch` alone, past
    /// notifications not wanted.
    fn pass_over(&self, leader: &str, batch: &[Notification]) -> Result<(), SystemError>;

    /// Processes the wanted notifications of `batch` and records the outcome
    /// with the position of its last notification, in one transaction; or
    /// records nothing. The record covers the whole batch
    /// ([`Tracking::batch`](crate::persistence::Tracking::batch)), so that a
    /// position recorded within it by another process is a conflict.
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
        let (count, outcome) = process_page(reader, leader, page, batch_size)?;
        processed += count;
        Ok(outcome)
    })?;
    Ok(processed)
}

/// How the processing of a page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageOutcome {
    /// Every notification of it was handled here.
    Processed,
    /// The recorded position moved past the start of one of its batches
    /// while it was written: another process recorded part of it first (one
    /// running beside this one, or a killed one whose commit reached the
    /// server after this one had read its position), or this write was
    /// committed though its reply was lost. The reader goes on from the
    /// recorded position.
    Overtaken,
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
    each: &mut dyn FnMut(&[Notification]) -> Result<PageOutcome, SystemError>,
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
        match each(&page)? {
            PageOutcome::Processed => {
                position = page.last().map(|notification| notification.id).or(position);
                if !full || stopped {
                    return Ok(());
                }
            }
            PageOutcome::Overtaken => position = reader.position(name)?,
        }
    }
}

/// Processes a page in batches of up to `batch_size` wanted events, and
/// returns how many events were processed here. Notifications not wanted
/// after the last batch are passed with one write.
fn process_page(
    reader: &impl Batches,
    leader: &dyn Leader,
    page: &[Notification],
    batch_size: usize,
) -> Result<(usize, PageOutcome), SystemError> {
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
        let written = if wanted == 0 {
            reader.pass_over(leader.leader_name(), batch)
        } else {
            reader.process_batch(leader, batch)
        };
        if let Err(error) = written {
            if overtaken(reader, leader, batch, &error)? {
                return Ok((processed, PageOutcome::Overtaken));
            }
            // Only a failure of the processing itself is worth meeting
            // again one event at a time; the store's failure is the store's.
            if wanted <= 1 || matches!(error, SystemError::Store { .. }) {
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
    Ok((processed, PageOutcome::Processed))
}

/// Whether `error`, met writing `batch`, left the reader's recorded position
/// at or past the batch's first notification: another process recorded part
/// of it first (a conflict, which wrote nothing here), or this write was
/// committed though the store reported a failure (a reply lost after COMMIT
/// was sent). Either way the position says what is done, and the reader goes
/// on after it instead of stopping or doing any of the batch again.
fn overtaken(
    reader: &impl Batches,
    leader: &dyn Leader,
    batch: &[Notification],
    error: &SystemError,
) -> Result<bool, SystemError> {
    if !matches!(error, SystemError::Store { .. }) {
        return Ok(false);
    }
    let Some(first) = batch.first() else {
        return Ok(false);
    };
    let name = leader.leader_name();
    // If the store cannot even say where the reader is, the write's own
    // error is the one to report.
    let Ok(position) = reader.position(name) else {
        return Ok(false);
    };
    let overtaken = position.is_some_and(|position| position >= first.id);
    if overtaken {
        tracing::info!(
            reader = reader.reader_name(),
            leader = name,
            first_id = first.id,
            position,
            "the position moved past this batch's start (another process, or a commit whose \
             reply was lost); going on after it",
        );
    }
    Ok(overtaken)
}

/// The record of `batch` of `leader`'s log, processed together; `None` for
/// an empty batch.
pub(crate) fn batch_tracking(leader: &str, batch: &[Notification]) -> Option<Tracking> {
    let (first, last) = (batch.first()?, batch.last()?);
    Some(Tracking::batch(leader, first.id, last.id))
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
