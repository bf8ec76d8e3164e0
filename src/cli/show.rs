//! Human-readable output.

use sharecache::cache::{CachePaths, detect};
use sharecache::status::Status;
use sharecache::{Cache, Config, SyncReport};

/// The status of the configured cache, without opening (or creating) it.
pub fn status_of(config: &Config) -> anyhow::Result<Status> {
    let decision = detect::decide(config.enable_cache, &config.remote_path);
    if !decision.cached {
        let mode = sharecache::Mode::Direct {
            reason: decision.rule.clone(),
        };
        return Ok(Status::direct(config, &mode, &decision.rule));
    }
    let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
    Ok(sharecache::status::read(config, &paths, &decision.rule)?)
}

pub fn report(cache: &Cache, r: &SyncReport) {
    if let sharecache::Mode::Direct { reason } = cache.mode() {
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

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn status(s: &Status) {
    println!(
        "{} {:?} — {} ({})",
        s.state.indicator(),
        s.state,
        s.mode,
        s.mode_reason
    );
    println!("  pending writes: {}", s.pending_writes);
    match (&s.last_sync, &s.last_run) {
        (_, Some(run)) => println!(
            "  last sync:      {} {} ({} pushed, {} pulled, {} conflicts{})",
            run.finished_at.as_deref().unwrap_or(&run.started_at),
            run.status,
            run.pushed,
            run.pulled,
            run.conflicts,
            run.error
                .as_deref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        ),
        (None, None) => println!("  last sync:      never"),
        (Some(t), None) => println!("  last sync:      {t}"),
    }
    if let Some(since) = &s.offline_since {
        println!("  offline since:  {since}");
    }
    println!("  conflicts:      {} logged", s.conflicts);
    for t in &s.unsynced_tables {
        println!("  not synced:     {} — {}", t.name, t.reason);
    }
    if let Some(p) = &s.cache_path {
        println!(
            "  cache:          {}{}",
            p.display(),
            s.cache_bytes
                .map(|b| format!(" ({})", human_bytes(b)))
                .unwrap_or_default()
        );
    }
    println!("  remote:         {}", s.remote_path.display());
    println!("  sync interval:  {} s", s.sync_interval_secs);
    if let Some(n) = &s.note {
        println!("  note:           {n}");
    }
}
