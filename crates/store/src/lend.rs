//! Data in Rust's memory lent to a DuckDB table function for the length of one statement:
//! the statement names a token, the function finds the data on a [`Shelf`] by it. Used by
//! `event_rows` (a commit's events) and `rollup_rows` (an import's collected rollup).
//!
//! The lent value typically holds raw pointers into data the lender borrows: the [`Loan`]
//! guard borrows it for `'a` and takes the value off the shelf when dropped (also when the
//! statement failed), so nothing on a shelf outlives what it points at. DuckDB calls table
//! functions only while their statement runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Tokens, unique across shelves.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Values lent, by token.
pub(crate) struct Shelf<T>(Mutex<Option<HashMap<u64, Arc<T>>>>);

impl<T> Shelf<T> {
    /// An empty shelf (for a `static`).
    pub(crate) const fn new() -> Self {
        Shelf(Mutex::new(None))
    }

    fn map(&self) -> MutexGuard<'_, Option<HashMap<u64, Arc<T>>>> {
        // A panic while the lock was held cannot leave the map inconsistent (single inserts
        // and removals): keep using it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts `value` on the shelf until the returned guard is dropped. The guard borrows for
    /// `'a` whatever `value` points into.
    pub(crate) fn lend<'a>(&'static self, value: T) -> Loan<'a, T> {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        self.map()
            .get_or_insert_with(HashMap::new)
            .insert(token, Arc::new(value));
        Loan {
            shelf: self,
            token,
            _borrow: std::marker::PhantomData,
        }
    }

    /// The value lent under `token`. The lock is held only to find it: several statements
    /// (import lanes) read their own values at once.
    pub(crate) fn get(&self, token: u64) -> Option<Arc<T>> {
        self.map().as_ref().and_then(|m| m.get(&token).cloned())
    }

    /// The value lent under `token`, or the error a table function reports.
    pub(crate) fn lent(&self, token: u64, function: &str) -> Result<Arc<T>, String> {
        self.get(token)
            .ok_or_else(|| format!("{function}: nothing lent under {token}"))
    }

    /// Whether something is lent under `token` (tests).
    #[cfg(test)]
    pub(crate) fn holds(&self, token: u64) -> bool {
        self.map().as_ref().is_some_and(|m| m.contains_key(&token))
    }

    /// Whether any value lent satisfies `f` (tests).
    #[cfg(test)]
    pub(crate) fn any(&self, f: impl Fn(&T) -> bool) -> bool {
        self.map()
            .as_ref()
            .is_some_and(|m| m.values().any(|v| f(v)))
    }
}

/// A value on a shelf under `token`, taken off when dropped.
pub(crate) struct Loan<'a, T: 'static> {
    shelf: &'static Shelf<T>,
    pub token: u64,
    _borrow: std::marker::PhantomData<&'a ()>,
}

impl<T: 'static> Drop for Loan<'_, T> {
    fn drop(&mut self) {
        if let Some(map) = self.shelf.map().as_mut() {
            map.remove(&self.token);
        }
    }
}

/// The token a table function was bound with (its bind data), read from its one BIGINT
/// parameter ([`token_parameter`]).
pub(crate) struct Bound {
    pub token: u64,
}

impl Bound {
    pub(crate) fn new(bind: &duckdb::vtab::BindInfo, function: &str) -> Result<Bound, String> {
        let param = bind.get_parameter(0).to_int64();
        let token = u64::try_from(param).map_err(|_| format!("{function}: bad token {param}"))?;
        Ok(Bound { token })
    }
}

/// A table function's parameters: the token.
pub(crate) fn token_parameter() -> Option<Vec<duckdb::core::LogicalTypeHandle>> {
    Some(vec![duckdb::core::LogicalTypeHandle::from(
        duckdb::core::LogicalTypeId::Bigint,
    )])
}

/// How far a statement's rows have been handed out (a table function's init data).
pub(crate) struct Progress {
    next: std::sync::atomic::AtomicUsize,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next rows, at most `capacity` of `len`, claimed with one atomic step: each chunk
    /// goes out once, whichever thread DuckDB calls from. Empty once all went out.
    pub(crate) fn claim(&self, len: usize, capacity: usize) -> std::ops::Range<usize> {
        let start = self.next.fetch_add(capacity, Ordering::Relaxed).min(len);
        start..len.min(start.saturating_add(capacity))
    }
}
