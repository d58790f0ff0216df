//! The TSBS "cpu-only" use case: one `cpu` row per host every 10 seconds, 10 tags and 10
//! random-walk fields per host, and the 15 TSBS queries as DataFusion SQL.
//!
//! The shape follows `/work/shared/workloads/tsbs-cpu-only.md` so that MetricStore's
//! figures can be set beside published TSBS results. Generation is a pure function of
//! [`TsbsConfig`]: each host draws its tags and its walks from its own sub-stream of the
//! seed, so host `host_7` has the same tags and values whatever the scale.

use crate::model::{FieldKind, SeriesWrite, TagSet, WriteBatch};

use super::Rng;

mod queries;

pub use queries::{QueryKind, lastpoint_fast_sql, query_sql};

/// The table every row goes to.
pub const TABLE: &str = "cpu";

/// The 10 fields, in the order of [`Row::values`] and of every [`SeriesWrite`].
pub const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const START_2026_MS: i64 = 1_767_225_600_000;

const HOUR_MS: i64 = 3_600_000;

/// Regions and their datacenters, as in TSBS.
const REGIONS: [(&str, &[&str]); 9] = [
    (
        "us-east-1",
        &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    ),
    ("us-west-1", &["us-west-1a", "us-west-1b"]),
    ("us-west-2", &["us-west-2a", "us-west-2b", "us-west-2c"]),
    ("eu-west-1", &["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    ("eu-central-1", &["eu-central-1a", "eu-central-1b"]),
    ("ap-southeast-1", &["ap-southeast-1a", "ap-southeast-1b"]),
    ("ap-southeast-2", &["ap-southeast-2a", "ap-southeast-2b"]),
    ("ap-northeast-1", &["ap-northeast-1a", "ap-northeast-1c"]),
    ("sa-east-1", &["sa-east-1a", "sa-east-1b", "sa-east-1c"]),
];
const OSES: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCHES: [&str; 2] = ["x64", "x86"];
const TEAMS: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "test"];

/// How field values are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// As TSBS: the walk is emitted truncated to an integer (the walk itself keeps
    /// full precision).
    Integer,
    /// The walk at full precision, closer to real gauges.
    Float,
}

/// What to generate. Two configs that compare equal generate identical data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsbsConfig {
    /// Number of hosts (`host_0` .. `host_{scale-1}`).
    pub scale: usize,
    /// Timestamp of the first row, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// Time between two rows of a host (TSBS: 10 000 ms).
    pub interval_ms: i64,
    /// Length of the generated range; rows are at `start_ms + k * interval_ms` for every
    /// such time before `start_ms + duration_ms`.
    pub duration_ms: i64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Integer (TSBS) or float values.
    pub variant: Variant,
}

impl TsbsConfig {
    /// Quick runs: 100 hosts over 1 day (864 000 rows). The day matches
    /// [`TsbsConfig::standard`] so that every query window has the same shape and
    /// only the scale differs.
    pub fn quick() -> TsbsConfig {
        TsbsConfig {
            scale: 100,
            ..TsbsConfig::standard()
        }
    }

    /// The standard size for a 2-core machine: 1000 hosts over 1 day (8.64M rows,
    /// 86.4M field values), integer values as TSBS.
    pub fn standard() -> TsbsConfig {
        TsbsConfig {
            scale: 1000,
            start_ms: START_2026_MS,
            interval_ms: 10_000,
            duration_ms: 24 * HOUR_MS,
            seed: 1,
            variant: Variant::Integer,
        }
    }

    /// Rows per host; zero when the interval or the duration is not positive.
    pub fn timestamps_per_host(&self) -> usize {
        if self.interval_ms <= 0 || self.duration_ms <= 0 {
            return 0;
        }
        // Ceiling division: a partial last interval still starts a row.
        let n = self.duration_ms / self.interval_ms
            + i64::from(self.duration_ms % self.interval_ms != 0);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// One past the newest row's timestamp: the data covers `[start_ms, end_ms())`.
    pub fn end_ms(&self) -> i64 {
        let n = i64::try_from(self.timestamps_per_host()).unwrap_or(i64::MAX);
        self.start_ms
            .saturating_add(n.saturating_mul(self.interval_ms.max(0)))
    }

    /// Total number of rows: `scale` × [`timestamps_per_host`](Self::timestamps_per_host).
    pub fn total_rows(&self) -> usize {
        self.scale.saturating_mul(self.timestamps_per_host())
    }
}

/// One host: its index and its fixed tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    index: usize,
    tags: TagSet,
}

impl Host {
    fn generate(seed: u64, index: usize) -> Host {
        let mut rng = Rng::stream(seed, 2 * index as u64);
        let (region, datacenters) = REGIONS[rng.index(REGIONS.len())];
        let datacenter = datacenters[rng.index(datacenters.len())];
        let pairs = [
            ("hostname", format!("host_{index}")),
            ("region", region.to_string()),
            ("datacenter", datacenter.to_string()),
            ("rack", rng.below(100).to_string()),
            ("os", OSES[rng.index(OSES.len())].to_string()),
            ("arch", ARCHES[rng.index(ARCHES.len())].to_string()),
            ("team", TEAMS[rng.index(TEAMS.len())].to_string()),
            ("service", rng.below(20).to_string()),
            ("service_version", rng.below(2).to_string()),
            (
                "service_environment",
                ENVIRONMENTS[rng.index(ENVIRONMENTS.len())].to_string(),
            ),
        ];
        let tags = TagSet::new(pairs).expect("the 10 TSBS tag keys are distinct");
        Host { index, tags }
    }

    /// Position of the host in [`CpuOnly::hosts`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// `host_<index>`.
    pub fn hostname(&self) -> &str {
        self.tags.get("hostname").unwrap_or_default()
    }

    /// The host's 10 tags.
    pub fn tags(&self) -> &TagSet {
        &self.tags
    }
}

/// One generated row of table `cpu`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Index of the host in [`CpuOnly::hosts`].
    pub host: usize,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// One value per field of [`FIELDS`], in that order.
    pub values: [f64; 10],
}

/// The generated data set: hosts are built once, rows are generated on demand.
#[derive(Debug, Clone)]
pub struct CpuOnly {
    config: TsbsConfig,
    hosts: Vec<Host>,
}

impl CpuOnly {
    /// Builds the hosts of `config`.
    pub fn new(config: TsbsConfig) -> CpuOnly {
        let hosts = (0..config.scale)
            .map(|i| Host::generate(config.seed, i))
            .collect();
        CpuOnly { config, hosts }
    }

    /// The configuration.
    pub fn config(&self) -> &TsbsConfig {
        &self.config
    }

    /// The hosts, in index order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Total number of rows [`rows`](Self::rows) yields.
    pub fn total_rows(&self) -> usize {
        self.config.total_rows()
    }

    /// Every row in time order; rows with the same timestamp come in host order.
    pub fn rows(&self) -> Rows {
        let walks = (0..self.config.scale)
            .map(|i| Walk::new(self.config.seed, i))
            .collect();
        Rows {
            walks,
            integer: self.config.variant == Variant::Integer,
            start_ms: self.config.start_ms,
            interval_ms: self.config.interval_ms,
            steps: self.config.timestamps_per_host(),
            step: 0,
            host: 0,
        }
    }

    /// The rows of [`rows`](Self::rows) cut into [`WriteBatch`]es of `rows_per_batch` rows
    /// (the last may be shorter; 0 counts as 1). Each batch holds one [`SeriesWrite`] of
    /// table `cpu` per host with rows in it, in order of first appearance, holding that
    /// host's rows in time order with the fields of [`FIELDS`], all of kind gauge.
    pub fn batches(&self, rows_per_batch: usize) -> Batches<'_> {
        Batches {
            hosts: &self.hosts,
            rows: self.rows(),
            rows_per_batch: rows_per_batch.max(1),
            slot_of_host: vec![usize::MAX; self.hosts.len()],
        }
    }
}

/// The 10 random walks of one host.
#[derive(Debug, Clone)]
struct Walk {
    rng: Rng,
    values: [f64; 10],
}

impl Walk {
    fn new(seed: u64, host: usize) -> Walk {
        let mut rng = Rng::stream(seed, 2 * host as u64 + 1);
        let mut values = [0.0; 10];
        for v in &mut values {
            *v = 100.0 * rng.uniform();
        }
        Walk { rng, values }
    }

    fn step(&mut self) {
        for v in &mut self.values {
            *v = (*v + self.rng.normal()).clamp(0.0, 100.0);
        }
    }
}

/// Iterator over the rows of a [`CpuOnly`] data set, see [`CpuOnly::rows`].
#[derive(Debug, Clone)]
pub struct Rows {
    walks: Vec<Walk>,
    integer: bool,
    start_ms: i64,
    interval_ms: i64,
    steps: usize,
    step: usize,
    host: usize,
}

impl Iterator for Rows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.step >= self.steps {
            return None;
        }
        let host = self.host;
        let walk = self.walks.get_mut(host)?;
        // The first row of each walk is its uniform start; later rows take one step.
        if self.step > 0 {
            walk.step();
        }
        let mut values = walk.values;
        if self.integer {
            for v in &mut values {
                *v = v.trunc();
            }
        }
        let offset = (self.step as i64).saturating_mul(self.interval_ms);
        let row = Row {
            host,
            timestamp_ms: self.start_ms.saturating_add(offset),
            values,
        };
        self.host += 1;
        if self.host == self.walks.len() {
            self.host = 0;
            self.step += 1;
        }
        Some(row)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.steps.saturating_sub(self.step))
            .saturating_mul(self.walks.len())
            .saturating_sub(self.host);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Rows {}

/// Iterator over the write batches of a [`CpuOnly`] data set, see [`CpuOnly::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    hosts: &'a [Host],
    rows: Rows,
    rows_per_batch: usize,
    /// Per host, the index of its item in the batch being built (`usize::MAX`: none).
    slot_of_host: Vec<usize>,
}

impl Iterator for Batches<'_> {
    type Item = WriteBatch;

    fn next(&mut self) -> Option<WriteBatch> {
        let mut items: Vec<SeriesWrite> = Vec::new();
        let mut item_hosts: Vec<usize> = Vec::new();
        for row in self.rows.by_ref().take(self.rows_per_batch) {
            let (Some(slot), Some(host)) = (
                self.slot_of_host.get_mut(row.host),
                self.hosts.get(row.host),
            ) else {
                continue;
            };
            if *slot == usize::MAX {
                *slot = items.len();
                item_hosts.push(row.host);
                let mut series = SeriesWrite::new(TABLE, host.tags.clone(), &FIELDS);
                for field in FIELDS {
                    series.with_kind(field, FieldKind::Gauge);
                }
                items.push(series);
            }
            if let Some(series) = items.get_mut(*slot) {
                series
                    .push(row.timestamp_ms, &row.values)
                    .expect("a row has one value per field");
            }
        }
        for host in item_hosts {
            if let Some(slot) = self.slot_of_host.get_mut(host) {
                *slot = usize::MAX;
            }
        }
        if items.is_empty() {
            return None;
        }
        let mut batch = WriteBatch::new();
        for item in items {
            batch.push(item);
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests;
