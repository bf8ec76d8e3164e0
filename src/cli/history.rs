//! `sharecache history`: the recorded sync runs (`sync_metadata`), newest first. Read-only: it
//! never creates a cache or touches the share.

use sharecache::Config;
use sharecache::sync::metadata::{self, Run};

use super::local::{self, Local};

/// Runs `sharecache history`.
pub fn run(config: &Config, limit: usize, json: bool) -> anyhow::Result<()> {
    let runs = match local::open(config)? {
        Local::Cache { paths, conn } => {
            metadata::history(&conn, limit).map_err(local::sql_error(&paths.db))?
        }
        Local::None(why) => {
            if json {
                println!("[]");
            }
            eprintln!("{why}");
            return Ok(());
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print(&runs);
    }
    Ok(())
}

fn print(runs: &[Run]) {
    if runs.is_empty() {
        println!("no sync runs recorded yet");
        return;
    }
    println!(
        "{:>6}  {:<10}  {:<24}  {:<8}  {:>6}  {:>6}  {:>9}  {:>8}",
        "id", "kind", "started", "status", "pushed", "pulled", "conflicts", "ms"
    );
    for r in runs {
        println!(
            "{:>6}  {:<10}  {:<24}  {:<8}  {:>6}  {:>6}  {:>9}  {:>8}",
            r.id,
            r.kind,
            r.started_at,
            r.status,
            r.pushed,
            r.pulled,
            r.conflicts,
            r.duration_ms.map(|d| d.to_string()).unwrap_or_default()
        );
        if let Some(e) = &r.error {
            println!("{:>8}{e}", "");
        }
        if let Some(n) = &r.note {
            println!("{:>8}{n}", "");
        }
    }
}
