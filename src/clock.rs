//! Time and identity: the only place that reads the clock.
//!
//! Conflicts are decided by stamps, not by raw wall-clock time: a stamp is issued by a hybrid
//! logical clock (HLC) kept in the cache's `sync_state.hlc`, which is never below the newest stamp
//! the cache has seen (its own or pulled) plus one tick (1 ms), and survives restarts because it
//! lives in the cache file. Ties are broken by the per-install random origin id, so every
//! replica picks the same winner. Stamps are ISO-8601 UTC text with milliseconds
//! (`2026-11-22T10:15:30.123Z`), which sorts correctly as text and is what apps and SQLite's date
//! functions use. Inside the cache, the clock and the stamps of pending changes are kept as the
//! same instant in integer milliseconds since the Unix epoch, and turned into text when read
//! ([`stamp_of_ms`]): the capture advances the clock on every write, and parsing and formatting
//! text there cost more than the rest of the trigger (BENCHMARKS.md, Capture).
//!
//! The capture triggers compute the clock in SQL (any SQLite client can write the cache), from
//! SQLite's own `'now'`. To test skewed clocks, a [`Clock`] with an offset registers a VFS that
//! wraps the default one and shifts only its time function; connections opened with
//! [`Clock::vfs`] then see the shifted time in SQL too.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_int};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::ffi;

/// `strftime` format that produces a stamp in SQL.
pub const SQL_STAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%fZ";

/// A `GLOB` pattern that matches exactly the canonical stamp shape.
const STAMP_GLOB: &str =
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z";

/// The local clock, optionally shifted (to simulate a machine whose clock is wrong).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The machine's clock.
    pub fn system() -> Clock {
        Clock { offset_ms: 0 }
    }

    /// The machine's clock shifted by `offset` (negative: behind).
    ///
    /// ```
    /// let behind = sharecache::clock::Clock::with_offset(chrono::Duration::hours(-1));
    /// assert!(behind.now() < chrono::Utc::now());
    /// ```
    pub fn with_offset(offset: chrono::Duration) -> Clock {
        Clock {
            offset_ms: offset.num_milliseconds(),
        }
    }

    /// The offset from the machine's clock.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.offset_ms)
    }

    /// Current time on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// Current time on this clock as a stamp.
    pub fn now_stamp(&self) -> String {
        format_stamp(self.now())
    }

    /// The SQLite VFS name that makes SQL's `'now'` agree with this clock, or `None` for the
    /// unshifted system clock (use the default VFS).
    pub fn vfs(&self) -> Option<&'static CStr> {
        if self.offset_ms == 0 {
            None
        } else {
            Some(register_shifted_vfs(self.offset_ms))
        }
    }
}

/// Formats a time as a stamp (`2026-11-22T10:15:30.123Z`).
///
/// ```
/// use chrono::TimeZone;
/// let t = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 15, 30).unwrap();
/// assert_eq!(sharecache::clock::format_stamp(t), "2026-11-22T10:15:30.000Z");
/// ```
pub fn format_stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a stamp (or any RFC 3339 time) back into a time.
pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A stamp as milliseconds since the Unix epoch, as the cache keeps its clock.
///
/// ```
/// assert_eq!(sharecache::clock::ms_of_stamp("2025-11-24T16:00:00.123Z"), Some(1_764_000_000_123));
/// assert_eq!(sharecache::clock::ms_of_stamp("yesterday"), None);
/// ```
pub fn ms_of_stamp(s: &str) -> Option<i64> {
    parse_stamp(s).map(|t| t.timestamp_millis())
}

/// A new random origin id (16 hex digits), unique per install with overwhelming probability.
pub fn new_origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// SQL expression: `expr` if it is a canonical stamp, else `''` (so it never wins a `max`).
pub(crate) fn stamp_or_empty(expr: &str) -> String {
    format!("CASE WHEN {expr} GLOB '{STAMP_GLOB}' THEN {expr} ELSE '' END")
}

/// SQL expression: the current time on SQLite's clock (its `'now'`, so a [`Clock::vfs`] shift
/// applies) as milliseconds since the Unix epoch. `julianday` holds whole milliseconds and
/// exists in every SQLite (`unixepoch('subsec')` needs 3.42, which other clients of the cache
/// may not have); the rounding undoes the floating-point division.
pub(crate) const SQL_NOW_MS: &str =
    "CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";

/// SQL expression: the stamp (or any date SQLite reads) `expr` as milliseconds since the Unix
/// epoch; 0 when it is not a date, so it never wins a `max`.
pub(crate) fn ms_of_stamp_sql(expr: &str) -> String {
    format!("coalesce(CAST(round((julianday({expr}) - 2440587.5) * 86400000.0) AS INTEGER), 0)")
}

/// SQL expression: milliseconds since the Unix epoch `ms` as a stamp, in integer arithmetic
/// (exactly what [`stamp_of_ms`] gives).
pub(crate) fn stamp_of_ms_sql(ms: &str) -> String {
    format!(
        "strftime('%Y-%m-%dT%H:%M:%S.', {ms} / 1000, 'unixepoch') || substr(1000 + {ms} % 1000, 2) || 'Z'"
    )
}

/// SQL expression: `expr` as milliseconds if it is a canonical stamp, else 0.
pub(crate) fn ms_of_canonical_stamp_sql(expr: &str) -> String {
    format!(
        "CASE WHEN {expr} GLOB '{STAMP_GLOB}' THEN {} ELSE 0 END",
        ms_of_stamp_sql(expr)
    )
}

/// SQL expression for the cache's next clock value (milliseconds since the Unix epoch) given
/// the current one (`current`): the later of now and `current` + 1 ms, and of `observed`
/// (milliseconds, already guarded) if given. Integer arithmetic: the capture runs it for every
/// write, and it used to parse and format text stamps twice per row (BENCHMARKS.md, Capture).
pub(crate) fn next_clock_sql(current: &str, observed: Option<&str>) -> String {
    let mut e = format!("max({current} + 1, {SQL_NOW_MS}");
    if let Some(o) = observed {
        e.push_str(", ");
        e.push_str(o);
    }
    e.push(')');
    e
}

/// A stamp from milliseconds since the Unix epoch (how the cache keeps its clock and the stamps
/// of pending changes).
///
/// ```
/// assert_eq!(sharecache::clock::stamp_of_ms(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
/// ```
pub fn stamp_of_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(String::new, format_stamp)
}

// --- the shifted-time VFS -------------------------------------------------------------------

const VFS_PREFIX: &str = "sharecache-clock";

fn registry() -> &'static Mutex<HashMap<i64, &'static CStr>> {
    static REG: OnceLock<Mutex<HashMap<i64, &'static CStr>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

static BASE_VFS: OnceLock<usize> = OnceLock::new();

fn register_shifted_vfs(offset_ms: i64) -> &'static CStr {
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(name) = reg.get(&offset_ms) {
        return name;
    }
    // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives for the whole process.
    // We copy its method table, change the name and the time functions, and leak the copy:
    // registered VFSes must outlive every connection that uses them.
    unsafe {
        ffi::sqlite3_initialize();
        let base = ffi::sqlite3_vfs_find(std::ptr::null());
        assert!(!base.is_null(), "SQLite has no default VFS");
        BASE_VFS.get_or_init(|| base as usize);
        let name: &'static CStr = Box::leak(
            CString::new(format!("{VFS_PREFIX}{offset_ms:+}"))
                .expect("no NUL")
                .into_boxed_c_str(),
        );
        let mut vfs = *base;
        vfs.zName = name.as_ptr();
        vfs.pNext = std::ptr::null_mut();
        vfs.xCurrentTime = Some(shifted_time);
        if vfs.iVersion >= 2 {
            vfs.xCurrentTimeInt64 = Some(shifted_time_i64);
        }
        let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
        let rc = ffi::sqlite3_vfs_register(vfs, 0);
        assert_eq!(
            rc,
            ffi::SQLITE_OK,
            "registering the shifted-clock VFS failed"
        );
        reg.insert(offset_ms, name);
        name
    }
}

unsafe fn offset_of(vfs: *mut ffi::sqlite3_vfs) -> i64 {
    // SAFETY: zName points to the leaked name we registered.
    let name = unsafe { CStr::from_ptr((*vfs).zName) };
    name.to_str()
        .ok()
        .and_then(|s| s.strip_prefix(VFS_PREFIX))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

unsafe extern "C" fn shifted_time_i64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: BASE_VFS is set before any shifted VFS is registered; the base VFS is static.
    unsafe {
        let base = *BASE_VFS.get().expect("base VFS") as *mut ffi::sqlite3_vfs;
        let rc = match (*base).xCurrentTimeInt64 {
            Some(f) => f(base, out),
            None => {
                let mut d = 0f64;
                let rc = (*base).xCurrentTime.expect("xCurrentTime")(base, &mut d);
                *out = (d * 86_400_000.0) as i64;
                rc
            }
        };
        *out += offset_of(vfs);
        rc
    }
}

unsafe extern "C" fn shifted_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let mut ms: ffi::sqlite3_int64 = 0;
    // SAFETY: forwarded from SQLite with valid pointers.
    let rc = unsafe { shifted_time_i64(vfs, &mut ms) };
    // SAFETY: `out` is a valid pointer given by SQLite.
    unsafe { *out = ms as f64 / 86_400_000.0 };
    rc
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    fn sql_now(clock: Clock) -> DateTime<Utc> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let db = match clock.vfs() {
            Some(v) => Connection::open_with_flags_and_vfs(&path, flags, v).unwrap(),
            None => Connection::open_with_flags(&path, flags).unwrap(),
        };
        let s: String = db
            .query_row(
                &format!("SELECT strftime('{SQL_STAMP_FORMAT}', 'now')"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        parse_stamp(&s).unwrap()
    }

    #[test]
    fn shifted_clock_shifts_sql_now_too() {
        let behind = Clock::with_offset(chrono::Duration::hours(-1));
        let skew = Utc::now() - sql_now(behind);
        assert!(
            (skew - chrono::Duration::hours(1)).num_seconds().abs() < 5,
            "skew was {skew}"
        );
        let real = Utc::now() - sql_now(Clock::system());
        assert!(real.num_seconds().abs() < 5);
    }

    #[test]
    fn next_clock_never_goes_backwards() {
        let db = Connection::open_in_memory().unwrap();
        let future = 32_503_680_000_999i64; // 3000-01-01T00:00:00.999Z
        let next: i64 = db
            .query_row(
                &format!("SELECT {}", next_clock_sql(&future.to_string(), None)),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(next, future + 1);
        assert_eq!(stamp_of_ms(next), "3000-01-01T00:00:01.000Z");
        let now: i64 = db
            .query_row(&format!("SELECT {}", next_clock_sql("0", None)), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!((now - Utc::now().timestamp_millis()).abs() < 5_000, "{now}");
    }

    #[test]
    fn stamps_and_milliseconds_convert_the_same_in_sql_and_in_rust() {
        let db = Connection::open_in_memory().unwrap();
        let mut ms = 946_684_800_000i64; // 2000-01-01
        let mut checked = 0;
        while ms < 4_102_444_800_000 {
            // 2100-01-01; every millisecond digit, and the last one of a second
            for m in [ms, ms + 1, ms + 999, ms + 500] {
                let (text, back): (String, i64) = db
                    .query_row(
                        &format!(
                            "SELECT {}, {}",
                            stamp_of_ms_sql("?1"),
                            ms_of_stamp_sql(&stamp_of_ms_sql("?1"))
                        ),
                        [m],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                assert_eq!(text, stamp_of_ms(m), "{m}");
                assert_eq!(back, m, "{text}");
                assert_eq!(parse_stamp(&text).unwrap().timestamp_millis(), m);
                checked += 1;
            }
            ms += 7_777_777_777; // ~90 days, landing on every millisecond digit over time
        }
        assert!(checked > 1000);
        let zero: i64 = db
            .query_row(
                &format!("SELECT {}", ms_of_stamp_sql("'not a date'")),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(zero, 0);
    }

    #[test]
    fn only_canonical_stamps_are_observed() {
        let db = Connection::open_in_memory().unwrap();
        for (input, expect) in [
            ("'2026-11-22T10:15:30.123Z'", "2026-11-22T10:15:30.123Z"),
            ("'2026-11-22 10:15:30'", ""),
            ("1700000000", ""),
            ("NULL", ""),
        ] {
            let got: String = db
                .query_row(&format!("SELECT {}", stamp_or_empty(input)), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(got, expect, "{input}");
            let ms: i64 = db
                .query_row(
                    &format!("SELECT {}", ms_of_canonical_stamp_sql(input)),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let want = parse_stamp(expect).map_or(0, |t| t.timestamp_millis());
            assert_eq!(ms, want, "{input}");
        }
    }

    #[test]
    fn stamps_format_and_parse_round_trip() {
        let t = Utc::now();
        let s = format_stamp(t);
        assert_eq!(s.len(), 24);
        assert_eq!(
            parse_stamp(&s).unwrap().timestamp_millis(),
            t.timestamp_millis()
        );
        assert_ne!(new_origin(), new_origin());
    }
}
