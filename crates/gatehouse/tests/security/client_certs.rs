//! Client certificates (downstream mTLS) attacked: a decoy intermediate
//! that makes a long chain look short, a chain padded to cost memory, and
//! a certificate no CA of the route vouches for reaching the upstream,
//! and client certificates switched off by a blank CA setting.

use std::path::Path;
use std::process::Command;

use crate::common::mtls::{ClientKind, Pki};
use crate::common::*;

/// Runs a shell script with `openssl` in `dir`.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn client(gh: &Gatehouse, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("app.localhost", gh.addr())
        .timeout(std::time::Duration::from_secs(30))
        .no_proxy();
    if let Some(i) = identity {
        b = b.identity(i);
    }
    b.build().unwrap()
}

async fn status(c: &reqwest::Client, gh: &Gatehouse) -> Result<u16, String> {
    c.get(gh.url("app.localhost", "/"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// A leaf three levels below the root (root → intermediate → second
/// intermediate → leaf) must not pass `max_verify_depth: 2`, even when the
/// client slips in a decoy "second intermediate" whose issuer names the
/// root: the depth is not measured by following names.
#[tokio::test(flavor = "multi_thread")]
async fn a_decoy_intermediate_does_not_shorten_the_chain() {
    let pki = Pki::new();
    let d = pki.dir();
    sh(
        d,
        "
printf 'basicConstraints=critical,CA:true\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > ca.ext
printf 'extendedKeyUsage=clientAuth\\nsubjectAltName=email:deep@example.com\\n' > leaf.ext
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int2.key -subj '/CN=Second Intermediate CA' -out int2.csr 2>/dev/null
openssl x509 -req -in int2.csr -CA intermediate/ca.pem -CAkey intermediate/ca.key -CAcreateserial -days 30 -extfile ca.ext -out int2.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout deep.key -subj '/CN=deep' -out deep.csr 2>/dev/null
openssl x509 -req -in deep.csr -CA int2.pem -CAkey int2.key -CAcreateserial -days 30 -extfile leaf.ext -out deep.pem 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in deep.key -out deep.p8
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout fake.key -subj '/CN=Test Client CA' -days 30 -out fake.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout decoy.key -subj '/CN=Second Intermediate CA' -out decoy.csr 2>/dev/null
openssl x509 -req -in decoy.csr -CA fake.pem -CAkey fake.key -CAcreateserial -days 30 -extfile ca.ext -out decoy.pem 2>/dev/null
",
    );
    let (inter, _) = pki.client(ClientKind::ViaIntermediate);
    // The intermediate is the chain file's second certificate.
    let intermediate = inter
        .split_inclusive("-----END CERTIFICATE-----\n")
        .nth(1)
        .unwrap()
        .to_string();
    let leaf = read(d, "deep.pem");
    let key = read(d, "deep.p8");
    let honest = format!("{leaf}{}{intermediate}", read(d, "int2.pem"));
    let decoyed = format!(
        "{leaf}{}{}{intermediate}",
        read(d, "decoy.pem"),
        read(d, "int2.pem")
    );
    let up = echo_upstream("a").await;
    for enforcement in ["policy_with_default_deny", "reject_connection"] {
        let gh = Gatehouse::start(&format!(
            "address: 127.0.0.1:{{port}}
downstream_mtls:
  ca_file: {ca}
  enforcement: {enforcement}
  max_verify_depth: 2
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true}}
",
            ca = pki.ca_file().display(),
            up = up.addr
        ));
        // Depth 2 passes: the limit itself works.
        let via = client(&gh, Some(pki.identity(ClientKind::ViaIntermediate)));
        assert_eq!(status(&via, &gh).await, Ok(200), "{enforcement}");
        for (what, chain) in [("honest", &honest), ("decoy", &decoyed)] {
            let id = reqwest::Identity::from_pem(format!("{chain}{key}").as_bytes()).unwrap();
            let got = status(&client(&gh, Some(id)), &gh).await;
            assert!(
                got == Ok(495) || got.is_err(),
                "{enforcement}, {what} chain of depth 3: {got:?}"
            );
        }
    }
}

/// A client cannot make its connection hold a large chain: more than 6
/// certificates or 16 KiB fails the handshake, whatever the enforcement.
#[tokio::test(flavor = "multi_thread")]
async fn a_padded_chain_fails_the_handshake() {
    let pki = Pki::new();
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
downstream_mtls:
  ca_file: {ca}
  enforcement: policy
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true}}
",
        ca = pki.ca_file().display(),
        up = up.addr
    ));
    let (chain, key) = pki.client(ClientKind::Valid);
    let ok = reqwest::Identity::from_pem(format!("{chain}{key}").as_bytes()).unwrap();
    assert_eq!(status(&client(&gh, Some(ok)), &gh).await, Ok(200));
    let junk = pki.other_ca_pem();
    let padded = format!("{chain}{}{key}", junk.repeat(6));
    let id = reqwest::Identity::from_pem(padded.as_bytes()).unwrap();
    let got = status(&client(&gh, Some(id)), &gh).await;
    assert!(got.is_err(), "7 certificates accepted: {got:?}");
}

/// `${pomerium.client_cert_*}` vouch for a certificate upstream: a
/// certificate no CA of the route accepts (here with `enforcement:
/// policy`, where the route lets it through) leaves them empty.
#[tokio::test(flavor = "multi_thread")]
async fn only_a_valid_certificate_is_vouched_for_upstream() {
    let pki = Pki::new();
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
downstream_mtls:
  ca_file: {ca}
  crl_file: {crl}
  enforcement: policy
routes:
  - from: https://app.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
    set_request_headers:
      X-Cert-Fingerprint: '${{pomerium.client_cert_fingerprint}}'
      X-Cert-Email: '${{pomerium.client_cert_san_email}}'
",
        ca = pki.ca_file().display(),
        crl = pki.crl_file().display(),
        up = up.addr
    ));
    for (kind, vouched) in [
        (ClientKind::Valid, true),
        (ClientKind::WrongCa, false),
        (ClientKind::Expired, false),
        (ClientKind::Revoked, false),
    ] {
        let c = client(&gh, Some(pki.identity(kind)));
        let text = c
            .get(gh.url("app.localhost", "/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let echo: serde_json::Value = serde_json::from_str(&text).unwrap();
        let fp = echo["headers"]["x-cert-fingerprint"][0].as_str();
        if vouched {
            assert_eq!(fp, Some(pki.fingerprint(kind).as_str()), "{kind:?}");
            assert_eq!(echo["headers"]["x-cert-email"][0], "alice@example.com");
        } else {
            assert!(fp.is_none_or(str::is_empty), "{kind:?}: {echo}");
            assert!(
                echo["headers"]["x-cert-email"][0]
                    .as_str()
                    .is_none_or(str::is_empty),
                "{kind:?}: {echo}"
            );
        }
    }
}

/// A blank `DOWNSTREAM_MTLS_CA_FILE=` (as a deployment template leaves an
/// unused variable) is not set: it must not unset the file's CA and with
/// it every client-certificate check.
#[tokio::test(flavor = "multi_thread")]
async fn a_blank_ca_variable_does_not_switch_client_certificates_off() {
    let pki = Pki::new();
    let up = echo_upstream("a").await;
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
downstream_mtls:
  ca_file: {ca}
  enforcement: reject_connection
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true}}
",
        ca = pki.ca_file().display(),
        up = up.addr
    );
    for var in ["DOWNSTREAM_MTLS_CA_FILE", "DOWNSTREAM_MTLS_CA"] {
        let gh = Gatehouse::start_with_env(tempfile::tempdir().unwrap(), &yaml, &[(var, "")]);
        let got = status(&client(&gh, None), &gh).await;
        assert!(got.is_err(), "{var}=: no certificate, yet {got:?}");
        let (chain, key) = pki.client(ClientKind::Valid);
        let ok = reqwest::Identity::from_pem(format!("{chain}{key}").as_bytes()).unwrap();
        assert_eq!(status(&client(&gh, Some(ok)), &gh).await, Ok(200), "{var}=");
    }
}
