//! The console's process-wide state and its changes: where the state is
//! stored, the state in force, and making a change (validated, saved with
//! its history entry, then applied to the proxy it is handed).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use gatehouse_config::overlay;
use gatehouse_config::{ConsoleStorage, Loaded, Rejected};
use gatehouse_identity::console_store::{ConsoleStore, FileConsoleStore};
use gatehouse_proxy::Proxy;
use gatehouse_proxy::runtime::Runtime;

use crate::follow::{Rates, follow};
use crate::import_export::parse_import;
use crate::state::{Change, ChangeError, Edit, FieldError, State, field_errors, unavailable};

struct Current {
    version: u64,
    state: State,
    /// Why the stored state is not in force (it failed validation at start
    /// or after a change of the file), for the console's banner.
    problem: Option<String>,
}

/// Process-wide console state (outlives reloads). It keeps no reference
/// to the proxy: each call that needs it is handed it.
pub struct Console {
    pub(crate) store: OnceLock<Arc<dyn ConsoleStore>>,
    current: Mutex<Current>,
    /// One change at a time in this process.
    write: tokio::sync::Mutex<()>,
    /// Request counts per route label, sampled for recent rates.
    pub(crate) rates: Mutex<Rates>,
    watching: std::sync::atomic::AtomicBool,
}

impl Console {
    pub fn new() -> Console {
        Console {
            store: OnceLock::new(),
            current: Mutex::new(Current {
                version: 0,
                state: State::default(),
                problem: None,
            }),
            write: tokio::sync::Mutex::new(()),
            rates: Mutex::new(Rates::default()),
            watching: Default::default(),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state in force and its version.
    pub fn state(&self) -> (u64, State) {
        let c = self.current();
        (c.version, c.state.clone())
    }

    /// The store for `storage`, opened on first use (`sessions`: the
    /// session store's backend, as `proxy` opened it).
    fn store_for(
        &self,
        proxy: &Proxy,
        storage: &ConsoleStorage,
    ) -> Result<Arc<dyn ConsoleStore>, ChangeError> {
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        let store: Arc<dyn ConsoleStore> = match storage {
            ConsoleStorage::Sessions => match proxy.console_store() {
                Some(s) => s.clone(),
                None => {
                    return Err(ChangeError::Unavailable(
                        "the session store cannot keep console state".into(),
                    ));
                }
            },
            ConsoleStorage::File(path) => match FileConsoleStore::open(path) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    return Err(ChangeError::Unavailable(format!(
                        "console storage {}: {e}",
                        path.display()
                    )));
                }
            },
        };
        Ok(self.store.get_or_init(|| store).clone())
    }

    fn store(&self, proxy: &Proxy) -> Result<Arc<dyn ConsoleStore>, ChangeError> {
        let rt = proxy.runtime();
        match &rt.config.console {
            Some(c) => self.store_for(proxy, &c.storage),
            None => Err(ChangeError::Unavailable(
                "the console is not configured".into(),
            )),
        }
    }

    /// The file with the console's overlay, as in force now.
    ///
    /// When the file alone is fine but the console's changes no longer fit
    /// it (a new file route took a console route's host, say), the file
    /// wins: its configuration is returned without the console's changes,
    /// and the console says why on every page until that is fixed.
    pub fn load_file(&self, path: &Path) -> Result<Loaded, Rejected> {
        let overlay = self.current().state.overlay();
        let env = |k: &str| std::env::var(k).ok();
        if overlay.is_empty() {
            return gatehouse_config::load_file_with_env(path, &env);
        }
        let with = overlay::load_file_with_overlay(path, &env, &overlay).and_then(|loaded| {
            match gatehouse_policy::compile_routes(&loaded.config.routes) {
                Ok(_) => Ok(loaded),
                Err(diagnostics) => Err(Rejected::new(diagnostics)),
            }
        });
        match with {
            Ok(loaded) => {
                self.current().problem = None;
                Ok(loaded)
            }
            Err(rejected) => {
                let alone = gatehouse_config::load_file_with_env(path, &env)?;
                let text = ChangeError::Invalid(field_errors(&rejected.diagnostics)).message();
                tracing::error!(errors = %text, "console: its changes do not fit the configuration file any more; serving the file without them until they are fixed in the console");
                self.current().problem = Some(text);
                Ok(alone)
            }
        }
    }

    /// At start (after [`Proxy::new`], before listening) and after each
    /// reload: reads the stored state and puts it in force in `proxy`, and
    /// follows changes other instances make (one follower per process,
    /// holding `proxy`). A stored state that no longer fits the file is
    /// reported and left out; the file's configuration serves.
    pub async fn start(self: &Arc<Self>, proxy: &Arc<Proxy>) {
        let Some(settings) = proxy.runtime().config.console.clone() else {
            return;
        };
        let store = match self.store_for(proxy, &settings.storage) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e.message(), "console: cannot open its storage; console changes are unavailable");
                return;
            }
        };
        self.sync(proxy, &store).await;
        // Once per process (a reload that adds the console starts it too).
        if !self
            .watching
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tracing::info!(storage = %store.describe(), "console state storage");
            tokio::spawn(follow(Arc::downgrade(self), Arc::downgrade(proxy), store));
        }
    }

    /// Puts the stored state in force when it is newer than ours.
    pub(crate) async fn sync(&self, proxy: &Proxy, store: &Arc<dyn ConsoleStore>) {
        let _w = self.write.lock().await;
        self.sync_locked(proxy, store).await;
    }

    async fn sync_locked(&self, proxy: &Proxy, store: &Arc<dyn ConsoleStore>) {
        let (version, bytes) = match store.load().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot read its state");
                return;
            }
        };
        if version == self.current().version {
            return;
        }
        let state: State = match bytes.map(|b| serde_json::from_slice(&b)) {
            None => State::default(),
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::error!(error = %e, version, "console: stored state is corrupt; ignored");
                return;
            }
        };
        let path = proxy.runtime().config.source.clone();
        match self.build(proxy, &path, &state) {
            Ok(prepared) => {
                proxy.commit(prepared);
                let routes = state.routes.len();
                *self.current() = Current {
                    version,
                    state,
                    problem: None,
                };
                tracing::info!(version, routes, "console: changes applied");
            }
            Err(errors) => {
                let text = ChangeError::Invalid(errors).message();
                tracing::error!(version, errors = %text, "console: stored changes do not fit the configuration file; serving without them");
                let mut c = self.current();
                c.version = version;
                c.state = state;
                c.problem = Some(text);
            }
        }
    }

    /// Validates and builds the configuration `state` gives.
    fn build(
        &self,
        proxy: &Proxy,
        path: &Path,
        state: &State,
    ) -> Result<gatehouse_proxy::Prepared, Vec<FieldError>> {
        let env = |k: &str| std::env::var(k).ok();
        let loaded = overlay::load_file_with_overlay(path, &env, &state.overlay())
            .map_err(|r| field_errors(&r.diagnostics))?;
        if let Err(errors) = gatehouse_policy::compile_routes(&loaded.config.routes) {
            return Err(field_errors(&errors));
        }
        proxy.prepare(loaded.config).map_err(|e| {
            vec![FieldError {
                field: String::new(),
                message: e.to_string(),
            }]
        })
    }

    /// Makes a change: validated, saved with its history entry, applied.
    pub async fn change(
        &self,
        proxy: &Proxy,
        who: &str,
        edit: Edit,
    ) -> Result<(u64, Change), ChangeError> {
        let store = self.store(proxy)?;
        let _w = self.write.lock().await;
        self.sync_locked(proxy, &store).await;
        let (version, state) = self.state();
        let (new_state, mut change) = self.edit(&store, &state, edit).await?;
        change.who = who.to_string();
        change.at = gatehouse_identity::session::unix_now();
        let path = proxy.runtime().config.source.clone();
        let prepared = self
            .build(proxy, &path, &new_state)
            .map_err(ChangeError::Invalid)?;
        let state_bytes = serde_json::to_vec(&new_state).map_err(|e| unavailable(&e))?;
        let change_bytes = serde_json::to_vec(&change).map_err(|e| unavailable(&e))?;
        match store.save(version, state_bytes, change_bytes).await {
            Ok(Some(v)) => {
                proxy.commit(prepared);
                change.version = v;
                *self.current() = Current {
                    version: v,
                    state: new_state,
                    problem: None,
                };
                tracing::info!(version = v, who, action = %change.action, target = %change.target, "console: change applied");
                Ok((v, change))
            }
            Ok(None) => {
                self.sync_locked(proxy, &store).await;
                Err(ChangeError::Conflict)
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

impl Console {
    /// Imports a Pomerium `config.yaml` (see [`parse_import`]) as one change.
    pub async fn import(
        &self,
        proxy: &Proxy,
        who: &str,
        rt: &Runtime,
        text: &str,
    ) -> Result<(u64, Change), ChangeError> {
        let state = parse_import(rt, text)?;
        self.change(proxy, who, Edit::Import(state)).await
    }

    /// Recorded changes, newest first.
    pub async fn history(&self, proxy: &Proxy, limit: usize) -> Result<Vec<Change>, ChangeError> {
        let store = self.store(proxy)?;
        let items = store.history(limit).await.map_err(|e| unavailable(&e))?;
        Ok(items
            .into_iter()
            .filter_map(|(v, bytes)| {
                let mut c: Change = serde_json::from_slice(&bytes).ok()?;
                c.version = v;
                Some(c)
            })
            .collect())
    }

    pub async fn change_record(&self, proxy: &Proxy, version: u64) -> Result<Change, ChangeError> {
        let store = self.store(proxy)?;
        let bytes = store
            .change(version)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| ChangeError::NotFound(format!("change {version}")))?;
        let mut c: Change = serde_json::from_slice(&bytes).map_err(|e| unavailable(&e))?;
        c.version = version;
        Ok(c)
    }

    pub(crate) fn problem(&self) -> Option<String> {
        self.current().problem.clone()
    }

    /// Recent requests per minute for a route label.
    pub(crate) fn rate(&self, label: &str, total: u64) -> Option<f64> {
        self.rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rate(label, total)
    }

    /// Requests in the last minute for a route label (see [`Rates::recent`]).
    pub(crate) fn recent(&self, label: &str, total: u64) -> Option<u64> {
        self.rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recent(label, total)
    }
}

impl Default for Console {
    fn default() -> Console {
        Console::new()
    }
}
