//! The remote's database at other paths, for the hand-over tests: a copy of it (an admin's test
//! copy of production), the database moved (the share's file renamed; the server's database
//! copied to another one and dropped), and another spelling of its path (the share's directory
//! through `.`, the server's address as `localhost`). A path is what `database.path` says; the
//! reads here take one.

use std::path::PathBuf;
use std::str::FromStr;

use sharecache::Config;

use super::{Backend, Inner, Remote};
use crate::support::rows;

/// A plain connection on the SQLite database at `path` (as [`crate::support::Share::remote`]).
pub(super) fn open_file(path: &str) -> rusqlite::Connection {
    let c =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

impl Remote {
    /// A copy of the database, called `name`, beside it (a file on the share; a database on the
    /// same server, reached through the proxy, dropped with the remote); its path.
    pub fn copy_database(&self, name: &str) -> String {
        match &self.inner {
            Inner::Share(s) => {
                let copy = s.mount.path().join(name);
                std::fs::copy(s.remote_path(), &copy).unwrap();
                copy.display().to_string()
            }
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                // The test's own session goes with the others (a template has none).
                *s.own.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let copy = s.db.copy(name);
                let path = copy.url_via(s.proxy.addr());
                s.copies.lock().unwrap().push(copy);
                path
            }
        }
    }

    /// Moves the database to a new place called `name`; its new path. The old path leads
    /// nowhere (the share's folder no longer has the file; the server no longer has the
    /// database).
    pub fn move_database(&self, name: &str) -> String {
        match &self.inner {
            Inner::Share(s) => {
                let moved = s.mount.path().join(name);
                std::fs::rename(s.remote_path(), &moved).unwrap();
                moved.display().to_string()
            }
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                let path = self.copy_database(name);
                s.db.drop_now();
                path
            }
        }
    }

    /// The database's path spelled another way.
    pub fn respelled_path(&self) -> String {
        match &self.inner {
            Inner::Share(s) => s
                .mount
                .path()
                .join(".")
                .join("app.db")
                .display()
                .to_string(),
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => {
                let path = self.database_path();
                assert!(path.contains("@127.0.0.1:"), "{path}");
                path.replacen("@127.0.0.1:", "@localhost:", 1)
            }
        }
    }

    /// A config for client `name` (its usual cache directory) on the database at `path`.
    pub fn config_at(&self, name: &str, path: &str) -> Config {
        let mut c = self.config(name);
        match self.backend {
            Backend::Share => c.remote_path = PathBuf::from(path),
            Backend::Postgres => {
                let other = Config::for_remote(path);
                assert!(other.postgres.is_some(), "{path} is not a server's URL");
                c.remote_path = other.remote_path;
                c.postgres = other.postgres;
            }
        }
        c
    }

    /// A config file for client `name` (its usual cache directory) on the database at `path`.
    pub fn config_file_at(&self, name: &str, path: &str) -> PathBuf {
        let file = self.config_file(name);
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace(&self.database_path(), path);
        let file = file.with_extension("moved.yaml");
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Every row of a query on the database at `path`, as [`Remote::rows`] reads them.
    pub fn rows_at(&self, path: &str, sql: &str) -> Vec<Vec<String>> {
        if path == self.database_path() {
            return self.rows(sql);
        }
        match &self.inner {
            Inner::Share(_) => rows(&open_file(path), sql),
            #[cfg(feature = "postgres")]
            Inner::Postgres(s) => {
                let copies = s.copies.lock().unwrap();
                let copy = copies
                    .iter()
                    .find(|c| c.url_via(s.proxy.addr()) == path)
                    .unwrap_or_else(|| panic!("{path} is no copy of this remote"));
                super::reads::server_rows(&mut copy.connect(), sql)
            }
        }
    }

    /// The one value of a query on the database at `path`.
    pub fn one_at<T: FromStr>(&self, path: &str, sql: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        let rows = self.rows_at(path, sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0]
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {:?}: {e:?}", rows[0][0]))
    }
}
