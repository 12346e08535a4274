//! Delivery of one subscription: a [`Follower`] of the master's log whose
//! position is a tracking record in the master's tracking table. It reads
//! the log after its position, makes the records its filters pass, POSTs
//! them as signed batches, and records the position of the batch's last
//! notification once the receiver answered 2xx.
//!
//! A crash between the answer and the record delivers the batch again: the
//! receiver skips what it has, by version, so nothing is lost or applied
//! twice. Failures are tried again, backing off exponentially with jitter;
//! after `max_failures` in a row, or at once on a 4xx that a retry cannot
//! mend, the delivery stops and the subscription is parked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::history::{RecordSource, States};
use super::record::{Batch, HistoryRecord};
use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, unix_now};
use super::subscription::Subscription;
use crate::application::Application;
use crate::domain::topic;
use crate::error::Error;
use crate::persistence::{Notification, Tracking};
use crate::system::{Follower, Leader, SystemError};

/// How deliveries are made: batch size, linger, timeout, retries.
///
/// ```
/// use std::time::Duration;
/// use es_core::interface::replication::DeliveryConfig;
/// let config = DeliveryConfig::default().batch_size(500).timeout(Duration::from_secs(2));
/// assert_eq!(config.max_failures, 10);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// The most records a batch carries (100).
    pub batch_size: usize,
    /// How long a batch that is not full waits for more records before it
    /// is sent (0: at once).
    pub linger: Duration,
    /// How long a POST may take before it is a failure (10 s).
    pub timeout: Duration,
    /// Failures in a row after which the subscription is parked (10).
    pub max_failures: u32,
    /// The first wait after a failure (100 ms); it doubles with each one.
    pub first_backoff: Duration,
    /// The longest wait after a failure (30 s).
    pub max_backoff: Duration,
    /// How many notifications are read from the log at a time (1,000).
    pub page_size: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch_size: 100,
            linger: Duration::ZERO,
            timeout: Duration::from_secs(10),
            max_failures: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            page_size: 1000,
        }
    }
}

impl DeliveryConfig {
    /// At most `records` records a batch (at least 1).
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = records.max(1);
        self
    }

    /// Waits up to `linger` for a batch to fill.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Gives each POST `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Parks after `failures` failures in a row (at least 1).
    pub fn max_failures(mut self, failures: u32) -> Self {
        self.max_failures = failures.max(1);
        self
    }

    /// Waits `first` after a failure, doubling up to `most`.
    pub fn backoff(mut self, first: Duration, most: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = most.max(first);
        self
    }
}

/// A subscription's counters, as its status shows them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Records the receiver acknowledged.
    pub(crate) delivered: AtomicU64,
    /// Failed POSTs.
    pub(crate) failed: AtomicU64,
    /// Failures since the last success.
    pub(crate) failures_in_a_row: AtomicU64,
    /// The last failure.
    pub(crate) last_error: Mutex<Option<String>>,
    /// When the last batch was acknowledged.
    pub(crate) last_delivery: Mutex<Option<DateTime<Utc>>>,
}

/// One subscription's delivery, as a follower of the master.
pub(crate) struct Delivery {
    pub(crate) subscription: Subscription,
    tracking_name: String,
    app: Arc<Application>,
    sources: Arc<Vec<Box<dyn RecordSource>>>,
    config: DeliveryConfig,
    agent: ureq::Agent,
    stopping: Arc<AtomicBool>,
    pub(crate) counters: Arc<Counters>,
    states: Mutex<States>,
    read_ahead: Mutex<ReadAhead>,
}

/// A page of the log read ahead: the notifications after `after`, as many
/// as were read, so that a page makes several batches with one read.
#[derive(Default)]
struct ReadAhead {
    after: u64,
    /// Whether the page was full, so that more may follow at once.
    more: bool,
    notifications: VecDeque<Notification>,
}

/// Why a POST failed, and whether trying again can mend it.
#[derive(Debug)]
enum Failure {
    /// A timeout, a refused connection, a 5xx, 408, 409 or 429.
    Retry(String),
    /// Any other answer: the receiver refuses the batch as it is.
    Refused(String),
}

impl Delivery {
    pub(crate) fn new(
        subscription: Subscription,
        app: Arc<Application>,
        sources: Arc<Vec<Box<dyn RecordSource>>>,
        config: DeliveryConfig,
        stopping: Arc<AtomicBool>,
        counters: Arc<Counters>,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Delivery {
            tracking_name: subscription.tracking_name(),
            subscription,
            app,
            sources,
            config,
            agent,
            stopping,
            counters,
            states: Mutex::new(States::new()),
            read_ahead: Mutex::new(ReadAhead::default()),
        }
    }

    /// The position recorded, or where the subscription starts.
    pub(crate) fn delivered_up_to(&self) -> crate::error::Result<u64> {
        let recorded = self
            .app
            .process_recorder()
            .max_tracking_id(&self.tracking_name)?;
        Ok(recorded.unwrap_or(0).max(self.subscription.start_after))
    }

    fn store_error(&self, leader: &dyn Leader, source: Error) -> SystemError {
        SystemError::Store {
            follower: self.subscription.name.clone(),
            leader: leader.leader_name().to_owned(),
            source: Box::new(source),
        }
    }

    /// The source of `notification`'s records, if the subscription wants
    /// them. A topic no type of this program registers is not a replicated
    /// aggregate's; one that two types claim is an error, not a skip, so
    /// that no change is passed over unseen.
    fn source_of(
        &self,
        notification: &Notification,
    ) -> crate::error::Result<Option<&dyn RecordSource>> {
        let Some(registered) = topic::lookup(&notification.event.topic)? else {
            return Ok(None);
        };
        let aggregate = registered.aggregate();
        Ok(self
            .sources
            .iter()
            .find(|source| {
                source.aggregate() == aggregate
                    && self.subscription.wants_contract(source.contract())
            })
            .map(|source| &**source))
    }

    /// The records of `page` the subscription takes, up to a batch, and the
    /// id of the last notification they cover.
    fn batch_of(
        &self,
        page: &[Notification],
    ) -> crate::error::Result<(Vec<HistoryRecord>, Option<u64>)> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let mut records = Vec::new();
        let mut last = None;
        for notification in page {
            if records.len() == self.config.batch_size {
                break;
            }
            last = Some(notification.id);
            let Some(source) = self.source_of(notification)? else {
                continue;
            };
            let record = source.record(&self.app, notification, &mut states)?;
            if self.subscription.accepts(&record.kind, record.history_type) {
                records.push(record);
            }
        }
        Ok((records, last))
    }

    /// POSTs `body`, signed.
    fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let timestamp = unix_now();
        let url = &self.subscription.callback_url;
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, &timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                &sign(self.subscription.secret.as_bytes(), timestamp, body),
            );
        for (name, value) in &self.subscription.callback_headers {
            request = request.header(name, value);
        }
        let mut response = request
            .send(body)
            .map_err(|e| Failure::Retry(format!("POST {url}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        let answer: String = answer.chars().take(300).collect();
        let message = format!("POST {url}: {status}: {answer}");
        match status.as_u16() {
            408 | 409 | 429 | 500..=599 => Err(Failure::Retry(message)),
            _ => Err(Failure::Refused(message)),
        }
    }

    /// Sends `body` until it is acknowledged, waiting longer after each
    /// failure; the failure that parks the subscription, if one does.
    fn send(&self, body: &[u8]) -> Result<(), String> {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return Err("the replicator is stopping".into());
            }
            let failure = match self.post(body) {
                Ok(()) => {
                    self.counters.failures_in_a_row.store(0, Ordering::SeqCst);
                    return Ok(());
                }
                Err(failure) => failure,
            };
            self.counters.failed.fetch_add(1, Ordering::SeqCst);
            let in_a_row = self
                .counters
                .failures_in_a_row
                .fetch_add(1, Ordering::SeqCst)
                + 1;
            let (message, parks) = match failure {
                Failure::Retry(message) => {
                    let parks = in_a_row >= u64::from(self.config.max_failures);
                    (message, parks)
                }
                Failure::Refused(message) => (message, true),
            };
            tracing::warn!(
                subscription = self.subscription.name,
                error = message,
                in_a_row,
                parks,
                "a delivery failed"
            );
            *lock(&self.counters.last_error) = Some(message.clone());
            if parks {
                return Err(message);
            }
            self.sleep(self.backoff(in_a_row));
        }
    }

    /// The wait after the `failures`th failure in a row: doubling from the
    /// first backoff, at most the longest, less a random part of up to half
    /// so that receivers coming back are not met by every master at once.
    fn backoff(&self, failures: u64) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        let full = self
            .config
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.config.max_backoff);
        let random = uuid::Uuid::new_v4().as_u128() as u64;
        let half = full / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % jitter_nanos.max(1))
    }

    fn sleep(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.stopping.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// The log after `position`, a page of it.
    fn read_after(&self, leader: &dyn Leader, position: u64) -> Result<ReadAhead, SystemError> {
        let page = leader
            .notifications(position + 1, self.config.page_size)
            .map_err(|e| self.store_error(leader, e))?;
        Ok(ReadAhead {
            after: position,
            more: page.len() == self.config.page_size,
            notifications: page.into(),
        })
    }

    /// Delivers one batch after the position; how many records, or `None`
    /// when the log has nothing after it.
    fn deliver_next(&self, leader: &dyn Leader) -> Result<Option<usize>, SystemError> {
        let position = self
            .delivered_up_to()
            .map_err(|e| self.store_error(leader, e))?;
        let mut ahead = lock(&self.read_ahead);
        let buffered = ahead.after <= position
            && ahead
                .notifications
                .back()
                .is_some_and(|notification| notification.id > position);
        if buffered {
            while ahead
                .notifications
                .front()
                .is_some_and(|notification| notification.id <= position)
            {
                ahead.notifications.pop_front();
            }
        } else {
            *ahead = self.read_after(leader, position)?;
        }
        if ahead.notifications.is_empty() {
            return Ok(None);
        }
        if !self.config.linger.is_zero()
            && !ahead.more
            && ahead.notifications.len() < self.config.batch_size
        {
            // Lingers once, then sends what there is.
            self.sleep(self.config.linger);
            *ahead = self.read_after(leader, position)?;
        }
        let (records, last) = self
            .batch_of(ahead.notifications.make_contiguous())
            .map_err(|e| self.store_error(leader, e))?;
        drop(ahead);
        let Some(last) = last else {
            return Ok(None);
        };
        let count = records.len();
        if count > 0 {
            let body = serde_json::to_vec(&Batch::new(records))
                .map_err(|e| self.store_error(leader, Error::Corrupt(e.to_string())))?;
            self.send(&body).map_err(|error| {
                SystemError::Runner(format!(
                    "subscription {:?} is parked at position {position}: {error}",
                    self.subscription.name
                ))
            })?;
            self.counters
                .delivered
                .fetch_add(count as u64, Ordering::SeqCst);
            *lock(&self.counters.last_delivery) = Some(Utc::now());
        }
        let tracking = Tracking::batch(&self.tracking_name, position + 1, last);
        match self.app.process_recorder().insert_tracking(&tracking) {
            Ok(()) => Ok(Some(count)),
            // Another process delivered it too: its record stands, and the
            // receiver skipped one of the two copies.
            Err(Error::TrackingConflict { .. }) => Ok(Some(count)),
            Err(error) => Err(self.store_error(leader, error)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Follower for Delivery {
    fn follower_name(&self) -> &str {
        &self.subscription.name
    }

    fn position(&self, leader: &str) -> Result<Option<u64>, SystemError> {
        let recorded = self
            .app
            .process_recorder()
            .max_tracking_id(&self.tracking_name)
            .map_err(|source| SystemError::Store {
                follower: self.subscription.name.clone(),
                leader: leader.to_owned(),
                source: Box::new(source),
            })?;
        Ok(recorded.or(Some(self.subscription.start_after).filter(|&id| id > 0)))
    }

    fn pull_and_process(
        &self,
        leader: &dyn Leader,
        stop: Option<u64>,
    ) -> Result<usize, SystemError> {
        let mut delivered = 0;
        while !self.stopping.load(Ordering::SeqCst) {
            if let Some(stop) = stop {
                let position = self
                    .delivered_up_to()
                    .map_err(|e| self.store_error(leader, e))?;
                if position >= stop {
                    break;
                }
            }
            match self.deliver_next(leader)? {
                Some(count) => delivered += count,
                None => break,
            }
        }
        Ok(delivered)
    }

    fn dry_run(&self, leader: &dyn Leader) -> Result<usize, SystemError> {
        let mut start = self
            .delivered_up_to()
            .map_err(|e| self.store_error(leader, e))?
            + 1;
        let mut made = 0;
        loop {
            let page = leader
                .notifications(start, self.config.page_size)
                .map_err(|e| self.store_error(leader, e))?;
            let Some(last) = page.last() else {
                return Ok(made);
            };
            start = last.id + 1;
            let mut rest = &page[..];
            while !rest.is_empty() {
                let (records, last) = self
                    .batch_of(rest)
                    .map_err(|e| self.store_error(leader, e))?;
                made += records.len();
                let consumed = rest
                    .iter()
                    .take_while(|n| last.is_some_and(|last| n.id <= last))
                    .count();
                rest = &rest[consumed.max(1)..];
            }
        }
    }

    fn resettable(&self) -> bool {
        false
    }

    fn reset(&self, _leader: Option<&str>) -> Result<(), SystemError> {
        Err(SystemError::Invalid(format!(
            "subscription {:?} cannot be reset here: delete it and create it again with \
             \"start\": \"beginning\" to deliver every change again",
            self.subscription.name
        )))
    }
}
