//! The console: routes, policies and a few global settings managed from a
//! browser (or its JSON API), applied to the running proxy at once.
//!
//! Console routes and settings are an overlay on the configuration file,
//! kept as JSON documents with Pomerium's key names in the session store's
//! backend (the embedded file by default, Redis when several instances
//! share it). Every change goes through the same reading and validation as
//! the file (the overlay is merged into the file's tree first), is built
//! into a complete runtime, saved with compare-and-set on the state's
//! version together with its history entry, and only then put in force.
//! Nothing invalid is saved; nothing saved fails to apply.
//!
//! The console is a route of its own (`console:` in the file): the usual
//! sign-in and policy run before any of this code does. It sits above
//! `gatehouse-proxy`: the binary registers a [`Console`] with
//! [`Proxy::new`] as the proxy's [`RouteService`], and hands it the proxy
//! for what it does outside a request ([`Console::start`]). The proxy does
//! not know this crate.
#![forbid(unsafe_code)]

mod api;
mod diff;
mod form;
mod html;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::overlay::{self, Overlay, Target};
use gatehouse_config::{ConsoleStorage, Diagnostic, Loaded, Rejected};
use gatehouse_identity::Session;
use gatehouse_identity::console_store::{ConsoleStore, FileConsoleStore};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use gatehouse_proxy::Proxy;
use gatehouse_proxy::body::{self, Body};
use gatehouse_proxy::mount::RouteService;
use gatehouse_proxy::runtime::Runtime;

/// Largest request body the console reads (an imported config included).
const MAX_BODY: usize = 1024 * 1024;

/// What the console manages: its routes (in order) and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub routes: Vec<ConsoleRoute>,
    #[serde(default)]
    pub settings: Map<String, Json>,
}

/// A route made in the console: Pomerium's route keys plus an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleRoute {
    pub id: String,
    #[serde(flatten)]
    pub options: Map<String, Json>,
}

impl ConsoleRoute {
    fn str(&self, key: &str) -> &str {
        self.options
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
    }
}

impl State {
    fn overlay(&self) -> Overlay {
        Overlay {
            routes: self
                .routes
                .iter()
                .map(|r| (r.id.clone(), Json::Object(r.options.clone())))
                .collect(),
            settings: self
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn route(&self, id: &str) -> Option<&ConsoleRoute> {
        self.routes.iter().find(|r| r.id == id)
    }
}

/// One recorded change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub version: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who made it (email, else subject).
    pub who: String,
    /// `create`, `update`, `delete`, `settings`, `import` or `revert`.
    pub action: String,
    /// `route:<id>`, `settings` or `all`.
    pub target: String,
    /// One line for the history list.
    pub summary: String,
    /// The target before and after (`null`: did not exist).
    pub before: Json,
    pub after: Json,
}

/// A change asked for.
#[derive(Debug)]
pub enum Edit {
    /// Create (id unknown) or replace a route.
    PutRoute(ConsoleRoute),
    DeleteRoute(String),
    /// Replace the console's settings.
    Settings(Map<String, Json>),
    /// Replace everything (import).
    Import(State),
    /// Undo a recorded change.
    Revert(u64),
}

/// A problem with a change, for the field it concerns (`""`: the change
/// as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub enum ChangeError {
    Invalid(Vec<FieldError>),
    NotFound(String),
    /// Another admin or instance saved first.
    Conflict,
    /// The store cannot be reached, or the console is not configured.
    Unavailable(String),
}

impl ChangeError {
    fn status(&self) -> StatusCode {
        match self {
            ChangeError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ChangeError::NotFound(_) => StatusCode::NOT_FOUND,
            ChangeError::Conflict => StatusCode::CONFLICT,
            ChangeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> String {
        match self {
            ChangeError::Invalid(errors) => errors
                .iter()
                .map(|e| {
                    if e.field.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.field, e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            ChangeError::NotFound(what) => format!("{what} not found"),
            ChangeError::Conflict => {
                "the console changed while this edit was made (by another admin or instance); reload and try again".into()
            }
            ChangeError::Unavailable(why) => why.clone(),
        }
    }
}

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
    store: OnceLock<Arc<dyn ConsoleStore>>,
    current: Mutex<Current>,
    /// One change at a time in this process.
    write: tokio::sync::Mutex<()>,
    /// Request counts per route label, sampled for recent rates.
    rates: Mutex<Rates>,
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
                Err(diagnostics) => Err(Rejected { diagnostics }),
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
            tokio::spawn(follow(Arc::downgrade(self), proxy.clone(), store));
        }
    }

    /// Puts the stored state in force when it is newer than ours.
    async fn sync(&self, proxy: &Proxy, store: &Arc<dyn ConsoleStore>) {
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

    /// The state after `edit`, and the change record (without who/when).
    async fn edit(
        &self,
        store: &Arc<dyn ConsoleStore>,
        state: &State,
        edit: Edit,
    ) -> Result<(State, Change), ChangeError> {
        let mut next = state.clone();
        let record = |action: &str, target: String, summary: String, before, after| Change {
            version: 0,
            at: 0,
            who: String::new(),
            action: action.into(),
            target,
            summary,
            before,
            after,
        };
        Ok(match edit {
            Edit::PutRoute(route) => {
                let after = route_json(&route);
                let label = route_label(&route);
                match next.routes.iter_mut().find(|r| r.id == route.id) {
                    Some(existing) => {
                        let before = route_json(existing);
                        *existing = route.clone();
                        let target = format!("route:{}", route.id);
                        (
                            next,
                            record(
                                "update",
                                target,
                                format!("updated route {label}"),
                                before,
                                after,
                            ),
                        )
                    }
                    None => {
                        next.routes.push(route.clone());
                        let target = format!("route:{}", route.id);
                        (
                            next,
                            record(
                                "create",
                                target,
                                format!("created route {label}"),
                                Json::Null,
                                after,
                            ),
                        )
                    }
                }
            }
            Edit::DeleteRoute(id) => {
                let Some(i) = next.routes.iter().position(|r| r.id == id) else {
                    return Err(ChangeError::NotFound(format!("route `{id}`")));
                };
                let gone = next.routes.remove(i);
                let summary = format!("deleted route {}", route_label(&gone));
                (
                    next,
                    record(
                        "delete",
                        format!("route:{id}"),
                        summary,
                        route_json(&gone),
                        Json::Null,
                    ),
                )
            }
            Edit::Settings(settings) => {
                check_setting_keys(&settings)?;
                let before = Json::Object(next.settings.clone());
                next.settings = settings.clone();
                let keys: Vec<&str> = settings.keys().map(String::as_str).collect();
                let summary = if keys.is_empty() {
                    "settings: all from the configuration file".to_string()
                } else {
                    format!("settings: {}", keys.join(", "))
                };
                (
                    next,
                    record(
                        "settings",
                        "settings".into(),
                        summary,
                        before,
                        Json::Object(settings),
                    ),
                )
            }
            Edit::Import(imported) => {
                check_setting_keys(&imported.settings)?;
                let before = serde_json::to_value(state).unwrap_or_default();
                let after = serde_json::to_value(&imported).unwrap_or_default();
                let summary = format!(
                    "imported {} route(s), {} setting(s)",
                    imported.routes.len(),
                    imported.settings.len()
                );
                (
                    imported,
                    record("import", "all".into(), summary, before, after),
                )
            }
            Edit::Revert(version) => {
                let bytes = store
                    .change(version)
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or_else(|| ChangeError::NotFound(format!("change {version}")))?;
                let old: Change = serde_json::from_slice(&bytes).map_err(|e| unavailable(&e))?;
                let summary = format!("reverted change {version} ({})", old.summary);
                let (target, before_now, after) = match old.target.split_once(':') {
                    Some(("route", id)) => {
                        let before_now = next.route(id).map(route_json).unwrap_or(Json::Null);
                        match &old.before {
                            Json::Null => next.routes.retain(|r| r.id != id),
                            b => {
                                let restored = parse_route(id, b.clone())?;
                                match next.routes.iter_mut().find(|r| r.id == id) {
                                    Some(r) => *r = restored,
                                    None => next.routes.push(restored),
                                }
                            }
                        }
                        (old.target.clone(), before_now, old.before.clone())
                    }
                    _ if old.target == "settings" => {
                        let before_now = Json::Object(next.settings.clone());
                        next.settings = old.before.as_object().cloned().unwrap_or_default();
                        (old.target.clone(), before_now, old.before.clone())
                    }
                    _ => {
                        let before_now = serde_json::to_value(state).unwrap_or_default();
                        next = serde_json::from_value(old.before.clone()).unwrap_or_default();
                        (old.target.clone(), before_now, old.before.clone())
                    }
                };
                (next, record("revert", target, summary, before_now, after))
            }
        })
    }

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

    fn problem(&self) -> Option<String> {
        self.current().problem.clone()
    }

    /// Recent requests per minute for a route label.
    fn rate(&self, label: &str, total: u64) -> Option<f64> {
        self.rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rate(label, total)
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> ChangeError {
    ChangeError::Unavailable(format!("console storage: {e}"))
}

/// Follows saves made by other instances sharing the store: announced
/// ones at once, and a check every few seconds in case one was missed.
/// Also samples the routes' request counts for the recent rates.
async fn follow(console: Weak<Console>, proxy: Arc<Proxy>, store: Arc<dyn ConsoleStore>) {
    let mut watch = store.watch();
    // Only a store other instances write to can change behind our back.
    let shared = watch.is_some();
    let mut samples = tokio::time::interval(Duration::from_secs(5));
    loop {
        let announced = async {
            match watch.as_mut() {
                Some(w) => w.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let mut shared_check = false;
        tokio::select! {
            ok = announced => {
                if !ok {
                    watch = None;
                }
                shared_check = true;
            }
            _ = samples.tick() => {}
        }
        let Some(c) = console.upgrade() else { return };
        c.sample(&proxy.runtime());
        if shared_check || shared {
            c.sync(&proxy, &store).await;
        }
    }
}

impl Console {
    fn sample(&self, rt: &Runtime) {
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        rates.sample(
            rt.config
                .routes
                .iter()
                .zip(&rt.routes)
                .map(|(r, s)| (r.label().to_string(), s.metrics.counts().requests)),
        );
    }
}

/// Request totals per route label, one sample every 5 s for a minute.
#[derive(Default)]
struct Rates {
    samples:
        std::collections::VecDeque<(std::time::Instant, std::collections::HashMap<String, u64>)>,
}

impl Rates {
    fn sample(&mut self, totals: impl Iterator<Item = (String, u64)>) {
        self.samples
            .push_back((std::time::Instant::now(), totals.collect()));
        while self.samples.len() > 13 {
            self.samples.pop_front();
        }
    }

    /// Requests per minute since the oldest sample.
    fn rate(&self, label: &str, total: u64) -> Option<f64> {
        let (at, totals) = self.samples.front()?;
        let secs = at.elapsed().as_secs_f64();
        if secs < 1.0 {
            return None;
        }
        let then = totals.get(label).copied().unwrap_or(0);
        Some(total.saturating_sub(then) as f64 * 60.0 / secs)
    }
}

/// Diagnostics as field errors: console values by their key, anything
/// else (the file, the environment) for the change as a whole.
fn field_errors(diags: &[Diagnostic]) -> Vec<FieldError> {
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| match overlay::target(&d.mark) {
            Some(Target::Route(_, key)) => FieldError {
                field: key.unwrap_or_default().to_string(),
                message: d.message.clone(),
            },
            Some(Target::Setting(key)) => FieldError {
                field: key.to_string(),
                message: d.message.clone(),
            },
            None => FieldError {
                field: String::new(),
                message: format!("{d}"),
            },
        })
        .collect()
}

fn check_setting_keys(settings: &Map<String, Json>) -> Result<(), ChangeError> {
    let errors: Vec<FieldError> = settings
        .keys()
        .filter(|k| !overlay::LIVE_SETTINGS.contains(&k.as_str()))
        .map(|k| FieldError {
            field: k.clone(),
            message: format!(
                "`{k}` cannot be changed in the console (live settings: {})",
                overlay::LIVE_SETTINGS.join(", ")
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ChangeError::Invalid(errors))
    }
}

/// A route as the API shows it: its id first, then its options.
fn route_json(r: &ConsoleRoute) -> Json {
    let mut m = Map::new();
    m.insert("id".into(), Json::String(r.id.clone()));
    m.extend(r.options.clone());
    Json::Object(m)
}

/// A route from API JSON (its `id`, if any, is replaced by `id`).
fn parse_route(id: &str, v: Json) -> Result<ConsoleRoute, ChangeError> {
    let Json::Object(mut options) = v else {
        return Err(ChangeError::Invalid(vec![FieldError {
            field: String::new(),
            message: "a route is a JSON object of route options".into(),
        }]));
    };
    options.remove("id");
    Ok(ConsoleRoute {
        id: id.to_string(),
        options,
    })
}

fn route_label(r: &ConsoleRoute) -> String {
    match r.str("name") {
        "" => format!("`{}`", r.str("from")),
        n => format!("`{n}`"),
    }
}

fn new_id() -> String {
    let bytes: [u8; 6] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity a change is recorded under.
fn who(session: &Session) -> String {
    if session.identity.email.is_empty() {
        session.identity.sub.clone()
    } else {
        session.identity.email.clone()
    }
}

impl Default for Console {
    fn default() -> Console {
        Console::new()
    }
}

impl RouteService for Console {
    fn serve<'a>(
        &'a self,
        proxy: &'a Proxy,
        runtime: &'a Runtime,
        req: Request<Incoming>,
        session: Option<&'a Session>,
        request_id: &'a str,
    ) -> gatehouse_proxy::mount::Answer<'a> {
        Box::pin(serve(self, proxy, runtime, req, session, request_id))
    }
}

/// Serves the console host. The route's policy has allowed the request.
async fn serve(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
    session: Option<&Session>,
    request_id: &str,
) -> Response<Body> {
    // Only a session from the main sign-in manages the console: one made
    // from a route's token is scoped to that route (identify already
    // enforces it; the console does not rely on that alone).
    let session = session.filter(|s| s.provenance.is_main_sign_in());
    let Some(session) = session else {
        // A policy that lets anyone in without a session (`accept: true`)
        // must not open the console.
        return gatehouse_proxy::pages::page(
            StatusCode::FORBIDDEN,
            "The console needs a signed-in user: its policy must name who may use it.",
            "console_needs_user",
            request_id,
            gatehouse_proxy::pages::wants_json(req.headers()),
        );
    };
    let path = req.uri().path().to_string();
    let api = path.starts_with("/api/v1");
    // One check for pages and API, before anything reads the body.
    if !write_allowed(rt, &req) {
        tracing::warn!(
            method = %req.method(),
            path = %path,
            from = %claimed_origin(req.headers()),
            request_id,
            "console: a cookie-authenticated write from another origin (or none) was refused"
        );
        return if api {
            api::cross_origin()
        } else {
            html::cross_origin(console, session)
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v1") {
        return api::serve(console, proxy, rt, req, rest, session).await;
    }
    html::serve(console, proxy, rt, req, &path, session).await
}

/// The authority the request addressed (`:authority` or `Host`).
fn authority(req: &Request<Incoming>) -> &str {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or_default()
}

/// [`gatehouse_proxy::csrf::write_allowed`] for this request: the console's origin is the
/// host the browser addressed, in the scheme the console is served on.
fn write_allowed(rt: &Runtime, req: &Request<Incoming>) -> bool {
    let authority = authority(req);
    let https = rt.config.console.as_ref().is_none_or(|c| c.from.https);
    let own = gatehouse_proxy::csrf::own_origin(https, authority);
    // The cookie `authorize::identify` would have read for this host.
    let host = gatehouse_proxy::csrf::host_name(authority);
    let cookie = gatehouse_proxy::signin::has_session_cookie(&rt.auth, req.headers(), &host);
    gatehouse_proxy::csrf::write_allowed(req.method(), req.headers(), own.as_ref(), cookie)
}

/// Where a refused write said it came from, for the log: an origin only
/// (a `Referer`'s path and query may hold secrets).
fn claimed_origin(headers: &http::HeaderMap) -> String {
    let origin_of = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url::Url::parse(v).ok())
            .map(|u| u.origin().ascii_serialization())
    };
    match headers.get(header::ORIGIN) {
        Some(o) if o.as_bytes() == b"null" => "Origin: null".into(),
        Some(_) => match origin_of(header::ORIGIN) {
            Some(o) => format!("Origin: {o}"),
            None => "Origin: (not an origin)".into(),
        },
        None => match origin_of(header::REFERER) {
            Some(o) => format!("Referer on {o}"),
            None => "(no Origin or Referer)".into(),
        },
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ChangeError> {
    body::collect_limited(req.into_body(), MAX_BODY)
        .await
        .ok_or_else(|| {
            ChangeError::Invalid(vec![FieldError {
                field: String::new(),
                message: format!("the request body could not be read (at most {MAX_BODY} bytes)"),
            }])
        })
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(body::full(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The file's routes and the console's, for the list page and the API.
struct Listed<'a> {
    route: &'a gatehouse_config::Route,
    counts: gatehouse_proxy::metrics::RouteCounts,
    per_minute: Option<f64>,
}

fn listed<'a>(console: &Console, rt: &'a Runtime) -> Vec<Listed<'a>> {
    rt.config
        .routes
        .iter()
        .zip(&rt.routes)
        .filter(|(r, _)| !matches!(r.action, gatehouse_config::RouteAction::Console))
        .map(|(route, state)| {
            let counts = state.metrics.counts();
            Listed {
                route,
                per_minute: console.rate(&route.label().to_string(), counts.requests),
                counts,
            }
        })
        .collect()
}

/// Console routes the running configuration does not have (they no longer
/// fit the file; see [`Console::load_file`]).
fn not_in_force<'a>(state: &'a State, rt: &Runtime) -> Vec<&'a ConsoleRoute> {
    state
        .routes
        .iter()
        .filter(|r| {
            !rt.config
                .routes
                .iter()
                .any(|c| c.console_id() == Some(&r.id))
        })
        .collect()
}

/// The configuration file as YAML with the console's routes and settings
/// merged in; secrets are left out.
fn export(rt: &Runtime, state: &State) -> Result<String, String> {
    let path: &PathBuf = &rt.config.source;
    let bytes =
        gatehouse_config::read_limited(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    let mut root = gatehouse_config::yaml::parse(&text, &path.display().to_string())
        .map_err(|e| format!("{}: {}", e.mark, e.message))?;
    state.overlay().merge_into(&mut root);
    let mut omitted = Vec::new();
    if let gatehouse_config::yaml::Value::Map(entries) = &mut root.value {
        entries.retain(|(k, _)| {
            let key = k.as_str().unwrap_or_default();
            let secret = gatehouse_config::SECRET_KEYS.iter().any(|(k, _)| *k == key);
            if secret {
                omitted.push(key.to_string());
            }
            !secret
        });
    }
    let mut out = String::from(
        "# gatehouse configuration: the configuration file with the console's routes and\n# settings merged in. Pomerium-compatible.\n",
    );
    if !omitted.is_empty() {
        out.push_str(&format!(
            "# Left out (secrets; copy them from the running configuration): {}\n",
            omitted.join(", ")
        ));
    }
    out.push_str(&gatehouse_config::yaml::emit(&root));
    Ok(out)
}

/// A Pomerium `config.yaml` as console state: its routes (except those the
/// file already has, by `from` and path) and its live settings.
fn parse_import(rt: &Runtime, text: &str) -> Result<State, ChangeError> {
    let invalid = |m: String| {
        ChangeError::Invalid(vec![FieldError {
            field: String::new(),
            message: m,
        }])
    };
    let root = gatehouse_config::yaml::parse(text, "import")
        .map_err(|e| invalid(format!("{}: {}", e.mark, e.message)))?;
    let json = overlay::node_to_json(&root);
    let Json::Object(map) = json else {
        return Err(invalid("a configuration is a mapping of options".into()));
    };
    let in_file: Vec<(String, String)> = rt
        .config
        .routes
        .iter()
        .filter(|r| r.console_id().is_none())
        .map(|r| (r.from.to_string(), r.path_match.to_string()))
        .collect();
    let mut state = State::default();
    for key in ["policy", "routes"] {
        let Some(Json::Array(items)) = map.get(key) else {
            continue;
        };
        for item in items {
            let route = parse_route(&new_id(), item.clone())?;
            let key = (normalize_from(route.str("from")), path_of(&route.options));
            if !in_file.contains(&key) {
                state.routes.push(route);
            }
        }
    }
    for key in overlay::LIVE_SETTINGS {
        if let Some(v) = map.get(*key) {
            state.settings.insert(key.to_string(), v.clone());
        }
    }
    Ok(state)
}

fn normalize_from(from: &str) -> String {
    from.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The path match as [`gatehouse_config::PathMatch`] displays it.
fn path_of(options: &Map<String, Json>) -> String {
    for (key, label) in [("path", "path"), ("prefix", "prefix"), ("regex", "regex")] {
        if let Some(v) = options.get(key).and_then(Json::as_str) {
            if !(key == "prefix" && v == "/") {
                return format!(" {label} {v}");
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests;
