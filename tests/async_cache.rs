//! The async handle (feature `tokio`): its operations run off the runtime's threads, so a
//! current-thread runtime keeps running other tasks while a sync waits on a slow remote. Against
//! both backends.

use std::time::{Duration, Instant};

use sharecache::async_cache::AsyncCache;

use crate::support::remote::{Backend, Remote};

crate::both_backends!(
    the_runtime_keeps_ticking_while_a_sync_waits_on_a_slow_remote,
    every_operation_works_through_the_async_handle,
);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn the_runtime_keeps_ticking_while_a_sync_waits_on_a_slow_remote(backend: Backend) {
    let remote = Remote::new(backend);
    runtime().block_on(async {
        let cache = AsyncCache::open(remote.config("a")).await.unwrap();
        cache
            .with_conn(|c| c.execute("INSERT INTO notes (id, body) VALUES (41, 'slow')", []))
            .await
            .unwrap();
        remote.set_latency(Duration::from_millis(15));

        const TICK: Duration = Duration::from_millis(20);
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let started = Instant::now();
        let mut ticks = 0u32;
        let report = {
            let sync = cache.sync_now();
            tokio::pin!(sync);
            loop {
                tokio::select! {
                    r = &mut sync => break r.unwrap(),
                    _ = interval.tick() => ticks += 1,
                }
            }
        };
        let took = started.elapsed();
        remote.normal_speed();

        assert_eq!(report.pushed, 1);
        assert!(
            took >= Duration::from_millis(400),
            "the remote should have made the sync slow, took {took:?}"
        );
        // A blocked runtime thread would not tick at all during the sync; allow for a loaded
        // machine by asking for half the ticks that fit.
        let expected = (took.as_millis() / TICK.as_millis()) as u32;
        assert!(
            ticks >= expected / 2,
            "{ticks} ticks during a {took:?} sync (expected about {expected})"
        );
        cache.close().await;
    });
    let n: i64 = remote.one("SELECT count(*) FROM notes WHERE id = 41");
    assert_eq!(n, 1);
}

fn every_operation_works_through_the_async_handle(backend: Backend) {
    let remote = Remote::new(backend);
    runtime().block_on(async {
        let a = AsyncCache::open(remote.config("a")).await.unwrap();
        let b = AsyncCache::open(remote.config("b")).await.unwrap();
        a.with_conn(|c| c.execute("UPDATE tasks SET title = 'older (a)' WHERE id = 't1'", []))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        b.with_conn(|c| c.execute("UPDATE tasks SET title = 'newer (b)' WHERE id = 't1'", []))
            .await
            .unwrap();
        a.sync_now().await.unwrap();
        assert_eq!(b.sync_now().await.unwrap().conflicts, 1);
        a.sync_now().await.unwrap();

        let conflicts = a.conflicts(10).await.unwrap();
        assert_eq!(conflicts.len(), 1);
        let id = conflicts[0].id;
        assert!(a.conflict(id).await.unwrap().is_some());
        a.restore_conflict(id).await.unwrap();
        assert_eq!(a.status().await.unwrap().pending_writes, 1);
        a.sync_now().await.unwrap();
        b.sync_now().await.unwrap();
        let title = b
            .with_conn(|c| {
                c.query_row("SELECT title FROM tasks WHERE id = 't1'", [], |r| {
                    r.get::<_, String>(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(title, "older (a)");

        assert!(a.history(5).await.unwrap().len() >= 3);
        let cleared = b.clear(false).await.unwrap();
        assert!(cleared.bytes > 0);
        assert_eq!(b.status().await.unwrap().state, sharecache::State::Success);
        // Dropping inside the runtime closes the cache off the runtime's thread.
        drop(b);
        a.close().await;
    });
}
