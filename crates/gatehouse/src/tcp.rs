//! `gatehouse tcp`: the client side of TCP tunnels, with `pomerium-cli
//! tcp`'s flags and protocol. Each local connection becomes one `CONNECT
//! host:port` over HTTPS to gatehouse (or Pomerium) carrying the user's
//! programmatic token; without a valid token the user signs in once in the
//! browser (programmatic login to a one-time listener on 127.0.0.1) and the
//! token is kept per user on disk, readable by its owner only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(clap::Args, Clone)]
pub struct TcpArgs {
    /// The tunnel's `host:port` (the route's `from: tcp+https://host:port`).
    destination: String,
    /// Local address to listen on, or `-` for standard input and output
    /// (an SSH `ProxyCommand`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The gatehouse (or Pomerium) to go through; default
    /// `https://<destination host>`.
    #[arg(long)]
    pomerium_url: Option<String>,
    /// A CA certificate (PEM) to trust for gatehouse's certificate,
    /// beside the system's.
    #[arg(long)]
    alternate_ca_path: Option<PathBuf>,
    /// Do not verify gatehouse's certificate (for tests only).
    #[arg(long)]
    disable_tls_verification: bool,
    /// The program that opens the sign-in URL (default `xdg-open`).
    #[arg(long)]
    browser_cmd: Option<String>,
}

/// How to reach gatehouse, and the tunnel to ask for.
struct Tunnel {
    destination: String,
    /// `host:port` of gatehouse.
    proxy: String,
    server_name: rustls::pki_types::ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    cache: PathBuf,
    browser_cmd: Option<String>,
    /// One sign-in at a time: connections arriving meanwhile wait for it
    /// and use its token.
    signing_in: tokio::sync::Mutex<()>,
}

pub fn run(args: TcpArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let tunnel = Arc::new(Tunnel::new(&args)?);
        if args.listen == "-" {
            let local = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
            return tunnel.serve(local).await;
        }
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "gatehouse tcp: {} through {}, listening on {}",
            tunnel.destination,
            tunnel.proxy,
            listener.local_addr()?
        );
        loop {
            let (conn, _) = listener.accept().await?;
            let tunnel = tunnel.clone();
            tokio::spawn(async move {
                if let Err(e) = tunnel.serve(conn).await {
                    eprintln!("gatehouse tcp: {e:#}");
                }
            });
        }
    })
}

impl Tunnel {
    fn new(args: &TcpArgs) -> anyhow::Result<Tunnel> {
        let (dst_host, _) = args
            .destination
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| {
                anyhow!("the destination must be host:port, like db.example.com:5432")
            })?;
        let (host, port) = match &args.pomerium_url {
            Some(u) => {
                let u = url::Url::parse(u).context("--pomerium-url")?;
                if u.scheme() != "https" {
                    bail!("--pomerium-url must be an https URL");
                }
                let host = u
                    .host_str()
                    .ok_or_else(|| anyhow!("--pomerium-url has no host"))?;
                (host.to_string(), u.port().unwrap_or(443))
            }
            None => (dst_host.to_string(), 443),
        };
        let server_name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|_| anyhow!("`{host}` is not a valid server name"))?;
        let tls = tls_config(args)?;
        let cache = cache_dir()?.join(format!(
            "{}.token",
            sanitize(&format!("{host}_{port}_{}", args.destination))
        ));
        Ok(Tunnel {
            destination: args.destination.clone(),
            proxy: format!("{host}:{port}"),
            server_name,
            tls: Arc::new(tls),
            cache,
            browser_cmd: args.browser_cmd.clone(),
            signing_in: tokio::sync::Mutex::new(()),
        })
    }

    /// One local connection: a tunnel with the kept token, or after a
    /// sign-in when gatehouse asks for one.
    async fn serve<L: AsyncRead + AsyncWrite + Unpin>(&self, mut local: L) -> anyhow::Result<()> {
        let token = read_private(&self.cache);
        let mut opened = self.connect(token.as_deref()).await?;
        if let Opened::SignIn = opened {
            let _one = self.signing_in.lock().await;
            // Someone else may have signed in while this one waited.
            let kept = read_private(&self.cache).filter(|t| Some(t) != token.as_ref());
            let token = match kept {
                Some(t) => t,
                None => {
                    let t = self.sign_in().await?;
                    gatehouse_proxy::private_file::write(&self.cache, t.as_bytes()).with_context(
                        || format!("cannot keep the token in {}", self.cache.display()),
                    )?;
                    t
                }
            };
            opened = self.connect(Some(&token)).await?;
        }
        let (mut remote, early) = match opened {
            Opened::Tunnel(remote, early) => (remote, early),
            Opened::SignIn => bail!("gatehouse refused the new token"),
        };
        if !early.is_empty() {
            local.write_all(&early).await?;
        }
        tokio::io::copy_bidirectional(&mut local, &mut remote).await?;
        Ok(())
    }

    async fn tls(&self) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&self.proxy))
            .await
            .map_err(|_| anyhow!("connecting to {} timed out", self.proxy))?
            .with_context(|| format!("cannot connect to {}", self.proxy))?;
        let _ = tcp.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        connector
            .connect(self.server_name.clone(), tcp)
            .await
            .with_context(|| format!("TLS with {}", self.proxy))
    }

    /// `CONNECT destination` with the token: the open tunnel (and any
    /// bytes that came with the answer), or a request to sign in.
    async fn connect(&self, token: Option<&str>) -> anyhow::Result<Opened> {
        let mut s = self.tls().await?;
        let mut head = format!(
            "CONNECT {d} HTTP/1.1\r\nHost: {d}\r\n",
            d = self.destination
        );
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            head.push_str(&format!("Authorization: Pomerium {t}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        let (status, rest) = tokio::time::timeout(Duration::from_secs(30), read_head(&mut s))
            .await
            .map_err(|_| anyhow!("{} did not answer the CONNECT within 30 s", self.proxy))??;
        match status {
            200 => Ok(Opened::Tunnel(Box::new(s), rest)),
            401 | 301 | 302 | 307 | 308 => Ok(Opened::SignIn),
            403 => bail!(
                "access to {} is denied by its route's policy",
                self.destination
            ),
            404 => bail!("{} serves no tunnel to {}", self.proxy, self.destination),
            502..=504 => bail!("the tunnel's target cannot be reached ({status})"),
            other => bail!("unexpected answer {other} to CONNECT {}", self.destination),
        }
    }

    /// Programmatic login: a one-time listener on 127.0.0.1 receives the
    /// token once the user has signed in in the browser.
    async fn sign_in(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        // Only the sign-in this client started can deliver a token: a path
        // no one else knows (another local user, a web page probing
        // 127.0.0.1's ports).
        let secret = gatehouse_proxy::hex::lower(&rand::random::<[u8; 16]>());
        let back = format!("http://{}/{secret}", listener.local_addr()?);
        let login = tokio::time::timeout(Duration::from_secs(30), self.login_url(&back))
            .await
            .map_err(|_| {
                anyhow!(
                    "{} did not answer the login request within 30 s",
                    self.proxy
                )
            })??;
        eprintln!("Your browser has been opened to visit:\n\n{login}\n");
        let program = self
            .browser_cmd
            .clone()
            .unwrap_or_else(|| "xdg-open".into());
        if let Err(e) = std::process::Command::new(&program)
            .arg(&login)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
        {
            eprintln!(
                "gatehouse tcp: cannot start {program} ({e}): open the address above yourself"
            );
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
        let expected = format!("/{secret}");
        let wait = async {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        // Each visit on its own: a silent one holds up no other.
                        let (mut c, _) = accepted?;
                        let (tx, expected) = (tx.clone(), expected.clone());
                        tokio::spawn(async move {
                            if let Some(token) = callback(&mut c, &expected).await {
                                let _ = tx.send(token).await;
                            }
                        });
                    }
                    Some(token) = rx.recv() => return Ok::<_, anyhow::Error>(token),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(300), wait)
            .await
            .map_err(|_| anyhow!("no sign-in within 5 minutes"))?
    }

    /// `GET /.pomerium/api/v1/login?pomerium_redirect_uri=…`: the sign-in
    /// URL, as text.
    async fn login_url(&self, back: &str) -> anyhow::Result<String> {
        let mut s = self.tls().await?;
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("pomerium_redirect_uri", back)
            .finish();
        let host = self.proxy.trim_end_matches(":443");
        let req = format!(
            "GET /.pomerium/api/v1/login?{query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut all = Vec::new();
        (&mut s).take(64 * 1024).read_to_end(&mut all).await?;
        let text = String::from_utf8_lossy(&all);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("no answer to the login request"))?;
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            bail!("the login request was answered {status}");
        }
        let url = body.trim();
        if !url.starts_with("https://") || url.chars().any(|c| c.is_control() || c == ' ') {
            bail!("the login request did not answer an https URL");
        }
        Ok(url.to_string())
    }
}

enum Opened {
    Tunnel(Box<tokio_rustls::client::TlsStream<TcpStream>>, Vec<u8>),
    SignIn,
}

/// Reads a response head (at most 16 KiB): its status, and the bytes that
/// followed it.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| anyhow!("not an HTTP answer"))?;
            return Ok((status, buf[end + 4..].to_vec()));
        }
        if buf.len() > 16 * 1024 {
            bail!("the answer's head is too long");
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("the connection closed before an answer");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The browser's visit to the one-time listener: the token, if the visit
/// is to `expected` (the secret path) and carries one made of token
/// characters only (nothing a header could be split with).
async fn callback(c: &mut TcpStream, expected: &str) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head.lines().next()?.split(' ').nth(1)?;
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "pomerium_jwt")
        .map(|(_, v)| v.into_owned())
        .filter(|_| url.path() == expected)
        .filter(|t| {
            t.len() <= 8192
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
        });
    let (status, body) = match &token {
        Some(_) => ("200 OK", "login complete, you may close this page"),
        None => ("404 Not Found", "not found"),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = c.write_all(answer.as_bytes()).await;
    token.filter(|t| !t.is_empty())
}

fn tls_config(args: &TcpArgs) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut cfg = if args.disable_tls_verification {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(gatehouse_proxy::upstream::NoVerify(
                provider,
            )))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if let Some(path) = &args.alternate_ca_path {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(path)
                .with_context(|| format!("--alternate-ca-path {}", path.display()))?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.context("--alternate-ca-path")?)?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `$XDG_CACHE_HOME/gatehouse/tcp`, else `~/.cache/gatehouse/tcp`.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow!("neither XDG_CACHE_HOME nor HOME is set"))?,
        )
        .join(".cache"),
    };
    Ok(base.join("gatehouse/tcp"))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// The kept token: readable only through gatehouse's owner-only files.
fn read_private(path: &Path) -> Option<String> {
    let bytes = gatehouse_proxy::private_file::read(path, 16 * 1024)?;
    let t = String::from_utf8(bytes).ok()?.trim().to_string();
    (!t.is_empty()).then_some(t)
}
