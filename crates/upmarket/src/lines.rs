//! The lines of an NDJSON file, read in large chunks: each line is found with the `memchr`
//! crate's vectorized search and lent in place, not copied out. std's `read_until` searched
//! with core's portable `memchr` and copied every line: ~420 instructions a line, ~200 here
//! (callgrind, first 200k simulated events). A line longer than a limit is skipped to its end
//! and reported by its size, never held whole in memory.

use std::io::{self, Read};

/// Bytes read from the file at a time.
const CHUNK: usize = 1 << 20;

/// One line, without its line feed.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's bytes.
    Text(&'a [u8]),
    /// A line longer than the limit, skipped: its length in bytes.
    TooLong(u64),
}

/// A reader's lines, numbered from 1.
pub struct Lines<R> {
    reader: R,
    /// `buf[start..end]` is read and not yet handed out; the rest is room to read into.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes after `start` already known to hold no line feed.
    searched: usize,
    eof: bool,
    number: u64,
    max_line: usize,
}

impl<R: Read> Lines<R> {
    /// Lines of `reader`; one longer than `max_line` bytes comes as [`Line::TooLong`].
    pub fn new(reader: R, max_line: usize) -> Self {
        Lines {
            reader,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            searched: 0,
            eof: false,
            number: 0,
            max_line,
        }
    }

    /// The next line and its number, or None after the last one. A last line without a line
    /// feed is a line.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        let (from, to) = loop {
            let pending = &self.buf[self.start + self.searched..self.end];
            if let Some(at) = memchr::memchr(b'\n', pending) {
                let to = self.start + self.searched + at;
                break (self.start, to);
            }
            self.searched = self.end - self.start;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                break (self.start, self.end);
            }
            if self.end - self.start > self.max_line {
                let length = self.skip_line()?;
                self.number += 1;
                return Ok(Some((self.number, Line::TooLong(length))));
            }
            self.fill()?;
        };
        self.start = (to + 1).min(self.end);
        self.searched = 0;
        self.number += 1;
        if to - from > self.max_line {
            return Ok(Some((self.number, Line::TooLong((to - from) as u64))));
        }
        Ok(Some((self.number, Line::Text(&self.buf[from..to]))))
    }

    /// Reads more after the pending bytes (moved to the front first), growing the buffer only
    /// when the pending line fills it.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len().saturating_mul(2);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the pending line's bytes and the rest of it up to its line feed (kept are the
    /// bytes after it); returns the line's length.
    fn skip_line(&mut self) -> io::Result<u64> {
        let mut length = (self.end - self.start) as u64;
        loop {
            self.start = 0;
            self.end = 0;
            self.searched = 0;
            self.fill()?;
            if self.eof {
                return Ok(length);
            }
            if let Some(at) = memchr::memchr(b'\n', &self.buf[..self.end]) {
                self.start = at + 1;
                return Ok(length + at as u64);
            }
            length += self.end as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes a call, to cut lines across reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn all(data: &[u8], step: usize, max_line: usize) -> Vec<(u64, String)> {
        let mut lines = Lines::new(Trickle { data, step }, max_line);
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next_line().unwrap() {
            out.push((
                n,
                match line {
                    Line::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                    Line::TooLong(len) => format!("<{len} bytes>"),
                },
            ));
        }
        out
    }

    #[test]
    fn splits_lines_across_reads_of_any_size() {
        let data = b"{\"a\":1}\n\n{\"b\":2}\r\nlast";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                all(data, step, 1000),
                vec![
                    (1, "{\"a\":1}".to_string()),
                    (2, String::new()),
                    (3, "{\"b\":2}\r".to_string()),
                    (4, "last".to_string()),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn no_line_after_a_final_line_feed_and_none_in_an_empty_file() {
        assert_eq!(all(b"x\n", 1, 10), vec![(1, "x".to_string())]);
        assert_eq!(all(b"", 1, 10), vec![]);
    }

    #[test]
    fn a_line_past_the_limit_is_skipped_and_measured_and_the_next_one_read() {
        let long = "y".repeat(5000);
        let data = format!("a\n{long}\nb\n{long}");
        for step in [1, 999, 4096, 1 << 20] {
            let got = all(data.as_bytes(), step, 100);
            assert_eq!(
                got,
                vec![
                    (1, "a".to_string()),
                    (2, "<5000 bytes>".to_string()),
                    (3, "b".to_string()),
                    (4, "<5000 bytes>".to_string()),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn lines_longer_than_a_chunk_but_within_the_limit_are_read_whole() {
        let long = "z".repeat(3 * CHUNK + 5);
        let data = format!("{long}\nq");
        let got = all(data.as_bytes(), 1 << 16, 4 * CHUNK);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.len(), 3 * CHUNK + 5);
        assert_eq!(got[1], (2, "q".to_string()));
    }
}
