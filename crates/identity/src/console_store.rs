//! Where the console keeps its state (routes and settings made in the
//! browser) and the history of changes: the same backends as sessions.
//!
//! The state is one document with a version number; a change is saved only
//! if the version is still the one it was made against (compare-and-set),
//! so two admins, or two instances, never overwrite each other unknowingly.
//! Each save also records the change under its new version. Redis
//! publishes each save so every instance applies it within milliseconds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::ReadableTable;

use crate::store::{FileStore, StoreError};

/// Changes kept in the history (older ones are dropped).
pub const HISTORY: u64 = 1000;

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// The state and its version (`0, None` before the first change).
    async fn load(&self) -> Result<(u64, Option<Vec<u8>>), StoreError>;
    /// Saves `state` as version `expected + 1` and records `change` under
    /// that version, if the stored version is still `expected`. `None`:
    /// someone else saved first; nothing was written.
    async fn save(
        &self,
        expected: u64,
        state: Vec<u8>,
        change: Vec<u8>,
    ) -> Result<Option<u64>, StoreError>;
    /// Recorded changes, newest first, at most `limit`.
    async fn history(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// One recorded change.
    async fn change(&self, version: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Signals saves made by other instances (shared stores only).
    fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// For logs and the console's footer.
    fn describe(&self) -> String;
}

/// Version, state and recorded changes.
type Memory = (u64, Option<Vec<u8>>, BTreeMap<u64, Vec<u8>>);

/// In memory, for tests of the console's own logic.
#[derive(Default)]
pub struct MemoryConsoleStore {
    inner: Mutex<Memory>,
}

#[async_trait]
impl ConsoleStore for MemoryConsoleStore {
    async fn load(&self) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok((g.0, g.1.clone()))
    }
    async fn save(
        &self,
        expected: u64,
        state: Vec<u8>,
        change: Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 != expected {
            return Ok(None);
        }
        g.0 += 1;
        let v = g.0;
        g.1 = Some(state);
        g.2.insert(v, change);
        if v > HISTORY {
            g.2.remove(&(v - HISTORY));
        }
        Ok(Some(v))
    }
    async fn history(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.2
            .iter()
            .rev()
            .take(limit)
            .map(|(v, c)| (*v, c.clone()))
            .collect())
    }
    async fn change(&self, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.2.get(&version).cloned())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

const STATE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("console");
const VERSION: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("console_version");
const CHANGES: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("console_history");

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The embedded database: the session store's file, or a file of its own
/// when sessions are kept in memory.
pub struct FileConsoleStore {
    store: Arc<FileStore>,
    describe: String,
}

impl FileConsoleStore {
    pub fn new(store: Arc<FileStore>, path: &Path) -> FileConsoleStore {
        FileConsoleStore {
            store,
            describe: format!("file {}", path.display()),
        }
    }

    pub fn open(path: &Path) -> Result<FileConsoleStore, StoreError> {
        Ok(FileConsoleStore::new(
            Arc::new(FileStore::open(path)?),
            path,
        ))
    }
}

#[async_trait]
impl ConsoleStore for FileConsoleStore {
    async fn load(&self) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        self.store
            .blocking(|db| {
                let tx = db.begin_read().map_err(backend)?;
                let version = match tx.open_table(VERSION) {
                    Ok(t) => t.get("v").map_err(backend)?.map(|v| v.value()),
                    Err(redb::TableError::TableDoesNotExist(_)) => None,
                    Err(e) => return Err(backend(e)),
                };
                let state = match tx.open_table(STATE) {
                    Ok(t) => t.get("state").map_err(backend)?.map(|v| v.value().to_vec()),
                    Err(redb::TableError::TableDoesNotExist(_)) => None,
                    Err(e) => return Err(backend(e)),
                };
                Ok((version.unwrap_or(0), state))
            })
            .await
    }

    async fn save(
        &self,
        expected: u64,
        state: Vec<u8>,
        change: Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        self.store
            .blocking(move |db| {
                let tx = db.begin_write().map_err(backend)?;
                let saved = {
                    let mut version = tx.open_table(VERSION).map_err(backend)?;
                    let current = version.get("v").map_err(backend)?.map(|v| v.value());
                    if current.unwrap_or(0) != expected {
                        None
                    } else {
                        let v = expected + 1;
                        version.insert("v", v).map_err(backend)?;
                        let mut s = tx.open_table(STATE).map_err(backend)?;
                        s.insert("state", state.as_slice()).map_err(backend)?;
                        let mut c = tx.open_table(CHANGES).map_err(backend)?;
                        c.insert(v, change.as_slice()).map_err(backend)?;
                        if v > HISTORY {
                            c.remove(v - HISTORY).map_err(backend)?;
                        }
                        Some(v)
                    }
                };
                if saved.is_some() {
                    tx.commit().map_err(backend)?;
                } else {
                    tx.abort().map_err(backend)?;
                }
                Ok(saved)
            })
            .await
    }

    async fn history(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.store
            .blocking(move |db| {
                let tx = db.begin_read().map_err(backend)?;
                let table = match tx.open_table(CHANGES) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    Err(e) => return Err(backend(e)),
                };
                let mut out = Vec::new();
                for item in table.iter().map_err(backend)?.rev().take(limit) {
                    let (k, v) = item.map_err(backend)?;
                    out.push((k.value(), v.value().to_vec()));
                }
                Ok(out)
            })
            .await
    }

    async fn change(&self, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.store
            .blocking(move |db| {
                let tx = db.begin_read().map_err(backend)?;
                match tx.open_table(CHANGES) {
                    Ok(t) => Ok(t.get(version).map_err(backend)?.map(|v| v.value().to_vec())),
                    Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                    Err(e) => Err(backend(e)),
                }
            })
            .await
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(store: &dyn ConsoleStore) {
        assert_eq!(store.load().await.unwrap(), (0, None));
        assert_eq!(
            store
                .save(0, b"one".to_vec(), b"c1".to_vec())
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            store
                .save(0, b"stale".to_vec(), b"x".to_vec())
                .await
                .unwrap(),
            None,
            "a save against an old version is refused"
        );
        assert_eq!(
            store
                .save(1, b"two".to_vec(), b"c2".to_vec())
                .await
                .unwrap(),
            Some(2)
        );
        assert_eq!(store.load().await.unwrap(), (2, Some(b"two".to_vec())));
        assert_eq!(
            store.history(10).await.unwrap(),
            vec![(2, b"c2".to_vec()), (1, b"c1".to_vec())]
        );
        assert_eq!(store.history(1).await.unwrap().len(), 1);
        assert_eq!(store.change(1).await.unwrap(), Some(b"c1".to_vec()));
        assert_eq!(store.change(9).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory() {
        exercise(&MemoryConsoleStore::default()).await;
    }

    #[tokio::test]
    async fn file_keeps_state_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.redb");
        let store = FileConsoleStore::open(&path).unwrap();
        exercise(&store).await;
        drop(store);
        let again = FileConsoleStore::open(&path).unwrap();
        assert_eq!(again.load().await.unwrap(), (2, Some(b"two".to_vec())));
        assert_eq!(again.history(5).await.unwrap().len(), 2);
    }
}
