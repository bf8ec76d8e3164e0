//! Whether this user may read and write the remote: a permission problem is named as one, not
//! taken for an unreachable share (it does not go away by retrying) or a broken database.

use std::path::Path;

use super::RemoteError;

/// Fails with [`RemoteError::PermissionDenied`] when this user may not read and write the
/// database, or may not create files beside it (SQLite's journal goes there).
pub(super) fn check(path: &Path) -> Result<(), RemoteError> {
    #[cfg(unix)]
    {
        if let Err(e) = access(path, libc::R_OK | libc::W_OK) {
            if is_permission(&e) {
                return Err(denied(
                    path,
                    format!("this user may not read and write it ({e})"),
                ));
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = access(dir, libc::W_OK | libc::X_OK) {
                if is_permission(&e) {
                    return Err(denied(
                        path,
                        format!(
                            "this user may not create files in {} ({e}), where SQLite writes its journal beside the database",
                            dir.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Why the remote could only be opened read-only (SQLite falls back to a read-only descriptor
/// when opening read-write fails): a permission problem, or a share failure while opening it.
pub(super) fn opened_read_only(path: &Path) -> RemoteError {
    #[cfg(unix)]
    if let Err(e) = access(path, libc::W_OK) {
        if is_permission(&e) {
            return denied(
                path,
                format!("the database can only be opened read-only ({e})"),
            );
        }
    }
    RemoteError::Offline {
        path: path.into(),
        detail: "opening the database read-write failed (a share failure); it opened read-only"
            .into(),
    }
}

fn denied(path: &Path, detail: String) -> RemoteError {
    RemoteError::PermissionDenied {
        path: path.into(),
        detail,
    }
}

fn is_permission(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

/// access(2): checks with the real user and group ids, without opening anything (opening and
/// closing a descriptor on the database would drop this process's POSIX locks on it).
#[cfg(unix)]
fn access(path: &Path, mode: libc::c_int) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
