use crate::DataDir;
use anyhow::{Context, Result, bail};
use pshub_api::{Role, hash_token, new_token};
use pshub_engine::Store;
use pshub_store_sqlite::SqliteStore;

#[derive(clap::Args)]
pub struct CreateArgs {
    /// admin, integration, finance, pmo, hr, auditor or viewer.
    #[arg(long)]
    role: String,
    /// A note saying who or what the token is for.
    #[arg(long, default_value = "")]
    label: String,
    #[command(flatten)]
    data_dir: DataDir,
}

pub fn create(args: CreateArgs) -> Result<()> {
    let Some(role) = Role::parse(&args.role) else {
        let roles: Vec<&str> = Role::ALL.iter().map(Role::as_str).collect();
        bail!(
            "--role: '{}' is not a role; use one of {}",
            args.role,
            roles.join(", ")
        );
    };
    let token = create_token(&args.data_dir.path, role, &args.label)?;
    eprintln!(
        "created a {} token; it is shown once and stored only as a hash:",
        role.as_str()
    );
    println!("{token}");
    Ok(())
}

pub fn create_token(data_dir: &std::path::Path, role: Role, label: &str) -> Result<String> {
    let mut store = SqliteStore::open(data_dir)
        .with_context(|| format!("failed to open the store in {}", data_dir.display()))?;
    let token = new_token().context("failed to read random bytes for the token")?;
    store
        .add_token(&hash_token(&token), role.as_str(), label)
        .context("failed to store the token")?;
    Ok(token)
}
