//! Crash points for crash-consistency tests. When the environment variable `SHARECACHE_FAILPOINT`
//! names a point, the process aborts there, like a `kill -9` at exactly that moment. Only built
//! with the cargo feature `failpoints`, which the test suite turns on (a dev-dependency of the
//! crate on itself); without it `hit` compiles to nothing, so no build that ships can be made to
//! abort by an environment variable.

/// After the remote transaction of a push batch committed, before the local acknowledgement.
pub const AFTER_REMOTE_COMMIT: &str = "push-after-remote-commit";
/// In the middle of a push batch's remote transaction, before COMMIT.
pub const BEFORE_REMOTE_COMMIT: &str = "push-before-remote-commit";
/// After a pull batch was read from the remote, before it is applied locally.
pub const BEFORE_PULL_APPLY: &str = "pull-before-apply";

/// Aborts the process if `name` is the configured failpoint.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if POINT
        .get_or_init(|| std::env::var("SHARECACHE_FAILPOINT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("sharecache: failpoint {name} reached: aborting");
        std::process::abort();
    }
}

/// Without the `failpoints` feature there are no crash points.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &str) {}
