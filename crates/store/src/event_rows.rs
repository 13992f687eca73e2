//! Events into `events` through a DuckDB table function that fills DuckDB's own vectors from
//! the prepared events in memory: `INSERT INTO events (…) SELECT * FROM upmarket_event_rows(t)`.
//!
//! Why not the appender: the `duckdb` crate's chunk appender takes an Arrow batch, so every
//! string was copied into Arrow buffers, then into DuckDB's vectors, then into the appender's
//! own buffered collection before DuckDB's insert copied it into the table's storage, and the
//! 128-bit key went as decimal text that DuckDB parsed back (Arrow's decimal holds 38 digits,
//! a key up to 39). Here DuckDB's vectors point at the events' own text (see [`string_t`]:
//! DuckDB copies it once, into the table's storage), the key and times are written as the
//! integers they are, and the insert is DuckDB's set-based one.
//!
//! The events are lent to the function for the length of one statement: [`insert`] registers
//! them under a fresh token, runs the statement, and takes them back (also when it fails)
//! before it returns. DuckDB calls the function only while the statement runs.

use chrono::{DateTime, Utc};
use duckdb::core::{DataChunkHandle, FlatVector, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use duckdb::{ffi, Connection};
use upmarket_core::Event;

use crate::lend::{token_parameter, Bound, Loan, Progress, Shelf};
use crate::prepared::PreparedEvent;
use crate::StoreError;

/// The table function's name.
const FUNCTION: &str = "upmarket_event_rows";

/// Registers the table function on `conn`'s database (once per database: functions live in
/// its catalog, every connection sees them).
pub(crate) fn register(conn: &Connection) -> Result<(), StoreError> {
    conn.register_table_function::<EventRows>(FUNCTION)?;
    Ok(())
}

/// Inserts `events` into `events`, numbered from `first_seq` in order, in `conn`'s current
/// transaction.
pub(crate) fn insert<'a>(
    conn: &Connection,
    events: impl Iterator<Item = &'a PreparedEvent>,
    first_seq: i64,
) -> Result<(), StoreError> {
    let lent = lend(events, first_seq);
    // Columns named, so the insert does not depend on the table's column order.
    let names: Vec<&str> = columns().iter().map(|(name, _)| *name).collect();
    let values: Vec<String> = columns().iter().map(|(n, c)| c.value_sql(n)).collect();
    conn.execute(
        &format!(
            "INSERT INTO events ({}) SELECT {} FROM {FUNCTION}({})",
            names.join(", "),
            values.join(", "),
            lent.token
        ),
        [],
    )?;
    drop(lent);
    Ok(())
}

/// Where one column's values come from, and so its DuckDB type.
#[derive(Clone, Copy)]
enum Column {
    /// The deduplication key: HUGEINT.
    Key,
    /// The store's number for the event: BIGINT.
    Seq,
    /// VARCHAR.
    Text(fn(&Event) -> Option<&str>),
    /// A JSON object's text: DuckDB's JSON type (see [`Column::logical_type`]).
    Json(fn(&Event) -> Option<&str>),
    /// TIMESTAMP (microseconds).
    Time(fn(&Event) -> Option<DateTime<Utc>>),
    /// One of a closed set of names, stored as the DuckDB ENUM `sql_type` whose members are
    /// `names` in order: the function returns the name's number (UTINYINT) and the insert maps
    /// it to the member (see [`Column::value_sql`]). A number DuckDB converts costs a fraction
    /// of the text it would analyze, hash and compress (schema migration 11).
    Code {
        get: fn(&Event) -> u8,
        sql_type: &'static str,
        names: &'static [&'static str],
    },
}

/// The members of the ENUM `event_type`, in order: `EventKind`'s names by its numbering
/// (test `codes_name_what_they_number`).
pub(crate) const EVENT_TYPES: [&str; 6] = ["track", "identify", "group", "page", "screen", "alias"];

/// The members of the ENUM `event_source`, in order: `IngestSource`'s names by its numbering.
pub(crate) const EVENT_SOURCES: [&str; 3] = ["segment", "posthog", "import"];

impl Column {
    /// The column's DuckDB type. DuckDB's JSON type is VARCHAR named `JSON`: returning the
    /// JSON columns as that type (not plain VARCHAR) spares the insert a cast that parses every
    /// document again (`yyjson_read_opts`: 1.2% of a 1M import's CPU samples). The text was
    /// validated when the event was parsed.
    fn logical_type(self) -> LogicalTypeHandle {
        match self {
            Column::Key => LogicalTypeId::Hugeint.into(),
            Column::Seq => LogicalTypeId::Bigint.into(),
            Column::Text(_) => LogicalTypeId::Varchar.into(),
            Column::Time(_) => LogicalTypeId::Timestamp.into(),
            Column::Code { .. } => LogicalTypeId::UTinyint.into(),
            Column::Json(_) => {
                let mut json = LogicalTypeHandle::from(LogicalTypeId::Varchar);
                json.set_alias("JSON");
                json
            }
        }
    }

    /// The insert's expression for the function's column `name`: the column itself, or for a
    /// code the ENUM member it numbers (a CASE over constants, which DuckDB evaluates a vector
    /// at a time).
    fn value_sql(self, name: &str) -> String {
        let column = crate::sql::quote_ident(name);
        match self {
            Column::Code {
                sql_type, names, ..
            } => {
                let arms: String = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!(" WHEN {i} THEN '{n}'::{sql_type}"))
                    .collect();
                format!("CASE {column}{arms} END")
            }
            _ => column,
        }
    }
}

/// The `events` table's columns, in order: names, types and values in one place.
fn columns() -> [(&'static str, Column); 18] {
    use Column::{Code, Json, Key, Seq, Text, Time};
    [
        ("msg_key", Key),
        ("seq", Seq),
        ("message_id", Text(|e| Some(&e.message_id))),
        (
            "type",
            Code {
                get: |e| e.kind as u8,
                sql_type: "event_type",
                names: &EVENT_TYPES,
            },
        ),
        ("event", Text(|e| e.event.as_deref())),
        ("name", Text(|e| e.name.as_deref())),
        ("user_id", Text(|e| e.user_id.as_deref())),
        ("anonymous_id", Text(|e| e.anonymous_id.as_deref())),
        ("group_id", Text(|e| e.group_id.as_deref())),
        ("previous_id", Text(|e| e.previous_id.as_deref())),
        ("timestamp", Time(|e| Some(e.timestamp))),
        ("original_timestamp", Time(|e| e.original_timestamp)),
        ("sent_at", Time(|e| e.sent_at)),
        ("received_at", Time(|e| Some(e.received_at))),
        ("properties", Json(|e| e.properties.text())),
        ("traits", Json(|e| e.traits.text())),
        ("context", Json(|e| e.context.text())),
        (
            "source",
            Code {
                get: |e| e.source as u8,
                sql_type: "event_source",
                names: &EVENT_SOURCES,
            },
        ),
    ]
}

/// Events lent to the table function, by token.
static LENT: Shelf<Batch> = Shelf::new();

/// The lent events: pointers to events the lender keeps alive (see [`lend`]).
struct Batch {
    events: Vec<*const PreparedEvent>,
    first_seq: i64,
}

// SAFETY: the pointers are only read, from any thread, while their `Loan` guard (which borrows
// the events) is alive; `PreparedEvent` is `Sync`.
unsafe impl Send for Batch {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for Batch {}

/// Lends the events of one statement, numbered from `first_seq`, until the guard is dropped.
fn lend<'a>(events: impl Iterator<Item = &'a PreparedEvent>, first_seq: i64) -> Loan<'a, Batch> {
    LENT.lend(Batch {
        events: events.map(|p| p as *const PreparedEvent).collect(),
        first_seq,
    })
}

struct EventRows;

impl VTab for EventRows {
    type InitData = Progress;
    type BindData = Bound;

    fn bind(bind: &BindInfo) -> Result<Self::BindData, Box<dyn std::error::Error>> {
        for (name, column) in columns() {
            bind.add_result_column(name, column.logical_type());
        }
        Ok(Bound::new(bind, FUNCTION)?)
    }

    fn init(_: &InitInfo) -> Result<Self::InitData, Box<dyn std::error::Error>> {
        Ok(Progress::new())
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        // The lock is held only to find the batch: import lanes fill their chunks at once.
        let batch = LENT.lent(func.get_bind_data().token, FUNCTION)?;
        let capacity = output.flat_vector(0).capacity();
        let claimed = func.get_init_data().claim(batch.events.len(), capacity);
        let first_seq = batch.first_seq + claimed.start as i64;
        let rows = &batch.events[claimed];
        // SAFETY: see `Batch`: the lender's guard is alive while the statement runs.
        let event = |i: usize| unsafe { &*rows[i] };
        fill(output, rows.len(), first_seq, event)?;
        output.set_len(rows.len());
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        token_parameter()
    }
}

/// Writes `n` rows into `out`'s vectors (in [`columns`] order), the `i`th from `event(i)`,
/// numbered from `first_seq`.
fn fill<'e>(
    out: &mut DataChunkHandle,
    n: usize,
    first_seq: i64,
    event: impl Fn(usize) -> &'e PreparedEvent,
) -> Result<(), TooLong> {
    for (col, (_, column)) in columns().into_iter().enumerate() {
        let mut v = out.flat_vector(col);
        // SAFETY: `col` is one of the chunk's columns (the function's, in `columns()` order).
        let raw = unsafe { ffi::duckdb_data_chunk_get_vector(out.get_ptr(), col as u64) };
        match column {
            Column::Key => {
                // SAFETY: a HUGEINT vector holds 16-byte little-endian two's complement
                // integers (DuckDB's hugeint_t: low 64 bits, then high), i.e. i128; n ≤ its
                // capacity.
                let keys = unsafe { v.as_mut_slice_with_len::<i128>(n) };
                for (i, k) in keys.iter_mut().enumerate() {
                    *k = event(i).key;
                }
            }
            Column::Seq => {
                // SAFETY: a BIGINT vector holds i64; n ≤ its capacity.
                let seqs = unsafe { v.as_mut_slice_with_len::<i64>(n) };
                for (i, s) in seqs.iter_mut().enumerate() {
                    *s = first_seq + i as i64;
                }
            }
            Column::Text(get) | Column::Json(get) => {
                // SAFETY: a VARCHAR vector (JSON is VARCHAR by another name) holds
                // `duckdb_string_t`s.
                unsafe {
                    fill_nullable(&mut v, raw, n, EMPTY, |i| {
                        get(&event(i).event)
                            .map(|s| string_t(s).ok_or(TooLong(s.len())))
                            .transpose()
                    })
                }?
            }
            Column::Code { get, .. } => {
                // SAFETY: a UTINYINT vector holds u8s; n ≤ its capacity.
                let codes = unsafe { v.as_mut_slice_with_len::<u8>(n) };
                for (i, c) in codes.iter_mut().enumerate() {
                    *c = get(&event(i).event);
                }
            }
            Column::Time(get) => {
                // SAFETY: a TIMESTAMP vector holds i64 microseconds since the epoch.
                unsafe {
                    fill_nullable(&mut v, raw, n, 0, |i| {
                        Ok(get(&event(i).event).map(|t| t.timestamp_micros()))
                    })
                }?
            }
        }
    }
    Ok(())
}

/// Writes `n` values into `v` (whose raw handle is `raw`), NULL where `value` gives None (the
/// slot then holds `null`).
///
/// The NULLs are marked in the validity mask directly, a bit each, instead of through
/// `FlatVector::set_null`, which makes three calls into DuckDB per NULL (a sixth of this
/// function's time: most events leave several columns NULL).
///
/// # Safety
/// `v`'s DuckDB type must store its values as `T`s, `raw` must be `v`'s vector, and `n` must
/// not exceed its capacity.
pub(crate) unsafe fn fill_nullable<T: Copy>(
    v: &mut FlatVector,
    raw: ffi::duckdb_vector,
    n: usize,
    null: T,
    mut value: impl FnMut(usize) -> Result<Option<T>, TooLong>,
) -> Result<(), TooLong> {
    let mut validity: *mut u64 = std::ptr::null_mut();
    // SAFETY: the caller's promise.
    let slots = unsafe { v.as_mut_slice_with_len::<T>(n) };
    for (i, slot) in slots.iter_mut().enumerate() {
        *slot = match value(i)? {
            Some(x) => x,
            None => {
                if validity.is_null() {
                    // SAFETY: `raw` is a valid vector (the caller's promise); once made
                    // writable, its mask holds a bit for each of its rows (1 = valid).
                    unsafe {
                        ffi::duckdb_vector_ensure_validity_writable(raw);
                        validity = ffi::duckdb_vector_get_validity(raw);
                    }
                }
                // SAFETY: i < n ≤ the vector's capacity, so the word is in the mask.
                unsafe { *validity.add(i / 64) &= !(1u64 << (i % 64)) };
                null
            }
        };
    }
    Ok(())
}

/// The empty string, in the slots of NULL texts.
pub(crate) const EMPTY: ffi::duckdb_string_t = ffi::duckdb_string_t {
    value: ffi::duckdb_string_t__bindgen_ty_1 {
        inlined: ffi::duckdb_string_t__bindgen_ty_1__bindgen_ty_2 {
            length: 0,
            inlined: [0; 12],
        },
    },
};

/// A text longer than DuckDB's strings can be (4 GiB).
#[derive(Debug, thiserror::Error)]
#[error("a text of {0} bytes is longer than DuckDB can store")]
pub(crate) struct TooLong(pub usize);

/// DuckDB's `string_t` for `s`, pointing at `s` itself instead of a copy (None past 4 GiB,
/// DuckDB's limit, which no event reaches: events are limited to kilobytes).
///
/// Why not `Inserter::insert`: it checks that the text is UTF-8 (a `&str` is) and copies it into
/// the vector's own heap, only for the insert to copy it again into the table's storage: the
/// check was 6% of the server's CPU samples under load (`Utf8Proc::Analyze`), the copy part of
/// the 8% in `memmove`.
/// The borrowed text outlives every use DuckDB makes of it: the events are lent for the whole
/// statement ([`lend`]), and DuckDB copies strings into its storage when it appends them.
///
/// The layout is DuckDB's: up to 12 bytes inlined after the length and zero-padded (DuckDB
/// compares inlined strings as bytes), longer ones as length, a 4-byte prefix and a pointer.
pub(crate) fn string_t(s: &str) -> Option<ffi::duckdb_string_t> {
    const INLINE: usize = 12;
    let length = u32::try_from(s.len()).ok()?;
    let value = if s.len() <= INLINE {
        ffi::duckdb_string_t__bindgen_ty_1 {
            inlined: ffi::duckdb_string_t__bindgen_ty_1__bindgen_ty_2 {
                length,
                inlined: leading(s),
            },
        }
    } else {
        ffi::duckdb_string_t__bindgen_ty_1 {
            pointer: ffi::duckdb_string_t__bindgen_ty_1__bindgen_ty_1 {
                length,
                prefix: leading(s),
                // DuckDB only reads through it (const in DuckDB's own `string_t`).
                ptr: s.as_ptr().cast_mut().cast(),
            },
        }
    };
    Some(ffi::duckdb_string_t { value })
}

/// The first `N` bytes of `s` as C chars, zero-padded.
fn leading<const N: usize>(s: &str) -> [std::os::raw::c_char; N] {
    let mut out = [0; N];
    for (d, b) in out.iter_mut().zip(s.as_bytes()) {
        *d = *b as std::os::raw::c_char;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};

    fn prepared(json: &str, key: i128) -> PreparedEvent {
        let ctx = ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Segment,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        let e = parse_event(json, None, &BatchDefaults::default(), &ctx).unwrap();
        let mut p = PreparedEvent::new(e);
        p.key = key;
        p
    }

    /// An in-memory database with the migrated `events` table and the function.
    fn events_table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (_, _, sql) in crate::schema::MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        register(&conn).unwrap();
        conn
    }

    /// The numbers the function writes name the members of the migration's ENUMs, in their
    /// order: a call type or source added on one side only fails here.
    #[test]
    fn codes_name_what_they_number() {
        use upmarket_core::{EventKind, IngestSource};
        for kind in EventKind::ALL {
            assert_eq!(EVENT_TYPES[kind as usize], kind.as_str());
        }
        assert_eq!(EVENT_TYPES.len(), EventKind::ALL.len());
        // A new source does not compile here until it is listed.
        let listed = |s: IngestSource| match s {
            IngestSource::Segment | IngestSource::Posthog | IngestSource::Import => s,
        };
        let sources = [
            IngestSource::Segment,
            IngestSource::Posthog,
            IngestSource::Import,
        ];
        for source in sources.map(listed) {
            assert_eq!(EVENT_SOURCES[source as usize], source.as_str());
        }
        assert_eq!(EVENT_SOURCES.len(), sources.len());
        let conn = events_table();
        let members = |ty: &str| -> Vec<String> {
            conn.prepare(&format!("SELECT unnest(enum_range(NULL::{ty}))::VARCHAR"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(members("event_type"), EVENT_TYPES);
        assert_eq!(members("event_source"), EVENT_SOURCES);
    }

    /// NULLs land on exactly the rows without a value, across the validity mask's 64-row
    /// words and DuckDB's 2,048-row chunks (the mask is written a bit at a time).
    #[test]
    fn nulls_mark_exactly_the_rows_without_a_value() {
        let conn = events_table();
        let n = 4_500;
        let has_user = |i: usize| i % 3 != 0 && i % 64 != 63;
        let events: Vec<PreparedEvent> = (0..n)
            .map(|i| {
                let who = if has_user(i) {
                    format!(r#""userId":"u{i}""#)
                } else {
                    format!(r#""anonymousId":"a{i}""#)
                };
                prepared(
                    &format!(r#"{{"type":"track","event":"E","messageId":"m{i}",{who}}}"#),
                    i as i128,
                )
            })
            .collect();
        insert(&conn, events.iter(), 1).unwrap();
        let got: Vec<(Option<String>, Option<String>)> = conn
            .prepare("SELECT user_id, anonymous_id FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(Option<String>, Option<String>)> = (0..n)
            .map(|i| match has_user(i) {
                true => (Some(format!("u{i}")), None),
                false => (None, Some(format!("a{i}"))),
            })
            .collect();
        assert_eq!(got, want);
    }

    /// Regression (from the Arrow appender this replaced): keys are full 128-bit digests;
    /// Arrow's 128-bit decimal (38 digits) refused those of 39 digits, failing whole commits.
    #[test]
    fn inserts_every_column_and_keys_of_any_size() {
        let conn = events_table();
        let events = [
            prepared(
                r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"m1",
                    "timestamp":"2026-11-01T10:00:00.123456Z","sentAt":"2026-11-01T10:00:01Z",
                    "properties":{"rows":3},"context":{"groupId":"ws-1"}}"#,
                i128::MAX,
            ),
            prepared(
                r#"{"type":"identify","anonymousId":"a1","messageId":"m2",
                    "traits":{"email":"x@acme.com"}}"#,
                i128::MIN,
            ),
        ];
        insert(&conn, events.iter(), 41).unwrap();
        type Row = (String, i64, String, String, Option<String>, Option<String>);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT msg_key::VARCHAR, seq, message_id, type, event, \
                 coalesce(properties, traits)::VARCHAR FROM events ORDER BY seq",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    i128::MAX.to_string(),
                    41,
                    "m1".into(),
                    "track".into(),
                    Some("Report Created".into()),
                    Some(r#"{"rows":3}"#.into())
                ),
                (
                    i128::MIN.to_string(),
                    42,
                    "m2".into(),
                    "identify".into(),
                    None,
                    Some(r#"{"email":"x@acme.com"}"#.into())
                ),
            ]
        );
        let (ts, sent, user, anon): (String, String, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT strftime(original_timestamp, '%Y-%m-%d %H:%M:%S.%f'), \
                 sent_at::VARCHAR, user_id, anonymous_id FROM events WHERE seq = 41",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(ts, "2026-11-01 10:00:00.123456");
        assert_eq!(sent, "2026-11-01 10:00:01");
        assert_eq!((user.as_deref(), anon), (Some("u1"), None));
    }

    /// The texts are handed to DuckDB as `string_t`s pointing at the events: inlined up to 12
    /// bytes (zero-padded: DuckDB compares them as bytes), prefix and pointer beyond. Equality
    /// with literals, grouping and prefix comparisons all read those fields.
    #[test]
    fn texts_of_every_length_are_stored_and_compared_as_duckdb_strings() {
        let conn = events_table();
        let names = [
            "a",
            "twelve bytes",
            "thirteen byte",
            "Ünïcödé ✓ név",
            "x".repeat(5000).leak(),
        ];
        // Twice each (other keys), so that grouping has pairs to put together.
        let events: Vec<PreparedEvent> = names
            .iter()
            .chain(&names)
            .enumerate()
            .map(|(i, name)| {
                let json = serde_json::json!({"type": "track", "event": name, "userId": "u"});
                prepared(&json.to_string(), i as i128)
            })
            .collect();
        // Straight from the function's vectors (DuckDB compares an inlined string's padding too).
        let lent = lend(events.iter(), 1);
        for name in names {
            let n: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {FUNCTION}({}) WHERE event = ?",
                        lent.token
                    ),
                    [name],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 2, "{name:.20}");
        }
        drop(lent);
        // And stored.
        insert(&conn, events.iter(), 1).unwrap();
        for name in names {
            let (n, len): (i64, i64) = conn
                .query_row(
                    "SELECT count(*), max(length(event)) FROM events WHERE event = ?",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((n, len), (2, name.chars().count() as i64), "{name:.20}");
        }
        let groups: i64 = conn
            .query_row(
                "SELECT count(*) FROM (SELECT event FROM events GROUP BY event HAVING count(*) = 2)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(groups, names.len() as i64);
        let prefixed: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE event LIKE 'thirt%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(prefixed, 2);
    }

    #[test]
    fn lent_events_are_taken_back_also_when_the_statement_fails() {
        let held = |token| LENT.holds(token);
        let e = prepared(r#"{"type":"track","event":"x","userId":"u1"}"#, 7);
        let lent = lend(std::iter::once(&e), 1);
        let token = lent.token;
        assert!(held(token));
        drop(lent);
        assert!(!held(token));
        // No `events` table: the statement fails, and the event is not lent any more (other
        // tests lend their own events meanwhile: look for this one).
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        assert!(insert(&conn, std::iter::once(&e), 1).is_err());
        let ours = &e as *const PreparedEvent;
        assert!(!LENT.any(|b| b.events.contains(&ours)));
    }
}
