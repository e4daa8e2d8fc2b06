//! A small axum application that trusts gatehouse: every request must carry
//! a valid `X-Pomerium-Jwt-Assertion`, and handlers receive the verified
//! `Identity`.
//!
//! ```text
//! JWKS_URL=https://app.localhost:8443/.well-known/pomerium/jwks.json \
//! AUDIENCE=app.localhost ISSUER=app.localhost CA_FILE=gatehouse-ca.pem \
//! LISTEN=127.0.0.1:8000 \
//!   cargo run -p gatehouse-verify --features axum --example axum-app
//! ```
//!
//! Then route `https://app.localhost` to `http://127.0.0.1:8000` in
//! gatehouse with `pass_identity_headers: true`.

use axum::Router;
use axum::routing::get;
use gatehouse_verify::{Identity, Keys, Verifier, VerifyLayer};

async fn hello(identity: Identity) -> String {
    format!(
        "Hello {} <{}>\ngroups: {}\n",
        if identity.name.is_empty() {
            &identity.user
        } else {
            &identity.name
        },
        identity.email,
        identity.groups.join(", ")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let jwks_url =
        var("JWKS_URL").ok_or("set JWKS_URL to gatehouse's /.well-known/pomerium/jwks.json")?;
    let mut builder = Verifier::builder(Keys::jwks_url(jwks_url));
    if let Some(audience) = var("AUDIENCE") {
        builder = builder.audience(audience);
    }
    if let Some(issuer) = var("ISSUER") {
        builder = builder.issuer(issuer);
    }
    if let Some(ca) = var("CA_FILE") {
        builder = builder.ca_pem(std::fs::read(ca)?);
    }
    let verifier = builder.build()?;
    // Fail at startup, not on the first request, when the URL is wrong.
    verifier.refresh().await?;

    let app = Router::new()
        .route("/", get(hello))
        .layer(VerifyLayer::new(verifier));
    let listen = var("LISTEN").unwrap_or_else(|| "127.0.0.1:8000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}");
    axum::serve(listener, app).await?;
    Ok(())
}
