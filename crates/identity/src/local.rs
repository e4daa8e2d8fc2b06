//! The built-in user directory (`idp_provider: local`): argon2id password
//! checks that take the same time whether or not the user exists, login
//! throttling per user and per client address (reserved before hashing), and
//! a bound on how many passwords are hashed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use gatehouse_config::model::LocalUser;

use crate::session::Identity;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error(
        "user `{0}`: password_hash is not an argon2id PHC string (make one with `gatehouse hash-password`)"
    )]
    BadHash(String),
    #[error("user `{0}` is listed twice")]
    Duplicate(String),
    #[error("a user has no username")]
    NoUsername,
}

pub struct Directory {
    /// By lower-cased username and by lower-cased email. A seeded
    /// foldhash, not SipHash: only configured names are inserted (a
    /// lookup's cost does not depend on the name asked), and every request
    /// of a signed-in user looks its user up.
    users: HashMap<String, usize, foldhash::fast::RandomState>,
    entries: Vec<LocalUser>,
    /// Verified against when the user does not exist, so both cases cost the same.
    decoy: String,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Directory({} users)", self.entries.len())
    }
}

/// The name shown for a user: its `name`, or its username.
fn display_name(user: &LocalUser) -> &str {
    if user.name.is_empty() {
        &user.username
    } else {
        &user.name
    }
}

impl Directory {
    pub fn new(users: Vec<LocalUser>) -> Result<Directory, DirectoryError> {
        let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
        for (i, u) in users.iter().enumerate() {
            if u.username.trim().is_empty() {
                return Err(DirectoryError::NoUsername);
            }
            let parsed = PasswordHash::new(&u.password_hash)
                .map_err(|_| DirectoryError::BadHash(u.username.clone()))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(DirectoryError::BadHash(u.username.clone()));
            }
            if map.insert(u.username.to_lowercase(), i).is_some() {
                return Err(DirectoryError::Duplicate(u.username.clone()));
            }
            if !u.email.is_empty() {
                map.entry(u.email.to_lowercase()).or_insert(i);
            }
        }
        Ok(Directory {
            users: map,
            entries: users,
            decoy: hash_password("gatehouse decoy password"),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The name attempts for `login` are throttled under: the user's
    /// username when `login` names a user (by username or email, so the two
    /// spellings share one limit), else `login` itself.
    pub fn throttle_key(&self, login: &str) -> String {
        let login = login.trim().to_lowercase();
        match self.users.get(&login) {
            Some(&i) => self.entries[i].username.to_lowercase(),
            None => login,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identity of the user whose username is `sub` as the directory
    /// has it now: `None` once the user is removed. Sessions of the
    /// directory are checked against it on every lookup, so removing a user
    /// or a group takes effect at once, not when the cookie expires.
    pub fn current(&self, sub: &str) -> Option<Identity> {
        self.user(sub).map(Self::identity)
    }

    /// [`Directory::current`] for a session's identity, without building
    /// one when nothing changed (every request of a signed-in user asks):
    /// `None` once the user is removed, `Some(None)` when the directory
    /// still says the same, `Some(Some(new))` when it changed.
    pub fn changed(&self, identity: &Identity) -> Option<Option<Identity>> {
        let user = self.user(&identity.sub)?;
        let same = identity.email == user.email
            && identity.name == display_name(user)
            && identity.groups == user.groups
            && identity.idp == "local"
            && identity.claims.is_empty();
        Some((!same).then(|| Self::identity(user)))
    }

    /// The user named `sub` (its exact spelling), without allocating for
    /// a lower-case name.
    fn user(&self, sub: &str) -> Option<&LocalUser> {
        let index = if sub.bytes().any(|b| b.is_ascii_uppercase()) || !sub.is_ascii() {
            self.users.get(&sub.to_lowercase())
        } else {
            self.users.get(sub)
        };
        index
            .map(|&i| &self.entries[i])
            .filter(|u| u.username == sub)
    }

    fn identity(user: &LocalUser) -> Identity {
        Identity {
            sub: user.username.clone(),
            email: user.email.clone(),
            name: display_name(user).to_string(),
            groups: user.groups.clone(),
            idp: "local".into(),
            claims: serde_json::Map::new(),
        }
    }

    /// The user's identity when the password is right. Slow on purpose
    /// (argon2id): call it off the async runtime.
    pub fn verify(&self, username: &str, password: &str) -> Option<Identity> {
        let user = self
            .users
            .get(&username.trim().to_lowercase())
            .map(|&i| &self.entries[i]);
        let hash = user.map_or(self.decoy.as_str(), |u| u.password_hash.as_str());
        let ok = PasswordHash::new(hash)
            .ok()
            .is_some_and(|h| verify_reusing_memory(&h, password.as_bytes()));
        let user = user.filter(|_| ok)?;
        Some(Self::identity(user))
    }
}

thread_local! {
    /// argon2's working memory (~19 MiB with the default parameters), kept
    /// per thread for a burst: allocating it per hash fragments the
    /// allocator, and a burst of hashes then grows the process by 19 MiB
    /// each (measured: 20 hashes on two threads took 370 MiB). Released
    /// once the thread has been idle for [`RELEASE_AFTER`]: kept for good,
    /// it was 19 MiB of every instance's resident size after one sign-in.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How long a hashing thread keeps its argon2 memory without a job.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives back this thread's argon2 memory (the allocator's trim returns it
/// to the system).
fn release_hash_memory() {
    BLOCKS.with(|memory| *memory.borrow_mut() = Vec::new());
}

/// `PasswordVerifier::verify_password`, with the thread's reused memory.
fn verify_reusing_memory(hash: &PasswordHash<'_>, password: &[u8]) -> bool {
    let check = || -> Option<bool> {
        let algorithm = argon2::Algorithm::try_from(hash.algorithm).ok()?;
        let version = match hash.version {
            Some(v) => argon2::Version::try_from(v).ok()?,
            None => argon2::Version::default(),
        };
        let params = argon2::Params::try_from(hash).ok()?;
        let expected = hash.hash?;
        let mut salt = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt).ok()?;
        let mut out = vec![0u8; expected.len()];
        let blocks = params.block_count();
        let argon = Argon2::new(algorithm, version, params);
        BLOCKS.with(|memory| {
            let mut memory = memory.borrow_mut();
            if memory.len() < blocks {
                memory.resize(blocks, argon2::Block::default());
            }
            argon
                .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
                .ok()
        })?;
        Some(aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok())
    };
    check().unwrap_or(false)
}

/// An argon2id PHC string with the crate's default (OWASP) parameters.
pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16-byte salt encodes");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with default parameters")
        .to_string()
}

/// Login throttling: after `limit` failures within `window` seconds for one
/// username or one client address, further attempts wait `lockout` seconds.
///
/// An attempt is reserved ([`Throttle::reserve`]) before its password is
/// hashed and counts against the limit while it runs, so a burst of
/// concurrent attempts cannot all be evaluated before the first failure is
/// recorded.
pub struct Throttle {
    pub limit: usize,
    pub window: u64,
    pub lockout: u64,
    state: Mutex<HashMap<Key, Record>>,
    /// Keys logins by a keyed hash: a record costs the same whatever a
    /// client sends as a username, and no one can pick colliding names.
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The hashed, normalised login (username and email share one record
    /// through the caller).
    User(u64),
    /// An IPv4 address, or an IPv6 /64: one host holds a whole /64, so
    /// rotating inside it must not buy new attempts.
    Ip(IpAddr),
}

#[derive(Debug, Default)]
struct Record {
    failures: Vec<u64>,
    /// Attempts reserved and not yet settled.
    pending: usize,
    locked_until: u64,
}

/// The address a throttle record counts: IPv6 by its /64.
fn address_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Most records kept; the oldest are dropped past this (memory stays bounded
/// whatever an attacker sends).
const MAX_RECORDS: usize = 100_000;

/// Seconds to wait when the limit is taken by attempts still being checked:
/// they settle within a hash or two.
const BUSY_WAIT: u64 = 2;

/// A reserved sign-in attempt. Settle it with [`Attempt::succeeded`],
/// [`Attempt::failed`] or [`Attempt::cancel`]; dropped unsettled (the request
/// went away mid-check) it counts as a failure.
#[must_use = "an attempt must be settled"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: [Key; 2],
    at: u64,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was right: the user's record is forgiven; the address
    /// keeps its record (a shared address must not be unlocked by one success).
    pub fn succeeded(mut self) {
        self.settled = true;
        let mut state = self.throttle.lock();
        state.remove(&self.keys[0]);
        if let Some(r) = state.get_mut(&self.keys[1]) {
            r.pending = r.pending.saturating_sub(1);
        }
    }

    /// The password was wrong (or the user unknown).
    pub fn failed(mut self) {
        self.settled = true;
        self.throttle.settle_failure(&self.keys, self.at);
    }

    /// The attempt was not evaluated (e.g. the server was too busy): it
    /// neither counts nor holds a slot.
    pub fn cancel(mut self) {
        self.settled = true;
        let mut state = self.throttle.lock();
        for key in &self.keys {
            if let Some(r) = state.get_mut(key) {
                r.pending = r.pending.saturating_sub(1);
                // An attempt that left nothing behind leaves no record.
                if r.pending == 0 && r.failures.is_empty() && r.locked_until == 0 {
                    state.remove(key);
                }
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.settle_failure(&self.keys, self.at);
        }
    }
}

impl Throttle {
    pub fn new(limit: usize, window: u64, lockout: u64) -> Throttle {
        Throttle {
            limit: limit.max(1),
            window,
            lockout,
            state: Mutex::new(HashMap::new()),
            hasher: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(&self, user: &str, ip: IpAddr) -> [Key; 2] {
        [self.user_key(user), Key::Ip(address_block(ip))]
    }

    fn user_key(&self, user: &str) -> Key {
        use std::hash::BuildHasher;
        Key::User(self.hasher.hash_one(user.trim().to_lowercase()))
    }

    /// `Err(seconds)` while this user or address must wait.
    pub fn check(&self, user: &str, ip: IpAddr, now: u64) -> Result<(), u64> {
        let state = self.lock();
        let wait = self
            .keys(user, ip)
            .iter()
            .filter_map(|k| state.get(k))
            .map(|r| r.locked_until.saturating_sub(now))
            .max()
            .unwrap_or(0);
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    /// Takes a slot for one attempt of `user` from `ip`, atomically for both;
    /// `Err(seconds)` when either is locked or its remaining attempts are
    /// all being checked right now.
    pub fn reserve(&self, user: &str, ip: IpAddr, now: u64) -> Result<Attempt<'_>, u64> {
        let keys = self.keys(user, ip);
        let mut state = self.lock();
        if state.len() >= MAX_RECORDS - 2 {
            state.retain(|_, r| {
                r.pending > 0
                    || r.locked_until > now
                    || r.failures.iter().any(|&t| t + self.window > now)
            });
            // Still full of live records: keep the lockouts, which an
            // attacker would otherwise lift by filling the table.
            if state.len() >= MAX_RECORDS - 2 {
                state.retain(|_, r| r.locked_until > now);
            }
            if state.len() >= MAX_RECORDS - 2 {
                state.clear();
            }
        }
        let mut wait = 0;
        for key in &keys {
            if let Some(r) = state.get_mut(key) {
                r.failures.retain(|&t| t + self.window > now);
                if r.locked_until > now {
                    wait = wait.max(r.locked_until - now);
                } else if r.failures.len() + r.pending >= self.limit {
                    wait = wait.max(BUSY_WAIT);
                }
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for key in &keys {
            state.entry(key.clone()).or_default().pending += 1;
        }
        Ok(Attempt {
            throttle: self,
            keys,
            at: now,
            settled: false,
        })
    }

    fn settle_failure(&self, keys: &[Key; 2], now: u64) {
        let mut state = self.lock();
        for key in keys {
            let r = state.entry(key.clone()).or_default();
            r.pending = r.pending.saturating_sub(1);
            r.failures.retain(|&t| t + self.window > now);
            r.failures.push(now);
            if r.failures.len() >= self.limit {
                r.locked_until = now + self.lockout;
                r.failures.clear();
            }
        }
    }

    /// Records one failure without a reservation.
    pub fn failure(&self, user: &str, ip: IpAddr, now: u64) {
        self.settle_failure(&self.keys(user, ip), now);
    }

    /// Forgives the user's failures (the address keeps its record).
    pub fn success(&self, user: &str, ip: IpAddr) {
        let key = self.user_key(user);
        self.lock().remove(&key);
        let _ = ip; // A shared address (NAT) keeps its record: one success must not unlock it.
    }
}

/// Bounds concurrent password hashing (argon2id takes ~19 MiB and a core
/// for tens of milliseconds each): hashes run on `workers` threads of their
/// own, at most `queue` more wait, and nobody waits longer than `max_wait`.
/// Dedicated threads, not the runtime's blocking pool: that pool grows a new
/// thread (and a new allocator arena that keeps its 19 MiB) whenever its
/// threads are busy, so memory would grow with the burst.
pub struct HashGate {
    permits: Arc<tokio::sync::Semaphore>,
    admitted: Arc<AtomicUsize>,
    limit: usize,
    max_wait: std::time::Duration,
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The gate is full: answer 503 with `Retry-After`.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

impl HashGate {
    pub fn new(workers: usize, queue: usize, max_wait: std::time::Duration) -> HashGate {
        Self::releasing_after(workers, queue, max_wait, RELEASE_AFTER)
    }

    /// [`HashGate::new`] whose threads give back their hash memory after
    /// `idle` without a job.
    fn releasing_after(
        workers: usize,
        queue: usize,
        max_wait: std::time::Duration,
        idle: std::time::Duration,
    ) -> HashGate {
        let workers = workers.max(1);
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            // Threads end when the gate (the sender) is dropped.
            std::thread::Builder::new()
                .name(format!("gatehouse-hash-{i}"))
                .spawn(move || {
                    use std::sync::mpsc::RecvTimeoutError;
                    loop {
                        // Never an endless wait while holding the lock: the
                        // other threads, waiting for it, must get their turn
                        // to find themselves idle too (each within
                        // `workers` × `idle`; one wake-up per `idle` for the
                        // whole gate while nothing happens).
                        let job = rx
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .recv_timeout(idle);
                        match job {
                            Ok(job) => job(),
                            // The burst is over for this thread: its hash
                            // memory goes back (the allocator's trim
                            // returns it to the system).
                            Err(RecvTimeoutError::Timeout) => release_hash_memory(),
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .expect("start a password-hashing thread");
        }
        HashGate {
            permits: Arc::new(tokio::sync::Semaphore::new(workers)),
            admitted: Default::default(),
            limit: workers + queue,
            max_wait,
            jobs,
        }
    }

    /// Sized to the machine: one hash per available core, four waiting per core.
    pub fn for_this_machine() -> HashGate {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HashGate::new(cores, cores * 4, std::time::Duration::from_secs(5))
    }

    /// Runs `hash` on a hashing thread; `Busy` at once when too many are
    /// running or waiting already (or after `max_wait`). The slot is held
    /// until `hash` returns, even if the caller goes away meanwhile.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let _admitted = Admitted(self.admitted.clone());
        if before >= self.limit {
            return Err(Busy);
        }
        let permit = tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let _ = tx.send(hash());
        });
        self.jobs.send(job).map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The argon2 memory of the thread this runs on, in blocks.
    fn hash_memory() -> usize {
        BLOCKS.with(|m| m.borrow().capacity())
    }

    #[tokio::test]
    async fn hash_memory_is_kept_through_a_burst_and_released_after_it() {
        let dir = Arc::new(Directory::new(vec![user("alice", "pw")]).unwrap());
        // One thread, so every job below runs on it.
        let idle = std::time::Duration::from_millis(300);
        let gate = Arc::new(HashGate::releasing_after(
            1,
            4,
            std::time::Duration::from_secs(60),
            idle,
        ));
        let verify = |d: Arc<Directory>| move || d.verify("alice", "pw").is_some();
        // A lone sign-in: its memory is gone once the thread was idle.
        assert!(gate.run(verify(dir.clone())).await.unwrap());
        tokio::time::sleep(idle * 3).await;
        assert_eq!(gate.run(hash_memory).await.unwrap(), 0);
        // A burst: the first hash waits until a second caller is admitted;
        // the second finds the memory still there.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let (gate, dir) = (gate.clone(), dir.clone());
            async move {
                gate.run(move || {
                    wait.recv().unwrap();
                    dir.verify("alice", "pw").is_some()
                })
                .await
            }
        });
        let second = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(hash_memory).await }
        });
        while gate.admitted.load(Ordering::Acquire) < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        go.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert!(
            second.await.unwrap().unwrap() > 0,
            "reused within the burst"
        );
        // The burst is over: released.
        tokio::time::sleep(idle * 3).await;
        assert_eq!(gate.run(hash_memory).await.unwrap(), 0);
    }

    fn user(name: &str, password: &str) -> LocalUser {
        LocalUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            name: format!("{name} example"),
            groups: vec!["staff".into()],
            password_hash: hash_password(password),
        }
    }

    #[test]
    fn passwords_are_checked() {
        let d = Directory::new(vec![user("alice", "correct horse")]).unwrap();
        let id = d.verify("Alice", "correct horse").unwrap();
        assert_eq!(id.sub, "alice");
        assert_eq!(id.groups, ["staff"]);
        assert_eq!(id.idp, "local");
        assert!(
            d.verify("alice@example.com", "correct horse").is_some(),
            "email works as login"
        );
        assert!(d.verify("alice", "wrong").is_none());
        assert!(d.verify("mallory", "correct horse").is_none());
    }

    #[test]
    fn sessions_see_the_directory_as_it_is_now() {
        let d = Directory::new(vec![user("alice", "pw")]).unwrap();
        assert_eq!(d.current("alice").unwrap().groups, ["staff"]);
        assert!(d.current("Alice").is_none(), "the exact subject only");
        assert!(d.current("alice@example.com").is_none());
        let mut demoted = user("alice", "pw");
        demoted.groups.clear();
        let d = Directory::new(vec![demoted]).unwrap();
        assert!(d.current("alice").unwrap().groups.is_empty());
        let d = Directory::new(vec![user("bob", "pw")]).unwrap();
        assert!(d.current("alice").is_none(), "removed");
    }

    /// `changed` agrees with `current` without building an identity when
    /// nothing changed.
    #[test]
    fn changed_is_current_without_a_copy_when_nothing_changed() {
        let d = Directory::new(vec![user("alice", "pw")]).unwrap();
        let now = d.current("alice").unwrap();
        assert_eq!(d.changed(&now), Some(None), "unchanged");
        let mut demoted = user("alice", "pw");
        demoted.groups.clear();
        let d2 = Directory::new(vec![demoted]).unwrap();
        assert_eq!(
            d2.changed(&now),
            Some(d2.current("alice")),
            "groups changed"
        );
        let mut renamed = now.clone();
        renamed.email = "old@example.com".into();
        assert_eq!(
            d.changed(&renamed),
            Some(d.current("alice")),
            "email changed"
        );
        let mut upper = now.clone();
        upper.sub = "Alice".into();
        assert_eq!(d.changed(&upper), None, "the exact subject only");
        let d3 = Directory::new(vec![user("bob", "pw")]).unwrap();
        assert_eq!(d3.changed(&now), None, "removed");
    }

    #[test]
    fn bad_directories_are_refused() {
        let mut u = user("bob", "x");
        u.password_hash = "plaintext".into();
        assert_eq!(
            Directory::new(vec![u]).unwrap_err(),
            DirectoryError::BadHash("bob".into())
        );
        assert!(matches!(
            Directory::new(vec![user("a", "x"), user("A", "y")]),
            Err(DirectoryError::Duplicate(_))
        ));
    }

    #[test]
    fn throttling_per_user_and_per_address() {
        let t = Throttle::new(5, 120, 300);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..4 {
            t.failure("alice", ip, 1000 + i);
        }
        assert!(t.check("alice", ip, 1010).is_ok(), "4 failures are allowed");
        t.failure("alice", ip, 1010);
        assert_eq!(t.check("alice", ip, 1010), Err(300));
        assert_eq!(
            t.check("alice", other, 1010),
            Err(300),
            "the user is locked from any address"
        );
        assert_eq!(
            t.check("bob", ip, 1010),
            Err(300),
            "the address is locked for any user"
        );
        assert!(t.check("bob", other, 1010).is_ok());
        assert!(t.check("alice", ip, 1310).is_ok(), "the lock ends");
        // Failures outside the window do not add up.
        for i in 0..10 {
            t.failure("carol", other, 2000 + i * 130);
        }
        assert!(t.check("carol", "192.0.2.9".parse().unwrap(), 3300).is_ok());
    }

    #[test]
    fn concurrent_attempts_cannot_outrun_the_limit() {
        // 100 threads reserve at once for one user from one address: only
        // `limit` get to check a password, whatever the interleaving.
        let t = Arc::new(Throttle::new(5, 120, 300));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(100));
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (t, barrier) = (t.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match t.reserve("alice", ip, 1000) {
                        Ok(a) => {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            a.failed();
                            true
                        }
                        Err(_) => false,
                    }
                })
            })
            .collect();
        let evaluated = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(evaluated, 5);
        assert_eq!(t.check("alice", ip, 1001), Err(299), "locked after");
        // Per address too: other usernames from that address are refused.
        assert!(t.reserve("bob", ip, 1001).is_err());
        assert_eq!(
            t.reserve("alice", "192.0.2.2".parse().unwrap(), 1001).err(),
            Some(299),
            "and the user from any address"
        );
    }

    #[test]
    fn a_right_password_after_the_limit_is_not_checked() {
        let t = Throttle::new(3, 120, 300);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| t.reserve("alice", ip, 1000).unwrap())
            .collect();
        // The limit is taken by attempts still running: nothing more is
        // evaluated, right password or not.
        assert_eq!(t.reserve("alice", ip, 1000).err(), Some(BUSY_WAIT));
        for a in held {
            a.failed();
        }
        assert_eq!(t.reserve("alice", ip, 1000).err(), Some(300));
        // After the lockout a right password works and forgives the user.
        let a = t.reserve("alice", ip, 1300).unwrap();
        a.succeeded();
        assert!(t.check("alice", ip, 1300).is_ok());
    }

    #[test]
    fn settled_attempts_free_their_slots() {
        let t = Throttle::new(2, 120, 300);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            t.reserve("alice", ip, 1000).unwrap().cancel();
        }
        // A success frees the address's slot without counting a failure.
        for _ in 0..10 {
            t.reserve("bob", ip, 1000).unwrap().succeeded();
        }
        // Dropped unsettled (the request went away mid-check): a failure.
        drop(t.reserve("carol", ip, 1000).unwrap());
        drop(t.reserve("carol", ip, 1000).unwrap());
        assert_eq!(t.check("carol", ip, 1000), Err(300));
    }

    /// Found by an attacker's review: rotating addresses inside one IPv6
    /// /64 buys no attempts, a long username costs no more than a short
    /// one, cancelled attempts leave nothing behind, and a table filled by
    /// fresh records keeps its lockouts.
    #[test]
    fn records_are_bounded_and_blocks_counted_whole() {
        let t = Throttle::new(2, 120, 300);
        for i in 0..2u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, 9, 9, i));
            t.reserve(&format!("user{i}"), ip, 1000).unwrap().failed();
        }
        let other: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(t.check("user9", other, 1000), Err(300), "the /64 is locked");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(t.check("user9", elsewhere, 1000), Ok(()));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        t.reserve("x", mapped, 1000).unwrap().failed();
        t.reserve("y", mapped, 1000).unwrap().failed();
        assert_eq!(t.check("z", "192.0.2.7".parse().unwrap(), 1000), Err(300));

        let t = Throttle::new(5, 120, 300);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let long = "x".repeat(16 * 1024);
        t.reserve(&long, ip, 1000).unwrap().cancel();
        assert!(t.lock().is_empty(), "a cancelled attempt leaves no record");
        t.reserve(&long, ip, 1000).unwrap().failed();
        // The record holds a hash, never the 16 KiB name.
        assert!(std::mem::size_of::<Key>() <= 24);
        assert_eq!(t.lock().len(), 2);
    }

    #[test]
    fn email_and_username_share_one_limit() {
        let d = Directory::new(vec![user("alice", "pw")]).unwrap();
        assert_eq!(d.throttle_key("Alice@Example.com"), "alice");
        assert_eq!(d.throttle_key(" ALICE "), "alice");
        assert_eq!(d.throttle_key("Mallory"), "mallory");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_is_bounded() {
        let gate = Arc::new(HashGate::new(2, 3, std::time::Duration::from_secs(30)));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        // Five get in (two run, three wait); the sixth is turned away at once.
        let jobs: Vec<_> = (0..5)
            .map(|_| {
                let (gate, running, most, hold) =
                    (gate.clone(), running.clone(), most.clone(), hold.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let _ = hold.lock().unwrap().recv();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        while gate.admitted.load(Ordering::Acquire) < 5 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(|| ()).await, Err(Busy));
        for _ in 0..5 {
            release.send(()).unwrap();
        }
        for j in jobs {
            assert_eq!(j.await.unwrap(), Ok(()));
        }
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "never more than two at once"
        );
        assert_eq!(gate.run(|| 7).await, Ok(7), "slots come back");
        let short = Arc::new(HashGate::new(1, 5, std::time::Duration::from_millis(20)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let held = {
            let short = short.clone();
            tokio::spawn(async move {
                short
                    .run(move || {
                        let _ = hold.recv();
                    })
                    .await
            })
        };
        // Until the held job has its permit (admitted is not enough: it
        // may still be waiting for it, and a second job could overtake).
        while short.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(short.run(|| ()).await, Err(Busy), "nobody waits long");
        release.send(()).unwrap();
        assert_eq!(held.await.unwrap(), Ok(()));
    }
}
