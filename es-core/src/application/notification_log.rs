//! The notification log: every event of an application, in the order it was
//! committed, read in sections or followed from a position.

use crate::error::{Error, Result};
use crate::persistence::{ApplicationRecorder, Notification};

/// Sections are this long unless the application says otherwise.
pub const DEFAULT_SECTION_SIZE: usize = 10;

/// How many notifications an iterator fetches at a time.
const PAGE_SIZE: usize = 1000;

/// A read-only view of an application's notification log.
///
/// ```
/// use es_core::prelude::*;
/// # #[aggregate] pub struct Pen { ink: u8 }
/// # #[aggregate] impl Pen { #[event("Filled")] pub fn fill() -> Self { Pen { ink: 100 } } }
/// let app = Application::builder().in_memory().build()?;
/// for _ in 0..12 { app.save(&mut Pen::fill())?; }
/// let log = app.notification_log();
/// let first = log.section("1,10")?;
/// assert_eq!(first.id.as_deref(), Some("1,10"));
/// assert_eq!(first.items.len(), 10);
/// let second = log.section(first.next_id.as_deref().unwrap())?;
/// assert_eq!(second.id.as_deref(), Some("11,12"));
/// assert_eq!(second.next_id, None);
/// assert_eq!(log.iter_from(5).count(), 8);
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct NotificationLog<'a> {
    recorder: &'a dyn ApplicationRecorder,
    section_size: usize,
}

/// A section of the notification log, as the Python library's `Section`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `"first,last"` ids of the items, or `None` if there are none.
    pub id: Option<String>,
    /// The notifications, in id order.
    pub items: Vec<Notification>,
    /// The id of the next section if this one is full, so a reader can go on.
    pub next_id: Option<String>,
}

impl<'a> NotificationLog<'a> {
    pub(crate) fn new(recorder: &'a dyn ApplicationRecorder, section_size: usize) -> Self {
        NotificationLog {
            recorder,
            section_size: section_size.max(1),
        }
    }

    /// The section `"start,stop"`: at most the section size of notifications from
    /// `start`, none past `stop`. Ids may have gaps; a section is full when it holds
    /// as many items as were asked for.
    pub fn section(&self, section_id: &str) -> Result<Section> {
        let (start, stop) = parse_section_id(section_id)?;
        let limit = usize::try_from(stop - start + 1)
            .map_or(self.section_size, |n| n.min(self.section_size));
        let items = self
            .recorder
            .select_notifications(start, limit, Some(stop), &[])?;
        let (id, next_id) = match (items.first(), items.last()) {
            (Some(first), Some(last)) => (
                Some(format!("{},{}", first.id, last.id)),
                (items.len() == limit)
                    .then(|| format!("{},{}", last.id + 1, last.id + limit as u64)),
            ),
            _ => (None, None),
        };
        Ok(Section { id, items, next_id })
    }

    /// Up to `limit` notifications from id `start`, in id order.
    pub fn select(&self, start: u64, limit: usize) -> Result<Vec<Notification>> {
        self.recorder.select_notifications(start, limit, None, &[])
    }

    /// The highest notification id, or `None` for an empty log.
    pub fn max_id(&self) -> Result<Option<u64>> {
        self.recorder.max_notification_id()
    }

    /// Every notification from id `start` on, fetched a page at a time, so the
    /// log is never held in memory whole. Stops at the end of the log as it is
    /// when each page is read; an error ends the iteration after being yielded.
    pub fn iter_from(&self, start: u64) -> NotificationIter<'a> {
        NotificationIter {
            recorder: self.recorder,
            next: start.max(1),
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

/// Every notification from a position on; see [`NotificationLog::iter_from`].
pub struct NotificationIter<'a> {
    recorder: &'a dyn ApplicationRecorder,
    next: u64,
    page: std::vec::IntoIter<Notification>,
    done: bool,
}

impl Iterator for NotificationIter<'_> {
    type Item = Result<Notification>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(notification) = self.page.next() {
            return Some(Ok(notification));
        }
        if self.done {
            return None;
        }
        match self
            .recorder
            .select_notifications(self.next, PAGE_SIZE, None, &[])
        {
            Ok(page) => {
                self.done = page.len() < PAGE_SIZE;
                if let Some(last) = page.last() {
                    self.next = last.id + 1;
                }
                self.page = page.into_iter();
                self.page.next().map(Ok)
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

fn parse_section_id(section_id: &str) -> Result<(u64, u64)> {
    let invalid = || Error::InvalidSectionId {
        section_id: section_id.to_owned(),
    };
    let (start, stop) = section_id.split_once(',').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let stop: u64 = stop.trim().parse().map_err(|_| invalid())?;
    if start == 0 || stop < start {
        return Err(invalid());
    }
    Ok((start, stop))
}

#[cfg(test)]
mod tests {
    use super::parse_section_id;

    #[test]
    fn section_ids_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_section_id("1,10").ok(), Some((1, 10)));
        assert_eq!(parse_section_id(" 3 , 3 ").ok(), Some((3, 3)));
        for bad in ["", "1", "0,10", "5,4", "a,b", "1,10,20", "-1,3", "1;10"] {
            let error = parse_section_id(bad).expect_err(bad);
            assert!(error.to_string().contains("section id"), "{bad}: {error}");
        }
    }
}
