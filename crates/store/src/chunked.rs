//! Rows of a fixed width kept in chunks of fixed size, for the collectors' millions of rows
//! ([`crate::rollup_collect`], [`crate::account_collect`]).
//!
//! A `Vec` that grows by doubling copies everything it holds into new memory each time, and
//! new memory is what costs on these machines: the kernel hands it out at ~0.4–0.6 GB/s
//! (2 GB touched for the first time took 3.3–5.9 s, the same bytes written again 0.1 s). The
//! daily rollup's values, grown that way, were ~6% of a 10M-event import's CPU in page faults
//! and copies. Chunks are allocated once at their full size and never move, so every row is
//! written where it stays.

/// Rows per chunk: small enough that the last chunk's unused part is little memory, large
/// enough that the chunk table stays tiny.
const CHUNK_ROWS: usize = 1 << 14;

/// Rows of `width` values of `T`, appended and then read or updated in place.
pub(crate) struct Chunked<T> {
    width: usize,
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T: Copy> Chunked<T> {
    /// No rows of `width` values (0 too: rows are then empty).
    pub(crate) fn new(width: usize) -> Self {
        Chunked {
            width,
            chunks: Vec::new(),
            len: 0,
        }
    }

    /// The number of rows.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends a row; `row` gives exactly `width` values (fewer leave the row short: a bug
    /// the debug build asserts).
    pub(crate) fn push(&mut self, row: impl IntoIterator<Item = T>) {
        if self.len.is_multiple_of(CHUNK_ROWS) {
            self.chunks
                .push(Vec::with_capacity(CHUNK_ROWS * self.width));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            let before = chunk.len();
            chunk.extend(row.into_iter().take(self.width));
            debug_assert_eq!(chunk.len() - before, self.width, "a row of the wrong width");
        }
        self.len += 1;
    }

    /// Row `i`.
    pub(crate) fn row(&self, i: usize) -> &[T] {
        let at = (i % CHUNK_ROWS) * self.width;
        &self.chunks[i / CHUNK_ROWS][at..at + self.width]
    }

    /// Row `i`, to update.
    pub(crate) fn row_mut(&mut self, i: usize) -> &mut [T] {
        let at = (i % CHUNK_ROWS) * self.width;
        &mut self.chunks[i / CHUNK_ROWS][at..at + self.width]
    }

    /// Every row in order.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &[T]> + '_ {
        (0..self.len).map(|i| self.row(i))
    }

    /// The single value of row `i` (for width-1 tables).
    pub(crate) fn one(&self, i: usize) -> T {
        self.row(i)[0]
    }

    /// Every row's single value, in order (for width-1 tables).
    pub(crate) fn ones(&self) -> impl Iterator<Item = T> + '_ {
        self.rows().map(|r| r[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_stay_where_they_were_written_across_chunks() {
        let mut t = Chunked::new(3);
        let n = CHUNK_ROWS * 2 + 5;
        for i in 0..n as i64 {
            t.push([i, i * 2, -i]);
        }
        assert_eq!(t.len(), n);
        assert_eq!(
            t.row(CHUNK_ROWS),
            &[
                CHUNK_ROWS as i64,
                2 * CHUNK_ROWS as i64,
                -(CHUNK_ROWS as i64)
            ]
        );
        t.row_mut(CHUNK_ROWS - 1)[1] = 7;
        assert_eq!(t.row(CHUNK_ROWS - 1)[1], 7);
        let all: Vec<i64> = t.rows().map(|r| r[0]).collect();
        assert_eq!(all, (0..n as i64).collect::<Vec<_>>());
        assert_eq!(t.rows().count(), n);
        let mut ones = Chunked::new(1);
        ones.push([9u32]);
        ones.push([8u32]);
        assert_eq!(ones.one(0), 9);
        assert_eq!(ones.ones().collect::<Vec<_>>(), [9, 8]);
        let mut none = Chunked::<u32>::new(0);
        none.push([]);
        none.push([]);
        assert_eq!(none.len(), 2);
        assert_eq!(none.rows().filter(|r| r.is_empty()).count(), 2);
    }
}
