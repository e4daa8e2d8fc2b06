//! Opens the backend the configuration names (`databroker_storage_type`):
//! the session store, and the same backend as the console's store where it
//! can hold one. The one module that knows every backend, so the backends
//! themselves depend only on the store's types.

use std::sync::Arc;

use gatehouse_config::StorageKind;

use crate::console_store::{ConsoleStore, FileConsoleStore};
use crate::redis_store::RedisStore;
use crate::store::{Counted, FileStore, MemoryStore, SessionStore, StoreError};

/// The session store, and its backend as the console's store when it can be one.
pub type Opened = (Arc<Counted>, Option<Arc<dyn ConsoleStore>>);

/// Opens the store, and the same backend as the console's store when it
/// can hold one (file and Redis; not memory).
pub fn open_shared(settings: &gatehouse_config::Storage) -> Result<Opened, StoreError> {
    let (store, console): (Arc<dyn SessionStore>, Option<Arc<dyn ConsoleStore>>) =
        match &settings.kind {
            StorageKind::Memory => (Arc::new(MemoryStore::default()), None),
            StorageKind::File(path) => {
                let file = Arc::new(FileStore::open(path)?);
                let console = FileConsoleStore::new(file.clone(), path);
                (file, Some(Arc::new(console)))
            }
            StorageKind::Redis(_) => {
                let redis = Arc::new(RedisStore::open(settings)?);
                (redis.clone(), Some(redis))
            }
        };
    Ok((Arc::new(Counted::new(store)), console))
}
