//! The recorder: an application's events on one stream, each aggregate on
//! its own subject, the log in the stream's sequence.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_nats::jetstream::message::StreamMessage;
use async_nats::{HeaderMap, HeaderValue};
use hashlink::LruCache;
use uuid::Uuid;

use super::connection::{NatsConnection, Outgoing, Published};
use super::listen::{NatsListener, hear_commits};
use super::requests::{MAX_PAGE, PAGE, Unanswered, backoff, header};
use super::subject::{EXPECTED_LAST_SUBJECT_SEQUENCE, Layout, MSG_ID, TOPIC, TRACKING, VERSION};
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::listen::{Listener, Signal};
use crate::persistence::recorder::{
    AggregateRecorder, ApplicationRecorder, EventQuery, ProcessRecorder, Tracking, TrackingRecorder,
};
use crate::persistence::stored_event::{Notification, StoredEvent};

/// How many aggregates' last known positions a recorder remembers, so that
/// saving an aggregate it has just read or written needs no read first.
const POSITIONS: usize = 10_000;

/// JetStream's code for a batch of more messages than the servers allow.
const BATCH_TOO_LARGE: u64 = 10199;
/// JetStream's codes for a refusal that passes: the system or the stream
/// unavailable for a moment, as while a leader is elected.
const TRANSIENT: [u64; 4] = [10008, 10118, 10163, 10194];

/// How many times a read is made again while the server's copy that
/// answered it is behind what this recorder knows was stored (a replica
/// that has not applied the latest saves yet), and the pause before the
/// n-th time (n times this).
const FRESH_TRIES: u32 = 30;
const FRESH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// How many times a save reads the subjects' last messages again after
/// another writer moved one between its read and its publish.
const MAX_RACES: u32 = 10;

/// A recorder on a NATS JetStream stream: the events of an application (an
/// [`ApplicationRecorder`] and [`ProcessRecorder`]), or its snapshots.
///
/// - Each aggregate is a subject of the stream; a save publishes with the
///   sequence of each aggregate's last message as the server's expected
///   last subject sequence, so a version another writer took is refused by
///   the server, whatever the number of writers and servers.
/// - A save of several messages (several events, several aggregates, a
///   follower's tracking record) is one atomic batch: all or nothing.
/// - The notification id of an event is its sequence in the stream:
///   commit-ordered, and gap-free in a stream of events alone (a follower's
///   tracking records take sequences of their own).
/// - Each message carries an id unique to its save, so a save retried after
///   its answer was lost is recognised, not written twice.
///
/// ```no_run
/// use es_core::persistence::{AggregateRecorder, NatsConfig, NatsConnection, NatsRecorder, StoredEvent};
/// let config = NatsConfig::new("nats://127.0.0.1:4222", "orders")?;
/// let events = NatsRecorder::events(&NatsConnection::connect(&config)?, true)?;
/// let event = StoredEvent { originator_id: uuid::Uuid::new_v4().into(), originator_version: 1, topic: "Order.Placed".into(), state: b"{}".to_vec() };
/// let ids = events.insert_events(&[event])?;
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct NatsRecorder {
    connection: NatsConnection,
    stream: String,
    layout: Layout,
    /// Each aggregate's newest message this recorder has seen: a fact for
    /// good (messages are never deleted), though maybe no longer the newest.
    positions: Mutex<LruCache<OriginatorId, Position>>,
    /// Bumped by this recorder's saves, and by the commits of every
    /// process once a listener asked to hear them.
    recorded: Arc<Signal>,
    /// The sequence of the newest event this recorder knows is stored (its
    /// own saves', and those it heard of): a read of the log that ends
    /// below it was answered by a copy that is behind, and is made again.
    high_water: Arc<AtomicU64>,
    /// Whether the subscription to the stream's commits is made.
    hearing: Mutex<bool>,
    /// The start of this recorder's save ids (random, so that no other
    /// recorder's match) and how many saves it has numbered: each save's
    /// message ids are new to the servers with no random draw per save.
    save_prefix: String,
    saves: AtomicU64,
}

impl std::fmt::Debug for NatsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsRecorder")
            .field("servers", &self.connection.config().servers_shown())
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Position {
    version: u64,
    sequence: u64,
}

impl NatsRecorder {
    /// The events recorder of the stream `connection`'s configuration
    /// names, made first if `create`.
    pub fn events(connection: &NatsConnection, create: bool) -> Result<Self> {
        let stream = connection.config().stream().to_owned();
        Self::open(connection, stream.clone(), Layout::events(&stream), create)
    }

    /// The snapshots recorder: the stream `<stream>_snapshots` beside the
    /// events stream, made first if `create`.
    pub fn snapshots(connection: &NatsConnection, create: bool) -> Result<Self> {
        let stream = connection.config().stream();
        Self::open(
            connection,
            format!("{stream}_snapshots"),
            Layout::snapshots(stream),
            create,
        )
    }

    fn open(
        connection: &NatsConnection,
        stream: String,
        layout: Layout,
        create: bool,
    ) -> Result<Self> {
        connection.stream(stream.clone(), &layout, create)?;
        let positions = NonZeroUsize::new(POSITIONS)
            .map_or_else(LruCache::new_unbounded, |n| LruCache::new(n.get()));
        Ok(NatsRecorder {
            connection: connection.clone(),
            stream,
            layout,
            positions: Mutex::new(positions),
            recorded: Arc::new(Signal::default()),
            high_water: Arc::new(AtomicU64::new(0)),
            hearing: Mutex::new(false),
            save_prefix: Uuid::new_v4().simple().to_string(),
            saves: AtomicU64::new(0),
        })
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    fn known(&self, id: &OriginatorId) -> Option<Position> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
    }

    /// Remembers `position` unless a newer one of the aggregate is known.
    fn remember(&self, id: &OriginatorId, position: Position) {
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if positions
            .peek(id)
            .is_none_or(|known| known.sequence < position.sequence)
        {
            positions.insert(id.clone(), position);
        }
    }

    /// Saves `events` and `tracking` in one publish, or nothing.
    fn save(&self, events: &[StoredEvent], tracking: Option<&Tracking>) -> Result<Vec<u64>> {
        let count = events.len() + usize::from(tracking.is_some());
        if count == 0 {
            return Ok(Vec::new());
        }
        let groups = groups(events)?;
        let save_id = format!(
            "{}-{:x}",
            self.save_prefix,
            self.saves.fetch_add(1, Ordering::Relaxed)
        );
        let messages = self.messages(&save_id, events, tracking)?;
        if let Some(message) = messages
            .iter()
            .find(|m| m.size() > self.connection.max_payload())
        {
            return Err(Error::database(
                "saving to NATS",
                format!(
                    "a message of {} bytes (on {}) is over the servers' max_payload of {} \
                     bytes: raise max_payload in their configuration (NATS takes up to 64 MB) \
                     or make the event smaller",
                    message.size(),
                    message.subject,
                    self.connection.max_payload()
                ),
            ));
        }
        let deadline = Instant::now() + self.connection.config().request_timeout * 4;
        // Whether a try may have been stored with its answer lost: from
        // then on, a failure is an outcome unknown, not a save refused.
        let (mut races, mut tries, mut maybe_stored) = (0, 0u32, false);
        // The first try sends the messages checked above; a later one,
        // since a publish takes its messages, the same made again.
        let mut checked = Some(messages);
        loop {
            tries += 1;
            let messages = match checked.take() {
                Some(messages) => messages,
                None => self.messages(&save_id, events, tracking)?,
            };
            let attempt = Attempt {
                save_id: &save_id,
                events,
                groups: &groups,
                tracking,
                tries,
                maybe_stored,
            };
            let reason = match self.try_save(&attempt, messages) {
                Ok(Outcome::Saved(ids)) => return Ok(self.saved(events, &groups, ids)),
                Ok(Outcome::Refused(error)) => return Err(error),
                // Moved by an earlier try of this save, perhaps: settled by
                // the reads of the next try, within the deadline.
                Ok(Outcome::Raced) if maybe_stored => "an aggregate of the save moved".to_owned(),
                Ok(Outcome::Raced) => {
                    races += 1;
                    if races > MAX_RACES {
                        return Err(Error::database(
                            "saving to NATS",
                            "other writers kept moving the aggregates' last messages",
                        ));
                    }
                    continue;
                }
                Ok(Outcome::Unsettled { reason, sent }) => {
                    maybe_stored |= sent;
                    reason
                }
                // A read that failed: the servers may be electing a leader.
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                if !maybe_stored {
                    return Err(Error::database("saving to NATS", reason));
                }
                if let Ok(Some(ids)) = self.stored_already(&save_id, events, &groups, tracking) {
                    return Ok(self.saved(events, &groups, ids));
                }
                return Err(self.outcome_unknown(events, tracking, reason));
            }
            tracing::debug!(%reason, tries, "a save to NATS did not settle; trying again");
            std::thread::sleep(backoff(tries));
        }
    }

    /// One try of a save: read what it must expect, publish `outgoing`
    /// with it, read the answer.
    fn try_save(&self, attempt: &Attempt<'_>, mut outgoing: Vec<Outgoing>) -> Result<Outcome> {
        let Attempt {
            save_id,
            events,
            groups,
            tracking,
            tries,
            maybe_stored,
        } = *attempt;
        let expected = match self.expected_sequences(events, groups, tracking, tries > 1)? {
            Expected::Sequences(expected) => expected,
            Expected::Conflict(conflict) => {
                // A save whose answer was lost may be what is there now.
                if maybe_stored
                    && let Some(ids) = self.stored_already(save_id, events, groups, tracking)?
                {
                    return Ok(Outcome::Saved(ids));
                }
                return Ok(Outcome::Refused(conflict));
            }
        };
        for (index, sequence) in expected {
            outgoing[index]
                .headers
                .insert(EXPECTED_LAST_SUBJECT_SEQUENCE, HeaderValue::from(sequence));
        }
        // A batch of an earlier try may still be open on a server that
        // lost its commit: each try is a batch of its own.
        let batch_id = format!("{save_id}-{tries}");
        let count = outgoing.len();
        let published = match self.connection.publish(&batch_id, outgoing) {
            Ok(Ok(published)) => published,
            Ok(Err(Unanswered(reason))) => return Ok(Outcome::Unsettled { reason, sent: true }),
            // An answer that could not be read: the save may be stored.
            Err(error) => {
                return Ok(Outcome::Unsettled {
                    reason: error.to_string(),
                    sent: true,
                });
            }
        };
        Ok(match published {
            Published::Stored { last_sequence } => {
                let first = (last_sequence + 1).saturating_sub(count as u64);
                Outcome::Saved((first..first + events.len() as u64).collect())
            }
            Published::WrongLastSequence => Outcome::Raced,
            Published::SeenBefore => {
                match self.stored_already(save_id, events, groups, tracking)? {
                    Some(ids) => Outcome::Saved(ids),
                    None => Outcome::Unsettled {
                        reason: "the servers are storing an earlier try of the save".into(),
                        sent: true,
                    },
                }
            }
            // Answered by a server that could not store it; but around an
            // election another may have, and its answer is not the one heard.
            Published::Refused { code, description } if TRANSIENT.contains(&code) => {
                Outcome::Unsettled {
                    reason: format!("{description} (code {code})"),
                    sent: true,
                }
            }
            Published::Refused { code, description } => {
                let reason = if code == BATCH_TOO_LARGE {
                    format!(
                        "a save of {count} messages is over the servers' limit on an atomic \
                         batch ({description}); raise jetstream.limits.batch.max_msgs in their \
                         configuration, or save fewer events at a time"
                    )
                } else {
                    format!("{description} (code {code})")
                };
                Outcome::Refused(Error::database("saving to NATS", reason))
            }
        })
    }

    fn outcome_unknown(
        &self,
        events: &[StoredEvent],
        tracking: Option<&Tracking>,
        reason: String,
    ) -> Error {
        match events.first() {
            Some(event) => Error::OutcomeUnknown {
                originator_id: event.originator_id.clone(),
                originator_version: event.originator_version,
                source: reason.into(),
            },
            None => Error::database(
                "recording a follower's position in NATS",
                format!(
                    "no answer for {:?} {}: {reason}",
                    tracking
                        .map(|t| t.application_name.as_str())
                        .unwrap_or_default(),
                    tracking.map_or(0, |t| t.notification_id)
                ),
            ),
        }
    }

    /// After a save: remembers where each aggregate now ends, wakes this
    /// process's listeners, and gives the ids back.
    fn saved(&self, events: &[StoredEvent], groups: &[Group], ids: Vec<u64>) -> Vec<u64> {
        for group in groups {
            let last = group.last;
            if let Some(&sequence) = ids.get(last) {
                self.remember(
                    &events[last].originator_id,
                    Position {
                        version: events[last].originator_version,
                        sequence,
                    },
                );
            }
        }
        if let Some(&last) = ids.last() {
            self.high_water.fetch_max(last, Ordering::AcqRel);
            self.recorded.bump();
        }
        ids
    }

    /// The messages of a save: its events, then its tracking record if any.
    fn messages(
        &self,
        save_id: &str,
        events: &[StoredEvent],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<Outgoing>> {
        let mut messages = Vec::with_capacity(events.len() + 1);
        for (index, event) in events.iter().enumerate() {
            messages.push(self.event_message(save_id, index, event)?);
        }
        if let Some(tracking) = tracking {
            messages.push(tracking_message(
                &self.layout,
                save_id,
                events.len(),
                tracking,
            ));
        }
        Ok(messages)
    }

    fn event_message(&self, save_id: &str, index: usize, event: &StoredEvent) -> Result<Outgoing> {
        let mut headers = HeaderMap::new();
        headers.insert(TOPIC, topic_value(event)?);
        headers.insert(VERSION, HeaderValue::from(event.originator_version));
        headers.insert(MSG_ID, format!("{save_id}-{index}"));
        Ok(Outgoing {
            subject: self.layout.aggregate(&event.originator_id),
            headers,
            payload: bytes::Bytes::copy_from_slice(&event.state),
        })
    }

    /// The last sequence each group's subject must have for the save to
    /// go ahead, by the index of the message that carries the check; or
    /// the conflict the save would be.
    fn expected_sequences(
        &self,
        events: &[StoredEvent],
        groups: &[Group],
        tracking: Option<&Tracking>,
        fresh_reads: bool,
    ) -> Result<Expected> {
        let mut expected = Vec::with_capacity(groups.len() + 1);
        for group in groups {
            let first = &events[group.first];
            let id = &first.originator_id;
            let known = (!fresh_reads).then(|| self.known(id)).flatten();
            let sequence = match known {
                Some(known) if known.version + 1 == first.originator_version => known.sequence,
                // A new aggregate: the server refuses the save if it is not.
                None if first.originator_version == 1 && !fresh_reads => 0,
                _ => match self.last_position(id)?.map(|(_, position)| position) {
                    Some(last) if last.version >= first.originator_version => {
                        return Ok(Expected::Conflict(Error::Conflict {
                            originator_id: id.clone(),
                            originator_version: first.originator_version,
                        }));
                    }
                    Some(last) => last.sequence,
                    None => 0,
                },
            };
            expected.push((group.first, sequence));
        }
        if let Some(tracking) = tracking {
            let subject = self.layout.tracking(&tracking.application_name);
            let sequence = match self.connection.last_message(&self.stream, &subject)? {
                Some(last) => {
                    if tracked_id(&last)? >= tracking.lowest() {
                        return Ok(Expected::Conflict(Error::TrackingConflict {
                            application_name: tracking.application_name.clone(),
                            notification_id: tracking.notification_id,
                        }));
                    }
                    last.sequence
                }
                None => 0,
            };
            expected.push((events.len(), sequence));
        }
        Ok(Expected::Sequences(expected))
    }

    /// The newest message of an aggregate, read from the stream (again
    /// while the copy that answered is behind what this recorder knows).
    fn last_position(&self, id: &OriginatorId) -> Result<Option<(StreamMessage, Position)>> {
        let subject = self.layout.aggregate(id);
        let known = self.known(id);
        for attempt in 1..=FRESH_TRIES {
            let last = match self.connection.last_message(&self.stream, &subject)? {
                Some(message) => {
                    let position = Position {
                        version: version_of(&message)?,
                        sequence: message.sequence,
                    };
                    Some((message, position))
                }
                None => None,
            };
            let sequence = last.as_ref().map_or(0, |(_, position)| position.sequence);
            if known.is_some_and(|known| sequence < known.sequence) && attempt < FRESH_TRIES {
                std::thread::sleep(FRESH_PAUSE * attempt);
                continue;
            }
            if let Some((_, position)) = &last {
                self.remember(id, *position);
            }
            return Ok(last);
        }
        Ok(None)
    }

    /// The ids of this save's events if it is in the stream already (an
    /// earlier try of it was stored, its answer lost): found by the message
    /// id of an aggregate's first event of the save, since a save is all or
    /// nothing and its messages are stored one after the other. A save of
    /// tracking alone: found if its record is still the upstream's last.
    fn stored_already(
        &self,
        save_id: &str,
        events: &[StoredEvent],
        groups: &[Group],
        tracking: Option<&Tracking>,
    ) -> Result<Option<Vec<u64>>> {
        if events.is_empty() {
            let Some(tracking) = tracking else {
                return Ok(None);
            };
            let subject = self.layout.tracking(&tracking.application_name);
            let last = self.connection.last_message(&self.stream, &subject)?;
            let wanted = format!("{save_id}-0");
            let ours =
                last.is_some_and(|last| header(&last.headers, MSG_ID) == Some(wanted.as_str()));
            return Ok(ours.then(Vec::new));
        }
        // Each aggregate's first message of the save is looked for: the one
        // whose newer messages a save found (so the copy read is as fresh)
        // shows it if any does, and one shows it only if all are stored.
        for group in groups {
            let event = &events[group.first];
            let wanted = format!("{save_id}-{}", group.first);
            let query = EventQuery::new().lte(event.originator_version);
            let found = self
                .read_subject(&event.originator_id, query)?
                .into_iter()
                .find(|(message, version)| {
                    *version == event.originator_version
                        && header(&message.headers, MSG_ID) == Some(wanted.as_str())
                });
            if let Some((message, _)) = found {
                // A save's messages are stored one after the other.
                let first = message.sequence - group.first as u64;
                return Ok(Some((first..first + events.len() as u64).collect()));
            }
        }
        Ok(None)
    }

    /// An aggregate's messages (with their versions), oldest first: from
    /// where `query.gt` lets the read start, up to the first beyond
    /// `query.lte`. Read again while the copy that answered is behind what
    /// this recorder knows the aggregate to have.
    fn read_subject(
        &self,
        id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<(StreamMessage, u64)>> {
        let subject = self.layout.aggregate(id);
        let known = self.known(id);
        // Messages after a known one are of later versions: start there.
        let start = match (query.gt, known) {
            (Some(gt), Some(known)) if known.version <= gt => known.sequence + 1,
            _ => 1,
        };
        for attempt in 1..=FRESH_TRIES {
            let mut messages = Vec::new();
            let mut from = start;
            let mut beyond_lte = false;
            loop {
                let (page, more) =
                    self.connection
                        .page(&self.stream, Some(&subject), from, PAGE)?;
                for message in page {
                    let version = version_of(&message)?;
                    from = message.sequence + 1;
                    beyond_lte = query.lte.is_some_and(|lte| version > lte);
                    messages.push((message, version));
                    if beyond_lte {
                        break;
                    }
                }
                if !more || beyond_lte {
                    break;
                }
            }
            let last = messages.last().map(|(message, version)| Position {
                version: *version,
                sequence: message.sequence,
            });
            let reached = last.map_or(start - 1, |last| last.sequence);
            let behind = !beyond_lte && known.is_some_and(|known| reached < known.sequence);
            if behind && attempt < FRESH_TRIES {
                std::thread::sleep(FRESH_PAUSE * attempt);
                continue;
            }
            if let Some(last) = last.filter(|_| !beyond_lte) {
                self.remember(id, last);
            }
            return Ok(messages);
        }
        Ok(Vec::new())
    }

    fn stored_event(
        &self,
        id: &OriginatorId,
        message: &StreamMessage,
        version: u64,
    ) -> Result<StoredEvent> {
        Ok(StoredEvent {
            originator_id: id.clone(),
            originator_version: version,
            topic: topic_of(message)?.to_owned(),
            state: message.payload.to_vec(),
        })
    }
}

/// The messages of one aggregate in a save, by index: its first and last.
#[derive(Debug)]
struct Group {
    first: usize,
    last: usize,
}

/// What a try of a save works with.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    save_id: &'a str,
    events: &'a [StoredEvent],
    groups: &'a [Group],
    tracking: Option<&'a Tracking>,
    tries: u32,
    maybe_stored: bool,
}

/// How a try of a save ended.
enum Outcome {
    Saved(Vec<u64>),
    /// Refused for good: nothing of it is stored.
    Refused(Error),
    /// Another writer moved an aggregate between the read and the publish.
    Raced,
    /// No settled answer; `sent` if the try may have been stored.
    Unsettled {
        reason: String,
        sent: bool,
    },
}

enum Expected {
    Sequences(Vec<(usize, u64)>),
    Conflict(Error),
}

/// The aggregates of a save in the order they first appear. An
/// aggregate's events must rise in version within the save (they are
/// stored in order on its subject): a version at or below an earlier one
/// of the same save is a conflict, as it is on every backend.
fn groups(events: &[StoredEvent]) -> Result<Vec<Group>> {
    let mut groups: Vec<Group> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|group| events[group.first].originator_id == event.originator_id)
        {
            Some(group) => {
                if event.originator_version <= events[group.last].originator_version {
                    return Err(Error::Conflict {
                        originator_id: event.originator_id.clone(),
                        originator_version: event.originator_version,
                    });
                }
                group.last = index;
            }
            None => groups.push(Group {
                first: index,
                last: index,
            }),
        }
    }
    Ok(groups)
}

fn tracking_message(layout: &Layout, save_id: &str, index: usize, tracking: &Tracking) -> Outgoing {
    let mut headers = HeaderMap::new();
    headers.insert(TRACKING, HeaderValue::from(tracking.notification_id));
    headers.insert(MSG_ID, format!("{save_id}-{index}"));
    Outgoing {
        subject: layout.tracking(&tracking.application_name),
        headers,
        payload: bytes::Bytes::new(),
    }
}

/// A topic as a header value: NATS trims header values and ends them at a
/// line break, so a topic that such would change is refused, not altered.
fn topic_value(event: &StoredEvent) -> Result<HeaderValue> {
    let topic = &event.topic;
    if topic.is_empty() || topic.trim() != topic || topic.contains(['\r', '\n']) {
        return Err(Error::Encode {
            topic: topic.clone(),
            originator_id: event.originator_id.clone(),
            originator_version: event.originator_version,
            source: "the NATS store keeps topics in message headers: a topic must be \
                     non-empty, without line breaks and without white space at either end"
                .into(),
        });
    }
    topic.parse::<HeaderValue>().map_err(|error| Error::Encode {
        topic: topic.clone(),
        originator_id: event.originator_id.clone(),
        originator_version: event.originator_version,
        source: error.to_string().into(),
    })
}

/// A header every message this store writes carries, or `Error::Corrupt`.
fn required<'a>(message: &'a StreamMessage, name: &str) -> Result<&'a str> {
    header(&message.headers, name).ok_or_else(|| {
        Error::Corrupt(format!(
            "message {} of {} has no {name} header",
            message.sequence, message.subject
        ))
    })
}

/// A header that holds a whole number, or `Error::Corrupt`.
fn required_number(message: &StreamMessage, name: &str) -> Result<u64> {
    let value = required(message, name)?;
    value.parse().map_err(|_| {
        Error::Corrupt(format!(
            "message {} of {} has {name} {value:?}, not a whole number",
            message.sequence, message.subject
        ))
    })
}

fn version_of(message: &StreamMessage) -> Result<u64> {
    required_number(message, VERSION)
}

fn topic_of(message: &StreamMessage) -> Result<&str> {
    required(message, TOPIC)
}

fn tracked_id(message: &StreamMessage) -> Result<u64> {
    required_number(message, TRACKING)
}

impl AggregateRecorder for NatsRecorder {
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        self.save(events, None)
    }

    fn select_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>> {
        if query.desc && query.limit == Some(1) && query.lte.is_none() {
            let Some((last, position)) = self.last_position(originator_id)? else {
                return Ok(Vec::new());
            };
            if query.gt.is_some_and(|gt| position.version <= gt) {
                return Ok(Vec::new());
            }
            return Ok(vec![self.stored_event(
                originator_id,
                &last,
                position.version,
            )?]);
        }
        let limit = query.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let selected =
            self.read_subject(originator_id, query)?
                .into_iter()
                .filter(|(_, version)| {
                    query.gt.is_none_or(|gt| *version > gt)
                        && query.lte.is_none_or(|lte| *version <= lte)
                });
        let selected: Vec<_> = if query.desc {
            let mut all: Vec<_> = selected.collect();
            all.reverse();
            all.truncate(limit);
            all
        } else {
            selected.take(limit).collect()
        };
        selected
            .iter()
            .map(|(message, version)| self.stored_event(originator_id, message, *version))
            .collect()
    }
}

impl ApplicationRecorder for NatsRecorder {
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        stop: Option<u64>,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        // The whole stream is read, the few tracking records skipped here:
        // a server filters a page of a stream of many subjects by a
        // wildcard far more slowly than it reads the stream in order.
        let events = self.layout.aggregates_prefix();
        let stored = self.high_water.load(Ordering::Acquire);
        for attempt in 1..=FRESH_TRIES {
            let mut notifications = Vec::new();
            let mut from = start.max(1);
            // Whether the read ended at the end of the copy that answered it.
            let mut at_end = false;
            'pages: while notifications.len() < limit && stop.is_none_or(|stop| from <= stop) {
                // As many as are wanted, or a page of them when filtering.
                let wanted = if topics.is_empty() {
                    limit - notifications.len()
                } else {
                    PAGE
                };
                let batch = wanted.clamp(1, MAX_PAGE);
                let (page, more) = self.connection.page(&self.stream, None, from, batch)?;
                for message in &page {
                    if stop.is_some_and(|stop| message.sequence > stop) {
                        break 'pages;
                    }
                    from = message.sequence + 1;
                    if !message.subject.starts_with(events.as_str()) {
                        continue;
                    }
                    let topic = topic_of(message)?;
                    if !topics.is_empty() && !topics.contains(&topic) {
                        continue;
                    }
                    let id = self.layout.aggregate_of(&message.subject)?;
                    notifications.push(Notification {
                        id: message.sequence,
                        event: self.stored_event(&id, message, version_of(message)?)?,
                    });
                    if notifications.len() == limit {
                        break 'pages;
                    }
                }
                if !more {
                    at_end = true;
                    break;
                }
            }
            let wanted_up_to = stop.map_or(stored, |stop| stop.min(stored));
            if at_end && from <= wanted_up_to && attempt < FRESH_TRIES {
                std::thread::sleep(FRESH_PAUSE * attempt);
                continue;
            }
            return Ok(notifications);
        }
        Ok(Vec::new())
    }

    fn max_notification_id(&self) -> Result<Option<u64>> {
        let subject = self.layout.all_aggregates();
        let stored = self.high_water.load(Ordering::Acquire);
        for attempt in 1..=FRESH_TRIES {
            let max = self
                .connection
                .last_message(&self.stream, &subject)?
                .map(|message| message.sequence);
            if max.unwrap_or(0) < stored && attempt < FRESH_TRIES {
                std::thread::sleep(FRESH_PAUSE * attempt);
                continue;
            }
            return Ok(max);
        }
        Ok(None)
    }

    fn listen(&self) -> Result<Box<dyn Listener>> {
        let mut hearing = self.hearing.lock().unwrap_or_else(PoisonError::into_inner);
        if !*hearing {
            hear_commits(
                &self.connection,
                self.layout.committed(),
                Arc::clone(&self.recorded),
                Arc::clone(&self.high_water),
            )?;
            *hearing = true;
        }
        Ok(Box::new(NatsListener::new(Arc::clone(&self.recorded))))
    }
}

impl TrackingRecorder for NatsRecorder {
    fn insert_tracking(&self, tracking: &Tracking) -> Result<()> {
        self.save(&[], Some(tracking)).map(drop)
    }

    fn max_tracking_id(&self, application_name: &str) -> Result<Option<u64>> {
        let subject = self.layout.tracking(application_name);
        self.connection
            .last_message(&self.stream, &subject)?
            .map(|message| tracked_id(&message))
            .transpose()
    }
}

impl ProcessRecorder for NatsRecorder {
    fn insert_events_with_tracking(
        &self,
        events: &[StoredEvent],
        tracking: &Tracking,
    ) -> Result<Vec<u64>> {
        self.save(events, Some(tracking))
    }
}
