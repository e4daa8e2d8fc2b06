//! The session cookie: a small AEAD-sealed handle (session id + expiry), never
//! the session itself, so cookies stay tiny (no 431s from split cookies) and
//! tokens never leave the server. The same sealing protects the one-time
//! sign-in hand-off parameter.
//!
//! Sealed value = base64url(nonce ‖ AES-256-GCM(plaintext)), with the cookie
//! name (or the purpose) as associated data, so a value minted for one use
//! cannot be replayed as another.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::session::SessionId;

/// Seals and opens values with one 256-bit key.
pub struct Sealer {
    key: LessSafeKey,
    /// Unique in this process, never reused (unlike an address): what
    /// the opened handles are cached under (see [`Handle::open`]).
    id: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cookie_secret must be base64 of 32 bytes")]
pub struct BadKey;

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        // Infallible for a 32-byte key and AES-256-GCM.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM takes a 32-byte key");
        Sealer {
            key: LessSafeKey::new(unbound),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// From a base64 secret as written in `cookie_secret` / `shared_secret`.
    pub fn from_base64(secret: &str) -> Result<Sealer, BadKey> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(secret.trim()))
            .map_err(|_| BadKey)?;
        let key: [u8; 32] = raw.try_into().map_err(|_| BadKey)?;
        Ok(Sealer::new(&key))
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut buf = plaintext.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        // Sealing with a valid key cannot fail for inputs under 64 GiB.
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .expect("AES-GCM seal");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// `None` for anything tampered, truncated, foreign or malformed.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > 4096 {
            return None;
        }
        let mut raw = URL_SAFE_NO_PAD.decode(sealed.trim()).ok()?;
        self.open_raw(purpose, &mut raw).map(<[u8]>::to_vec)
    }

    /// [`Sealer::open`] into `buf` (nothing allocated): `None` also when
    /// the value does not fit in `buf`.
    pub fn open_in<'a>(&self, purpose: &str, sealed: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let n = URL_SAFE_NO_PAD.decode_slice(sealed.trim(), buf).ok()?;
        self.open_raw(purpose, &mut buf[..n])
    }

    /// Opens nonce + ciphertext + tag in place.
    fn open_raw<'a>(&self, purpose: &str, raw: &'a mut [u8]) -> Option<&'a [u8]> {
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, ct) = raw.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), ct)
            .ok()?;
        Some(plain)
    }
}

/// What the session cookie holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    pub session: SessionId,
    /// Unix seconds; an expired handle is "signed out" without a store lookup.
    pub expires_at: u64,
}

impl Handle {
    pub fn seal(&self, sealer: &Sealer, cookie_name: &str) -> String {
        let mut plain = [0u8; 24];
        plain[..16].copy_from_slice(&self.session.0);
        plain[16..].copy_from_slice(&self.expires_at.to_be_bytes());
        sealer.seal(cookie_name, &plain)
    }

    /// The handle in a cookie value, if it is genuine and not expired.
    /// Read on every signed-in request: a value this thread opened lately
    /// is taken from [`opened`] (a client sends the same cookie on each
    /// request; opening it, base64 and AES-GCM, costs ~2,000 instructions).
    pub fn open(sealer: &Sealer, cookie_name: &str, value: &str, now: u64) -> Option<Handle> {
        let handle = match opened::get(sealer, cookie_name, value) {
            Some(handle) => handle,
            None => {
                let handle = Handle::open_sealed(sealer, cookie_name, value)?;
                opened::put(sealer, cookie_name, value, handle);
                handle
            }
        };
        (now < handle.expires_at).then_some(handle)
    }

    /// The handle sealed in `value`, expired or not.
    fn open_sealed(sealer: &Sealer, cookie_name: &str, value: &str) -> Option<Handle> {
        // Opened on the stack. A genuine value is 52 bytes (nonce, 24,
        // tag); anything longer is not one.
        let mut buf = [0u8; 64];
        let plain = sealer.open_in(cookie_name, value, &mut buf)?;
        let plain: [u8; 24] = plain.try_into().ok()?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&plain[..16]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&plain[16..]);
        Some(Handle {
            session: SessionId(id),
            expires_at: u64::from_be_bytes(exp),
        })
    }
}

/// Handles this thread opened lately, by the exact cookie value. Keyed by
/// everything opening reads (the sealer, by its never-reused id: a new
/// `cookie_secret` opens nothing an old one sealed; the cookie name; the
/// value), and filled only by values that opened: a hit answers as opening
/// would. Values are compared in constant time (each cached one is a
/// user's credential). Bounded: 32 entries a thread, values of at most 96
/// bytes (a genuine one is 70).
mod opened {
    use std::cell::RefCell;

    use super::{Handle, Sealer};

    const SLOTS: usize = 32;
    const MAX_VALUE: usize = 96;

    struct Entry {
        sealer: u64,
        name: Box<str>,
        value: Box<str>,
        handle: Handle,
    }

    thread_local! {
        static OPENED: RefCell<[Option<Entry>; SLOTS]> =
            const { RefCell::new([const { None }; SLOTS]) };
    }

    /// A slot from the value's first bytes: a genuine value starts with
    /// its random nonce (a crafted one only misses, it is never put).
    fn slot(value: &str) -> usize {
        let h = value
            .bytes()
            .take(8)
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        h as usize % SLOTS
    }

    pub(super) fn get(sealer: &Sealer, name: &str, value: &str) -> Option<Handle> {
        OPENED.with(|opened| {
            let opened = opened.borrow();
            opened[slot(value)]
                .as_ref()
                .filter(|e| {
                    // The cached value is someone's credential: compared in
                    // constant time (a slot can be steered into).
                    e.sealer == sealer.id
                        && *e.name == *name
                        && aws_lc_rs::constant_time::verify_slices_are_equal(
                            e.value.as_bytes(),
                            value.as_bytes(),
                        )
                        .is_ok()
                })
                .map(|e| e.handle)
        })
    }

    pub(super) fn put(sealer: &Sealer, name: &str, value: &str, handle: Handle) {
        if value.len() > MAX_VALUE {
            return;
        }
        OPENED.with(|opened| {
            opened.borrow_mut()[slot(value)] = Some(Entry {
                sealer: sealer.id,
                name: name.into(),
                value: value.into(),
                handle,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&[7u8; 32])
    }

    /// A value opened once is answered from the thread's cache as opening
    /// would answer it: expiry checked again, nothing for another key (a
    /// rotated `cookie_secret`) or another cookie name, a tampered copy
    /// still refused.
    #[test]
    fn opened_handles_are_answered_as_opening_would() {
        let (s, h, v) = sealed_handle(3);
        assert_eq!(Handle::open(&s, "_pomerium", &v, 1000), Some(h));
        assert_eq!(Handle::open(&s, "_pomerium", &v, 1500), Some(h));
        assert_eq!(Handle::open(&s, "_pomerium", &v, 2000), None);
        let rotated = Sealer::new(&[8u8; 32]);
        assert_eq!(Handle::open(&rotated, "_pomerium", &v, 1000), None);
        // The same key again, a new sealer: opens (by opening, not the cache).
        assert_eq!(Handle::open(&sealer(), "_pomerium", &v, 1000), Some(h));
        assert_eq!(Handle::open(&s, "_other", &v, 1000), None);
        let mut tampered = v.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(Handle::open(&s, "_pomerium", &tampered, 1000), None);
        assert_eq!(Handle::open(&s, "_pomerium", &v, 1000), Some(h));
    }

    /// A sealer, a handle (expiring at 2000) and its `_pomerium` value.
    fn sealed_handle(id: u8) -> (Sealer, Handle, String) {
        let s = sealer();
        let h = Handle {
            session: SessionId([id; 16]),
            expires_at: 2000,
        };
        let v = h.seal(&s, "_pomerium");
        (s, h, v)
    }

    #[test]
    fn round_trip() {
        let (s, h, v) = sealed_handle(1);
        assert!(v.len() < 80, "cookie stays small: {}", v.len());
        assert_eq!(Handle::open(&s, "_pomerium", &v, 1000), Some(h));
    }

    #[test]
    fn expired_tampered_truncated_and_foreign_values_are_signed_out() {
        let s = sealer();
        let h = Handle {
            session: SessionId([1; 16]),
            expires_at: 2000,
        };
        let v = h.seal(&s, "_pomerium");
        assert_eq!(Handle::open(&s, "_pomerium", &v, 2000), None, "expired");
        assert_eq!(
            Handle::open(&s, "_other", &v, 1000),
            None,
            "bound to its cookie name"
        );
        assert_eq!(
            Handle::open(&Sealer::new(&[8u8; 32]), "_pomerium", &v, 1000),
            None,
            "other key"
        );
        assert_eq!(
            Handle::open(&s, "_pomerium", &v[..v.len() - 1], 1000),
            None,
            "truncated"
        );
        // Longer than any genuine value (opened on the stack): signed out.
        let long = h.seal(&s, "_pomerium") + &"A".repeat(200);
        assert_eq!(Handle::open(&s, "_pomerium", &long, 1000), None, "too long");
        let sealed_long = s.seal("_pomerium", &[1u8; 100]);
        assert_eq!(
            Handle::open(&s, "_pomerium", &sealed_long, 1000),
            None,
            "genuine but not a handle"
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&v).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            let t = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(
                Handle::open(&s, "_pomerium", &t, 1000),
                None,
                "bit {i} flipped"
            );
            bytes[i] ^= 1;
        }
        for junk in ["", "x", "!!!", "AAAA", &"A".repeat(10_000)] {
            assert_eq!(Handle::open(&s, "_pomerium", junk, 1000), None);
        }
    }

    #[test]
    fn secrets_are_checked() {
        assert!(Sealer::from_base64("c2hvcnQ=").is_err());
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert!(Sealer::from_base64(&b64).is_ok());
    }
}
