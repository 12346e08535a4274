//! What each page shows, read from the stores. These functions block: the
//! handlers run them on tokio's blocking pool.

use std::sync::Arc;

use serde_json::Value;

use super::inspect::{EventView, StatesFn, aggregate_name};
use super::{Followed, Inner, PAGE_SIZE};
use crate::application::Application;
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::EventQuery;

/// The index: each application's newest notification id, and each
/// follower's position. A store that fails shows its error in its own row.
#[derive(Debug)]
pub(super) struct IndexData {
    pub(super) applications: Vec<(String, Result<Option<u64>, String>)>,
    pub(super) followers: Vec<FollowerRow>,
}

#[derive(Debug)]
pub(super) struct FollowerRow {
    pub(super) name: String,
    pub(super) leader: String,
    pub(super) position: Result<Option<u64>, String>,
    /// The leader's newest id, when the leader is served here.
    pub(super) leader_max: Option<Result<Option<u64>, String>>,
}

impl FollowerRow {
    /// How many notifications the follower has yet to process, when known.
    pub(super) fn lag(&self) -> Option<u64> {
        match (&self.position, &self.leader_max) {
            (Ok(position), Some(Ok(max))) => {
                Some(max.unwrap_or(0).saturating_sub(position.unwrap_or(0)))
            }
            _ => None,
        }
    }
}

pub(super) fn index(inner: &Inner) -> IndexData {
    let max_id = |app: &Application| {
        app.notification_log()
            .max_id()
            .map_err(|error| error.to_string())
    };
    let applications = inner
        .apps
        .iter()
        .map(|(name, app)| (name.clone(), max_id(app)))
        .collect();
    let followers = inner
        .followers
        .iter()
        .map(|followed| FollowerRow {
            name: followed.name.clone(),
            leader: followed.leader.clone(),
            position: position(followed),
            leader_max: inner.apps.get(&followed.leader).map(|app| max_id(app)),
        })
        .collect();
    IndexData {
        applications,
        followers,
    }
}

fn position(followed: &Followed) -> Result<Option<u64>, String> {
    followed
        .app
        .process_recorder()
        .max_tracking_id(&followed.leader)
        .map_err(|error| error.to_string())
}

/// A page of an application's log, from notification id `start`.
#[derive(Debug)]
pub(super) struct LogData {
    pub(super) name: String,
    pub(super) start: u64,
    pub(super) events: Vec<EventView>,
    pub(super) next: Option<u64>,
    pub(super) max_id: Option<u64>,
}

pub(super) fn log(name: String, app: &Application, start: u64) -> Result<LogData> {
    let mut notifications = app
        .recorder()
        .select_notifications(start, PAGE_SIZE + 1, None, &[])?;
    // The one beyond the page says there is a next page, and where it starts
    // (ids may have gaps).
    let next = notifications.get(PAGE_SIZE).map(|beyond| beyond.id);
    notifications.truncate(PAGE_SIZE);
    let events = notifications
        .iter()
        .map(|n| EventView::new(app.mapper(), Some(n.id), &n.event))
        .collect();
    Ok(LogData {
        name,
        start,
        events,
        next,
        max_id: app.notification_log().max_id()?,
    })
}

/// A page of one aggregate's history, from version `start`, with the state
/// after each event when its type is registered.
#[derive(Debug)]
pub(super) struct AggregateData {
    pub(super) application: String,
    pub(super) id: String,
    pub(super) type_name: String,
    pub(super) start: u64,
    pub(super) events: Vec<(EventView, Option<Result<Value, String>>)>,
    pub(super) next: Option<u64>,
    pub(super) registered: bool,
}

pub(super) fn aggregate(
    inner: &Inner,
    application: String,
    app: &Application,
    id: &OriginatorId,
    start: u64,
) -> Result<AggregateData> {
    let first = app
        .recorder()
        .select_events(id, EventQuery::new().limit(1))?;
    let Some(first) = first.first() else {
        return Err(Error::AggregateNotFound {
            id: id.clone(),
            version: None,
        });
    };
    let type_name = aggregate_name(&first.topic).to_owned();
    let states = inner.aggregates.get(type_name.as_str()).map(Arc::clone);
    let page = app.recorder().select_events(
        id,
        EventQuery::new()
            .gt(start.saturating_sub(1))
            .limit(PAGE_SIZE + 1),
    )?;
    let next = page.get(PAGE_SIZE).map(|beyond| beyond.originator_version);
    let page = &page[..page.len().min(PAGE_SIZE)];
    let page_states = match (&states, page.last()) {
        (Some(states), Some(last)) => Some(states_through(
            &**states,
            app,
            id,
            last.originator_version,
            page.len(),
        )?),
        _ => None,
    };
    let events = page
        .iter()
        .enumerate()
        .map(|(at, stored)| {
            let state = page_states
                .as_ref()
                .and_then(|states| states.get(at).cloned());
            (EventView::new(app.mapper(), None, stored), state)
        })
        .collect();
    Ok(AggregateData {
        application,
        id: id.to_string(),
        type_name,
        start,
        events,
        next,
        registered: states.is_some(),
    })
}

/// The states after the last `count` of the events up to version `last`:
/// the states of a page, replayed from the aggregate's first event.
fn states_through(
    states: &StatesFn,
    app: &Application,
    id: &OriginatorId,
    last: u64,
    count: usize,
) -> Result<Vec<Result<Value, String>>> {
    let history = app
        .recorder()
        .select_events(id, EventQuery::new().lte(last))?;
    let mut all = states(app, &history);
    Ok(all.split_off(all.len().saturating_sub(count)))
}
