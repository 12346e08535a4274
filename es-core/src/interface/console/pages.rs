//! The console's HTML. maud escapes every value it interpolates, so stored
//! text (an aggregate's field, a topic, an id) can never become markup; the
//! only unescaped text is the constant style sheet.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::PAGE_SIZE;
use super::inspect::EventView;
use super::read::{AggregateData, FollowerRow, IndexData, LogData};

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; color: #1d232a;
       margin: 0 auto; max-width: 1200px; padding: 0 16px 32px; }
header { border-bottom: 1px solid #d5dbe1; padding: 12px 0; margin-bottom: 12px; }
header a { font-weight: 600; text-decoration: none; color: #1d232a; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; width: 100%; }
table.summary { width: auto; min-width: 480px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px;
         border-bottom: 1px solid #e6eaee; }
th { background: #f3f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap { white-space: nowrap; }
code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; }
.field { display: block; } .field b { font-weight: 600; color: #4a5560; }
.bad { color: #a4161a; } .muted { color: #6b7680; }
nav.pages a { margin-right: 12px; }
a { color: #0b5cad; }
";

/// A whole page around `body`; `base` is where the console is mounted.
fn layout(base: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · event store console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { a href=(home(base)) { "Event store console" } }
                main { (body) }
            }
        }
    }
}

fn home(base: &str) -> String {
    if base.is_empty() {
        "/".into()
    } else {
        base.to_owned()
    }
}

/// The path of an application's log page.
pub(super) fn log_path(base: &str, application: &str) -> String {
    format!("{base}/applications/{}", segment(application))
}

fn aggregate_path(base: &str, application: &str, id: &str) -> String {
    format!("{}/aggregates/{}", log_path(base, application), segment(id))
}

/// `text` as one path segment: everything but the unreserved characters
/// percent-encoded, so that a text id with `/`, `?` or `#` stays one segment.
fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

pub(super) fn index(base: &str, data: &IndexData) -> Markup {
    let body = html! {
        h1 { "Applications" }
        table.summary {
            thead { tr { th { "Application" } th { "Notifications (newest id)" } } }
            tbody {
                @for (name, max_id) in &data.applications {
                    tr {
                        td { a href=(log_path(base, name)) { (name) } }
                        td.num { (count(max_id)) }
                    }
                }
            }
        }
        h2 { "Followers" }
        @if data.followers.is_empty() {
            p.muted { "No followers are registered with this console." }
        } @else {
            (followers(base, &data.followers))
        }
    };
    layout(base, "Applications", body)
}

fn count(value: &Result<Option<u64>, String>) -> Markup {
    html! {
        @match value {
            Ok(Some(id)) => (id),
            Ok(None) => span.muted { "none" },
            Err(error) => span.bad { "unreadable: " (error) },
        }
    }
}

fn followers(base: &str, rows: &[FollowerRow]) -> Markup {
    html! {
        table.summary {
            (head(&["Follower", "Leader", "Position", "Leader's newest", "Lag"]))
            tbody {
                @for row in rows {
                    tr {
                        td { (row.name) }
                        td {
                            @if row.leader_max.is_some() {
                                a href=(log_path(base, &row.leader)) { (row.leader) }
                            } @else { (row.leader) }
                        }
                        td.num { (count(&row.position)) }
                        td.num {
                            @match &row.leader_max {
                                Some(max) => (count(max)),
                                None => span.muted { "not served here" },
                            }
                        }
                        td.num {
                            @match row.lag() {
                                Some(lag) => (lag),
                                None => span.muted { "unknown" },
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn log(base: &str, data: &LogData) -> Markup {
    let body = html! {
        h1 { "Notification log of " (data.name) }
        p.muted {
            "From notification " (data.start) "; newest: "
            @match data.max_id { Some(id) => (id), None => "none" }
        }
        (log_pages(base, data))
        @if data.events.is_empty() {
            p.muted { "No notifications here." }
        } @else {
            table {
                (head(&["Id", "Topic", "Aggregate", "Version", "Time", "Fields"]))
                tbody {
                    @for event in &data.events { (log_row(base, &data.name, event)) }
                }
            }
        }
        (log_pages(base, data))
    };
    layout(base, &format!("Log of {}", data.name), body)
}

fn log_pages(base: &str, data: &LogData) -> Markup {
    pager(&log_path(base, &data.name), data.start, data.next)
}

/// Links to the first, previous and next pages of the page at `path` that
/// starts at `start`.
fn pager(path: &str, start: u64, next: Option<u64>) -> Markup {
    let previous = start.saturating_sub(PAGE_SIZE as u64).max(1);
    html! {
        nav.pages {
            @if start > 1 {
                a href=(path) rel="first" { "First" }
                a href=(format!("{path}?start={previous}")) rel="prev" { "Previous" }
            }
            @if let Some(next) = next {
                a href=(format!("{path}?start={next}")) rel="next" { "Next" }
            }
        }
    }
}

fn head(columns: &[&str]) -> Markup {
    html! { thead { tr { @for column in columns { th { (column) } } } } }
}

fn log_row(base: &str, application: &str, event: &EventView) -> Markup {
    html! {
        tr {
            td.num { @if let Some(id) = event.notification_id { (id) } }
            td { code { (event.topic) } }
            td.nowrap {
                a href=(aggregate_path(base, application, &event.originator_id)) {
                    code { (event.originator_id) }
                }
            }
            td.num { (event.version) }
            (decoded_cells(event))
        }
    }
}

/// The time and fields of an event, or one cell saying why it cannot be read.
fn decoded_cells(event: &EventView) -> Markup {
    html! {
        @match &event.decoded {
            Ok(decoded) => {
                td.nowrap { @if let Some(time) = &decoded.timestamp { (time) } }
                td { (fields(&decoded.fields)) }
            }
            Err(error) => td.bad colspan="2" { "Undecodable: " (error) },
        }
    }
}

fn fields(value: &Value) -> Markup {
    html! {
        @match value {
            Value::Object(fields) => {
                @for (name, value) in fields {
                    span.field { b { (name) ": " } code { (value.to_string()) } }
                }
            }
            other => code { (other.to_string()) },
        }
    }
}

pub(super) fn aggregate(base: &str, data: &AggregateData) -> Markup {
    let body = html! {
        h1 { "Aggregate " code { (data.id) } }
        p.muted {
            (data.type_name) " in "
            a href=(log_path(base, &data.application)) { (data.application) }
            @if !data.registered {
                " (its type is not registered with this console: events only, no states)"
            }
        }
        (aggregate_pages(base, data))
        table {
            @if data.registered {
                (head(&["Version", "Topic", "Time", "Fields", "State after"]))
            } @else {
                (head(&["Version", "Topic", "Time", "Fields"]))
            }
            tbody {
                @for (event, state) in &data.events { (history_row(event, state.as_ref())) }
            }
        }
        (aggregate_pages(base, data))
    };
    layout(base, &format!("Aggregate {}", data.id), body)
}

fn aggregate_pages(base: &str, data: &AggregateData) -> Markup {
    let path = aggregate_path(base, &data.application, &data.id);
    pager(&path, data.start, data.next)
}

fn history_row(event: &EventView, state: Option<&Result<Value, String>>) -> Markup {
    html! {
        tr {
            td.num { (event.version) }
            td { code { (event.topic) } }
            (decoded_cells(event))
            @match state {
                Some(Ok(state)) => td { pre { (pretty(state)) } },
                Some(Err(error)) => td.bad { (error) },
                None => {},
            }
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A page saying what went wrong, with a way back.
pub(super) fn error(base: &str, title: &str, message: &str) -> Markup {
    let body = html! {
        h1 { (title) }
        p.bad { (message) }
        p { a href=(home(base)) { "Back to the applications" } }
    };
    layout(base, title, body)
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_segment_keeps_unreserved_characters_and_encodes_the_rest() {
        assert_eq!(segment("order-1_a.b~"), "order-1_a.b~");
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
