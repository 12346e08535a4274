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

    /// The section `"start,stop"`, as the Python library's `LocalNotificationLog`
    /// reads it: up to `stop - start + 1` notifications (never more than the
    /// section size) with ids from `start` on, however far apart their ids are.
    ///
    /// Notification ids can have gaps (on PostgreSQL an insert that fails still
    /// uses up ids), so the section's own `id` is the first and last ids it
    /// holds, and `next_id` is there whenever the section is full: a reader who
    /// follows `next_id` from `"1,10"` until it is `None` has read the whole log.
    /// A start below 1 reads from 1; a stop below the start is an empty section.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Cup { sips: u8 }
    /// # #[aggregate] impl Cup { #[event("Poured")] pub fn pour() -> Self { Cup { sips: 0 } } }
    /// let app = Application::builder().in_memory().build()?;
    /// for _ in 0..15 { app.save(&mut Cup::pour())?; }
    /// let log = app.notification_log();
    /// let wide = log.section("1,100")?; // no more than the section size (10)
    /// assert_eq!((wide.id.as_deref(), wide.next_id.as_deref()), (Some("1,10"), Some("11,20")));
    /// let backwards = log.section("3,2")?;
    /// assert_eq!((backwards.id, backwards.items.len(), backwards.next_id), (None, 0, None));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn section(&self, section_id: &str) -> Result<Section> {
        let (start, stop) = parse_section_id(section_id)?;
        let start = start.max(1);
        // Python's `min(max(0, stop - start + 1), section_size)`.
        let asked = u64::try_from(stop.saturating_sub(start).saturating_add(1)).unwrap_or(0);
        let limit = usize::try_from(asked)
            .unwrap_or(usize::MAX)
            .min(self.section_size);
        let start = start.unsigned_abs();
        let items = if limit == 0 {
            Vec::new()
        } else {
            self.recorder
                .select_notifications(start, limit, None, &[])?
        };
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

/// The two numbers of `"start,stop"`, as given: signs and spaces allowed, as
/// Python's `int` allows them, but anything else is an error.
fn parse_section_id(section_id: &str) -> Result<(i64, i64)> {
    let invalid = || Error::InvalidSectionId {
        section_id: section_id.to_owned(),
    };
    let (start, stop) = section_id.split_once(',').ok_or_else(invalid)?;
    let start: i64 = start.trim().parse().map_err(|_| invalid())?;
    let stop: i64 = stop.trim().parse().map_err(|_| invalid())?;
    Ok((start, stop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::id::OriginatorId;
    use crate::persistence::{AggregateRecorder, EventQuery, StoredEvent};

    #[test]
    fn section_ids_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_section_id("1,10").ok(), Some((1, 10)));
        assert_eq!(parse_section_id(" 3 , 3 ").ok(), Some((3, 3)));
        assert_eq!(parse_section_id("-1,3").ok(), Some((-1, 3)));
        assert_eq!(parse_section_id("5,4").ok(), Some((5, 4)));
        for bad in ["", "1", "a,b", "1,10,20", "1;10", "1.0,10"] {
            let error = parse_section_id(bad).expect_err(bad);
            assert!(error.to_string().contains("section id"), "{bad}: {error}");
        }
    }

    /// A log whose ids are the given ones, gaps and all, as PostgreSQL leaves them.
    struct GappedLog(Vec<u64>);

    impl AggregateRecorder for GappedLog {
        fn insert_events(&self, _: &[StoredEvent]) -> Result<Vec<u64>> {
            Ok(Vec::new())
        }
        fn select_events(&self, _: &OriginatorId, _: EventQuery) -> Result<Vec<StoredEvent>> {
            Ok(Vec::new())
        }
    }

    impl ApplicationRecorder for GappedLog {
        fn select_notifications(
            &self,
            start: u64,
            limit: usize,
            stop: Option<u64>,
            _: &[&str],
        ) -> Result<Vec<Notification>> {
            Ok(self
                .0
                .iter()
                .filter(|&&id| id >= start && stop.is_none_or(|stop| id <= stop))
                .take(limit)
                .map(|&id| Notification {
                    id,
                    event: StoredEvent {
                        originator_id: uuid::Uuid::new_v4().into(),
                        originator_version: 1,
                        topic: "T".into(),
                        state: Vec::new(),
                    },
                })
                .collect())
        }
        fn max_notification_id(&self) -> Result<Option<u64>> {
            Ok(self.0.last().copied())
        }
    }

    fn ids(section: &Section) -> Vec<u64> {
        section.items.iter().map(|n| n.id).collect()
    }

    #[test]
    fn following_next_id_reads_every_notification_across_gaps() {
        let stored: Vec<u64> = (1..=40).filter(|id| id % 3 != 0).chain([55, 90]).collect();
        let recorder = GappedLog(stored.clone());
        let log = NotificationLog::new(&recorder, 10);
        let first = log.section("1,10").expect("section");
        assert_eq!(first.id.as_deref(), Some("1,14"));
        assert_eq!(first.next_id.as_deref(), Some("15,24"));
        let (mut read, mut next) = (Vec::new(), Some("1,10".to_owned()));
        while let Some(section_id) = next {
            let section = log.section(&section_id).expect("section");
            read.extend(ids(&section));
            next = section.next_id;
        }
        assert_eq!(read, stored);
    }

    #[test]
    fn odd_section_ids_are_read_as_the_python_library_reads_them() {
        let recorder = GappedLog((1..=25).collect());
        let log = NotificationLog::new(&recorder, 10);
        let wide = log.section("1,100").expect("section");
        assert_eq!(
            (ids(&wide).len(), wide.next_id.as_deref()),
            (10, Some("11,20"))
        );
        let backwards = log.section("3,2").expect("section");
        assert_eq!(
            (backwards.id, backwards.items.len(), backwards.next_id),
            (None, 0, None)
        );
        assert_eq!(
            log.section("0,3").expect("section").id.as_deref(),
            Some("1,3")
        );
        assert_eq!(
            log.section("-5,3").expect("section").id.as_deref(),
            Some("1,3")
        );
        let last = log.section("21,30").expect("section");
        assert_eq!((last.id.as_deref(), last.next_id), (Some("21,25"), None));
        let full_at_the_end = log.section("16,25").expect("section");
        assert_eq!(full_at_the_end.next_id.as_deref(), Some("26,35"));
        assert!(log.section("26,35").expect("section").items.is_empty());
    }
}
