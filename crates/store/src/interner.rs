//! Ids (group, user, anonymous ids, event names, trait values) interned as small numbers by
//! the import's collectors (`rollup_collect`, `account_collect`): each distinct text is kept
//! once, and rows hold 4-byte numbers. 0 stands for NULL.

use std::collections::HashMap;

/// Texts by number and numbers by text.
pub(crate) struct Interner {
    numbers: HashMap<Box<str>, u32, ahash::RandomState>,
    /// Index 0 is NULL's (never looked up by text).
    texts: Vec<Box<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            numbers: HashMap::default(),
            texts: vec!["".into()],
        }
    }
}

impl Interner {
    /// The number of `text` (0 for None), given one if new.
    pub(crate) fn intern(&mut self, text: Option<&str>) -> u32 {
        let Some(text) = text else { return 0 };
        if let Some(&n) = self.numbers.get(text) {
            return n;
        }
        let n = self.texts.len() as u32;
        self.texts.push(text.into());
        self.numbers.insert(text.into(), n);
        n
    }

    /// The text of number `n` (None: NULL).
    pub(crate) fn text(&self, n: u32) -> Option<&str> {
        (n != 0).then(|| &*self.texts[n as usize])
    }

    /// How many numbers were given (NULL's included): one past the largest.
    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_get_one_number_each_and_none_is_zero() {
        let mut i = Interner::default();
        assert_eq!(i.intern(None), 0);
        let a = i.intern(Some("a"));
        assert_eq!(i.intern(Some("")), 2, "the empty text is not NULL");
        assert_eq!(i.intern(Some("a")), a);
        assert_eq!(
            (i.text(a), i.text(0), i.text(2)),
            (Some("a"), None, Some(""))
        );
        assert_eq!(i.len(), 3);
    }
}
