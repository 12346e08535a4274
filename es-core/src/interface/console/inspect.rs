//! What the console reads from a store, decoded for display without the
//! page code knowing any aggregate type: events as JSON values, and the
//! states of a registered aggregate type after each of its events.

use std::sync::Arc;

use serde_json::Value;

use crate::application::Application;
use crate::domain::aggregate::{Aggregate, replay};
use crate::domain::topic;
use crate::persistence::{Mapper, StoredEvent};

/// An event as the console shows it. A failure to decode is kept as its
/// message, so that one bad row shows as such among the readable ones.
#[derive(Debug)]
pub(super) struct EventView {
    pub(super) notification_id: Option<u64>,
    pub(super) topic: String,
    pub(super) originator_id: String,
    pub(super) version: u64,
    pub(super) decoded: Result<Decoded, String>,
}

/// An event's stored body.
#[derive(Debug)]
pub(super) struct Decoded {
    pub(super) timestamp: Option<String>,
    pub(super) fields: Value,
}

impl EventView {
    pub(super) fn new(mapper: &Mapper, notification_id: Option<u64>, stored: &StoredEvent) -> Self {
        EventView {
            notification_id,
            topic: stored.topic.clone(),
            originator_id: stored.originator_id.to_string(),
            version: stored.originator_version,
            decoded: decode(mapper, stored),
        }
    }
}

fn decode(mapper: &Mapper, stored: &StoredEvent) -> Result<Decoded, String> {
    let mut body = mapper
        .to_json_value(stored)
        .map_err(|error| error.to_string())?;
    let timestamp = body
        .get("timestamp")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // An event's body is `{"timestamp", "data"}`; anything else written by
    // another program is shown whole rather than hidden.
    let fields = match body.get_mut("data") {
        Some(data) => data.take(),
        None => body,
    };
    Ok(Decoded { timestamp, fields })
}

/// The aggregate type an event belongs to: the registry's answer, which
/// knows renamed types' aliases, else the topic's prefix.
pub(super) fn aggregate_name(topic_name: &str) -> &str {
    match topic::lookup(topic_name) {
        Ok(Some(registered)) => registered.aggregate(),
        _ => topic_name.split('.').next().unwrap_or(topic_name),
    }
}

/// The states of one aggregate after each of `events` (its first events, in
/// order), as JSON; an event that cannot be applied, and every one after
/// it, gets the reason instead.
pub(super) type StatesFn =
    dyn Fn(&Application, &[StoredEvent]) -> Vec<Result<Value, String>> + Send + Sync;

/// [`StatesFn`] for `A`, replaying one event at a time so that a page of
/// states costs one replay, not one per version.
pub(super) fn states_of<A: Aggregate>() -> Arc<StatesFn> {
    Arc::new(|app: &Application, events: &[StoredEvent]| {
        let mut state: Option<A> = None;
        let mut broken: Option<u64> = None;
        events
            .iter()
            .map(|stored| {
                if let Some(version) = broken {
                    return Err(format!(
                        "not replayed: version {version} could not be applied"
                    ));
                }
                let event = app.mapper().to_domain_event::<A::Event>(stored);
                match replay(state.take(), [event]) {
                    Ok(next) => {
                        state = next;
                        serde_json::to_value(&state).map_err(|error| error.to_string())
                    }
                    Err(error) => {
                        broken = Some(stored.originator_version);
                        Err(error.to_string())
                    }
                }
            })
            .collect()
    })
}
