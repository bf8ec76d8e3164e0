//! The spellings of one network path. A Windows user may write the same share as
//! `\\server\share\app.db`, `\\?\UNC\server\share\app.db`, `//server/share/app.db` or
//! `\\SERVER\Share\App.db`; each must lead to the same cache, or two caches of one remote would
//! exist side by side (each correct, but the writes of one not visible in the other until a
//! sync). The cache file's name is a hash of [`cache_key`], which folds those spellings.
//!
//! Server and share names are case-insensitive (DNS, SMB). The rest of the path is case-folded
//! on Windows (its filesystems and SMB shares are case-insensitive) and kept on Unix, so that
//! the name of every cache made before this folding existed stays the same on Linux.

use std::path::Path;

/// A UNC path split into its parts, whatever its spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unc<'a> {
    /// The server (host) name, as written.
    pub server: &'a str,
    /// The share name, as written.
    pub share: &'a str,
    /// The path inside the share, one entry per component (empty and `.` components dropped).
    pub rest: Vec<&'a str>,
}

/// Splits `s` if it is a UNC path: `\\server\share\…`, `\\?\UNC\server\share\…`,
/// `//server/share/…` (either separator anywhere). `\\?\C:\…` and `\\.\…` are not UNC paths.
///
/// ```
/// use sharecache::platform::unc::parse;
/// let u = parse(r"\\?\UNC\Srv\Data\app.db").unwrap();
/// assert_eq!((u.server, u.share, u.rest), ("Srv", "Data", vec!["app.db"]));
/// assert!(parse(r"\\?\C:\data\app.db").is_none());
/// ```
pub fn parse(s: &str) -> Option<Unc<'_>> {
    let sep = |c: char| c == '\\' || c == '/';
    let body = if let Some(r) = strip_prefix_ci(s, r"\\?\UNC\") {
        r
    } else {
        let mut chars = s.chars();
        if !(chars.next().is_some_and(sep) && chars.next().is_some_and(sep)) {
            return None;
        }
        &s[2..]
    };
    if body.starts_with(['?', '.']) && body[1..].starts_with(sep) {
        return None; // a verbatim local path (`\\?\C:\`) or a device (`\\.\pipe\`)
    }
    let mut parts = body.split(sep).filter(|p| !p.is_empty() && *p != ".");
    let server = parts.next()?;
    let share = parts.next()?;
    Some(Unc {
        server,
        share,
        rest: parts.collect(),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    let head = head.replace('/', "\\");
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The string a cache file name is derived from: the same for every spelling of one remote path
/// on this platform.
pub fn cache_key(remote: &Path) -> String {
    cache_key_for(&remote.to_string_lossy(), cfg!(windows))
}

/// [`cache_key`] with the platform's case rule as a parameter, so both rules are tested on every
/// platform. `windows`: fold the case of the whole path, `\` separators, `\\?\C:\x` = `C:\x`.
///
/// ```
/// use sharecache::platform::unc::cache_key_for;
/// let key = |p| cache_key_for(p, true);
/// assert_eq!(key(r"\\SERVER\Share\App.db"), key("//server/share/app.db"));
/// assert_eq!(key(r"\\?\UNC\server\share\app.db"), key(r"\\server\share\app.db"));
/// // On Linux the key of an existing lowercase share path is the path itself.
/// assert_eq!(cache_key_for("//server/share/App.db", false), "//server/share/App.db");
/// ```
pub fn cache_key_for(path: &str, windows: bool) -> String {
    if let Some(u) = parse(path) {
        let mut key = format!("//{}/{}", u.server.to_lowercase(), u.share.to_lowercase());
        for part in u.rest {
            key.push('/');
            if windows {
                key.push_str(&part.to_lowercase());
            } else {
                key.push_str(part);
            }
        }
        return key;
    }
    if !windows {
        return path.to_string();
    }
    let local = strip_prefix_ci(path, r"\\?\").unwrap_or(path);
    local.replace('/', "\\").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unc_spelling_of_one_share_has_one_key_on_windows() {
        let spellings = [
            r"\\server\share\dir\app.db",
            r"\\?\UNC\server\share\dir\app.db",
            r"\\?\unc\server\share\dir\app.db",
            "//server/share/dir/app.db",
            r"\\SERVER\Share\Dir\APP.db",
            r"//Server\share/dir\\app.db",
            r"\\server\share\.\dir\app.db",
        ];
        let keys: Vec<String> = spellings.iter().map(|s| cache_key_for(s, true)).collect();
        assert!(keys.iter().all(|k| k == &keys[0]), "{keys:#?}");
        assert_ne!(keys[0], cache_key_for(r"\\server\other\dir\app.db", true));
        assert_ne!(keys[0], cache_key_for(r"\\server\share\dir\app2.db", true));
    }

    #[test]
    fn linux_keys_of_existing_caches_do_not_change() {
        // Before the folding, the key was the resolved path itself (UNC paths resolved to //…).
        for p in [
            "//server/share/app.db",
            "//fileserver/data/Accounts/App.db",
            "/mnt/share/App.db",
            "/home/alice/ünïcode/app.db",
        ] {
            assert_eq!(cache_key_for(p, false), p);
        }
        assert_eq!(
            cache_key_for(r"\\?\UNC\Server\Share\App.db", false),
            "//server/share/App.db"
        );
    }

    #[test]
    fn verbatim_and_plain_drive_paths_share_a_key_on_windows() {
        assert_eq!(
            cache_key_for(r"\\?\C:\Data\App.db", true),
            cache_key_for("c:/data/app.db", true)
        );
        assert_eq!(parse(r"\\.\pipe\x"), None);
        assert_eq!(parse(r"\\?\C:\x"), None);
    }

    #[test]
    fn non_ascii_names_fold_case_too() {
        assert_eq!(
            cache_key_for(r"\\Sérveur\Partagé\Données\Ünïcode.db", true),
            cache_key_for(r"\\sérveur\partagé\données\ünïcode.db", true)
        );
    }
}
