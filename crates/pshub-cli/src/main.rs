//! `pshub`: the integration hub's one binary.

mod bench;
mod bench_generate;
mod config_connectors;
mod config_file;
mod config_sources;
mod config_targets;
mod demo;
mod demo_costing;
mod invoice;
mod ledger;
mod load;
mod mapping;
mod operate;
mod reconcile;
mod sandbox;
mod send;
mod serve;
mod token;
mod wiring;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// The writer and the API allocate many small short-lived buffers (rows, bodies); mimalloc
/// keeps them per thread and returns memory to the system, where glibc's allocator spent a
/// fifth of the ingest path's time and grew its arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pshub",
    version,
    about = "The integration hub for professional-services firms"
)]
struct Cli {
    /// The configuration file (TOML; see examples/pshub.toml). Every setting has a default.
    #[arg(long, global = true, env = "PSHUB_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API over the store.
    Serve(serve::ServeArgs),
    /// Simulate a month of a 200-person consulting firm through the real engine, then serve it.
    Demo(demo::DemoArgs),
    /// Serve the sandbox PSA, ERP and CRM over HTTP, for hubs to call (PSHUB_SANDBOX_URL).
    Sandbox(sandbox::SandboxArgs),
    /// Apply the store's migrations (every command that opens the store does so too).
    Migrate(wiring::StoreArgs),
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Send events to a running hub.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Exception cases of a running hub: list, show, resolve, dismiss, acknowledge.
    Exceptions {
        #[command(subcommand)]
        command: operate::ExceptionsCommand,
    },
    /// Deliveries of a running hub that gave up: list, replay.
    DeadLetters {
        #[command(subcommand)]
        command: operate::DeadLettersCommand,
    },
    /// Malformed events a running hub quarantined: list, replay.
    Quarantine {
        #[command(subcommand)]
        command: operate::QuarantineCommand,
    },
    /// Events a running hub received twice with other data.
    Conflicts {
        #[command(subcommand)]
        command: operate::ConflictsCommand,
    },
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Load a batch file into the store (safe while `serve` runs on it).
    Load {
        #[command(subcommand)]
        command: LoadCommand,
    },
    /// Reconcile: one system's export against another's, or the hub's records against its ERP.
    Reconcile {
        #[command(subcommand)]
        command: reconcile::ReconcileCommand,
    },
    /// Invoice in the ERP: a period's invoices through the Tryton connector.
    Invoice {
        #[command(subcommand)]
        command: InvoiceCommand,
    },
    /// Shadow runs of a running hub: compare a route's two ERPs.
    Shadow {
        #[command(subcommand)]
        command: ShadowCommand,
    },
    /// Every configured system of a running hub: what it owns, how it connects, the flows
    /// that use it, its health.
    Catalog(operate::Remote),
    /// Declarative mappings of sources' records to canonical events.
    Mapping {
        #[command(subcommand)]
        command: MappingCommand,
    },
    /// Measure the hub on this machine.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum MappingCommand {
    /// Print a mapping's canonical output on each fixture, or its errors (exit 1 if any).
    Test(mapping::TestArgs),
    /// Map a source's kept payloads again under another mapping version, through a running
    /// hub: with --dry-run, show per event the record before and after and what the flows
    /// would write; without it, apply the changes once.
    Replay(mapping::ReplayArgs),
}

#[derive(Subcommand)]
enum InvoiceCommand {
    /// Invoice every project's lines of an ended month, one invoice per project and month.
    Run(invoice::RunArgs),
}

#[derive(Subcommand)]
enum LoadCommand {
    /// A payroll file: one actual cost per worker and month (worker_id,period,gross_cost,currency).
    Payroll(load::PayrollArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once, alone on the last line, and stored hashed.
    Create(token::CreateArgs),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Send a file of events, one JSON object per line.
    Send(send::SendArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE, naming each error with its line.
    Check {
        /// The file to check.
        file: std::path::PathBuf,
    },
    /// Make a running hub re-read its configuration file (routes, default ERP, legal
    /// entities), as SIGHUP does.
    Reload(operate::Remote),
}

#[derive(Subcommand)]
enum ShadowCommand {
    /// The differences between what a shadow route's primary and shadow ERPs hold; exits
    /// with 1 when there is one.
    Report(operate::ShadowArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Approved time to posted invoice lines, the whole path with durable commits.
    TimeToBill(bench::TimeToBillArgs),
    /// The memory that reference data takes: assignments, workers and rates loaded.
    Reference(bench::ReferenceArgs),
    /// Write the time-to-bill dataset as files (reference.jsonl, work.jsonl) for benches/.
    Generate(bench_generate::GenerateArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Config {
        command: ConfigCommand::Check { file },
    } = &cli.command
    {
        return config_file::check_command(file);
    }
    if let Some(path) = &cli.config {
        wiring::use_config_file(config_file::load(path)?);
    }
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Migrate(args) => {
            wiring::init_logging("info")?;
            args.open()?;
            eprintln!("the store {} is migrated", wiring::redact(&args.url()));
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create(args),
        } => token::create(args),
        Command::Events {
            command: EventsCommand::Send(args),
        } => send::run(args),
        Command::Config {
            command: ConfigCommand::Reload(remote),
        } => operate::config_reload(remote),
        Command::Config { .. } => Ok(()),
        Command::Shadow {
            command: ShadowCommand::Report(args),
        } => operate::shadow_report(args),
        Command::Exceptions { command } => operate::exceptions(command),
        Command::DeadLetters { command } => operate::dead_letters(command),
        Command::Quarantine { command } => operate::quarantine(command),
        Command::Conflicts { command } => operate::conflicts(command),
        Command::Load {
            command: LoadCommand::Payroll(args),
        } => load::payroll(args),
        Command::Reconcile { command } => reconcile::run(command),
        Command::Invoice {
            command: InvoiceCommand::Run(args),
        } => invoice::run(args),
        Command::Mapping {
            command: MappingCommand::Test(args),
        } => mapping::test(args),
        Command::Mapping {
            command: MappingCommand::Replay(args),
        } => mapping::replay(args),
        Command::Catalog(remote) => operate::catalog(remote),
        Command::Bench {
            command: BenchCommand::TimeToBill(args),
        } => bench::time_to_bill(args),
        Command::Bench {
            command: BenchCommand::Reference(args),
        } => bench::reference(args),
        Command::Bench {
            command: BenchCommand::Generate(args),
        } => bench_generate::run(args),
    }
}
