//! A throwaway PKI for client-certificate (downstream mTLS) tests, made
//! with the real `openssl` command-line tool in a temporary directory.
//!
//! [`Pki::new`] builds everything at once:
//!
//! - a self-signed root, "Test Client CA", and its CRL (listing the
//!   [`ClientKind::Revoked`] certificate, nextUpdate in 30 days);
//! - an intermediate, "Test Intermediate CA", issued by the root, and its
//!   own (empty) CRL;
//! - an unrelated self-signed "Other CA";
//! - one client certificate for each [`ClientKind`].
//!
//! Keys are EC P-256, written as PKCS#8 PEM (`BEGIN PRIVATE KEY`), so
//! rustls and reqwest load them. Certificates are signed with `openssl ca`
//! (not `openssl x509 -req`), which takes explicit start and end dates
//! and keeps the database needed for revocation and CRLs; OpenSSL 3.0's
//! `x509 -req` has no `-not_before`.
//!
//! Layout of [`Pki::dir`] (handy when a config wants file paths):
//!
//! ```text
//! root/ca.pem, root/ca.key, root/crl.pem     "Test Client CA"
//! intermediate/ca.pem, …/crl.pem             "Test Intermediate CA"
//! other/ca.pem, other/ca.key                 "Other CA"
//! clients/<kind>.pem                         leaf certificate only
//! clients/<kind>.chain.pem                   leaf, then intermediate if any
//! clients/<kind>.key                         PKCS#8 private key
//! ```
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The kinds of client certificate [`Pki`] makes. Unless said otherwise a
/// certificate is issued by the root "Test Client CA", is valid now
/// (notBefore yesterday, notAfter 30 days from now), has EKU clientAuth
/// and carries Alice's SANs: `email:alice@example.com`,
/// `DNS:alice.example.com`, `URI:spiffe://example.com/alice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Subject `CN=alice`. Good in every way.
    Valid,
    /// Subject `CN=bob`; like `Valid` but with Bob's SANs:
    /// `email:bob@example.com`, `DNS:bob.example.com`,
    /// `URI:spiffe://example.com/bob`.
    Bob,
    /// Subject `CN=alice-expired`; notBefore 2020-01-01, notAfter
    /// 2021-01-01.
    Expired,
    /// Subject `CN=alice-revoked`; revoked, and listed in the root's CRL.
    Revoked,
    /// Subject `CN=alice-wrong-ca`; issued by the self-signed "Other CA".
    WrongCa,
    /// Subject `CN=alice-via-intermediate`; issued by "Test Intermediate
    /// CA" (itself issued by the root). Its chain PEM holds the leaf, then
    /// the intermediate.
    ViaIntermediate,
    /// Subject `CN=alice-server-only`; EKU serverAuth only (no
    /// clientAuth).
    ServerOnly,
}

impl ClientKind {
    /// Every kind, in declaration order.
    pub const ALL: [ClientKind; 7] = [
        ClientKind::Valid,
        ClientKind::Bob,
        ClientKind::Expired,
        ClientKind::Revoked,
        ClientKind::WrongCa,
        ClientKind::ViaIntermediate,
        ClientKind::ServerOnly,
    ];

    /// The file stem under `clients/`, also the subject's CN.
    fn name(self) -> &'static str {
        match self {
            ClientKind::Valid => "alice",
            ClientKind::Bob => "bob",
            ClientKind::Expired => "alice-expired",
            ClientKind::Revoked => "alice-revoked",
            ClientKind::WrongCa => "alice-wrong-ca",
            ClientKind::ViaIntermediate => "alice-via-intermediate",
            ClientKind::ServerOnly => "alice-server-only",
        }
    }
}

/// The PKI; everything lives in a temporary directory removed on drop.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Builds the CAs, every client certificate and the CRLs (about 30
    /// `openssl` runs). Panics, with openssl's stderr, if any run fails.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-mtls-")
            .tempdir()
            .expect("create temp dir for the PKI");
        let base = dir.path();
        std::fs::create_dir(base.join("clients")).expect("create clients/");

        let root = Ca::self_signed(base, "root", "Test Client CA", "1000");
        let other = Ca::self_signed(base, "other", "Other CA", "3000");
        let intermediate = root.intermediate(base, "intermediate", "Test Intermediate CA", "2000");

        let yesterday = asn1_time(SystemTime::now() - Duration::from_secs(24 * 60 * 60));
        let valid = Dates::From(&yesterday);
        for kind in ClientKind::ALL {
            let (ca, dates, eku, who) = match kind {
                ClientKind::Valid => (&root, valid, "clientAuth", "alice"),
                ClientKind::Bob => (&root, valid, "clientAuth", "bob"),
                ClientKind::Expired => (
                    &root,
                    Dates::Between("20200101000000Z", "20210101000000Z"),
                    "clientAuth",
                    "alice",
                ),
                ClientKind::Revoked => (&root, valid, "clientAuth", "alice"),
                ClientKind::WrongCa => (&other, valid, "clientAuth", "alice"),
                ClientKind::ViaIntermediate => (&intermediate, valid, "clientAuth", "alice"),
                ClientKind::ServerOnly => (&root, valid, "serverAuth", "alice"),
            };
            ca.issue_client(base, kind.name(), dates, eku, who);
        }

        root.revoke(&base.join("clients").join("alice-revoked.pem"));
        root.gen_crl();
        intermediate.gen_crl();

        Pki { dir }
    }

    /// The temporary directory holding everything (see the module docs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The root "Test Client CA" certificate, PEM.
    pub fn ca_pem(&self) -> String {
        read(&self.ca_file())
    }

    /// Path of the root "Test Client CA" certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("root").join("ca.pem")
    }

    /// The unrelated self-signed "Other CA" certificate, PEM.
    pub fn other_ca_pem(&self) -> String {
        read(&self.dir().join("other").join("ca.pem"))
    }

    /// The root's CRL, PEM: lists [`ClientKind::Revoked`]; nextUpdate in
    /// 30 days. It says nothing about certificates the intermediate
    /// issued (see [`Pki::intermediate_crl_pem`]).
    pub fn crl_pem(&self) -> String {
        read(&self.crl_file())
    }

    /// Path of the root's CRL (PEM).
    pub fn crl_file(&self) -> PathBuf {
        self.dir().join("root").join("crl.pem")
    }

    /// The intermediate CA's CRL, PEM: revokes nothing; nextUpdate in 30
    /// days. A verifier that treats an unknown revocation status as
    /// failure (rustls' `WebPkiClientVerifier` with CRLs, by default)
    /// rejects [`ClientKind::ViaIntermediate`] with
    /// `UnknownRevocationStatus` unless it has this CRL too.
    pub fn intermediate_crl_pem(&self) -> String {
        read(&self.intermediate_crl_file())
    }

    /// Path of the intermediate CA's CRL (PEM).
    pub fn intermediate_crl_file(&self) -> PathBuf {
        self.dir().join("intermediate").join("crl.pem")
    }

    /// `(certificate chain PEM, PKCS#8 private key PEM)` of a client. The
    /// chain is the leaf alone, except for [`ClientKind::ViaIntermediate`]
    /// where the intermediate follows the leaf.
    pub fn client(&self, kind: ClientKind) -> (String, String) {
        let clients = self.dir().join("clients");
        (
            read(&clients.join(format!("{}.chain.pem", kind.name()))),
            read(&clients.join(format!("{}.key", kind.name()))),
        )
    }

    /// The client's certificate chain and key as a reqwest identity.
    pub fn identity(&self, kind: ClientKind) -> reqwest::Identity {
        let (cert, key) = self.client(kind);
        reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes())
            .unwrap_or_else(|e| panic!("reqwest identity for {kind:?}: {e}"))
    }

    /// Lowercase hex SHA-256 of the leaf certificate's DER, as `openssl
    /// x509 -fingerprint -sha256` computes it (colons removed).
    pub fn fingerprint(&self, kind: ClientKind) -> String {
        let out = openssl(
            self.dir(),
            &[
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                path_str(&self.leaf_file(kind)),
            ],
            None,
        );
        let out = String::from_utf8(out).expect("fingerprint output is UTF-8");
        // "sha256 Fingerprint=AB:CD:…" (OpenSSL 3) or "SHA256 Fingerprint=…".
        let (_, hex) = out
            .trim()
            .split_once('=')
            .unwrap_or_else(|| panic!("unexpected fingerprint output: {out:?}"));
        hex.replace(':', "").to_ascii_lowercase()
    }

    /// Standard base64 (with padding) of the SHA-256 of the leaf's
    /// SubjectPublicKeyInfo DER, computed by piping `openssl x509 -pubkey`
    /// through `openssl pkey -pubin -outform DER`, `openssl dgst -sha256
    /// -binary` and `openssl base64 -A`.
    pub fn spki_hash(&self, kind: ClientKind) -> String {
        let dir = self.dir();
        let leaf = self.leaf_file(kind);
        let pubkey = openssl(
            dir,
            &["x509", "-pubkey", "-noout", "-in", path_str(&leaf)],
            None,
        );
        let der = openssl(dir, &["pkey", "-pubin", "-outform", "DER"], Some(&pubkey));
        let digest = openssl(dir, &["dgst", "-sha256", "-binary"], Some(&der));
        assert_eq!(digest.len(), 32, "SHA-256 digest length");
        let b64 = openssl(dir, &["base64", "-A"], Some(&digest));
        String::from_utf8(b64)
            .expect("base64 output is UTF-8")
            .trim()
            .to_owned()
    }

    /// Path of the client's leaf certificate alone (PEM).
    fn leaf_file(&self, kind: ClientKind) -> PathBuf {
        self.dir()
            .join("clients")
            .join(format!("{}.pem", kind.name()))
    }
}

/// Validity of a certificate `openssl ca` signs.
#[derive(Clone, Copy)]
enum Dates<'a> {
    /// From this time until 30 days from now (`default_days`).
    From(&'a str),
    /// From the first time to the second.
    Between(&'a str, &'a str),
}

/// A CA directory set up for `openssl ca`: `ca.pem`, `ca.key`,
/// `openssl.cnf`, `index.txt`, `serial`, `crlnumber`, `newcerts/`.
struct Ca {
    dir: PathBuf,
}

impl Ca {
    /// Creates `base/name/` with its config and database, and nothing
    /// else.
    fn prepare(base: &Path, name: &str, first_serial: &str) -> Ca {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("newcerts")).expect("create CA dir");
        let dir_s = path_str(&dir);
        assert!(
            !dir_s.contains(['$', '"', '\\', '\n']),
            "awkward temp dir path for an openssl config: {dir_s}"
        );
        let config = format!(
            r#"# Minimal config for `openssl ca` and `openssl req`.
[ ca ]
default_ca = ca_default

[ ca_default ]
dir = {dir_s}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
crl_extensions = crl_ext

[ policy_any ]
commonName = supplied

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ req ]
distinguished_name = req_dn

[ req_dn ]

[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_intermediate ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"#
        );
        write(&dir.join("openssl.cnf"), &config);
        write(&dir.join("index.txt"), "");
        write(&dir.join("serial"), &format!("{first_serial}\n"));
        write(&dir.join("crlnumber"), "01\n");
        Ca { dir }
    }

    /// A self-signed CA in `base/name/`, valid from now for ten years.
    fn self_signed(base: &Path, name: &str, cn: &str, first_serial: &str) -> Ca {
        let ca = Ca::prepare(base, name, first_serial);
        let subj = format!("/CN={cn}");
        openssl(
            &ca.dir,
            &[
                "req",
                "-config",
                path_str(&ca.config()),
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                path_str(&ca.dir.join("ca.key")),
                "-subj",
                &subj,
                "-days",
                "3650",
                "-sha256",
                "-extensions",
                "v3_ca",
                "-out",
                path_str(&ca.dir.join("ca.pem")),
            ],
            None,
        );
        ca
    }

    /// An intermediate CA in `base/name/`, issued by `self` (notBefore
    /// yesterday, notAfter in a year).
    fn intermediate(&self, base: &Path, name: &str, cn: &str, first_serial: &str) -> Ca {
        let ca = Ca::prepare(base, name, first_serial);
        let csr = ca.dir.join("ca.csr");
        new_key_and_csr(&ca.dir, &ca.config(), cn, &ca.dir.join("ca.key"), &csr);
        let yesterday = asn1_time(SystemTime::now() - Duration::from_secs(24 * 60 * 60));
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                path_str(&self.config()),
                "-batch",
                "-notext",
                "-startdate",
                &yesterday,
                "-days",
                "365",
                "-extensions",
                "v3_intermediate",
                "-in",
                path_str(&csr),
                "-out",
                path_str(&ca.dir.join("ca.pem")),
            ],
            None,
        );
        ca
    }

    /// Issues the client certificate `base/clients/name.pem` (with key
    /// `name.key`, and `name.chain.pem`, which adds this CA's certificate
    /// when it is an intermediate). `who` picks the SANs.
    fn issue_client(&self, base: &Path, name: &str, dates: Dates, eku: &str, who: &str) {
        let clients = base.join("clients");
        let key = clients.join(format!("{name}.key"));
        let csr = clients.join(format!("{name}.csr"));
        let cert = clients.join(format!("{name}.pem"));
        let ext = clients.join(format!("{name}.ext"));
        new_key_and_csr(&self.dir, &self.config(), name, &key, &csr);
        write(
            &ext,
            &format!(
                "[ leaf ]\n\
                 basicConstraints = critical, CA:false\n\
                 keyUsage = critical, digitalSignature\n\
                 extendedKeyUsage = {eku}\n\
                 subjectAltName = email:{who}@example.com, DNS:{who}.example.com, URI:spiffe://example.com/{who}\n\
                 subjectKeyIdentifier = hash\n\
                 authorityKeyIdentifier = keyid:always\n"
            ),
        );
        let config = self.config();
        let mut args = vec![
            "ca",
            "-config",
            path_str(&config),
            "-batch",
            "-notext",
            "-extfile",
            path_str(&ext),
            "-extensions",
            "leaf",
            "-in",
            path_str(&csr),
            "-out",
            path_str(&cert),
        ];
        match dates {
            Dates::From(start) => args.extend(["-startdate", start]),
            Dates::Between(start, end) => args.extend(["-startdate", start, "-enddate", end]),
        }
        openssl(&self.dir, &args, None);

        let mut chain = read(&cert);
        if self.is_intermediate() {
            chain.push_str(&read(&self.dir.join("ca.pem")));
        }
        write(&clients.join(format!("{name}.chain.pem")), &chain);
    }

    /// Marks `cert` (issued by this CA) revoked in the database.
    fn revoke(&self, cert: &Path) {
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                path_str(&self.config()),
                "-revoke",
                path_str(cert),
            ],
            None,
        );
    }

    /// Writes `crl.pem` from the database (nextUpdate in 30 days).
    fn gen_crl(&self) {
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                path_str(&self.config()),
                "-gencrl",
                "-crldays",
                "30",
                "-out",
                path_str(&self.dir.join("crl.pem")),
            ],
            None,
        );
    }

    fn config(&self) -> PathBuf {
        self.dir.join("openssl.cnf")
    }

    /// Whether this CA's certificate was issued by another CA (it has a
    /// CSR in its directory) rather than self-signed.
    fn is_intermediate(&self) -> bool {
        self.dir.join("ca.csr").exists()
    }
}

/// Makes a fresh P-256 key (PKCS#8 PEM, unencrypted) at `key` and a CSR
/// for `CN=cn` at `csr`.
fn new_key_and_csr(cwd: &Path, config: &Path, cn: &str, key: &Path, csr: &Path) {
    let subj = format!("/CN={cn}");
    openssl(
        cwd,
        &[
            "req",
            "-config",
            path_str(config),
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path_str(key),
            "-subj",
            &subj,
            "-out",
            path_str(csr),
        ],
        None,
    );
    let pem = read(key);
    if !pem.starts_with("-----BEGIN PRIVATE KEY-----") {
        // Older openssl may write a SEC1 key ("BEGIN EC PRIVATE KEY");
        // convert it to PKCS#8.
        let p8 = openssl(
            cwd,
            &["pkcs8", "-topk8", "-nocrypt", "-in", path_str(key)],
            None,
        );
        std::fs::write(key, p8).expect("write PKCS#8 key");
    }
}

/// Runs `openssl args…` in `cwd`, feeding it `stdin` if given, and returns
/// its stdout. Panics with the command line and stderr if it fails.
fn openssl(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `openssl` (is it installed?): {e}"));
    // Feed stdin from another thread, so a full stdout pipe cannot
    // deadlock the two of us.
    let feeder = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input))
    });
    let out = child.wait_with_output().expect("wait for openssl");
    if let Some(feeder) = feeder {
        feeder
            .join()
            .expect("stdin feeder thread")
            .unwrap_or_else(|e| panic!("write to `openssl {}`: {e}", args.join(" ")));
    }
    if !out.status.success() {
        panic!(
            "`openssl {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

/// `t` as a GeneralizedTime string, `YYYYMMDDHHMMSSZ`, for `openssl ca
/// -startdate` (which stores it as UTCTime when the year allows).
fn asn1_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn write(p: &Path, contents: &str) {
    std::fs::write(p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}
