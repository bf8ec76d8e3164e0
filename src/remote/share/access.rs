//! Whether this user may read and write the remote: a permission problem is named as one, not
//! taken for an unreachable share (it does not go away by retrying) or a broken database.

use std::path::Path;

use super::RemoteError;
use crate::platform::{self, Access, IoClass};

/// Fails with [`RemoteError::PermissionDenied`] when this user may not read and write the
/// database, or may not create files beside it (SQLite's journal goes there). A check this
/// platform cannot make is skipped here and listed by `platform::limitations` (shown in `status`):
/// the open itself then tells.
pub(super) fn check(path: &Path) -> Result<(), RemoteError> {
    if let Access::Denied(e) = platform::may_read_write(path) {
        if is_permission(&e) {
            return Err(denied(
                path,
                format!("this user may not read and write it ({e})"),
            ));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Access::Denied(e) = platform::may_create_in(dir) {
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
    Ok(())
}

/// Why the remote could only be opened read-only (SQLite falls back to a read-only descriptor
/// when opening read-write fails): a permission problem, or a share failure while opening it.
pub(super) fn opened_read_only(path: &Path) -> RemoteError {
    if let Access::Denied(e) = platform::may_read_write(path) {
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
    matches!(
        platform::classify(e),
        IoClass::PermissionDenied | IoClass::ReadOnly
    )
}
