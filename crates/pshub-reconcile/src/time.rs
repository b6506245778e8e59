//! Approved time in a PSA against the time an ERP holds, entry by entry.
//!
//! Each export is read block by block ([`Export::read`]): its header maps the columns (in
//! any order, others ignored), every row is checked once (field count, an entry id, hours
//! and amount as exact decimals, a currency) and its seven fields are appended to the
//! export's arena; a row that cannot be read is kept as [`Unreadable`] with its line. Then
//! a table maps the hash of each entry id to the arena offset of its first row, the id
//! itself left in the arena; a later row with an id already seen is a duplicate.
//!
//! [`reconcile`] walks the PSA's rows in file order, in as many chunks as it is given
//! threads, finds each entry's ERP row by its id (32 rows at a time, so that their cache
//! misses overlap), and writes one row per field that differs; then the ERP rows no PSA row
//! matched, in ERP file order. Memory is the two arenas (the seven fields and a length byte
//! each, per row) and the two tables (8 bytes a slot, four slots for three rows).
//! Comparing allocates nothing: two rows whose fields are the same bytes are equal, and
//! numbers are parsed only when their text differs. Only differences are formatted.

use crate::decimal::{Dec, Exact};
use crate::rfc4180::{BOM, Field, Malformed, Record, Scanner};
use crate::table::{KeyHasher, RowTable};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::io;

/// The columns each export must have, in any order.
pub const COLUMNS: [&str; 7] = [
    "entry_id",
    "worker_id",
    "project_code",
    "date",
    "hours",
    "amount",
    "currency",
];
const ID: usize = 0;
const WORKER: usize = 1;
const PROJECT: usize = 2;
const DATE: usize = 3;
const HOURS: usize = 4;
const AMOUNT: usize = 5;
const CURRENCY: usize = 6;
/// A column of the export that the reconciliation does not read.
const IGNORED: u8 = u8::MAX;

/// The header of `differences.csv`. The last three columns name the field that differs.
pub const HEADER: &str = "kind,entry_id,side,psa_hours,erp_hours,psa_amount,erp_amount,\
psa_currency,erp_currency,amount,currency,field,psa_value,erp_value";

/// A kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Approved in the PSA, absent from the ERP: approved but not billed.
    MissingInErp,
    /// In the ERP, absent from the PSA: billed but not approved.
    MissingInPsa,
    HoursDiff,
    /// The same currency, other amounts; the amount is PSA minus ERP (positive: under-billed).
    AmountDiff,
    /// Other currencies; the amounts are then not compared.
    CurrencyDiff,
    /// The worker, the project or the date differs; one row per field.
    AttributeDiff,
    /// A second (third, ...) row of an entry id in one file; the first is compared.
    Duplicate,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::MissingInErp,
        Kind::MissingInPsa,
        Kind::HoursDiff,
        Kind::AmountDiff,
        Kind::CurrencyDiff,
        Kind::AttributeDiff,
        Kind::Duplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::MissingInErp => "missing_in_erp",
            Kind::MissingInPsa => "missing_in_psa",
            Kind::HoursDiff => "hours_diff",
            Kind::AmountDiff => "amount_diff",
            Kind::CurrencyDiff => "currency_diff",
            Kind::AttributeDiff => "attribute_diff",
            Kind::Duplicate => "duplicate",
        }
    }

    /// Whether its rows carry an amount (and its totals are kept per currency).
    pub fn carries_amount(self) -> bool {
        matches!(
            self,
            Kind::MissingInErp | Kind::MissingInPsa | Kind::AmountDiff | Kind::Duplicate
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A row that could not be read, and why; it takes no part in the reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The physical line it starts on (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// One export, read and indexed by entry id.
///
/// Only the seven columns the reconciliation reads are kept, in the `arena`: per row, each
/// field in the order of `COLUMNS`, as its length (one byte, or 255 and four bytes) and its
/// bytes, unquoted. The rows follow each other in file order; a row is its offset in the
/// arena (a row takes at least 11 bytes, so `offset / 8` numbers rows too).
pub struct Export {
    name: String,
    arena: Vec<u8>,
    rows: usize,
    /// The offset of every `CHECKPOINT`th row, where threads split the rows between them.
    checkpoints: Vec<u32>,
    /// The rows whose entry id an earlier row has, in file order.
    duplicates: Vec<u32>,
    /// The first row of each entry id.
    table: RowTable,
    hasher: KeyHasher,
    unreadable: Vec<Unreadable>,
}

/// A row's values, slices of the arena; hours and amount checked to be numbers.
#[derive(Debug)]
struct Entry<'a> {
    /// The row's fields after its entry id, as the arena holds them: rows whose `rest` is
    /// the same have no difference.
    rest: &'a [u8],
    id: &'a [u8],
    worker: &'a [u8],
    project: &'a [u8],
    date: &'a [u8],
    hours: &'a [u8],
    amount: &'a [u8],
    currency: &'a [u8],
}

/// How many rows apart the checkpoints are.
const CHECKPOINT: usize = 4096;

/// How many rows are looked up together: their hash slots, then their rows, are loaded
/// before any is used, so that the cache misses of a group overlap instead of following
/// one another (32 measured faster than 16).
const GROUP: usize = 32;

/// How much of a file is read at a time. A record longer than this doubles it.
const BLOCK: usize = 1 << 20;

impl Export {
    /// Reads an export: `name` is how messages name the file, `reader` its content, and
    /// `size_hint` its length if known (to reserve the arena once; 0 if unknown).
    pub fn read(name: impl Into<String>, reader: impl io::Read, size_hint: u64) -> Result<Export> {
        Export::read_in_blocks(name, reader, size_hint, BLOCK)
    }

    /// As [`Export::read`], `block` bytes at a time.
    fn read_in_blocks(
        name: impl Into<String>,
        reader: impl io::Read,
        size_hint: u64,
        block: usize,
    ) -> Result<Export> {
        let name = name.into();
        let mut export = Export {
            name,
            // The arena holds at most the file (a little more for fields of 255 bytes or
            // more), and never 4 GiB.
            arena: Vec::with_capacity(size_hint.min(u64::from(u32::MAX)) as usize),
            rows: 0,
            checkpoints: Vec::new(),
            duplicates: Vec::new(),
            table: RowTable::with_room_for(0),
            hasher: KeyHasher::new(),
            unreadable: Vec::new(),
        };
        export.load(reader, block)?;
        export.index();
        Ok(export)
    }

    /// An export already in memory.
    pub fn from_bytes(name: impl Into<String>, bytes: &[u8]) -> Result<Export> {
        Export::read(name, bytes, bytes.len() as u64)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many rows were read (duplicates included, unreadable rows not).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows that could not be read, in file order.
    pub fn unreadable(&self) -> &[Unreadable] {
        &self.unreadable
    }

    /// Reads the file block by block: the header, then each row checked and, when
    /// readable, appended to the arena. A record cut by the end of a block is read again
    /// from its start with the next block.
    fn load(&mut self, mut reader: impl io::Read, block: usize) -> Result<()> {
        // The first block holds the byte order mark whole, if there is one.
        let mut block = vec![0u8; block.max(BOM.len())];
        let mut filled = 0;
        let mut at_end = false;
        let mut first_block = true;
        let mut line = 1;
        let mut slots: Option<Vec<u8>> = None;
        loop {
            while !at_end && filled < block.len() {
                match reader.read(&mut block[filled..]) {
                    Ok(0) => at_end = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(Error::Read {
                            file: self.name.clone(),
                            source,
                        });
                    }
                }
            }
            let data = &block[..filled];
            let mut start = 0;
            if first_block {
                first_block = false;
                if data.starts_with(BOM) {
                    start = BOM.len();
                }
            }
            let mut scanner = Scanner::resume(data, start, line);
            let consumed = loop {
                let (record_start, record_line) = (scanner.position(), scanner.line());
                match &slots {
                    None => {
                        let Some((record, names)) = scanner.next_fields() else {
                            break scanner.position();
                        };
                        if !record.terminated && !at_end {
                            line = record_line;
                            break record_start;
                        }
                        slots = Some(header(&self.name, record, &names)?);
                    }
                    Some(slots) => {
                        let Some((record, read)) = next(&mut scanner, slots) else {
                            break scanner.position();
                        };
                        if !record.terminated && !at_end {
                            line = record_line;
                            break record_start;
                        }
                        self.keep(record, read)?;
                    }
                }
                line = scanner.line();
            };
            if at_end {
                break;
            }
            block.copy_within(consumed..filled, 0);
            filled -= consumed;
            if filled == block.len() {
                // One record longer than the block: a larger block.
                block.resize(block.len() * 2, 0);
            }
        }
        if slots.is_none() {
            return Err(Error::NoHeader {
                file: self.name.clone(),
            });
        }
        Ok(())
    }

    /// A row read: into the arena, or among the unreadable.
    fn keep(&mut self, record: Record, read: Read<'_>) -> Result<()> {
        let fields = match read {
            Read::Blank => return Ok(()),
            Read::Unreadable(reason) => {
                self.unreadable.push(Unreadable {
                    line: record.line,
                    reason,
                });
                return Ok(());
            }
            Read::Entry(fields) => fields,
        };
        // Every offset, a row's start or end, is below u32::MAX (checked after each row).
        let offset = self.arena.len() as u32;
        if self.rows.is_multiple_of(CHECKPOINT) {
            self.checkpoints.push(offset);
        }
        self.rows += 1;
        let too_large = || Error::TooLarge {
            file: self.name.clone(),
        };
        for field in &fields {
            match u8::try_from(field.len()) {
                Ok(len) if len < u8::MAX => self.arena.push(len),
                _ => {
                    let len = u32::try_from(field.len()).map_err(|_| too_large())?;
                    self.arena.push(u8::MAX);
                    self.arena.extend_from_slice(&len.to_le_bytes());
                }
            }
            self.arena.extend_from_slice(field);
        }
        if self.arena.len() >= u32::MAX as usize {
            return Err(too_large());
        }
        Ok(())
    }

    /// The table of first rows by entry id, and the duplicates. The rows go in by groups:
    /// their slots are loaded first, all together.
    fn index(&mut self) {
        let arena = &self.arena;
        let mut table = RowTable::with_room_for(self.rows);
        let mut duplicates = Vec::new();
        let mut at = 0;
        while at < arena.len() {
            let mut group = [(0u32, &[][..], 0u64); GROUP];
            let mut len = 0;
            while len < GROUP && at < arena.len() {
                let id = field_at(arena, at).0;
                group[len] = (at as u32, id, self.hasher.hash(id));
                len += 1;
                at = row_end(arena, at);
            }
            std::hint::black_box(group[..len].iter().fold(0, |a, g| a ^ table.home(g.2)));
            for &(row, id, hash) in &group[..len] {
                let first = table.find_or_insert(hash, row, |earlier| {
                    field_at(arena, earlier as usize).0 == id
                });
                if first.is_some() {
                    duplicates.push(row);
                }
            }
        }
        self.table = table;
        self.duplicates = duplicates;
    }

    /// The row at `at` and the offset of the next.
    fn entry(&self, at: u32) -> (Entry<'_>, u32) {
        let (id, rest_start) = field_at(&self.arena, at as usize);
        let mut at = rest_start;
        let mut fields = [&[][..]; COLUMNS.len() - 1];
        for field in &mut fields {
            (*field, at) = field_at(&self.arena, at);
        }
        let [worker, project, date, hours, amount, currency] = fields;
        let entry = Entry {
            rest: &self.arena[rest_start..at],
            id,
            worker,
            project,
            date,
            hours,
            amount,
            currency,
        };
        (entry, at as u32)
    }

    /// The first row of an entry id whose hash is `hash` (of this export's hasher).
    fn find(&self, id: &[u8], hash: u64) -> Option<u32> {
        self.table
            .find(hash, |row| field_at(&self.arena, row as usize).0 == id)
    }
}

/// The offset after the row at `at`.
#[inline]
fn row_end(arena: &[u8], mut at: usize) -> usize {
    for _ in 0..COLUMNS.len() {
        at = field_at(arena, at).1;
    }
    at
}

/// The field at `at` in the arena, and the offset after it.
#[inline]
fn field_at(arena: &[u8], at: usize) -> (&[u8], usize) {
    let (len, at) = match arena[at] {
        u8::MAX => {
            let mut len = [0; 4];
            len.copy_from_slice(&arena[at + 1..at + 5]);
            (u32::from_le_bytes(len) as usize, at + 5)
        }
        len => (len as usize, at + 1),
    };
    (&arena[at..at + len], at + len)
}

/// The header's columns: for each, the index in `COLUMNS` it holds, or `IGNORED`.
fn header(name: &str, record: Record, names: &[Field<'_>]) -> Result<Vec<u8>> {
    if record.blank {
        return Err(Error::NoHeader {
            file: name.to_string(),
        });
    }
    if let Some(malformed) = record.malformed {
        return Err(Error::MalformedHeader {
            file: name.to_string(),
            reason: malformed_reason(malformed),
        });
    }
    let mut slots = vec![IGNORED; names.len()];
    let mut seen = [false; COLUMNS.len()];
    for (column, text) in names.iter().enumerate() {
        let text = text.trim_ascii();
        let Some(slot) = COLUMNS.iter().position(|c| c.as_bytes() == text) else {
            continue;
        };
        if seen[slot] {
            return Err(Error::DuplicateColumn {
                file: name.to_string(),
                column: COLUMNS[slot],
            });
        }
        seen[slot] = true;
        slots[column] = slot as u8;
    }
    if let Some(missing) = seen.iter().position(|seen| !seen) {
        return Err(Error::MissingColumn {
            file: name.to_string(),
            column: COLUMNS[missing],
        });
    }
    Ok(slots)
}

enum Read<'a> {
    Blank,
    Unreadable(String),
    /// The fields in the order of `COLUMNS`, checked.
    Entry([Field<'a>; COLUMNS.len()]),
}

/// The next record, read as an entry.
#[inline]
fn next<'a>(scanner: &mut Scanner<'a>, slots: &[u8]) -> Option<(Record, Read<'a>)> {
    let mut fields: [Field<'a>; COLUMNS.len()] = Default::default();
    let record = scanner.next_with(|column, field| {
        if let Some(&slot) = slots.get(column)
            && slot != IGNORED
        {
            fields[slot as usize] = field;
        }
    })?;
    if record.blank {
        return Some((record, Read::Blank));
    }
    if let Some(malformed) = record.malformed {
        return Some((record, Read::Unreadable(malformed_reason(malformed))));
    }
    if record.fields != slots.len() {
        let reason = format!(
            "{} fields where the header has {}",
            record.fields,
            slots.len()
        );
        return Some((record, Read::Unreadable(reason)));
    }
    Some((record, check(fields)))
}

/// A row is readable with an entry id, hours and an amount that are numbers, and a currency.
fn check(fields: [Field<'_>; COLUMNS.len()]) -> Read<'_> {
    if fields[ID].is_empty() {
        return Read::Unreadable("entry_id is empty".to_string());
    }
    for column in [HOURS, AMOUNT] {
        let text = &fields[column];
        let problem = if text.is_empty() {
            Some("is empty".to_string())
        } else {
            Dec::parse(text)
                .err()
                .map(|e| format!("'{}' {e}", shown(text)))
        };
        if let Some(problem) = problem {
            return Read::Unreadable(format!("{} {problem}", COLUMNS[column]));
        }
    }
    if fields[CURRENCY].is_empty() {
        return Read::Unreadable("currency is empty".to_string());
    }
    Read::Entry(fields)
}

/// A field as a message shows it: lossy UTF-8, at most 40 characters.
fn shown(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.into_owned(),
    }
}

fn malformed_reason(malformed: Malformed) -> String {
    match malformed {
        Malformed::UnterminatedQuote => {
            "a quoted field is not closed before the end of the file".to_string()
        }
        Malformed::TextAfterQuote { field } => {
            format!("text after the closing quote of field {}", field + 1)
        }
    }
}

/// The differences between two exports, as `differences.csv` rows and totals.
pub struct Report {
    /// The rows, in parts to be written one after the other (after [`HEADER`]).
    parts: Vec<Vec<u8>>,
    tally: Tally,
    psa_rows: usize,
    erp_rows: usize,
}

impl Report {
    /// How many rows of a kind.
    pub fn count(&self, kind: Kind) -> u64 {
        self.tally.counts[kind as usize]
    }

    /// How many rows in all.
    pub fn differences(&self) -> u64 {
        self.tally.counts.iter().sum()
    }

    /// The amounts of a kind added up per currency (empty for kinds without an amount).
    pub fn amounts(&self, kind: Kind) -> &BTreeMap<Vec<u8>, Exact> {
        &self.tally.sums[kind as usize]
    }

    pub fn psa_rows(&self) -> usize {
        self.psa_rows
    }

    pub fn erp_rows(&self) -> usize {
        self.erp_rows
    }

    /// Writes `differences.csv`: the header, then one row per difference.
    pub fn write_csv(&self, mut out: impl io::Write) -> io::Result<()> {
        out.write_all(HEADER.as_bytes())?;
        out.write_all(b"\n")?;
        for part in &self.parts {
            out.write_all(part)?;
        }
        out.flush()
    }
}

/// Counts and amounts per kind (amounts per currency).
#[derive(Default)]
struct Tally {
    counts: [u64; Kind::ALL.len()],
    sums: [BTreeMap<Vec<u8>, Exact>; Kind::ALL.len()],
}

impl Tally {
    fn add(&mut self, kind: Kind, amount: Option<(Exact, &[u8])>) -> Result<()> {
        self.counts[kind as usize] += 1;
        let Some((amount, currency)) = amount else {
            return Ok(());
        };
        let sums = &mut self.sums[kind as usize];
        let sum = match sums.get_mut(currency) {
            Some(sum) => sum,
            None => sums.entry(currency.to_vec()).or_insert(Exact::ZERO),
        };
        *sum = sum
            .checked_add(amount)
            .ok_or_else(|| overflow(kind, currency))?;
        Ok(())
    }

    fn merge(&mut self, other: Tally) -> Result<()> {
        for (kind, count) in Kind::ALL.iter().zip(other.counts) {
            self.counts[*kind as usize] += count;
        }
        for (kind, sums) in Kind::ALL.iter().zip(other.sums) {
            for (currency, amount) in sums {
                let sum = self.sums[*kind as usize]
                    .entry(currency.clone())
                    .or_insert(Exact::ZERO);
                *sum = sum
                    .checked_add(amount)
                    .ok_or_else(|| overflow(*kind, &currency))?;
            }
        }
        Ok(())
    }
}

fn overflow(kind: Kind, currency: &[u8]) -> Error {
    Error::Overflow {
        kind,
        currency: shown(currency),
    }
}

/// Reconciles the PSA's export against the ERP's, on up to `threads` threads; the result
/// is the same for any number of threads.
pub fn reconcile(psa: &Export, erp: &Export, threads: usize) -> Result<Report> {
    // A bit per ERP row (by offset / 8), set when a PSA row matched it: each thread sets
    // its own (an atomic operation per row would wait for its cache line), then they are
    // merged.
    let words = (erp.arena.len() / 8).div_ceil(64) + 1;
    let psa_parts = on_threads(psa, threads, |from, to| {
        compare_rows(psa, erp, from, to, words)
    });
    let mut parts = Vec::new();
    let mut tally = Tally::default();
    let mut matched = vec![0u64; words];
    for part in psa_parts {
        let part = part?;
        parts.push(part.csv);
        tally.merge(part.tally)?;
        for (word, theirs) in matched.iter_mut().zip(part.matched) {
            *word |= theirs;
        }
    }
    // Then the ERP's rows, split the same way.
    let matched = &matched;
    let erp_parts = on_threads(erp, threads, |from, to| {
        erp_only(psa, erp, from, to, matched)
    });
    for part in erp_parts {
        let (csv, erp_tally) = part?;
        parts.push(csv);
        tally.merge(erp_tally)?;
    }
    Ok(Report {
        parts,
        tally,
        psa_rows: psa.rows,
        erp_rows: erp.rows,
    })
}

/// `work(from, to)` on up to `threads` threads, each given the rows of `export` between two
/// checkpoints (arena offsets); the answers in the order of the rows.
fn on_threads<T: Send>(
    export: &Export,
    threads: usize,
    work: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let checkpoints = &export.checkpoints;
    let chunks = threads.clamp(1, checkpoints.len().max(1));
    let at = |chunk: usize| match checkpoints.get(checkpoints.len() * chunk / chunks) {
        Some(&offset) if chunk < chunks => offset as usize,
        _ => export.arena.len(),
    };
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..chunks)
            .map(|chunk| {
                let (from, to) = (at(chunk), at(chunk + 1));
                scope.spawn(move || work(from, to))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a reconciliation thread panicked"))
            .collect()
    })
}

fn is_marked(bits: &[u64], row: u32) -> bool {
    let bit = row as usize / 8;
    bits[bit / 64] & (1 << (bit % 64)) != 0
}

fn mark(bits: &mut [u64], row: u32) {
    let bit = row as usize / 8;
    bits[bit / 64] |= 1 << (bit % 64);
}

/// What one thread found in its share of the PSA's rows.
struct Part {
    csv: Vec<u8>,
    tally: Tally,
    /// The ERP rows its rows matched.
    matched: Vec<u64>,
}

/// The PSA's rows from offset `from` to `to`: duplicates, entries the ERP lacks, and the
/// differences of the others; marks the ERP rows they matched. By groups: the group's ERP
/// slots are loaded, then the ERP rows they point to, then each row is compared.
fn compare_rows(psa: &Export, erp: &Export, from: usize, to: usize, words: usize) -> Result<Part> {
    let mut out = Out::default();
    let mut matched = vec![0u64; words];
    let first_duplicate = psa.duplicates.partition_point(|&d| (d as usize) < from);
    let mut duplicates = psa.duplicates[first_duplicate..].iter().peekable();
    let mut at = from as u32;
    while (at as usize) < to {
        let mut group: [Option<(u32, Entry<'_>, u64)>; GROUP] = Default::default();
        let mut len = 0;
        while len < GROUP && (at as usize) < to {
            let (entry, next) = psa.entry(at);
            let hash = erp.hasher.hash(entry.id);
            group[len] = Some((at, entry, hash));
            len += 1;
            at = next;
        }
        let mut slots = [0u64; GROUP];
        for (slot, member) in slots.iter_mut().zip(&group[..len]) {
            *slot = member
                .as_ref()
                .map_or(0, |(_, _, hash)| erp.table.home(*hash));
        }
        // A row may end in the next cache line: both are loaded.
        let last = erp.arena.len().saturating_sub(1);
        let touched = slots[..len]
            .iter()
            .filter_map(|&slot| RowTable::row_of(slot))
            .fold(0u8, |a, row| {
                let row = row as usize;
                a ^ erp.arena[row] ^ erp.arena[(row + 63).min(last)]
            });
        std::hint::black_box(touched);
        for (row, entry, hash) in group.into_iter().flatten() {
            if duplicates.next_if_eq(&&row).is_some() {
                let erp_row = erp.find(entry.id, hash).map(|row| erp.entry(row).0);
                out.duplicate(Side::Psa, &entry, erp_row.as_ref())?;
                continue;
            }
            match erp.find(entry.id, hash) {
                Some(erp_row) => {
                    mark(&mut matched, erp_row);
                    out.compare(&entry, &erp.entry(erp_row).0)?;
                }
                None => out.missing(Kind::MissingInErp, Side::Psa, &entry)?,
            }
        }
    }
    Ok(Part {
        csv: out.csv,
        tally: out.tally,
        matched,
    })
}

/// The ERP's rows from offset `from` to `to`: its duplicates and the rows no PSA row
/// matched, in ERP file order.
fn erp_only(
    psa: &Export,
    erp: &Export,
    from: usize,
    to: usize,
    matched: &[u64],
) -> Result<(Vec<u8>, Tally)> {
    let mut out = Out::default();
    let first_duplicate = erp.duplicates.partition_point(|&d| (d as usize) < from);
    let mut duplicates = erp.duplicates[first_duplicate..].iter().peekable();
    let mut at = from as u32;
    while (at as usize) < to {
        let (entry, next) = erp.entry(at);
        if duplicates.next_if_eq(&&at).is_some() {
            let psa_row = psa
                .find(entry.id, psa.hasher.hash(entry.id))
                .map(|row| psa.entry(row).0);
            out.duplicate(Side::Erp, &entry, psa_row.as_ref())?;
        } else if !is_marked(matched, at) {
            out.missing(Kind::MissingInPsa, Side::Erp, &entry)?;
        }
        at = next;
    }
    Ok((out.csv, out.tally))
}

#[derive(Clone, Copy)]
enum Side {
    Psa,
    Erp,
    Both,
}

impl Side {
    fn name(self) -> &'static [u8] {
        match self {
            Side::Psa => b"psa",
            Side::Erp => b"erp",
            Side::Both => b"both",
        }
    }
}

/// The value of a field that differs, as the last two columns show it.
enum Value<'a> {
    Text(&'a [u8]),
    Number(&'a [u8]),
}

/// A number of a row in the arena (checked when the row was read).
fn number(text: &[u8]) -> Dec<'_> {
    Dec::parse(text).unwrap_or_else(|e| unreachable!("a number checked when read {e}"))
}

/// Two numbers of rows are equal: as text (most often), else as decimals (7.5 and 7.50).
fn same_number(a: &[u8], b: &[u8]) -> bool {
    a == b || number(a).same_value(&number(b))
}

/// Differences written and counted.
#[derive(Default)]
struct Out {
    csv: Vec<u8>,
    tally: Tally,
}

impl Out {
    /// An entry that only one side has (`missing_*`).
    fn missing(&mut self, kind: Kind, side: Side, entry: &Entry<'_>) -> Result<()> {
        self.one_side(kind, side, entry, None)
    }

    /// A second (third, ...) row of an id on `side`; `other` is the other file's row of the
    /// entry, if it has one.
    fn duplicate(
        &mut self,
        side: Side,
        entry: &Entry<'_>,
        other: Option<&Entry<'_>>,
    ) -> Result<()> {
        self.one_side(Kind::Duplicate, side, entry, other)
    }

    /// A row whose amount and currency are those of `entry`, on `side`.
    fn one_side(
        &mut self,
        kind: Kind,
        side: Side,
        entry: &Entry<'_>,
        other: Option<&Entry<'_>>,
    ) -> Result<()> {
        let (psa, erp) = match side {
            Side::Erp => (other, Some(entry)),
            _ => (Some(entry), other),
        };
        let amount = number(entry.amount).exact();
        self.row(
            kind,
            side,
            entry.id,
            psa,
            erp,
            Some((amount, entry.currency)),
            None,
        )
    }

    /// Both sides have the entry: a row per field that differs.
    fn compare(&mut self, psa: &Entry<'_>, erp: &Entry<'_>) -> Result<()> {
        if psa.rest == erp.rest {
            return Ok(());
        }
        let both = (Some(psa), Some(erp));
        let id = psa.id;
        if !same_number(psa.hours, erp.hours) {
            let field = (
                COLUMNS[HOURS],
                Value::Number(psa.hours),
                Value::Number(erp.hours),
            );
            self.row(
                Kind::HoursDiff,
                Side::Both,
                id,
                both.0,
                both.1,
                None,
                Some(field),
            )?;
        }
        if psa.currency != erp.currency {
            let field = (
                COLUMNS[CURRENCY],
                Value::Text(psa.currency),
                Value::Text(erp.currency),
            );
            self.row(
                Kind::CurrencyDiff,
                Side::Both,
                id,
                both.0,
                both.1,
                None,
                Some(field),
            )?;
        } else if !same_number(psa.amount, erp.amount) {
            let difference = number(psa.amount)
                .exact()
                .checked_sub(number(erp.amount).exact())
                .ok_or_else(|| overflow(Kind::AmountDiff, psa.currency))?;
            let field = (
                COLUMNS[AMOUNT],
                Value::Number(psa.amount),
                Value::Number(erp.amount),
            );
            let amount = Some((difference, psa.currency));
            self.row(
                Kind::AmountDiff,
                Side::Both,
                id,
                both.0,
                both.1,
                amount,
                Some(field),
            )?;
        }
        for (name, a, b) in [
            (COLUMNS[WORKER], psa.worker, erp.worker),
            (COLUMNS[PROJECT], psa.project, erp.project),
            (COLUMNS[DATE], psa.date, erp.date),
        ] {
            if a != b {
                let field = (name, Value::Text(a), Value::Text(b));
                self.row(
                    Kind::AttributeDiff,
                    Side::Both,
                    id,
                    both.0,
                    both.1,
                    None,
                    Some(field),
                )?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        kind: Kind,
        side: Side,
        id: &[u8],
        psa: Option<&Entry<'_>>,
        erp: Option<&Entry<'_>>,
        amount: Option<(Exact, &[u8])>,
        field: Option<(&str, Value<'_>, Value<'_>)>,
    ) -> Result<()> {
        self.tally.add(kind, amount)?;
        let out = &mut self.csv;
        out.extend_from_slice(kind.name().as_bytes());
        out.push(b',');
        text(out, id);
        out.push(b',');
        out.extend_from_slice(side.name());
        for value in [
            psa.map(|e| e.hours),
            erp.map(|e| e.hours),
            psa.map(|e| e.amount),
            erp.map(|e| e.amount),
        ] {
            out.push(b',');
            if let Some(value) = value {
                number(value).write_to(out);
            }
        }
        for currency in [psa.map(|e| e.currency), erp.map(|e| e.currency)] {
            out.push(b',');
            if let Some(currency) = currency {
                text(out, currency);
            }
        }
        out.push(b',');
        if let Some((amount, currency)) = amount {
            out.extend_from_slice(amount.to_string().as_bytes());
            out.push(b',');
            text(out, currency);
        } else {
            out.push(b',');
        }
        out.push(b',');
        if let Some((name, a, b)) = field {
            out.extend_from_slice(name.as_bytes());
            for value in [a, b] {
                out.push(b',');
                match value {
                    Value::Text(value) => text(out, value),
                    Value::Number(value) => number(value).write_to(out),
                }
            }
        } else {
            out.extend_from_slice(b",,");
        }
        out.push(b'\n');
        Ok(())
    }
}

/// A field as RFC 4180 writes it: quoted, with its quotes doubled, when it must be.
fn text(out: &mut Vec<u8>, value: &[u8]) {
    if !value
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_ROW: &str = "entry_id,worker_id,project_code,date,hours,amount,currency\n";

    fn export(name: &str, text: &str) -> Export {
        Export::from_bytes(name, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The rows of differences.csv (without its header) and the report.
    fn reconciled(psa: &str, erp: &str, threads: usize) -> (Vec<String>, Report) {
        let report = reconcile(&export("psa.csv", psa), &export("erp.csv", erp), threads).unwrap();
        let mut csv = Vec::new();
        report.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(HEADER));
        (lines.map(str::to_string).collect(), report)
    }

    /// Both files get the contract's header; `expected` are whole rows of differences.csv.
    fn check(psa: &str, erp: &str, expected: &[&str]) {
        let (rows, _) = reconciled(
            &format!("{HEADER_ROW}{psa}"),
            &format!("{HEADER_ROW}{erp}"),
            1,
        );
        assert_eq!(rows, expected, "psa:\n{psa}\nerp:\n{erp}");
    }

    #[test]
    fn equal_entries_give_no_difference() {
        check(
            "E1,W1,P1,2026-03-02,7.5,750.00,EUR\n",
            "E1,W1,P1,2026-03-02,7.50,750,EUR\n",
            &[],
        );
    }

    #[test]
    fn every_kind_of_difference() {
        check(
            "E1,W1,P1,2026-03-02,7.5,750.00,EUR\n",
            "",
            &["missing_in_erp,E1,psa,7.5,,750.00,,EUR,,750.00,EUR,,,"],
        );
        check(
            "",
            "E2,W1,P1,2026-03-02,1,100,USD\n",
            &["missing_in_psa,E2,erp,,1,,100,,USD,100,USD,,,"],
        );
        check(
            "E1,W1,P1,2026-03-02,7.5,750,EUR\n",
            "E1,W1,P1,2026-03-02,7.51,750,EUR\n",
            &["hours_diff,E1,both,7.5,7.51,750,750,EUR,EUR,,,hours,7.5,7.51"],
        );
        check(
            "E1,W1,P1,2026-03-02,7.5,750.00,EUR\n",
            "E1,W1,P1,2026-03-02,7.5,740.5,EUR\n",
            &["amount_diff,E1,both,7.5,7.5,750.00,740.5,EUR,EUR,9.50,EUR,amount,750.00,740.5"],
        );
        check(
            "E1,W1,P1,2026-03-02,7.5,700,EUR\n",
            "E1,W1,P1,2026-03-02,7.5,750,EUR\n",
            &["amount_diff,E1,both,7.5,7.5,700,750,EUR,EUR,-50,EUR,amount,700,750"],
        );
        // Other currencies: the amounts are not compared, the hours still are.
        check(
            "E1,W1,P1,2026-03-02,8,750,EUR\n",
            "E1,W1,P1,2026-03-02,7,810,USD\n",
            &[
                "hours_diff,E1,both,8,7,750,810,EUR,USD,,,hours,8,7",
                "currency_diff,E1,both,8,7,750,810,EUR,USD,,,currency,EUR,USD",
            ],
        );
        check(
            "E1,W1,P1,2026-03-02,8,750,EUR\n",
            "E1,W2,P9,2026-03-03,8,750,EUR\n",
            &[
                "attribute_diff,E1,both,8,8,750,750,EUR,EUR,,,worker_id,W1,W2",
                "attribute_diff,E1,both,8,8,750,750,EUR,EUR,,,project_code,P1,P9",
                "attribute_diff,E1,both,8,8,750,750,EUR,EUR,,,date,2026-03-02,2026-03-03",
            ],
        );
    }

    #[test]
    fn numbers_are_compared_as_exact_decimals() {
        for (a, b, differ) in [
            ("7.5", "7.50", false),
            ("7.5", "7.51", true),
            ("+7.5", "007.500", false),
            ("0.1", "0.10000000000000001", true),
            ("-0", "0", false),
            ("100", "100.000", false),
            ("99999999999999999.99", "99999999999999999.98", true),
        ] {
            let (rows, report) = reconciled(
                &format!("{HEADER_ROW}E1,W,P,D,{a},{a},EUR\n"),
                &format!("{HEADER_ROW}E1,W,P,D,{b},{b},EUR\n"),
                1,
            );
            let n = u64::from(differ);
            assert_eq!(
                (
                    report.count(Kind::HoursDiff),
                    report.count(Kind::AmountDiff)
                ),
                (n, n),
                "{a} vs {b}: {rows:?}"
            );
        }
        let (rows, _) = reconciled(
            &format!("{HEADER_ROW}E1,W,P,D,1,0.1,EUR\n"),
            &format!("{HEADER_ROW}E1,W,P,D,1,0.10000000000000001,EUR\n"),
            1,
        );
        assert!(rows[0].contains(",-0.00000000000000001,EUR,"), "{rows:?}");
    }

    #[test]
    fn fields_of_any_length_are_kept_whole() {
        for len in [254, 255, 256, 70_000] {
            let long = "w".repeat(len);
            let other = format!("{long}x");
            check(
                &format!("E1,{long},P,D,1,1,EUR\nE2,{long},P,D,1,1,EUR\n"),
                &format!("E1,{long},P,D,1,1,EUR\nE2,{other},P,D,1,1,EUR\n"),
                &[&format!(
                    "attribute_diff,E2,both,1,1,1,1,EUR,EUR,,,worker_id,{long},{other}"
                )],
            );
        }
    }

    #[test]
    fn columns_may_come_in_any_order_with_others_between() {
        let psa = "currency,note,amount,entry_id,hours,date,project_code,worker_id\n\
                   EUR,x,750,E1,7.5,2026-03-02,P1,W1\n";
        let erp = "hours,entry_id,worker_id,extra,project_code,currency,date,amount\n\
                   7.5,E1,W1,y,P2,EUR,2026-03-02,750.0\n";
        let (rows, report) = reconciled(psa, erp, 1);
        assert_eq!(
            rows,
            ["attribute_diff,E1,both,7.5,7.5,750,750.0,EUR,EUR,,,project_code,P1,P2"]
        );
        assert_eq!(report.differences(), 1);
    }

    #[test]
    fn quoting_crlf_and_a_byte_order_mark_are_read() {
        let psa = format!(
            "{HEADER_ROW}\"E,1\",\"W \"\"the\"\" 1\",\"P\n1\",2026-03-02,7.5,750,EUR\nE2,W,P,D,1,1,EUR\n"
        );
        let erp = "\u{feff}entry_id,worker_id,project_code,date,hours,amount,currency\r\n\
                   \"E,1\",\"W \"\"the\"\" 1\",\"P\n1\",2026-03-02,\"7.50\",750,EUR\r\n\
                   E2,W,P,D,1,1,GBP\r\n";
        let (rows, _) = reconciled(&psa, erp, 1);
        // The entry with a comma, quotes and a line break in it matches; E2's currency
        // differs, and is written without the CR.
        assert_eq!(
            rows,
            ["currency_diff,E2,both,1,1,1,1,EUR,GBP,,,currency,EUR,GBP"]
        );
        // Ids and values that need quoting are quoted in the output.
        let (rows, _) = reconciled(&psa, HEADER_ROW, 1);
        assert_eq!(
            rows[0],
            "missing_in_erp,\"E,1\",psa,7.5,,750,,EUR,,750,EUR,,,"
        );
        let (rows, _) = reconciled(
            &psa,
            &format!("{HEADER_ROW}\"E,1\",\"W \"\"the\"\" 2\",\"P\n1\",2026-03-02,7.5,750,EUR\n"),
            1,
        );
        assert_eq!(
            rows[0],
            "attribute_diff,\"E,1\",both,7.5,7.5,750,750,EUR,EUR,,,worker_id,\"W \"\"the\"\" 1\",\"W \"\"the\"\" 2\""
        );
    }

    #[test]
    fn an_id_k_times_in_one_file_gives_k_minus_one_duplicates_and_the_first_is_compared() {
        let psa = "E1,W,P,D,1,10,EUR\nE1,W,P,D,2,20,EUR\nE1,W,P,D,3,30,USD\nE2,W,P,D,1,5,EUR\n";
        let erp = "E1,W,P,D,1,10,EUR\nE2,W,P,D,1,5,EUR\nE2,W,P,D,1,7,EUR\nE3,W,P,D,1,1,EUR\nE3,W,P,D,1,1,EUR\n";
        check(
            psa,
            erp,
            &[
                // A duplicate shows its own values on its side, and the other file's row
                // of the entry, when there is one, on the other.
                "duplicate,E1,psa,2,1,20,10,EUR,EUR,20,EUR,,,",
                "duplicate,E1,psa,3,1,30,10,USD,EUR,30,USD,,,",
                "duplicate,E2,erp,1,1,5,7,EUR,EUR,7,EUR,,,",
                "missing_in_psa,E3,erp,,1,,1,,EUR,1,EUR,,,",
                "duplicate,E3,erp,,1,,1,,EUR,1,EUR,,,",
            ],
        );
    }

    #[test]
    fn amounts_are_added_per_kind_and_currency() {
        let psa = format!(
            "{HEADER_ROW}A,W,P,D,1,10.50,EUR\nB,W,P,D,1,0.25,EUR\nC,W,P,D,1,1000,JPY\nD,W,P,D,1,100,USD\nE,W,P,D,1,3,EUR\nE,W,P,D,1,4,EUR\n"
        );
        let erp = format!("{HEADER_ROW}D,W,P,D,1,80.5,USD\nE,W,P,D,1,3,EUR\nF,W,P,D,1,2,GBP\n");
        let (_, report) = reconciled(&psa, &erp, 1);
        let amounts = |kind| {
            report
                .amounts(kind)
                .iter()
                .map(|(c, a)| (String::from_utf8(c.clone()).unwrap(), a.to_string()))
                .collect::<Vec<_>>()
        };
        let pair = |c: &str, a: &str| (c.to_string(), a.to_string());
        assert_eq!(
            amounts(Kind::MissingInErp),
            [pair("EUR", "10.75"), pair("JPY", "1000")]
        );
        assert_eq!(amounts(Kind::MissingInPsa), [pair("GBP", "2")]);
        assert_eq!(amounts(Kind::AmountDiff), [pair("USD", "19.5")]);
        assert_eq!(amounts(Kind::Duplicate), [pair("EUR", "4")]);
        assert!(amounts(Kind::HoursDiff).is_empty());
        assert_eq!(report.count(Kind::MissingInErp), 3);
    }

    #[test]
    fn unreadable_rows_are_named_by_line_and_skipped() {
        let psa = format!(
            "{HEADER_ROW}E1,W,\"P\nwith a break\",D,1,1,EUR\n\
             E2,W,P,D,1e2,1,EUR\n\
             E3,W,P,D,1\n\
             ,W,P,D,1,1,EUR\n\
             E4,W,P,D,1,,EUR\n\
             E5,W,P,D,1,1,\n\
             \n\
             E6,W,P,D, 1,1,EUR\n\
             E7,W,P,D,1,\"1\"x,EUR\n\
             E8,W,P,D,1,1,EUR\n"
        );
        let psa = export("psa.csv", &psa);
        let found: Vec<(u64, &str)> = psa
            .unreadable()
            .iter()
            .map(|u| (u.line, u.reason.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (4, "hours '1e2' is not a decimal number"),
                (5, "5 fields where the header has 7"),
                (6, "entry_id is empty"),
                (7, "amount is empty"),
                (8, "currency is empty"),
                (10, "hours ' 1' is not a decimal number"),
                (11, "text after the closing quote of field 6"),
            ]
        );
        assert_eq!(psa.rows(), 2, "E1 and E8");
        let erp = export(
            "erp.csv",
            &format!("{HEADER_ROW}E1,W,\"P\nwith a break\",D,1,1,EUR\n"),
        );
        let report = reconcile(&psa, &erp, 1).unwrap();
        assert_eq!(
            report.count(Kind::MissingInErp),
            1,
            "E8; the unreadable rows are not"
        );
        // A quoted field left open takes the rest of the file, and is reported where it starts.
        let open = export(
            "open.csv",
            &format!("{HEADER_ROW}E1,W,P,D,1,1,EUR\nE2,\"W\nE3,W,P,D,1,1,EUR\n"),
        );
        assert_eq!(open.rows(), 1);
        assert_eq!(
            open.unreadable(),
            [Unreadable {
                line: 3,
                reason: "a quoted field is not closed before the end of the file".into()
            }]
        );
    }

    #[test]
    fn a_file_without_the_columns_is_refused_naming_the_column_and_the_file() {
        let error = |text: &str| {
            Export::from_bytes("x.csv", text.as_bytes())
                .err()
                .unwrap()
                .to_string()
        };
        assert!(
            error("entry_id,worker_id,project_code,date,amount,currency\nE1,W,P,D,1,EUR\n")
                .starts_with("x.csv: the header has no column 'hours'"),
        );
        assert!(error("").starts_with("x.csv: there is no header row"));
        assert!(error("\nentry_id\n").starts_with("x.csv: there is no header row"));
        assert!(
            error("entry_id,entry_id,worker_id,project_code,date,hours,amount,currency\n")
                .starts_with("x.csv: the header names the column 'entry_id' twice")
        );
        // A header alone is a file without rows.
        assert_eq!(export("h.csv", HEADER_ROW).rows(), 0);
        assert_eq!(export("h.csv", HEADER_ROW.trim_end()).rows(), 0);
    }

    /// A file of `n` rows, with every kind of difference against `erp_of`'s.
    fn generated(n: usize) -> (String, String) {
        let mut psa = String::from(HEADER_ROW);
        let mut erp =
            String::from("currency,amount,hours,date,project_code,worker_id,entry_id\r\n");
        for i in 0..n {
            let hours = format!("{}.{}", i % 9 + 1, i % 4 * 25);
            psa.push_str(&format!(
                "E{i},W{},P{},2026-03-{:02},{hours},{i}.00,EUR\n",
                i % 7,
                i % 5,
                i % 28 + 1
            ));
            if i % 101 == 0 {
                continue; // missing in the ERP
            }
            let currency = if i % 103 == 0 { "USD" } else { "EUR" };
            let amount = if i % 107 == 0 {
                format!("{}", i + 1)
            } else {
                format!("{i}")
            };
            let hours = if i % 109 == 0 {
                "0.5".to_string()
            } else {
                hours
            };
            let worker = if i % 113 == 0 { 99 } else { i % 7 };
            let id = if i % 127 == 0 {
                format!("\"E{i}\"")
            } else {
                format!("E{i}")
            };
            let line = format!(
                "{currency},{amount},{hours},2026-03-{:02},P{},W{worker},{id}\r\n",
                i % 28 + 1,
                i % 5
            );
            erp.push_str(&line);
            if i % 131 == 0 {
                erp.push_str(&line);
            }
        }
        for i in 0..n / 50 {
            erp.push_str(&format!("EUR,1,1,2026-03-01,P0,W0,X{i}\r\n"));
        }
        (psa, erp)
    }

    #[test]
    fn the_result_is_the_same_on_any_number_of_threads() {
        let (psa, erp) = generated(CHECKPOINT * 5 + 17);
        let (one, report) = reconciled(&psa, &erp, 1);
        for kind in Kind::ALL {
            assert!(report.count(kind) > 0, "{kind} is exercised");
        }
        for threads in [2, 3, 4, 8] {
            assert_eq!(reconciled(&psa, &erp, threads).0, one, "{threads} threads");
        }
    }

    #[test]
    fn a_record_cut_between_two_blocks_is_read_whole() {
        let (psa, _) = generated(300);
        let tricky = format!(
            "\u{feff}{HEADER_ROW}\"E,x\",\"W\r\nmulti\",P,D,1,1,EUR\r\nbad,row\n{}",
            &psa[HEADER_ROW.len()..]
        );
        let whole = Export::from_bytes("t.csv", tricky.as_bytes()).unwrap();
        let rows = |e: &Export| {
            let erp = export("e.csv", HEADER_ROW);
            let mut csv = Vec::new();
            reconcile(e, &erp, 1).unwrap().write_csv(&mut csv).unwrap();
            csv
        };
        for block in [1, 2, 3, 5, 7, 16, 61, 64, 1000] {
            let small = Export::read_in_blocks("t.csv", tricky.as_bytes(), 0, block).unwrap();
            assert_eq!(small.rows(), whole.rows(), "block {block}");
            assert_eq!(small.unreadable(), whole.unreadable(), "block {block}");
            assert_eq!(rows(&small), rows(&whole), "block {block}");
        }
        assert_eq!(whole.rows(), 301);
        assert_eq!(whole.unreadable()[0].line, 4);
    }
}
