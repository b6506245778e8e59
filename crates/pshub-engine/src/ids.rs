//! Ids come from the store, in blocks: each process reserves a run of ids of a kind in one
//! small transaction and hands them out from memory. Two processes never get the same id,
//! and no id depends on what a process remembers. Blocks start small and double while a
//! process keeps using them, so a busy process reserves rarely and an idle one wastes little
//! when it stops (the rest of a block is never used).

use crate::error::Result;
use crate::store::{IdKind, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const FIRST_BLOCK: u32 = 64;
const LARGEST_BLOCK: u32 = 65_536;

#[derive(Debug, Clone, Copy)]
struct Block {
    next: i64,
    end: i64,
    size: u32,
}

pub struct Ids {
    store: Arc<dyn Store>,
    blocks: Mutex<HashMap<IdKind, Block>>,
}

impl Ids {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Ids {
            store,
            blocks: Mutex::new(HashMap::new()),
        }
    }

    /// A new id of `kind`, unique across every process of the store.
    pub fn next(&self, kind: IdKind) -> Result<i64> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        let block = blocks.entry(kind).or_insert(Block {
            next: 0,
            end: 0,
            size: FIRST_BLOCK / 2,
        });
        if block.next >= block.end {
            let size = (block.size * 2).min(LARGEST_BLOCK);
            let first = self.store.reserve_ids(kind, size)?;
            *block = Block {
                next: first,
                end: first + i64::from(size),
                size,
            };
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
