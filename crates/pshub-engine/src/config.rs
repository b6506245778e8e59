//! Deployment configuration the engine reads: which systems may send events, which system
//! each flow calls, the regional settings that enrichment needs, and how deliveries retry.
//! Regional facts live here, never in code.

use crate::retry::RetrySchedule;
use pshub_model::records::Classification;
use pshub_model::{Currency, Domain};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::time::Duration;

/// A legal entity as configuration describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LegalEntity {
    pub currency: Option<Currency>,
    /// The tax code of its invoice lines; `None` holds them in a finance case.
    pub tax_code: Option<String>,
    /// By customer country, the tax codes the entity may invoice with; a country not listed
    /// is not restricted.
    pub allowed_tax_codes: BTreeMap<String, Vec<String>>,
    /// The tax treatment of a worker classification: the tax code of their lines, in place
    /// of `tax_code` (a contractor's work reverse-charged, say).
    pub classification_tax_codes: BTreeMap<Classification, String>,
}

/// A region's rules: its working week (for capacity) and its overtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Hours of a full working week (capacity when the PSA sent no availability).
    pub weekly_hours: Decimal,
    /// The days of the working week.
    pub working_days: Vec<chrono::Weekday>,
    pub overtime: Option<Overtime>,
}

impl Default for Region {
    fn default() -> Self {
        use chrono::Weekday::*;
        Region {
            weekly_hours: Decimal::from(40),
            working_days: vec![Mon, Tue, Wed, Thu, Fri],
            overtime: None,
        }
    }
}

/// Hours past a day's or a week's limit are overtime: costed at `cost_multiplier`, and
/// billed at `bill_multiplier` where the contract says `bill_overtime`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overtime {
    pub daily_hours: Option<Decimal>,
    pub weekly_hours: Option<Decimal>,
    pub cost_multiplier: Decimal,
    pub bill_multiplier: Decimal,
}

/// The event bus of a deployment of several hub processes (`bus = "nats://..."`): where it
/// is, and how long a message taken but not acknowledged waits before it is delivered again.
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    pub url: String,
    pub ack_wait: Duration,
    /// The first token of the bus's subjects and the name of its stream and consumer
    /// (`pshub`: `pshub.events.>`, `PSHUB_EVENTS`, `pshub-hub`), so that two deployments,
    /// a staging and a production hub, can share one NATS server.
    pub namespace: String,
}

impl Bus {
    pub const DEFAULT_NAMESPACE: &str = "pshub";

    /// The subjects inbound events are published on.
    pub fn events_subjects(&self) -> String {
        format!("{}.events.>", self.namespace)
    }

    /// The stream that holds them.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.namespace.to_uppercase())
    }

    /// The durable consumer every hub process shares.
    pub fn consumer(&self) -> String {
        format!("{}-hub", self.namespace)
    }

    /// The stream of the hub's business events, `<namespace>.out.<type>`.
    pub fn out_stream(&self) -> String {
        format!("{}_OUT", self.namespace.to_uppercase())
    }

    /// The subject of an outbound event of `event_type` (`pshub.out.invoice_line.posted`).
    pub fn out_subject(&self, event_type: &str) -> String {
        format!("{}.out.{event_type}", self.namespace)
    }

    /// The name the relay's cursor is saved under.
    pub fn out_cursor(&self) -> String {
        format!("bus_out:{}", self.namespace)
    }
}

/// What a downstream target must not see as it is: fields dropped, hashed or masked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Masking {
    pub drop: Vec<String>,
    pub hash: Vec<String>,
    pub mask: Vec<String>,
    /// Personal fields (`name`, `email`) this target may see in `resource.changed`, which
    /// otherwise leaves them out for every target.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Systems allowed to send events (`crm`, `psa`, `hris`, `erp`, `payroll`).
    pub sources: Vec<String>,
    /// The system of record of each domain (PRODUCT.md section 3); a domain not listed is
    /// owned by its usual system ([`Domain::usual_owner`]).
    pub owners: BTreeMap<Domain, String>,
    /// Legal entities by code. Once any is configured, a line of an entity that is not
    /// has no tax code.
    pub legal_entities: BTreeMap<String, LegalEntity>,
    /// A project whose forecast margin falls under this share of revenue opens a case.
    pub margin_floor_pct: Decimal,
    /// Payroll cost that differs from standard cost by more than this share opens a case.
    pub variance_threshold_pct: Decimal,
    /// Regional rules by region code; a region not listed has the default week and no
    /// overtime.
    pub regions: BTreeMap<String, Region>,
    /// Per downstream target, what its copies of outbound events leave out.
    pub masking: BTreeMap<String, Masking>,
    /// Legal forms dropped from the end of customer names, on top of the built-in list.
    pub legal_forms: Vec<String>,
    /// Tax code of invoice lines by the project's legal entity.
    pub tax_codes: BTreeMap<String, String>,
    /// Tax code for legal entities without one of their own; `None` opens a finance case.
    pub default_tax_code: Option<String>,
    /// The configured systems the flows call, by role. `erp_system` is the ERP of work that
    /// no route matches.
    pub erp_system: String,
    /// Where a flow's ERP operations go, by legal entity, region and service line: the
    /// first route that matches, else `erp_system` (cut-over in waves).
    pub routes: Vec<Route>,
    pub psa_system: String,
    pub crm_system: String,
    /// The tax engine each invoice line's tax is determined by before it is posted, when the
    /// deployment has one (else lines carry the configured tax code as it is).
    pub tax_system: Option<String>,
    /// The retry schedule of steps that fail technically.
    pub retry: RetrySchedule,
    /// A worker's approved hours on one day beyond this open a `pmo` case.
    pub max_daily_hours: Option<Decimal>,
    /// Calls in a row that fail technically before a system's breaker opens.
    pub breaker_threshold: u32,
    /// How long an open breaker waits before it lets a probe through.
    pub breaker_cool_down: Duration,
    /// How long a claimed step is leased; renewed while its call runs.
    pub lease: Duration,
    /// Steps one delivery round claims per system.
    pub delivery_batch: u32,
    /// After a round that took fewer than `delivery_batch` steps, how long a system's worker
    /// waits before the next: each round is one write and one fsync.
    pub delivery_pause: Duration,
    /// A system's own round size and pause, in place of the two above (a connector that
    /// batches on its own terms: Tryton's `batch_size` and `batch_wait_ms`).
    pub delivery_pacing: BTreeMap<String, (u32, Duration)>,
    /// For crash tests: exit with status 137 right after a step of this name
    /// (`opportunity_to_project.psa`) is recorded done.
    pub crash_after: Option<String>,
    /// Sources whose records arrive through a connector of the system-API layer (a signed
    /// webhook), by source name, with the mapping that makes them canonical.
    pub inbound: BTreeMap<String, crate::hooks::Inbound>,
    /// Sources whose records arrive as CSV files in a watched folder, by source name.
    pub csv_drops: BTreeMap<String, crate::csv_drop::CsvDrop>,
    /// The NATS JetStream bus, when the deployment has one (else events come only through
    /// the hub's own doors).
    pub bus: Option<Bus>,
    /// Sources read by polling a REST endpoint with a durable cursor.
    pub rest_polls: BTreeMap<String, crate::rest_poll::RestPoll>,
    /// Sources whose records arrive on NATS JetStream subjects, by source name.
    pub nats_sources: BTreeMap<String, crate::nats_source::NatsSource>,
    /// Sources read from a PostgreSQL table by a watermark column, by source name.
    pub pg_tables: BTreeMap<String, crate::pg_table::PgTable>,
    /// Exchanges the outbound stream is published to, by target name.
    pub amqp_targets: BTreeMap<String, crate::amqp::AmqpTarget>,
    /// The tables the outbound stream is written to (`[targets.<name>] connector = "pg_table"`).
    pub pg_table_targets: BTreeMap<String, crate::pg_table::PgTableTarget>,
    /// Sources whose records arrive on a RabbitMQ queue, by source name.
    pub amqp_sources: BTreeMap<String, crate::amqp::AmqpSource>,
    /// Every mapping the hub knows: those shipped and those of `[mappings] dir`.
    pub mappings: std::sync::Arc<pshub_mapping::Mappings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sources: ["crm", "psa", "hris", "erp", "payroll"]
                .map(String::from)
                .to_vec(),
            owners: BTreeMap::new(),
            legal_entities: BTreeMap::new(),
            margin_floor_pct: Decimal::from(20),
            variance_threshold_pct: Decimal::from(10),
            regions: BTreeMap::new(),
            masking: BTreeMap::new(),
            legal_forms: Vec::new(),
            tax_codes: BTreeMap::new(),
            default_tax_code: Some("STANDARD".into()),
            erp_system: "erp".into(),
            routes: Vec::new(),
            psa_system: "psa".into(),
            crm_system: "crm".into(),
            tax_system: None,
            retry: RetrySchedule::default(),
            max_daily_hours: None,
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(2),
            lease: Duration::from_secs(5),
            delivery_batch: 2_000,
            delivery_pause: Duration::from_millis(20),
            delivery_pacing: BTreeMap::new(),
            crash_after: None,
            inbound: BTreeMap::new(),
            csv_drops: BTreeMap::new(),
            rest_polls: BTreeMap::new(),
            amqp_sources: BTreeMap::new(),
            amqp_targets: BTreeMap::new(),
            pg_table_targets: BTreeMap::new(),
            pg_tables: BTreeMap::new(),
            nats_sources: BTreeMap::new(),
            bus: None,
            mappings: std::sync::Arc::new(pshub_mapping::Mappings::shipped()),
        }
    }
}

/// One `[[routes]]` entry: the ERP of the work it matches. Each list that is not empty must
/// hold the work's value; a route with no list matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub name: String,
    pub legal_entities: Vec<String>,
    pub regions: Vec<String>,
    pub service_lines: Vec<String>,
    /// The configured ERP that receives the work for real.
    pub erp: String,
    /// In shadow mode, the ERP that receives the same work alongside, for comparison.
    pub shadow: Option<String>,
}

/// What the routed work is: the attributes a route matches on. A worker has no service
/// line; what is not known matches only routes that do not ask for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteKey<'a> {
    pub legal_entity: Option<&'a str>,
    pub region: Option<&'a str>,
    pub service_line: Option<&'a str>,
}

impl<'a> RouteKey<'a> {
    pub fn project(project: &'a pshub_model::records::Project) -> Self {
        RouteKey {
            legal_entity: Some(&project.legal_entity),
            region: Some(&project.region),
            service_line: Some(&project.service_line),
        }
    }
}

/// The ERPs a piece of work goes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routed<'a> {
    /// The route that matched; `None` for the default ERP.
    pub route: Option<&'a str>,
    pub erp: &'a str,
    pub shadow: Option<&'a str>,
}

impl Route {
    pub fn matches(&self, key: &RouteKey<'_>) -> bool {
        let holds = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
        };
        holds(&self.legal_entities, key.legal_entity)
            && holds(&self.regions, key.region)
            && holds(&self.service_lines, key.service_line)
    }
}

impl Config {
    /// The ERPs of work with these attributes: the first route that matches, else the
    /// default ERP.
    pub fn route(&self, key: &RouteKey<'_>) -> Routed<'_> {
        match self.routes.iter().find(|r| r.matches(key)) {
            Some(route) => Routed {
                route: Some(&route.name),
                erp: &route.erp,
                shadow: route.shadow.as_deref(),
            },
            None => Routed {
                route: None,
                erp: &self.erp_system,
                shadow: None,
            },
        }
    }

    /// The ERPs of a project's work, by its legal entity, region and service line (a
    /// project the hub does not know matches only routes that ask for nothing).
    pub fn route_of_project(&self, world: &crate::world::World, project_code: &str) -> Routed<'_> {
        if self.routes.is_empty() {
            return self.route(&RouteKey::default());
        }
        let key = world
            .project_by_code(project_code)
            .map(|p| RouteKey::project(&p.project))
            .unwrap_or_default();
        self.route(&key)
    }

    /// The ERPs of a worker's work on `date`, by their legal entity and region then (a
    /// worker has no service line).
    pub fn route_of_worker(
        &self,
        world: &crate::world::World,
        worker: &pshub_model::WorkerId,
        date: chrono::NaiveDate,
    ) -> Routed<'_> {
        let state = world.worker_on(worker, date);
        self.route(&RouteKey {
            legal_entity: state.as_ref().and_then(|s| s.legal_entity),
            region: state.as_ref().and_then(|s| s.region),
            service_line: None,
        })
    }

    /// The ERPs that take work for real: the default and each route's (not the shadows).
    pub fn primary_erps(&self) -> Vec<&str> {
        let mut names = vec![self.erp_system.as_str()];
        for route in &self.routes {
            if !names.contains(&route.erp.as_str()) {
                names.push(&route.erp);
            }
        }
        names
    }

    /// Every ERP a route or the default names, once each.
    pub fn erp_systems(&self) -> Vec<&str> {
        let mut names = vec![self.erp_system.as_str()];
        for route in &self.routes {
            names.push(&route.erp);
            names.extend(route.shadow.as_deref());
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(*n));
        names
    }

    /// Steps per delivery round for `system`, and the pause after a round that was not full.
    pub fn pacing(&self, system: &str) -> (u32, Duration) {
        self.delivery_pacing
            .get(system)
            .copied()
            .unwrap_or((self.delivery_batch, self.delivery_pause))
    }

    pub fn knows_source(&self, source: &str) -> bool {
        self.sources.iter().any(|known| known == source)
    }

    /// The system of record of `domain`.
    pub fn owner_of(&self, domain: Domain) -> &str {
        self.owners
            .get(&domain)
            .map_or(domain.usual_owner(), String::as_str)
    }

    /// The rules of a region (the defaults for a region not configured).
    pub fn region(&self, code: &str) -> std::borrow::Cow<'_, Region> {
        match self.regions.get(code) {
            Some(region) => std::borrow::Cow::Borrowed(region),
            None => std::borrow::Cow::Owned(Region::default()),
        }
    }

    /// The tax code of a line of work by a worker of this classification: the entity's
    /// treatment of the classification, else its tax code.
    pub fn tax_code_for_work(
        &self,
        legal_entity: &str,
        classification: Classification,
    ) -> Option<&str> {
        self.legal_entities
            .get(legal_entity)
            .and_then(|e| e.classification_tax_codes.get(&classification))
            .map(String::as_str)
            .or_else(|| self.tax_code_for(legal_entity))
    }

    pub fn tax_code_for(&self, legal_entity: &str) -> Option<&str> {
        self.tax_codes
            .get(legal_entity)
            .or(self.default_tax_code.as_ref())
            .map(String::as_str)
    }
}
