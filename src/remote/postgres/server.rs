//! [`Postgres`]: one client's connection to the server remote, opened lazily and opened again
//! after the server went away (a restart, a dropped connection, a failover to a promoted
//! standby: the next operation connects anew; an operation that failed is the caller's to retry,
//! with the error kinds of [`PgError::into_remote`]).
//!
//! The connection is marked as sharecache's (`sharecache.writer`, a session setting), so the
//! capture triggers leave its writes to the push, which logs them itself. It runs in READ COMMITTED (set at connect): the change log's numbering
//! (`sharecache.sequence`, `sharecache.finish`) relies on each statement seeing what committed
//! before its locks were granted. Snapshots use their own REPEATABLE READ transaction.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::Client;

use super::PgError;
use super::types::Column;
use crate::config::PgTarget;
use crate::remote::RemoteError;
use crate::remote::store::RemoteSchema;

/// The PostgreSQL remote of one client (see the module docs).
pub struct Postgres {
    pub(super) target: PgTarget,
    /// The schema holding the app's tables (`database.schema`).
    pub(super) schema: String,
    /// This client's origin.
    pub(super) origin: String,
    /// The identity the cache expects, once [`crate::remote::RemoteStore::check_identity`] said it.
    pub(super) expected: Option<String>,
    client: RefCell<Option<Client>>,
    /// The app tables' columns as writes last read them, and the schema hash they go with (the
    /// fingerprint's): a write reuses them until the hash changes, saving a catalog read each.
    pub(super) described: RefCell<(i64, HashMap<String, Vec<Column>>)>,
    /// The app's schema as [`crate::remote::RemoteStore::schema`] last read it, for the same
    /// hash: every non-idle sync asks for it (the shapes it pushes and pulls in), and it changes
    /// only with the hash (which covers everything it reads), so it is read again only then.
    pub(super) schema_read: RefCell<Option<RemoteSchema>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("server", &self.target.display_url())
            .field("schema", &self.schema)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// The remote at `target`, app tables in `schema`, for the client `origin`. Connects at the
    /// first operation, so a client starts (and works on its cache) while the server is away.
    pub fn open(target: &PgTarget, schema: &str, origin: &str) -> Postgres {
        Postgres {
            target: target.clone(),
            schema: schema.to_owned(),
            origin: origin.to_owned(),
            expected: None,
            client: RefCell::new(None),
            described: RefCell::new((0, HashMap::new())),
            schema_read: RefCell::new(None),
        }
    }

    /// Forgets the described columns when the app schema's hash is not `hash`.
    pub(super) fn schema_seen(&self, hash: i64) {
        let mut d = self.described.borrow_mut();
        if d.0 != hash {
            *d = (hash, HashMap::new());
            *self.schema_read.borrow_mut() = None;
        }
    }

    /// Forgets what was read of the app's schema (after changing it).
    pub(super) fn forget_schema(&self) {
        *self.described.borrow_mut() = (0, HashMap::new());
        *self.schema_read.borrow_mut() = None;
    }

    /// The server as messages name it (no password).
    pub fn location(&self) -> String {
        let url = self.target.display_url();
        if self.schema == crate::config::DEFAULT_SCHEMA {
            url
        } else {
            format!("{url} (schema {})", self.schema)
        }
    }

    /// Runs `f` on the connection, connecting first if needed. A failure that closed the
    /// connection drops it, so the next call connects again.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, PgError>,
    ) -> Result<T, RemoteError> {
        self.try_with(f)
            .map_err(|e| e.into_remote(&self.location()))
    }

    /// [`Postgres::with`] for a read that may run twice: when a connection kept from before
    /// turns out closed (the server restarted, or the link dropped, while it was idle), it is
    /// opened again and the read retried once, instead of failing a sync that started after the
    /// server was back. A sync's first call (the fingerprint) goes through here.
    pub(super) fn with_retried<T>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, PgError>,
    ) -> Result<T, RemoteError> {
        let kept = self
            .client
            .borrow()
            .as_ref()
            .is_some_and(|c| !c.is_closed());
        match self.try_with(&f) {
            Err(PgError::Db(e)) if kept && e.code().is_none() && self.client.borrow().is_none() => {
                tracing::debug!(error = %e, "the kept connection was closed: connecting again");
                self.try_with(&f)
            }
            other => other,
        }
        .map_err(|e| e.into_remote(&self.location()))
    }

    /// [`Postgres::with`] keeping the [`PgError`] (for callers that tell constraint refusals
    /// apart).
    pub(super) fn try_with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let mut slot = self.client.borrow_mut();
        if slot.as_ref().is_none_or(Client::is_closed) {
            let mut client = super::connect(&self.target)?;
            // This connection writes app tables only in pushes, which log their own entries
            // (with the row's image): the capture triggers stay silent for it.
            client.execute(
                "SELECT set_config('sharecache.writer', $1, false)",
                &[&self.origin],
            )?;
            *slot = Some(client);
        }
        let client = slot.as_mut().expect("connected above");
        let out = f(client);
        if let Err(PgError::Db(e)) = &out
            && (e.code().is_none() || client.is_closed())
        {
            *slot = None;
        }
        out
    }
}
