//! Slowing a remote of either backend down and watching what its clients do on it, for tests
//! that act at a chosen point of a sync (or kill it there): the share's latency and operation
//! counters (`slowfs`), the proxy's latency, rate, round trips and bytes, and the server's own
//! view of its sessions.

#[cfg(feature = "postgres")]
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Inner, Remote};

/// What the share reads in one operation: a database page.
#[cfg(feature = "postgres")]
const PAGE: u64 = 4096;

/// The server's sessions other than the asking one (the test's own), of this database.
#[cfg(feature = "postgres")]
const OTHERS: &str = "FROM pg_stat_activity WHERE datname = current_database() \
                      AND pid <> pg_backend_pid() AND backend_type = 'client backend'";

impl Remote {
    /// Every operation on the remote takes `latency` longer: each request to the share; each
    /// direction of the server's link, which then also carries a page (4 KiB) per `latency`, as
    /// the share reads one.
    pub fn set_latency(&self, latency: Duration) {
        match &self.inner {
            Inner::Share(s) => s.control.set_latency(latency),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                s.proxy.set_latency(latency, latency);
                let micros = latency.as_micros().max(1) as u64;
                s.proxy
                    .set_rate((!latency.is_zero()).then(|| PAGE * 1_000_000 / micros));
            }
        }
    }

    /// Back to the test's usual speed (the share's [`crate::support::latency`], a link without
    /// delay).
    pub fn normal_speed(&self) {
        match &self.inner {
            Inner::Share(s) => s.control.set_latency(crate::support::latency()),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                s.proxy.set_latency(Duration::ZERO, Duration::ZERO);
                s.proxy.set_rate(None);
            }
        }
    }

    /// Starts the counters of [`Remote::operations`], [`Remote::bytes_read`] and
    /// [`Remote::write_begun`] anew.
    pub fn reset_counters(&self) {
        match &self.inner {
            Inner::Share(s) => s.control.reset_stats(),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                s.base_round_trips
                    .store(s.proxy.round_trips(), Ordering::SeqCst);
                s.base_bytes_down
                    .store(s.proxy.bytes_down(), Ordering::SeqCst);
            }
        }
    }

    /// Operations the clients made on the remote since the counters were reset: requests to the
    /// share, round trips to the server.
    pub fn operations(&self) -> u64 {
        match &self.inner {
            Inner::Share(s) => s.control.stats().total,
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.proxy.round_trips() - s.base_round_trips.load(Ordering::SeqCst),
        }
    }

    /// Bytes the clients read from the remote since the counters were reset: from the share's
    /// files, from the server's link.
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            Inner::Share(s) => s.control.stats().bytes_read,
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => s.proxy.bytes_down() - s.base_bytes_down.load(Ordering::SeqCst),
        }
    }

    /// Whether a client's write transaction on the remote has begun: the share saw a file
    /// created since the counters were reset (the write lease, every write's first step); a
    /// session of the server (not the test's own) is inside a transaction block now.
    pub fn write_begun(&self) -> bool {
        match &self.inner {
            Inner::Share(s) => s.control.stats().create >= 1,
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => self.sessions(
                "state LIKE 'idle in transaction%' OR (state = 'active' AND xact_start < query_start)",
            ) > 0,
        }
    }

    /// Waits (up to 20 s) until no client killed in the middle of a write still has it open on
    /// the remote, so that what the remote holds is what it will keep. A share has every write
    /// the killed process made (its locks went with it): nothing to wait for. A server holds the
    /// killed client's session, and its transaction, until it reads the end of the connection
    /// (after whatever the proxy still carries, a COMMIT maybe): then it ends the transaction.
    pub fn wait_settled(&self) {
        match &self.inner {
            Inner::Share(_) => {}
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => {
                let deadline = Instant::now() + Duration::from_secs(20);
                while self.sessions("xact_start IS NOT NULL") > 0 {
                    assert!(
                        Instant::now() < deadline,
                        "a killed client's transaction is still open on the server after 20 s"
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    /// Sessions of the server's database (not the test's own) in which `condition` holds.
    #[cfg(feature = "postgres")]
    fn sessions(&self, condition: &str) -> i64 {
        let Inner::Postgres(s) = &self.inner else {
            unreachable!("sessions are the server's")
        };
        s.session(|c| c.query_one(&format!("SELECT count(*) {OTHERS} AND ({condition})"), &[]))
            .unwrap_or_else(|e| panic!("reading the server's sessions: {e}"))
            .get(0)
    }
}

/// Waits until `cond` holds of the remote (or panics after 20 s, naming `what`).
pub fn wait_for(remote: &Remote, what: &str, cond: impl Fn(&Remote) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(remote) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}
