//! Unit tests: tokens minted here with jsonwebtoken and keys from aws-lc-rs;
//! the end-to-end tests in crates/gatehouse verify real gatehouse tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;

struct TestKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    spki_pem: String,
}

fn test_key(kid: &str) -> TestKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!(point.len(), 65);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    // SubjectPublicKeyInfo for a P-256 point: a fixed 26-byte prefix.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(&point);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
    let spki_pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    TestKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        spki_pem,
    }
}

fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    serde_json::to_vec(&json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}))
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    let iat = now();
    json!({
        "iss": "app.localhost", "aud": "app.localhost",
        "sub": "u-1", "user": "u-1", "email": "ada@example.com",
        "groups": ["admins", "dev"], "name": "Ada", "sid": "s-1", "jti": "j-1",
        "iat": iat, "exp": iat + 300,
    })
}

fn mint(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    encode(&header, claims, &key.encoding).unwrap()
}

fn verifier(keys: Keys) -> Verifier {
    Verifier::builder(keys)
        .issuer("app.localhost")
        .audience("app.localhost")
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_valid_token_gives_the_identity() {
    let key = test_key("k1");
    let v = verifier(Keys::jwks_json(jwks(&[&key])));
    let id = v.verify(&mint(&key, &claims())).await.unwrap();
    assert_eq!(id.sub, "u-1");
    assert_eq!(id.user, "u-1");
    assert_eq!(id.email, "ada@example.com");
    assert_eq!(id.groups, ["admins", "dev"]);
    assert_eq!(id.name, "Ada");
    assert_eq!(id.sid, "s-1");
    assert_eq!(id.audience, ["app.localhost"]);
    assert!(!id.is_anonymous());
    assert_eq!(id.claims["jti"], "j-1");
}

#[tokio::test]
async fn pem_public_keys_work_and_private_keys_are_refused() {
    let key = test_key("k1");
    let v = verifier(Keys::pem(key.spki_pem.clone()));
    assert_eq!(v.verify(&mint(&key, &claims())).await.unwrap().sub, "u-1");
    let err = Verifier::builder(Keys::pem(
        "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n",
    ))
    .build()
    .unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
}

#[tokio::test]
async fn each_bad_token_gets_its_own_error() {
    let key = test_key("k1");
    let other = test_key("k2");
    let v = verifier(Keys::jwks_json(jwks(&[&key])));
    let good = mint(&key, &claims());

    // Altered claims.
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    let mut c = claims();
    c["email"] = json!("mallory@example.com");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    assert_eq!(v.verify(&parts.join(".")).await, Err(Error::BadSignature));

    // Signed by another key that claims our kid.
    let forged = test_key("k1");
    assert_eq!(
        v.verify(&mint(&forged, &claims())).await,
        Err(Error::BadSignature)
    );

    // Unknown kid.
    assert!(matches!(
        v.verify(&mint(&other, &claims())).await,
        Err(Error::UnknownKey { kid, .. }) if kid == "k2"
    ));

    // Expired beyond the 60 s leeway; within the leeway is fine.
    let mut c = claims();
    c["exp"] = json!(now() - 120);
    assert!(matches!(
        v.verify(&mint(&key, &c)).await,
        Err(Error::Expired { leeway: 60, .. })
    ));
    c["exp"] = json!(now() - 30);
    assert!(v.verify(&mint(&key, &c)).await.is_ok());

    // Not yet valid.
    let mut c = claims();
    c["nbf"] = json!(now() + 600);
    assert!(matches!(
        v.verify(&mint(&key, &c)).await,
        Err(Error::NotYetValid { .. })
    ));

    // Wrong audience and issuer name both values.
    let mut c = claims();
    c["aud"] = json!("grafana.localhost");
    let err = v.verify(&mint(&key, &c)).await.unwrap_err();
    assert_eq!(
        err,
        Error::WrongAudience {
            got: vec!["grafana.localhost".into()],
            expected: vec!["app.localhost".into()]
        }
    );
    assert!(err.to_string().contains("grafana.localhost"));
    let mut c = claims();
    c["iss"] = json!("evil.localhost");
    assert!(matches!(
        v.verify(&mint(&key, &c)).await,
        Err(Error::WrongIssuer { got, .. }) if got == "evil.localhost"
    ));
    // Missing audience when one is expected.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        v.verify(&mint(&key, &c)).await,
        Err(Error::MissingClaim("aud".into()))
    );
    // Missing exp.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        v.verify(&mint(&key, &c)).await,
        Err(Error::MissingClaim("exp".into()))
    );

    // Garbage.
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.e30.x"] {
        assert!(
            matches!(v.verify(bad).await, Err(Error::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn unsigned_and_symmetric_tokens_are_never_accepted() {
    let key = test_key("k1");
    let v = verifier(Keys::jwks_json(jwks(&[&key])));
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
        assert_eq!(
            v.verify(&format!("{header}.{body}.")).await,
            Err(Error::Unsigned)
        );
    }
    // The classic confusion attack: HS256 keyed with the public key.
    for secret in [jwks(&[&key]), key.spki_pem.clone().into_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let token = encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert!(matches!(
            v.verify(&token).await,
            Err(Error::AlgorithmNotAllowed { alg, .. }) if alg == "HS256"
        ));
    }
    // And a verifier cannot be configured to allow them.
    let err = Verifier::builder(Keys::jwks_json(jwks(&[&key])))
        .algorithms(&[Algorithm::ES256, Algorithm::HS256])
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    // A symmetric key in a JWKS is ignored.
    let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1", "alg": "HS256"}]});
    assert!(
        Verifier::builder(Keys::jwks_json(serde_json::to_vec(&oct).unwrap()))
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn expected_claims_are_checked() {
    let key = test_key("k1");
    let build = |name: &str, value: Value| {
        Verifier::builder(Keys::jwks_json(jwks(&[&key])))
            .expect_claim(name, value)
            .build()
            .unwrap()
    };
    let token = mint(&key, &claims());
    assert!(
        build("groups", json!("admins"))
            .verify(&token)
            .await
            .is_ok()
    );
    assert!(
        build("email", json!("ada@example.com"))
            .verify(&token)
            .await
            .is_ok()
    );
    assert!(matches!(
        build("groups", json!("ops")).verify(&token).await,
        Err(Error::ClaimMismatch { claim, .. }) if claim == "groups"
    ));
    assert_eq!(
        build("tenant", json!("x")).verify(&token).await,
        Err(Error::MissingClaim("tenant".into()))
    );
}

#[tokio::test]
async fn anonymous_assertions_are_recognised() {
    let key = test_key("k1");
    let v = verifier(Keys::jwks_json(jwks(&[&key])));
    let mut c = claims();
    for field in ["sub", "user", "email", "name", "sid"] {
        c[field] = json!("");
    }
    c["groups"] = json!([]);
    let id = v.verify(&mint(&key, &c)).await.unwrap();
    assert!(id.is_anonymous());
    assert!(id.groups.is_empty());
}

/// A JWKS server that counts its requests.
async fn jwks_server(body: Arc<std::sync::Mutex<Vec<u8>>>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/.well-known/pomerium/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let bytes = body.lock().unwrap().clone();
                ([("content-type", "application/json")], bytes)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        format!("http://{addr}/.well-known/pomerium/jwks.json"),
        hits,
    )
}

#[tokio::test]
async fn forged_key_ids_do_not_cause_a_fetch_storm_and_rotation_is_picked_up() {
    let old = test_key("old");
    let new = test_key("new");
    let body = Arc::new(std::sync::Mutex::new(jwks(&[&old])));
    let (url, hits) = jwks_server(body.clone()).await;
    let v = Verifier::builder(Keys::jwks_url(url))
        .refetch_interval(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(v.verify(&mint(&old, &claims())).await.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Cached: no fetch per request.
    for _ in 0..10 {
        assert!(v.verify(&mint(&old, &claims())).await.is_ok());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // 200 tokens with random kids, concurrently: at most one fetch.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let v = v.clone();
        let token = mint(&test_key(&format!("forged-{i}")), &claims());
        tasks.push(tokio::spawn(async move { v.verify(&token).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(Error::UnknownKey { .. })));
    }
    assert!(hits.load(Ordering::SeqCst) <= 2, "{hits:?}");

    // The proxy rotates: the new key appears; after the interval, a token
    // with the new kid triggers one fetch and verifies.
    *body.lock().unwrap() = jwks(&[&new, &old]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = hits.load(Ordering::SeqCst);
    assert!(v.verify(&mint(&new, &claims())).await.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
    assert!(v.verify(&mint(&old, &claims())).await.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn an_unreachable_key_set_is_a_503_kind_of_error_and_cached_keys_survive_it() {
    let key = test_key("k1");
    let body = Arc::new(std::sync::Mutex::new(jwks(&[&key])));
    let (url, _hits) = jwks_server(body.clone()).await;
    let v = Verifier::builder(Keys::jwks_url(url))
        .cache_ttl(Duration::from_millis(1))
        .refetch_interval(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(v.refresh().await.unwrap(), 1);
    // The server now serves garbage: the stale keys keep working.
    *body.lock().unwrap() = b"<html>".to_vec();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(v.verify(&mint(&key, &claims())).await.is_ok());

    let dead = Verifier::builder(Keys::jwks_url("http://127.0.0.1:9/jwks.json"))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = dead.verify(&mint(&key, &claims())).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}

#[tokio::test]
async fn a_jwks_file_is_read_again_for_an_unknown_key() {
    let a = test_key("a");
    let b = test_key("b");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&a])).unwrap();
    let v = Verifier::builder(Keys::jwks_file(&path))
        .refetch_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(v.verify(&mint(&a, &claims())).await.is_ok());
    std::fs::write(&path, jwks(&[&a, &b])).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(v.verify(&mint(&b, &claims())).await.is_ok());
}

#[cfg(feature = "axum")]
mod layer {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(app: axum::Router, token: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get("/");
        if let Some(t) = token {
            request = request.header("X-Pomerium-Jwt-Assertion", t);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_layer_and_the_extractor_protect_a_router() {
        let key = test_key("k1");
        let v = verifier(Keys::jwks_json(jwks(&[&key])));
        let hello = |id: Identity| async move { format!("hello {}", id.email) };
        let layered = axum::Router::new()
            .route("/", axum::routing::get(hello))
            .layer(VerifyLayer::new(v.clone()));
        let token = mint(&key, &claims());
        assert_eq!(
            call(layered.clone(), Some(&token)).await,
            (StatusCode::OK, "hello ada@example.com".into())
        );
        let (status, body) = call(layered.clone(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("X-Pomerium-Jwt-Assertion"), "{body}");
        let mut c = claims();
        c["aud"] = json!("other.localhost");
        let (status, body) = call(layered.clone(), Some(&mint(&key, &c))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("other.localhost"), "{body}");
        let mut anon = claims();
        anon["sub"] = json!("");
        anon["email"] = json!("");
        let anon = mint(&key, &anon);
        assert_eq!(call(layered, Some(&anon)).await.0, StatusCode::UNAUTHORIZED);

        // The extractor alone, with the verifier as an extension.
        let extracted = axum::Router::new()
            .route("/", axum::routing::get(hello))
            .layer(axum::Extension(v.clone()));
        assert_eq!(
            call(extracted.clone(), Some(&token)).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(extracted.clone(), Some("x.y.z")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(extracted, Some(&anon)).await.0,
            StatusCode::UNAUTHORIZED
        );
        // Option<Identity> turns refusals into None.
        let optional = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|id: Option<Identity>| async move {
                    id.map(|i| i.email).unwrap_or_else(|| "nobody".into())
                }),
            )
            .layer(axum::Extension(v));
        assert_eq!(call(optional, Some("x.y.z")).await.1, "nobody");
        // No verifier at all is a 500 that says what is missing.
        let bare = axum::Router::new().route("/", axum::routing::get(hello));
        let (status, body) = call(bare, Some(&token)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("VerifyLayer"), "{body}");
    }
}
