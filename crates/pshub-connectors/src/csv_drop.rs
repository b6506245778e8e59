//! The CSV drop connector: a watched folder per source (the engine's half, reading a file's
//! rows through the source's mappings, is `pshub_engine::csv_drop`).
//!
//! Every `poll` the folder's `*.csv` files are looked at. A file is read once it is whole:
//! its `<file>.ready` marker exists, or its size and modification time held still for the
//! source's `stable_ms` (a file half written when seen is not read early). Its rows go to
//! the engine as one submission; once they are committed the file moves to `done/`, or to
//! `failed/` when its header failed the check or any row was refused, with
//! `<file>.report.json` beside it naming each refused line and why. A crash between the
//! commit and the move reads the file again on the next start, and the hub drops the
//! repeats by event id.

use pshub_engine::Engine;
use pshub_engine::csv_drop::{CsvDrop, Ready, read_file};
use pshub_engine::hub::IngestStatus;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

/// What the connector does, each logged and counted (`pshub_connector_events_total`).
#[derive(Debug)]
enum DropEvent<'a> {
    /// The folder was looked at.
    Scanned,
    /// A file was seen but is not whole yet.
    NotReady { file: &'a str },
    /// A file's rows were committed and it moved to `done/`.
    Taken { file: &'a str, rows: u64 },
    /// A file moved to `failed/`: its header failed, or rows were refused.
    Failed { file: &'a str, why: &'a str },
    /// The folder or a file could not be read or moved; tried again next time.
    Trouble { what: &'a str },
}

impl DropEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            DropEvent::Scanned => "scan",
            DropEvent::NotReady { .. } => "file_not_ready",
            DropEvent::Taken { .. } => "file_done",
            DropEvent::Failed { .. } => "file_failed",
            DropEvent::Trouble { .. } => "trouble",
        }
    }

    fn emit(&self, engine: &Engine, source: &str) {
        match self {
            DropEvent::Scanned => tracing::trace!(source, "csv drop scanned"),
            DropEvent::NotReady { file } => {
                tracing::debug!(source, file, "csv drop: file not whole yet")
            }
            DropEvent::Taken { file, rows } => {
                tracing::info!(source, file, rows, "csv drop: file taken")
            }
            DropEvent::Failed { file, why } => {
                tracing::warn!(source, file, why, "csv drop: file failed")
            }
            DropEvent::Trouble { what } => tracing::warn!(source, what, "csv drop: trouble"),
        }
        engine.metrics().connector_event(source, self.name());
    }
}

/// One source's folder, as the watcher sees it.
pub struct Watcher {
    engine: Arc<Engine>,
    source: String,
    drop: CsvDrop,
    /// Per file not yet whole: its size and modification time, and since when they held.
    seen: HashMap<PathBuf, (u64, Option<SystemTime>, Instant)>,
}

impl Watcher {
    pub fn new(engine: Arc<Engine>, source: &str, drop: CsvDrop) -> Watcher {
        Watcher {
            engine,
            source: source.to_string(),
            drop,
            seen: HashMap::new(),
        }
    }

    /// Watches the folder on a thread of its own until `stop` is set.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("csv-drop-{}", self.source))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    self.scan();
                    std::thread::sleep(self.drop.poll);
                }
            })
    }

    fn emit(&self, event: DropEvent<'_>) {
        event.emit(&self.engine, &self.source);
    }

    /// Looks at the folder once: takes every file that is whole.
    pub fn scan(&mut self) {
        let files = match self.files() {
            Ok(files) => files,
            Err(e) => {
                let what = format!("cannot list {}: {e}", self.drop.dir.display());
                self.emit(DropEvent::Trouble { what: &what });
                return;
            }
        };
        self.seen.retain(|path, _| files.contains(path));
        for path in files {
            if self.is_whole(&path) {
                self.seen.remove(&path);
                self.take(&path);
            } else {
                let name = file_name(&path);
                self.emit(DropEvent::NotReady { file: &name });
            }
        }
        self.emit(DropEvent::Scanned);
    }

    /// The folder's CSV files, by name.
    fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.drop.dir)? {
            let entry = entry?;
            let path = entry.path();
            let is_csv = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            if is_csv && entry.file_type()?.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    fn is_whole(&mut self, path: &Path) -> bool {
        match self.drop.ready {
            Ready::Marker => marker(path).is_file(),
            Ready::SizeStable(hold) => {
                let Ok(meta) = std::fs::metadata(path) else {
                    return false;
                };
                let now = (meta.len(), meta.modified().ok());
                match self.seen.get(path) {
                    Some(&(len, modified, since)) if (len, modified) == now => {
                        since.elapsed() >= hold
                    }
                    _ => {
                        self.seen
                            .insert(path.to_path_buf(), (now.0, now.1, Instant::now()));
                        false
                    }
                }
            }
        }
    }

    /// Reads a whole file, hands its rows to the engine and, once they are committed,
    /// moves it with its report.
    fn take(&self, path: &Path) {
        let name = file_name(path);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let what = format!("cannot read {name}: {e}");
                return self.emit(DropEvent::Trouble { what: &what });
            }
        };
        let config = self.engine.config();
        let read = match read_file(&self.source, &name, &bytes, &self.drop, config) {
            Ok(read) => read,
            Err(why) => {
                let report = json!({ "file": name, "error": why, "rows": [] });
                self.finish(path, "failed", &report);
                return self.emit(DropEvent::Failed {
                    file: &name,
                    why: &why,
                });
            }
        };
        let (lines, incoming): (Vec<u64>, Vec<_>) = read.incoming.into_iter().unzip();
        let results = match self.engine.submit_incoming(incoming) {
            Ok(results) => results,
            Err(e) => {
                // Nothing was committed: the file stays, and is read again next time.
                let what = format!("{name}: the hub did not commit its rows: {e}");
                return self.emit(DropEvent::Trouble { what: &what });
            }
        };
        let mut refused = Vec::new();
        let mut rows = Vec::new();
        for (line, result) in lines.iter().zip(&results) {
            rows.push(json!({
                "line": line, "id": result.id, "status": result.status.as_str(), "reason": result.reason,
            }));
            if result.status == IngestStatus::Quarantined {
                refused.push(*line);
            }
        }
        for (line, why) in &read.not_taken {
            rows.push(json!({ "line": line, "status": "ignored", "reason": why }));
        }
        let report = json!({ "file": name, "rows": rows, "refused_lines": refused });
        if refused.is_empty() {
            self.finish(path, "done", &report);
            self.emit(DropEvent::Taken {
                file: &name,
                rows: read.rows,
            });
        } else {
            let why = format!(
                "lines {} refused (kept in the quarantine with their file and line)",
                refused
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.finish(path, "failed", &report);
            self.emit(DropEvent::Failed {
                file: &name,
                why: &why,
            });
        }
    }

    /// Moves a file into `done/` or `failed/` with its report, and drops its marker.
    fn finish(&self, path: &Path, to: &str, report: &Value) {
        let folder = self.drop.dir.join(to);
        let moved = std::fs::create_dir_all(&folder).and_then(|()| {
            let target = free_name(&folder, &file_name(path));
            std::fs::rename(path, &target)?;
            let report_path = PathBuf::from(format!("{}.report.json", target.display()));
            std::fs::write(report_path, serde_json::to_vec_pretty(report)?)
        });
        if let Err(e) = moved {
            let what = format!("cannot move {} to {to}/: {e}", path.display());
            self.emit(DropEvent::Trouble { what: &what });
        }
        let _ = std::fs::remove_file(marker(path));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// `<file>.ready`, the marker a sender writes when the file is whole.
fn marker(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.ready", path.display()))
}

/// `name` in `folder`, or, when a file of that name was processed before, the name with
/// a counter before its extension.
fn free_name(folder: &Path, name: &str) -> PathBuf {
    let first = folder.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    (1..)
        .map(|n| folder.join(format!("{stem}.{n}.{extension}")))
        .find(|candidate| !candidate.exists())
        .unwrap_or(first)
}
