//! `gatehouse verify-app` and `gatehouse verify-token`: an upstream that
//! shows what gatehouse forwarded (headers, the verified identity or the
//! exact verification error), and a one-shot token check. Both are built
//! on the `gatehouse-verify` crate, the same code an upstream Rust service
//! links.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use gatehouse_proxy::answers::{html_escape, wants_json};
use gatehouse_verify::{ASSERTION_HEADER, Identity, Keys, Verifier};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

/// Where the keys come from and what to expect, shared by both commands.
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// gatehouse's JWKS, e.g. https://app.example.com/.well-known/pomerium/jwks.json
    #[arg(long, required_unless_present_any = ["jwks_file", "pem_file"])]
    pub jwks_url: Option<String>,
    /// A JWKS document on disk.
    #[arg(long, conflicts_with = "jwks_url")]
    pub jwks_file: Option<PathBuf>,
    /// PEM public key(s) on disk.
    #[arg(long, conflicts_with_all = ["jwks_url", "jwks_file"])]
    pub pem_file: Option<PathBuf>,
    /// Expected `iss` (the route host, or https://host/ with jwt_issuer_format: uri).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Expected `aud`. verify-app without it checks the host the request
    /// was sent to (X-Forwarded-Host).
    #[arg(long)]
    pub audience: Option<String>,
    /// A CA certificate (PEM) to trust for the JWKS URL (self-signed or
    /// private-CA gatehouse certificates).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

impl VerifyArgs {
    pub fn verifier(&self) -> Result<Verifier, String> {
        let keys = match (&self.jwks_url, &self.jwks_file, &self.pem_file) {
            (Some(url), _, _) => Keys::jwks_url(url.clone()),
            (_, Some(path), _) => Keys::jwks_file(path.clone()),
            (_, _, Some(path)) => Keys::pem(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            _ => return Err("give --jwks-url, --jwks-file or --pem-file".into()),
        };
        let mut builder = Verifier::builder(keys);
        if let Some(issuer) = &self.issuer {
            builder = builder.issuer(issuer.clone());
        }
        if let Some(audience) = &self.audience {
            builder = builder.audience(audience.clone());
        }
        if let Some(ca) = &self.ca_file {
            builder = builder.ca_pem(
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?,
            );
        }
        builder.build().map_err(|e| e.to_string())
    }
}

/// `gatehouse verify-token`: prints the claims (exit 0) or the error (exit 1).
pub async fn verify_token(args: &VerifyArgs, token: &str) -> Result<Value, String> {
    let verifier = args.verifier()?;
    let identity = verifier.verify(token).await.map_err(|e| e.to_string())?;
    Ok(Value::Object(identity.claims))
}

/// The verify app's state.
pub struct App {
    verifier: Verifier,
    audience_from_host: bool,
}

impl App {
    pub fn new(args: &VerifyArgs) -> Result<Arc<App>, String> {
        Ok(Arc::new(App {
            verifier: args.verifier()?,
            audience_from_host: args.audience.is_none(),
        }))
    }
}

/// Serves the verify app on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("verify-app: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(io, service)
                    .await;
        });
    }
}

async fn handle<B>(app: &App, req: Request<B>) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let token = headers
        .get(ASSERTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The host the browser asked for: gatehouse sets X-Forwarded-Host.
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(|h| strip_port(h).to_ascii_lowercase())
        .unwrap_or_default();
    let result: Result<Identity, String> = match token {
        None => Err(gatehouse_verify::Error::Missing.to_string()),
        Some(token) => match app.verifier.verify(&token).await {
            Ok(identity) if app.audience_from_host && !identity.audience.contains(&host) => {
                Err(format!(
                    "audience {:?} does not include this host {host:?}",
                    identity.audience
                ))
            }
            Ok(identity) => Ok(identity),
            Err(e) => Err(e.to_string()),
        },
    };
    let shown: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let status = if result.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    let json = wants_json(headers) || req.uri().query().is_some_and(|q| q.contains("format=json"));
    let (content_type, body) = if json {
        let mut out = json!({
            "verified": result.is_ok(),
            "headers": shown.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        });
        match &result {
            Ok(identity) => out["identity"] = serde_json::to_value(identity).unwrap_or_default(),
            Err(e) => out["error"] = json!(e),
        }
        ("application/json", format!("{out:#}\n"))
    } else {
        ("text/html; charset=utf-8", page(&result, &shown))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn page(result: &Result<Identity, String>, headers: &[(String, String)]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>gatehouse verify</title><style>",
    );
    out.push_str(STYLE);
    out.push_str("</style></head><body><main>");
    match result {
        Ok(id) => {
            let who = if id.is_anonymous() {
                "anonymous (public route)".to_string()
            } else if id.name.is_empty() {
                id.email.clone()
            } else {
                format!("{} <{}>", id.name, id.email)
            };
            let _ = write!(
                out,
                "<h1 class=\"ok\" id=\"verdict\">Identity verified</h1><p id=\"who\">{}</p>\
<table><tbody>",
                html_escape(&who)
            );
            let groups = id.groups.join(", ");
            let aud = id.audience.join(", ");
            for (k, v) in [
                ("user", id.user.as_str()),
                ("email", id.email.as_str()),
                ("name", id.name.as_str()),
                ("groups", groups.as_str()),
                ("issuer", id.issuer.as_str()),
                ("audience", aud.as_str()),
                ("session", id.sid.as_str()),
            ] {
                let _ = write!(
                    out,
                    "<tr><th>{k}</th><td id=\"claim-{k}\">{}</td></tr>",
                    html_escape(v)
                );
            }
            out.push_str("</tbody></table><h2>Claims</h2><pre>");
            out.push_str(&html_escape(
                &serde_json::to_string_pretty(&id.claims).unwrap_or_default(),
            ));
            out.push_str("</pre>");
        }
        Err(e) => {
            let _ = write!(
                out,
                "<h1 class=\"bad\" id=\"verdict\">Not verified</h1><p id=\"error\">{}</p>",
                html_escape(e)
            );
        }
    }
    out.push_str("<h2>Request headers</h2><table><tbody>");
    for (k, v) in headers {
        let _ = write!(
            out,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            html_escape(k),
            html_escape(v)
        );
    }
    out.push_str("</tbody></table><footer>gatehouse verify-app</footer></main></body></html>\n");
    out
}

const STYLE: &str = "body{margin:0;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
background:#f5f6f8;color:#1f2430}main{max-width:52rem;margin:6vh auto;padding:2rem 2.25rem;\
background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}\
h1{margin:0 0 .25rem;font-size:1.5rem}h1.ok{color:#17803d}h1.bad{color:#b42318}h2{font-size:1.1rem;\
margin:1.5rem 0 .5rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;\
vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid #e6e8ee}th{white-space:nowrap;\
color:#5b6170;font-weight:600;width:12rem}td code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,\
monospace;font-size:.85rem;word-break:break-all;white-space:pre-wrap}pre{background:#f5f6f8;\
padding:.75rem;border-radius:8px}footer{margin-top:1.5rem;color:#5b6170;font-size:.8rem}\
@media (prefers-color-scheme:dark){body{background:#15171c;color:#e6e8ee}main{background:#1f2229;\
box-shadow:none}pre{background:#15171c}th,footer{color:#a3a9b6}h1.ok{color:#4ade80}h1.bad{color:#ff9b8f}th,td{border-color:#2c3039}}";
