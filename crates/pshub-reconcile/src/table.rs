//! A hash table of rows, for finding a row by its key without owning the key.
//!
//! The keys stay where they are (with their rows); a slot holds the row (a number below
//! `u32::MAX`, such as an offset) and 32
//! bits of the key's hash, 8 bytes in all. The caller compares keys only for rows whose tag
//! matches, which is, but once in four billion, the row it looks for. Open addressing with
//! linear probing, sized once for the rows it will hold, at most three quarters full (8
//! slots share a cache line, so a probe past the first slot mostly stays in it).

/// Rows by hash.
pub struct RowTable {
    /// 0 is an empty slot; otherwise the tag in the high half and the row + 1 in the low.
    slots: Vec<u64>,
    len: usize,
}

impl RowTable {
    /// Room for `rows` rows (never resized: the caller gives an upper bound).
    pub fn with_room_for(rows: usize) -> Self {
        // room() = capacity * 3 / 4 >= rows.
        let capacity = (rows.saturating_mul(4).div_ceil(3) + 1).max(16);
        RowTable {
            slots: vec![0; capacity],
            len: 0,
        }
    }

    /// The most rows it can hold.
    pub fn room(&self) -> usize {
        self.slots.len() * 3 / 4
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot a probe starts at comes from the hash's high bits, the tag from its low.
    fn start(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    fn tag(hash: u64) -> u64 {
        hash & u64::from(u32::MAX)
    }

    fn next(&self, at: usize) -> usize {
        if at + 1 == self.slots.len() {
            0
        } else {
            at + 1
        }
    }

    /// The slot where a probe for `hash` starts, as stored; loading it ahead of [`find`]
    /// brings it into the cache.
    ///
    /// [`find`]: RowTable::find
    #[inline]
    pub fn home(&self, hash: u64) -> u64 {
        self.slots[self.start(hash)]
    }

    /// The row a slot holds, if any.
    #[inline]
    pub fn row_of(slot: u64) -> Option<u32> {
        (slot != 0).then(|| (slot as u32).wrapping_sub(1))
    }

    /// The first row, in the order of insertion, whose slot has the tag of `hash` and for
    /// which `is_key` holds.
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = Self::tag(hash);
        let mut at = self.start(hash);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            let row = (slot as u32).wrapping_sub(1);
            if slot >> 32 == tag && is_key(row) {
                return Some(row);
            }
            at = self.next(at);
        }
    }

    /// The row already holding this key, if `is_key` says one does; otherwise `row` is
    /// inserted under `hash` and `None` is the answer.
    pub fn find_or_insert(
        &mut self,
        hash: u64,
        row: u32,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        assert!(self.len < self.room(), "the table was sized for fewer rows");
        assert!(row < u32::MAX, "row numbers are below u32::MAX");
        let tag = Self::tag(hash);
        let mut at = self.start(hash);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                self.slots[at] = (tag << 32) | u64::from(row + 1);
                self.len += 1;
                return None;
            }
            let existing = (slot as u32).wrapping_sub(1);
            if slot >> 32 == tag && is_key(existing) {
                return Some(existing);
            }
            at = self.next(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn finds_each_key_and_only_its_first_row() {
        let keys: Vec<String> = (0..1000).map(|i| format!("E{}", i % 700)).collect();
        let state = std::hash::RandomState::new();
        let mut table = RowTable::with_room_for(keys.len());
        let mut firsts = 0;
        for (row, key) in keys.iter().enumerate() {
            let hash = state.hash_one(key.as_bytes());
            let found = table.find_or_insert(hash, row as u32, |r| keys[r as usize] == *key);
            match found {
                None => firsts += 1,
                Some(first) => assert_eq!(first as usize, row % 700),
            }
        }
        assert_eq!((firsts, table.len()), (700, 700));
        for i in 0..700 {
            let key = format!("E{i}");
            let hash = state.hash_one(key.as_bytes());
            assert_eq!(table.find(hash, |r| keys[r as usize] == key), Some(i));
        }
        let absent = "E700".to_string();
        let hash = state.hash_one(absent.as_bytes());
        assert_eq!(table.find(hash, |r| keys[r as usize] == absent), None);
    }

    #[test]
    fn it_holds_the_rows_it_was_sized_for() {
        for rows in [0, 1, 11, 12, 13, 300, 301, 302, 1000, 4097] {
            let mut table = RowTable::with_room_for(rows);
            assert!(table.room() >= rows, "{rows}");
            for row in 0..rows as u32 {
                table.find_or_insert(
                    u64::from(row).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    row,
                    |_| false,
                );
            }
            assert_eq!(table.len(), rows);
        }
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_key() {
        // Every key under one hash: the table degrades to a list but stays right.
        let keys = ["a", "b", "c", "a"];
        let mut table = RowTable::with_room_for(keys.len());
        let found: Vec<Option<u32>> = (0..keys.len())
            .map(|row| table.find_or_insert(42, row as u32, |r| keys[r as usize] == keys[row]))
            .collect();
        assert_eq!(found, [None, None, None, Some(0)]);
        assert_eq!(table.find(42, |r| keys[r as usize] == "c"), Some(2));
        assert_eq!(table.find(42, |r| keys[r as usize] == "d"), None);
    }
}
