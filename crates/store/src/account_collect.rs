//! The account rows ([`crate::account_rows`]) collected in Rust while an import appends, as the
//! daily rollup is in [`crate::rollup_collect`]: each event's packed match columns and trait
//! columns, the grouped events older than the model's look-back folded as they come (one row
//! per group and ids), the rest kept whole, then sorted by key and written by
//! [`crate::account_rows::create_collected`] through `account_rows_out`.
//!
//! The SQL in `account_rows.rs` stays the definition: the tests below compare every event's
//! values and the folded rows with it, and the integration test
//! `collected_account_rows_equal_the_sql_ones` the tables an import builds. Collected only into
//! an empty store; a model with property filters, a trait or page path that is neither text nor
//! null, or a failed batch leaves the account rows to SQL.

use std::collections::HashMap;

use upmarket_core::model::{EventSelector, Model, SignalKind, VelocityMetric};
use upmarket_core::{Event, EventKind};

use crate::chunked::Chunked;
use crate::rollup_collect::{property_path, tier_of, Class, Cond};

/// How one match column is evaluated (see `account_rows::match_column`).
enum MarkEval {
    /// A yes/no match: its bit when the condition is TRUE (NULL and FALSE store 0).
    Cond(Cond),
    /// A track event's feature tier, stored as tier + 1 (0 for other calls).
    Tier {
        core: Vec<String>,
        advanced: Vec<String>,
        enterprise: Vec<String>,
    },
}

/// The model's per-event values as the account rows store them.
pub(crate) struct RowValues {
    /// Per match: packed column, bit offset, evaluation.
    marks: Vec<(usize, u32, MarkEval)>,
    columns: usize,
    /// The traits read (by name), in the trait columns' order.
    traits: Vec<String>,
    reads_paths: bool,
}

impl RowValues {
    /// None when a match column has no Rust evaluation (property filters).
    pub(crate) fn new(model: &Model) -> Option<RowValues> {
        let packing = crate::account_rows::packing(model);
        let mut marks = Vec::new();
        for m in &packing.marks {
            let eval = match &model.signals[m.signal].kind {
                SignalKind::EventCount {
                    select, filters, ..
                } => {
                    if !filters.is_empty() {
                        return None;
                    }
                    MarkEval::Cond(Cond::Select(select.clone()))
                }
                SignalKind::DistinctUsers { select, .. } => {
                    MarkEval::Cond(Cond::Select(select.clone()))
                }
                SignalKind::Velocity {
                    metric: VelocityMetric::Selected(sel),
                    ..
                } => MarkEval::Cond(Cond::Select(sel.clone())),
                SignalKind::FeatureBreadth { features, .. } => {
                    MarkEval::Cond(Cond::Select(EventSelector {
                        events: features.clone(),
                        pages: Vec::new(),
                    }))
                }
                SignalKind::FeatureTier {
                    core,
                    advanced,
                    enterprise,
                    ..
                } => MarkEval::Tier {
                    core: core.clone(),
                    advanced: advanced.clone(),
                    enterprise: enterprise.clone(),
                },
                _ => return None,
            };
            marks.push((m.column, m.shift, eval));
        }
        let reads_paths = marks.iter().any(|(_, _, e)| match e {
            MarkEval::Cond(Cond::Select(s)) => !s.pages.is_empty(),
            _ => false,
        });
        let traits = model
            .signals
            .iter()
            .filter_map(|s| match &s.kind {
                SignalKind::Trait { name } => Some(name.replace('"', "")),
                _ => None,
            })
            .collect();
        Some(RowValues {
            marks,
            columns: packing.columns,
            traits,
            reads_paths,
        })
    }

    /// The packed match columns of `e`.
    #[cfg(test)]
    pub(crate) fn marks(&self, e: &Event) -> Result<Vec<i64>, String> {
        let mut out = Vec::new();
        self.marks_into(e, &mut out)?;
        Ok(out)
    }

    /// The packed match columns of `e`, into `out` (reused from event to event).
    pub(crate) fn marks_into(&self, e: &Event, out: &mut Vec<i64>) -> Result<(), String> {
        let path = match e.kind {
            EventKind::Page | EventKind::Screen if self.reads_paths => {
                property_path(e.properties.text())?
            }
            _ => None,
        };
        let class = match e.kind {
            EventKind::Track => Class::Track(e.event.as_deref()),
            EventKind::Page | EventKind::Screen => {
                Class::Page(path.as_deref().or(e.name.as_deref()))
            }
            _ => Class::Other,
        };
        out.clear();
        out.resize(self.columns, 0);
        for (column, shift, eval) in &self.marks {
            let value = match eval {
                MarkEval::Cond(c) => i64::from(c.test(class) == Some(true)),
                MarkEval::Tier {
                    core,
                    advanced,
                    enterprise,
                } => match class {
                    // The tier plus one (0 is a call that is not a track).
                    Class::Track(name) => 1 + tier_of(name, core, advanced, enterprise),
                    _ => 0,
                },
            };
            out[*column] |= value << shift;
        }
        Ok(())
    }

    /// The trait columns of `e`: what an identify or group call declared.
    pub(crate) fn traits(&self, e: &Event) -> Result<Vec<Option<String>>, String> {
        if self.traits.is_empty() {
            return Ok(Vec::new());
        }
        let declared = match (e.kind, e.traits.text()) {
            (EventKind::Identify | EventKind::Group, Some(text)) => first_values(text)?,
            _ => return Ok(vec![None; self.traits.len()]),
        };
        self.traits
            .iter()
            .map(|name| match declared.get(name.as_str()) {
                None => Ok(None),
                Some(raw) => text_value(raw.get()),
            })
            .collect()
    }
}

/// The top-level keys of a JSON object with their first value (as `json_extract_string`
/// finds the first of duplicate keys).
fn first_values(text: &str) -> Result<HashMap<String, Box<serde_json::value::RawValue>>, String> {
    let pairs: Vec<(String, Box<serde_json::value::RawValue>)> =
        serde_json::from_str::<PairList>(text)
            .map(|p| p.0)
            .map_err(|e| format!("traits: {e}"))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// An object's entries in order, duplicates kept.
struct PairList(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for PairList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PairList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PairList, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(PairList(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON value as `json_extract_string` gives it, for the values reproduced here: a string's
/// text, NULL for null; anything else is left to SQL (Err).
fn text_value(raw: &str) -> Result<Option<String>, String> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::String(s)) => Ok(Some(s)),
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(_) => Err(format!("a trait that is not text: {raw}")),
        Err(e) => Err(format!("a trait: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn model(file: &str) -> Model {
        let path = format!("{}/../../models/{file}", env!("CARGO_MANIFEST_DIR"));
        Model::from_toml(&std::fs::read_to_string(path).unwrap(), file).unwrap()
    }

    /// Events from their JSON lines, as an import parses them.
    fn parse<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Event> {
        let ctx = upmarket_core::segment::ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Import,
            max_event_bytes: 32 * 1024,
            trust_received_at: true,
        };
        let defaults = upmarket_core::segment::BatchDefaults::default();
        lines
            .map(|l| upmarket_core::segment::parse_event(l, None, &defaults, &ctx).unwrap())
            .collect()
    }

    /// Every event's packed matches and traits computed here equal what SQL stores.
    #[test]
    fn row_values_equal_the_sql_ones() {
        let lines = [
            r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"1"}"#,
            r#"{"type":"track","event":"SSO Configured","userId":"u1","messageId":"2"}"#,
            r#"{"type":"track","event":"Alert Configured","userId":"u1","messageId":"3"}"#,
            r#"{"type":"track","event":"Something Else","userId":"u1","messageId":"4"}"#,
            r#"{"type":"track","event":"Teammate Invited","userId":"u1","messageId":"5"}"#,
            r#"{"type":"page","name":"Pricing","properties":{"path":"/pricing"},"userId":"u1","messageId":"6"}"#,
            r#"{"type":"page","properties":{"path":"/legal/terms/v2"},"userId":"u1","messageId":"7"}"#,
            r#"{"type":"page","userId":"u1","messageId":"8"}"#,
            r#"{"type":"page","name":"/security","properties":{"path":null},"userId":"u1","messageId":"8b"}"#,
            r#"{"type":"screen","name":"/legal/privacy","userId":"u1","messageId":"8c"}"#,
            r#"{"type":"identify","userId":"u1","traits":{"company_size":"11-50"},"messageId":"9"}"#,
            r#"{"type":"group","userId":"u1","groupId":"w","traits":{"company_size":"51-200","company_size":"x"},"messageId":"10"}"#,
            r#"{"type":"identify","userId":"u2","traits":{"company_size":null},"messageId":"11"}"#,
            r#"{"type":"alias","userId":"u2","previousId":"a2","messageId":"12"}"#,
        ];
        let events = parse(lines.into_iter());
        let mut store =
            crate::DuckDbStore::open_in_memory(&upmarket_core::FreeMailDomains::default()).unwrap();
        store.append(&events).unwrap();
        let conn = store.sql_connection().unwrap();
        for m in [model("default.toml"), model("004-worked-example.toml")] {
            let values = RowValues::new(&m).unwrap();
            let p = crate::account_rows::packing(&m);
            let marks: Vec<String> = (0..p.columns).map(|n| format!("marks_{n}")).collect();
            let traits: Vec<String> = m
                .signals
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.kind, SignalKind::Trait { .. }))
                .map(|(i, _)| format!("t{i}"))
                .collect();
            let sql = format!(
                "SELECT [{}], [{}]::VARCHAR[] FROM (SELECT {} FROM ({})) ORDER BY seq",
                marks.join(", "),
                traits.join(", "),
                crate::account_rows::stored_row_columns(&m),
                crate::rollup::events_with_path("true")
            );
            let mut stmt = conn.prepare(&sql).unwrap();
            let rows: Vec<(String, String)> = stmt
                .query_map([], |r| {
                    let a: duckdb::types::Value = r.get(0)?;
                    let b: duckdb::types::Value = r.get(1)?;
                    Ok((format!("{a:?}"), format!("{b:?}")))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(rows.len(), events.len());
            for (e, (sql_marks, sql_traits)) in events.iter().zip(&rows) {
                let ours = values.marks(e).unwrap();
                let ours = format!(
                    "{:?}",
                    duckdb::types::Value::List(
                        ours.into_iter().map(duckdb::types::Value::BigInt).collect()
                    )
                );
                assert_eq!(&ours, sql_marks, "{} {:?}", m.name, e.message_id);
                let t = values.traits(e).unwrap();
                let t = format!(
                    "{:?}",
                    duckdb::types::Value::List(
                        t.into_iter()
                            .map(|v| v
                                .map_or(duckdb::types::Value::Null, duckdb::types::Value::Text))
                            .collect()
                    )
                );
                assert_eq!(&t, sql_traits, "{} {:?}", m.name, e.message_id);
            }
        }
    }

    /// The collected rows, folded at a boundary inside the history, equal SQL's rows of the
    /// same events with the same boundary, row for row.
    #[test]
    fn collected_rows_equal_the_sql_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = upmarket_sim::SimConfig {
            accounts: 40,
            seed: 5,
            ..upmarket_sim::SimConfig::default()
        };
        upmarket_sim::simulate(&cfg, dir.path(), |_| {}).unwrap();
        let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
        let events = parse(text.lines());
        let mut store =
            crate::DuckDbStore::open_in_memory(&upmarket_core::FreeMailDomains::default()).unwrap();
        store.append(&events).unwrap();
        let conn = store.sql_connection().unwrap();
        let m = model("default.toml");
        let mut c = AccountCollector::new(&m, 0).unwrap();
        c.add(1, events.iter());
        assert!(c.broken.is_none());
        // The boundary SQL uses (the scoring clock less the look-back).
        let from = crate::account_rows::kept_from(&conn, &m).unwrap();
        let from_us = from.and_utc().timestamp_micros();
        assert!(!c.folds.is_empty(), "some events were folded as they came");
        let out = c.rows(from_us).unwrap();
        let rows = &out.rows;
        let ours: Vec<String> = rows
            .iter()
            .map(|r| {
                let id = |n: u32| c.name(n).unwrap_or("NULL").to_string();
                let (d, values) = c.detail(&out, r);
                let (marks, traits) = match values {
                    Some(v) => {
                        let (m, t) = c.row_values(v);
                        (
                            m.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                            t.iter().map(|&x| id(x)).collect::<Vec<_>>(),
                        )
                    }
                    None => (vec!["0".to_string()], vec!["NULL".to_string()]),
                };
                format!(
                    "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    r.groupless,
                    r.k,
                    r.seq,
                    d.ts,
                    id(d.event),
                    id(d.user),
                    id(d.anon),
                    id(d.group),
                    marks.join(","),
                    traits.join(",")
                )
            })
            .collect();
        let sql = format!(
            "SELECT concat_ws('|', groupless, k, seq, epoch_us(timestamp), coalesce(event, 'NULL'),
                    coalesce(user_id, 'NULL'), coalesce(anonymous_id, 'NULL'),
                    coalesce(group_id, 'NULL'), marks_0, coalesce(t11, 'NULL'))
             FROM ({}) ORDER BY groupless, k, seq",
            crate::account_rows::folded(&m, &crate::account_rows::keyed_rows(&m, "TRUE"), from)
        );
        let theirs: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            rows.iter().any(|r| c.detail(&out, r).1.is_none()),
            "some rows are folded"
        );
        assert!(rows.iter().any(|r| r.groupless), "some rows are group-less");
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b);
        }
    }
}

/// One event kept by the collector, or a folded row (no event name) (ids interned; 0 is NULL).
#[derive(Clone, Copy)]
pub(crate) struct Row {
    pub seq: i64,
    pub ts: i64,
    pub event: u32,
    pub user: u32,
    pub anon: u32,
    pub group: u32,
}

/// A row of the account rows table as the collector writes it: its sort key, and where the
/// rest of it is. 24 bytes: the 10M import writes 3.6M of them, which as whole rows (64 bytes)
/// were 230 MB of fresh memory to fault in and sort.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutRow {
    pub groupless: bool,
    pub k: u64,
    pub seq: i64,
    /// A collected row's index, or [`FOLDED`] and the index of a row in [`OutRows::folded`].
    at: u32,
}

/// Set in [`OutRow::at`] for a folded row.
const FOLDED: u32 = 1 << 31;

/// The rows to write, sorted, and the folded rows they point to (each standing for older
/// grouped events of one set of ids: their last number and time, no event name).
pub(crate) struct OutRows {
    pub rows: Vec<OutRow>,
    pub folded: Vec<Row>,
}

/// The account rows of the events appended since collection began.
pub(crate) struct AccountCollector {
    values: RowValues,
    pub(crate) start_seq: i64,
    pub(crate) events: i64,
    pub(crate) broken: Option<String>,
    ids: crate::interner::Interner,
    rows: Chunked<Row>,
    /// `values.columns` packed marks per row.
    marks: Chunked<i64>,
    /// `values.traits.len()` interned trait values per row.
    traits: Chunked<u32>,
    /// One event's packed marks, before they are kept.
    scratch: Vec<i64>,
    latest: Option<i64>,
    /// Grouped events folded as they came (older than [`AccountCollector::early_boundary`]):
    /// per (group, user, anonymous id), the last number and time.
    folds: HashMap<(u32, u32, u32), (i64, i64), ahash::RandomState>,
    /// The last event's interned (group, user, anonymous id) and event name: events come in
    /// runs of one person's, so most find theirs here (a few comparisons instead of hash
    /// lookups in a table of millions).
    previous_ids: Option<(u32, u32, u32)>,
    previous_name: u32,
    /// The model's longest look-back (microseconds) and the time collection began.
    lookback: i64,
    began: i64,
}

impl AccountCollector {
    /// None when the model has a match column only SQL evaluates.
    pub(crate) fn new(model: &Model, start_seq: i64) -> Option<AccountCollector> {
        let values = RowValues::new(model)?;
        Some(AccountCollector {
            rows: Chunked::new(1),
            marks: Chunked::new(values.columns),
            traits: Chunked::new(values.traits.len()),
            scratch: Vec::new(),
            values,
            start_seq,
            events: 0,
            broken: None,
            ids: crate::interner::Interner::default(),
            latest: None,
            folds: HashMap::default(),
            previous_ids: None,
            previous_name: 0,
            lookback: i64::from(crate::scoring::max_window(model)) * 86_400_000_000,
            began: chrono::Utc::now().timestamp_micros(),
        })
    }

    /// The text of interned id `n` (None: NULL).
    pub(crate) fn name(&self, n: u32) -> Option<&str> {
        self.ids.text(n)
    }

    /// Adds events numbered from `first_seq` in order.
    pub(crate) fn add<'a>(&mut self, first_seq: i64, events: impl Iterator<Item = &'a Event>) {
        for (i, e) in events.enumerate() {
            self.events += 1;
            if self.broken.is_some() {
                continue;
            }
            if let Err(why) = self.add_one(first_seq + i as i64, e) {
                self.broken = Some(why);
            }
        }
    }

    fn add_one(&mut self, seq: i64, e: &Event) -> Result<(), String> {
        let ts = e.timestamp.timestamp_micros();
        self.latest = Some(self.latest.map_or(ts, |l| l.max(ts)));
        // Rows exist for events with a group or an id (every valid event has one).
        if e.group_id.is_none() && e.user_id.is_none() && e.anonymous_id.is_none() {
            return Ok(());
        }
        // Only identify and group calls declare traits; the others fold without evaluating
        // anything when old enough.
        let traits = match e.kind {
            EventKind::Identify | EventKind::Group => self.values.traits(e)?,
            _ => Vec::new(),
        };
        if e.group_id.is_some() && traits.iter().all(Option::is_none) && ts < self.early_boundary()
        {
            let key = self.ids_of(e);
            let f = self.folds.entry(key).or_insert((seq, ts));
            f.0 = f.0.max(seq);
            f.1 = f.1.max(ts);
            return Ok(());
        }
        self.values.marks_into(e, &mut self.scratch)?;
        let (group, user, anon) = self.ids_of(e);
        let event = match e.event.as_deref() {
            name @ Some(_) if self.name(self.previous_name) == name => self.previous_name,
            name => self.ids.intern(name),
        };
        self.previous_name = event;
        let row = Row {
            seq,
            ts,
            event,
            user,
            anon,
            group,
        };
        self.rows.push([row]);
        self.marks.push(self.scratch.iter().copied());
        let ids = &mut self.ids;
        if traits.is_empty() {
            // Calls that declare none (all but identify and group): every trait NULL.
            self.traits
                .push(std::iter::repeat_n(0, self.values.traits.len()));
        } else {
            self.traits
                .push(traits.iter().map(|t| ids.intern(t.as_deref())));
        }
        Ok(())
    }

    /// `e`'s interned (group, user, anonymous id): the previous event's when they are the same.
    fn ids_of(&mut self, e: &Event) -> (u32, u32, u32) {
        let same = self.previous_ids.filter(|k| {
            self.name(k.0) == e.group_id.as_deref()
                && self.name(k.1) == e.user_id.as_deref()
                && self.name(k.2) == e.anonymous_id.as_deref()
        });
        let ids = match same {
            Some(k) => k,
            None => (
                self.ids.intern(e.group_id.as_deref()),
                self.ids.intern(e.user_id.as_deref()),
                self.ids.intern(e.anonymous_id.as_deref()),
            ),
        };
        self.previous_ids = Some(ids);
        ids
    }

    /// A time before the fold boundary the rows will be written with, whenever that is: the
    /// scoring clock is at least the earlier of the newest event's time (plus a second) and
    /// now (`crate::clock_for`), both of which only grow, less the look-back.
    fn early_boundary(&self) -> i64 {
        match self.latest {
            Some(l) => (l + 1_000_000).min(self.began) - self.lookback,
            None => i64::MIN,
        }
    }

    /// Packed match columns and trait columns per row.
    pub(crate) fn widths(&self) -> (usize, usize) {
        (self.values.columns, self.values.traits.len())
    }

    /// Row `values`' packed marks and interned traits.
    pub(crate) fn row_values(&self, values: usize) -> (&[i64], &[u32]) {
        (self.marks.row(values), self.traits.row(values))
    }

    /// The table's rows with the grouped events older than `kept_from` (microseconds) that
    /// declare no trait folded into one row per key and ids, sorted by (groupless, key, seq):
    /// what `account_rows::folded` over `keyed_rows` gives. None (SQL builds the rows) past
    /// 2^31 collected rows, which [`OutRow`] cannot point to.
    pub(crate) fn rows(&self, kept_from: i64) -> Option<OutRows> {
        if self.rows.len() >= FOLDED as usize {
            return None;
        }
        let mut keys: HashMap<u32, u64, ahash::RandomState> = HashMap::default();
        let mut key = |tag: char, id: u32| -> u64 {
            let packed = (id << 1) | u32::from(tag == 'i');
            *keys.entry(packed).or_insert_with(|| {
                crate::account_rows::key_of(&format!("{tag}{}", self.ids.text(id).unwrap_or("")))
            })
        };
        let mut out = Vec::with_capacity(self.rows.len());
        let mut folds = self.folds.clone();
        for (i, r) in self.rows.ones().enumerate() {
            let declares = self.traits.row(i).iter().any(|&t| t != 0);
            if r.group != 0 && r.ts < kept_from && !declares {
                let f = folds
                    .entry((r.group, r.user, r.anon))
                    .or_insert((r.seq, r.ts));
                f.0 = f.0.max(r.seq);
                f.1 = f.1.max(r.ts);
                continue;
            }
            let (groupless, k) = if r.group != 0 {
                (false, key('g', r.group))
            } else {
                (true, key('i', if r.user != 0 { r.user } else { r.anon }))
            };
            out.push(OutRow {
                groupless,
                k,
                seq: r.seq,
                // Below 2^31 (checked above).
                at: i as u32,
            });
        }
        let mut folded = Vec::with_capacity(folds.len());
        for ((group, user, anon), (seq, ts)) in folds {
            let at = u32::try_from(folded.len()).ok().filter(|&n| n < FOLDED)?;
            out.push(OutRow {
                groupless: false,
                k: key('g', group),
                seq,
                at: FOLDED | at,
            });
            folded.push(Row {
                seq,
                ts,
                event: 0,
                user,
                anon,
                group,
            });
        }
        out.sort_unstable_by_key(|r| (r.groupless, r.k, r.seq));
        Some(OutRows { rows: out, folded })
    }

    /// Row `r`'s columns (`r` one of `out`'s rows), and the index of its values among the
    /// collected rows (None: folded, no values).
    pub(crate) fn detail(&self, out: &OutRows, r: &OutRow) -> (Row, Option<usize>) {
        if r.at & FOLDED != 0 {
            return (out.folded[(r.at & !FOLDED) as usize], None);
        }
        let i = r.at as usize;
        (self.rows.one(i), Some(i))
    }
}
