//! A collected daily rollup ([`crate::rollup_collect`]) into its table through a DuckDB table
//! function that fills DuckDB's vectors from the collector's memory, texts by reference (as
//! [`crate::event_rows`] does for events): `INSERT INTO rollup_… SELECT * FROM
//! upmarket_rollup_rows(token)`. DuckDB's appender took 1.6 s for the 2.2M rows of a 10M-event
//! import (its own copy of every row, then the insert), Arrow batches built for it 0.5 s more.

use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use duckdb::{ffi, Connection};

use crate::event_rows::{fill_nullable, string_t, TooLong, EMPTY};
use crate::lend::{token_parameter, Bound, Progress, Shelf};
use crate::rollup_collect::Collector;
use crate::sql::quote_ident;
use crate::StoreError;

const FUNCTION: &str = "upmarket_rollup_rows";

/// Registers the table function on `conn`'s database.
pub(crate) fn register(conn: &Connection) -> Result<(), StoreError> {
    conn.register_table_function::<RollupRows>(FUNCTION)?;
    Ok(())
}

/// A collector's rows in the order they are inserted.
struct View {
    collector: *const Collector,
    order: Vec<u32>,
}

// SAFETY: the collector is only read, from any thread, while the `Loan` guard that borrows it
// is alive (see `insert`); `Collector` is `Sync`.
unsafe impl Send for View {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for View {}

static LENT: Shelf<View> = Shelf::new();

/// Inserts `collector`'s rows, in `order`, into rollup `table` (whose columns are the
/// function's: day, the three ids, the last time, then the partials, in order; BIGINT partials
/// are cast to the table's INTEGER ones by the insert). On every core, so without keeping the
/// order exactly: each thread takes the next 2,048 rows and fills row groups of its own, each
/// then spanning about twice the days it would in order, which is what readers' day filters
/// prune by (2.2M rows at 10M events: 0.85 s on 2 cores, 2.0 s in order on one).
pub(crate) fn insert(
    conn: &Connection,
    table: &str,
    collector: &Collector,
    order: Vec<u32>,
) -> Result<(), StoreError> {
    let loan = LENT.lend(View {
        collector: collector as *const Collector,
        order,
    });
    conn.execute_batch("SET preserve_insertion_order = false")?;
    let inserted = conn.execute(
        &format!(
            "INSERT INTO {} SELECT * FROM {FUNCTION}({})",
            quote_ident(table),
            loan.token
        ),
        [],
    );
    conn.execute_batch("RESET preserve_insertion_order")?;
    inserted?;
    drop(loan);
    Ok(())
}

struct RollupRows;

impl VTab for RollupRows {
    type InitData = Progress;
    type BindData = Bound;

    fn bind(bind: &BindInfo) -> Result<Self::BindData, Box<dyn std::error::Error>> {
        let bound = Bound::new(bind, FUNCTION)?;
        let view = LENT.lent(bound.token, FUNCTION)?;
        // SAFETY: see `View`.
        let collector = unsafe { &*view.collector };
        bind.add_result_column("day", LogicalTypeId::Date.into());
        for id in ["group_id", "user_id", "anonymous_id"] {
            bind.add_result_column(id, LogicalTypeId::Varchar.into());
        }
        bind.add_result_column("last_ts", LogicalTypeId::Timestamp.into());
        for (j, flag) in collector.flags().enumerate() {
            let ty = if flag {
                LogicalTypeId::Boolean
            } else {
                LogicalTypeId::Bigint
            };
            bind.add_result_column(&format!("p{j}"), ty.into());
        }
        Ok(bound)
    }

    fn init(init: &InitInfo) -> Result<Self::InitData, Box<dyn std::error::Error>> {
        init.set_max_threads(crate::duckdb_store::all_cores() as u64);
        Ok(Progress::new())
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let view = LENT.lent(func.get_bind_data().token, FUNCTION)?;
        // SAFETY: see `View`.
        let collector = unsafe { &*view.collector };
        let capacity = output.flat_vector(0).capacity();
        let rows = &view.order[func.get_init_data().claim(view.order.len(), capacity)];
        fill(output, collector, rows)?;
        output.set_len(rows.len());
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        token_parameter()
    }
}

/// Writes `rows` of `c` into `out`'s vectors (in the bound columns' order).
fn fill(out: &mut DataChunkHandle, c: &Collector, rows: &[u32]) -> Result<(), TooLong> {
    let n = rows.len();
    let raw = |col: usize| {
        // SAFETY: `col` is one of the chunk's columns.
        unsafe { ffi::duckdb_data_chunk_get_vector(out.get_ptr(), col as u64) }
    };
    // SAFETY (each block): the vector's DuckDB type stores its values as the slice's type
    // (DATE: i32 days, TIMESTAMP: i64 microseconds, VARCHAR: duckdb_string_t, BIGINT: i64,
    // BOOLEAN: bool), and n ≤ its capacity (the rows of one chunk).
    let mut days = out.flat_vector(0);
    let slots = unsafe { days.as_mut_slice_with_len::<i32>(n) };
    for (slot, &r) in slots.iter_mut().zip(rows) {
        *slot = c.key(r).0;
    }
    for col in 1..=3 {
        let mut v = out.flat_vector(col);
        let ids = raw(col);
        unsafe {
            fill_nullable(&mut v, ids, n, EMPTY, |i| {
                c.id(rows[i], col)
                    .map(|s| string_t(s).ok_or(TooLong(s.len())))
                    .transpose()
            })
        }?;
    }
    let mut last = out.flat_vector(4);
    let slots = unsafe { last.as_mut_slice_with_len::<i64>(n) };
    for (slot, &r) in slots.iter_mut().zip(rows) {
        *slot = c.last_ts(r);
    }
    for (j, flag) in c.flags().enumerate() {
        let col = 5 + j;
        let mut v = out.flat_vector(col);
        let vector = raw(col);
        if flag {
            unsafe {
                fill_nullable(&mut v, vector, n, false, |i| {
                    Ok(c.value(rows[i], j).map(|x| x != 0))
                })
            }?;
        } else {
            unsafe { fill_nullable(&mut v, vector, n, 0i64, |i| Ok(c.value(rows[i], j))) }?;
        }
    }
    Ok(())
}
