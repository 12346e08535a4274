//! Listening to a PostgreSQL events table: each commit of events sends a
//! `NOTIFY` on the table's channel (named as the table, as the Python
//! library names it; in the commit's round trip), and a
//! listener keeps a session of its own in `LISTEN` for it, so saves of any
//! process wake it within a round trip of their commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use super::pool::{PostgresDatabase, Session, pg_error};
use crate::error::Result;
use crate::persistence::listen::Listener;

/// How long a listener's session may stay quiet before it is asked whether
/// it is still there: a session that only listens writes nothing, so a
/// network gone silent under it would otherwise go unnoticed.
const PING_AFTER: Duration = Duration::from_secs(30);

pub(super) struct PostgresListener {
    db: Arc<PostgresDatabase>,
    /// Quoted, as in the recorder's `NOTIFY`.
    channel: String,
    /// `None` after the session was lost, until the next wait connects.
    client: Option<Session>,
    /// When the session last showed it was there.
    heard_from: Instant,
}

impl PostgresListener {
    /// Listens at once, so that a commit made while the reader first reads
    /// the log is heard.
    pub(super) fn new(db: Arc<PostgresDatabase>, channel: String) -> Result<Self> {
        let client = Self::connect(&db, &channel)?;
        Ok(PostgresListener {
            db,
            channel,
            client: Some(client),
            heard_from: Instant::now(),
        })
    }

    fn connect(db: &PostgresDatabase, channel: &str) -> Result<Session> {
        let mut client = db.dedicated_client()?;
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .map_err(|e| pg_error("listening for new events", e))?;
        Ok(client)
    }
}

impl Listener for PostgresListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let started = Instant::now();
        let Some(client) = &mut self.client else {
            // Whatever was committed while no session listened was not
            // heard: say "maybe", so the reader reads the log.
            self.client = Some(Self::connect(&self.db, &self.channel)?);
            self.heard_from = Instant::now();
            return Ok(true);
        };
        let heard = {
            let mut notifications = client.notifications();
            let heard = notifications.timeout_iter(timeout).next();
            if let Ok(Some(_)) = heard {
                // Those already here are the same news.
                let mut pending = notifications.iter();
                while let Ok(Some(_)) = pending.next() {}
            }
            heard.map(|heard| heard.is_some())
        };
        // A quiet session is asked, now and then, whether it is still there
        // (bounded by the reply deadline of the pool's connections).
        let quiet_too_long = matches!(heard, Ok(false)) && self.heard_from.elapsed() > PING_AFTER;
        let alive = !client.is_closed() && (!quiet_too_long || client.simple_query("").is_ok());
        match heard {
            Ok(true) => {
                self.heard_from = Instant::now();
                Ok(true)
            }
            Ok(false) if alive => {
                if quiet_too_long {
                    self.heard_from = Instant::now();
                }
                Ok(false)
            }
            // The session is gone (a restart, a terminated backend): the
            // next wait connects again; until then, "maybe".
            Ok(false) | Err(_) => {
                self.client = None;
                // Not at once, so that a server that is down is not asked
                // again in a busy loop by a reader that keeps waiting.
                let pause = Duration::from_millis(50).min(timeout);
                std::thread::sleep(pause.saturating_sub(started.elapsed()));
                Ok(true)
            }
        }
    }
}
