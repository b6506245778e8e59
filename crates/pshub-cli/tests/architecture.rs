//! The dependency direction of ARCHITECTURE.md, checked: model <- mapping <- engine <- store,
//! connectors, bus <- api <- cli and model <- reconcile <- cli, and no database, HTTP or broker
//! crate at the engine level or below, nor in the mappings or the reconciliation.

use std::collections::BTreeMap;
use std::path::Path;

/// Which workspace crates each crate may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("pshub-model", &[]),
    ("pshub-mapping", &["pshub-model"]),
    ("pshub-engine", &["pshub-model", "pshub-mapping"]),
    ("pshub-store-sqlite", &["pshub-model", "pshub-engine"]),
    ("pshub-store-postgres", &["pshub-model", "pshub-engine"]),
    ("pshub-connectors", &["pshub-model", "pshub-engine"]),
    ("pshub-bus-nats", &["pshub-engine"]),
    ("pshub-api", &["pshub-model", "pshub-engine"]),
    ("pshub-reconcile", &["pshub-model"]),
    (
        "pshub-cli",
        &[
            "pshub-model",
            "pshub-mapping",
            "pshub-engine",
            "pshub-store-sqlite",
            "pshub-store-postgres",
            "pshub-connectors",
            "pshub-bus-nats",
            "pshub-api",
            "pshub-reconcile",
        ],
    ),
];

/// Infrastructure crates that must not appear below the store and connector level.
const INFRASTRUCTURE: &[&str] = &[
    "rusqlite",
    "sqlx",
    "axum",
    "hyper",
    "reqwest",
    "async-nats",
    "tokio",
    "tower",
    "tower-http",
];

/// The names in the `[dependencies]` table of a Cargo.toml (not dev- or build-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once('=') {
            let name = name.trim().trim_end_matches(".workspace").trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[test]
fn crates_depend_only_in_the_stated_direction() {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(crates_dir).unwrap() {
        let path = entry.unwrap().path().join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).unwrap();
        let name = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        found.insert(name, dependencies(&manifest));
    }
    let known: Vec<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    for (name, deps) in &found {
        let allowed = ALLOWED
            .iter()
            .find(|(known, _)| known == name)
            .unwrap_or_else(|| {
                panic!(
                    "crate {name} is not in ARCHITECTURE.md's map; add it to ALLOWED with its place"
                )
            })
            .1;
        for dep in deps.iter().filter(|d| d.starts_with("pshub-")) {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} depends on {dep}, against the dependency direction"
            );
        }
        if [
            "pshub-model",
            "pshub-mapping",
            "pshub-engine",
            "pshub-reconcile",
        ]
        .contains(&name.as_str())
        {
            for dep in deps {
                assert!(
                    !INFRASTRUCTURE.contains(&dep.as_str()),
                    "{name} depends on {dep}: the engine level and below do no IO of their own"
                );
            }
        }
    }
    assert_eq!(found.len(), known.len(), "every crate of the map exists");
}

#[test]
fn the_checker_reads_dependencies_and_not_dev_dependencies() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\npshub-model.workspace = true\nserde = \"1\"\n[dev-dependencies]\nrusqlite = \"1\"\n";
    assert_eq!(dependencies(manifest), ["pshub-model", "serde"]);
}
