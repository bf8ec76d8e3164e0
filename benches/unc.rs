//! Point reads and writes through the cache vs directly on the remote, on any OS and any path:
//! the Windows row of BENCHMARKS.md (`sharecache` built for Windows, run under Wine against a
//! slowfs share reached as `\\server\share\app.db`). The remote must hold `tasks (id TEXT PRIMARY
//! KEY, title TEXT, done INTEGER)` with ids `t0`..`t{N-1}`.
//!
//! ```sh
//! SHARECACHE_BENCH_REMOTE='\\fileserver\share\app.db' SHARECACHE_BENCH_ROWS=10000 \
//!     wine target/win/x86_64-pc-windows-gnu/release/deps/unc-*.exe
//! ```
//!
//! Prints one Markdown row per operation: median per operation, cache vs direct, and the ratio.

use std::time::{Duration, Instant};

use sharecache::{Cache, Config, EnableCache, Mode, OpenOptions};

fn main() {
    let Some(remote) = std::env::var_os("SHARECACHE_BENCH_REMOTE") else {
        eprintln!("set SHARECACHE_BENCH_REMOTE to the remote database (see benches/unc.rs)");
        std::process::exit(2);
    };
    let rows: u64 = std::env::var("SHARECACHE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let ops: usize = std::env::var("SHARECACHE_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let open = |enable: EnableCache| {
        let mut c = Config::for_remote(std::path::PathBuf::from(&remote));
        c.enable_cache = enable;
        c.background = false;
        Cache::open_with(c, OpenOptions::default().background(false)).unwrap()
    };
    let cached = open(EnableCache::On);
    assert_eq!(cached.mode(), Mode::Cached, "the cache must work");
    let direct = open(EnableCache::Off);
    assert!(matches!(direct.mode(), Mode::Direct { .. }));

    let key = |i: usize| format!("t{}", (i as u64 * 7919) % rows);
    let read = |cache: &Cache, i: usize| {
        let title: String = cache
            .conn()
            .query_row("SELECT title FROM tasks WHERE id = ?1", [key(i)], |r| {
                r.get(0)
            })
            .unwrap();
        std::hint::black_box(title);
    };
    let write = |cache: &Cache, i: usize| {
        cache
            .conn()
            .execute("UPDATE tasks SET done = done + 1 WHERE id = ?1", [key(i)])
            .unwrap();
    };
    println!("| operation | through the cache | directly on the share | ratio |");
    println!("| --- | --- | --- | --- |");
    for (name, op) in [
        ("point read by primary key", &read as &dyn Fn(&Cache, usize)),
        ("single-row write, autocommit", &write),
    ] {
        let c = median(ops, |i| op(&cached, i));
        let d = median(ops.min(50), |i| op(&direct, i));
        println!(
            "| {name} | {:.1} µs | {:.2} ms | {:.0}× faster |",
            c.as_secs_f64() * 1e6,
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / c.as_secs_f64()
        );
    }
    let pending = cached.sync_now().unwrap();
    eprintln!("pushed {} rows after the measurement", pending.pushed);
}

/// The median time of `n` calls of `f` (after 5 warm-up calls).
fn median(n: usize, f: impl Fn(usize)) -> Duration {
    (0..5).for_each(&f);
    let mut t: Vec<Duration> = (0..n)
        .map(|i| {
            let s = Instant::now();
            f(i);
            s.elapsed()
        })
        .collect();
    t.sort();
    t[n / 2]
}
