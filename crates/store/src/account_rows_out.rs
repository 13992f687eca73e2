//! Collected account rows ([`crate::account_collect`]) into
//! their base table through a DuckDB table function that fills DuckDB's vectors from the
//! collector's memory, texts by reference (as `rollup_rows` does for the rollup):
//! `INSERT INTO account_rows_… SELECT * FROM upmarket_account_rows(token)`, in order (one
//! thread per statement: the base must stay sorted by key, so `DuckDbStore` inserts two halves
//! at once, each on its own connection).

use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use duckdb::{ffi, Connection};

use crate::account_collect::{AccountCollector, OutRow, OutRows, Row};
use crate::event_rows::{fill_nullable, string_t, TooLong, EMPTY};
use crate::lend::{token_parameter, Bound, Progress, Shelf};
use crate::sql::quote_ident;
use crate::StoreError;

const FUNCTION: &str = "upmarket_account_rows";

/// Registers the table function on `conn`'s database.
pub(crate) fn register(conn: &Connection) -> Result<(), StoreError> {
    conn.register_table_function::<AccountRowsOut>(FUNCTION)?;
    Ok(())
}

/// A collector's output rows: `rows`, some of `out.rows`.
struct View {
    collector: *const AccountCollector,
    out: *const OutRows,
    rows: *const [OutRow],
}

// SAFETY: the pointers are only read, from any thread, while the `Loan` guard that borrows
// them is alive (see `insert`).
unsafe impl Send for View {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for View {}

static LENT: Shelf<View> = Shelf::new();

/// Inserts `rows` (some of `out`'s, of `collector`) into account rows table `table`, in order.
pub(crate) fn insert(
    conn: &Connection,
    table: &str,
    collector: &AccountCollector,
    out: &OutRows,
    rows: &[OutRow],
) -> Result<(), StoreError> {
    let loan = LENT.lend(View {
        collector: collector as *const AccountCollector,
        out: out as *const OutRows,
        rows: rows as *const [OutRow],
    });
    conn.execute(
        &format!(
            "INSERT INTO {} SELECT * FROM {FUNCTION}({})",
            quote_ident(table),
            loan.token
        ),
        [],
    )?;
    drop(loan);
    Ok(())
}

struct AccountRowsOut;

impl VTab for AccountRowsOut {
    type InitData = Progress;
    type BindData = Bound;

    fn bind(bind: &BindInfo) -> Result<Self::BindData, Box<dyn std::error::Error>> {
        let bound = Bound::new(bind, FUNCTION)?;
        let view = LENT.lent(bound.token, FUNCTION)?;
        // SAFETY: see `View`.
        let collector = unsafe { &*view.collector };
        let (marks, traits) = collector.widths();
        bind.add_result_column("groupless", LogicalTypeId::Boolean.into());
        bind.add_result_column("k", LogicalTypeId::UBigint.into());
        bind.add_result_column("seq", LogicalTypeId::Bigint.into());
        bind.add_result_column("timestamp", LogicalTypeId::Timestamp.into());
        for c in ["event", "user_id", "anonymous_id", "group_id"] {
            bind.add_result_column(c, LogicalTypeId::Varchar.into());
        }
        for n in 0..marks {
            bind.add_result_column(&format!("marks_{n}"), LogicalTypeId::Bigint.into());
        }
        for n in 0..traits {
            bind.add_result_column(&format!("t_{n}"), LogicalTypeId::Varchar.into());
        }
        Ok(bound)
    }

    fn init(init: &InitInfo) -> Result<Self::InitData, Box<dyn std::error::Error>> {
        init.set_max_threads(1);
        Ok(Progress::new())
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let view = LENT.lent(func.get_bind_data().token, FUNCTION)?;
        // SAFETY: see `View`.
        let (collector, out, all) = unsafe { (&*view.collector, &*view.out, &*view.rows) };
        let capacity = output.flat_vector(0).capacity();
        let rows = &all[func.get_init_data().claim(all.len(), capacity)];
        fill(output, collector, out, rows)?;
        output.set_len(rows.len());
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        token_parameter()
    }
}

/// Writes `rows` (some of `all`'s) into `out`'s vectors (in the bound columns' order).
fn fill(
    out: &mut DataChunkHandle,
    c: &AccountCollector,
    all: &OutRows,
    rows: &[OutRow],
) -> Result<(), TooLong> {
    let n = rows.len();
    // Each row's columns, and the index of its values (None: folded).
    let (details, values): (Vec<Row>, Vec<Option<usize>>) =
        rows.iter().map(|r| c.detail(all, r)).unzip();
    let raw = |col: usize| {
        // SAFETY: `col` is one of the chunk's columns.
        unsafe { ffi::duckdb_data_chunk_get_vector(out.get_ptr(), col as u64) }
    };
    // SAFETY (each block): the vector's DuckDB type stores its values as the slice's type
    // (BOOLEAN: bool, UBIGINT: u64, BIGINT and TIMESTAMP: i64, VARCHAR: duckdb_string_t), and
    // n ≤ its capacity (the rows of one chunk).
    let mut v = out.flat_vector(0);
    for (slot, r) in unsafe { v.as_mut_slice_with_len::<bool>(n) }
        .iter_mut()
        .zip(rows)
    {
        *slot = r.groupless;
    }
    let mut v = out.flat_vector(1);
    for (slot, r) in unsafe { v.as_mut_slice_with_len::<u64>(n) }
        .iter_mut()
        .zip(rows)
    {
        *slot = r.k;
    }
    let mut v = out.flat_vector(2);
    for (slot, r) in unsafe { v.as_mut_slice_with_len::<i64>(n) }
        .iter_mut()
        .zip(rows)
    {
        *slot = r.seq;
    }
    let mut v = out.flat_vector(3);
    for (slot, d) in unsafe { v.as_mut_slice_with_len::<i64>(n) }
        .iter_mut()
        .zip(&details)
    {
        *slot = d.ts;
    }
    let ids: [fn(&Row) -> u32; 4] = [|d| d.event, |d| d.user, |d| d.anon, |d| d.group];
    for (j, id) in ids.into_iter().enumerate() {
        let col = 4 + j;
        let mut v = out.flat_vector(col);
        let vector = raw(col);
        unsafe {
            fill_nullable(&mut v, vector, n, EMPTY, |i| {
                c.name(id(&details[i]))
                    .map(|s| string_t(s).ok_or(TooLong(s.len())))
                    .transpose()
            })
        }?;
    }
    let (marks, traits) = c.widths();
    for m in 0..marks {
        let mut v = out.flat_vector(8 + m);
        for (slot, x) in unsafe { v.as_mut_slice_with_len::<i64>(n) }
            .iter_mut()
            .zip(&values)
        {
            *slot = x.map_or(0, |x| c.row_values(x).0[m]);
        }
    }
    for t in 0..traits {
        let col = 8 + marks + t;
        let mut v = out.flat_vector(col);
        let vector = raw(col);
        unsafe {
            fill_nullable(&mut v, vector, n, EMPTY, |i| {
                values[i]
                    .and_then(|x| c.name(c.row_values(x).1[t]))
                    .map(|s| string_t(s).ok_or(TooLong(s.len())))
                    .transpose()
            })
        }?;
    }
    Ok(())
}
