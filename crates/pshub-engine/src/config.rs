//! Deployment configuration the engine reads: which systems may send events, and the
//! regional settings that enrichment needs. Regional facts live here, never in code.

use crate::retry::RetrySchedule;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Config {
    /// Systems allowed to send events (`crm`, `psa`, `hris`, `erp`, `payroll`).
    pub sources: Vec<String>,
    /// Tax code of invoice lines by the project's legal entity.
    pub tax_codes: BTreeMap<String, String>,
    /// Tax code for legal entities without one of their own; `None` opens a finance case.
    pub default_tax_code: Option<String>,
    /// The retry schedule of outbound calls.
    pub retry: RetrySchedule,
    /// How long an outbound item waits before looking again at the item it depends on
    /// (a line for its project's provisioning, a reversal for its original).
    pub prerequisite_poll: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sources: ["crm", "psa", "hris", "erp", "payroll"]
                .map(String::from)
                .to_vec(),
            tax_codes: BTreeMap::new(),
            default_tax_code: Some("STANDARD".into()),
            retry: RetrySchedule::default(),
            prerequisite_poll: std::time::Duration::from_millis(50),
        }
    }
}

impl Config {
    pub fn knows_source(&self, source: &str) -> bool {
        self.sources.iter().any(|known| known == source)
    }

    pub fn tax_code_for(&self, legal_entity: &str) -> Option<&str> {
        self.tax_codes
            .get(legal_entity)
            .or(self.default_tax_code.as_ref())
            .map(String::as_str)
    }
}
