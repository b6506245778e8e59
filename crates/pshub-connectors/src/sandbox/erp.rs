//! The sandbox ERP. Like a real one it keys projects by their code and assigns its own ids,
//! refuses a line for a project it does not know, answers a re-sent idempotency key with
//! the id it gave the first time, and keeps what it created across restarts (an append-only
//! file in the data folder). It can be told to fail a share of calls, answer slowly, or
//! time out, to exercise retries and dead letters.

use pshub_engine::fingerprint::fingerprint;
use pshub_engine::ports::{ErpError, ErpPort, LinePosting, ProjectPosting};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::rng::Rng;

/// Misbehaviour on demand. Shares are per million calls.
#[derive(Debug, Clone, Default)]
pub struct ErpFaults {
    /// Calls answered with a 503-like technical failure.
    pub failure_per_million: u64,
    /// Calls that time out after `latency`.
    pub timeout_per_million: u64,
    /// Added to every call.
    pub latency: Duration,
    /// Sent with failures, as a `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl ErpFaults {
    /// Reads `fail=0.02,timeout=0.01,latency_ms=50,retry_after_s=5`: shares of calls that
    /// fail or time out, a delay added to every call, and the `Retry-After` sent with failures.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = ErpFaults::default();
        let share = |key: &str, raw: &str| -> Result<u64, String> {
            let share: rust_decimal::Decimal = raw
                .parse()
                .map_err(|_| format!("{key}: '{raw}' is not a number from 0 to 1"))?;
            if share < rust_decimal::Decimal::ZERO || share > rust_decimal::Decimal::ONE {
                return Err(format!("{key}: '{raw}' is not a number from 0 to 1"));
            }
            u64::try_from(
                (share * rust_decimal::Decimal::from(1_000_000))
                    .trunc()
                    .mantissa(),
            )
            .map_err(|_| format!("{key}: '{raw}' is out of range"))
        };
        let whole = |key: &str, raw: &str| {
            raw.parse::<u64>()
                .map_err(|_| format!("{key}: '{raw}' is not a whole number"))
        };
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, raw) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not KEY=VALUE"))?;
            match key.trim() {
                "fail" => faults.failure_per_million = share("fail", raw.trim())?,
                "timeout" => faults.timeout_per_million = share("timeout", raw.trim())?,
                "latency_ms" => {
                    faults.latency = Duration::from_millis(whole("latency_ms", raw.trim())?)
                }
                "retry_after_s" => {
                    faults.retry_after =
                        Some(Duration::from_secs(whole("retry_after_s", raw.trim())?))
                }
                other => {
                    return Err(format!(
                        "'{other}' is not one of fail, timeout, latency_ms, retry_after_s"
                    ));
                }
            }
        }
        Ok(faults)
    }
}

#[derive(Default)]
struct State {
    projects: HashMap<String, String>,
    /// Hash of the idempotency key to the ERP's line id. A sandbox simplification: a
    /// 64-bit hash stands in for the key to keep a million lines in little memory.
    lines: HashMap<u64, u64>,
    next_line: u64,
    resent_keys: u64,
    refused: u64,
    failed_calls: u64,
    log: Option<File>,
    rng: Option<Rng>,
}

pub struct SandboxErp {
    state: Mutex<State>,
    faults: Mutex<ErpFaults>,
}

const LOG_FILE: &str = "sandbox-erp.log";

impl SandboxErp {
    /// An ERP that forgets everything when the process ends.
    pub fn in_memory() -> Self {
        SandboxErp {
            state: Mutex::new(State {
                rng: Some(Rng::new(7)),
                ..State::default()
            }),
            faults: Mutex::new(ErpFaults::default()),
        }
    }

    /// An ERP that keeps its records in `data_dir`, as a real one would across restarts of the hub.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(LOG_FILE);
        let mut state = State {
            rng: Some(Rng::new(7)),
            ..State::default()
        };
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                let line = line?;
                let mut parts = line.split('\t');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("P"), Some(code), Some(id)) => {
                        state.projects.insert(code.to_string(), id.to_string());
                    }
                    (Some("L"), Some(hash), Some(id)) => {
                        if let (Ok(hash), Ok(id)) = (hash.parse(), id.parse::<u64>()) {
                            state.lines.insert(hash, id);
                            state.next_line = state.next_line.max(id);
                        }
                    }
                    _ => {} // a torn last line after a crash: that record was never answered
                }
            }
        }
        state.log = Some(OpenOptions::new().create(true).append(true).open(&path)?);
        Ok(SandboxErp {
            state: Mutex::new(state),
            faults: Mutex::new(ErpFaults::default()),
        })
    }

    pub fn set_faults(&self, faults: ErpFaults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many distinct lines the ERP holds.
    pub fn line_count(&self) -> usize {
        self.lock().lines.len()
    }

    /// Decides whether this call misbehaves, sleeping for the configured latency.
    fn fault(&self) -> Option<ErpError> {
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !faults.latency.is_zero() {
            std::thread::sleep(faults.latency);
        }
        let mut state = self.lock();
        let rng = state.rng.get_or_insert_with(|| Rng::new(7));
        let roll = rng.below(1_000_000);
        let error = if roll < faults.timeout_per_million {
            Some(ErpError::Technical {
                message: "timed out waiting for the ERP".into(),
                retry_after: None,
            })
        } else if roll < faults.timeout_per_million + faults.failure_per_million {
            Some(ErpError::Technical {
                message: "503 service unavailable".into(),
                retry_after: faults.retry_after,
            })
        } else {
            None
        };
        if error.is_some() {
            state.failed_calls += 1;
        }
        error
    }

    fn append(state: &mut State, record: &str) {
        if let Some(log) = state.log.as_mut()
            && let Err(error) = log.write_all(record.as_bytes())
        {
            tracing::error!(%error, "sandbox erp could not write its log");
        }
    }
}

impl ErpPort for SandboxErp {
    fn ensure_project(&self, project: &ProjectPosting) -> Result<String, ErpError> {
        if let Some(error) = self.fault() {
            return Err(error);
        }
        let mut state = self.lock();
        if let Some(id) = state.projects.get(&project.project_code) {
            return Ok(id.clone());
        }
        let id = format!("ERP-PRJ-{:05}", state.projects.len() + 1);
        state
            .projects
            .insert(project.project_code.clone(), id.clone());
        let record = format!("P\t{}\t{id}\n", project.project_code);
        Self::append(&mut state, &record);
        Ok(id)
    }

    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Result<String, ErpError>> {
        if let Some(error) = self.fault() {
            return lines.iter().map(|_| Err(error.clone())).collect();
        }
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut log = String::new();
        let answers = lines
            .iter()
            .map(|line| {
                if !state.projects.contains_key(&line.project_code) {
                    state.refused += 1;
                    return Err(ErpError::Rejected {
                        reason: format!("project {} does not exist in the ERP", line.project_code),
                    });
                }
                let key = fingerprint(&[&line.idempotency_key]);
                if let Some(id) = state.lines.get(&key).copied() {
                    state.resent_keys += 1;
                    return Ok(format!("ERP-L-{id:08}"));
                }
                state.next_line += 1;
                let id = state.next_line;
                state.lines.insert(key, id);
                log.push_str(&format!("L\t{key}\t{id}\n"));
                Ok(format!("ERP-L-{id:08}"))
            })
            .collect();
        Self::append(state, &log);
        answers
    }

    fn describe(&self) -> serde_json::Value {
        let state = self.lock();
        serde_json::json!({
            "kind": "sandbox",
            "projects": state.projects.len(),
            "lines": state.lines.len(),
            "resent_keys_answered": state.resent_keys,
            "lines_refused": state.refused,
            "failed_calls": state.failed_calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pshub_model::Currency;

    fn line(key: &str, project: &str) -> LinePosting {
        LinePosting {
            idempotency_key: key.into(),
            kind: "time",
            project_code: project.into(),
            source_id: "T-1".into(),
            worker_id: "W-1".into(),
            date: "2026-03-02".parse().unwrap(),
            quantity: "1".parse().unwrap(),
            rate: "100".parse().unwrap(),
            rate_currency: Currency::parse("EUR").unwrap(),
            amount: "100.00".parse().unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            tax_code: "STANDARD".into(),
            billing_class: "professional_services".into(),
            reverses_erp_id: None,
        }
    }

    fn project(code: &str) -> ProjectPosting {
        ProjectPosting {
            idempotency_key: format!("project:{code}"),
            project_code: code.into(),
            name: "Audit".into(),
            legal_entity: "DE01".into(),
            currency: Currency::parse("EUR").unwrap(),
        }
    }

    #[test]
    fn assigns_ids_once_per_key_and_refuses_unknown_projects() {
        let erp = SandboxErp::in_memory();
        assert_eq!(
            erp.ensure_project(&project("P-1")),
            erp.ensure_project(&project("P-1"))
        );
        let first = erp.post_lines(&[line("k1", "P-1"), line("k2", "P-1"), line("k3", "P-9")]);
        assert!(matches!(first[2], Err(ErpError::Rejected { .. })));
        let again = erp.post_lines(&[line("k1", "P-1")]);
        assert_eq!(first[0], again[0]);
        assert_ne!(first[0], first[1]);
        assert_eq!(erp.line_count(), 2);
    }

    #[test]
    fn keeps_its_records_across_restarts() {
        let dir = std::env::temp_dir().join(format!("pshub-erp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(LOG_FILE));
        let first = {
            let erp = SandboxErp::open(&dir).unwrap();
            erp.ensure_project(&project("P-1")).unwrap();
            erp.post_lines(&[line("k1", "P-1")]).remove(0).unwrap()
        };
        let erp = SandboxErp::open(&dir).unwrap();
        assert_eq!(
            erp.post_lines(&[line("k1", "P-1")]).remove(0).unwrap(),
            first
        );
        assert_eq!(erp.line_count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn faults_read_from_a_setting() {
        let faults =
            ErpFaults::parse("fail=0.02, timeout=0.001,latency_ms=50,retry_after_s=5").unwrap();
        assert_eq!(
            (faults.failure_per_million, faults.timeout_per_million),
            (20_000, 1_000)
        );
        assert_eq!(faults.latency, Duration::from_millis(50));
        assert_eq!(faults.retry_after, Some(Duration::from_secs(5)));
        assert_eq!(
            ErpFaults::parse("fail=2").unwrap_err(),
            "fail: '2' is not a number from 0 to 1"
        );
        assert!(ErpFaults::parse("slow=1").unwrap_err().contains("'slow'"));
    }

    #[test]
    fn fails_calls_on_demand() {
        let erp = SandboxErp::in_memory();
        erp.set_faults(ErpFaults {
            failure_per_million: 1_000_000,
            ..ErpFaults::default()
        });
        assert!(matches!(
            erp.ensure_project(&project("P-1")),
            Err(ErpError::Technical { .. })
        ));
    }
}
