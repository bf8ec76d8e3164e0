//! Local transactions: every transaction sharecache opens on the cache goes through here, on
//! rusqlite's [`Transaction`] (committed when the work succeeds, rolled back when it fails or
//! panics), never through hand-written `BEGIN`/`COMMIT`. A write transaction first folds the
//! capture journal into the outbox ([`super::journal`]), so that its work sees every committed
//! write as the outbox entry it makes.

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Runs `f` in a write transaction (`BEGIN IMMEDIATE`: the write lock is taken up front, so the
/// transaction never fails half-way on another writer's lock), after folding the capture journal
/// in it.
pub(crate) fn write_tx<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    run(c, TransactionBehavior::Immediate, |c| {
        super::journal::fold_in(c)?;
        f(c)
    })
}

/// A write transaction that leaves the journal as it is (the fold's own).
pub(super) fn write_tx_unfolded<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    run(c, TransactionBehavior::Immediate, f)
}

/// Runs `f` in a read transaction: everything it reads is one consistent state of the cache.
pub(crate) fn read_tx<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    run(c, TransactionBehavior::Deferred, f)
}

/// A read transaction as a guard, for code that maps each statement's error itself: reads on
/// `c` while it lives see one state; it ends when dropped.
pub(crate) fn read_snapshot(c: &Connection) -> rusqlite::Result<Transaction<'_>> {
    Transaction::new_unchecked(c, TransactionBehavior::Deferred)
}

fn run<T>(
    c: &Connection,
    behavior: TransactionBehavior,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = Transaction::new_unchecked(c, behavior)?;
    let v = f(&tx)?;
    tx.commit()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        c
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_write_commits_when_it_succeeds_and_leaves_nothing_when_it_fails() {
        let c = db();
        write_tx(&c, |c| c.execute("INSERT INTO t VALUES (1)", [])).unwrap();
        assert_eq!(count(&c), 1);
        let failed = write_tx(&c, |c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            c.execute("INSERT INTO nowhere VALUES (3)", [])
        });
        assert!(failed.is_err());
        assert_eq!(count(&c), 1);
        assert!(c.is_autocommit(), "no transaction left open");
    }

    #[test]
    fn a_panic_inside_rolls_back() {
        let c = db();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = write_tx(&c, |c| -> rusqlite::Result<()> {
                c.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("boom")
            });
        }));
        assert!(r.is_err());
        assert_eq!(count(&c), 0);
        assert!(c.is_autocommit());
    }

    #[test]
    fn reads_end_their_transaction_either_way() {
        let c = db();
        assert_eq!(read_tx(&c, |c| Ok(count(c))).unwrap(), 0);
        assert!(read_tx(&c, |c| c.execute("SELECT * FROM nowhere", [])).is_err());
        assert!(c.is_autocommit());
        let snap = read_snapshot(&c).unwrap();
        assert!(!c.is_autocommit());
        drop(snap);
        assert!(c.is_autocommit());
    }
}
