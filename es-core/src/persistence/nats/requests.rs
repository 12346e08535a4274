//! The requests a recorder makes: a save as one publish or one atomic
//! batch, and the direct gets that read a subject or the log a page at a
//! time from any replica.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::{HeaderMap, HeaderValue, Message};
use futures_util::StreamExt;
use serde::Serialize;

use super::connection::{NatsConnection, Outgoing, Published};
use crate::error::{Error, Result};

/// How many messages of an aggregate one direct get asks for.
pub(crate) const PAGE: usize = 256;
/// The most messages of the log one direct get asks for.
pub(crate) const MAX_PAGE: usize = 1000;

/// Why a request got no answer: worth another try (a server restarting, a
/// leader being elected, a connection being remade).
#[derive(Debug)]
pub(crate) struct Unanswered(pub(crate) String);

impl NatsConnection {
    /// Publishes `messages`: one as a request, several as one atomic batch
    /// whose last message asks for the answer. `Err(Unanswered)` when no
    /// answer came: the save may or may not be stored.
    pub(crate) fn publish(
        &self,
        batch_id: &str,
        messages: Vec<Outgoing>,
    ) -> Result<std::result::Result<Published, Unanswered>> {
        let client = self.inner.client.clone();
        let batch_id = batch_id.to_owned();
        self.run(async move {
            let count = messages.len();
            let mut reply = None;
            for (index, message) in messages.into_iter().enumerate() {
                let mut headers = message.headers;
                if count > 1 {
                    headers.insert("Nats-Batch-Id", batch_id.as_str());
                    headers.insert("Nats-Batch-Sequence", HeaderValue::from(index + 1));
                }
                if index + 1 < count {
                    if let Err(error) = client
                        .publish_with_headers(message.subject, headers, message.payload)
                        .await
                    {
                        return Ok(Err(Unanswered(error.to_string())));
                    }
                    continue;
                }
                if count > 1 {
                    headers.insert("Nats-Batch-Commit", "1");
                }
                // The client gives up after the configured request timeout.
                let request =
                    client.request_with_headers(message.subject, headers, message.payload);
                reply = Some(match request.await {
                    Ok(reply) => reply,
                    Err(error) => return Ok(Err(Unanswered(error.to_string()))),
                });
            }
            match reply {
                Some(reply) => Published::from_reply(&reply).map(Ok),
                None => Err(Error::database("publishing to NATS", "nothing to publish")),
            }
        })
    }

    /// The last message of `subject` (a wildcard takes the last of all its
    /// subjects) in `stream`, if it has one.
    pub(crate) fn last_message(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<StreamMessage>> {
        let request = DirectGet {
            last_by_subj: Some(subject),
            ..DirectGet::default()
        };
        let (mut messages, _) = self.direct_get(stream, &request)?;
        Ok(messages.pop())
    }

    /// Up to `batch` messages of `subject` (or its wildcard; every subject
    /// without one) in `stream`, from sequence `from` on, in order; and
    /// whether the stream holds more of them after the last one returned.
    pub(crate) fn page(
        &self,
        stream: &str,
        subject: Option<&str>,
        from: u64,
        batch: usize,
    ) -> Result<(Vec<StreamMessage>, bool)> {
        let request = DirectGet {
            seq: Some(from.max(1)),
            next_by_subj: subject,
            batch: Some(batch.max(1)),
            ..DirectGet::default()
        };
        self.direct_get(stream, &request)
    }

    /// A direct get, single or batched: its messages in order (none when
    /// the stream has none that match), and whether more match after them
    /// (the server says how many at the end of a batch).
    fn direct_get(
        &self,
        stream: &str,
        request: &DirectGet<'_>,
    ) -> Result<(Vec<StreamMessage>, bool)> {
        let client = self.inner.client.clone();
        let timeout = self.inner.config.request_timeout;
        let subject = format!("$JS.API.DIRECT.GET.{stream}");
        let payload = serde_json::to_vec(request)
            .map_err(|error| Error::database("asking NATS for messages", error))?;
        let batched = request.batch.is_some();
        self.run(async move {
            let get = async {
                let inbox = client.new_inbox();
                let mut replies = client
                    .subscribe(inbox.clone())
                    .await
                    .map_err(|error| Error::database("asking NATS for messages", error))?;
                client
                    .publish_with_reply(subject, inbox, payload.into())
                    .await
                    .map_err(|error| Error::database("asking NATS for messages", error))?;
                let mut messages = Vec::new();
                let mut more = false;
                while let Some(reply) = replies.next().await {
                    match reply_kind(&reply) {
                        ReplyKind::Message => {
                            messages.push(StreamMessage::try_from(reply).map_err(|error| {
                                Error::database("reading a message NATS sent", error)
                            })?);
                            if !batched {
                                break;
                            }
                        }
                        ReplyKind::End { pending } => {
                            more = pending > 0;
                            break;
                        }
                        ReplyKind::Failed(description) => {
                            return Err(Error::database("reading messages from NATS", description));
                        }
                    }
                }
                Ok((messages, more))
            };
            tokio::time::timeout(timeout, get)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::database(
                        "reading messages from NATS",
                        format!("no answer within {timeout:?}"),
                    ))
                })
        })
    }
}

/// A direct get request, as the server reads it.
#[derive(Debug, Default, Serialize)]
struct DirectGet<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_by_subj: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_by_subj: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<usize>,
}

enum ReplyKind {
    Message,
    /// The end of a batch (and how many more match after it), or nothing matched.
    End {
        pending: u64,
    },
    Failed(String),
}

fn reply_kind(reply: &Message) -> ReplyKind {
    match reply.status.map(|status| status.as_u16()) {
        None => ReplyKind::Message,
        Some(204) => ReplyKind::End {
            pending: reply
                .headers
                .as_ref()
                .and_then(|headers| header(headers, "Nats-Num-Pending"))
                .and_then(|pending| pending.parse().ok())
                .unwrap_or(0),
        },
        Some(404) => ReplyKind::End { pending: 0 },
        Some(status) => ReplyKind::Failed(format!(
            "status {status}{}",
            reply
                .description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )),
    }
}

/// A header's text, if the message has it.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(HeaderValue::as_str)
}

/// How long to wait before try `attempt` (from 1) of a request that got no
/// answer: doubling from 50 ms up to a second.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(1))
}
