//! `sharecache config show` and `config set`: the values in force (defaults included) and the
//! file they came from; changing one value in place, comments kept, after validating it.

use std::path::Path;

use clap::Subcommand;
use serde_json::{Value, json};
use sharecache::Config;
use sharecache::config::{SETTABLE_KEYS, applies_at_next_start, set_key};

/// What to do with the config.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Show every value in force (defaults included, paths resolved) and the file it came from
    Show {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Change one setting in the config file, keeping its comments and other lines; the value
    /// is validated first (an invalid one leaves the file unchanged). A running daemon or app
    /// applies the change within 2 seconds, except path, cache_directory, enable_cache and
    /// background, which apply at its next start.
    #[command(after_help = settable_keys())]
    Set {
        /// The setting, e.g. `sync_interval` or `sync.batch_size` (see below)
        key: String,
        /// The new value as YAML reads it (`10`, `true`, `auto`, a path); empty for the default
        value: String,
    },
}

fn settable_keys() -> String {
    format!(
        "Settings (the part after the dot is enough):\n  {}",
        SETTABLE_KEYS.join("\n  ")
    )
}

/// Runs `sharecache config show|set`.
pub fn run(path: &Path, action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Show { json } => show(&Config::load(path)?, *json),
        Action::Set { key, value } => {
            let config = set_key(path, key, value)?;
            let file = config.source.as_deref().unwrap_or(path);
            if value.is_empty() {
                println!("{key} removed from {}: the default applies", file.display());
            } else if sharecache::config::is_postgres_url(value) {
                // The URL as shown everywhere else: without its password.
                let shown = config.remote_path.display();
                println!("{key} set to {shown} in {}", file.display());
            } else {
                println!("{key} set to {value} in {}", file.display());
            }
            if applies_at_next_start(key) {
                println!(
                    "it applies at the next start of the app or `sharecache daemon`; a running one \
                     keeps the value it started with (pending writes are pushed before a cache \
                     stops being used: see `sharecache status`)"
                );
            } else {
                println!("a running `sharecache daemon` or app sync thread applies it within 2 s");
            }
            Ok(())
        }
    }
}

/// The config as JSON: the same sections and keys as the file, every value resolved, plus
/// `source`, the file it came from.
fn to_json(config: &Config) -> anyhow::Result<Value> {
    let mut v: Value = serde_saphyr::from_str(&config.to_yaml())?;
    if let Some(o) = v.as_object_mut() {
        o.insert("source".into(), json!(config.source));
    }
    Ok(v)
}

fn show(config: &Config, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(config)?)?);
    } else {
        print!("{}", config.to_yaml());
    }
    Ok(())
}
