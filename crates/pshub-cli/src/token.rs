use crate::wiring::StoreArgs;
use anyhow::{Context, Result, bail};
use pshub_api::{Role, hash_token, new_token};
use pshub_engine::store::{IdKind, TokenRow};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// admin, integration, finance, pmo, hr, auditor or viewer.
    #[arg(long)]
    role: String,
    /// Who or what the token is for; the timeline names it when the token acts
    /// (by default "<role> token").
    #[arg(long, alias = "label")]
    name: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
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
    let name = match args.name {
        Some(name) if name.trim().is_empty() => {
            bail!("--name: is empty; name who the token is for")
        }
        Some(name) if name.chars().count() > 200 || name.chars().any(char::is_control) => {
            bail!("--name: at most 200 characters, and no control characters")
        }
        Some(name) => name,
        None => format!("{} token", role.as_str()),
    };
    let token = create_token(&args.store, role, &name)?;
    eprintln!(
        "created a token with the role {} for {name}; it is shown once and stored only as a hash:",
        role.as_str()
    );
    println!("{token}");
    Ok(())
}

pub fn create_token(store: &StoreArgs, role: Role, name: &str) -> Result<String> {
    let store = store.open()?;
    let token = new_token().context("failed to read random bytes for the token")?;
    let name = if name.is_empty() {
        format!("{} token", role.as_str())
    } else {
        name.to_string()
    };
    store
        .add_token(&TokenRow {
            id: store.reserve_ids(IdKind::Token, 1)?,
            hash: hash_token(&token),
            role: role.as_str().to_string(),
            name,
            created_at: chrono::Utc::now().to_rfc3339(),
        })
        .context("failed to store the token")?;
    Ok(token)
}
