//! `pshub mapping test MAPPING FIXTURE.json…`: a mapping's canonical output on records, or
//! the errors, as the hub would quarantine them. The mappings are the shipped ones and
//! those of the configuration's `[mappings] dir` (or `--dir`).

use anyhow::{Context, Result, bail};
use pshub_mapping::Mappings;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The mapping, as configurations name it: `stripe/invoice.v1`.
    mapping: String,
    /// Records in the source's format, one JSON document per file.
    #[arg(required = true)]
    fixtures: Vec<PathBuf>,
    /// A folder of mappings (`<source>/<record>.v<N>.toml`) over the shipped ones, in place
    /// of the configuration's `[mappings] dir`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The source name the records come in under (by default the mapping's own).
    #[arg(long)]
    source: Option<String>,
}

pub fn test(args: TestArgs) -> Result<()> {
    let mappings: Arc<Mappings> = match &args.dir {
        Some(dir) => Arc::new(Mappings::with_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => crate::wiring::config_from_env()?.mappings,
    };
    let Some(mapping) = mappings.get(&args.mapping) else {
        bail!(
            "'{}' is not a mapping this hub knows; it knows {}",
            args.mapping,
            mappings.names().join(", ")
        );
    };
    let source = args.source.as_deref().unwrap_or(&mapping.source);
    let mut failed = 0;
    for file in &args.fixtures {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        println!("== {}", file.display());
        let record = match serde_json::from_str(&text) {
            Ok(record) => record,
            Err(e) => {
                failed += 1;
                println!("error: the record is not JSON: {e}");
                continue;
            }
        };
        match pshub_engine::hooks::canonical(mapping, source, &record, |_| true) {
            Ok(Some((envelope, _))) => {
                println!("{}", serde_json::to_string_pretty(&envelope)?)
            }
            Ok(None) => println!("not taken: {} does not take this record", mapping.name),
            Err(error) => {
                failed += 1;
                println!("error: {error}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} records did not map", args.fixtures.len());
    }
    Ok(())
}
