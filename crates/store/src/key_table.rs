//! [`KeyTable`]: a set of 128-bit keys by open addressing, for the store's deduplication keys
//! (see `stored_keys`), whose batches are claimed with the next keys' slots fetched ahead.
//!
//! Why not `HashSet<i128>`: at 10M events its table is ~285 MB, and nearly every insert is a
//! cache miss on a slot nobody touched recently; one by one, each miss waits for the one
//! before it (hashbrown's insert was ~9% of the appending thread's samples in the 10M-event
//! import). Here the slots are one array, found by linear probing from a keyed hash, so the
//! slot of the key sixteen places ahead in a batch can be prefetched while this one is
//! inserted, and the misses overlap.
//!
//! Layout: a power-of-two array of keys, at most 3/4 full, in which 0 marks an empty slot;
//! the key 0 itself is held by a flag. Removal shifts the probe run back (no tombstones), so
//! a table that loses keys probes as if they had never been there.

use ahash::RandomState;

/// How far ahead in a batch the slots are prefetched: enough keys to cover a miss's latency
/// (~100 ns against a few ns an insert), few enough to stay in the cache until used.
const AHEAD: usize = 16;

/// A set of `i128` keys (see the module doc).
#[derive(Debug)]
pub struct KeyTable {
    /// The slots; `EMPTY` where no key is.
    slots: Vec<i128>,
    /// Keys held, the flagged 0 included.
    len: usize,
    /// Whether the key 0 (which an empty slot cannot hold) is in the set.
    zero: bool,
    /// Keyed per process: the keys are digests of ids clients choose, so a fixed hash could
    /// be aimed at one run of slots.
    hasher: RandomState,
}

const EMPTY: i128 = 0;

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable {
            slots: Vec::new(),
            len: 0,
            zero: false,
            hasher: RandomState::new(),
        }
    }
}

impl KeyTable {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `key`: true if it was not held.
    pub fn insert(&mut self, key: i128) -> bool {
        self.reserve(1);
        let hash = self.hash(key);
        self.insert_hashed(key, hash)
    }

    /// Adds every key of `keys` in order, calling `added(i, new)` for each: `new` is false
    /// for a key already held (earlier in `keys` included). The slots of later keys are
    /// fetched ahead (see the module doc).
    pub fn insert_all(&mut self, keys: &[i128], mut added: impl FnMut(usize, bool)) {
        self.reserve(keys.len());
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(*k)).collect();
        for (i, (key, hash)) in keys.iter().zip(&hashes).enumerate() {
            if let Some(ahead) = hashes.get(i + AHEAD) {
                self.prefetch(*ahead);
            }
            added(i, self.insert_hashed(*key, *hash));
        }
    }

    /// Removes `key`: true if it was held.
    pub fn remove(&mut self, key: i128) -> bool {
        if key == EMPTY {
            let held = self.zero;
            self.zero = false;
            self.len -= usize::from(held);
            return held;
        }
        let Some(mut hole) = self.find(key) else {
            return false;
        };
        // Backward-shift deletion: each key further along the run whose home slot is not
        // between the hole and it (cyclically) moves into the hole, which moves to its place.
        let mask = self.slots.len() - 1;
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let next = self.slots[at];
            if next == EMPTY {
                break;
            }
            let home = self.home(self.hash(next));
            let stays = if hole <= at {
                hole < home && home <= at
            } else {
                hole < home || home <= at
            };
            if !stays {
                self.slots[hole] = next;
                hole = at;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Whether `key` is held.
    #[cfg(test)]
    pub fn contains(&self, key: i128) -> bool {
        if key == EMPTY {
            return self.zero;
        }
        self.find(key).is_some()
    }

    /// Makes room for `additional` more keys without growing again.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.len.saturating_add(additional);
        if needed <= self.capacity() {
            return;
        }
        // At most 3/4 full: slots = needed * 4/3, rounded up to a power of two.
        let slots = needed
            .saturating_add(needed / 3 + 1)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX / 2 + 1)
            .max(16);
        let old = std::mem::replace(&mut self.slots, written_slots(slots));
        for key in old.into_iter().filter(|k| *k != EMPTY) {
            let hash = self.hash(key);
            let mut at = self.home(hash);
            while self.slots[at] != EMPTY {
                at = (at + 1) & (slots - 1);
            }
            self.slots[at] = key;
        }
    }

    /// Keys the slots take before they must grow.
    fn capacity(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    fn hash(&self, key: i128) -> u64 {
        self.hasher.hash_one(key)
    }

    fn home(&self, hash: u64) -> usize {
        // Truncation intended: the low bits pick the slot.
        (hash as usize) & (self.slots.len() - 1)
    }

    /// The slot holding `key` (not 0).
    fn find(&self, key: i128) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(self.hash(key));
        loop {
            match self.slots[at] {
                EMPTY => return None,
                k if k == key => return Some(at),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Adds `key` of hash `hash`; room must have been reserved.
    fn insert_hashed(&mut self, key: i128, hash: u64) -> bool {
        if key == EMPTY {
            let new = !self.zero;
            self.zero = true;
            self.len += usize::from(new);
            return new;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        loop {
            match self.slots[at] {
                EMPTY => {
                    self.slots[at] = key;
                    self.len += 1;
                    return true;
                }
                k if k == key => return false,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Asks the CPU to fetch the home slot of `hash` into its cache.
    fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let slot = self.slots.as_ptr().wrapping_add(self.home(hash));
            // SAFETY: a prefetch is a hint that never faults nor changes memory; the address
            // is a slot of `self.slots` (`home` masks it below the length, which is not 0
            // here: `insert_all` reserved room first).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    slot.cast::<i8>(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }
}

/// Bytes of a memory page (the smallest on the platforms upmarket runs on).
const PAGE: usize = 4096;

/// `n` empty slots, each page of them written once before any is read.
///
/// Why: a table this large comes straight from the kernel as untouched zero pages. Probing
/// one first *reads* it, which maps the kernel's shared zero page; the insert's write then
/// faults again to copy it, and that second fault flushes the TLBs of every core the process
/// runs on, by interrupt. Writing each page first makes the first fault the only one. At 10M
/// events (a 268 MB table, 65k pages) the flushes alone were ~2% of the import's CPU samples
/// (`smp_call_function_many_cond` and `native_write_msr` under `KeyTable::insert_hashed`).
fn written_slots(n: usize) -> Vec<i128> {
    let mut slots = vec![EMPTY; n];
    for slot in slots.iter_mut().step_by(PAGE / std::mem::size_of::<i128>()) {
        // The value is EMPTY, but the compiler must not know it: a store of the zero the
        // allocation already holds would be left out.
        *slot = std::hint::black_box(EMPTY);
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// Fresh slots are all empty, whatever their count against a page's 256 slots.
    #[test]
    fn fresh_slots_are_empty_across_pages() {
        for n in [0, 1, 255, 256, 257, 1000, 4096] {
            let slots = written_slots(n);
            assert_eq!(slots.len(), n);
            assert!(slots.iter().all(|s| *s == EMPTY), "{n} slots");
        }
    }

    #[test]
    fn holds_zero_and_the_extremes_like_any_key() {
        let mut t = KeyTable::default();
        for k in [0, 1, -1, i128::MAX, i128::MIN] {
            assert!(!t.contains(k));
            assert!(t.insert(k), "{k} is new");
            assert!(!t.insert(k), "{k} is held");
            assert!(t.contains(k));
        }
        assert_eq!(t.len(), 5);
        assert!(t.remove(0) && !t.remove(0) && !t.contains(0));
        assert!(t.remove(i128::MIN) && !t.contains(i128::MIN));
        assert_eq!(t.len(), 3);
        assert!(t.contains(1) && t.contains(-1) && t.contains(i128::MAX));
    }

    #[test]
    fn a_batch_reports_repeats_within_it() {
        let mut t = KeyTable::default();
        t.insert(7);
        let mut seen = Vec::new();
        t.insert_all(&[1, 7, 2, 1, 0, 0], |i, new| seen.push((i, new)));
        assert_eq!(
            seen,
            vec![
                (0, true),
                (1, false),
                (2, true),
                (3, false),
                (4, true),
                (5, false)
            ]
        );
        assert_eq!(t.len(), 4);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(i128),
        Batch(Vec<i128>),
        Remove(i128),
    }

    /// Keys from a small range, so that inserts repeat and removals hit, and runs of slots
    /// collide and wrap around a small table.
    fn op() -> impl Strategy<Value = Op> {
        let key = -40i128..40;
        prop_oneof![
            key.clone().prop_map(Op::Insert),
            proptest::collection::vec(key.clone(), 0..40).prop_map(Op::Batch),
            key.prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Any sequence of inserts, batches and removals answers as std's `HashSet` does.
        #[test]
        fn answers_as_a_hash_set_does(ops in proptest::collection::vec(op(), 0..200)) {
            let mut t = KeyTable::default();
            let mut s = HashSet::new();
            for op in ops {
                match op {
                    Op::Insert(k) => prop_assert_eq!(t.insert(k), s.insert(k)),
                    Op::Remove(k) => prop_assert_eq!(t.remove(k), s.remove(&k)),
                    Op::Batch(keys) => {
                        let mut got = Vec::new();
                        t.insert_all(&keys, |_, new| got.push(new));
                        let want: Vec<bool> = keys.iter().map(|k| s.insert(*k)).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(t.len(), s.len());
            }
            for k in -40i128..40 {
                prop_assert_eq!(t.contains(k), s.contains(&k), "key {}", k);
            }
        }
    }
}
