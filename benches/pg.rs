//! Benchmarks of the PostgreSQL remote (issue 16), each figure side by side with its honest
//! alternative in the same run, at each round-trip time through a TCP proxy on loopback.
//!
//! ```sh
//! eval "$(ci/postgres start)"                                  # a throwaway cluster
//! cargo bench --bench pg                                       # RTT 0 and 4 ms, a few minutes
//! SHARECACHE_BENCH_FULL=1 cargo bench --bench pg               # the issue's sizes (1M rows)
//! SHARECACHE_BENCH_ONLY=push,idle SHARECACHE_BENCH_RTTS=4 cargo bench --bench pg
//! ```
//!
//! Figures: `push` (1k and 10k rows vs the same rows in one hand-written transaction), `pull`
//! (100 changes from a 10k vs a big table), `idle`, `snapshot` (the big table vs `pg_dump` of
//! it), `clients` (20 caches writing and syncing at once: the longest gap between a client's
//! successful syncs). Round trips are counted by the proxy. The report (Markdown) goes to stdout,
//! progress to stderr; BENCHMARKS.md has the results and what they mean.

#[path = "../tests/support/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::types::Type;
use rusqlite::types::Value;
use sharecache::config::EnableCache;
use sharecache::remote::image;
use sharecache::{Cache, Config};

use proxy::Proxy;

struct Plan {
    rtts: Vec<u64>,
    only: Option<Vec<String>>,
    big: i64,
    clients: usize,
    clients_for: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let full = std::env::var("SHARECACHE_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0");
        let rtts = std::env::var("SHARECACHE_BENCH_RTTS")
            .ok()
            .map(|v| {
                v.split(',')
                    .map(|x| {
                        x.trim()
                            .parse()
                            .expect("SHARECACHE_BENCH_RTTS: ms, comma-separated")
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![0, 4]);
        Plan {
            rtts,
            only: std::env::var("SHARECACHE_BENCH_ONLY")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| v.split(',').map(|x| x.trim().to_owned()).collect()),
            big: if full { 1_000_000 } else { 100_000 },
            clients: 20,
            clients_for: Duration::from_secs(if full { 60 } else { 15 }),
        }
    }

    fn wants(&self, figure: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == figure))
    }
}

/// A database of its own on the cluster, dropped at the end.
struct Db {
    admin: String,
    name: String,
    url: String,
}

impl Db {
    fn new(admin: &str, name: &str) -> Db {
        let mut c = postgres::Client::connect(admin, postgres::NoTls).expect("the admin URL");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
        Db {
            admin: admin.to_owned(),
            name: name.to_owned(),
            url: format!("{base}/{name}"),
        }
    }

    fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    fn addr(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once('@').unwrap().1;
        rest[..rest.find('/').unwrap()].parse().unwrap()
    }

    /// This database's URL through `proxy`.
    fn via(&self, proxy: &Proxy) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let (auth, path) = rest.split_once('@').unwrap();
        format!(
            "{scheme}://{auth}@{}{}",
            proxy.addr(),
            &path[path.find('/').unwrap()..]
        )
    }

    /// `items` with `n` rows.
    fn items(&self, table: &str, n: i64) {
        self.connect()
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, v text, n bigint); \
                 INSERT INTO {table} SELECT g, 'value ' || g, g FROM generate_series(1, {n}) g; \
                 ANALYZE {table};"
            ))
            .unwrap();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn cache(url: &str, dir: &std::path::Path, name: &str) -> Cache {
    let mut c = Config::for_remote(url);
    c.cache_directory = dir.join(name);
    c.enable_cache = EnableCache::On;
    c.background = false;
    Cache::open(c).unwrap()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn log(t0: Instant, msg: &str) {
    eprintln!("[{:>7.1}s] {msg}", t0.elapsed().as_secs_f64());
}

/// One line of the report.
fn row(figure: &str, rtt: u64, ours: Duration, rt: u64, base: Option<(Duration, u64)>, goal: &str) {
    match base {
        Some((b, brt)) => println!(
            "| {figure} | {rtt} ms | {} ({rt} RT) | {} ({brt} RT) | {:.2}× | {goal} |",
            ms(ours),
            ms(b),
            ours.as_secs_f64() / b.as_secs_f64()
        ),
        None => println!(
            "| {figure} | {rtt} ms | {} ({rt} RT) | | | {goal} |",
            ms(ours)
        ),
    }
}

fn main() {
    let asked = std::env::args().any(|a| a == "--bench")
        || std::env::vars().any(|(k, _)| k.starts_with("SHARECACHE_BENCH_"));
    if !asked {
        eprintln!("sharecache PostgreSQL benchmarks: run them with `cargo bench --bench pg`");
        return;
    }
    let Ok(admin) = std::env::var("SHARECACHE_TEST_PG") else {
        eprintln!("SHARECACHE_TEST_PG is not set: run `eval \"$(ci/postgres start)\"` first");
        std::process::exit(2);
    };
    let plan = Plan::from_env();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    println!("| figure | RTT | sharecache | alternative | ratio | goal |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &rtt in &plan.rtts {
        let half = Duration::from_micros(rtt * 500);
        if plan.wants("push") {
            for n in [1_000i64, 10_000] {
                log(t0, &format!("push {n} rows, RTT {rtt} ms"));
                let db = Db::new(&admin, &format!("bench_push_{n}_{rtt}"));
                db.items("items", 0);
                // The alternative's table, where the caches do not sync it.
                db.connect().batch_execute("CREATE SCHEMA other").unwrap();
                db.items("other.plain", 0);
                let proxy = Proxy::start(db.addr());
                proxy.set_latency(half, half);
                let url = db.via(&proxy);
                let a = cache(&url, dir.path(), &format!("push-{n}-{rtt}"));
                a.sync_now().unwrap();
                let mut plain = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                // The floor: the same rows plus one change-log entry per row with the row's
                // image, into a copy of sharecache's log (its columns, indexes and id sequence).
                plain
                    .batch_execute(
                        "SELECT count(*) FROM other.plain; \
                         CREATE TABLE other.floor (LIKE other.plain INCLUDING ALL); \
                         CREATE TABLE other.log (LIKE sharecache.log INCLUDING ALL)",
                    )
                    .unwrap();
                // Three rounds, alternating: the medians (first-use costs out of the figure).
                let (mut ours, mut base, mut floor) = (Vec::new(), Vec::new(), Vec::new());
                for round in 0..3 {
                    let ids: Vec<i64> = (round * n + 1..=round * n + n).collect();
                    {
                        let mut c = a.conn();
                        let tx = c.transaction().unwrap();
                        for i in &ids {
                            tx.execute(
                                "INSERT INTO items (id, v, n) VALUES (?1, 'pushed ' || ?1, ?1)",
                                [i],
                            )
                            .unwrap();
                        }
                        tx.commit().unwrap();
                    }
                    let before = proxy.round_trips();
                    let t = Instant::now();
                    let r = a.sync_now().unwrap();
                    ours.push((t.elapsed(), proxy.round_trips() - before));
                    assert_eq!(r.pushed as i64, n);
                    // The alternative: the same rows by hand, one transaction, one statement.
                    let vs: Vec<String> = ids.iter().map(|i| format!("pushed {i}")).collect();
                    let before = proxy.round_trips();
                    let t = Instant::now();
                    let mut tx = plain.transaction().unwrap();
                    tx.execute_typed(
                        "INSERT INTO other.plain (id, v, n) SELECT * FROM unnest($1::int8[], $2::text[], $1::int8[])",
                        &[(&ids, Type::INT8_ARRAY), (&vs, Type::TEXT_ARRAY)],
                    )
                    .unwrap();
                    tx.commit().unwrap();
                    base.push((t.elapsed(), proxy.round_trips() - before));
                    // The floor, as the push would log them (key text, a stamp, the image).
                    let columns = ["id", "v", "n"].map(str::to_owned);
                    let (pks, images): (Vec<String>, Vec<Vec<u8>>) = ids
                        .iter()
                        .map(|&i| {
                            let values = [
                                Value::Integer(i),
                                Value::Text(format!("pushed {i}")),
                                Value::Integer(i),
                            ];
                            (i.to_string(), image::encode(&columns, &values))
                        })
                        .collect();
                    let stamp = "2026-12-05T09:00:00.000Z-0000-0123456789abcdef";
                    let before = proxy.round_trips();
                    let t = Instant::now();
                    let mut tx = plain.transaction().unwrap();
                    tx.execute_typed(
                        "WITH r AS (INSERT INTO other.floor (id, v, n) \
                         SELECT * FROM unnest($1::int8[], $2::text[], $1::int8[])) \
                         INSERT INTO other.log (rev, tbl, pk, stamp, origin, image) \
                         SELECT $5 + o, 'items', p, $4, 'bench', i \
                         FROM unnest($3::text[], $6::bytea[]) WITH ORDINALITY AS u(p, i, o)",
                        &[
                            (&ids, Type::INT8_ARRAY),
                            (&vs, Type::TEXT_ARRAY),
                            (&pks, Type::TEXT_ARRAY),
                            (&stamp, Type::TEXT),
                            (&(round * n), Type::INT8),
                            (&images, Type::BYTEA_ARRAY),
                        ],
                    )
                    .unwrap();
                    tx.commit().unwrap();
                    floor.push((t.elapsed(), proxy.round_trips() - before));
                }
                ours.sort();
                base.sort();
                floor.sort();
                let (ours, ours_rt) = ours[1];
                let (base, base_rt) = base[1];
                let (floor, floor_rt) = floor[1];
                row(
                    &format!("push {n} rows"),
                    rtt,
                    ours,
                    ours_rt,
                    Some((base, base_rt)),
                    "≤ 1.5×",
                );
                row(
                    &format!(
                        "push {n} rows vs the floor: the same rows and a log entry each (with its \
                         image, into a copy of the log), by hand in one statement"
                    ),
                    rtt,
                    ours,
                    ours_rt,
                    Some((floor, floor_rt)),
                    "",
                );
                row(
                    &format!("the floor vs the rows alone ({n} rows)"),
                    rtt,
                    floor,
                    floor_rt,
                    Some((base, base_rt)),
                    "",
                );
            }
        }
        let needs_big = plan.wants("pull") || plan.wants("snapshot") || plan.wants("idle");
        if needs_big {
            log(
                t0,
                &format!("tables of 10k and {} rows, RTT {rtt} ms", plan.big),
            );
            let db = Db::new(&admin, &format!("bench_pull_{rtt}"));
            db.items("small", 10_000);
            db.items("big", plan.big);
            let proxy = Proxy::start(db.addr());
            proxy.set_latency(half, half);
            let url = db.via(&proxy);
            let before = proxy.round_trips();
            let t = Instant::now();
            let reader = cache(&url, dir.path(), &format!("pull-{rtt}"));
            let snapshot = t.elapsed();
            let snapshot_rt = proxy.round_trips() - before;
            if plan.wants("snapshot") {
                let dump = std::env::var("PG_DUMP").unwrap_or_else(|_| "pg_dump".to_owned());
                let t = Instant::now();
                let out = Command::new(&dump)
                    .args([
                        "--data-only",
                        "-t",
                        "small",
                        "-t",
                        "big",
                        "-f",
                        "/dev/null",
                        "-d",
                        &url,
                    ])
                    .output();
                let base = match out {
                    Ok(o) if o.status.success() => Some((t.elapsed(), 0)),
                    Ok(o) => {
                        eprintln!("pg_dump failed: {}", String::from_utf8_lossy(&o.stderr));
                        None
                    }
                    Err(e) => {
                        eprintln!("pg_dump not run ({e}); set PG_DUMP to its path");
                        None
                    }
                };
                row(
                    &format!(
                        "snapshot of 10k + {} rows (vs pg_dump --data-only)",
                        plan.big
                    ),
                    rtt,
                    snapshot,
                    snapshot_rt,
                    base,
                    "",
                );
            }
            if plan.wants("pull") {
                let mut pulls = [(Duration::ZERO, 0); 2];
                for (i, table) in ["small", "big", "small", "big"].into_iter().enumerate() {
                    let mut w = db.connect();
                    w.batch_execute(&format!(
                        "UPDATE {table} SET v = v || ' changed' WHERE id % 97 = 0 AND id <= 9700"
                    ))
                    .unwrap();
                    let before = proxy.round_trips();
                    let t = Instant::now();
                    let r = reader.sync_now().unwrap();
                    // The second of each (the first pays first-use costs).
                    pulls[i % 2] = (t.elapsed(), proxy.round_trips() - before);
                    assert_eq!(r.pulled, 100, "{r:?}");
                }
                row(
                    &format!("pull 100 changes: {}-row table vs 10k-row table", plan.big),
                    rtt,
                    pulls[1].0,
                    pulls[1].1,
                    Some(pulls[0]),
                    "≤ 1.2×",
                );
            }
            if plan.wants("idle") {
                reader.sync_now().unwrap();
                let mut times = Vec::new();
                let before = proxy.round_trips();
                for _ in 0..20 {
                    let t = Instant::now();
                    assert!(reader.sync_now().unwrap().idle);
                    times.push(t.elapsed());
                }
                times.sort();
                row(
                    "idle sync (median of 20)",
                    rtt,
                    times[10],
                    (proxy.round_trips() - before) / 20,
                    None,
                    "≤ 1 RT",
                );
            }
        }
        if plan.wants("clients") {
            log(
                t0,
                &format!(
                    "{} clients for {:?}, RTT {rtt} ms",
                    plan.clients, plan.clients_for
                ),
            );
            let db = Db::new(&admin, &format!("bench_clients_{rtt}"));
            db.items("items", 1000);
            let proxy = Proxy::start(db.addr());
            proxy.set_latency(half, half);
            let url = db.via(&proxy);
            let caches: Vec<Cache> = (0..plan.clients)
                .map(|i| cache(&url, dir.path(), &format!("client-{rtt}-{i}")))
                .collect();
            let stop = Arc::new(AtomicBool::new(false));
            let mut handles = Vec::new();
            for (i, c) in caches.into_iter().enumerate() {
                let stop = stop.clone();
                handles.push(std::thread::spawn(move || {
                    let (mut last, mut worst, mut syncs, mut errors) =
                        (Instant::now(), Duration::ZERO, 0u64, 0u64);
                    let mut k = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        // Each client its own rows.
                        let id = (i as i64) * 40 + (k % 40) + 1;
                        c.conn()
                            .execute("UPDATE items SET n = n + 1 WHERE id = ?1", [id])
                            .unwrap();
                        match c.sync_now() {
                            Ok(_) => {
                                worst = worst.max(last.elapsed());
                                last = Instant::now();
                                syncs += 1;
                            }
                            Err(e) => {
                                errors += 1;
                                eprintln!("client {i}: {e}");
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    (worst, syncs, errors)
                }));
            }
            std::thread::sleep(plan.clients_for);
            stop.store(true, Ordering::Relaxed);
            let results: Vec<(Duration, u64, u64)> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            let worst = results.iter().map(|r| r.0).max().unwrap();
            let syncs: u64 = results.iter().map(|r| r.1).sum();
            let errors: u64 = results.iter().map(|r| r.2).sum();
            println!(
                "| {} clients, write + sync every 100 ms for {:?}: longest gap between a client's syncs | {rtt} ms | {} | {syncs} syncs, {errors} errors | | ≤ 1 s |",
                plan.clients,
                plan.clients_for,
                ms(worst)
            );
        }
    }
    log(t0, "done");
}
