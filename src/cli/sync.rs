//! `sharecache sync` and `sharecache clear`: one-shot operations on the cache (no background
//! thread), with progress bars on long phases and a summary at the end.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use sharecache::store::CachePaths;
use sharecache::{Cache, ClearReport, Config, Error, Mode, OpenOptions, SyncReport};

use super::progress::Bars;
use super::status::human_bytes;

/// Opens the cache for a one-shot command (no sync thread, no config watch); shows a spinner
/// while the first open copies the remote.
pub fn open(config: Config, bars: Bars) -> anyhow::Result<Cache> {
    let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
    let _spinner = (!paths.db.exists()).then(|| bars.spinner("creating the cache from the remote"));
    Ok(Cache::open_with(
        config,
        OpenOptions::default().background(false),
    )?)
}

/// Runs `sharecache sync`.
pub fn sync(config: Config, bars: Bars, json: bool) -> anyhow::Result<()> {
    let cache = open(config, bars)?;
    let report = run_sync(&cache, bars)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&cache, &report);
    }
    Ok(())
}

/// One sync on the calling thread, with progress bars.
pub fn run_sync(cache: &Cache, bars: Bars) -> anyhow::Result<SyncReport> {
    let bar = bars.progress();
    cache
        .sync_with_progress(&bar)
        .context("sync failed; every pending write is still pending")
}

/// Prints a sync report for people.
pub fn print_report(cache: &Cache, r: &SyncReport) {
    let handover = cache.status().ok().and_then(|s| s.handover);
    if let Mode::Direct { reason } = cache.mode() {
        if let Some(h) = handover {
            println!("before switching to direct mode: {h}");
        }
        println!("direct mode ({reason}): nothing to sync");
        return;
    }
    if r.idle {
        println!(
            "nothing to sync: no pending writes, remote unchanged ({} ms)",
            r.duration.as_millis()
        );
        return;
    }
    println!(
        "synced: {} pushed, {} pulled, {} conflicts resolved ({} ms)",
        r.pushed,
        r.pulled,
        r.conflicts,
        r.duration.as_millis()
    );
    if r.conflicts > 0 {
        println!("  the losing versions are in the conflict log: `sharecache conflicts`");
    }
    if r.deferred > 0 {
        println!(
            "  {} remote changes wait for the next sync (their rows changed locally meanwhile)",
            r.deferred
        );
    }
    if r.unpushable > 0 {
        println!(
            "  {} pending writes belong to tables that are not synced right now",
            r.unpushable
        );
    }
    if r.schema_changes > 0 {
        println!(
            "  {} tables/columns added from the remote schema",
            r.schema_changes
        );
    }
    if let Some(rec) = &r.reconciled {
        println!("  reconciled with the remote by key: {}", rec.summary());
    }
    if let Some(why) = &r.rebuilt {
        println!("  cache rebuilt from the remote: {why}");
    }
    if let Some(f) = &r.exported {
        println!(
            "  pending writes that could not be pushed were saved to {}",
            f.display()
        );
    }
}

/// `clear --json`: the library's report, and whether the cache was only created.
#[derive(Debug, Serialize)]
struct ClearJson<'a> {
    #[serde(flatten)]
    report: &'a ClearReport,
    /// There was no cache: it was created from the remote, nothing was cleared.
    created: bool,
    cache_path: Option<&'a Path>,
}

/// Runs `sharecache clear`.
pub fn clear(config: Config, bars: Bars, discard_pending: bool, json: bool) -> anyhow::Result<()> {
    let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
    let existed = paths.db.exists();
    let cache = open(config, bars)?;
    let report = if existed {
        let bar = bars.progress();
        cache.clear(discard_pending, &bar).map_err(|e| {
            let what = match e {
                Error::PendingWrites { .. } => "clear refused",
                _ => "clear failed",
            };
            anyhow::Error::from(e).context(what)
        })?
    } else {
        // The open just made a fresh copy: there is nothing to clear.
        ClearReport {
            bytes: std::fs::metadata(&paths.db).map(|m| m.len()).unwrap_or(0),
            ..ClearReport::default()
        }
    };
    if json {
        let out = ClearJson {
            report: &report,
            created: !existed,
            cache_path: cache.cache_path(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if !existed {
        println!(
            "there was no cache: created it from the remote ({})",
            human_bytes(report.bytes)
        );
        return Ok(());
    }
    if report.pushed > 0 {
        println!("pushed {} pending writes first", report.pushed);
    }
    if let Some(f) = &report.exported {
        println!(
            "discarded {} pending writes; they are saved in {}",
            report.discarded,
            f.display()
        );
    }
    println!(
        "cache rebuilt from the remote ({} copied)",
        human_bytes(report.bytes)
    );
    Ok(())
}

/// Runs `sharecache accept-restore`: a new generation on the remote (or on `database`).
pub fn accept_restore(config: &Config, database: Option<&Path>) -> anyhow::Result<()> {
    let path = database.unwrap_or(&config.remote_path);
    let opts = sharecache::remote::RemoteOptions::from_config(config, "admin");
    let mut remote = sharecache::remote::Share::open(path, opts).map_err(Error::from)?;
    let now = sharecache::clock::Clock::system().now_stamp();
    remote.declare_authoritative(&now).map_err(Error::from)?;
    println!(
        "{} is now authoritative: at their next sync, clients take its rows and keep their own \
         newer versions in the conflict log (`sharecache conflicts`)",
        path.display()
    );
    Ok(())
}
