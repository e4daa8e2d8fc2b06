//! Assertions from a real sign-in, verified the way applications verify
//! them: Python `PyJWT` (`PyJWKClient` against the JWKS URL), npm `jose`
//! (`createRemoteJWKSet` + `jwtVerify`), and gatehouse's own
//! `gatehouse-verify` (through `gatehouse verify-token` and a `gatehouse
//! verify-app` upstream). Each must accept the real token and refuse the
//! forgeries: altered, unknown key, expired, wrong audience, `alg: none`,
//! HS256 keyed with the public key.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

const PASSWORD: &str = "wonderland";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e")
}

/// Runs a verifier script over `tokens` (one per line); one JSON result per token.
fn run_script(program: &Path, script: &str, args: &[&str], tokens: &[&str]) -> Vec<Value> {
    let mut child = Command::new(program)
        .arg(e2e_dir().join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tokens.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        results.len(),
        tokens.len(),
        "{script}: one result per token"
    );
    results
}

fn python() -> PathBuf {
    let venv = e2e_dir().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: scripts/test.sh installs PyJWT there",
        venv.display()
    );
    venv
}

/// `gatehouse verify-token`: Ok(claims) or Err(stderr).
fn verify_token(args: &[&str], token: &str) -> Result<Value, String> {
    let out = Command::new(BIN)
        .arg("verify-token")
        .args(args)
        .arg(token)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        assert_eq!(out.status.code(), Some(1));
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64json(header), b64json(claims));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[tokio::test(flavor = "multi_thread")]
async fn real_assertions_verify_with_pyjwt_jose_and_gatehouse_verify_and_forgeries_do_not() {
    install_crypto();
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(&["app.localhost", "verified.localhost", "public.localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    // The key a user makes with openssl, as Pomerium's docs say.
    let signing_pem = Command::new("openssl")
        .args(["ecparam", "-genkey", "-name", "prime256v1", "-noout"])
        .output()
        .unwrap();
    assert!(signing_pem.status.success());
    let signing_pem = String::from_utf8(signing_pem.stdout).unwrap();
    std::fs::write(dir.path().join("signing.pem"), &signing_pem).unwrap();

    let up = echo_upstream("a").await;
    let port = free_port();
    let verify_port = free_port();
    let jwks_url = |host: &str| format!("https://{host}:{port}/.well-known/pomerium/jwks.json");
    let ca_arg = ca_file.to_str().unwrap().to_string();
    // The verify app, an upstream that checks what gatehouse forwards.
    let mut verify_app = Command::new(BIN)
        .args([
            "verify-app",
            "--listen",
            &format!("127.0.0.1:{verify_port}"),
        ])
        .args(["--jwks-url", &jwks_url("verified.localhost")])
        .args(["--ca-file", &ca_arg, "--issuer", "verified.localhost"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _verify_app = Kill(&mut verify_app);

    let d = dir.path().display().to_string();
    let gh = Gatehouse::start_on(
        port,
        dir,
        &format!(
            "address: 127.0.0.1:{{port}}
certificate_file: {d}/cert.pem
certificate_key_file: {d}/key.pem
signing_key_file: {d}/signing.pem
idp_provider: local
local_users:
  - {{username: alice, email: alice@example.com, name: Alice Liddell, groups: [staff, ops], password_hash: '{hash}'}}
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_any_authenticated_user: true, pass_identity_headers: true}}
  - {{from: 'https://verified.localhost', to: 'http://127.0.0.1:{verify_port}', allow_any_authenticated_user: true, pass_identity_headers: true}}
  - {{from: 'https://public.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true, pass_identity_headers: true}}
",
            hash = hash(PASSWORD),
            up = up.addr
        ),
    );
    // A client that trusts the CA, as an application would.
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .resolve("app.localhost", gh.addr())
        .resolve("verified.localhost", gh.addr())
        .resolve("public.localhost", gh.addr())
        .no_proxy()
        .build()
        .unwrap();
    for host in ["app.localhost", "verified.localhost"] {
        let resp = submit_login(&c, &login_url(&gh, host), "alice", PASSWORD).await;
        assert_eq!(resp.status(), 302, "sign-in on {host}");
    }
    let echo = get_json(&c, &gh.url("app.localhost", "/")).await;
    let token = echo["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .expect("an assertion")
        .to_string();
    let public = get_json(&c, &gh.url("public.localhost", "/")).await;
    let public_token = public["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .expect("an assertion on the public route")
        .to_string();

    // The forgeries, built from the real token.
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let altered = {
        let mut c = claims.clone();
        c["email"] = json!("mallory@example.com");
        c["groups"] = json!(["admins"]);
        format!("{}.{}.{}", parts[0], b64json(&c), parts[2])
    };
    let real_key = gatehouse_assertion::SigningKeys::from_pem(&signing_pem).unwrap();
    let expired = {
        let mut c = claims.clone();
        let iat = c["iat"].as_u64().unwrap() - 1000;
        c["iat"] = json!(iat);
        c["exp"] = json!(iat + 300);
        real_key.sign(&c)
    };
    let other_key =
        gatehouse_assertion::SigningKeys::from_pem(&gatehouse_assertion::generate_pem()).unwrap();
    let unknown_kid = other_key.sign(&claims);
    let unsigned = format!(
        "{}.{}.",
        b64json(&json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})),
        parts[1]
    );
    let jwks_text = c
        .get(jwks_url("app.localhost"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwk: Value = serde_json::from_str::<Value>(&jwks_text).unwrap()["keys"][0].clone();
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    let hs_with_jwks = hs256(jwks_text.as_bytes(), &hs_header, &claims);
    let hs_with_jwk = hs256(jwk.to_string().as_bytes(), &hs_header, &claims);

    let forgeries: Vec<(&str, &str)> = vec![
        ("altered claims", &altered),
        ("expired", &expired),
        ("unknown kid", &unknown_kid),
        ("alg none", &unsigned),
        ("HS256 keyed with the JWKS", &hs_with_jwks),
        ("HS256 keyed with the JWK", &hs_with_jwk),
    ];
    let mut tokens: Vec<&str> = vec![&token];
    tokens.extend(forgeries.iter().map(|(_, t)| *t));

    let url = jwks_url("app.localhost");
    let args = [
        url.as_str(),
        ca_arg.as_str(),
        "app.localhost",
        "app.localhost",
    ];
    let pyjwt = run_script(&python(), "verify_pyjwt.py", &args, &tokens);
    let jose = run_script(Path::new("node"), "verify-remote.mjs", &args, &tokens);
    let ours: Vec<Result<Value, String>> = tokens
        .iter()
        .map(|t| {
            verify_token(
                &[
                    "--jwks-url",
                    &url,
                    "--ca-file",
                    &ca_arg,
                    "--issuer",
                    "app.localhost",
                    "--audience",
                    "app.localhost",
                ],
                t,
            )
        })
        .collect();

    // The real token: every library agrees on the claims.
    assert_eq!(pyjwt[0]["ok"], true, "PyJWT: {}", pyjwt[0]);
    assert_eq!(jose[0]["ok"], true, "jose: {}", jose[0]);
    let ours_good = ours[0]
        .as_ref()
        .expect("gatehouse-verify accepts the token");
    for got in [&pyjwt[0]["claims"], &jose[0]["payload"], ours_good] {
        assert_eq!(got["email"], "alice@example.com");
        assert_eq!(got["user"], got["sub"]);
        assert_eq!(got["groups"], json!(["staff", "ops"]));
        assert_eq!(got["name"], "Alice Liddell");
        assert_eq!(got["iss"], "app.localhost");
        assert_eq!(got["aud"], "app.localhost");
        assert_eq!(
            got["exp"].as_u64().unwrap() - got["iat"].as_u64().unwrap(),
            300
        );
    }
    assert_eq!(jose[0]["protectedHeader"]["typ"], "JWT");
    assert_eq!(jose[0]["protectedHeader"]["kid"], jwk["kid"]);
    // The public route's assertion is valid and empty.
    let public_url = jwks_url("public.localhost");
    let public_args = [
        public_url.as_str(),
        ca_arg.as_str(),
        "public.localhost",
        "public.localhost",
    ];
    let py_public = run_script(&python(), "verify_pyjwt.py", &public_args, &[&public_token]);
    let jose_public = run_script(
        Path::new("node"),
        "verify-remote.mjs",
        &public_args,
        &[&public_token],
    );
    let ours_public = verify_token(
        &[
            "--jwks-url",
            &public_url,
            "--ca-file",
            &ca_arg,
            "--audience",
            "public.localhost",
        ],
        &public_token,
    )
    .expect("gatehouse-verify accepts the public assertion");
    for got in [
        &py_public[0]["claims"],
        &jose_public[0]["payload"],
        &ours_public,
    ] {
        assert_eq!(got["email"], "", "{got}");
        assert_eq!(got["groups"], json!([]), "{got}");
    }

    // Every forgery is refused by every library.
    for (i, (what, _)) in forgeries.iter().enumerate() {
        let n = i + 1;
        assert_eq!(pyjwt[n]["ok"], false, "PyJWT accepted {what}: {}", pyjwt[n]);
        assert_eq!(jose[n]["ok"], false, "jose accepted {what}: {}", jose[n]);
        assert!(ours[n].is_err(), "gatehouse-verify accepted {what}");
    }
    // gatehouse-verify names each problem.
    let why = |n: usize| ours[n].as_ref().unwrap_err().clone();
    assert!(why(1).contains("signature does not verify"), "{}", why(1));
    assert!(why(2).contains("expired"), "{}", why(2));
    assert!(why(3).contains("no key with kid"), "{}", why(3));
    assert!(why(4).contains("unsigned"), "{}", why(4));
    assert!(why(5).contains("HS256 is not allowed"), "{}", why(5));
    assert!(
        jose[2]["error"]
            .as_str()
            .unwrap()
            .contains("ERR_JWT_EXPIRED")
    );
    assert!(
        jose[3]["error"]
            .as_str()
            .unwrap()
            .contains("ERR_JWKS_NO_MATCHING_KEY")
    );
    assert!(
        pyjwt[2]["error"]
            .as_str()
            .unwrap()
            .contains("ExpiredSignatureError")
    );

    // Wrong audience: the token of one route is no good for another.
    let other = [
        url.as_str(),
        ca_arg.as_str(),
        "app.localhost",
        "grafana.localhost",
    ];
    assert_eq!(
        run_script(&python(), "verify_pyjwt.py", &other, &[&token])[0]["ok"],
        false
    );
    assert_eq!(
        run_script(Path::new("node"), "verify-remote.mjs", &other, &[&token])[0]["ok"],
        false
    );
    let err = verify_token(
        &[
            "--jwks-url",
            &url,
            "--ca-file",
            &ca_arg,
            "--audience",
            "grafana.localhost",
        ],
        &token,
    )
    .unwrap_err();
    assert!(
        err.contains("\"app.localhost\"") && err.contains("\"grafana.localhost\""),
        "{err}"
    );
    // A JWKS file works too (the one published at the URL).
    let jwks_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwks_file.path(), &jwks_text).unwrap();
    let file_arg = jwks_file.path().to_str().unwrap();
    assert!(
        verify_token(
            &["--jwks-file", file_arg, "--audience", "app.localhost"],
            &token
        )
        .is_ok()
    );
    assert!(verify_token(&["--jwks-file", file_arg], &unknown_kid).is_err());

    // The verify app behind gatehouse: verified, whatever a client forges.
    for forged in [None, Some(unknown_kid.as_str()), Some(altered.as_str())] {
        let mut req = c
            .get(gh.url("verified.localhost", "/?format=json"))
            .header("Accept", "application/json");
        if let Some(f) = forged {
            req = req.header("X-Pomerium-Jwt-Assertion", f);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(page["verified"], true, "{page}");
        assert_eq!(page["identity"]["email"], "alice@example.com");
        assert_eq!(page["identity"]["groups"], json!(["staff", "ops"]));
    }
    // Reached directly (not through gatehouse), with a forged token: refused,
    // with the reason.
    let direct = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{verify_port}/"))
        .header("Accept", "application/json")
        .header("X-Forwarded-Host", "verified.localhost")
        .header("X-Pomerium-Jwt-Assertion", &unknown_kid)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 401);
    let page: Value = serde_json::from_str(&direct.text().await.unwrap()).unwrap();
    assert!(
        page["error"].as_str().unwrap().contains("no key with kid"),
        "{page}"
    );
}
