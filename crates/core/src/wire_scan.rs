//! The fast path of [`crate::wire`]: an event's JSON read in one validating pass by hand, for
//! the shapes SDKs send, with no serde machinery in between.
//!
//! It is sound but not complete: whatever it returns is exactly what serde_json would have read
//! (the same fields, the same borrowed text), and whatever it is not sure of it declines (None),
//! leaving the text to serde_json, which reads it or names the problem. It declines any
//! backslash in a string it reads (escapes are rare in analytics events, and serde_json decodes
//! them), numbers other than plain integers in the fields it reads, arrays or objects where a
//! field wants a scalar, and nesting deeper than [`MAX_DEPTH`]. Anything it accepts is valid
//! JSON by the grammar serde_json enforces: strings without control characters, numbers as
//! `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, the three literals, objects keyed by
//! strings, no trailing commas, nothing but JSON whitespace around the object.
//!
//! Reading the first 200k simulated events took ~4,900 instructions an event with serde_json
//! and ~1,170 more for a second read of `context` (for its `groupId` and `traits`), which this
//! pass picks up on the way: ~3,300 in all with it (BENCHMARKS.md, session 15), ~2,500 since its
//! strings are read in one pass and sliced unchecked between their quotes (session 17).

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde_json::Number;

use crate::wire::{ContextView, Raw, Scalar, WireEvent};

/// Deepest nesting of arrays and objects skipped here; deeper text goes to serde_json.
const MAX_DEPTH: usize = 64;

/// A Segment event's fields, read into `w` (fresh: all None), or None when serde_json should
/// read the text (`w` then holds whatever was read before the scan declined).
pub(crate) fn event<'a>(text: &'a str, w: &mut WireEvent<'a>) -> Option<()> {
    let mut s = Scanner::new(text);
    s.ws();
    s.object(|s, key| {
        match key {
            "type" => w.kind = Some(s.scalar()?),
            "userId" => w.user_id = Some(s.scalar()?),
            "anonymousId" => w.anonymous_id = Some(s.scalar()?),
            "groupId" => w.group_id = Some(s.scalar()?),
            "previousId" => w.previous_id = Some(s.scalar()?),
            "messageId" => w.message_id = Some(s.scalar()?),
            "event" => w.event = Some(s.scalar()?),
            "name" => w.name = Some(s.scalar()?),
            "timestamp" => w.timestamp = Some(s.scalar()?),
            "originalTimestamp" => w.original_timestamp = Some(s.scalar()?),
            "sentAt" => w.sent_at = Some(s.scalar()?),
            "receivedAt" => w.received_at = Some(s.scalar()?),
            "properties" => w.properties = Some(s.raw()?),
            "traits" => w.traits = Some(s.raw()?),
            "context" => {
                let start = s.i;
                // An object's groupId and traits are picked up as it is read; for anything
                // else the view is left to be worked out from the text, as before.
                let view = if s.peek() == Some(b'{') {
                    Some(s.context_members()?)
                } else {
                    s.skip()?;
                    None
                };
                w.context = Some(Raw(s.text.get(start..s.i)?));
                w.context_view = view;
            }
            "distinct_id" => {
                s.skip()?;
                w.distinct_id = Some(IgnoredAny);
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    s.end()
}

/// A `context` object's `groupId` and `traits`, or None when serde_json should read the text.
pub(crate) fn context(text: &str) -> Option<ContextView<'_>> {
    let mut s = Scanner::new(text);
    s.ws();
    let view = s.context_members()?;
    s.end()?;
    Some(view)
}

/// Bytes searched at once by [`special_in`].
#[cfg(target_arch = "x86_64")]
const BLOCK: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
const BLOCK: usize = 8;

/// The index of the first quote, backslash or control character (below 0x20) in `block`
/// (`BLOCK` bytes): one SSE2 comparison of all 16 bytes per kind (every x86-64 has SSE2).
/// Against the word-at-a-time search below, reading strings took 442M → 353M instructions
/// over the first 200k simulated events (callgrind).
#[cfg(target_arch = "x86_64")]
fn special_in(block: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    if block.len() < BLOCK {
        return None;
    }
    // SAFETY: SSE2 is part of the x86-64 baseline, so these intrinsics are always available;
    // the unaligned load reads 16 bytes, and `block` holds at least 16 (checked above).
    let mask = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // x <= 0x1f (unsigned) exactly when max(x, 0x1f) == 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// [`special_in`] for other targets: eight bytes as a word, with the usual carry tricks (the
/// lowest byte they flag is always a real one).
#[cfg(not(target_arch = "x86_64"))]
fn special_in(block: &[u8]) -> Option<usize> {
    special_in_word(block)
}

/// The word-at-a-time search of [`special_in`] (other targets'; tested on every target).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn special_in_word(block: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let w = u64::from_le_bytes(block.get(..8)?.try_into().ok()?);
    let found = zero_in(w ^ (ONES * u64::from(b'"')))
        | zero_in(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
    (found != 0).then(|| (found.trailing_zeros() / 8) as usize)
}

/// A position in the text being read.
struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Past JSON whitespace (space, tab, line feed, carriage return: serde_json's four).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// Only whitespace left.
    fn end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    /// Steps over `byte`, or declines.
    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek() != Some(byte) {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// The object at the position (whitespace before it already skipped): `member` is called
    /// with each key, positioned at its value (whitespace skipped), and must read the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.items(b'}', |s| {
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            member(s, key)
        })
    }

    /// The items of an array or object just opened, each read by `item`, separated by commas
    /// and ended by `close` (no trailing comma).
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A context object's members, its `groupId` and `traits` kept (the last of each wins, as
    /// in serde_json's reading).
    fn context_members(&mut self) -> Option<ContextView<'a>> {
        let mut view = ContextView::default();
        self.object(|s, key| {
            match key {
                "groupId" => view.group_id = Some(s.scalar()?),
                "traits" => view.traits = Some(s.raw()?),
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(view)
    }

    /// The string at the position, without its quotes; declines escapes and control
    /// characters. Whole blocks are searched at once for a quote, a backslash or a byte below
    /// 0x20 ([`special_in`]); the rest byte by byte.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = loop {
            match self.b.get(self.i..self.i + BLOCK) {
                Some(block) => match special_in(block) {
                    Some(at) => break self.i + at,
                    None => self.i += BLOCK,
                },
                None => {
                    let rest = self.b.get(self.i..)?;
                    let at = rest
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                    break self.i + at;
                }
            }
        };
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        // SAFETY: `start` is just after a quote and `end` at one; the text is a `str` and a
        // quote is ASCII, so both are character boundaries within it.
        Some(unsafe { self.text.get_unchecked(start..end) })
    }

    /// A field's value as [`Scalar`]; declines arrays, objects, escaped strings and numbers
    /// other than integers that fit in 64 bits (serde_json's reading of those is its own).
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => Some(Scalar::String(Cow::Borrowed(self.string()?))),
            b't' => self.literal(b"true").map(|()| Scalar::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Scalar::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Scalar::Null),
            b'-' | b'0'..=b'9' => self.integer().map(Scalar::Number),
            _ => None,
        }
    }

    /// A JSON number that is a plain integer, as serde_json reads it: u64 when not negative,
    /// i64 when negative (and not `-0`, which serde_json reads as a float). Fractions,
    /// exponents and more than 18 digits are declined.
    fn integer(&mut self) -> Option<Number> {
        let start = self.i;
        self.number()?;
        let text = self.b.get(start..self.i)?;
        let (negative, digits) = match text.split_first()? {
            (b'-', rest) => (true, rest),
            _ => (false, text),
        };
        if digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if !negative {
            return Some(Number::from(value));
        }
        // At most 18 digits: the value fits in an i64.
        let value = i64::try_from(value).ok()?;
        (value != 0).then(|| Number::from(-value))
    }

    /// The value at the position as its text, validated.
    fn raw(&mut self) -> Option<Raw<'a>> {
        let start = self.i;
        self.skip()?;
        Some(Raw(self.text.get(start..self.i)?))
    }

    /// Steps over one value, checking it.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.nested(|s| s.object(|s, _| s.skip())),
            b'[' => self.nested(Self::array),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `read` one level deeper; declines past [`MAX_DEPTH`].
    fn nested(&mut self, read: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let out = read(self);
        self.depth -= 1;
        out
    }

    fn array(&mut self) -> Option<()> {
        self.eat(b'[')?;
        self.items(b']', Self::skip)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.b.get(self.i..)?.starts_with(word) {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// A number by JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.at_least_one_digit()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`event`] into fresh fields.
    fn scan(text: &str) -> Option<WireEvent<'_>> {
        let mut w = WireEvent::default();
        event(text, &mut w)?;
        Some(w)
    }

    /// What serde_json reads of `text`, for comparison.
    fn by_serde(text: &str) -> Option<WireEvent<'_>> {
        serde_json::from_str(text).ok()
    }

    /// The fast path's view of a text serde_json reads too, with the context's view as
    /// serde_json reads it from the context's text.
    fn agrees(text: &str) -> Result<bool, TestCaseError> {
        let Some(fast) = scan(text) else {
            return Ok(false);
        };
        let Some(mut slow) = by_serde(text) else {
            return Err(TestCaseError::fail(format!(
                "accepted what serde_json refuses: {text}"
            )));
        };
        slow.context_view = match slow.context {
            Some(c) if c.get().starts_with('{') => serde_json::from_str(c.get()).ok(),
            _ => None,
        };
        prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{}", text);
        Ok(true)
    }

    #[test]
    fn reads_a_typical_event_as_serde_json_does() {
        let text = r#" {"type":"track","event":"Report Created","userId":"u1","messageId":"m-1","timestamp":"2026-01-02T03:04:05.678Z","properties":{"rows":[1,2.5e3,-0.5,true,null],"n":{"a":{}}},"context":{"groupId":"ws1","library":{"name":"x"},"traits":{"email":"a@b.c"}},"unknown":[{"x":[]}],"sentAt":null} "#;
        assert_eq!(agrees(text).unwrap(), true);
        let w = scan(text).unwrap();
        let view = w.context_view.unwrap();
        assert_eq!(view.group_id, Some(Scalar::String("ws1".into())));
        assert_eq!(view.traits.map(Raw::get), Some(r#"{"email":"a@b.c"}"#));
    }

    #[test]
    fn integers_are_read_as_serde_json_reads_them() {
        for id in ["0", "7", "123456789012345678", "-42"] {
            let text = format!(r#"{{"userId":{id}}}"#);
            assert!(agrees(&text).unwrap(), "{text}");
        }
        // Left to serde_json: -0 (a float there), fractions, exponents, big integers.
        for id in ["-0", "1.5", "1e3", "1234567890123456789", "01"] {
            assert!(scan(&format!(r#"{{"userId":{id}}}"#)).is_none(), "{id}");
        }
    }

    #[test]
    fn declines_what_it_does_not_vouch_for() {
        for text in [
            r#"{"userId":"a\"b"}"#,             // an escape in a field read
            r#"{"properties":{"a":"\u0041"}}"#, // an escape in a skipped string
            "{\"userId\":\"a\u{1}b\"}",         // a control character
            r#"{"userId":"u1",}"#,              // a trailing comma
            r#"{"userId":"u1"} x"#,             // trailing text
            r#"{"userId":[1]}"#,                // an array where a scalar is read
            r#"{"properties":{"a":01}}"#,       // a leading zero
            r#"{"properties":{"a":1.}}"#,       // a fraction without digits
            r#"{"properties":{"a":tru}}"#,      // a broken literal
            r#"{"properties":{"a" 1}}"#,        // no colon
            r#"{"properties":{1:1}}"#,          // a key that is not a string
            "\u{a0}{}",                         // whitespace JSON does not know
            r#"["not an object"]"#,
        ] {
            assert!(scan(text).is_none(), "{text}");
        }
        let deep = format!(r#"{{"properties":{}{}}}"#, "[".repeat(80), "]".repeat(80));
        assert!(scan(&deep).is_none());
        assert!(by_serde(&deep).is_some());
    }

    proptest! {
        /// Both block searches find the first quote, backslash or control byte, and never a
        /// byte of a multi-byte character.
        #[test]
        fn block_searches_find_the_first_special_byte(
            block in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff, 0x80u8..=0xff],
                16,
            ),
        ) {
            let first = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(special_in(&block), first(&block[..BLOCK]));
            prop_assert_eq!(special_in_word(&block), first(&block[..8]));
        }
    }

    #[test]
    fn a_context_is_read_with_its_last_group_and_traits() {
        let view = context(r#" { "groupId" : 5 , "traits":{"a":[]}, "groupId":"g2" } "#).unwrap();
        assert_eq!(view.group_id, Some(Scalar::String("g2".into())));
        assert_eq!(view.traits.map(Raw::get), Some(r#"{"a":[]}"#));
        assert!(context("[]").is_none());
    }

    /// A JSON value of random shape, with random spacing, sometimes broken.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "[a-z@. \\\\\"\u{1}é]{0,12}".prop_map(|s| format!("\"{s}\"")),
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,2})?",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("nul".to_string()),
            Just("01".to_string()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner, "[ \t\n]{0,2}"), 0..4).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v, ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("type".to_string()),
            Just("userId".to_string()),
            Just("anonymousId".to_string()),
            Just("groupId".to_string()),
            Just("messageId".to_string()),
            Just("timestamp".to_string()),
            Just("properties".to_string()),
            Just("traits".to_string()),
            Just("context".to_string()),
            Just("distinct_id".to_string()),
            "[a-zA-Z_]{1,8}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the fast path reads, serde_json reads too, and to the same view.
        #[test]
        fn the_fast_path_reads_what_serde_json_reads(
            members in prop::collection::vec((key(), value(), "[ \t\r\n]{0,2}"), 0..8),
            tail in prop_oneof![Just(""), Just(" "), Just(","), Just("}")],
        ) {
            let members: Vec<String> =
                members.into_iter().map(|(k, v, ws)| format!("{ws}\"{k}\":{ws}{v}{ws}")).collect();
            let text = format!("{{{}}}{tail}", members.join(","));
            agrees(&text)?;
            if let Some(view) = context(&text) {
                let slow: ContextView = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                prop_assert_eq!(format!("{view:?}"), format!("{slow:?}"));
            }
        }
    }
}
