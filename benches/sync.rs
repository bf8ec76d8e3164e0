//! sharecache's benchmark suite (issue 4): how much faster the cache is than the share, and what
//! sync costs, each figure measured side by side with its honest alternative in the same run.
//!
//! ```sh
//! cargo bench --bench sync                               # default: a few minutes
//! SHARECACHE_BENCH_FULL=1 cargo bench --bench sync       # the issue's sizes (1M rows, 100 MB)
//! SHARECACHE_BENCH_LATENCIES=0,4,20 cargo bench --bench sync   # share latency per operation, ms
//! SHARECACHE_BENCH_ONLY=read,push cargo bench --bench sync     # some figures only
//! ```
//!
//! Figures: `read`, `write`, `idle`, `push`, `pull`, `snapshot` (per latency), `apply` (per
//! latency up to 4 ms), `reconcile` (per latency; the big remote up to 4 ms), `capture` and `rss`
//! (once: they do not touch the share). The report (Markdown) goes to
//! stdout, progress to stderr. See BENCHMARKS.md for the results and what they mean.
//!
//! The remote lives behind `slowfs` (crates/slowfs), a FUSE passthrough that sleeps the latency
//! on every request and counts requests by kind; those counts are printed for both sides of every
//! figure that touches the share.

#[path = "sync/designs.rs"]
mod designs;
#[path = "sync/env.rs"]
mod env;
#[path = "sync/figures.rs"]
mod figures;
#[path = "sync/lockwatch.rs"]
mod lockwatch;
#[path = "sync/measure.rs"]
mod measure;
#[path = "sync/recovery.rs"]
mod recovery;

use std::process::Command;
use std::time::{Duration, Instant};

use sharecache::{Cache, Config, EnableCache};

use env::Share;
use measure::{Goal, Report, fmt_dur};

/// What to run, from the environment.
struct Plan {
    full: bool,
    latencies: Vec<u64>,
    only: Option<Vec<String>>,
    /// Rows of the main remote (reads, writes, idle, push).
    main_rows: u64,
    /// Rows of the two pull remotes; the big one is also the snapshot's and the apply's remote.
    pull_small: u64,
    pull_big: u64,
    apply_changes: u64,
    rss_small: u64,
    rss_big: u64,
    /// Also run the push what-ifs (one transaction; the change log's own cost).
    what_ifs: bool,
}

impl Plan {
    fn from_env() -> Plan {
        let full = std::env::var("SHARECACHE_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0");
        let latencies = std::env::var("SHARECACHE_BENCH_LATENCIES")
            .ok()
            .map(|v| {
                v.split(',')
                    .map(|x| {
                        x.trim()
                            .parse()
                            .expect("SHARECACHE_BENCH_LATENCIES: ms, comma-separated")
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![0, 4, 20]);
        let only = std::env::var("SHARECACHE_BENCH_ONLY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(|x| x.trim().to_string()).collect());
        Plan {
            full,
            latencies,
            only,
            main_rows: 10_000,
            pull_small: 10_000,
            pull_big: if full { 1_000_000 } else { 100_000 },
            apply_changes: 100_000,
            rss_small: 1_000,
            rss_big: if full { 1_000_000 } else { 100_000 },
            what_ifs: std::env::var("SHARECACHE_BENCH_WHAT_IF").map_or(true, |v| v != "0"),
        }
    }

    fn wants(&self, figure: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == figure))
    }
}

fn log(t0: Instant, msg: &str) {
    eprintln!("[{:>7.1}s] {msg}", t0.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(RSS_CHILD) {
        rss_child(&args[2..]);
        return;
    }
    // `cargo test --benches` runs this binary without `--bench`: nothing to test here.
    let asked = args.iter().any(|a| a == "--bench")
        || std::env::vars().any(|(k, _)| k.starts_with("SHARECACHE_BENCH_"));
    if !asked {
        eprintln!(
            "sharecache benchmarks: run them with `cargo bench --bench sync` (see BENCHMARKS.md)"
        );
        return;
    }
    lockwatch::install();
    let plan = Plan::from_env();
    let t0 = Instant::now();
    let mut report = Report::default();
    let share = Share::new();
    let ctl = share.ctl.clone();

    log(t0, "setting up the remotes (latency 0)");
    let needs_main = ["read", "write", "idle", "push"]
        .iter()
        .any(|f| plan.wants(f));
    let needs_pull = ["pull", "snapshot", "apply"].iter().any(|f| plan.wants(f));
    // Reconcile: remotes of their own (the figure restores them from backups).
    let recon = plan.wants("reconcile").then(|| {
        share.create_remote("recon-small.db", plan.pull_small, true, "");
        share.create_remote("recon-big.db", plan.pull_big, true, "");
        (
            share.cache("recon-small.db", "recon-small"),
            share.cache("recon-big.db", "recon-big"),
        )
    });
    let main = needs_main.then(|| {
        share.create_remote("app.db", plan.main_rows, true, "");
        share.create_plain("plain.db", plan.main_rows, "");
        (share.cache("app.db", "main"), share.direct("plain.db"))
    });
    // Push what-ifs: the same remote twice more, one pushed to in one transaction per push, one
    // written by hand (its change-log triggers on).
    let what_if = (plan.wants("push") && plan.what_ifs).then(|| {
        share.create_remote("app-onetx.db", plan.main_rows, true, "");
        share.create_remote("app-logged.db", plan.main_rows, true, "");
        let mut cfg = share.config("app-onetx.db", "onetx");
        cfg.batch_size = 100_000;
        (Cache::open(cfg).unwrap(), share.direct("app-logged.db"))
    });
    let pulls = needs_pull.then(|| {
        share.create_remote("small.db", plan.pull_small, true, "");
        share.create_remote("big.db", plan.pull_big, true, "");
        let small = share.cache("small.db", "small");
        let big = share.cache("big.db", "big");
        small.sync_now().unwrap();
        big.sync_now().unwrap();
        // The other client whose pushed changes the pull figure pulls.
        let writers = plan.wants("pull").then(|| {
            (
                share.backing_cache("small.db", "small-writer"),
                share.backing_cache("big.db", "big-writer"),
            )
        });
        (small, big, writers)
    });
    // Design experiments: only when asked for by name.
    let designs = plan
        .only
        .as_ref()
        .is_some_and(|o| o.iter().any(|x| x == "designs"))
        .then(|| designs::Designs::create(&share, plan.main_rows, plan.pull_small, plan.pull_big));
    log(t0, "setup done");

    for &l in &plan.latencies {
        ctl.set_latency(Duration::from_millis(l));
        if let Some((cache, direct)) = &main {
            if plan.wants("read") {
                log(t0, &format!("{l} ms: point reads"));
                figures::read(&mut report, &share, cache, direct, plan.main_rows, l);
            }
            if plan.wants("write") {
                log(t0, &format!("{l} ms: point writes"));
                figures::write(&mut report, &share, cache, direct, l);
            }
            if plan.wants("idle") {
                log(t0, &format!("{l} ms: idle sync cycle"));
                figures::idle(&mut report, &share, cache, direct, plan.main_rows, l);
            }
            if plan.wants("push") {
                cache.sync_now().unwrap();
                for n in [1_000, 10_000] {
                    // At 20 ms a 10k push takes over a minute: full runs only; op counts, not
                    // times, carry these figures anyway.
                    let reps = match (l, n) {
                        (0, _) => 5,
                        (..=4, _) => 3,
                        (_, 1_000) if !plan.full => 1,
                        (_, _) if !plan.full => 0,
                        _ => 3,
                    };
                    if reps == 0 {
                        continue;
                    }
                    log(t0, &format!("{l} ms: push of {n} rows"));
                    let world = figures::PushWorld {
                        cache,
                        plain: direct,
                        // What-ifs: at 0 ms (their op counts hold at any latency), and at 4 ms
                        // in full runs.
                        what_if: what_if
                            .as_ref()
                            .filter(|_| l == 0 || (plan.full && l <= 4))
                            .map(|(c, d)| (c, d)),
                    };
                    figures::push(&mut report, &share, &world, plan.main_rows, n, l, reps);
                }
            }
        }
        if let Some((small, big, writers)) = &pulls {
            if plan.wants("pull") {
                log(t0, &format!("{l} ms: pull of 100 changes"));
                let writers = writers.as_ref().map(|(s, b)| (s, b));
                for by in [writers, None] {
                    figures::pull(
                        &mut report,
                        &share,
                        ("small.db", small, plan.pull_small),
                        ("big.db", big, plan.pull_big),
                        by,
                        l,
                    );
                }
            }
            if plan.wants("snapshot") {
                log(t0, &format!("{l} ms: initial snapshot"));
                figures::snapshot(&mut report, &share, "big.db", l, 3);
            }
            // Fetching 100k changes costs thousands of share reads: skipped above 4 ms.
            if plan.wants("apply") && l <= 4 {
                log(
                    t0,
                    &format!(
                        "{l} ms: apply rate while pulling {} changes",
                        plan.apply_changes
                    ),
                );
                figures::apply(&mut report, &share, "big.db", big, plan.apply_changes, l);
            }
        }
        if let Some((small, big)) = &recon {
            log(t0, &format!("{l} ms: reconcile after a restore"));
            recovery::reconcile(
                &mut report,
                &share,
                ("recon-small.db", small, plan.pull_small),
                l,
                3,
            );
            if l <= 4 {
                let reps = if plan.full { 1 } else { 3 };
                recovery::reconcile(
                    &mut report,
                    &share,
                    ("recon-big.db", big, plan.pull_big),
                    l,
                    reps,
                );
            }
        }
        if let Some(d) = &designs {
            log(t0, &format!("{l} ms: design experiments"));
            designs::push_layouts(&mut report, &share, d, l);
            designs::pull_layouts(&mut report, &share, d, l);
            if l == 0 {
                designs::push_order(&mut report, &share, plan.rss_big.min(100_000));
            }
        }
    }

    // Figures that do not depend on the share's latency: run once, at the first latency.
    let l0 = plan.latencies[0];
    ctl.set_latency(Duration::from_millis(l0));
    if plan.wants("capture") {
        log(t0, "capture overhead");
        share.create_remote(
            "capture.db",
            0,
            false,
            "CREATE TABLE stamped (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, \
             price REAL, note TEXT, updated_at TEXT);",
        );
        let cache = share.cache("capture.db", "capture");
        cache
            .conn()
            .execute_batch(
                "CREATE TABLE items_untracked (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, \
                 price REAL, note TEXT);
                 CREATE TABLE stamped_untracked (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, \
                 price REAL, note TEXT, updated_at TEXT);",
            )
            .unwrap();
        figures::capture(&mut report, &cache);
    }
    if designs.is_some() {
        log(t0, "design experiments: capture trigger anatomy");
        designs::capture_anatomy(&mut report, share.tmp.path());
    }
    if plan.wants("rss") {
        ctl.set_latency(Duration::ZERO);
        log(t0, "peak memory while pushing");
        rss(&mut report, &share, plan.rss_small, plan.rss_big, t0);
    }
    drop(main);
    drop(what_if);
    drop(pulls);
    drop(designs);
    drop(recon);

    let took = t0.elapsed();
    println!("{}", header(&plan, took));
    println!("{}", report.markdown());
    log(t0, "done");
}

fn header(plan: &Plan, took: Duration) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "## sharecache benchmarks ({} run)\n\n\
         {cpu}, {cores} cores, Linux {kernel}; SQLite {}; commit {commit}; latencies {:?} ms per share \
         operation; sizes: main remote {} rows, pull remotes {} / {} rows, apply {} changes, RSS {} / {} \
         pending rows; took {}.\n",
        if plan.full { "full" } else { "default" },
        rusqlite::version(),
        plan.latencies,
        plan.main_rows,
        plan.pull_small,
        plan.pull_big,
        plan.apply_changes,
        plan.rss_small,
        plan.rss_big,
        fmt_dur(took.as_secs_f64()),
    )
}

const RSS_CHILD: &str = "__sharecache_bench_rss_child";

/// Peak RSS while pushing `small` vs `big` pending rows, each in a fresh child process (this
/// binary re-executed) so that neither run inherits the other's memory.
fn rss(report: &mut Report, share: &Share, small: u64, big: u64, t0: Instant) {
    let mut results = vec![];
    for n in [small, big] {
        let remote = format!("rss-{n}.db");
        share.create_remote(&remote, 0, false, "");
        let name = format!("rss-{n}");
        let cache = share.cache(&remote, &name);
        log(t0, &format!("  {n} pending inserts in the cache"));
        cache
            .conn()
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                 INSERT INTO items (id, name, qty, price, note) \
                 SELECT i, 'item ' || i, i % 100, i * 0.25, 'pending row written by the rss benchmark' FROM n",
                [n as i64],
            )
            .unwrap();
        let cfg = share.config(&remote, &name);
        drop(cache);
        log(t0, &format!("  pushing {n} rows in a child process"));
        let before = share.ctl.stats();
        let out = Command::new(std::env::current_exe().unwrap())
            .arg(RSS_CHILD)
            .arg(&cfg.remote_path)
            .arg(&cfg.cache_directory)
            .output()
            .expect("running the rss child");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "rss child failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |k: &str| -> f64 {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(k).and_then(|v| v.parse().ok()))
                .unwrap_or(f64::NAN)
        };
        let ops = measure::diff(&before, &share.ctl.stats());
        report.ops.push(measure::OpsRow {
            figure: format!("push of {n} pending inserts (rss child)"),
            latency: Some(0),
            side: "sync_now".into(),
            ops,
            n: 1,
        });
        results.push((
            n,
            field("pushed="),
            field("open_kib="),
            field("push_peak_kib="),
            field("secs="),
        ));
    }
    let (s, b) = (&results[0], &results[1]);
    let mib = |k: f64| k / 1024.0;
    report.single(
        &format!("peak memory while pushing {}k pending rows vs {}k", b.0 / 1000, s.0 as f64 / 1000.0),
        Some(0),
        format!(
            "{:.1} MiB peak RSS for {}k rows (push took {}) vs {:.1} MiB for {}k; {:.1} / {:.1} MiB after opening",
            mib(b.3),
            b.0 / 1000,
            fmt_dur(b.4),
            mib(s.3),
            s.0 as f64 / 1000.0,
            mib(s.2),
            mib(b.2),
        ),
        format!("**{:.2}×**, {:.1} MiB", b.3 / s.3, mib(b.3)),
        (Goal::AtMost(64.0), mib(b.3), "flat; ≤64 MiB"),
    );
    if b.1 as u64 != b.0 || s.1 as u64 != s.0 {
        report.notes.push(format!(
            "rss: pushed {} of {} and {} of {} rows",
            s.1, s.0, b.1, b.0
        ));
    }
}

/// In the child: open the cache, reset the peak RSS, sync (push everything), report.
fn rss_child(args: &[String]) {
    let mut cfg = Config::for_remote(&args[0]);
    cfg.cache_directory = args[1].clone().into();
    cfg.enable_cache = EnableCache::On;
    cfg.background = false;
    let cache = Cache::open(cfg).expect("open cache");
    let open_kib = env::vm_hwm_kib();
    assert!(
        env::reset_hwm(),
        "cannot reset the peak RSS (/proc/self/clear_refs)"
    );
    let t0 = Instant::now();
    let r = cache.sync_now().expect("push");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "pushed={} open_kib={open_kib} push_peak_kib={} rss_after_kib={} secs={secs}",
        r.pushed,
        env::vm_hwm_kib(),
        env::vm_rss_kib()
    );
}
