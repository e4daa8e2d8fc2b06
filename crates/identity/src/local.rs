//! The built-in user directory (`idp_provider: local`): argon2id password
//! checks that take the same time whether or not the user exists, and login
//! throttling per user and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
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
    /// By lower-cased username and by lower-cased email.
    users: HashMap<String, usize>,
    entries: Vec<LocalUser>,
    /// Verified against when the user does not exist, so both cases cost the same.
    decoy: String,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Directory({} users)", self.entries.len())
    }
}

impl Directory {
    pub fn new(users: Vec<LocalUser>) -> Result<Directory, DirectoryError> {
        let mut map = HashMap::new();
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

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user's identity when the password is right. Slow on purpose
    /// (argon2id): call it off the async runtime.
    pub fn verify(&self, username: &str, password: &str) -> Option<Identity> {
        let user = self
            .users
            .get(&username.trim().to_lowercase())
            .map(|&i| &self.entries[i]);
        let hash = user.map_or(self.decoy.as_str(), |u| u.password_hash.as_str());
        let ok = PasswordHash::new(hash).ok().is_some_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        let user = user.filter(|_| ok)?;
        Some(Identity {
            sub: user.username.clone(),
            email: user.email.clone(),
            name: if user.name.is_empty() {
                user.username.clone()
            } else {
                user.name.clone()
            },
            groups: user.groups.clone(),
            idp: "local".into(),
            claims: serde_json::Map::new(),
        })
    }
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
pub struct Throttle {
    pub limit: usize,
    pub window: u64,
    pub lockout: u64,
    state: Mutex<HashMap<Key, Record>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Ip(IpAddr),
}

#[derive(Debug, Default)]
struct Record {
    failures: Vec<u64>,
    locked_until: u64,
}

/// Most records kept; the oldest are dropped past this (memory stays bounded
/// whatever an attacker sends).
const MAX_RECORDS: usize = 100_000;

impl Throttle {
    pub fn new(limit: usize, window: u64, lockout: u64) -> Throttle {
        Throttle {
            limit,
            window,
            lockout,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, ip: IpAddr) -> [Key; 2] {
        [Key::User(user.trim().to_lowercase()), Key::Ip(ip)]
    }

    /// `Err(seconds)` while this user or address must wait.
    pub fn check(&self, user: &str, ip: IpAddr, now: u64) -> Result<(), u64> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let wait = Self::keys(user, ip)
            .iter()
            .filter_map(|k| state.get(k))
            .map(|r| r.locked_until.saturating_sub(now))
            .max()
            .unwrap_or(0);
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    pub fn failure(&self, user: &str, ip: IpAddr, now: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() >= MAX_RECORDS {
            state.retain(|_, r| {
                r.locked_until > now || r.failures.iter().any(|&t| t + self.window > now)
            });
            if state.len() >= MAX_RECORDS {
                state.clear();
            }
        }
        for key in Self::keys(user, ip) {
            let r = state.entry(key).or_default();
            r.failures.retain(|&t| t + self.window > now);
            r.failures.push(now);
            if r.failures.len() >= self.limit {
                r.locked_until = now + self.lockout;
                r.failures.clear();
            }
        }
    }

    pub fn success(&self, user: &str, ip: IpAddr) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.remove(&Key::User(user.trim().to_lowercase()));
        let _ = ip; // A shared address (NAT) keeps its record: one success must not unlock it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
