//! The simulator's events and their Segment-spec NDJSON form, written by hand for speed.

use std::io::Write;

/// A property value.
#[derive(Debug, Clone)]
pub enum Prop {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
}

/// Segment call types the simulator emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// track (`name` is the event).
    Track,
    /// page (`name` is the page name).
    Page,
    /// identify.
    Identify,
    /// group.
    Group,
}

/// One simulated event.
#[derive(Debug, Clone)]
pub struct SimEvent {
    /// Call type.
    pub call: Call,
    /// Event name (track) or page name (page).
    pub name: &'static str,
    /// userId, when known.
    pub user_id: Option<String>,
    /// anonymousId.
    pub anonymous_id: Option<String>,
    /// groupId of a group call, or `context.groupId` of another call.
    pub group_id: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// Milliseconds within the second.
    pub ms: u16,
    /// properties (track/page) or traits (identify/group).
    pub props: Vec<(&'static str, Prop)>,
}

fn escape(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b if b < 0x20 => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{:04x}", b);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_digits(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends an ISO-8601 UTC timestamp (`"2026-01-31T09:05:00.123Z"`).
pub fn write_timestamp(out: &mut Vec<u8>, at: i64, ms: u16) {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
    out.push(b'"');
    push_digits(out, t.year().max(0) as u32, 4);
    out.push(b'-');
    push_digits(out, t.month(), 2);
    out.push(b'-');
    push_digits(out, t.day(), 2);
    out.push(b'T');
    push_digits(out, t.hour(), 2);
    out.push(b':');
    push_digits(out, t.minute(), 2);
    out.push(b':');
    push_digits(out, t.second(), 2);
    out.push(b'.');
    push_digits(out, u32::from(ms), 3);
    out.extend_from_slice(b"Z\"");
}

impl SimEvent {
    /// Appends the event as one line of Segment-spec JSON. `message_id` makes it unique.
    pub fn write_json(&self, out: &mut Vec<u8>, message_id: &str) {
        out.extend_from_slice(b"{\"type\":");
        out.extend_from_slice(match self.call {
            Call::Track => b"\"track\"",
            Call::Page => b"\"page\"",
            Call::Identify => b"\"identify\"",
            Call::Group => b"\"group\"",
        });
        match self.call {
            Call::Track => {
                out.extend_from_slice(b",\"event\":");
                escape(out, self.name);
            }
            Call::Page => {
                out.extend_from_slice(b",\"name\":");
                escape(out, self.name);
            }
            _ => {}
        }
        out.extend_from_slice(b",\"messageId\":");
        escape(out, message_id);
        if let Some(u) = &self.user_id {
            out.extend_from_slice(b",\"userId\":");
            escape(out, u);
        }
        if let Some(a) = &self.anonymous_id {
            out.extend_from_slice(b",\"anonymousId\":");
            escape(out, a);
        }
        if self.call == Call::Group {
            if let Some(g) = &self.group_id {
                out.extend_from_slice(b",\"groupId\":");
                escape(out, g);
            }
        }
        out.extend_from_slice(b",\"timestamp\":");
        write_timestamp(out, self.at, self.ms);
        if !self.props.is_empty() {
            out.extend_from_slice(match self.call {
                Call::Identify | Call::Group => b",\"traits\":{",
                _ => b",\"properties\":{",
            });
            for (i, (k, v)) in self.props.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                escape(out, k);
                out.push(b':');
                match v {
                    Prop::Str(s) => escape(out, s),
                    Prop::Int(n) => {
                        let _ = write!(out, "{n}");
                    }
                }
            }
            out.push(b'}');
        }
        match (&self.group_id, self.call) {
            (Some(g), Call::Track | Call::Page | Call::Identify) => {
                out.extend_from_slice(b",\"context\":{\"groupId\":");
                escape(out, g);
                out.extend_from_slice(b",\"library\":{\"name\":\"upmarket-sim\"}}");
            }
            _ => out.extend_from_slice(b",\"context\":{\"library\":{\"name\":\"upmarket-sim\"}}"),
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_json() {
        for s in [
            "plain",
            "a\"b",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "héllo ✓",
            "",
        ] {
            let mut out = Vec::new();
            escape(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn timestamps_are_iso_8601() {
        let mut out = Vec::new();
        write_timestamp(&mut out, 1_767_225_600 + 3_661, 7);
        assert_eq!(out, b"\"2026-01-01T01:01:01.007Z\"");
    }

    #[test]
    fn lines_are_valid_segment_json() {
        let e = SimEvent {
            call: Call::Track,
            name: "Report Created",
            user_id: Some("u\"1".into()),
            anonymous_id: None,
            group_id: Some("ws1".into()),
            at: 1_767_225_600,
            ms: 7,
            props: vec![("rows", Prop::Int(12)), ("note", Prop::Str("a\nb".into()))],
        };
        let mut out = Vec::new();
        e.write_json(&mut out, "m1");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "Report Created");
        assert_eq!(v["userId"], "u\"1");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.007Z");
        assert_eq!(v["properties"]["rows"], 12);
        assert_eq!(v["context"]["groupId"], "ws1");
    }
}
