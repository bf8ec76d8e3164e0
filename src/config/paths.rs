//! Turning paths as written in a config file into paths the program can open.

use std::path::{Path, PathBuf};

/// The user's home directory, if the platform knows one.
fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf())
}

/// Expand a leading `~` (alone, or followed by `/`, or `\` on Windows) to `home`.
///
/// `~user` forms are left alone. Returns `None` when the path needs `home` and it is unknown.
pub(crate) fn expand_tilde(path: &str, home: Option<&Path>) -> Option<PathBuf> {
    let Some(rest) = path.strip_prefix('~') else {
        return Some(PathBuf::from(path));
    };
    let is_sep = |c: char| c == '/' || (cfg!(windows) && c == '\\');
    if rest.is_empty() {
        return home.map(Path::to_path_buf);
    }
    if !rest.starts_with(is_sep) {
        return Some(PathBuf::from(path));
    }
    let rest = rest.trim_start_matches(is_sep);
    home.map(|h| h.join(rest))
}

/// On non-Windows systems a UNC path `\\server\share\x` becomes `//server/share/x` (the form
/// SMB mounts and tools such as smbclient accept); on Windows it is kept as written.
pub(crate) fn normalise_unc(path: &str) -> String {
    if cfg!(windows) || !path.starts_with(r"\\") {
        path.to_owned()
    } else {
        path.replace('\\', "/")
    }
}

/// Whether a path names a network share (`\\server\share`, `//server/share`).
fn is_share_path(path: &str) -> bool {
    path.starts_with(r"\\") || path.starts_with("//")
}

/// Resolve a path as written in a config file: `~` expanded, a UNC path normalised, a relative
/// path joined to `base_dir` (the config file's directory). `.` components are dropped.
///
/// `Err` carries what to tell the user.
pub(crate) fn resolve(written: &str, base_dir: &Path) -> Result<PathBuf, String> {
    resolve_with_home(written, base_dir, home_dir().as_deref())
}

pub(crate) fn resolve_with_home(
    written: &str,
    base_dir: &Path,
    home: Option<&Path>,
) -> Result<PathBuf, String> {
    let unc = normalise_unc(written);
    if is_share_path(&unc) {
        return Ok(PathBuf::from(unc));
    }
    let expanded = expand_tilde(&unc, home).ok_or_else(|| {
        "cannot expand `~`: the home directory is unknown; write the full path".to_owned()
    })?;
    if expanded.is_absolute() {
        return Ok(clean(&expanded));
    }
    Ok(clean(&base_dir.join(expanded)))
}

/// Drop `.` components (`/a/./b` → `/a/b`; `Path::components` already skips them). `..` is
/// kept: resolving it needs the file system.
fn clean(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Where caches go unless `database.cache_directory` says otherwise: the platform cache dir
/// (`~/.cache/sharecache`, `%LOCALAPPDATA%\sharecache\cache`, `~/Library/Caches/sharecache`),
/// else `~/.sharecache`, else `sharecache` in the temp dir.
pub(crate) fn default_cache_dir() -> PathBuf {
    if let Some(dirs) = directories::ProjectDirs::from("", "", "sharecache") {
        return dirs.cache_dir().to_path_buf();
    }
    match home_dir() {
        Some(home) => home.join(".sharecache"),
        None => std::env::temp_dir().join("sharecache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/alice";

    fn resolved(written: &str) -> PathBuf {
        resolve_with_home(written, Path::new("/etc/app"), Some(Path::new(HOME))).unwrap()
    }

    #[test]
    fn tilde_expands_to_home() {
        assert_eq!(resolved("~"), PathBuf::from(HOME));
        assert_eq!(
            resolved("~/.sharecache"),
            Path::new(HOME).join(".sharecache")
        );
    }

    #[test]
    fn tilde_user_and_inner_tilde_are_left_alone() {
        assert_eq!(resolved("~bob/x"), PathBuf::from("/etc/app/~bob/x"));
        assert_eq!(resolved("a/~/b"), PathBuf::from("/etc/app/a/~/b"));
    }

    #[test]
    fn tilde_without_home_is_an_error() {
        let err = resolve_with_home("~/x", Path::new("/"), None).unwrap_err();
        assert!(err.contains("home directory"), "{err}");
    }

    #[test]
    fn relative_paths_join_the_base_dir_without_dot_components() {
        assert_eq!(resolved("app.db"), PathBuf::from("/etc/app/app.db"));
        assert_eq!(
            resolved("./data/./app.db"),
            PathBuf::from("/etc/app/data/app.db")
        );
        assert_eq!(resolved("../app.db"), PathBuf::from("/etc/app/../app.db"));
    }

    #[cfg(unix)]
    #[test]
    fn absolute_paths_are_kept() {
        assert_eq!(resolved("/srv/app.db"), PathBuf::from("/srv/app.db"));
    }

    #[test]
    fn share_paths_are_not_joined_to_the_base_dir() {
        assert_eq!(
            resolved("//server/share/app.db"),
            PathBuf::from("//server/share/app.db")
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn unc_paths_become_forward_slash_share_paths_off_windows() {
        assert_eq!(
            resolved(r"\\server\share\dir\app.db"),
            PathBuf::from("//server/share/dir/app.db")
        );
        assert_eq!(
            normalise_unc(r"data\app.db"),
            r"data\app.db",
            "only UNC paths change"
        );
    }

    #[cfg(windows)]
    #[test]
    fn unc_paths_are_kept_as_written_on_windows() {
        assert_eq!(
            resolved(r"\\server\share\app.db"),
            PathBuf::from(r"\\server\share\app.db")
        );
    }

    #[test]
    fn default_cache_dir_is_absolute_and_named_for_the_crate() {
        let dir = default_cache_dir();
        assert!(dir.is_absolute(), "{}", dir.display());
        assert!(
            dir.to_string_lossy().contains("sharecache"),
            "{}",
            dir.display()
        );
    }
}
