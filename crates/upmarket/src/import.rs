//! `upmarket import`: NDJSON (Segment-shaped or PostHog-export-shaped, optionally gzipped),
//! CSV and Parquet. Every row goes through the same validation as the HTTP API and the same
//! messageId deduplication, so a re-run (or a run resumed after a crash) stores nothing twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};
use upmarket_core::segment::{export_object, parse_export_line, ParseContext};
use upmarket_core::{Event, EventError, IngestSource};
use upmarket_server::Config;
use upmarket_store::tabular::{for_each_row, TabularFormat};
use upmarket_store::{AppendStatus, PreparedEvent, Store, StoreError};

use crate::lines::{Line, Lines};

/// How long identity facts of imported events may wait to be written together (as the
/// server's writer does with `ingest.identity_flush_ms`): one identity transaction per couple
/// of seconds instead of one per batch of events. Nothing reads the store during an import
/// (DuckDB's file lock), the import writes them all before it ends, and a crash loses none
/// (they are replayed from the events at the next open). 1M events: 103k → 110–121k events/s.
const IDENTITY_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

/// Events per import transaction: one DuckDB row group (122,880 rows). A transaction of
/// whole row groups is written straight into the database file at commit instead of through
/// the write-ahead log. Measured with `--batch-size`, before batches were appended two at a
/// time: 1M events imported in 4.5–4.7 s against 5.3 s in transactions of 10,000, 5.1–5.5 s
/// at 30,000–100,000 and 5.1 s at 250,000, with the lowest peak memory of them all
/// (460–500 MB; BENCHMARKS.md).
pub const BATCH_EVENTS: usize = upmarket_store::ROW_GROUP_EVENTS;

/// Opens the store for an import (`upmarket import`, the demo): identity facts deferred by
/// [`IDENTITY_DELAY`].
pub fn open_store(config: &Config) -> anyhow::Result<upmarket_store::DuckDbStore> {
    let mut store = crate::open_store(config)?;
    store.defer_identity(IDENTITY_DELAY);
    store.parallel_appends(APPEND_LANES)?;
    store.set_threads(import_duckdb_threads())?;
    Ok(store)
}

/// DuckDB's threads while events are imported: the cores that the import's own threads (one
/// parsing, [`APPEND_LANES`] appending, each of them running its statement in DuckDB itself)
/// leave, at least one. Beyond those, DuckDB's workers only made the appending threads wait
/// for them spinning (~13% of those threads' samples on 2 cores); with one thread here the
/// 10M-event import took 43.6 s of CPU instead of 46.1 s (events part 17.3 against 18.5 s).
/// Building the scoring tables afterwards uses every core (the store raises the setting for
/// it), and so do the appends left once parsing is done.
fn import_duckdb_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1 + APPEND_LANES).max(1)
}

/// Batches appended at once, each on its own connection and thread: DuckDB's appends to one
/// table from separate transactions run in parallel (measured in BENCHMARKS.md).
const APPEND_LANES: usize = 2;

/// Arguments of `upmarket import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// Files to import.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// File format; `auto` decides by extension (.ndjson/.jsonl/.json[.gz], .csv, .parquet).
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// Events per transaction.
    #[arg(long, default_value_t = BATCH_EVENTS)]
    batch_size: usize,
    /// Print the summary as JSON.
    #[arg(long = "json")]
    pub format_json: bool,
}

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// By file extension.
    Auto,
    /// One JSON event per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
    /// Parquet.
    Parquet,
}

/// One rejected row.
#[derive(Debug, Serialize)]
pub struct RejectedRow {
    file: String,
    line: u64,
    code: &'static str,
    message: String,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    rows: u64,
    stored: u64,
    duplicates: u64,
    rejected: u64,
    rejected_by_reason: BTreeMap<&'static str, u64>,
    /// The first rejected rows, with file and line.
    examples: Vec<RejectedRow>,
    /// Seconds spent storing the events: reading, validating, committing.
    events_secs: f64,
    /// Seconds spent bringing the scoring tables (the model's daily rollup and account rows)
    /// up to date with them afterwards.
    scoring_tables_secs: f64,
    /// Whether the model's daily rollup was computed from the events as they were appended
    /// (else built from the stored events afterwards: see the store's `rollup_collect`).
    rollup_collected: bool,
    /// Whether the account rows were built from rows collected as the events were appended
    /// (else from the stored events afterwards: see the store's `account_collect`).
    account_rows_collected: bool,
}

const MAX_EXAMPLES: usize = 20;

impl ImportSummary {
    /// Prints the summary for a person, or as JSON.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string_pretty(self).unwrap_or_default());
            return;
        }
        println!("rows read   {:>12}", self.rows);
        println!("stored      {:>12}", self.stored);
        println!(
            "duplicates  {:>12}   (already stored: safe to re-run)",
            self.duplicates
        );
        println!("rejected    {:>12}", self.rejected);
        for (code, n) in &self.rejected_by_reason {
            println!("  {code:<26} {n:>8}");
        }
        for ex in &self.examples {
            println!("  {}:{}: {}", ex.file, ex.line, ex.message);
        }
        println!(
            "took        {:>12.1} s (events {:.1} s, scoring tables {:.1} s{})",
            self.events_secs + self.scoring_tables_secs,
            self.events_secs,
            self.scoring_tables_secs,
            match (self.rollup_collected, self.account_rows_collected) {
                (true, true) => "; daily rollup and account rows computed while importing",
                (true, false) => "; daily rollup computed while importing",
                (false, true) => "; account rows computed while importing",
                (false, false) => "",
            }
        );
    }

    /// Events newly stored.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    fn reject(&mut self, file: &Path, line: u64, err: &EventError) {
        self.rejected += 1;
        *self.rejected_by_reason.entry(err.code()).or_default() += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(RejectedRow {
                file: file.display().to_string(),
                line,
                code: err.code(),
                message: err.to_string(),
            });
        }
    }
}

/// Parses rows into batches and hands them to the appending thread (see [`import_with_format`]).
struct Importer {
    batches: std::sync::mpsc::SyncSender<Vec<PreparedEvent>>,
    /// Batches the appending thread is done with, emptied here (off that thread) and reused.
    done: std::sync::mpsc::Receiver<Vec<PreparedEvent>>,
    /// Emptied batches whose memory the next ones reuse.
    spare: Vec<Vec<PreparedEvent>>,
    ctx: ParseContext,
    group_type: String,
    batch: Vec<PreparedEvent>,
    batch_size: usize,
    summary: ImportSummary,
}

impl Importer {
    /// One NDJSON line.
    fn line(&mut self, file: &Path, line: u64, raw: &[u8]) -> Result<(), StoreError> {
        let result = std::str::from_utf8(raw)
            .map_err(|e| {
                EventError::InvalidJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
            })
            .and_then(|text| parse_export_line(text, &self.ctx, &self.group_type));
        self.row(file, line, result)
    }

    /// One CSV or Parquet row, as an object of its columns; `raw` is its JSON text.
    fn object(
        &mut self,
        file: &Path,
        line: u64,
        raw: &[u8],
        obj: Map<String, Value>,
    ) -> Result<(), StoreError> {
        let result = if raw.len() > self.ctx.max_event_bytes {
            Err(EventError::TooLarge {
                size: raw.len(),
                limit: self.ctx.max_event_bytes,
            })
        } else {
            export_object(obj, raw, &self.ctx, &self.group_type)
        };
        self.row(file, line, result)
    }

    /// A line skipped unread for its length.
    fn too_long(&mut self, file: &Path, line: u64, size: u64) {
        self.summary.rows += 1;
        let err = EventError::TooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            limit: self.ctx.max_event_bytes,
        };
        self.summary.reject(file, line, &err);
    }

    fn row(
        &mut self,
        file: &Path,
        line: u64,
        result: Result<Event, EventError>,
    ) -> Result<(), StoreError> {
        self.summary.rows += 1;
        match result {
            Ok(e) => {
                self.batch.push(PreparedEvent::new(e));
                if self.batch.len() >= self.batch_size {
                    self.flush()?;
                }
            }
            Err(err) => self.summary.reject(file, line, &err),
        }
        Ok(())
    }

    /// Hands the batch to the appending thread. Fails only when that thread has stopped (its
    /// own error is reported when it is joined).
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // Used batches come back to be emptied here, off the appending thread, and their
        // memory is reused: a fresh batch (~350 bytes an event, 43 MB for a row group) is new
        // pages from the kernel, and faulting them in was ~17% of this thread's time. At
        // most the batches in flight (the channel's two, the appended ones) are ever kept.
        while let Ok(mut used) = self.done.try_recv() {
            used.clear();
            self.spare.push(used);
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.batch_size));
        let batch = std::mem::replace(&mut self.batch, next);
        self.batches.send(batch).map_err(|_| StoreError::Stopped)?;
        Ok(())
    }
}

fn format_of(path: &Path, format: Format) -> Format {
    if format != Format::Auto {
        return format;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".csv") {
        Format::Csv
    } else if name.ends_with(".parquet") {
        Format::Parquet
    } else {
        Format::Ndjson
    }
}

/// Imports every file into `store`.
pub fn run(
    store: &mut dyn Store,
    config: &Config,
    args: &ImportArgs,
) -> anyhow::Result<ImportSummary> {
    import_and_prepare(store, config, &args.files, args.format, args.batch_size)
}

/// Imports files of any supported format (decided by extension), as [`run`] does.
pub fn import_files(
    store: &mut dyn Store,
    config: &Config,
    files: &[PathBuf],
    batch_size: usize,
) -> anyhow::Result<ImportSummary> {
    import_and_prepare(store, config, files, Format::Auto, batch_size)
}

/// Imports the files, then brings the scoring tables up to date.
fn import_and_prepare(
    store: &mut dyn Store,
    config: &Config,
    files: &[PathBuf],
    format: Format,
    batch_size: usize,
) -> anyhow::Result<ImportSummary> {
    let started = std::time::Instant::now();
    // The daily rollup is computed from the events as they are appended (written below).
    store.collect_derived(&config.model)?;
    let mut summary = import_with_format(store, config, files, format, batch_size)?;
    summary.events_secs = started.elapsed().as_secs_f64();
    if summary.stored > 0 {
        // Scoring as of a day reads the model's daily rollup, re-scoring a few accounts its
        // account rows; building them here, where bulk data arrives, spares the first
        // `upmarket score --as-of` and the server's first re-scoring that cost.
        let started = std::time::Instant::now();
        let done = store.prepare_derived(&config.model)?;
        summary.rollup_collected = done.rollup_collected;
        summary.account_rows_collected = done.account_rows_collected;
        summary.scoring_tables_secs = started.elapsed().as_secs_f64();
    }
    Ok(summary)
}

fn import_with_format(
    store: &mut dyn Store,
    config: &Config,
    files: &[PathBuf],
    format: Format,
    batch_size: usize,
) -> anyhow::Result<ImportSummary> {
    let args = ImportArgs {
        files: files.to_vec(),
        format,
        batch_size,
        format_json: false,
    };
    let total_bytes: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Two threads: this one reads and validates rows, the other appends finished batches, so
    // parsing the next batch overlaps the store's work on the last (both cores busy).
    let (batches, incoming) = std::sync::mpsc::sync_channel::<Vec<PreparedEvent>>(2);
    let (give_back, done) = std::sync::mpsc::channel::<Vec<PreparedEvent>>();
    // Set once every row is parsed: the batches still to append may then use the parsing
    // thread's core too (on a 1M-event import, ~0.6 s of appends ran on one core after it).
    let parsed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| -> anyhow::Result<ImportSummary> {
        let parsed = &parsed;
        let progress = bar.clone();
        let appender = scope.spawn(move || -> Result<(u64, u64), StoreError> {
            let (mut stored, mut duplicates) = (0u64, 0u64);
            let mut all_cores = false;
            let mut estimated = false;
            while let Ok(first) = incoming.recv() {
                if !estimated {
                    // The whole import's events, estimated from the bytes the first batch
                    // took: the store makes room for their keys at once rather than doubling
                    // its key set again and again (each time moving every key).
                    estimated = true;
                    let read = progress.position();
                    if read > 0 {
                        let events = total_bytes as f64 * first.len() as f64 / read as f64;
                        store.expect_events(events as usize)?;
                    }
                }
                // Whatever batches wait besides it are appended at once (in parallel when the
                // store can: see `open_store`), but none is waited for: a lone batch is
                // appended while the next one is parsed (waiting for a second one left the
                // appending side idle, ~0.1 s of each second on a 1M-event import).
                let mut group = vec![first];
                while group.len() < APPEND_LANES {
                    match incoming.try_recv() {
                        Ok(batch) => group.push(batch),
                        Err(_) => break,
                    }
                }
                if !all_cores && parsed.load(std::sync::atomic::Ordering::Acquire) {
                    store.use_all_cores()?;
                    all_cores = true;
                }
                let refs: Vec<Vec<&PreparedEvent>> =
                    group.iter().map(|b| b.iter().collect()).collect();
                let slices: Vec<&[&PreparedEvent]> = refs.iter().map(Vec::as_slice).collect();
                let results = store.append_prepared_many(&slices);
                drop(refs);
                for (batch, result) in group.into_iter().zip(results) {
                    // Freed by the parsing thread; if it has stopped, here.
                    let _ = give_back.send(batch);
                    let statuses = result?;
                    let new = statuses
                        .iter()
                        .filter(|s| **s == AppendStatus::Stored)
                        .count() as u64;
                    stored += new;
                    duplicates += statuses.len() as u64 - new;
                }
            }
            store.flush()?;
            // Whatever runs next in this process (the scoring tables, the demo's scoring)
            // gets every core, even when the last batch came before parsing was known done.
            if !all_cores {
                store.use_all_cores()?;
            }
            Ok((stored, duplicates))
        });
        let mut importer = Importer {
            batches,
            done,
            spare: Vec::new(),
            ctx: ParseContext {
                received_at: chrono::Utc::now(),
                source: IngestSource::Import,
                max_event_bytes: config.limits.max_event_bytes,
                trust_received_at: true,
            },
            group_type: config.posthog_group_type.clone(),
            batch: Vec::with_capacity(args.batch_size),
            batch_size: args.batch_size.max(1),
            summary: ImportSummary::default(),
        };
        let read = read_files(&mut importer, &args, &bar);
        let flushed = importer.flush();
        parsed.store(true, std::sync::atomic::Ordering::Release);
        drop(importer.batches);
        // The appender's error explains a failed hand-over best, so it is reported first.
        let (stored, duplicates) = appender
            .join()
            .map_err(|_| anyhow::anyhow!("the appending thread panicked"))??;
        read?;
        flushed?;
        bar.finish_and_clear();
        let mut summary = importer.summary;
        summary.stored = stored;
        summary.duplicates = duplicates;
        Ok(summary)
    })
}

fn read_files(importer: &mut Importer, args: &ImportArgs, bar: &ProgressBar) -> anyhow::Result<()> {
    for path in &args.files {
        if !path.exists() {
            anyhow::bail!("{}: no such file", path.display());
        }
        bar.set_message(path.display().to_string());
        match format_of(path, args.format) {
            Format::Csv | Format::Parquet => {
                let fmt = if format_of(path, args.format) == Format::Csv {
                    TabularFormat::Csv
                } else {
                    TabularFormat::Parquet
                };
                let mut line = 1; // the header
                for_each_row(path, fmt, |obj| -> Result<(), StoreError> {
                    line += 1;
                    let raw = serde_json::to_vec(&obj)?;
                    importer.object(path, line, &raw, obj)
                })
                .with_context(|| format!("reading {}", path.display()))?;
                bar.inc(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
            }
            Format::Ndjson | Format::Auto => import_ndjson(importer, path, bar)?,
        }
    }
    Ok(())
}

fn import_ndjson(importer: &mut Importer, path: &Path, bar: &ProgressBar) -> anyhow::Result<()> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 2];
    let gz = file
        .read(&mut magic)
        .map(|n| n == 2 && magic == [0x1f, 0x8b])
        .unwrap_or(false);
    let file = File::open(path)?;
    let counted = bar.wrap_read(file);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(counted))
    } else {
        Box::new(counted)
    };
    // Lines far past the event limit are not held in memory: they are rejected by size.
    let max_line = importer
        .ctx
        .max_event_bytes
        .saturating_mul(2)
        .saturating_add(64 << 10);
    let mut lines = Lines::new(reader, max_line);
    while let Some((line, text)) = lines
        .next_line()
        .with_context(|| format!("reading {}", path.display()))?
    {
        match text {
            Line::Text(raw) => {
                let text = raw.trim_ascii();
                if !text.is_empty() {
                    importer.line(path, line, text)?;
                }
            }
            Line::TooLong(size) => importer.too_long(path, line, size),
        }
    }
    Ok(())
}
