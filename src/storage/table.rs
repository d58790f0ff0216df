//! One table in memory: its schema, its series, its tag dictionaries and label index,
//! and the two-phase write that keeps batches atomic.
//!
//! A write first *plans* every item of a batch against the table without changing it
//! (resolving series, new tag keys, fields and series, checking names, limits and the
//! out-of-order window), and only then *applies* the plan, which cannot fail. So a batch
//! is stored whole or not at all.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use ahash::{HashMap, HashMapExt, HashSet, HashSetExt, RandomState};

use super::chunk::{SharedTimestamps, TimestampInterner};
use super::config::StorageConfig;
use super::head::Head;
use super::index::LabelIndex;
use super::open_head::HeadView;
use super::series::{SealContext, Series, SeriesImage};
use super::tags::{TagArena, TagPairs};
use crate::model::{
    Error, FieldKind, NameKind, Result, SeriesWrite, TagSet, error::SeriesDisplay, validate_name,
};

/// A field column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Column name.
    pub name: Arc<str>,
    /// What the values mean.
    pub kind: FieldKind,
}

/// The distinct values of one tag key, each with a dense code.
#[derive(Debug, Default)]
pub(crate) struct ValueDict {
    pub(crate) values: Vec<Arc<str>>,
    codes: HashMap<Arc<str>, u32>,
}

impl ValueDict {
    fn code_or_insert(&mut self, value: &str) -> u32 {
        if let Some(&code) = self.codes.get(value) {
            return code;
        }
        let code = self.values.len() as u32;
        let value: Arc<str> = value.into();
        self.values.push(value.clone());
        self.codes.insert(value, code);
        code
    }

    pub(crate) fn bytes(&self) -> usize {
        self.values.iter().map(|v| v.len() + 16).sum::<usize>()
            + self.values.capacity() * 16
            + self.codes.capacity() * 24
    }
}

/// Which table state a [`TagSet::series_hint`] was made by: a number no other table
/// state in the process has had, drawn on creation (so a table dropped and created
/// again, or restored from a checkpoint, never trusts an older state's hints).
///
/// A hint is `scope << 32 | series id`. It is trusted when its scope is this one and
/// the id is below the series count, and then it names the series of the tag set's
/// pairs without comparing them, because: a tag set's pairs never change (it is
/// immutable); the hint is only set from an id that this table resolved or created for
/// those pairs; and a table state never reuses or moves a series id (series are only
/// appended; retiring series must draw a new scope). Scope 0 means "no hints": after
/// 2^32 - 1 table states the counter stops handing out scopes rather than wrap.
#[derive(Debug)]
struct HintScope(u32);

impl Default for HintScope {
    fn default() -> HintScope {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HintScope(u32::try_from(next).unwrap_or(0))
    }
}

/// The mutable state of a table, behind the table's lock.
#[derive(Debug, Default)]
pub(crate) struct TableInner {
    /// Validates the series hints of tag sets (see [`HintScope`]).
    hint_scope: HintScope,
    pub(crate) tag_keys: Vec<Arc<str>>,
    key_numbers: HashMap<Arc<str>, u32>,
    pub(crate) tag_values: Vec<ValueDict>,
    pub(crate) fields: Vec<FieldDef>,
    field_numbers: HashMap<Arc<str>, u16>,
    /// Series ids by the hash of their tag strings ([`hash_tags`]). Only ids are
    /// stored: growing the table rehashes an id from its tags in the dictionaries,
    /// which keeps a slot at 4 bytes plus a control byte.
    lookup: hashbrown::HashTable<u32>,
    pub(crate) series: Vec<Series>,
    /// Every series' tags; never more than `u32::MAX` codes.
    tags: TagArena,
    pub(crate) index: LabelIndex,
    interner: TimestampInterner,
    /// Sum of `Series::bytes` over all series.
    pub(crate) series_bytes: usize,
    /// Rows before this time are in the cold tier: later writes there are refused.
    pub(crate) tiered_until: Option<i64>,
    /// The newest timestamp written to any series (`None`: no rows yet), kept on
    /// write so planning can ask for it without visiting series. Dropping rows to the
    /// cold tier leaves it alone: it stays an upper bound of the times in memory.
    pub(crate) newest: Option<i64>,
}

/// A table copied for a checkpoint (see [`TableInner::image`]); its series' open
/// heads are [`HeadView`]s until [`decode`](TableImage::decode)d.
#[derive(Debug)]
pub(crate) struct TableImage<H = Head> {
    pub(crate) name: Arc<str>,
    /// WAL seq when the copy was taken: records from it on are not in the image.
    pub(crate) seq: u64,
    pub(crate) fields: Vec<FieldDef>,
    pub(crate) tag_keys: Vec<Arc<str>>,
    pub(crate) tag_values: Vec<Vec<Arc<str>>>,
    pub(crate) series: Vec<SeriesImage<H>>,
}

impl TableImage<HeadView> {
    /// The image with every open head's rows decoded: the work a checkpoint does
    /// after releasing the table's lock, so that writers wait only for the copy of
    /// handles.
    pub(crate) fn decode(self) -> TableImage {
        TableImage {
            name: self.name,
            seq: self.seq,
            fields: self.fields,
            tag_keys: self.tag_keys,
            tag_values: self.tag_values,
            series: self.series.into_iter().map(SeriesImage::decode).collect(),
        }
    }
}

/// Bytes assumed for a new series before its first sample, for the memory limit
/// check: its struct, two lookup slots (4 bytes and a control byte each, at the
/// table's lowest load) and index postings with room to spare. Its tag pairs are
/// added per tag ([`TAG_CODE_BYTES`]).
const NEW_SERIES_BYTES: usize = std::mem::size_of::<Series>() + 16 + 64;

/// Bytes of one tag value code in the table's arena.
const TAG_CODE_BYTES: usize = std::mem::size_of::<u32>();

/// Where an item's rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Existing(u32),
    New(usize),
}

struct ItemPlan {
    target: Target,
    /// Index into [`TablePlan::field_sets`].
    fields: usize,
}

/// Changes a batch makes to one table, computed without touching it.
pub(crate) struct TablePlan<'b> {
    new_keys: Vec<&'b str>,
    new_fields: Vec<(&'b str, FieldKind)>,
    new_series: Vec<&'b TagSet>,
    /// Tag pairs of `new_series`, for the tag arena's limit.
    new_tag_pairs: usize,
    /// Tag-set hash of each of `new_series`.
    new_series_hashes: Vec<u64>,
    new_series_lookup: HashMap<u64, Vec<usize>>,
    new_values: HashSet<(&'b str, &'b str)>,
    /// `new_values` in insertion order, so a refused item's values can be taken back.
    new_values_log: Vec<(&'b str, &'b str)>,
    new_value_counts: HashMap<&'b str, usize>,
    items: Vec<(&'b SeriesWrite, ItemPlan)>,
    /// Field numbers of the items' field lists; consecutive items with the same field
    /// names share one entry, so the common case allocates nothing per item.
    field_sets: Vec<Vec<u16>>,
    newest: HashMap<Target, i64>,
    /// Estimated bytes the plan adds, for the memory limit.
    pub(crate) bytes: usize,
    /// The part of `bytes` for new series and tag values, which `apply` does not measure.
    fixed: usize,
}

/// The size of a plan before an item, to take the item back if it is refused.
struct Mark {
    keys: usize,
    fields: usize,
    series: usize,
    tag_pairs: usize,
    values: usize,
    field_sets: usize,
    bytes: usize,
    fixed: usize,
}

/// Largest `newest` map a thread keeps between writes (entries).
const NEWEST_KEEP: usize = 1 << 20;

thread_local! {
    /// A plan's `newest` map, kept by the thread between writes: a batch of 10 000
    /// series needs a map of about 400 KB, and a fresh one each batch cost more in
    /// page faults and cache misses than the lookups themselves.
    static NEWEST_SCRATCH: std::cell::RefCell<HashMap<Target, i64>> =
        std::cell::RefCell::new(HashMap::new());
}

fn take_newest_scratch(items: usize) -> HashMap<Target, i64> {
    // Kept maps are returned empty (see `Drop for TablePlan`).
    let mut map = NEWEST_SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    map.reserve(items);
    map
}

impl Drop for TablePlan<'_> {
    fn drop(&mut self) {
        // Clearing a map costs its capacity: keep it only when this write filled a
        // fair share of it, so that a large batch's map does not make every small
        // write after it pay for clearing the large one.
        let (len, capacity) = (self.newest.len(), self.newest.capacity());
        if capacity <= NEWEST_KEEP && capacity <= 4 * len.max(1024) {
            self.newest.clear();
            let map = std::mem::take(&mut self.newest);
            // A thread being torn down has no scratch left to return to.
            let _ = NEWEST_SCRATCH.try_with(|s| *s.borrow_mut() = map);
        }
    }
}

impl<'b> TablePlan<'b> {
    pub(crate) fn fixed_bytes(&self) -> usize {
        self.fixed
    }

    /// Number of items the plan will apply.
    pub(crate) fn item_count(&self) -> usize {
        self.items.len()
    }

    fn mark(&self) -> Mark {
        Mark {
            keys: self.new_keys.len(),
            fields: self.new_fields.len(),
            series: self.new_series.len(),
            tag_pairs: self.new_tag_pairs,
            values: self.new_values_log.len(),
            field_sets: self.field_sets.len(),
            bytes: self.bytes,
            fixed: self.fixed,
        }
    }

    /// Undoes everything planned since `mark`.
    fn rollback(&mut self, mark: Mark) {
        self.new_keys.truncate(mark.keys);
        self.new_fields.truncate(mark.fields);
        for hash in self.new_series_hashes.drain(mark.series..) {
            if let Some(ids) = self.new_series_lookup.get_mut(&hash) {
                ids.retain(|&i| i < mark.series);
                if ids.is_empty() {
                    self.new_series_lookup.remove(&hash);
                }
            }
        }
        self.new_series.truncate(mark.series);
        self.new_tag_pairs = mark.tag_pairs;
        for pair in self.new_values_log.drain(mark.values..) {
            self.new_values.remove(&pair);
            if let Some(n) = self.new_value_counts.get_mut(pair.0) {
                *n -= 1;
            }
        }
        self.field_sets.truncate(mark.field_sets);
        self.bytes = mark.bytes;
        self.fixed = mark.fixed;
    }
}

fn hasher() -> RandomState {
    // Fixed seeds: the hash is only an in-memory lookup key, and fixed seeds keep
    // behaviour reproducible between runs.
    RandomState::with_seeds(0x6d65_7472, 0x6963_7374, 0x6f72_6521, 0x7461_6773)
}

fn hash_tags(tags: &TagSet) -> u64 {
    hash_pairs(tags.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = hasher().build_hasher();
    for (k, v) in pairs {
        h.write(k.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

impl TableInner {
    /// The `(tag key number, value code)` pairs of `series`, sorted by key name.
    pub(crate) fn tags_of(&self, series: &Series) -> TagPairs<'_> {
        self.tags.get(series.tags)
    }

    fn series_has_tags(&self, id: u32, tags: &TagSet) -> bool {
        let stored = self.tags_of(&self.series[id as usize]);
        stored.len() == tags.len()
            && stored.zip(tags.pairs()).all(|((k, c), (key, value))| {
                *self.tag_keys[k as usize] == **key
                    && *self.tag_values[k as usize].values[c as usize] == **value
            })
    }

    fn find_series(&self, hash: u64, tags: &TagSet) -> Option<u32> {
        self.lookup
            .find(hash, |&id| self.series_has_tags(id, tags))
            .copied()
    }

    /// The series `tags` last resolved to in this table, if the hint is valid here.
    fn hinted_series(&self, tags: &TagSet) -> Option<u32> {
        let hint = tags.series_hint();
        let (scope, id) = ((hint >> 32) as u32, hint as u32);
        (scope != 0 && scope == self.hint_scope.0 && (id as usize) < self.series.len())
            .then_some(id)
    }

    /// Remembers in `tags` that its series is `id` here.
    fn remember_series(&self, tags: &TagSet, id: u32) {
        if self.hint_scope.0 != 0 {
            let hint = (u64::from(self.hint_scope.0) << 32) | u64::from(id);
            // A tag set shared by writers on several cores: store only a change,
            // so that a steady hint's cache line is never written.
            if tags.series_hint() != hint {
                tags.set_series_hint(hint);
            }
        }
    }

    /// Heap bytes of the tag arena.
    pub(crate) fn tag_arena_bytes(&self) -> usize {
        self.tags.bytes()
    }

    /// Heap bytes of the series lookup table.
    pub(crate) fn lookup_bytes(&self) -> usize {
        self.lookup.allocation_size()
    }

    /// Number of distinct values of `key`, 0 if the key is unknown.
    fn distinct_values(&self, key: &str) -> usize {
        self.key_numbers
            .get(key)
            .map_or(0, |&k| self.tag_values[k as usize].values.len())
    }

    fn has_value(&self, key: &str, value: &str) -> bool {
        self.key_numbers
            .get(key)
            .is_some_and(|&k| self.tag_values[k as usize].codes.contains_key(value))
    }

    /// Plans `items` (all of this table) without changing anything. `indices` are the
    /// items' positions in the batch, for error messages.
    ///
    /// Strict (`refused` is `None`): the first bad item fails the plan. Lenient: a bad
    /// item is left out of the plan and pushed to `refused` with its position.
    pub(crate) fn plan<'b>(
        &self,
        table: &str,
        items: &[(usize, &'b SeriesWrite)],
        config: &StorageConfig,
        mut refused: Option<&mut Vec<(usize, Error)>>,
    ) -> Result<TablePlan<'b>> {
        let mut plan = TablePlan {
            new_keys: Vec::new(),
            new_fields: Vec::new(),
            new_series: Vec::new(),
            new_tag_pairs: 0,
            new_series_hashes: Vec::new(),
            new_series_lookup: HashMap::new(),
            new_values: HashSet::new(),
            new_values_log: Vec::new(),
            new_value_counts: HashMap::new(),
            items: Vec::with_capacity(items.len()),
            field_sets: Vec::new(),
            newest: take_newest_scratch(items.len()),
            bytes: 0,
            fixed: 0,
        };
        for &(position, item) in items {
            let mark = plan.mark();
            match self.plan_item(table, item, config, &mut plan) {
                Ok(planned) => plan.items.push((item, planned)),
                Err(e) => match refused.as_deref_mut() {
                    None => return Err(e.at_item(position, table)),
                    Some(refused) => {
                        plan.rollback(mark);
                        refused.push((position, e.at_item(position, table)));
                    }
                },
            }
        }
        Ok(plan)
    }

    fn plan_item<'b>(
        &self,
        table: &str,
        item: &'b SeriesWrite,
        config: &StorageConfig,
        plan: &mut TablePlan<'b>,
    ) -> Result<ItemPlan> {
        let same_fields = plan
            .items
            .last()
            .is_some_and(|(previous, _)| previous.same_field_names(item));
        let fields = if same_fields {
            plan.field_sets.len() - 1
        } else {
            let numbers = self.plan_fields(table, item, plan)?;
            plan.field_sets.push(numbers);
            plan.field_sets.len() - 1
        };
        let field_count = item.fields().len();
        let target = match self.hinted_series(item.tags()) {
            Some(id) => Target::Existing(id),
            None => {
                let hash = hash_tags(item.tags());
                match self.find_series(hash, item.tags()) {
                    Some(id) => {
                        self.remember_series(item.tags(), id);
                        Target::Existing(id)
                    }
                    None => self.plan_series(table, item.tags(), hash, config, plan)?,
                }
            }
        };
        // Inserting the series' own newest is harmless if the item is refused (a
        // rolled-back new series' slot holds `MIN`, as a new one would); the item's
        // times are checked on a copy and stored only if all pass.
        let slot = plan.newest.entry(target).or_insert_with(|| match target {
            Target::Existing(id) => self.series[id as usize].newest,
            Target::New(_) => i64::MIN,
        });
        let mut newest = *slot;
        let window = config.out_of_order_window_ms;
        for &t in item.timestamps() {
            if let Some(floor) = self.tiered_until
                && t < floor
            {
                return Err(Error::Tiered {
                    series: SeriesDisplay(table, item.tags().pairs().iter().map(|(k, v)| (k, v)))
                        .to_string(),
                    timestamp: t,
                    tiered_until: floor,
                });
            }
            if t < newest.saturating_sub(window) {
                return Err(Error::OutOfOrder {
                    series: SeriesDisplay(table, item.tags().pairs().iter().map(|(k, v)| (k, v)))
                        .to_string(),
                    timestamp: t,
                    newest,
                    window_ms: window,
                });
            }
            newest = newest.max(t);
        }
        *slot = newest;
        plan.bytes += match target {
            Target::Existing(id) => self.series[id as usize].growth_bound(item.len(), field_count),
            Target::New(_) => (item.len().max(4) * 2) * 9 * (1 + field_count),
        };
        Ok(ItemPlan { target, fields })
    }

    fn plan_fields<'b>(
        &self,
        table: &str,
        item: &'b SeriesWrite,
        plan: &mut TablePlan<'b>,
    ) -> Result<Vec<u16>> {
        let mut numbers = Vec::with_capacity(item.fields().len());
        for (name, kind) in item.fields() {
            let number = match self.field_numbers.get(name.as_str()) {
                Some(&n) => n,
                None => match plan.new_fields.iter().position(|(n, _)| n == name) {
                    Some(i) => (self.fields.len() + i) as u16,
                    None => {
                        validate_name(NameKind::Field, name)?;
                        if self.key_numbers.contains_key(name.as_str())
                            || plan.new_keys.contains(&name.as_str())
                        {
                            return Err(Error::SchemaConflict {
                                table: table.to_string(),
                                name: name.clone(),
                                existing: "tag",
                                requested: "field",
                            });
                        }
                        let n = self.fields.len() + plan.new_fields.len();
                        if n >= u16::MAX as usize {
                            return Err(Error::InvalidWrite(format!(
                                "table {table:?} cannot have more than {} fields",
                                u16::MAX
                            )));
                        }
                        plan.new_fields
                            .push((name, kind.unwrap_or_else(|| FieldKind::infer(table))));
                        n as u16
                    }
                },
            };
            if numbers.contains(&number) {
                return Err(Error::InvalidWrite(format!(
                    "field {name:?} is given twice"
                )));
            }
            numbers.push(number);
        }
        Ok(numbers)
    }

    fn plan_series<'b>(
        &self,
        table: &str,
        tags: &'b TagSet,
        hash: u64,
        config: &StorageConfig,
        plan: &mut TablePlan<'b>,
    ) -> Result<Target> {
        if let Some(pending) = plan.new_series_lookup.get(&hash)
            && let Some(&i) = pending.iter().find(|&&i| plan.new_series[i] == tags)
        {
            return Ok(Target::New(i));
        }
        if let Some(limit) = config.max_series_per_table
            && self.series.len() + plan.new_series.len() >= limit
        {
            return Err(Error::SeriesLimit {
                table: table.to_string(),
                limit,
            });
        }
        let codes = self.tags.len() + plan.new_tag_pairs + tags.len();
        if codes > u32::MAX as usize {
            return Err(Error::InvalidWrite(format!(
                "table {table:?} cannot hold more than {} tags over all series",
                u32::MAX
            )));
        }
        for (key, value) in tags.pairs() {
            let known_key = self.key_numbers.contains_key(key.as_str());
            if !known_key && !plan.new_keys.contains(&key.as_str()) {
                validate_name(NameKind::Tag, key)?;
                if self.field_numbers.contains_key(key.as_str())
                    || plan.new_fields.iter().any(|(n, _)| n == key)
                {
                    return Err(Error::SchemaConflict {
                        table: table.to_string(),
                        name: key.clone(),
                        existing: "field",
                        requested: "tag",
                    });
                }
                plan.new_keys.push(key);
            }
            if !self.has_value(key, value) && !plan.new_values.contains(&(key, value)) {
                validate_name(NameKind::TagValue, value)?;
                if let Some(limit) = config.max_tag_values_per_key {
                    let pending = plan.new_value_counts.get(key.as_str()).copied();
                    if self.distinct_values(key) + pending.unwrap_or(0) >= limit {
                        return Err(Error::TagValueLimit {
                            table: table.to_string(),
                            key: key.clone(),
                            limit,
                        });
                    }
                }
                plan.new_values.insert((key, value));
                plan.new_values_log.push((key, value));
                *plan.new_value_counts.entry(key).or_default() += 1;
                plan.bytes += key.len() + value.len() + 64;
                plan.fixed += key.len() + value.len() + 64;
            }
        }
        let i = plan.new_series.len();
        plan.new_series.push(tags);
        plan.new_tag_pairs += tags.len();
        plan.new_series_hashes.push(hash);
        plan.new_series_lookup.entry(hash).or_default().push(i);
        let bytes = NEW_SERIES_BYTES + tags.len() * TAG_CODE_BYTES;
        plan.bytes += bytes;
        plan.fixed += bytes;
        Ok(Target::New(i))
    }

    /// Applies a plan made by [`TableInner::plan`] on this table under the same lock.
    /// Returns the change in bytes held by series.
    pub(crate) fn apply(&mut self, plan: TablePlan<'_>, config: &StorageConfig) -> isize {
        for key in &plan.new_keys {
            let key: Arc<str> = (*key).into();
            self.key_numbers
                .insert(key.clone(), self.tag_keys.len() as u32);
            self.tag_keys.push(key);
            self.tag_values.push(ValueDict::default());
        }
        for (name, kind) in &plan.new_fields {
            let name: Arc<str> = (*name).into();
            self.field_numbers
                .insert(name.clone(), self.fields.len() as u16);
            self.fields.push(FieldDef { name, kind: *kind });
        }
        let first_new = self.series.len() as u32;
        for tags in &plan.new_series {
            let id = self.create_series(tags);
            self.remember_series(tags, id);
        }
        let before = self.series_bytes;
        let mut ctx = SealContext::new(config, &mut self.interner);
        for (item, planned) in &plan.items {
            let id = match planned.target {
                Target::Existing(id) => id,
                Target::New(i) => first_new + i as u32,
            };
            let series = &mut self.series[id as usize];
            let bytes = series.bytes();
            for (row, &t) in item.timestamps().iter().enumerate() {
                series.write(t, &plan.field_sets[planned.fields], item.row(row), &mut ctx);
            }
            note_newest(&mut self.newest, series.newest);
            self.series_bytes = self.series_bytes + series.bytes() - bytes;
        }
        self.series_bytes = self.series_bytes.saturating_add_signed(ctx.chunk_delta);
        self.series_bytes as isize - before as isize
    }

    fn create_series(&mut self, tags: &TagSet) -> u32 {
        let pairs: Vec<(u32, u32)> = tags
            .pairs()
            .iter()
            .map(|(k, v)| {
                let key = self.key_numbers[k.as_str()];
                (key, self.tag_values[key as usize].code_or_insert(v))
            })
            .collect();
        let span = self.tags.push(pairs);
        self.add_series(Series::new(span))
    }

    /// Gives `series` the next id and enters it in the index and the lookup map; its
    /// tags must be in the arena, with codes valid in this table's dictionaries.
    fn add_series(&mut self, series: Series) -> u32 {
        let id = self.series.len() as u32;
        let (keys, values) = (&self.tag_keys, &self.tag_values);
        let pairs: Vec<(&str, &str)> = self
            .tags
            .get(series.tags)
            .map(|(k, c)| (&*keys[k as usize], &*values[k as usize].values[c as usize]))
            .collect();
        // The table hands out each id once and tag sets have unique keys, so the
        // index cannot refuse this; if it ever did, the series would only be missing
        // from matcher results, never lose data.
        let _ = self.index.insert(id, &pairs);
        let hash = hash_pairs(pairs.into_iter());
        let (all, arena) = (&self.series, &self.tags);
        self.lookup.insert_unique(hash, id, |&other| {
            // Only ids already in the table are in the lookup.
            series_hash(&all[other as usize], arena, keys, values)
        });
        self.series_bytes += series.bytes();
        note_newest(&mut self.newest, series.newest);
        self.series.push(series);
        id
    }

    /// Copies the table's state for a checkpoint: chunks are shared, open heads
    /// referenced as views (decode them with [`TableImage::decode`] after the lock).
    pub(crate) fn image(&self, name: &Arc<str>, seq: u64) -> TableImage<HeadView> {
        TableImage {
            name: name.clone(),
            seq,
            fields: self.fields.clone(),
            tag_keys: self.tag_keys.clone(),
            tag_values: self.tag_values.iter().map(|d| d.values.clone()).collect(),
            series: self
                .series
                .iter()
                .map(|s| s.image(&self.tags_of(s).collect::<Vec<_>>()))
                .collect(),
        }
    }

    /// Retires the series that hold no rows any more, with their ids, postings,
    /// lookup entries, tags and the tag values no other series uses, once they are
    /// at least an eighth of the table (a rebuild costs time in the number of
    /// series, so it waits until it frees a share of them). The table is rebuilt
    /// from a copy of itself without them, as a checkpoint restores it; ids change,
    /// so the rebuilt state draws a new hint scope. Tag keys and fields stay: the
    /// table's schema does not shrink. Returns the change in accounted bytes.
    pub(crate) fn retire_empty(&mut self, name: &Arc<str>) -> isize {
        let dead = self.series.iter().filter(|s| s.is_empty()).count();
        if dead == 0 || dead * 8 < self.series.len() {
            return 0;
        }
        let before = self.accounted_bytes();
        let image = self.image_of_live(name);
        match TableInner::restore(image, self.interner.shared().clone()) {
            Ok((mut rebuilt, _)) => {
                rebuilt.tiered_until = self.tiered_until;
                rebuilt.newest = self.newest;
                *self = rebuilt;
                self.accounted_bytes() as isize - before as isize
            }
            Err(e) => {
                // Our own copy failed its checks: a bug. Keeping every series is safe.
                tracing::error!(table = %name, error = %e, "cannot retire empty series");
                0
            }
        }
    }

    /// Bytes of the table as the memory limit counts them after a restore: what it
    /// would have counted had the rows been written.
    fn accounted_bytes(&self) -> usize {
        self.series_bytes
            + self.series.len() * NEW_SERIES_BYTES
            + self.tags.len() * TAG_CODE_BYTES
            + self.tag_values.iter().map(ValueDict::bytes).sum::<usize>()
    }

    /// [`TableInner::image`] of the series that hold rows, with each key's values
    /// renumbered to those they use.
    fn image_of_live(&self, name: &Arc<str>) -> TableImage {
        let mut recode: Vec<HashMap<u32, u32>> = vec![HashMap::new(); self.tag_keys.len()];
        let mut values: Vec<Vec<Arc<str>>> = vec![Vec::new(); self.tag_keys.len()];
        let series = self
            .series
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                let tags: Vec<(u32, u32)> = self
                    .tags_of(s)
                    .map(|(k, c)| {
                        let (key, known) = (k as usize, &mut values[k as usize]);
                        let code = *recode[key].entry(c).or_insert_with(|| {
                            known.push(self.tag_values[key].values[c as usize].clone());
                            known.len() as u32 - 1
                        });
                        (k, code)
                    })
                    .collect();
                s.image(&tags).decode()
            })
            .collect();
        TableImage {
            name: name.clone(),
            seq: 0,
            fields: self.fields.clone(),
            tag_keys: self.tag_keys.clone(),
            tag_values: values,
            series,
        }
    }

    /// Rebuilds a table from a checkpoint image, checking every code it refers to.
    /// Returns the table state and its bytes.
    pub(crate) fn restore(
        image: TableImage,
        timestamps: Arc<SharedTimestamps>,
    ) -> Result<(TableInner, usize)> {
        let mut inner = TableInner {
            interner: TimestampInterner::new(timestamps),
            ..TableInner::default()
        };
        let table = image.name.clone();
        let bad = |message: String| Error::Corrupt {
            context: format!("checkpoint of table {table:?}"),
            message,
        };
        for (key, values) in image.tag_keys.into_iter().zip(image.tag_values) {
            inner
                .key_numbers
                .insert(key.clone(), inner.tag_keys.len() as u32);
            inner.tag_keys.push(key);
            let mut dict = ValueDict::default();
            for v in values {
                if dict.code_or_insert(&v) as usize != dict.values.len() - 1 {
                    return Err(bad(format!("tag value {v:?} appears twice")));
                }
            }
            inner.tag_values.push(dict);
        }
        for field in image.fields {
            inner
                .field_numbers
                .insert(field.name.clone(), inner.fields.len() as u16);
            inner.fields.push(field);
        }
        for series in image.series {
            for &(k, c) in series.tags.iter() {
                if inner
                    .tag_values
                    .get(k as usize)
                    .is_none_or(|d| c as usize >= d.values.len())
                {
                    return Err(bad(format!("series refers to unknown tag {k}:{c}")));
                }
            }
            if inner.tags.len() + series.tags.len() > u32::MAX as usize {
                return Err(bad("more tags than a table holds".into()));
            }
            let tags = inner.tags.push(series.tags.iter().copied());
            let series = Series::restore(series, inner.fields.len(), tags).map_err(bad)?;
            inner.add_series(series);
        }
        // Counted once every chunk is in: shared timestamp blocks split over their
        // holders.
        inner.series_bytes += inner.series.iter().map(Series::chunk_bytes).sum::<usize>();
        let bytes = inner.accounted_bytes();
        Ok((inner, bytes))
    }

    /// Removes rows older than `cutoff` from every series and refuses later writes
    /// there. Returns the change in bytes held by series.
    pub(crate) fn drop_before(&mut self, cutoff: i64, config: &StorageConfig) -> isize {
        self.tiered_until = Some(self.tiered_until.map_or(cutoff, |t| t.max(cutoff)));
        let mut ctx = SealContext::new(config, &mut self.interner);
        let before = self.series_bytes;
        for series in &mut self.series {
            let bytes = series.bytes();
            series.drop_before(cutoff, &mut ctx);
            self.series_bytes = self.series_bytes + series.bytes() - bytes;
        }
        self.series_bytes = self.series_bytes.saturating_add_signed(ctx.chunk_delta);
        self.series_bytes as isize - before as isize
    }

    /// Seals every non-empty head (for snapshots and tiering).
    pub(crate) fn seal_all(&mut self, config: &StorageConfig) {
        let mut ctx = SealContext::new(config, &mut self.interner);
        for series in &mut self.series {
            let bytes = series.bytes();
            series.seal(&mut ctx);
            self.series_bytes = self.series_bytes + series.bytes() - bytes;
        }
        self.series_bytes = self.series_bytes.saturating_add_signed(ctx.chunk_delta);
    }
}

/// [`hash_tags`] of a stored series, from its codes in the tag arena.
fn series_hash(series: &Series, arena: &TagArena, keys: &[Arc<str>], values: &[ValueDict]) -> u64 {
    hash_pairs(
        arena
            .get(series.tags)
            .map(|(k, c)| (&*keys[k as usize], &*values[k as usize].values[c as usize])),
    )
}

fn note_newest(newest: &mut Option<i64>, t: i64) {
    // An empty series reports `i64::MIN`.
    if t != i64::MIN {
        *newest = Some(newest.map_or(t, |n| n.max(t)));
    }
}

/// A table: a name and its state behind a lock.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: Arc<str>,
    pub(crate) inner: parking_lot::RwLock<TableInner>,
}

impl Table {
    /// An empty table whose chunks share timestamp blocks through `timestamps`.
    pub(crate) fn new(name: &str, timestamps: Arc<SharedTimestamps>) -> Table {
        Table {
            name: name.into(),
            inner: parking_lot::RwLock::new(TableInner {
                interner: TimestampInterner::new(timestamps),
                ..TableInner::default()
            }),
        }
    }
}
