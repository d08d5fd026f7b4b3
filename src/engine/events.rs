//! The engine's event stream, read as a source of "something changed" signals.
//!
//! Events only say when to scan again; what changed is always read from the two list calls.
//! The engine keeps a short backlog of events and drops older ones silently, so an event
//! stream that breaks and reconnects may have missed changes: the scanner rescans after every
//! (re)connect. Unknown event types and actions are not errors: an unknown action triggers a
//! rescan rather than risk missing a change.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use super::{EngineError, Operation};

/// Container and image events only; the filter is JSON, percent-encoded.
pub(super) const EVENTS_PATH: &str =
    "/events?filters=%7B%22type%22%3A%5B%22container%22%2C%22image%22%5D%7D";

/// The longest event the exporter waits for. Real events are a few hundred bytes; a stream
/// that sends more without completing one is broken, and buffering it would only grow memory.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// Actions that cannot change any container's state or any image's tags. Everything else,
/// including actions this list has never heard of, causes a rescan.
const IRRELEVANT_ACTIONS: [&str; 14] = [
    "attach",
    "detach",
    "exec_create",
    "exec_start",
    "exec_die",
    "exec_detach",
    "top",
    "resize",
    "health_status",
    "archive-path",
    "extract-to-dir",
    "copy",
    "export",
    "checkpoint",
];

/// One event, reduced to what the exporter counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `container`, `image`, or whatever else the engine says.
    pub kind: String,
    pub action: String,
}

impl Event {
    /// Whether the event can change what a scan would find.
    pub fn is_relevant(&self) -> bool {
        // Actions may carry details after a colon, e.g. "health_status: healthy" or
        // "exec_start: sh -c ...".
        let action = self.action.split(':').next().unwrap_or_default().trim();
        !IRRELEVANT_ACTIONS.contains(&action)
    }
}

/// The JSON of one event; Docker and Podman both send `Type` and `Action`, older engines
/// `status` instead of `Action`.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// An open event stream.
pub struct EventStream {
    body: Incoming,
    parser: EventParser,
}

impl EventStream {
    pub(super) fn new(body: Incoming) -> EventStream {
        EventStream { body, parser: EventParser::default() }
    }

    /// The next event. `Ok(None)` when the engine closed the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, EngineError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|error| EngineError::Unreachable {
                operation: Operation::Events,
                endpoint: "the event stream".to_owned(),
                message: error.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                self.parser.push(&data);
            }
            if self.parser.pending() > MAX_EVENT_BYTES {
                return Err(EngineError::Unreachable {
                    operation: Operation::Events,
                    endpoint: "the event stream".to_owned(),
                    message: format!("an event longer than {MAX_EVENT_BYTES} bytes"),
                });
            }
        }
    }
}

/// Splits the bytes of an event stream into events, whatever the chunking.
#[derive(Debug, Default)]
struct EventParser {
    buffer: BytesMut,
}

impl EventParser {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet taken as events.
    fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Takes one complete event off the front of the buffer, if there is one. A line that
    /// is not an event comes out as an event of kind `unparsable`, which is relevant:
    /// whatever it was, a rescan is the safe answer.
    fn next_event(&mut self) -> Option<Event> {
        // Skip the newlines between events.
        let start = self.buffer.iter().position(|b| !b.is_ascii_whitespace())?;
        self.buffer.advance(start);

        let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<RawEvent>();
        match values.next()? {
            Ok(raw) => {
                let used = values.byte_offset();
                self.buffer.advance(used);
                let action = raw.action.or(raw.status).unwrap_or_default();
                Some(Event { kind: raw.kind.unwrap_or_default(), action })
            }
            // Half an event: wait for the rest.
            Err(error) if error.is_eof() => None,
            Err(_) => {
                let line_end = self.buffer.iter().position(|b| *b == b'\n');
                self.buffer.advance(line_end.map_or(self.buffer.len(), |i| i + 1));
                Some(Event { kind: "unparsable".to_owned(), action: String::new() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&str]) -> Vec<Event> {
        let mut parser = EventParser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes());
            while let Some(event) = parser.next_event() {
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn events_split_across_chunks_are_joined() {
        let events = parse_all(&[
            "{\"Type\":\"container\",\"Action\":\"sta",
            "rt\"}\n{\"Type\":\"image\",\"status\":\"untag\"}\n",
        ]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Event { kind: "container".into(), action: "start".into() });
        assert_eq!(events[1], Event { kind: "image".into(), action: "untag".into() });
    }

    #[test]
    fn a_bad_line_is_reported_and_skipped() {
        let events = parse_all(&["not json\n{\"Type\":\"container\",\"Action\":\"die\"}\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, "unparsable");
        assert!(events[0].is_relevant());
        assert_eq!(events[1].action, "die");
    }

    #[test]
    fn noise_is_told_from_changes() {
        let event = |action: &str| Event { kind: "container".into(), action: action.into() };
        assert!(!event("exec_start: sh -c true").is_relevant());
        assert!(!event("health_status: healthy").is_relevant());
        for action in ["create", "start", "die", "pause", "destroy", "rename", "remove", "init"] {
            assert!(event(action).is_relevant(), "{action}");
        }
    }
}
