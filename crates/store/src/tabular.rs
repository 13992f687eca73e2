//! Reading CSV and Parquet files through DuckDB, one JSON object per row, so that `upmarket
//! import` validates them exactly like NDJSON and API events.
//!
//! Columns named with dots nest: a column `properties.plan` becomes `{"properties":{"plan":…}}`.
//! A column holding a JSON object as text (`properties` = `{"plan":"pro"}`) is parsed.

use std::path::Path;

use duckdb::Connection;
use serde_json::{Map, Value};

use crate::sql::quote_literal;
use crate::StoreError;

/// A tabular file format DuckDB reads for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabularFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// Calls `each_row` with every row of the file as a JSON object, in file order. Stops at the
/// first error `each_row` returns.
pub fn for_each_row<E: From<StoreError>>(
    path: &Path,
    format: TabularFormat,
    mut each_row: impl FnMut(Map<String, Value>) -> Result<(), E>,
) -> Result<u64, E> {
    let conn = Connection::open_in_memory().map_err(StoreError::from)?;
    let source = match format {
        TabularFormat::Csv => format!(
            "read_csv({}, header = true, all_varchar = true)",
            quote_literal(&path.display().to_string())
        ),
        TabularFormat::Parquet => format!(
            "read_parquet({})",
            quote_literal(&path.display().to_string())
        ),
    };
    let mut stmt = conn
        .prepare(&format!("SELECT to_json(t)::VARCHAR FROM {source} t"))
        .map_err(StoreError::from)?;
    let mut rows = stmt.query([]).map_err(StoreError::from)?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(StoreError::from)? {
        let text: String = row.get(0).map_err(StoreError::from)?;
        let flat: Map<String, Value> = serde_json::from_str(&text).map_err(StoreError::from)?;
        each_row(nest(flat))?;
        n += 1;
    }
    Ok(n)
}

/// Turns dotted keys into nested objects, parses JSON-object text, and drops empty cells.
pub fn nest(flat: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    'rows: for (key, value) in flat {
        let value = match value {
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::String(s) if s.trim_start().starts_with('{') => {
                serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s))
            }
            v => v,
        };
        let mut parts: Vec<&str> = key.split('.').collect();
        let Some(last) = parts.pop() else { continue };
        let mut target = &mut out;
        for p in parts {
            let slot = target
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(m) = slot else {
                continue 'rows;
            };
            target = m;
        }
        match (target.get_mut(last), value) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (_, value) => {
                target.insert(last.to_string(), value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_columns_nest() {
        let Value::Object(flat) = json!({"type":"track","properties.plan":"pro","properties.seats":"4","context":"{\"groupId\":\"w1\"}","userId":"","event":"x"})
        else {
            panic!()
        };
        assert_eq!(
            Value::Object(nest(flat)),
            json!({"type":"track","properties":{"plan":"pro","seats":"4"},"context":{"groupId":"w1"},"event":"x"})
        );
    }
}
