//! Session stores (`databroker_storage_type`): `memory` (default; sessions
//! end with the process) and `file` (an embedded redb database: pure Rust,
//! ACID, crash-safe, one file, so sessions survive restarts without a
//! server to run), and `redis` (shared by several instances; see
//! [`crate::redis_store`]).
//!
//! Besides sessions, a store keeps one-time tokens: the sign-in hand-off to a
//! route host must work once, and only once. [`crate::backend`] opens the
//! one the configuration names.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::session::{Session, SessionId};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("session store: {0}")]
    Backend(String),
    #[error("session store: a record is corrupt: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError>;
    /// The record as the store has it now, never an instance's cached copy
    /// (read before refreshing tokens another instance may have refreshed).
    async fn get_fresh(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        self.get(id).await
    }
    async fn put(&self, session: &Session) -> Result<(), StoreError>;
    /// The record when it can be had without waiting (a copy this process
    /// holds and may trust), else `None`: then ask [`SessionStore::get`].
    /// Spares the request path an async call (and its allocation).
    fn peek(&self, _id: &SessionId) -> Option<Option<Arc<Session>>> {
        None
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError>;
    /// Remembers a one-time token until `expires_at` (unix seconds).
    async fn put_once(&self, token: [u8; 16], expires_at: u64) -> Result<(), StoreError>;
    /// True the first time a live token is taken; false after, or once expired.
    async fn take_once(&self, token: [u8; 16], now: u64) -> Result<bool, StoreError>;
    /// The right to refresh `id`'s tokens for at most `ttl`, across every
    /// instance sharing the store; `None` while someone else holds it. A
    /// store only one process uses grants it always: the caller's own lock
    /// already makes the refresh happen once.
    async fn lease(&self, id: &SessionId, _ttl: Duration) -> Result<Option<Lease>, StoreError> {
        Ok(Some(Lease {
            id: *id,
            token: [0; 16],
        }))
    }
    /// False while the store is known to be unreachable: new sign-ins are
    /// refused up front instead of after a trip through the provider.
    fn available(&self) -> bool {
        true
    }
    /// Sessions served from an instance's cache vs read from the shared
    /// store (Redis only; others have no cache).
    fn cache_counts(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Gives a lease back early (it also ends by itself after its `ttl`).
    async fn release(&self, _lease: Lease) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether values put with [`SessionStore::put_shared`] reach the other
    /// instances (a shared store: Redis).
    fn shares(&self) -> bool {
        false
    }
    /// A value every instance sharing the store reads, by name (autocert's
    /// account and certificates). A store one process uses keeps none.
    async fn get_shared(&self, _name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    /// Puts `value` under `name` for `ttl`, for every instance sharing the
    /// store.
    async fn put_shared(
        &self,
        _name: &str,
        _value: &[u8],
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The operations a store is asked for, by kind (for metrics).
pub const OPERATIONS: [&str; 5] = ["get", "put", "delete", "once", "lease"];

/// A store that counts what it is asked to do.
pub struct Counted {
    inner: Arc<dyn SessionStore>,
    ops: [std::sync::atomic::AtomicU64; 5],
}

impl Counted {
    pub fn new(inner: Arc<dyn SessionStore>) -> Counted {
        Counted {
            inner,
            ops: Default::default(),
        }
    }

    /// Operations so far, in [`OPERATIONS`] order.
    pub fn operations(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.ops[i].load(std::sync::atomic::Ordering::Relaxed))
    }

    fn count(&self, i: usize) {
        self.ops[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait]
impl SessionStore for Counted {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        self.count(0);
        self.inner.get(id).await
    }
    async fn get_fresh(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        self.count(0);
        self.inner.get_fresh(id).await
    }
    async fn put(&self, session: &Session) -> Result<(), StoreError> {
        self.count(1);
        self.inner.put(session).await
    }
    fn peek(&self, id: &SessionId) -> Option<Option<Arc<Session>>> {
        let found = self.inner.peek(id);
        if found.is_some() {
            self.count(0);
        }
        found
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.count(2);
        self.inner.delete(id).await
    }
    async fn put_once(&self, token: [u8; 16], expires_at: u64) -> Result<(), StoreError> {
        self.count(3);
        self.inner.put_once(token, expires_at).await
    }
    async fn take_once(&self, token: [u8; 16], now: u64) -> Result<bool, StoreError> {
        self.count(3);
        self.inner.take_once(token, now).await
    }
    async fn lease(&self, id: &SessionId, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        self.count(4);
        self.inner.lease(id, ttl).await
    }
    fn available(&self) -> bool {
        self.inner.available()
    }
    fn cache_counts(&self) -> (u64, u64) {
        self.inner.cache_counts()
    }
    async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        self.count(4);
        self.inner.release(lease).await
    }
    fn shares(&self) -> bool {
        self.inner.shares()
    }
    async fn get_shared(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count(0);
        self.inner.get_shared(name).await
    }
    async fn put_shared(&self, name: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.count(1);
        self.inner.put_shared(name, value, ttl).await
    }
}

/// A held right to refresh one session's tokens.
#[derive(Debug)]
pub struct Lease {
    pub id: SessionId,
    pub token: [u8; 16],
}

#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<SessionId, Arc<Session>>>,
    once: Mutex<HashMap<[u8; 16], u64>>,
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.peek(id).flatten())
    }

    fn peek(&self, id: &SessionId) -> Option<Option<Arc<Session>>> {
        Some(
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned(),
        )
    }

    async fn put(&self, session: &Session) -> Result<(), StoreError> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() % 1024 == 1023 {
            let now = crate::session::unix_now();
            map.retain(|_, s| s.is_live(now));
        }
        map.insert(session.id, Arc::new(session.clone()));
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(())
    }

    async fn put_once(&self, token: [u8; 16], expires_at: u64) -> Result<(), StoreError> {
        let mut map = self.once.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() % 1024 == 1023 {
            let now = crate::session::unix_now();
            map.retain(|_, &mut exp| exp > now);
        }
        map.insert(token, expires_at);
        Ok(())
    }

    async fn take_once(&self, token: [u8; 16], now: u64) -> Result<bool, StoreError> {
        let taken = self
            .once
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
        Ok(taken.is_some_and(|exp| exp > now))
    }
}

const SESSIONS: redb::TableDefinition<&[u8; 16], &[u8]> = redb::TableDefinition::new("sessions");
const ONCE: redb::TableDefinition<&[u8; 16], u64> = redb::TableDefinition::new("once");

pub struct FileStore {
    db: Arc<redb::Database>,
}

/// Session records (and console history) are secrets: the file is created
/// 0600 before the database writes to it, and an older, wider one is
/// narrowed.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl FileStore {
    pub fn open(path: &Path) -> Result<FileStore, StoreError> {
        private_file(path).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let db = redb::Database::create(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(SESSIONS).map_err(backend)?;
        tx.open_table(ONCE).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(FileStore { db: Arc::new(db) })
    }

    /// redb is blocking: run it off the async workers.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(backend)?
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        let key = id.0;
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let table = tx.open_table(SESSIONS).map_err(backend)?;
            match table.get(&key).map_err(backend)? {
                None => Ok(None),
                Some(v) => serde_json::from_slice(v.value())
                    .map(|s| Some(Arc::new(s)))
                    .map_err(|e| StoreError::Corrupt(e.to_string())),
            }
        })
        .await
    }

    async fn put(&self, session: &Session) -> Result<(), StoreError> {
        let key = session.id.0;
        let value = serde_json::to_vec(session).map_err(backend)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut table = tx.open_table(SESSIONS).map_err(backend)?;
                table.insert(&key, value.as_slice()).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = id.0;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut table = tx.open_table(SESSIONS).map_err(backend)?;
                table.remove(&key).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn put_once(&self, token: [u8; 16], expires_at: u64) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut table = tx.open_table(ONCE).map_err(backend)?;
                table.insert(&token, expires_at).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn take_once(&self, token: [u8; 16], now: u64) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let taken = {
                let mut table = tx.open_table(ONCE).map_err(backend)?;
                table.remove(&token).map_err(backend)?.map(|v| v.value())
            };
            tx.commit().map_err(backend)?;
            Ok(taken.is_some_and(|exp| exp > now))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Identity;

    async fn exercise(store: &dyn SessionStore) {
        let s = Session::new(
            Identity {
                sub: "alice".into(),
                groups: vec!["a".into()],
                ..Identity::default()
            },
            1000,
            3600,
        );
        assert_eq!(store.get(&s.id).await.unwrap(), None);
        store.put(&s).await.unwrap();
        assert_eq!(store.get(&s.id).await.unwrap(), Some(Arc::new(s.clone())));
        store.delete(&s.id).await.unwrap();
        assert_eq!(store.get(&s.id).await.unwrap(), None);

        store.put_once([9; 16], 2000).await.unwrap();
        assert!(store.take_once([9; 16], 1500).await.unwrap(), "first use");
        assert!(
            !store.take_once([9; 16], 1500).await.unwrap(),
            "never twice"
        );
        store.put_once([8; 16], 2000).await.unwrap();
        assert!(!store.take_once([8; 16], 2000).await.unwrap(), "expired");
        assert!(!store.take_once([7; 16], 1500).await.unwrap(), "unknown");
    }

    #[tokio::test]
    async fn memory_store() {
        exercise(&MemoryStore::default()).await;
    }

    #[tokio::test]
    async fn file_store_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let store = FileStore::open(&path).unwrap();
        exercise(&store).await;
        let s = Session::new(Identity::default(), 1000, 3600);
        store.put(&s).await.unwrap();
        drop(store);
        // A file left wider by an older version is narrowed on open.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let reopened = FileStore::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(reopened.get(&s.id).await.unwrap(), Some(Arc::new(s)));
    }
}
