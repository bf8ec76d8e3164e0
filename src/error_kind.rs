//! [`ErrorKind`]: how an error is classed, for retry decisions and exit codes. A leaf, so that
//! every layer's error (local, remote, the umbrella) can say which kind it is.

/// A coarse classification of errors, for retry decisions and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The share is unreachable; retry later.
    Offline,
    /// The remote stayed locked by other writers, or another program holds the cache; retry
    /// later.
    Locked,
    /// The configuration is wrong; fix it.
    Config,
    /// The remote is not usable (corrupt, wrong file, unsupported); needs a human.
    Remote,
    /// The local cache is not usable (corrupt, disk full, unwritable).
    Local,
    /// Anything else.
    Other,
}
