//! A compact map from text keys to small values for millions of keys: it keeps a 64-bit
//! hash of each key instead of the key, in shards so that growing one never doubles the
//! whole map at once. Whoever holds the real keys (the store) verifies a hit; the rare keys
//! whose hash collides with another key's are kept whole in a side table, so a collision
//! costs a lookup and never merges two keys.

use crate::fingerprint::fingerprint;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The keys are already well-mixed hashes; hashing them again is wasted work.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    /// A 32-bit fingerprint is spread over the 64 bits the table takes its buckets and its
    /// control bytes from.
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Shard<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

const SHARDS: usize = 16;

pub struct HashedIndex<V> {
    shards: Vec<Shard<V>>,
    collided: HashMap<String, V>,
    len: usize,
    hash: fn(&str) -> u64,
}

fn fnv(key: &str) -> u64 {
    // Mixed once more so that the low bits (the bucket) and the top bits (the shard) both vary.
    let h = fingerprint(&[key]);
    (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
}

impl<V: Copy> Default for HashedIndex<V> {
    fn default() -> Self {
        Self::with_hash(fnv)
    }
}

impl<V: Copy> HashedIndex<V> {
    /// An index with another hash function (tests use a poor one to force collisions).
    pub fn with_hash(hash: fn(&str) -> u64) -> Self {
        HashedIndex {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            collided: HashMap::new(),
            len: 0,
            hash,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn shard(&self, hash: u64) -> usize {
        (hash >> 60) as usize % SHARDS
    }

    /// The value of `key`. `holds_key` says whether a value found under the key's hash
    /// really belongs to `key` (by reading the row it points to).
    pub fn get<E>(
        &self,
        key: &str,
        mut holds_key: impl FnMut(&V) -> Result<bool, E>,
    ) -> Result<Option<V>, E> {
        let hash = (self.hash)(key);
        if let Some(value) = self.shards[self.shard(hash)].get(&hash)
            && holds_key(value)?
        {
            return Ok(Some(*value));
        }
        Ok(self.collided.get(key).copied())
    }

    /// Sets the value of `key`. `holds_key` is asked, as in [`Self::get`], when another value
    /// is already under the same hash.
    pub fn insert<E>(
        &mut self,
        key: &str,
        value: V,
        mut holds_key: impl FnMut(&V) -> Result<bool, E>,
    ) -> Result<(), E> {
        let hash = (self.hash)(key);
        let shard = self.shard(hash);
        match self.shards[shard].get(&hash) {
            None => {
                self.shards[shard].insert(hash, value);
                self.len += 1;
            }
            Some(existing) if holds_key(existing)? => {
                self.shards[shard].insert(hash, value);
            }
            Some(_) => {
                if self.collided.insert(key.to_string(), value).is_none() {
                    self.len += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Keys are "k<n>"; values are n, so a value says which key it belongs to.
    fn holds(key: &str) -> impl FnMut(&u32) -> Result<bool, Infallible> + '_ {
        move |value| Ok(format!("k{value}") == key)
    }

    fn check(index: &mut HashedIndex<u32>, keys: u32) {
        for n in 0..keys {
            let key = format!("k{n}");
            index.insert(&key, n, holds(&key)).unwrap();
        }
        for n in 0..keys {
            let key = format!("k{n}");
            assert_eq!(index.get(&key, holds(&key)).unwrap(), Some(n), "{key}");
        }
        assert_eq!(index.get("absent", holds("absent")).unwrap(), None);
        assert_eq!(index.len(), keys as usize);
    }

    #[test]
    fn finds_every_key() {
        check(&mut HashedIndex::default(), 10_000);
    }

    #[test]
    fn colliding_keys_stay_apart() {
        // Every key hashes into one of four values.
        check(&mut HashedIndex::with_hash(|key| key.len() as u64 % 4), 200);
    }

    #[test]
    fn updating_a_key_keeps_one_entry() {
        let mut index = HashedIndex::with_hash(|_| 7);
        let keyed = |want: u32| move |value: &u32| Ok::<_, Infallible>(*value / 100 == want / 100);
        index.insert("a", 100, keyed(100)).unwrap();
        index.insert("b", 200, keyed(200)).unwrap();
        index.insert("a", 101, keyed(101)).unwrap();
        index.insert("b", 201, keyed(201)).unwrap();
        assert_eq!(index.get("a", keyed(100)).unwrap(), Some(101));
        assert_eq!(index.get("b", keyed(200)).unwrap(), Some(201));
        assert_eq!(index.len(), 2);
    }
}
