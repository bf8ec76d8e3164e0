//! `sharecache migrate-remote --to postgres://…`: the share's database moved to a server with
//! its sharecache state (`sharecache::remote::postgres::import`), then what the admin does next.

use std::io::IsTerminal;

use sharecache::Config;
use sharecache::remote::postgres::import;

use super::Failure;

/// Runs `sharecache migrate-remote`.
pub fn run(config: &Config, to: &str, json: bool) -> anyhow::Result<()> {
    let share = config.share_path()?;
    let Some(target) = Config::for_remote(to).postgres else {
        return Err(Failure::new(
            2,
            format!(
                "--to {to:?} is not a PostgreSQL URL; give postgres://user@host[:port]/database"
            ),
        )
        .into());
    };
    let url = target.display_url();
    let tty = std::io::stderr().is_terminal();
    let mut progress = |table: &str, rows: u64| {
        if tty {
            eprint!("\r{table}: {rows} rows");
        }
    };
    let opts = sharecache::remote::RemoteOptions::from_config(config, "migrate-remote");
    let imported = import::from_share(share, &opts, &target, &config.schema, &mut progress)
        .map_err(sharecache::Error::Remote)?;
    if tty {
        eprintln!();
    }
    if json {
        let tables: Vec<serde_json::Value> = imported
            .tables
            .iter()
            .map(|(t, n)| serde_json::json!({ "table": t, "rows": n }))
            .collect();
        let out = serde_json::json!({
            "to": url,
            "schema": config.schema,
            "remote_id": imported.remote_id,
            "tables": tables,
            "skipped": imported.skipped.iter().map(|(t, why)| serde_json::json!({ "table": t, "why": why })).collect::<Vec<_>>(),
            "log_entries": imported.log.0,
            "rev": imported.log.1,
            "resumed": imported.resumed,
            "share_marked_moved": true,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if imported.resumed {
        println!(
            "{url} already holds this database (identity {}): nothing copied; {} is now marked \
             as moved there",
            imported.remote_id,
            share.display()
        );
        return Ok(());
    }
    for (t, n) in &imported.tables {
        println!("copied {t}: {n} rows");
    }
    for (t, why) in &imported.skipped {
        println!("not copied {t}: {why} (not synced; move it by hand if the app needs it)");
    }
    println!(
        "moved {} to {url} (schema {}): {} change-log entries up to revision {}, identity {} kept",
        share.display(),
        config.schema,
        imported.log.0,
        imported.log.1,
        imported.remote_id
    );
    println!(
        "next: on every desk, `sharecache config set database.path '{url}'`: its cache is made \
         from the server at the next open (a cache still holding writes for the share says so: \
         `sharecache adopt` pushes them to the server). The share is marked as moved: sharecache \
         clients still pointed at it are refused, naming the server, and other programs' writes \
         to its synced tables fail (reads still work); archive it when no app reads it any more."
    );
    Ok(())
}
