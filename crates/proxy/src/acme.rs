//! Automatic certificates (`autocert`): one certificate per host from an
//! ACME CA (RFC 8555) through `instant-acme`, proved with TLS-ALPN-01 on the
//! TLS listener (RFC 8737) or HTTP-01 on `http_redirect_addr`, kept in
//! `autocert_dir`, renewed when a third of its life is left.
//!
//! - [`Certs`] is what the handshake and the redirect listener read: the
//!   certificates obtained, and the answers to challenges in flight.
//! - [`start`] runs the manager: it loads what `autocert_dir` holds, orders
//!   what is missing or due, and retries failures with a growing delay
//!   (5 s doubling up to an hour; at least a minute after a refused
//!   validation) while the certificate in force keeps serving. A new
//!   configuration hands it new hosts and settings.
//!
//! Why `instant-acme`: it is an ACME client only (orders, challenges,
//! EAB, custom HTTP client for a private CA), so serving the challenges,
//! storage and renewal stay with gatehouse's own listeners, resolver and
//! reload; `rustls-acme` would bring its own acceptor and cache loop, a
//! second TLS front beside the one routes and client certificates use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use gatehouse_config::Autocert;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// The most one order (with its challenges and the certificate's
/// download) may take.
const ORDER_TIME: Duration = Duration::from_secs(300);

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// What the handshake and the HTTP-01 listener read.
#[derive(Default)]
pub struct Certs {
    /// Certificates obtained, by host.
    issued: ArcSwap<HashMap<String, Issued>>,
    /// TLS-ALPN-01 answers in flight, by host.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 answers in flight: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// The store instances share, and the sealer of what goes there: an
    /// HTTP-01 check that reaches this instance for another's order is
    /// answered from there.
    shared: std::sync::OnceLock<SharedStore>,
}

/// The shared store and the sealer of everything autocert puts there.
type SharedStore = (
    Arc<gatehouse_identity::store::Counted>,
    Arc<gatehouse_identity::cookie::Sealer>,
);

#[derive(Clone)]
struct Issued {
    key: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Issued {
    /// Due for renewal: a third of its life or less is left.
    fn due(&self, now: SystemTime) -> bool {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        match self.not_after.duration_since(now) {
            Ok(left) => left < life / 3,
            Err(_) => true,
        }
    }
}

impl Certs {
    /// The certificate obtained for `host` (lower case), if any.
    pub fn for_host(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.issued.load().get(host).map(|i| i.key.clone())
    }

    /// The TLS-ALPN-01 answer for `host`, while its challenge is open.
    pub fn challenge(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.alpn).get(host).cloned()
    }

    /// The HTTP-01 answer for `token`, while its challenge is open here
    /// or, with a shared store, at another instance.
    pub async fn http_answer(&self, token: &str) -> Option<String> {
        use gatehouse_identity::store::SessionStore;
        if let Some(a) = lock(&self.http).get(token).cloned() {
            return Some(a);
        }
        // Tokens are base64url: nothing else is looked up.
        if token.is_empty()
            || token.len() > 128
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let (store, sealer) = self.shared.get()?;
        let got = store
            .get_shared(&format!("acme-http01:{token}"))
            .await
            .ok()??;
        open_http_answer(sealer, token, &got)
    }

    fn put(&self, host: &str, issued: Issued) {
        let mut map = HashMap::clone(&self.issued.load());
        map.insert(host.to_string(), issued);
        self.issued.store(Arc::new(map));
    }

    fn get(&self, host: &str) -> Option<Issued> {
        self.issued.load().get(host).cloned()
    }

    /// Keeps only the certificates of `hosts`.
    fn retain(&self, hosts: &[String]) {
        let current = self.issued.load();
        if current.keys().all(|h| hosts.contains(h)) {
            return;
        }
        let mut map = HashMap::clone(&current);
        map.retain(|h, _| hosts.contains(h));
        self.issued.store(Arc::new(map));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the manager works on: the settings and the hosts still to cover.
pub type Plan = Option<Arc<Autocert>>;

/// What instances sharing a store (Redis) share: the account and the
/// certificates, sealed with the shared secret, and a lease per order so
/// one instance orders what all serve.
pub struct Shared {
    pub store: Arc<gatehouse_identity::store::Counted>,
    pub key: [u8; 32],
}

/// Starts the manager on the current Tokio runtime; send it each new
/// configuration's plan.
pub fn start(certs: Arc<Certs>, shared: Option<Shared>, plan: Plan) -> Option<watch::Sender<Plan>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = watch::channel(plan);
    let shared = shared.filter(|s| {
        use gatehouse_identity::store::SessionStore;
        s.store.shares()
    });
    let shared = shared.map(|s| {
        (
            s.store,
            Arc::new(gatehouse_identity::cookie::Sealer::new(&s.key)),
        )
    });
    if let Some(s) = &shared {
        let _ = certs.shared.set(s.clone());
    }
    handle.spawn(run(certs, shared, rx));
    Some(tx)
}

/// Failures of one host: how many in a row, and when to try again.
struct Failing {
    count: u32,
    /// Of which the CA refused (a validation failed): the challenge type
    /// alternates with these, not with unreachable CAs.
    refused: u32,
    next: Instant,
}

struct Manager {
    certs: Arc<Certs>,
    /// The store other instances share, and the sealer of what goes there.
    shared: Option<SharedStore>,
    /// The account, for the directory URL it was made on.
    account: Option<(String, Account)>,
    failing: HashMap<String, Failing>,
    /// When the last orders were placed (at most [`ORDERS_PER_HOUR`]).
    orders: std::collections::VecDeque<Instant>,
    /// The CA said `rateLimited`: no order before this.
    paused_until: Option<Instant>,
}

/// Orders placed in any hour, whatever the hosts: a few dozen names that
/// can never be validated must not use up the account's allowance
/// (Let's Encrypt: 300 new orders per 3 hours) and starve renewals.
const ORDERS_PER_HOUR: usize = 60;

async fn run(certs: Arc<Certs>, shared: Option<SharedStore>, mut rx: watch::Receiver<Plan>) {
    let mut m = Manager {
        certs,
        shared,
        account: None,
        failing: HashMap::new(),
        orders: std::collections::VecDeque::new(),
        paused_until: None,
    };
    loop {
        let plan = rx.borrow_and_update().clone();
        let mut wait = Duration::from_secs(60);
        // Certificates of hosts no longer served (or of autocert switched
        // off) are dropped, not served unrenewed.
        m.certs
            .retain(plan.as_ref().map_or(&[][..], |p| &p.hosts[..]));
        if let Some(plan) = plan {
            m.load_stored(&plan);
            let public = is_public_ca(&plan.directory_url);
            for host in plan.hosts.iter().filter(|h| orderable(h)) {
                if public && !publicly_issuable(host) {
                    continue;
                }
                let now = SystemTime::now();
                if m.certs.get(host).is_some_and(|i| !i.due(now)) {
                    m.failing.remove(host);
                    continue;
                }
                if let Some(f) = m.failing.get(host) {
                    let left = f.next.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        wait = wait.min(left);
                        continue;
                    }
                }
                let (attempt, refused) =
                    m.failing.get(host).map_or((0, 0), |f| (f.count, f.refused));
                if let Some(until) = m.paused_until {
                    let left = until.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        wait = wait.min(left);
                        break;
                    }
                    m.paused_until = None;
                }
                // Another instance may have it already, or be ordering it.
                if m.take_shared(&plan, host).await {
                    m.failing.remove(host);
                    continue;
                }
                let lease = match m.lease(&plan, host).await {
                    Ok(lease) => lease,
                    Err(()) => {
                        wait = wait.min(SHARED_WAIT);
                        continue;
                    }
                };
                let hour_ago = Instant::now().checked_sub(Duration::from_secs(3600));
                while m
                    .orders
                    .front()
                    .is_some_and(|t| hour_ago.is_some_and(|h| *t < h))
                {
                    m.orders.pop_front();
                }
                if m.orders.len() >= ORDERS_PER_HOUR {
                    if let Some(first) = m.orders.front() {
                        wait = wait.min(
                            (*first + Duration::from_secs(3600))
                                .saturating_duration_since(Instant::now()),
                        );
                    }
                    break;
                }
                m.orders.push_back(Instant::now());
                // One order at most ORDER_TIME: a stalled CA holds up no
                // other host for longer.
                let ordered =
                    tokio::time::timeout(ORDER_TIME, m.obtain(&plan, host, refused)).await;
                let ordered = ordered.unwrap_or_else(|_| {
                    Err(failure(
                        format!("the order took longer than {ORDER_TIME:?}"),
                        false,
                    ))
                });
                if let (Some((store, _)), Some(l)) = (&m.shared, lease) {
                    use gatehouse_identity::store::SessionStore;
                    let _ = store.release(l).await;
                }
                match ordered {
                    Ok((chain, key)) => {
                        m.failing.remove(host);
                        tracing::info!(host, "autocert: certificate obtained");
                        m.to_shared(&plan, host, &chain, &key).await;
                    }
                    Err(e) => {
                        let count = attempt + 1;
                        let mut delay = Duration::from_secs(5)
                            .saturating_mul(1 << count.min(10))
                            .min(Duration::from_secs(3600));
                        if e.rate_limited {
                            m.paused_until = Some(Instant::now() + Duration::from_secs(3600));
                            tracing::warn!(
                                host,
                                "autocert: the CA says too many orders; none for an hour"
                            );
                        }
                        if e.refused {
                            // Let's Encrypt allows 5 failed validations per
                            // host an hour: 5, 10, 20, 40, 60 minutes apart.
                            let r = (refused + 1).min(5);
                            delay = delay
                                .max(Duration::from_secs(300).saturating_mul(1 << (r - 1)))
                                .min(Duration::from_secs(3600));
                        }
                        let serving = if m.certs.get(host).is_some() {
                            "the certificate in force keeps serving"
                        } else {
                            "the self-signed certificate serves meanwhile"
                        };
                        tracing::warn!(host, error = %e.message, retry_in = ?delay, "autocert: no certificate yet; {serving}");
                        m.failing.insert(
                            host.clone(),
                            Failing {
                                count,
                                refused: refused + u32::from(e.refused),
                                next: Instant::now() + delay,
                            },
                        );
                        wait = wait.min(delay);
                    }
                }
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A failure, and whether the CA refused (a validation or an order) rather
/// than could not be reached.
struct Failure {
    message: String,
    refused: bool,
    /// The CA said `rateLimited`: every order waits.
    rate_limited: bool,
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Failure {
        let rate_limited = matches!(&e, instant_acme::Error::Api(p)
            if p.r#type.as_deref().is_some_and(|t| t.ends_with(":rateLimited")));
        Failure {
            refused: matches!(e, instant_acme::Error::Api(_)),
            rate_limited,
            message: e.to_string(),
        }
    }
}

fn failure(message: impl Into<String>, refused: bool) -> Failure {
    Failure {
        message: message.into(),
        refused,
        rate_limited: false,
    }
}

/// The challenge answers of one order, withdrawn when it ends however it
/// ends (an order cut by [`ORDER_TIME`] too).
struct Answers<'a> {
    certs: &'a Certs,
    host: String,
    tokens: Vec<String>,
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        lock(&self.certs.alpn).remove(&self.host);
        let mut http = lock(&self.certs.http);
        for t in &self.tokens {
            http.remove(t);
        }
    }
}

impl Manager {
    /// Certificates `autocert_dir` holds for hosts not in memory yet.
    fn load_stored(&self, plan: &Autocert) {
        for host in plan.hosts.iter().filter(|h| orderable(h)) {
            if self.certs.get(host).is_some() {
                continue;
            }
            let (crt, key) = cert_paths(plan, host);
            let (Ok(chain), Ok(key)) = (std::fs::read(&crt), std::fs::read(&key)) else {
                continue;
            };
            match issued(&chain, &key, host) {
                Ok(i) => {
                    tracing::info!(host, path = %crt.display(), "autocert: certificate loaded");
                    self.certs.put(host, i);
                }
                Err(e) => {
                    tracing::warn!(host, path = %crt.display(), error = %e, "autocert: stored certificate not usable; a new one is ordered")
                }
            }
        }
    }

    async fn account(&mut self, plan: &Autocert) -> Result<Account, Failure> {
        if let Some((url, a)) = &self.account
            && *url == plan.directory_url
        {
            return Ok(a.clone());
        }
        let http = http_client(plan).map_err(|e| failure(e, false))?;
        let path = plan
            .dir
            .join(format!("account-{}.json", short_hash(&plan.directory_url)));
        // A new account only when there is none: an unreadable file is an
        // error (a new account would lose the old one, and burn a
        // one-time external account binding).
        let stored = match std::fs::read(&path) {
            Ok(b) => Some(
                serde_json::from_slice::<AccountCredentials>(&b).map_err(|e| {
                    failure(
                        format!("{} is not an ACME account: {e}", path.display()),
                        false,
                    )
                })?,
            ),
            // None here: perhaps another instance made one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.shared_account(plan).await,
            Err(e) => {
                return Err(failure(
                    format!("cannot read {}: {e}", path.display()),
                    false,
                ));
            }
        };
        let account = match stored {
            Some(creds) => {
                Account::builder_with_http(Box::new(http))
                    .from_credentials(creds)
                    .await?
            }
            None => {
                let contact = plan.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let eab = plan
                    .eab
                    .as_ref()
                    .map(|(id, key)| ExternalAccountKey::new(id.clone(), key));
                let (account, creds) = Account::builder_with_http(Box::new(http))
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        plan.directory_url.clone(),
                        eab.as_ref(),
                    )
                    .await?;
                // Kept in memory whatever happens on disk: a failed save
                // must not make every retry create another account.
                let saved = serde_json::to_vec(&creds)
                    .map_err(std::io::Error::other)
                    .and_then(|json| crate::private_file::write(&path, &json));
                if let Err(e) = saved {
                    tracing::warn!(path = %path.display(), error = %e, "autocert: cannot keep the ACME account on disk; a restart creates another");
                }
                self.share_account(plan, &creds).await;
                tracing::info!(directory = %plan.directory_url, "autocert: ACME account created");
                account
            }
        };
        self.account = Some((plan.directory_url.clone(), account.clone()));
        Ok(account)
    }

    /// Orders and installs a certificate for `host`: with
    /// `http_redirect_addr`, HTTP-01 first and TLS-ALPN-01 after every
    /// other refusal; without it, TLS-ALPN-01.
    async fn obtain(
        &mut self,
        plan: &Autocert,
        host: &str,
        refused: u32,
    ) -> Result<(String, String), Failure> {
        let account = self.account(plan).await?;
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        // Several instances share the work: only HTTP-01 answers can be
        // shared (a TLS-ALPN-01 check may reach another instance).
        let prefer = if plan.http01 && (refused.is_multiple_of(2) || self.shared.is_some()) {
            ChallengeType::Http01
        } else {
            ChallengeType::TlsAlpn01
        };
        let mut answers = Answers {
            certs: &self.certs,
            host: host.to_string(),
            tokens: Vec::new(),
        };
        let result = async {
            let mut authorizations = order.authorizations();
            while let Some(a) = authorizations.next().await {
                let mut a = a?;
                match a.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(failure(format!("authorization {other:?}"), true)),
                }
                let offered = |t: &ChallengeType| a.challenges.iter().any(|c| c.r#type == *t);
                let kind = if offered(&prefer) {
                    prefer.clone()
                } else if plan.http01 && offered(&ChallengeType::Http01) {
                    ChallengeType::Http01
                } else if offered(&ChallengeType::TlsAlpn01) {
                    ChallengeType::TlsAlpn01
                } else {
                    return Err(failure(
                        "the CA offers no TLS-ALPN-01 or HTTP-01 challenge",
                        true,
                    ));
                };
                let name = if kind == ChallengeType::Http01 {
                    "http-01"
                } else {
                    "tls-alpn-01"
                };
                tracing::info!(
                    host,
                    challenge = name,
                    "autocert: answering the CA's challenge"
                );
                let mut challenge = a
                    .challenge(kind.clone())
                    .ok_or_else(|| failure("challenge vanished", true))?;
                let answer = challenge.key_authorization();
                match kind {
                    ChallengeType::Http01 => {
                        lock(&answers.certs.http)
                            .insert(challenge.token.clone(), answer.as_str().to_string());
                        answers.tokens.push(challenge.token.clone());
                        // The CA may reach another instance behind the same
                        // name: the answer is shared while the order lasts.
                        if let Some((store, sealer)) = &self.shared {
                            use gatehouse_identity::store::SessionStore;
                            let _ = store
                                .put_shared(
                                    &format!("acme-http01:{}", challenge.token),
                                    seal_http_answer(sealer, &challenge.token, answer.as_str())
                                        .as_bytes(),
                                    ORDER_TIME,
                                )
                                .await;
                        }
                    }
                    _ => {
                        let cert = alpn_certificate(host, answer.digest().as_ref())
                            .map_err(|e| failure(e, false))?;
                        lock(&answers.certs.alpn).insert(host.to_string(), cert);
                    }
                }
                challenge.set_ready().await?;
            }
            let retry = RetryPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .timeout(Duration::from_secs(90));
            let status = order.poll_ready(&retry).await?;
            if status != OrderStatus::Ready {
                return Err(failure(
                    format!("the order is {status:?} (validation refused)"),
                    true,
                ));
            }
            Ok(())
        }
        .await;
        // The answers are open only while the CA checks them.
        drop(answers);
        result?;
        let key = rcgen::KeyPair::generate().map_err(|e| failure(e.to_string(), false))?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
            .map_err(|e| failure(e.to_string(), false))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| failure(e.to_string(), false))?;
        order.finalize_csr(csr.der()).await?;
        let retry = RetryPolicy::new().timeout(Duration::from_secs(90));
        let chain = order.poll_certificate(&retry).await?;
        let key_pem = key.serialize_pem();
        let got = issued(chain.as_bytes(), key_pem.as_bytes(), host)
            .map_err(|e| failure(format!("the CA's certificate: {e}"), true))?;
        let (crt_path, key_path) = cert_paths(plan, host);
        if let Err(e) = crate::private_file::write(&key_path, key_pem.as_bytes())
            .and_then(|()| crate::private_file::write(&crt_path, chain.as_bytes()))
        {
            tracing::warn!(host, dir = %plan.dir.display(), error = %e, "autocert: cannot keep the certificate on disk; it serves from memory");
        }
        self.certs.put(host, got);
        Ok((chain, key_pem))
    }

    /// The account another instance made (kept on disk here too).
    async fn shared_account(&self, plan: &Autocert) -> Option<AccountCredentials> {
        use gatehouse_identity::store::SessionStore;
        let (store, sealer) = self.shared.as_ref()?;
        let name = format!("acme:{}:account", short_hash(&plan.directory_url));
        let sealed = store.get_shared(&name).await.ok()??;
        let json = sealer.open(SEAL_PURPOSE, std::str::from_utf8(&sealed).ok()?)?;
        let creds = serde_json::from_slice::<AccountCredentials>(&json).ok()?;
        let path = plan
            .dir
            .join(format!("account-{}.json", short_hash(&plan.directory_url)));
        let _ = crate::private_file::write(&path, &json);
        tracing::info!("autocert: ACME account from the shared store");
        Some(creds)
    }

    async fn share_account(&self, plan: &Autocert, creds: &AccountCredentials) {
        use gatehouse_identity::store::SessionStore;
        let Some((store, sealer)) = &self.shared else {
            return;
        };
        let Ok(json) = serde_json::to_vec(creds) else {
            return;
        };
        let name = format!("acme:{}:account", short_hash(&plan.directory_url));
        let ten_years = Duration::from_secs(10 * 365 * 86400);
        let _ = store
            .put_shared(
                &name,
                sealer.seal(SEAL_PURPOSE, &json).as_bytes(),
                ten_years,
            )
            .await;
    }

    /// A certificate another instance obtained (not due), installed here.
    async fn take_shared(&self, plan: &Autocert, host: &str) -> bool {
        use gatehouse_identity::store::SessionStore;
        let Some((store, sealer)) = &self.shared else {
            return false;
        };
        let Ok(Some(sealed)) = store.get_shared(&shared_name(plan, host)).await else {
            return false;
        };
        let Some(bundle) = std::str::from_utf8(&sealed)
            .ok()
            .and_then(|s| sealer.open(SEAL_PURPOSE, s))
            .and_then(|b| serde_json::from_slice::<Bundle>(&b).ok())
        else {
            return false;
        };
        let Ok(got) = issued(bundle.chain.as_bytes(), bundle.key.as_bytes(), host) else {
            return false;
        };
        if got.due(SystemTime::now()) {
            return false;
        }
        let (crt, key) = cert_paths(plan, host);
        let _ = crate::private_file::write(&key, bundle.key.as_bytes())
            .and_then(|()| crate::private_file::write(&crt, bundle.chain.as_bytes()));
        self.certs.put(host, got);
        tracing::info!(host, "autocert: certificate from the shared store");
        true
    }

    /// The right to order `host`'s certificate now: `Ok(None)` without a
    /// shared store (or with one that cannot be reached: ordering beats
    /// serving nothing), `Err` while another instance holds it.
    async fn lease(
        &self,
        plan: &Autocert,
        host: &str,
    ) -> Result<Option<gatehouse_identity::store::Lease>, ()> {
        use gatehouse_identity::store::SessionStore;
        let Some((store, _)) = &self.shared else {
            return Ok(None);
        };
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            shared_name(plan, host).as_bytes(),
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&d.as_ref()[..16]);
        let id = gatehouse_identity::session::SessionId(id);
        match store.lease(&id, ORDER_TIME + Duration::from_secs(60)).await {
            Ok(Some(l)) => Ok(Some(l)),
            Ok(None) => {
                tracing::debug!(
                    host,
                    "autocert: another instance is ordering this certificate"
                );
                Err(())
            }
            Err(_) => Ok(None),
        }
    }

    /// Shares what was obtained, sealed, until it expires.
    async fn to_shared(&self, plan: &Autocert, host: &str, chain: &str, key: &str) {
        use gatehouse_identity::store::SessionStore;
        let Some((store, sealer)) = &self.shared else {
            return;
        };
        let Some(i) = self.certs.get(host) else {
            return;
        };
        let ttl = i
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let Ok(json) = serde_json::to_vec(&Bundle {
            chain: chain.to_string(),
            key: key.to_string(),
        }) else {
            return;
        };
        let sealed = sealer.seal(SEAL_PURPOSE, &json);
        if let Err(e) = store
            .put_shared(&shared_name(plan, host), sealed.as_bytes(), ttl)
            .await
        {
            tracing::warn!(host, error = %e, "autocert: cannot share the certificate; other instances order their own");
        }
    }
}

/// How long an instance waits while another orders the same certificate.
const SHARED_WAIT: Duration = Duration::from_secs(5);

const SEAL_PURPOSE: &str = "gatehouse autocert";

/// An HTTP-01 answer as shared with other instances: sealed, and bound to
/// its token, so whoever can write to the store cannot make an instance
/// answer a CA's check for an order of their own.
fn seal_http_answer(
    sealer: &gatehouse_identity::cookie::Sealer,
    token: &str,
    answer: &str,
) -> String {
    sealer.seal(&http_answer_purpose(token), answer.as_bytes())
}

/// The answer for `token` another instance shared, if it is one it sealed
/// for that token (a key authorization starts with its token).
fn open_http_answer(
    sealer: &gatehouse_identity::cookie::Sealer,
    token: &str,
    stored: &[u8],
) -> Option<String> {
    let plain = sealer.open(
        &http_answer_purpose(token),
        std::str::from_utf8(stored).ok()?,
    )?;
    let answer = String::from_utf8(plain).ok()?;
    let thumbprint = answer.strip_prefix(token)?.strip_prefix('.')?;
    (!thumbprint.is_empty()).then_some(answer)
}

fn http_answer_purpose(token: &str) -> String {
    format!("gatehouse autocert http-01 {token}")
}

/// A certificate and its key, as instances share them (sealed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Bundle {
    chain: String,
    key: String,
}

fn shared_name(plan: &Autocert, host: &str) -> String {
    format!("acme:{}:{host}", short_hash(&plan.directory_url))
}

/// The self-signed TLS-ALPN-01 answer (RFC 8737): the host as its only
/// name and the critical acmeIdentifier extension holding the digest.
fn alpn_certificate(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// A stored or issued chain and key, checked: it parses, its key matches,
/// and its leaf names `host`.
fn issued(chain_pem: &[u8], key_pem: &[u8], host: &str) -> Result<Issued, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("chain: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key: {e}"))?;
    let leaf = chain.first().ok_or("no certificate")?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !names.iter().any(|n| n == host) {
        return Err(format!("it names {names:?}, not {host}"));
    }
    let validity = parsed.validity();
    let at = |t: &x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    let (not_before, not_after) = (at(&validity.not_before), at(&validity.not_after));
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| e.to_string())?;
    Ok(Issued {
        key: Arc::new(ck),
        not_before,
        not_after,
    })
}

/// A DNS name autocert may order for and name files after: letters,
/// digits, `-` and `.` only, no empty label, at most 253 bytes.
fn orderable(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Per CA (a staging certificate is never served once production is
/// configured): `certificates/<hash of the directory URL>/<host>.crt`.
/// Let's Encrypt's directories (production and staging): names it can
/// never issue for are not ordered (they would fail forever).
fn is_public_ca(directory_url: &str) -> bool {
    directory_url.contains(".api.letsencrypt.org/")
}

/// A name a public CA can issue for: at least two labels, under no
/// reserved or private suffix.
fn publicly_issuable(host: &str) -> bool {
    const PRIVATE: &[&str] = &[
        ".localhost",
        ".local",
        ".internal",
        ".test",
        ".example",
        ".invalid",
        ".home.arpa",
        ".lan",
        ".corp",
    ];
    host.contains('.') && host != "localhost" && !PRIVATE.iter().any(|s| host.ends_with(s))
}

fn cert_paths(plan: &Autocert, host: &str) -> (PathBuf, PathBuf) {
    let certs = plan
        .dir
        .join("certificates")
        .join(short_hash(&plan.directory_url));
    (
        certs.join(format!("{host}.crt")),
        certs.join(format!("{host}.key")),
    )
}

fn short_hash(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    crate::hex::lower(&d.as_ref()[..8])
}

type Inner = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    BodyWrapper<bytes::Bytes>,
>;

/// Each request to the CA within 30 s to its answer's head, the answer
/// within 1 MiB and never 30 s without data: a stalled or endless CA
/// cannot hold the manager or the process's memory.
struct AcmeHttp(Inner);

const CA_REQUEST_TIME: Duration = Duration::from_secs(30);
const CA_ANSWER_BYTES: usize = 1 << 20;

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<bytes::Bytes>>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                > + Send,
        >,
    > {
        let fut = self.0.request(req);
        Box::pin(async move {
            let resp = tokio::time::timeout(CA_REQUEST_TIME, fut)
                .await
                .map_err(|_| {
                    instant_acme::Error::Other("the CA did not answer within 30 s".into())
                })?
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let resp = resp.map(|b| {
                crate::body::IdleTimeout::new(
                    http_body_util::Limited::new(b, CA_ANSWER_BYTES),
                    CA_REQUEST_TIME,
                )
            });
            Ok(instant_acme::BytesResponse::from(resp))
        })
    }
}

/// The ACME server's client: the system's CAs and `autocert_trusted_ca`.
fn http_client(plan: &Autocert) -> Result<AcmeHttp, String> {
    let tls =
        crate::upstream::system_tls_config_with(&plan.trusted_ca).map_err(|e| e.to_string())?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(AcmeHttp(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_with_a_third_of_the_life_left() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86400);
        let i = Issued {
            key: alpn_certificate("a.localhost", &[0; 32]).unwrap(),
            not_before: t0,
            not_after: t0 + day * 90,
        };
        assert!(!i.due(t0 + day * 59));
        assert!(i.due(t0 + day * 61));
        assert!(i.due(t0 + day * 91));
    }

    #[test]
    fn only_plain_dns_names_are_ordered_or_name_files() {
        for good in ["app.example.com", "a-b.localhost", "x1"] {
            assert!(orderable(good), "{good}");
        }
        for bad in [
            "..",
            "a/../b",
            "a..b",
            ".a",
            "a.",
            "A.example.com",
            "a b",
            "",
            "*.a",
        ] {
            assert!(!orderable(bad), "{bad}");
        }
    }

    #[test]
    fn public_cas_are_not_asked_for_names_they_never_issue() {
        assert!(publicly_issuable("app.example.com"));
        for name in [
            "localhost",
            "app.localhost",
            "db.internal",
            "x",
            "nas.home.arpa",
        ] {
            assert!(!publicly_issuable(name), "{name}");
        }
        assert!(is_public_ca(
            "https://acme-v02.api.letsencrypt.org/directory"
        ));
        assert!(!is_public_ca("https://localhost:14000/dir"));
    }
}
