//! `sharecache status`: the state at a glance, then a debug section for whoever has to find out
//! why it is not syncing. Reads local files only, except one `stat` of the remote file (a TCP
//! connect for a PostgreSQL server), asked on a separate thread with a timeout: a hung share
//! must not hang `status`.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use sharecache::status::Status;
use sharecache::store::CachePaths;
use sharecache::{Config, Mode};

use super::local::{self, SHARE_TIMEOUT};

/// What the share said when asked about the remote file just now.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The remote file answered and is a non-empty file.
    pub share_reachable: bool,
    /// What happened, in words.
    pub share_check: String,
    /// Size of the remote file.
    pub remote_bytes: Option<u64>,
    /// The remote is a PostgreSQL server: the check was a TCP connection to it.
    #[serde(skip)]
    pub server: bool,
}

/// `status` as printed with `--json`: the library's [`Status`] plus the debug figures.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    status: &'a Status,
    cache_exists: bool,
    #[serde(flatten)]
    probe: Probe,
    worker_running: bool,
    /// The checks this platform cannot make (`sharecache::platform::limitations`).
    not_checked_here: &'static [&'static str],
}

/// Asks the share about `remote` (one `stat`), waiting at most [`SHARE_TIMEOUT`].
pub fn probe(remote: &Path) -> Probe {
    let path = remote.to_path_buf();
    let t0 = Instant::now();
    let answer = local::within(SHARE_TIMEOUT, move || std::fs::metadata(&path));
    let ms = t0.elapsed().as_millis();
    let (share_reachable, share_check, remote_bytes) = match answer {
        None => (
            false,
            format!(
                "no answer within {} s: the share hangs or is very slow",
                SHARE_TIMEOUT.as_secs()
            ),
            None,
        ),
        Some(Ok(m)) if m.is_file() && m.len() > 0 => (
            true,
            format!("reachable (answered in {ms} ms)"),
            Some(m.len()),
        ),
        Some(Ok(m)) if m.is_file() => (
            false,
            "the share answers, but the remote file is empty".into(),
            Some(0),
        ),
        Some(Ok(_)) => (
            false,
            "the share answers, but the remote path is not a file".into(),
            None,
        ),
        Some(Err(e)) => (false, format!("not reachable: {e}"), None),
    };
    Probe {
        share_reachable,
        share_check,
        remote_bytes,
        server: false,
    }
}

/// Asks a PostgreSQL server whether it takes connections (a TCP connect, no login), waiting at
/// most [`SHARE_TIMEOUT`]: a server has no file to `stat`.
pub fn probe_server(host: &str, port: u16) -> Probe {
    let t0 = Instant::now();
    let (share_reachable, share_check) = if host.starts_with('/') {
        (
            false,
            format!("a Unix socket in {host}: not checked by status"),
        )
    } else {
        let addr = format!("{host}:{port}");
        let answer = local::within(SHARE_TIMEOUT, move || {
            use std::net::{TcpStream, ToSocketAddrs};
            let mut last = None;
            for a in addr.to_socket_addrs()? {
                match TcpStream::connect_timeout(&a, SHARE_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| std::io::Error::other("the host name has no address")))
        });
        let ms = t0.elapsed().as_millis();
        match answer {
            None => (
                false,
                format!(
                    "no answer within {} s: the server or the network hangs",
                    SHARE_TIMEOUT.as_secs()
                ),
            ),
            Some(Ok(())) => (
                true,
                format!("the server takes connections (answered in {ms} ms)"),
            ),
            Some(Err(e)) => (false, format!("not reachable: {e}")),
        }
    };
    Probe {
        share_reachable,
        share_check,
        remote_bytes: None,
        server: true,
    }
}

/// The status of the configured cache, without opening (or creating) it.
pub fn status_of(config: &Config) -> anyhow::Result<Status> {
    let decision = local::decide(config);
    if !decision.cached {
        config.share_path()?;
        let mode = Mode::Direct {
            reason: decision.rule.clone(),
        };
        return Ok(Status::direct(config, &mode, &decision.rule));
    }
    let paths = CachePaths::new(&config.cache_directory, &config.remote_path);
    Ok(sharecache::status::read(config, &paths, &decision.rule)?)
}

/// Runs `sharecache status`.
pub fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let status = status_of(config)?;
    let cache_exists = status.cache_path.as_deref().is_some_and(Path::exists);
    let probe = match &config.postgres {
        Some(server) => probe_server(&server.host, server.port),
        None => probe(&config.remote_path),
    };
    if json {
        let report = Report {
            status: &status,
            cache_exists,
            probe,
            worker_running: status.worker.is_some(),
            not_checked_here: sharecache::platform::limitations(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&status, cache_exists, &probe);
    }
    Ok(())
}

/// `12.0 KiB`.
pub fn human_bytes(n: u64) -> String {
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

fn file_line(path: &Path, bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{} ({})", path.display(), human_bytes(b)),
        None => path.display().to_string(),
    }
}

fn print(s: &Status, cache_exists: bool, probe: &Probe) {
    if s.mode == "cached" && !cache_exists {
        let db = s.cache_path.clone().unwrap_or_default();
        println!(
            "{} no cache yet — cached ({})",
            s.state.indicator(),
            s.mode_reason
        );
        println!("  {}", local::no_cache_yet(&db));
    } else {
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
        if let (Some(ok), Some(run)) = (&s.last_sync, &s.last_run) {
            if run.status != "success" {
                println!("  last success:   {ok}");
            }
        }
        if let Some(since) = &s.offline_since {
            println!("  offline since:  {since}");
        }
        println!("  conflicts:      {} logged", s.conflicts);
        if let Some(r) = &s.last_reconcile {
            println!(
                "  reconciled:     {} ({}): {}",
                r.finished_at.as_deref().unwrap_or(&r.started_at),
                r.status,
                r.note.as_deref().or(r.error.as_deref()).unwrap_or("")
            );
        }
        for t in &s.unsynced_tables {
            println!("  not synced:     {} — {}", t.name, t.reason);
        }
        for r in &s.capture_repairs {
            match &r.recovered_at {
                Some(at) => println!(
                    "  capture repaired: {} — {} (found {}; {} rows recovered {at})",
                    r.table, r.reason, r.found_at, r.recovered_rows
                ),
                None => println!(
                    "  capture repaired: {} — {} (found {}; the writes made meanwhile are recovered at the next sync)",
                    r.table, r.reason, r.found_at
                ),
            }
        }
        if let Some(n) = &s.note {
            println!("  note:           {n}");
        }
        if let Some(o) = &s.origin_change {
            println!(
                "  new client:     since {}: {} (former origin {})",
                o.at, o.reason, o.former
            );
        }
    }
    for o in &s.other_caches {
        println!(
            "  left behind:    {} pending writes in {} (made for {}): run the app or \
             `sharecache sync` with that path, or `sharecache adopt` if the database moved here",
            o.pending_writes,
            o.cache_path.display(),
            o.made_for.display()
        );
    }
    if let Some(h) = &s.handover {
        println!("  handed over:    {h}");
    }
    println!("  sync interval:  {} s", s.sync_interval_secs);
    println!("debug:");
    if let Some(p) = &s.cache_path {
        let missing = if cache_exists {
            ""
        } else {
            " (not created yet)"
        };
        println!("  cache file:     {}{missing}", file_line(p, s.cache_bytes));
    }
    if probe.server {
        println!("  server:         {}", s.remote_path.display());
        println!("  server now:     {}", probe.share_check);
    } else {
        println!(
            "  remote file:    {}",
            file_line(&s.remote_path, probe.remote_bytes)
        );
        println!("  share now:      {}", probe.share_check);
    }
    if let Some(o) = &s.origin {
        println!("  origin id:      {o}");
    }
    match &s.worker {
        Some(w) => println!("  sync thread:    running ({w})"),
        None if s.mode == "cached" => println!(
            "  sync thread:    none running (no app with a sync thread, no `sharecache daemon`)"
        ),
        None => println!("  sync thread:    none (nothing to sync in direct mode)"),
    }
    for limit in sharecache::platform::limitations() {
        println!("  not checked:    {limit}");
    }
}
