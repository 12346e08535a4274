//! The mapper: domain events and snapshots to stored events, and back.

use std::borrow::Cow;
use std::marker::PhantomData;

use super::cipher::Cipher;
use super::compressor::Compressor;
use super::stored_event::StoredEvent;
use super::transcoder::Transcoder;
use crate::domain::aggregate::Aggregate;
use crate::domain::event::{AggregateEvent, AnyEvent, DomainEvent, EventBody, EventBodySeed};
use crate::domain::metadata::Metadata;
use crate::domain::snapshot::{OwnedSnapshotBody, Snapshot, SnapshotBody};
use crate::domain::topic;
use crate::error::{BoxError, Error, Result};

/// Turns domain events into stored events and back.
///
/// The originator id and version go to columns of their own; the timestamp and
/// the event's fields are encoded into `state` by the [`Transcoder`], then,
/// when configured, compressed by a [`Compressor`] and encrypted by a
/// [`Cipher`], in that order as in the Python library; reading undoes them in
/// reverse.
///
/// An [`Error::Encode`] or [`Error::Decode`] names the event; its
/// [`source`](std::error::Error::source) is the error of the stage that
/// failed, to `downcast_ref`: a [`TranscoderError`](super::TranscoderError),
/// a [`CompressorError`](super::CompressorError), a [`CipherError`](super::CipherError),
/// or [`TooLarge`].
///
/// ```
/// use es_core::prelude::*;
/// use es_core::persistence::{Mapper, Transcoder};
///
/// #[aggregate]
/// pub struct Light { lit: bool }
/// #[aggregate]
/// impl Light {
///     #[event("Fitted")]
///     pub fn fit(watts: u32) -> Self { Light { lit: false } }
/// }
///
/// let light = Light::fit(60);
/// let mapper = Mapper::new(Transcoder::Json);
/// let stored = mapper.to_stored_event(&light.pending_events()[0])?;
/// assert_eq!(stored.topic, "Light.Fitted");
/// let event = mapper.to_domain_event::<LightEvent>(&stored)?;
/// assert!(matches!(event.payload, LightEvent::Fitted { watts: 60 }));
/// // A reader that never names `Light` decodes it from the topic alone:
/// let any = mapper.to_any_event(&stored)?;
/// assert!(any.downcast_ref::<LightEvent>().is_some());
/// # Ok::<(), es_core::Error>(())
/// ```
///
/// The whole pipeline: MessagePack, then zstd, then AES-GCM.
///
/// ```
/// # use es_core::prelude::*;
/// use es_core::persistence::{Cipher, Compressor, Mapper, Transcoder};
/// # #[aggregate] pub struct Beacon { lit: bool }
/// # #[aggregate] impl Beacon { #[event("Fitted")] pub fn fit(watts: u32) -> Self { Beacon { lit: false } } }
///
/// let cipher = Cipher::from_base64(&Cipher::create_key()?)?;
/// let mapper = Mapper::new(Transcoder::MessagePack)
///     .with_compressor(Compressor::Zstd)
///     .with_cipher(cipher);
/// let beacon = Beacon::fit(60);
/// let stored = mapper.to_stored_event(&beacon.pending_events()[0])?;
/// let event = mapper.to_domain_event::<BeaconEvent>(&stored)?;
/// assert!(matches!(event.payload, BeaconEvent::Fitted { watts: 60 }));
///
/// // Without the key the state is unreadable, and says which event it is:
/// let error = Mapper::new(Transcoder::MessagePack)
///     .with_compressor(Compressor::Zstd)
///     .to_domain_event::<BeaconEvent>(&stored)
///     .unwrap_err();
/// assert!(error.to_string().contains(&format!("event {} version 1", beacon.id())));
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    transcoder: Transcoder,
    compressor: Option<Compressor>,
    cipher: Option<Cipher>,
    max_event_size: usize,
}

/// The largest encoded event or snapshot a mapper accepts unless told otherwise:
/// 16 MiB (`MAX_EVENT_SIZE`).
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 << 20;

impl Mapper {
    /// A mapper that encodes with `transcoder`, and neither compresses nor encrypts.
    pub fn new(transcoder: Transcoder) -> Self {
        Mapper {
            transcoder,
            compressor: None,
            cipher: None,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
        }
    }

    /// The same mapper, refusing to write an event or snapshot whose encoding
    /// (before compression and encryption) is longer than `bytes`, and to read
    /// one that decompresses to more.
    ///
    /// ```
    /// use es_core::persistence::{Mapper, Transcoder};
    /// let mapper = Mapper::new(Transcoder::Json).with_max_event_size(1024);
    /// assert_eq!(mapper.max_event_size(), 1024);
    /// ```
    pub fn with_max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_size = bytes;
        self
    }

    /// The largest encoding accepted, in bytes.
    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// The same mapper, compressing what the transcoder writes with `compressor`.
    ///
    /// ```
    /// use es_core::persistence::{Compressor, Mapper, Transcoder};
    /// let mapper = Mapper::new(Transcoder::Json).with_compressor(Compressor::Zlib);
    /// assert_eq!(mapper.compressor(), Some(Compressor::Zlib));
    /// ```
    pub fn with_compressor(mut self, compressor: Compressor) -> Self {
        self.compressor = Some(compressor);
        self
    }

    /// The same mapper, encrypting the (compressed) state with `cipher`.
    ///
    /// ```
    /// use es_core::persistence::{Cipher, Mapper, Transcoder};
    /// let mapper = Mapper::new(Transcoder::Json).with_cipher(Cipher::new(&[3; 32])?);
    /// assert_eq!(mapper.cipher().map(Cipher::algorithm), Some("AES-256-GCM"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn with_cipher(mut self, cipher: Cipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// The transcoder in use.
    pub fn transcoder(&self) -> Transcoder {
        self.transcoder
    }

    /// The compressor in use, if any.
    pub fn compressor(&self) -> Option<Compressor> {
        self.compressor
    }

    /// The cipher in use, if any.
    pub fn cipher(&self) -> Option<&Cipher> {
        self.cipher.as_ref()
    }

    /// Compresses and encrypts what the transcoder wrote, as configured.
    fn seal(&self, encoded: Vec<u8>) -> Result<Vec<u8>, BoxError> {
        if encoded.len() > self.max_event_size {
            return Err(Box::new(TooLarge {
                size: encoded.len(),
                limit: self.max_event_size,
            }));
        }
        let compressed = match self.compressor {
            Some(compressor) => compressor.compress(&encoded)?,
            None => encoded,
        };
        match &self.cipher {
            Some(cipher) => Ok(cipher.encrypt(&compressed)?),
            None => Ok(compressed),
        }
    }

    /// Undoes [`seal`](Self::seal); borrows the stored state, with no copy,
    /// when there is nothing to undo.
    fn open<'a>(&self, state: &'a [u8]) -> Result<Cow<'a, [u8]>, BoxError> {
        let mut bytes = Cow::Borrowed(state);
        if let Some(cipher) = &self.cipher {
            bytes = Cow::Owned(cipher.decrypt(&bytes)?);
        }
        if let Some(compressor) = self.compressor {
            bytes = Cow::Owned(compressor.decompress(&bytes, self.max_event_size)?);
        }
        Ok(bytes)
    }

    /// Encodes one domain event.
    pub fn to_stored_event<E: AggregateEvent>(
        &self,
        event: &DomainEvent<E>,
    ) -> Result<StoredEvent> {
        self.to_stored_event_with_metadata(event, None)
    }

    /// Encodes one domain event with the metadata of the save that records it
    /// (who, why, headers), read back by [`metadata`](Self::metadata).
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::Metadata;
    /// use es_core::persistence::{Mapper, Transcoder};
    /// # #[aggregate] pub struct Stamp { inked: bool }
    /// # #[aggregate] impl Stamp { #[event("Cut")] pub fn cut() -> Self { Stamp { inked: false } } }
    /// let mapper = Mapper::new(Transcoder::MessagePack);
    /// let metadata = Metadata::new().user_id("ada");
    /// let stored = mapper.to_stored_event_with_metadata(&Stamp::cut().pending_events()[0], Some(&metadata))?;
    /// assert_eq!(mapper.metadata(&stored)?, metadata);
    /// // The event itself reads as before.
    /// assert!(matches!(mapper.to_domain_event::<StampEvent>(&stored)?.payload, StampEvent::Cut {}));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn to_stored_event_with_metadata<E: AggregateEvent>(
        &self,
        event: &DomainEvent<E>,
        metadata: Option<&Metadata>,
    ) -> Result<StoredEvent> {
        let body = EventBody {
            timestamp: &event.timestamp,
            payload: &event.payload,
            metadata,
        };
        let state = self
            .transcoder
            .encode(&body)
            .map_err(BoxError::from)
            .and_then(|encoded| self.seal(encoded))
            .map_err(|source| Error::Encode {
                topic: event.topic().to_owned(),
                originator_id: event.originator_id.clone(),
                originator_version: event.originator_version,
                source,
            })?;
        Ok(StoredEvent {
            originator_id: event.originator_id.clone(),
            originator_version: event.originator_version,
            topic: event.topic().to_owned(),
            state,
        })
    }

    /// Decodes one stored event as the event enum `E`.
    pub fn to_domain_event<E: AggregateEvent>(
        &self,
        stored: &StoredEvent,
    ) -> Result<DomainEvent<E>> {
        if !E::has_topic(&stored.topic) {
            return Err(match topic::lookup(&stored.topic).ok().flatten() {
                Some(registered) => Error::UnexpectedEvent {
                    topic: stored.topic.clone(),
                    originator_id: stored.originator_id.clone(),
                    originator_version: stored.originator_version,
                    reason: format!(
                        "it is an event of the aggregate type {}",
                        registered.aggregate()
                    ),
                },
                None => unknown_topic(stored),
            });
        }
        let (timestamp, payload) = self
            .open(&stored.state)
            .and_then(|state| {
                self.transcoder
                    .decode_seed(EventBodySeed::<E>::new(&stored.topic), &state)
                    .map_err(BoxError::from)
            })
            .map_err(|source| decode_error(stored, source))?;
        Ok(DomainEvent {
            originator_id: stored.originator_id.clone(),
            originator_version: stored.originator_version,
            timestamp,
            payload,
        })
    }

    /// Decodes one stored event of any registered type, chosen by its topic.
    pub fn to_any_event(&self, stored: &StoredEvent) -> Result<DomainEvent<Box<dyn AnyEvent>>> {
        let registered = topic::lookup(&stored.topic)?.ok_or_else(|| unknown_topic(stored))?;
        let (timestamp, payload) = self
            .open(&stored.state)
            .and_then(|state| {
                self.transcoder
                    .decode_erased(&state, |deserializer| registered.decode(deserializer))
                    .map_err(BoxError::from)
            })
            .map_err(|source| decode_error(stored, source))?;
        Ok(DomainEvent {
            originator_id: stored.originator_id.clone(),
            originator_version: stored.originator_version,
            timestamp,
            payload,
        })
    }

    /// The stored state as a JSON value, decrypted, decompressed and decoded
    /// whatever the transcoder, with no type registered for its topic: what
    /// was written, for a tool to show (`{"timestamp": ..., "data": {the
    /// event's fields}}` for an event). Fields are as stored, not upcast.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::persistence::{Mapper, Transcoder};
    /// # #[aggregate] pub struct Teapot { cups: u8 }
    /// # #[aggregate] impl Teapot { #[event("Brewed")] pub fn brew(cups: u8) -> Self { Teapot { cups } } }
    /// let mapper = Mapper::new(Transcoder::MessagePack);
    /// let stored = mapper.to_stored_event(&Teapot::brew(4).pending_events()[0])?;
    /// let value = mapper.to_json_value(&stored)?;
    /// assert_eq!(value["data"]["cups"], 4);
    /// assert!(value["timestamp"].is_string());
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn to_json_value(&self, stored: &StoredEvent) -> Result<serde_json::Value> {
        self.open(&stored.state)
            .and_then(|state| {
                self.transcoder
                    .decode_seed(PhantomData::<serde_json::Value>, &state)
                    .map_err(BoxError::from)
            })
            .map_err(|source| decode_error(stored, source))
    }

    /// The metadata the event's save gave it (empty when it gave none, and
    /// for a snapshot). Decodes the state without registered types: any
    /// reader of the log can tell who made a change and why.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::Metadata;
    /// # #[aggregate] pub struct Permit { granted: bool }
    /// # #[aggregate] impl Permit { #[event("Granted")] pub fn grant() -> Self { Permit { granted: true } } }
    /// let app = Application::builder().in_memory().build()?;
    /// let why = Metadata::new().user_id("clerk-7").change_reason("renewal");
    /// app.save_with_metadata(&mut Permit::grant(), &why)?;
    /// app.save(&mut Permit::grant())?;
    /// let log = app.notification_log().select(1, 10)?;
    /// assert_eq!(app.mapper().metadata(&log[0].event)?, why);
    /// assert!(app.mapper().metadata(&log[1].event)?.is_empty());
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn metadata(&self, stored: &StoredEvent) -> Result<Metadata> {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            metadata: Metadata,
        }
        self.open(&stored.state)
            .and_then(|state| {
                self.transcoder
                    .decode_seed(PhantomData::<Envelope>, &state)
                    .map_err(BoxError::from)
            })
            .map(|envelope| envelope.metadata)
            .map_err(|source| decode_error(stored, source))
    }

    /// Encodes a snapshot of `aggregate` as it is now.
    pub fn snapshot_to_stored<A: Aggregate>(&self, aggregate: &A) -> Result<StoredEvent> {
        let body = SnapshotBody::new(aggregate);
        let state = self
            .transcoder
            .encode(&body)
            .map_err(BoxError::from)
            .and_then(|encoded| self.seal(encoded))
            .map_err(|source| Error::Encode {
                topic: A::SNAPSHOT_TOPIC.to_owned(),
                originator_id: aggregate.id(),
                originator_version: aggregate.version(),
                source,
            })?;
        Ok(StoredEvent {
            originator_id: aggregate.id(),
            originator_version: aggregate.version(),
            topic: A::SNAPSHOT_TOPIC.to_owned(),
            state,
        })
    }

    /// Decodes a stored snapshot of aggregate type `A`.
    pub fn stored_to_snapshot<A: Aggregate>(&self, stored: &StoredEvent) -> Result<Snapshot<A>> {
        if !A::is_snapshot_topic(&stored.topic) {
            return Err(unknown_topic(stored));
        }
        let body: OwnedSnapshotBody<A> = self
            .open(&stored.state)
            .and_then(|state| {
                self.transcoder
                    .decode_seed(PhantomData::<OwnedSnapshotBody<A>>, &state)
                    .map_err(BoxError::from)
            })
            .map_err(|source| decode_error(stored, source))?;
        Ok(Snapshot {
            originator_id: stored.originator_id.clone(),
            originator_version: stored.originator_version,
            created_on: body.created_on,
            modified_on: body.modified_on,
            state: body.state,
        })
    }
}

/// An encoding longer than the mapper's limit: the source of the
/// [`Error::Encode`] that refuses it, before anything is written.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::persistence::TooLarge;
/// # #[aggregate] pub struct Memo { text: String }
/// # #[aggregate] impl Memo { #[event("Jotted")] pub fn jot(text: String) -> Self { Memo { text } } }
/// let app = Application::builder().in_memory().max_event_size(100).build()?;
/// let error = app.save(&mut Memo::jot("x".repeat(200))).unwrap_err();
/// let too_large = std::error::Error::source(&error)
///     .and_then(|source| source.downcast_ref::<TooLarge>())
///     .expect("the limit was the reason");
/// assert_eq!(too_large.limit, 100);
/// assert!(too_large.size > 200);
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error("its encoding is {size} bytes, more than the limit of {limit} (MAX_EVENT_SIZE)")]
pub struct TooLarge {
    /// The encoding's length.
    pub size: usize,
    /// The mapper's limit.
    pub limit: usize,
}

fn unknown_topic(stored: &StoredEvent) -> Error {
    Error::UnknownTopic {
        topic: stored.topic.clone(),
        originator_id: stored.originator_id.clone(),
        originator_version: stored.originator_version,
    }
}

fn decode_error(stored: &StoredEvent, source: BoxError) -> Error {
    Error::Decode {
        topic: stored.topic.clone(),
        originator_id: stored.originator_id.clone(),
        originator_version: stored.originator_version,
        source,
    }
}
