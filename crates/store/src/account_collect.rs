//! Work in progress (branch only): the account rows' per-event values ([`crate::account_rows`]:
//! the packed match columns and the trait columns) computed in Rust, as the daily rollup's
//! partials are in [`crate::rollup_collect`], so that an import can collect the account rows
//! while it appends. The SQL in `account_rows.rs` stays the definition; the test below compares
//! every event's values.

use std::collections::HashMap;

use upmarket_core::model::{EventSelector, Model, SignalKind, VelocityMetric};
use upmarket_core::{Event, EventKind};

use crate::rollup_collect::{property_path, Class, Cond};

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
    pub(crate) fn marks(&self, e: &Event) -> Result<Vec<i64>, String> {
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
        let mut out = vec![0i64; self.columns];
        for (column, shift, eval) in &self.marks {
            let value = match eval {
                MarkEval::Cond(c) => i64::from(c.test(class) == Some(true)),
                MarkEval::Tier {
                    core,
                    advanced,
                    enterprise,
                } => match class {
                    Class::Track(name) => {
                        let has = |l: &[String]| name.is_some_and(|n| l.iter().any(|f| f == n));
                        if has(enterprise) {
                            4
                        } else if has(advanced) {
                            3
                        } else if has(core) {
                            2
                        } else {
                            1
                        }
                    }
                    _ => 0,
                },
            };
            out[*column] |= value << shift;
        }
        Ok(out)
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
        let ctx = upmarket_core::segment::ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Segment,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        let events: Vec<Event> = lines
            .iter()
            .map(|l| {
                upmarket_core::segment::parse_event(
                    l,
                    None,
                    &upmarket_core::segment::BatchDefaults::default(),
                    &ctx,
                )
                .unwrap()
            })
            .collect();
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
}
