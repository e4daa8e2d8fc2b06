//! The session behind a request: cookie or programmatic token, looked up
//! within a [`Scope`](super::Scope), refreshed once when its tokens expire.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_identity::cookie::Handle;
use gatehouse_identity::session::{Session, SessionId, unix_now};
use gatehouse_identity::store::SessionStore;
use http::header::HeaderMap;

use super::cookies::{cookie_value, cookie_values};
use super::state::{Auth, IdentityState, LazyOidc, Scope};

/// The signed-in session of a request within `scope`, if any. Anything
/// wrong with the cookie (tampered, expired, unknown, out of scope, store
/// error) means signed out.
pub async fn session(
    auth: &Auth,
    state: &IdentityState,
    headers: &HeaderMap,
    host: &str,
    scope: Scope<'_>,
) -> Option<Arc<Session>> {
    let name = auth.cookie_name(host);
    // A host-only cookie and a `cookie_domain` one may share the name (a
    // few at most are looked at). Two good ones for different sessions are
    // ambiguous, maybe one planted by another site: signed out, never the
    // first.
    let mut found: Option<Arc<Session>> = None;
    for value in cookie_values(headers, name).take(4) {
        if let Some(s) = session_from_handle(auth, state, name, value, host, scope).await {
            match &found {
                Some(f) if f.id != s.id => {
                    tracing::warn!(
                        host,
                        "two different sessions in one request: treated as signed out"
                    );
                    return None;
                }
                Some(_) => {}
                None => found = Some(s),
            }
        }
    }
    found
}

/// What a programmatic-login token is sealed for (never a cookie's name).
pub(super) const TOKEN_PURPOSE: &str = "pomerium_jwt";

/// The session a programmatic-login token (`pomerium_jwt`) stands for: the
/// same server-side session as the browser's, so it ends with it.
pub async fn token_session(
    auth: &Auth,
    state: &IdentityState,
    token: &str,
    host: &str,
    scope: Scope<'_>,
) -> Option<Arc<Session>> {
    session_from_handle(auth, state, TOKEN_PURPOSE, token, host, scope).await
}

/// True when the request carries this host's session cookie.
pub fn has_session_cookie(auth: &Auth, headers: &HeaderMap, host: &str) -> bool {
    cookie_value(headers, auth.cookie_name(host)).is_some()
}

pub(super) async fn session_from_handle(
    auth: &Auth,
    state: &IdentityState,
    name: &str,
    value: &str,
    host: &str,
    scope: Scope<'_>,
) -> Option<Arc<Session>> {
    let now = unix_now();
    let handle = Handle::open(&auth.cookie_sealer, name, value, now)?;
    // A copy the store holds in this process is shared, not cloned.
    let found = match state.store.peek(&handle.session) {
        Some(found) => Ok(found),
        None => state.store.get(&handle.session).await,
    };
    let mut session = match found {
        Ok(Some(s)) if s.is_live(now) && auth.in_scope(&s, host, scope, now) => s,
        Ok(_) => return None,
        Err(e) => {
            state.metrics.store_error();
            tracing::warn!(error = %e, "session lookup failed; treating the request as signed out");
            return None;
        }
    };
    // The built-in directory is the source of truth on every request: a
    // removed user is signed out, changed groups apply at once.
    if session.provenance.is_main_sign_in()
        && session.identity.idp == "local"
        && let Some(identity) = auth.directory.as_ref()?.changed(&session.identity)?
    {
        let mut changed = Session::clone(&session);
        changed.identity = identity;
        session = Arc::new(changed);
    }
    match &session.tokens {
        // Rare, and a large future: boxed so that every request's future
        // does not carry its room.
        Some(t) if t.needs_refresh(now) => {
            let owned = Arc::unwrap_or_clone(session);
            Box::pin(refresh(auth, state, owned, now))
                .await
                .map(Arc::new)
        }
        _ => Some(session),
    }
}

/// Refreshes the provider's tokens about a minute before they expire, once
/// per session however many requests arrive together. A permanent refusal
/// ends the session; an outage keeps it until it expires.
pub(super) async fn refresh(
    auth: &Auth,
    state: &IdentityState,
    session: Session,
    now: u64,
) -> Option<Session> {
    let Some(lazy) = auth.oidc_for(&session.identity.idp) else {
        return Some(session);
    };
    let lock = {
        let mut map = state.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(session.id).or_default().clone()
    };
    let result = {
        let _guard = lock.lock().await;
        refresh_locked(lazy, state, session, now).await
    };
    let mut map = state.refreshing.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = map.get(&result.0)
        && Arc::strong_count(l) <= 2
    {
        map.remove(&result.0);
    }
    result.1
}

pub(super) async fn refresh_locked(
    lazy: &LazyOidc,
    state: &IdentityState,
    session: Session,
    now: u64,
) -> (SessionId, Option<Session>) {
    let id = session.id;
    // One refresh across every instance sharing the store: whoever holds
    // the lease refreshes; the others wait for its result a little, then
    // carry on with the session as it is (the identity does not change).
    let lease = match state.store.lease(&id, REFRESH_LEASE).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return (id, wait_for_refresh(state, session, now).await),
        Err(e) => {
            state.metrics.store_error();
            tracing::debug!(error = %e, "no refresh lease: the store is unreachable");
            return (id, Some(session));
        }
    };
    let result = refresh_leased(lazy, state, session, now).await;
    if let Err(e) = state.store.release(lease).await {
        tracing::debug!(error = %e, "cannot release the refresh lease; it expires by itself");
    }
    (id, result)
}

/// How long one instance may hold the right to refresh a session: more
/// than discovery plus the token request can take (10 s each).
pub(super) const REFRESH_LEASE: Duration = Duration::from_secs(30);

/// Another instance is refreshing: its result, if it comes within 2 s.
pub(super) async fn wait_for_refresh(
    state: &IdentityState,
    session: Session,
    now: u64,
) -> Option<Session> {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match state.store.get_fresh(&session.id).await {
            Ok(Some(s)) if !s.is_live(now) => return None,
            Ok(Some(s)) if !s.tokens.as_ref().is_some_and(|t| t.needs_refresh(now)) => {
                return Some(Arc::unwrap_or_clone(s));
            }
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(_) => break,
        }
    }
    Some(session)
}

pub(super) async fn refresh_leased(
    lazy: &LazyOidc,
    state: &IdentityState,
    session: Session,
    now: u64,
) -> Option<Session> {
    let id = session.id;
    // Another request or instance may have refreshed while this one waited.
    let mut current = match state.store.get_fresh(&id).await {
        Ok(Some(s)) if s.is_live(now) => Arc::unwrap_or_clone(s),
        Ok(_) => return None,
        Err(_) => return Some(session),
    };
    let Some(tokens) = current.tokens.clone().filter(|t| t.needs_refresh(now)) else {
        return Some(current);
    };
    let outcome = match lazy.get().await {
        Ok(oidc) => oidc.refresh(&tokens, now).await,
        Err(e) => Err(gatehouse_identity::oidc::RefreshError::Temporary(
            e.to_string(),
        )),
    };
    match outcome {
        Ok(new) => {
            current.tokens = Some(new);
            if let Err(e) = state.store.put(&current).await {
                state.metrics.store_error();
                tracing::warn!(error = %e, "cannot store refreshed tokens");
            }
            state
                .metrics
                .refresh(crate::metrics::RefreshResult::Success);
            tracing::info!(user = %current.identity.sub, "refreshed session tokens");
            Some(current)
        }
        Err(gatehouse_identity::oidc::RefreshError::Permanent(why)) => {
            state
                .metrics
                .refresh(crate::metrics::RefreshResult::Refused);
            tracing::warn!(user = %current.identity.sub, reason = %why, "token refresh refused: ending the session");
            if let Err(e) = state.end_session(&id).await {
                tracing::warn!(error = %e, "cannot delete the session");
            }
            None
        }
        Err(gatehouse_identity::oidc::RefreshError::Temporary(why)) => {
            state
                .metrics
                .refresh(crate::metrics::RefreshResult::TemporaryFailure);
            tracing::warn!(user = %current.identity.sub, reason = %why, "token refresh failed for now; the session continues");
            // Do not hammer a provider that is down: wait before the next try.
            let mut t = tokens;
            t.refreshed_at = now;
            current.tokens = Some(t);
            let _ = state.store.put(&current).await;
            Some(current)
        }
    }
}
