//! The daily rollup ([`crate::rollup`]) computed in Rust while an import appends its events,
//! then written in one go: the same rows DuckDB's `GROUP BY` over the stored events gives,
//! without reading the events back. At 10M simulated events DuckDB's rollup took 2.4–4.3 s
//! of the import's end (BENCHMARKS.md), most of it scanning and grouping what the import had
//! just parsed.
//!
//! The SQL in [`crate::rollup`] stays the definition: every partial carries its [`Eval`] next
//! to its SQL, and the integration test `a_collected_rollup_equals_the_sql_one` compares the
//! two tables row for row. Whatever this module cannot compute exactly, SQL computes:
//! - a model with a partial that has no [`Eval`] (property filters, more than 62 features)
//!   collects nothing;
//! - a page or screen view whose `properties.path` is neither text nor null, or whose
//!   properties do not parse into one `path` (a duplicate key), stops the collection, and so
//!   do more than [`MAX_ROWS`] rows (memory: DuckDB's aggregation can spill to disk);
//! - the rows are written only if they cover exactly the events appended since collection
//!   began and those follow the rollup as it was (an empty store, or a rollup that covered
//!   every stored event). A failed batch, a duplicate or a store filled past a stale rollup
//!   leaves the rollup to SQL (`rollup::current` then builds or extends it as before).

use std::borrow::Cow;
use std::collections::HashMap;

use duckdb::Connection;
use upmarket_core::model::{EventSelector, Model};
use upmarket_core::{Event, EventKind};

use crate::chunked::Chunked;
use crate::rollup::{model_day_columns, DayColumn};
use crate::StoreError;

/// The condition of a counted or flagged partial.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    /// Every event (`TRUE`).
    Always,
    /// The events a selector matches ([`crate::scoring::selector_sql`]).
    Select(EventSelector),
}

/// How a partial aggregates a day's events, as its SQL in [`crate::rollup::day_columns`] does.
#[derive(Debug, Clone)]
pub(crate) enum Eval {
    /// `count(*) FILTER (WHERE cond)`.
    Count(Cond),
    /// `bool_or(cond)`: NULL when the condition was NULL for every event (page views
    /// without a path).
    Flag(Cond),
    /// `bit_or(CASE event WHEN f0 THEN 1 WHEN f1 THEN 2 … ELSE 0 END) FILTER (WHERE type =
    /// 'track')`: NULL without track events.
    Mask(Vec<String>),
    /// `max(tier) FILTER (WHERE type = 'track')`: NULL without track events.
    Tier {
        core: Vec<String>,
        advanced: Vec<String>,
        enterprise: Vec<String>,
    },
}

/// SQL's NULL among the partials' values.
const NULL: i64 = i64::MIN;

/// What an event is, as far as the partials look.
#[derive(Clone, Copy)]
pub(crate) enum Class<'a> {
    Track(Option<&'a str>),
    /// A page or screen view with its path (`coalesce(properties.path, name)`).
    Page(Option<&'a str>),
    Other,
}

impl Cond {
    /// SQL's three-valued result: None is NULL.
    pub(crate) fn test(&self, class: Class) -> Option<bool> {
        let sel = match self {
            Cond::Always => return Some(true),
            Cond::Select(sel) => sel,
        };
        // `(type = 'track' AND event IN (…)) OR (type IN ('page', 'screen') AND
        // starts_with(path, p)) OR …`, FALSE when the selector is empty.
        let mut unknown = false;
        if !sel.events.is_empty() {
            if let Class::Track(name) = class {
                match name {
                    Some(n) if sel.events.iter().any(|e| e == n) => return Some(true),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
        }
        if let Class::Page(path) = class {
            for prefix in &sel.pages {
                match path {
                    Some(p) if p.starts_with(prefix.as_str()) => return Some(true),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
        }
        if unknown {
            None
        } else {
            Some(false)
        }
    }
}

/// A track event's feature tier as `scoring::tier_sql` gives it: 3 enterprise, 2 advanced, 1
/// core (tested in that order), else 0.
pub(crate) fn tier_of(
    name: Option<&str>,
    core: &[String],
    advanced: &[String],
    enterprise: &[String],
) -> i64 {
    let has = |list: &[String]| name.is_some_and(|n| list.iter().any(|f| f == n));
    if has(enterprise) {
        3
    } else if has(advanced) {
        2
    } else if has(core) {
        1
    } else {
        0
    }
}

impl Eval {
    /// One event's contribution (NULL: none).
    fn contribution(&self, class: Class) -> i64 {
        let flag = |b: bool| i64::from(b);
        match self {
            Eval::Count(c) => flag(c.test(class) == Some(true)),
            Eval::Flag(c) => c.test(class).map_or(NULL, flag),
            Eval::Mask(features) => match class {
                Class::Track(name) => name
                    .and_then(|n| features.iter().position(|f| f == n))
                    .map_or(0, |bit| 1i64 << bit),
                _ => NULL,
            },
            Eval::Tier {
                core,
                advanced,
                enterprise,
            } => match class {
                Class::Track(name) => tier_of(name, core, advanced, enterprise),
                _ => NULL,
            },
        }
    }

    /// The value a day starts from.
    fn initial(&self) -> i64 {
        match self {
            Eval::Count(_) => 0,
            _ => NULL,
        }
    }

    /// Adds a contribution to a day's value.
    fn fold(&self, acc: &mut i64, c: i64) {
        if c == NULL {
            return;
        }
        if *acc == NULL {
            *acc = c;
            return;
        }
        match self {
            Eval::Count(_) => *acc += c,
            Eval::Flag(_) | Eval::Mask(_) => *acc |= c,
            Eval::Tier { .. } => *acc = (*acc).max(c),
        }
    }
}

/// The evaluations of the model's partial columns, in column order; None when one has none.
fn evals(columns: &[(usize, Vec<DayColumn>)]) -> Option<Vec<Eval>> {
    columns
        .iter()
        .flat_map(|(_, cols)| cols.iter())
        .filter_map(|c| c.partial.as_ref())
        .map(|p| p.eval.clone())
        .collect()
}

/// A page view's `properties.path` as `json_extract_string(properties, '$.path')` reads it:
/// Ok(None) when absent or null; Err when it is something this module does not reproduce.
pub(crate) fn property_path(properties: Option<&str>) -> Result<Option<Cow<'_, str>>, String> {
    let Some(text) = properties else {
        return Ok(None);
    };
    // Most properties name no path: no parse (an escaped key spelled otherwise is parsed).
    if !text.contains("\"path\"") && !text.contains('\\') {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct PathOnly<'a> {
        #[serde(borrow, default)]
        path: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<PathOnly>(text)
        .map(|p| p.path)
        .map_err(|e| format!("a page view's properties.path: {e}"))
}

/// At most this many rows are collected (~110 bytes each with their key and index: ~1 GB); an
/// import with more (a year of ~40M events or more) leaves the rollup to SQL.
const MAX_ROWS: usize = 10_000_000;

/// A rollup row's key: day (days since 1970-01-01), then the interned group, user and
/// anonymous ids (0: NULL).
pub(crate) type Key = (i32, u32, u32, u32);

/// The rollup rows of the events appended since [`Collector::new`].
pub(crate) struct Collector {
    model: Model,
    table: String,
    evals: Vec<Eval>,
    /// Whether the model reads page paths (else they are not extracted).
    reads_paths: bool,
    /// Events with `seq > start_seq` are collected...
    start_seq: i64,
    /// ...and this many of them were.
    events: i64,
    /// Why the collected rows cannot be used (then SQL builds the rollup).
    broken: Option<String>,
    ids: crate::interner::Interner,
    rows: HashMap<Key, u32, ahash::RandomState>,
    keys: Chunked<Key>,
    last_ts: Chunked<i64>,
    /// `evals.len()` values per row.
    values: Chunked<i64>,
    /// The import's expected events (`DuckDbStore::expect_events`): room for the rows they
    /// will make is taken once the first events show how many rows they make.
    expected: Option<usize>,
    /// Time spent adding events (reported when written).
    busy: std::time::Duration,
    /// The last event's key and row.
    previous: Option<(Key, u32)>,
    /// The contributions of a track event, by name (few distinct names): their index in
    /// `track_contributions`, found with one lookup.
    track: HashMap<Box<str>, usize, ahash::RandomState>,
    track_contributions: Vec<Box<[i64]>>,
    /// The contributions of an identify, group or alias call.
    other: Box<[i64]>,
    scratch: Vec<i64>,
}

impl Collector {
    /// A collector of `model`'s rollup rows for the events numbered after `start_seq`; None
    /// when the model has no numeric signal or a partial only SQL computes.
    pub(crate) fn new(model: &Model, start_seq: i64) -> Option<Collector> {
        let columns = model_day_columns(model);
        if columns.is_empty() {
            return None;
        }
        let evals = evals(&columns)?;
        let width = evals.len();
        let reads_paths = evals.iter().any(|e| match e {
            Eval::Count(Cond::Select(s)) | Eval::Flag(Cond::Select(s)) => !s.pages.is_empty(),
            _ => false,
        });
        let other = evals.iter().map(|e| e.contribution(Class::Other)).collect();
        Some(Collector {
            model: model.clone(),
            table: crate::rollup::table_name(&columns),
            evals,
            reads_paths,
            start_seq,
            events: 0,
            broken: None,
            ids: crate::interner::Interner::default(),
            rows: HashMap::default(),
            keys: Chunked::new(1),
            last_ts: Chunked::new(1),
            values: Chunked::new(width),
            expected: None,
            previous: None,
            busy: std::time::Duration::ZERO,
            track: HashMap::default(),
            track_contributions: Vec::new(),
            other,
            scratch: Vec::new(),
        })
    }

    /// Marks the collection unusable: SQL builds the rollup.
    pub(crate) fn abandon(&mut self, why: &str) {
        self.broken.get_or_insert_with(|| why.to_string());
    }

    /// Adds events being committed (numbered after the ones before; the caller checks nothing
    /// else was appended, see [`Collector::write`]).
    pub(crate) fn add<'a>(&mut self, events: impl Iterator<Item = &'a Event>) {
        let started = std::time::Instant::now();
        for e in events {
            self.events += 1;
            if self.broken.is_some() {
                continue;
            }
            if let Err(why) = self.add_one(e) {
                self.broken = Some(why);
                self.release();
            }
        }
        self.reserve_expected();
        self.busy += started.elapsed();
    }

    /// Tells the collector how many events the import expects (estimated from its file sizes).
    pub(crate) fn expect(&mut self, events: usize) {
        self.expected = Some(events);
    }

    /// After the first events, makes room in the row index for the rows that all the expected
    /// ones will make at the same rate (a quarter more, at most [`MAX_ROWS`]): the index then
    /// never doubles, moving every row into new memory each time (its inserts, doublings
    /// included, were 1.7% of a 10M-event import's CPU samples).
    fn reserve_expected(&mut self) {
        let Some(expected) = self.expected.take() else {
            return;
        };
        if self.events <= 0 || self.broken.is_some() {
            return;
        }
        let rate = self.keys.len() as f64 / self.events as f64;
        let rows = ((expected as f64 * rate * 1.25) as usize).min(MAX_ROWS);
        self.rows.reserve(rows.saturating_sub(self.rows.len()));
    }

    /// Frees what was collected (the collection is broken: SQL builds the rollup).
    fn release(&mut self) {
        self.ids = crate::interner::Interner::default();
        self.rows = HashMap::default();
        self.keys = Chunked::new(1);
        self.last_ts = Chunked::new(1);
        self.values = Chunked::new(self.evals.len());
        self.previous = None;
    }

    fn add_one(&mut self, e: &Event) -> Result<(), String> {
        // Only events that carry their group are rolled up.
        let Some(group) = e.group_id.as_deref() else {
            return Ok(());
        };
        let micros = e.timestamp.timestamp_micros();
        let day = i32::try_from(micros.div_euclid(86_400_000_000))
            .map_err(|_| "a timestamp out of DATE's range".to_string())?;
        // Events come in runs of one person's (a session, a sync): the previous event's row
        // when its ids and day are this one's (three comparisons instead of four hash
        // lookups, most of them cache misses in tables of millions).
        let same = self.previous.filter(|&(k, _)| {
            let id = |n: u32| self.ids.text(n);
            k.0 == day
                && id(k.1) == Some(group)
                && id(k.2) == e.user_id.as_deref()
                && id(k.3) == e.anonymous_id.as_deref()
        });
        let key = match same {
            Some((k, _)) => k,
            None => (
                day,
                self.ids.intern(Some(group)),
                self.ids.intern(e.user_id.as_deref()),
                self.ids.intern(e.anonymous_id.as_deref()),
            ),
        };
        let found = match same {
            Some((_, row)) => Some(row),
            None => self.rows.get(&key).copied(),
        };
        let row = match found {
            Some(row) => row as usize,
            None => {
                let row = self.keys.len();
                if row >= MAX_ROWS {
                    return Err(format!(
                        "more than {MAX_ROWS} rollup rows: aggregated by DuckDB, which can spill to disk"
                    ));
                }
                self.rows.insert(key, row as u32);
                self.keys.push([key]);
                self.last_ts.push([micros]);
                self.values.push(self.evals.iter().map(Eval::initial));
                row
            }
        };
        self.previous = Some((key, row as u32));
        let last = &mut self.last_ts.row_mut(row)[0];
        *last = (*last).max(micros);
        let contributions: &[i64] = match e.kind {
            EventKind::Track => {
                let name = e.event.as_deref();
                match name {
                    Some(n) => {
                        let at = match self.track.get(n) {
                            Some(&at) => at,
                            None => {
                                let c = self
                                    .evals
                                    .iter()
                                    .map(|ev| ev.contribution(Class::Track(Some(n))))
                                    .collect();
                                self.track_contributions.push(c);
                                let at = self.track_contributions.len() - 1;
                                self.track.insert(n.into(), at);
                                at
                            }
                        };
                        &self.track_contributions[at]
                    }
                    None => {
                        self.scratch.clear();
                        let c = self
                            .evals
                            .iter()
                            .map(|ev| ev.contribution(Class::Track(None)));
                        self.scratch.extend(c);
                        &self.scratch
                    }
                }
            }
            EventKind::Page | EventKind::Screen => {
                let path = if self.reads_paths {
                    property_path(e.properties.text())?
                } else {
                    None
                };
                let path = path.as_deref().or(e.name.as_deref());
                self.scratch.clear();
                let c = self
                    .evals
                    .iter()
                    .map(|ev| ev.contribution(Class::Page(path)));
                self.scratch.extend(c);
                &self.scratch
            }
            EventKind::Identify | EventKind::Group | EventKind::Alias => &self.other,
        };
        let values = self.values.row_mut(row);
        for ((acc, &c), ev) in values.iter_mut().zip(contributions).zip(&self.evals) {
            ev.fold(acc, c);
        }
        Ok(())
    }

    /// Writes the rows as the model's rollup, covering the events through `newest` (the store's
    /// last number), in one transaction. Returns whether it did: when the rows do not cover
    /// exactly the events after the rollup as it stands, nothing is written and SQL builds
    /// or extends the rollup as usual.
    pub(crate) fn write(self, conn: &Connection, newest: i64) -> Result<bool, StoreError> {
        if let Some(why) = &self.broken {
            tracing::debug!(%why, "rollup left to SQL");
            return Ok(false);
        }
        if self.events == 0 || self.start_seq + self.events != newest {
            tracing::debug!(
                collected = self.events,
                appended = newest - self.start_seq,
                "rollup left to SQL: the collected events are not the appended ones"
            );
            return Ok(false);
        }
        let Some((_, known)) = crate::rollup::lookup(conn, &self.model)? else {
            return Ok(false);
        };
        let follows = match known {
            Some(through) => through == self.start_seq,
            None => self.start_seq == 0,
        };
        if !follows {
            tracing::debug!(
                ?known,
                start = self.start_seq,
                "rollup left to SQL: it does not end where the collection began"
            );
            return Ok(false);
        }
        let started = std::time::Instant::now();
        conn.execute_batch("BEGIN TRANSACTION")?;
        let written = (|| -> Result<(), StoreError> {
            if known.is_none() {
                // The table's columns and types from the SQL itself, over no events.
                let columns = model_day_columns(&self.model);
                let empty = crate::rollup::rows_sql(&columns, "FALSE");
                crate::rollup::create(conn, &self.table, &empty)?;
            }
            let started = std::time::Instant::now();
            let order = self.sorted();
            crate::scoring::debug_elapsed(started, "collected rollup sorted");
            crate::rollup_rows::insert(conn, &self.table, &self, order)?;
            crate::rollup::register(conn, &self.table, newest)?;
            conn.execute_batch("COMMIT")?;
            Ok(())
        })();
        if let Err(err) = written {
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                tracing::debug!(error = %rollback, "rollback after a failed rollup write");
            }
            tracing::warn!(error = %err, "writing the collected rollup failed; SQL builds it");
            return Ok(false);
        }
        tracing::debug!(
            rows = self.keys.len(),
            events = self.events,
            adding_ms = self.busy.as_secs_f64() * 1e3,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "collected rollup written"
        );
        Ok(true)
    }

    /// The rows' indices sorted by day and group (the groups' names ranked once, not compared
    /// for every pair of rows).
    fn sorted(&self) -> Vec<u32> {
        let mut groups: Vec<u32> = self.keys.ones().map(|k| k.1).collect();
        groups.sort_unstable();
        groups.dedup();
        groups.sort_unstable_by(|&a, &b| self.ids.text(a).cmp(&self.ids.text(b)));
        let mut rank = vec![0u32; self.ids.len()];
        for (r, &g) in groups.iter().enumerate() {
            rank[g as usize] = r as u32;
        }
        let days: Vec<i32> = self.keys.ones().map(|k| k.0).collect();
        let ranks: Vec<u32> = self.keys.ones().map(|k| rank[k.1 as usize]).collect();
        order_by_day_and_rank(&days, &ranks, groups.len())
    }

    /// Row `row`'s key.
    pub(crate) fn key(&self, row: u32) -> Key {
        self.keys.one(row as usize)
    }

    /// Row `row`'s id in key position `col` (1 group, 2 user, 3 anonymous id).
    pub(crate) fn id(&self, row: u32, col: usize) -> Option<&str> {
        let k = self.keys.one(row as usize);
        let n = match col {
            1 => k.1,
            2 => k.2,
            _ => k.3,
        };
        self.ids.text(n)
    }

    /// Row `row`'s last event time (microseconds).
    pub(crate) fn last_ts(&self, row: u32) -> i64 {
        self.last_ts.one(row as usize)
    }

    /// Row `row`'s partial `j` (None: NULL).
    pub(crate) fn value(&self, row: u32, j: usize) -> Option<i64> {
        let v = self.values.row(row as usize)[j];
        (v != NULL).then_some(v)
    }

    /// For each partial, whether it is a BOOLEAN (else a BIGINT).
    pub(crate) fn flags(&self) -> impl Iterator<Item = bool> + '_ {
        self.evals.iter().map(|e| matches!(e, Eval::Flag(_)))
    }
}

/// Row indices (of `days` and `ranks`, one each a row; ranks below `groups`) ordered by day,
/// then rank, then index. Two stable counting sorts, by rank and then by day, since days span
/// a few hundred values and ranks the groups: the 2.2M rows of a 10M-event import took
/// ~190 ms to order with `sort_unstable` on packed keys, on the path to writing the rollup.
/// Days spread wider than the rows could count (DATE's range is millions of days) are
/// ordered by comparison instead.
fn order_by_day_and_rank(days: &[i32], ranks: &[u32], groups: usize) -> Vec<u32> {
    let (Some(&first), Some(&last)) = (days.iter().min(), days.iter().max()) else {
        return Vec::new();
    };
    let span = (i64::from(last) - i64::from(first) + 1) as usize;
    if span > 4 * days.len() + (1 << 16) {
        let mut order: Vec<u32> = (0..days.len() as u32).collect();
        order.sort_unstable_by_key(|&r| (days[r as usize], ranks[r as usize], r));
        return order;
    }
    let by_rank = counting_order(0..days.len() as u32, groups, |r| ranks[r as usize] as usize);
    counting_order(by_rank.into_iter(), span, |r| {
        (i64::from(days[r as usize]) - i64::from(first)) as usize
    })
}

/// `rows` stably ordered by `bucket` (below `buckets`).
fn counting_order(
    rows: impl ExactSizeIterator<Item = u32> + Clone,
    buckets: usize,
    bucket: impl Fn(u32) -> usize,
) -> Vec<u32> {
    let mut next = vec![0u32; buckets + 1];
    for r in rows.clone() {
        next[bucket(r) + 1] += 1;
    }
    for b in 1..next.len() {
        next[b] += next[b - 1];
    }
    let mut out = vec![0u32; rows.len()];
    for r in rows {
        let slot = &mut next[bucket(r)];
        out[*slot as usize] = r;
        *slot += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The counting sorts order rows as sorting by (day, rank, index) does, over narrow
        /// and (falling back to comparison) extreme day spans.
        #[test]
        fn rows_are_ordered_by_day_rank_and_index(
            rows in proptest::collection::vec((0i32..40, 0u32..7), 0..300),
            wide in any::<bool>(),
        ) {
            let days: Vec<i32> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| if wide && i % 2 == 0 { r.0 * 50_000_000 - 1_000_000_000 } else { r.0 })
                .collect();
            let ranks: Vec<u32> = rows.iter().map(|r| r.1).collect();
            let mut expected: Vec<u32> = (0..rows.len() as u32).collect();
            expected.sort_by_key(|&r| (days[r as usize], ranks[r as usize], r));
            prop_assert_eq!(order_by_day_and_rank(&days, &ranks, 7), expected);
        }
    }

    fn selector(events: &[&str], pages: &[&str]) -> Cond {
        Cond::Select(EventSelector {
            events: events.iter().map(|s| s.to_string()).collect(),
            pages: pages.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn conditions_are_three_valued_as_in_sql() {
        let both = selector(&["Report Created"], &["/pricing"]);
        assert_eq!(both.test(Class::Track(Some("Report Created"))), Some(true));
        assert_eq!(both.test(Class::Track(Some("Other"))), Some(false));
        assert_eq!(both.test(Class::Page(Some("/pricing/team"))), Some(true));
        assert_eq!(both.test(Class::Page(Some("/home"))), Some(false));
        // starts_with(NULL, …) is NULL, and NULL OR FALSE is NULL.
        assert_eq!(both.test(Class::Page(None)), None);
        assert_eq!(both.test(Class::Other), Some(false));
        assert_eq!(selector(&[], &[]).test(Class::Page(None)), Some(false));
        assert_eq!(selector(&["x"], &[]).test(Class::Page(None)), Some(false));
        assert_eq!(Cond::Always.test(Class::Other), Some(true));
    }

    #[test]
    fn partials_fold_as_their_aggregates() {
        let flag = Eval::Flag(selector(&[], &["/legal"]));
        let mut acc = flag.initial();
        flag.fold(&mut acc, flag.contribution(Class::Page(None)));
        assert_eq!(acc, NULL, "bool_or over NULLs only is NULL");
        flag.fold(&mut acc, flag.contribution(Class::Other));
        assert_eq!(acc, 0);
        flag.fold(
            &mut acc,
            flag.contribution(Class::Page(Some("/legal/terms"))),
        );
        assert_eq!(acc, 1);
        let mask = Eval::Mask(vec!["a".into(), "b".into(), "a".into()]);
        let mut acc = mask.initial();
        mask.fold(&mut acc, mask.contribution(Class::Other));
        assert_eq!(acc, NULL, "no track event: NULL");
        mask.fold(&mut acc, mask.contribution(Class::Track(Some("zzz"))));
        assert_eq!(acc, 0);
        mask.fold(&mut acc, mask.contribution(Class::Track(Some("a"))));
        mask.fold(&mut acc, mask.contribution(Class::Track(Some("b"))));
        assert_eq!(acc, 0b11, "a name listed twice takes its first bit (CASE)");
        let tier = Eval::Tier {
            core: vec!["x".into()],
            advanced: vec![],
            enterprise: vec!["x".into(), "y".into()],
        };
        let mut acc = tier.initial();
        tier.fold(&mut acc, tier.contribution(Class::Track(Some("x"))));
        assert_eq!(acc, 3, "enterprise is tested first");
        let count = Eval::Count(Cond::Always);
        let mut acc = count.initial();
        assert_eq!(acc, 0);
        count.fold(&mut acc, count.contribution(Class::Other));
        count.fold(&mut acc, count.contribution(Class::Page(None)));
        assert_eq!(acc, 2);
    }

    #[test]
    fn page_paths_are_read_as_json_extract_string_reads_them() {
        assert_eq!(property_path(None), Ok(None));
        assert_eq!(property_path(Some(r#"{"url":"x"}"#)), Ok(None));
        assert_eq!(property_path(Some(r#"{"path":null}"#)), Ok(None));
        assert_eq!(
            property_path(Some(r#"{"a":{"path":1},"path":"/p\u00e9"}"#))
                .map(|p| p.map(|p| p.into_owned())),
            Ok(Some("/p\u{e9}".to_string()))
        );
        assert_eq!(
            property_path(Some(r#"{"pa\u0074h":"/x"}"#)).map(|p| p.map(|p| p.into_owned())),
            Ok(Some("/x".to_string()))
        );
        assert!(property_path(Some(r#"{"path":7}"#)).is_err());
        assert!(property_path(Some(r#"{"path":"/a","path":"/b"}"#)).is_err());
    }
}
