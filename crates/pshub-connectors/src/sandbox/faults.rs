//! Misbehaviour on demand, per sandbox system, read from a setting such as
//! `erp.fail=0.3,erp.timeout=0.05,erp.lost_reply=0.05,erp.retry_after_s=2,crm.fail=0.1`.

use super::System;
use super::rng::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// How one system misbehaves. Shares are per million calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Calls answered with a 503 (nothing written).
    pub fail_per_million: u64,
    /// Calls held past the caller's patience without an answer (nothing written).
    pub timeout_per_million: u64,
    /// Calls whose write is done and whose answer is then dropped.
    pub lost_reply_per_million: u64,
    /// Added to every call.
    pub latency: Duration,
    /// How long a call that times out is held before it is abandoned.
    pub timeout_hold: Duration,
    /// Sent with failures, as a `Retry-After`.
    pub retry_after: Option<Duration>,
}

/// What one call does, as the dice decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Fail { retry_after: Option<Duration> },
    Timeout { hold: Duration },
    LostReply,
}

/// Faults of every system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    by_system: BTreeMap<System, Faults>,
}

fn share(key: &str, raw: &str) -> Result<u64, String> {
    let share: rust_decimal::Decimal = raw
        .parse()
        .map_err(|_| format!("{key}: '{raw}' is not a number from 0 to 1"))?;
    if share < rust_decimal::Decimal::ZERO || share > rust_decimal::Decimal::ONE {
        return Err(format!("{key}: '{raw}' is not a number from 0 to 1"));
    }
    let per_million = (share * rust_decimal::Decimal::from(1_000_000)).trunc();
    per_million
        .to_string()
        .parse()
        .map_err(|_| format!("{key}: '{raw}' is out of range"))
}

fn whole(key: &str, raw: &str) -> Result<u64, String> {
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n <= 86_400_000)
        .ok_or_else(|| format!("{key}: '{raw}' is not a whole number from 0 to 86400000"))
}

impl FaultPlan {
    /// Reads `system.key=value` pairs. `default_system` names the system of pairs without
    /// a `system.` prefix (the older `PSHUB_SANDBOX_ERP_FAULTS` form, `fail=0.02`).
    pub fn parse(spec: &str, default_system: Option<System>) -> Result<Self, String> {
        let mut plan = FaultPlan::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, raw) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not KEY=VALUE"))?;
            let (key, raw) = (key.trim(), raw.trim());
            let (system, name) = match key.split_once('.') {
                Some((system, name)) => (
                    System::parse(system)
                        .ok_or_else(|| format!("{key}: '{system}' is not one of psa, erp, crm"))?,
                    name,
                ),
                None => (
                    default_system
                        .ok_or_else(|| format!("{key}: name the system, as erp.{key}"))?,
                    key,
                ),
            };
            let faults = plan.by_system.entry(system).or_default();
            match name {
                "fail" => faults.fail_per_million = share(key, raw)?,
                "timeout" => faults.timeout_per_million = share(key, raw)?,
                "lost_reply" => faults.lost_reply_per_million = share(key, raw)?,
                "latency_ms" => faults.latency = Duration::from_millis(whole(key, raw)?),
                "timeout_ms" => faults.timeout_hold = Duration::from_millis(whole(key, raw)?),
                "retry_after_s" => faults.retry_after = Some(Duration::from_secs(whole(key, raw)?)),
                other => {
                    return Err(format!(
                        "{key}: '{other}' is not one of fail, timeout, lost_reply, latency_ms, timeout_ms, retry_after_s"
                    ));
                }
            }
            let total = faults.fail_per_million
                + faults.timeout_per_million
                + faults.lost_reply_per_million;
            if total > 1_000_000 {
                return Err(format!(
                    "{}: fail, timeout and lost_reply add up to more than 1",
                    system.as_str()
                ));
            }
        }
        Ok(plan)
    }

    pub fn set(&mut self, system: System, faults: Faults) {
        self.by_system.insert(system, faults);
    }

    pub fn of(&self, system: System) -> Faults {
        self.by_system.get(&system).cloned().unwrap_or_default()
    }

    /// Rolls the dice for one call to `system`.
    pub fn roll(&self, system: System, rng: &mut Rng) -> Option<Fault> {
        let faults = self.by_system.get(&system)?;
        let roll = rng.below(1_000_000);
        let hold = if faults.timeout_hold.is_zero() {
            Duration::from_millis(2_000)
        } else {
            faults.timeout_hold
        };
        if roll < faults.fail_per_million {
            Some(Fault::Fail {
                retry_after: faults.retry_after,
            })
        } else if roll < faults.fail_per_million + faults.timeout_per_million {
            Some(Fault::Timeout { hold })
        } else if roll
            < faults.fail_per_million + faults.timeout_per_million + faults.lost_reply_per_million
        {
            Some(Fault::LostReply)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_faults_per_system() {
        let plan = FaultPlan::parse(
            "erp.fail=0.3, erp.timeout=0.05,erp.lost_reply=0.05,erp.retry_after_s=2,crm.fail=0.1",
            None,
        )
        .unwrap();
        let erp = plan.of(System::Erp);
        assert_eq!(
            (
                erp.fail_per_million,
                erp.timeout_per_million,
                erp.lost_reply_per_million
            ),
            (300_000, 50_000, 50_000)
        );
        assert_eq!(erp.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(plan.of(System::Crm).fail_per_million, 100_000);
        assert_eq!(plan.of(System::Psa), Faults::default());
    }

    #[test]
    fn the_older_form_names_the_erp() {
        let plan = FaultPlan::parse("fail=0.02,latency_ms=50", Some(System::Erp)).unwrap();
        assert_eq!(plan.of(System::Erp).fail_per_million, 20_000);
        assert_eq!(plan.of(System::Erp).latency, Duration::from_millis(50));
    }

    #[test]
    fn errors_name_the_key() {
        let error = |spec: &str| FaultPlan::parse(spec, None).unwrap_err();
        assert_eq!(
            error("erp.fail=2"),
            "erp.fail: '2' is not a number from 0 to 1"
        );
        assert!(error("erp.slow=1").contains("'slow'"));
        assert!(error("hr.fail=0.1").contains("'hr'"));
        assert!(error("fail=0.1").contains("name the system"));
        assert!(error("erp.fail=0.6,erp.timeout=0.5").contains("more than 1"));
        assert!(error("erp.fail").contains("KEY=VALUE"));
    }

    #[test]
    fn the_dice_follow_the_shares() {
        let mut plan = FaultPlan::default();
        plan.set(
            System::Erp,
            Faults {
                fail_per_million: 1_000_000,
                ..Faults::default()
            },
        );
        let mut rng = Rng::new(1);
        assert!(matches!(
            plan.roll(System::Erp, &mut rng),
            Some(Fault::Fail { .. })
        ));
        assert_eq!(plan.roll(System::Psa, &mut rng), None);
    }
}
