//! `gatehouse quickstart`: a local demo that shows the product as a real
//! deployment runs it. One sign-in on the authenticate host serves every
//! host (the verify app, the console), secrets come from files, and
//! everything is kept in one private directory across runs: the CA a
//! browser was told to trust, the demo password, the console's routes and
//! the user's edits of the configuration. `--reset` starts over.

use std::path::{Path, PathBuf};

use clap::Args;
use gatehouse_proxy::private_file;

use crate::verify_app;

#[derive(Args, Clone)]
pub struct QuickstartArgs {
    /// Port to serve HTTPS on (loopback only).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
    /// Where the quickstart keeps its files (default:
    /// $XDG_STATE_HOME/gatehouse/quickstart, or
    /// ~/.local/state/gatehouse/quickstart).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Start over: a new CA, password, secrets and configuration, and an
    /// empty console.
    #[arg(long)]
    pub reset: bool,
}

/// The verify app run next to the proxy, and what to print once the proxy
/// listens.
pub struct Sidecar {
    pub listener: std::net::TcpListener,
    pub verify: verify_app::VerifyArgs,
    pub banner: String,
}

/// Every file the quickstart writes (and `--reset` removes).
const FILES: &[&str] = &[
    "ca.pem",
    "ca-key.pem",
    "localhost.pem",
    "localhost-key.pem",
    "signing-key.pem",
    "cookie-secret",
    "shared-secret",
    "demo-password",
    "users.yaml",
    "config.yaml",
    "ports",
    "gatehouse-console.redb",
];

/// The hosts of the demo, each named in the certificate (browsers do not
/// take `*.localhost` for its subdomains).
const HOSTS: &[&str] = &[
    "authenticate.localhost",
    "verify.localhost",
    "console.localhost",
    "hello.localhost",
];

/// Writes what is missing in the quickstart's directory and returns the
/// configuration's path and the verify app to run beside the proxy.
pub fn prepare(args: &QuickstartArgs) -> Result<(PathBuf, Sidecar), String> {
    let dir = directory(args.dir.as_deref())?;
    if args.reset {
        // The known files, and temporary files an interrupted write left.
        let leftovers = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n.to_str().is_some_and(|n| n.starts_with(".tmp")));
        let names = FILES
            .iter()
            .map(std::ffi::OsString::from)
            .chain(leftovers)
            .collect::<Vec<_>>();
        for name in names {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("cannot remove {}: {e}", path.display()));
                }
                _ => {}
            }
        }
    }
    let files = Files { dir: dir.clone() };
    let new_ca = files.certificates()?;
    let secret = |name: &str, make: &dyn Fn() -> String| -> Result<(), String> {
        match files.read(name)? {
            Some(_) => Ok(()),
            None => files.write_private(name, &make()),
        }
    };
    secret("signing-key.pem", &gatehouse_assertion::generate_pem)?;
    secret("cookie-secret", &random_base64)?;
    secret("shared-secret", &random_base64)?;
    let password = files.password()?;

    let (listener, config_path) = files.configuration(args.port)?;
    let url = |host: &str| format!("https://{host}.localhost:{}", args.port);
    let banner = format!(
        "
gatehouse quickstart is ready

  open       {verify}
  username   demo
  password   {password}
  config     {config} (edit it: changes apply live)
  files      {dir} (kept across runs; --reset starts over)

What to try:
  1. Open {verify} and sign in (once, on authenticate.localhost):
     the verify app shows the identity gatehouse forwards
     (X-Pomerium-Jwt-Assertion, checked against gatehouse's JWKS).
  2. Open {console}: no second sign-in. Add a route
     there; it serves at once.
  3. Edit the config above (say, hello.localhost's body), save, and open
     {hello}: no restart.
  4. Sign out at {verify}/.pomerium/sign_out: every host
     asks for the password again.

{ca_note}
",
        verify = url("verify"),
        console = url("console"),
        hello = url("hello"),
        config = config_path.display(),
        dir = dir.display(),
        ca_note = if new_ca {
            format!(
                "A new CA made the certificate: the browser warns until it trusts\n{} (valid for localhost names only).",
                dir.join("ca.pem").display()
            )
        } else {
            format!(
                "The browser warns about the certificate until it trusts\n{} (valid for localhost names only).",
                dir.join("ca.pem").display()
            )
        },
    );
    let verify = verify_app::VerifyArgs {
        jwks_url: Some(format!(
            "{}/.well-known/pomerium/jwks.json",
            url("authenticate")
        )),
        jwks_file: None,
        pem_file: None,
        issuer: Some("verify.localhost".into()),
        audience: None,
        ca_file: Some(dir.join("ca.pem")),
    };
    Ok((
        config_path,
        Sidecar {
            listener,
            verify,
            banner,
        },
    ))
}

/// The quickstart's directory, created 0700 when missing. An existing one
/// must be this user's, and no one else may write to it (another user
/// could otherwise have planted a configuration or a CA).
fn directory(dir: Option<&Path>) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = match dir {
        Some(d) => std::path::absolute(d).map_err(|e| format!("{}: {e}", d.display()))?,
        None => default_directory()?,
    };
    // The configuration names its files by path, as YAML text.
    if dir.to_str().is_none() {
        return Err(format!(
            "{} is not UTF-8: name another directory with --dir",
            dir.display()
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    private_file::check_dir(&dir).map_err(|e| e.to_string())?;
    private_file::check_ancestors(&dir).map_err(|above| {
        format!(
            "{} is above the quickstart's directory and others may change it: name a directory under your home with --dir",
            above.display()
        )
    })?;
    Ok(dir)
}

/// `$XDG_STATE_HOME/gatehouse/quickstart`, else
/// `~/.local/state/gatehouse/quickstart` (the XDG default).
fn default_directory() -> Result<PathBuf, String> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").and_then(absolute) {
        return Ok(state.join("gatehouse/quickstart"));
    }
    match std::env::var_os("HOME").and_then(absolute) {
        Some(home) => Ok(home.join(".local/state/gatehouse/quickstart")),
        None => Err("no HOME or XDG_STATE_HOME: name a directory with --dir".into()),
    }
}

fn random_base64() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

/// The files of one quickstart directory.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file's text, `None` when it does not exist. A link is refused; a
    /// secret others could read (left by an older version) is made private
    /// first: everything here is the user's alone.
    fn read(&self, name: &str) -> Result<Option<String>, String> {
        use std::os::unix::fs::MetadataExt;
        let path = self.path(name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if !meta.is_file() {
            return Err(format!(
                "{} is not a plain file: remove it, or start over with --reset",
                path.display()
            ));
        }
        // Secrets kept from an older, laxer version: made private now.
        let public = name == "ca.pem" || name == "localhost.pem";
        if !public && meta.mode() & 0o077 != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
        }
        let bytes = private_file::read(&path, 1 << 20)
            .ok_or_else(|| format!("cannot read {}", path.display()))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not text: start over with --reset", path.display()))
    }

    fn write_private(&self, name: &str, contents: &str) -> Result<(), String> {
        let path = self.path(name);
        private_file::write(&path, contents.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn write_public(&self, name: &str, contents: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        self.write_private(name, contents)?;
        let path = self.path(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// A CA (kept, so a browser that trusts it keeps trusting it) and a
    /// certificate it signs for the demo's hosts.
    fn certificates(&self) -> Result<bool, String> {
        let kept = match (self.read("ca.pem")?, self.read("ca-key.pem")?) {
            // An older version's CA may lack its name constraints: made
            // anew (the browser must trust the new one).
            (Some(cert), Some(key)) if constrained(&cert) => Some(Ca::load(&key)?),
            _ => None,
        };
        let new_ca = kept.is_none();
        let ca = match kept {
            Some(ca) => ca,
            None => {
                // In an order that a crash at any point leaves something
                // the next run makes anew, never a pair that does not match.
                for name in ["localhost.pem", "localhost-key.pem", "ca.pem"] {
                    let _ = std::fs::remove_file(self.path(name));
                }
                let (ca, cert) = Ca::new()?;
                self.write_private("ca-key.pem", &ca.key_pem())?;
                self.write_public("ca.pem", &cert)?;
                ca
            }
        };
        let have =
            self.read("localhost.pem")?.is_some() && self.read("localhost-key.pem")?.is_some();
        if !have {
            let _ = std::fs::remove_file(self.path("localhost.pem"));
            let (cert, key) = ca.sign(HOSTS)?;
            self.write_private("localhost-key.pem", &key)?;
            self.write_public("localhost.pem", &cert)?;
        }
        Ok(new_ca)
    }

    /// The demo user's password, kept in `demo-password` (the user file
    /// holds its hash); both made anew when either is missing.
    fn password(&self) -> Result<String, String> {
        if let (Some(pw), Some(_)) = (self.read("demo-password")?, self.read("users.yaml")?) {
            let pw = pw.trim().to_string();
            if !pw.is_empty() {
                return Ok(pw);
            }
        }
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let password: String = (0..16)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        let hash = gatehouse_identity::local::hash_password(&password);
        self.write_private(
            "users.yaml",
            &format!(
                "# The quickstart's users (password_hash: `gatehouse hash-password`).
- username: demo
  email: demo@example.com
  name: Demo User
  groups: [demo, admins]
  password_hash: '{hash}'
"
            ),
        )?;
        self.write_private("demo-password", &format!("{password}\n"))?;
        Ok(password)
    }

    /// The configuration, written when missing and rewritten when the port
    /// changed, unless the user edited it: their edits are kept. Returns
    /// the verify app's listener (on the port the configuration names) and
    /// the configuration's path.
    fn configuration(&self, port: u16) -> Result<(std::net::TcpListener, PathBuf), String> {
        let path = self.path("config.yaml");
        // `ports`: the port, the verify app's port and a digest of the
        // configuration as last written (so an edit shows as a difference).
        let recorded = self.read("ports")?.and_then(|s| {
            let mut it = s.split_whitespace();
            let p = it.next()?.parse::<u16>().ok()?;
            let v = it.next()?.parse::<u16>().ok()?;
            Some((p, v, it.next()?.to_string()))
        });
        let existing = self.read("config.yaml")?;
        let edited = match (&existing, &recorded) {
            (Some(text), Some((_, _, digest))) => digest_of(text) != *digest,
            (Some(_), None) => true,
            (None, _) => false,
        };
        // The verify app keeps its port, so an edited configuration still
        // names it.
        let kept = recorded
            .as_ref()
            .and_then(|(_, v, _)| std::net::TcpListener::bind(("127.0.0.1", *v)).ok());
        if edited {
            let Some((p, v, _)) = recorded else {
                return Err(format!(
                    "{} was not written by this quickstart: move it away, or start over with --reset",
                    path.display()
                ));
            };
            if p != port {
                return Err(format!(
                    "{} is edited and serves port {p}: run `gatehouse quickstart --port {p}`, or start over with --reset",
                    path.display()
                ));
            }
            let Some(listener) = kept else {
                return Err(format!(
                    "the verify app's port {v}, named in the edited {}, is taken: free it, or start over with --reset",
                    path.display()
                ));
            };
            return Ok((listener, path));
        }
        let listener = match kept {
            Some(l) => l,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| format!("cannot bind a port for the verify app: {e}"))?,
        };
        let verify_port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let text = self.render(port, verify_port);
        if existing.as_deref() != Some(text.as_str()) {
            self.write_private("config.yaml", &text)?;
        }
        self.write_private(
            "ports",
            &format!("{port} {verify_port} {}\n", digest_of(&text)),
        )?;
        Ok((listener, path))
    }

    /// The configuration the quickstart writes: a deployment in miniature
    /// (an authenticate host, secrets from files), and the same text for
    /// the same ports, so an edit shows as a difference.
    fn render(&self, port: u16, verify_port: u16) -> String {
        // Quoted (JSON strings are YAML): a path with `#` or `: ` stays a path.
        let p = |name: &str| {
            serde_json::to_string(&self.path(name).to_string_lossy()).unwrap_or_default()
        };
        format!(
            "# Written by `gatehouse quickstart`. Edit and save: changes apply live,
# and later runs keep your edits (`gatehouse quickstart --reset` starts over).
address: 127.0.0.1:{port}
# Every host signs in here once; the others get the session by a hand-off.
authenticate_service_url: https://authenticate.localhost:{port}
certificate_file: {cert}
certificate_key_file: {key}
signing_key_file: {signing}
cookie_secret_file: {cookie}
shared_secret_file: {shared}
idp_provider: local
local_users_file: {users}
# The console: routes, policies and headers managed in the browser, applied
# live (kept in gatehouse-console.redb beside this file).
console:
  from: https://console.localhost
  policy:
    allow:
      and:
        - groups: {{has: admins}}
routes:
  # The verify app shows the identity gatehouse forwards
  # (X-Pomerium-Jwt-Assertion), verified against gatehouse's JWKS.
  - from: https://verify.localhost
    to: http://127.0.0.1:{verify_port}
    allow_any_authenticated_user: true
    pass_identity_headers: true
  # A public page served by gatehouse itself.
  - from: https://hello.localhost
    response: {{status: 200, body: \"gatehouse is running\\n\"}}
    allow_public_unauthenticated_access: true
",
            cert = p("localhost.pem"),
            key = p("localhost-key.pem"),
            signing = p("signing-key.pem"),
            cookie = p("cookie-secret"),
            shared = p("shared-secret"),
            users = p("users.yaml"),
        )
    }
}

/// The quickstart's certificate authority.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn rcgen_error(e: rcgen::Error) -> String {
    format!("cannot make the quickstart certificate: {e}")
}

impl Ca {
    /// The CA's description; the same every time, so a kept key signs as
    /// the kept certificate names it.
    fn params() -> Result<rcgen::CertificateParams, String> {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gatehouse quickstart CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        // Trusted in a browser, it can vouch for `localhost` names and
        // loopback addresses only, even if its key ever leaks.
        params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![
                rcgen::GeneralSubtree::DnsName("localhost".into()),
                rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::V4(
                    [127, 0, 0, 0],
                    [255, 0, 0, 0],
                )),
                rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::V6(
                    std::net::Ipv6Addr::LOCALHOST.octets(),
                    [0xff; 16],
                )),
            ],
            excluded_subtrees: Vec::new(),
        });
        set_validity(&mut params);
        Ok(params)
    }

    /// A new CA and its certificate (PEM).
    fn new() -> Result<(Ca, String), String> {
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let params = Ca::params()?;
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        let issuer = rcgen::Issuer::new(params, key);
        Ok((Ca { issuer }, cert.pem()))
    }

    fn load(key_pem: &str) -> Result<Ca, String> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| {
            format!("the quickstart's CA key cannot be read ({e}): start over with --reset")
        })?;
        Ok(Ca {
            issuer: rcgen::Issuer::new(Ca::params()?, key),
        })
    }

    fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// (certificate PEM, key PEM) for `names`.
    fn sign(&self, names: &[&str]) -> Result<(String, String), String> {
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .map_err(rcgen_error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gatehouse quickstart");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Valid from the start of this year for ten years.
fn set_validity(params: &mut rcgen::CertificateParams) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Years of 365.2425 days: a day off at a year's edge is harmless here.
    let year = 1970 + i32::try_from(secs / 31_556_952).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
}

/// The CA certificate carries name constraints (older versions' did not).
fn constrained(cert_pem: &str) -> bool {
    let body: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let Ok(der) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body) else {
        return false;
    };
    // The extension's identifier, id-ce-nameConstraints (2.5.29.30).
    der.windows(5).any(|w| w == [0x06, 0x03, 0x55, 0x1d, 0x1e])
}

/// A digest of the configuration as written, to tell an edit.
fn digest_of(text: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    gatehouse_proxy::hex::lower(d.as_ref())
}
