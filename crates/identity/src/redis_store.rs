//! `databroker_storage_type: redis`: sessions and one-time tokens shared by
//! every gatehouse instance through one Redis.
//!
//! - Records: `gatehouse:session:<id>` (JSON, expiring with the session),
//!   `gatehouse:once:<token>` (`SET NX`, taken with `GETDEL`: once across
//!   all instances), `gatehouse:lease:<id>` (who may refresh a session's
//!   tokens right now, `SET NX PX`, released only by its holder),
//!   `gatehouse:shared:<name>` (values every instance reads: autocert's
//!   sealed account and certificates).
//! - Each instance keeps a bounded cache of hot sessions, so most requests
//!   cost no round trip. Every write and delete is published on
//!   `gatehouse:invalidate`; the other instances drop their copy at once (a
//!   sign-out on one instance is a sign-out on all within milliseconds).
//!   A copy is trusted only while the subscription is up, and for at most
//!   [`TRUST`] even then; a new subscription starts from an empty cache,
//!   since messages sent while it was down are lost.
//! - Redis unreachable: a session this instance confirmed within
//!   `databroker_storage_outage_grace` keeps working from the cache; new
//!   sign-ins fail (the caller answers 503); after a failure, requests skip
//!   Redis for [`BACKOFF`] so an outage does not cost every request a
//!   timeout. Everything resumes by itself when Redis is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use crate::session::{Session, SessionId};
use crate::store::{Lease, SessionStore, StoreError};

/// Longest a cached session is used without asking Redis, even with the
/// invalidation channel up (a backstop, not the mechanism).
pub const TRUST: Duration = Duration::from_secs(30);
/// After a failed command, how long requests go straight to the cache.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// Bound on one command (connect or answer).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(750);
/// Hot sessions kept per instance.
const CACHE_SIZE: usize = 20_000;
const CHANNEL: &str = "gatehouse:invalidate";
/// Releases a lease only if this holder still has it.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

pub struct RedisStore {
    conn: ConnectionManager,
    shared: Arc<Shared>,
}

struct Shared {
    cache: Mutex<HotCache>,
    /// The invalidation channel is up: cached copies can be trusted.
    subscribed: AtomicBool,
    /// When the last command failed (cleared by the next success).
    failed_at: Mutex<Option<Instant>>,
    /// This instance's name on the channel (its own messages are skipped).
    instance: String,
    /// What the store is, for logs (never the password).
    describe: String,
    cache_hits: std::sync::atomic::AtomicU64,
    cache_misses: std::sync::atomic::AtomicU64,
    grace: Duration,
    /// The console's version as last announced by another instance (bumped
    /// on every new subscription: announcements may have been missed).
    console: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn failed_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.failed_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redis did not answer: said once per outage, remembered for the
    /// back-off and for refusing new sign-ins.
    fn failed(&self, why: &dyn std::fmt::Display) {
        let mut failed = self.failed_at();
        if failed.is_none() {
            tracing::error!(store = %self.describe, error = %why, grace = ?self.grace, "session store unreachable: known sessions continue from the cache, new sign-ins fail until it is back");
        }
        *failed = Some(Instant::now());
    }

    /// Redis answered (a command or the subscription).
    fn answered(&self) {
        if self.failed_at().take().is_some() {
            tracing::info!(store = %self.describe, "session store reachable again");
        }
    }

    /// Keeps `session` as Redis just confirmed it.
    fn remember(&self, session: Arc<Session>) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            session.id,
            Hot {
                session,
                confirmed: Instant::now(),
            },
        );
    }
}

#[derive(Clone)]
struct Hot {
    session: Arc<Session>,
    /// When Redis last said this is the record.
    confirmed: Instant,
}

/// Two generations: lookups promote from `old`; when `young` is full it
/// becomes `old` and the previous `old` is dropped. Bounded, O(1).
#[derive(Default)]
struct HotCache {
    young: HashMap<SessionId, Hot>,
    old: HashMap<SessionId, Hot>,
}

impl HotCache {
    fn get(&mut self, id: &SessionId) -> Option<Hot> {
        if let Some(h) = self.young.get(id) {
            return Some(h.clone());
        }
        let h = self.old.remove(id)?;
        self.insert(*id, h.clone());
        Some(h)
    }

    fn insert(&mut self, id: SessionId, hot: Hot) {
        if self.young.len() >= CACHE_SIZE / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&id);
        self.young.insert(id, hot);
    }

    fn remove(&mut self, id: &SessionId) {
        self.young.remove(id);
        self.old.remove(id);
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

fn key(kind: &str, id: &[u8; 16]) -> String {
    let mut k = format!("gatehouse:{kind}:");
    for b in id {
        k.push_str(&format!("{b:02x}"));
    }
    k
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects lazily: gatehouse starts whether or not Redis is up yet,
    /// and says in the log when it reaches it.
    pub fn open(settings: &gatehouse_config::Storage) -> Result<RedisStore, StoreError> {
        let gatehouse_config::StorageKind::Redis(url) = &settings.kind else {
            return Err(StoreError::Backend("not a redis store".into()));
        };
        let client = if settings.ca_pem.is_some() || settings.client_pem.is_some() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls: settings.client_pem.as_ref().map(|(cert, key)| {
                        redis::ClientTlsConfig {
                            client_cert: cert.clone(),
                            client_key: key.clone(),
                        }
                    }),
                    root_cert: settings.ca_pem.clone(),
                },
            )
        } else {
            if url.starts_with("rediss:") {
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            }
            redis::Client::open(url.as_str())
        }
        .map_err(|e| StoreError::Backend(format!("{}: {e}", settings.describe())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", settings.describe())))?;
        let shared = Arc::new(Shared {
            cache: Mutex::new(HotCache::default()),
            subscribed: AtomicBool::new(false),
            failed_at: Mutex::new(None),
            instance: format!("{:016x}", rand::random::<u64>()),
            describe: settings.describe(),
            cache_hits: Default::default(),
            cache_misses: Default::default(),
            grace: settings.outage_grace,
            console: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(subscribe(client, Arc::downgrade(&shared)));
        Ok(RedisStore { conn, shared })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HotCache> {
        self.shared.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while requests should not wait on Redis (it failed just now).
    fn backing_off(&self) -> bool {
        self.shared
            .failed_at()
            .is_some_and(|t| t.elapsed() < BACKOFF)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.run(|mut c| async move { cmd.query_async::<T>(&mut c).await })
            .await
    }

    async fn query_pipe(&self, pipe: &redis::Pipeline) -> Result<(), StoreError> {
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    /// Runs one command within [`COMMAND_TIMEOUT`], noting the outcome. A
    /// connection found dead is retried once on a fresh one: the first
    /// command after Redis comes back should not fail.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            match op(self.conn.clone()).await {
                Err(e) if e.is_connection_refusal() || e.is_connection_dropped() => {
                    op(self.conn.clone()).await
                }
                other => other,
            }
        };
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(backend("no answer within 750ms")),
        };
        match &result {
            Ok(_) => self.shared.answered(),
            Err(e) => self.shared.failed(e),
        }
        result
    }

    /// The record as Redis has it now (the cache is updated, not read).
    async fn fetch(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        let bytes: Option<Vec<u8>> = self
            .query(redis::cmd("GET").arg(key("session", &id.0)))
            .await?;
        let Some(bytes) = bytes else {
            self.cache().remove(id);
            return Ok(None);
        };
        let session: Arc<Session> = Arc::new(
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        self.shared.remember(session.clone());
        Ok(Some(session))
    }

    /// Whether this instance's copy is believed without asking Redis:
    /// changes are being heard, and the copy was confirmed within `TRUST`
    /// (counted as a hit).
    fn trusted(&self, h: &Hot) -> bool {
        let trusted =
            self.shared.subscribed.load(Ordering::Acquire) && h.confirmed.elapsed() < TRUST;
        if trusted {
            self.shared.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        trusted
    }

    /// Tells the other instances to drop their copy of `id`.
    fn invalidation(&self, id: &SessionId) -> String {
        format!("{} {}", self.shared.instance, id.to_hex())
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn peek(&self, id: &SessionId) -> Option<Option<Arc<Session>>> {
        let h = self.cache().get(id)?;
        self.trusted(&h).then_some(Some(h.session))
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        let cached = self.cache().get(id);
        if let Some(h) = &cached
            && self.trusted(h)
        {
            return Ok(Some(h.session.clone()));
        }
        self.shared.cache_misses.fetch_add(1, Ordering::Relaxed);
        let fallback = |e: StoreError| match &cached {
            Some(h) if h.confirmed.elapsed() < self.shared.grace => Ok(Some(h.session.clone())),
            _ => Err(e),
        };
        if self.backing_off() {
            return fallback(backend("unreachable a moment ago"));
        }
        self.fetch(id).await.or_else(fallback)
    }

    async fn get_fresh(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        self.fetch(id).await
    }

    async fn put(&self, session: &Session) -> Result<(), StoreError> {
        let now = crate::session::unix_now();
        if !session.is_live(now) {
            return self.delete(&session.id).await;
        }
        let value = serde_json::to_vec(session).map_err(backend)?;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key("session", &session.id.0))
            .arg(value)
            .arg("EXAT")
            .arg(session.expires_at)
            .ignore()
            .cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(self.invalidation(&session.id))
            .ignore();
        self.query_pipe(&pipe).await?;
        self.shared.remember(Arc::new(session.clone()));
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.cache().remove(id);
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(key("session", &id.0))
            .ignore()
            .cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(self.invalidation(id))
            .ignore();
        self.query_pipe(&pipe).await
    }

    async fn put_once(&self, token: [u8; 16], expires_at: u64) -> Result<(), StoreError> {
        let cmd = redis::cmd("SET")
            .arg(key("once", &token))
            .arg(expires_at)
            .arg("NX")
            .arg("EXAT")
            .arg(expires_at.max(1))
            .to_owned();
        self.query::<Option<String>>(&cmd).await.map(drop)
    }

    async fn take_once(&self, token: [u8; 16], now: u64) -> Result<bool, StoreError> {
        let taken: Option<u64> = self
            .query(redis::cmd("GETDEL").arg(key("once", &token)))
            .await?;
        Ok(taken.is_some_and(|exp| exp > now))
    }

    async fn lease(&self, id: &SessionId, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let token: [u8; 16] = rand::random();
        let cmd = redis::cmd("SET")
            .arg(key("lease", &id.0))
            .arg(&token[..])
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .to_owned();
        let set: Option<String> = self.query(&cmd).await?;
        Ok(set.map(|_| Lease { id: *id, token }))
    }

    fn cache_counts(&self) -> (u64, u64) {
        (
            self.shared.cache_hits.load(Ordering::Relaxed),
            self.shared.cache_misses.load(Ordering::Relaxed),
        )
    }

    fn available(&self) -> bool {
        self.shared.failed_at().is_none()
    }

    fn shares(&self) -> bool {
        true
    }

    async fn get_shared(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(format!("gatehouse:shared:{name}")))
            .await
    }

    async fn put_shared(&self, name: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let cmd = redis::cmd("SET")
            .arg(format!("gatehouse:shared:{name}"))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().clamp(1, u64::MAX as u128) as u64)
            .to_owned();
        self.query::<Option<String>>(&cmd).await.map(drop)
    }

    async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let cmd = redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(key("lease", &lease.id.0))
            .arg(&lease.token[..])
            .to_owned();
        self.query::<i64>(&cmd).await.map(drop)
    }
}

const CONSOLE_VERSION: &str = "gatehouse:console:version";
const CONSOLE_STATE: &str = "gatehouse:console:state";
const CONSOLE_HISTORY: &str = "gatehouse:console:history";
/// Compare-and-set of the console state, its history entry and the
/// announcement to the other instances, in one step.
const CONSOLE_SAVE: &str = "local v = tonumber(redis.call('get', KEYS[1]) or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
v = v + 1
redis.call('set', KEYS[1], v)
redis.call('set', KEYS[2], ARGV[2])
redis.call('hset', KEYS[3], v, ARGV[3])
local keep = tonumber(ARGV[4])
if v > keep then redis.call('hdel', KEYS[3], v - keep) end
redis.call('publish', ARGV[5], ARGV[6] .. ' console ' .. v)
return v";

#[async_trait]
impl crate::console_store::ConsoleStore for RedisStore {
    async fn load(&self) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        let (version, state): (Option<u64>, Option<Vec<u8>>) = self
            .query(redis::cmd("MGET").arg(CONSOLE_VERSION).arg(CONSOLE_STATE))
            .await?;
        Ok((version.unwrap_or(0), state))
    }

    async fn save(
        &self,
        expected: u64,
        state: Vec<u8>,
        change: Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CONSOLE_SAVE)
            .arg(3)
            .arg(CONSOLE_VERSION)
            .arg(CONSOLE_STATE)
            .arg(CONSOLE_HISTORY)
            .arg(expected)
            .arg(state)
            .arg(change)
            .arg(crate::console_store::HISTORY)
            .arg(CHANNEL)
            .arg(&self.shared.instance);
        let v: i64 = self.query(&cmd).await?;
        Ok(u64::try_from(v).ok())
    }

    async fn history(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let version: Option<u64> = self.query(redis::cmd("GET").arg(CONSOLE_VERSION)).await?;
        let newest = version.unwrap_or(0);
        let oldest = newest
            .saturating_sub(limit as u64)
            .max(newest.saturating_sub(crate::console_store::HISTORY));
        if newest == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let versions: Vec<u64> = ((oldest + 1)..=newest).rev().collect();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(CONSOLE_HISTORY);
        for v in &versions {
            cmd.arg(*v);
        }
        let found: Vec<Option<Vec<u8>>> = self.query(&cmd).await?;
        Ok(versions
            .into_iter()
            .zip(found)
            .filter_map(|(v, c)| c.map(|c| (v, c)))
            .collect())
    }

    async fn change(&self, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("HGET").arg(CONSOLE_HISTORY).arg(version))
            .await
    }

    fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.shared.console.subscribe())
    }

    fn describe(&self) -> String {
        self.shared.describe.clone()
    }
}

/// Keeps the invalidation subscription up for as long as the store lives.
async fn subscribe(client: redis::Client, shared: Weak<Shared>) {
    let mut delay = Duration::from_millis(250);
    loop {
        let Some(s) = shared.upgrade() else { return };
        let describe = s.describe.clone();
        drop(s);
        let pubsub = match tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(mut ps)) => ps.subscribe(CHANNEL).await.map(|()| ps).map_err(backend),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(backend("no answer within 750ms")),
        };
        match pubsub {
            Ok(ps) => {
                let Some(s) = shared.upgrade() else { return };
                // Messages sent while unsubscribed are lost: start afresh.
                s.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
                s.subscribed.store(true, Ordering::Release);
                s.console.send_modify(|_| {});
                // Commands may not have run since an outage: say it is back.
                s.answered();
                tracing::info!(store = %describe, "session store connected; invalidations subscribed");
                drop(s);
                delay = Duration::from_millis(250);
                listen(ps, &shared).await;
                if let Some(s) = shared.upgrade() {
                    s.subscribed.store(false, Ordering::Release);
                }
                tracing::warn!(store = %describe, "session store subscription lost; reconnecting");
            }
            // New sign-ins are refused up front until Redis is back.
            Err(e) => match shared.upgrade() {
                Some(s) => s.failed(&e),
                None => return,
            },
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Applies invalidations until the connection ends or stops answering.
async fn listen(ps: redis::aio::PubSub, shared: &Weak<Shared>) {
    let (mut sink, mut stream) = ps.split();
    let mut ping = tokio::time::interval(Duration::from_secs(2));
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return };
                let Some(s) = shared.upgrade() else { return };
                let Ok(text) = msg.get_payload::<String>() else { continue };
                let Some((from, hex)) = text.split_once(' ') else { continue };
                if from == s.instance {
                    continue;
                }
                if let Some(v) = hex.strip_prefix("console ") {
                    s.console.send_replace(v.parse().unwrap_or(0));
                    continue;
                }
                if let Some(id) = parse_hex(hex) {
                    s.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&SessionId(id));
                }
            }
            _ = ping.tick() => {
                if shared.strong_count() == 0 {
                    return;
                }
                let answered = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

fn parse_hex(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot(n: u8) -> Hot {
        let mut s = Session::new(crate::session::Identity::default(), 0, 10);
        s.id = SessionId([n; 16]);
        Hot {
            session: s.into(),
            confirmed: Instant::now(),
        }
    }

    #[test]
    fn hot_cache_is_bounded_and_keeps_what_is_used() {
        let mut c = HotCache::default();
        c.insert(SessionId([1; 16]), hot(1));
        for i in 0..CACHE_SIZE as u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id[15] = 2;
            c.insert(SessionId(id), hot(2));
            if i % 1000 == 0 {
                assert!(c.get(&SessionId([1; 16])).is_some(), "used entries stay");
            }
        }
        assert!(c.young.len() + c.old.len() <= CACHE_SIZE);
        c.remove(&SessionId([1; 16]));
        assert!(c.get(&SessionId([1; 16])).is_none());
    }

    #[test]
    fn keys_and_ids() {
        assert_eq!(
            key("session", &[0xab; 16]),
            format!("gatehouse:session:{}", "ab".repeat(16))
        );
        assert_eq!(parse_hex(&"0f".repeat(16)), Some([0x0f; 16]));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"zz".repeat(16)), None);
    }
}
