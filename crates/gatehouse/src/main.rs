//! The `gatehouse` binary: command line, logging, signals and the reload
//! loop. It wires the crates together and owns no proxy logic itself.
// `deny`, not `forbid`: `memory` alone calls the C allocator (two calls
// without pointers, no safe wrapper exists); everything else has no unsafe.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod memory;
mod problems;
mod quickstart;
mod reload;
mod tcp;
mod verify_app;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// gatehouse: an identity-aware access proxy. It signs users in, checks each
/// request against the route's policy, and forwards it upstream with a
/// signed identity. A Pomerium config.yaml runs unchanged.
#[derive(Parser)]
#[command(name = "gatehouse", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  gatehouse -c config.yaml           run the proxy\n  gatehouse check -c config.yaml     validate a configuration and exit"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default when no command is given).
    Run(RunArgs),
    /// Validate a configuration file: print every problem as FILE:LINE:COL
    /// and exit 1 if there are errors (warnings alone exit 0).
    Check(CheckArgs),
    /// Read a password on standard input and print its argon2id hash, for
    /// `password_hash` in `local_users`.
    HashPassword,
    /// Print a new P-256 private key for `signing_key` (PEM; `--base64` for
    /// the base64 form Pomerium's docs use).
    Keygen {
        #[arg(long)]
        base64: bool,
    },
    /// Start a local demo: HTTPS on *.localhost with a locally generated
    /// CA and certificate, the built-in user directory with a demo user
    /// (the password is printed), and the verify app behind it.
    Quickstart(quickstart::QuickstartArgs),
    /// Run an upstream that shows what gatehouse forwards: the request
    /// headers and the verified identity, or the exact verification error.
    VerifyApp {
        /// Address to listen on (HTTP).
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        verify: verify_app::VerifyArgs,
    },
    /// Open a TCP tunnel (a `tcp+https` route) on a local port or on
    /// standard input and output, signing in in the browser when needed
    /// (`pomerium-cli tcp`'s flags).
    Tcp(tcp::TcpArgs),
    /// Verify a token (an X-Pomerium-Jwt-Assertion value): print its claims
    /// as JSON, or the reason it is refused and exit 1.
    VerifyToken {
        #[command(flatten)]
        verify: verify_app::VerifyArgs,
        /// The token; `-` or nothing reads it from standard input.
        token: Option<String>,
    },
}

#[derive(Args, Clone)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Unknown keys are errors (a misspelt key would leave its default in
    /// force without a word).
    #[arg(long)]
    strict: bool,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Configuration file (YAML or JSON, Pomerium format).
    #[arg(
        short = 'c',
        long = "config",
        env = "GATEHOUSE_CONFIG",
        default_value = "config.yaml"
    )]
    config: PathBuf,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Log format; default: console on a terminal, JSON otherwise.
    #[arg(long, value_enum, env = "GATEHOUSE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Unknown keys are errors: the proxy does not start, a reload is
    /// refused.
    #[arg(long, env = "GATEHOUSE_STRICT")]
    strict: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Console,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    gatehouse_config::parse_duration(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(args)) => check(&args.config.config, args.strict),
        Some(Command::Run(args)) => run(args),
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Keygen { base64 }) => {
            let pem = gatehouse_assertion::generate_pem();
            if base64 {
                use std::io::Write;
                let encoded = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    pem.as_bytes(),
                );
                let _ = writeln!(std::io::stdout(), "{encoded}");
            } else {
                print!("{pem}");
            }
            ExitCode::SUCCESS
        }
        Some(Command::Quickstart(args)) => quickstart(args),
        Some(Command::VerifyApp { listen, verify }) => verify_app_command(listen, &verify),
        Some(Command::VerifyToken { verify, token }) => verify_token_command(&verify, token),
        Some(Command::Tcp(args)) => match tcp::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gatehouse tcp: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => run(cli.run),
    }
}

fn quickstart(args: quickstart::QuickstartArgs) -> ExitCode {
    match quickstart::prepare(&args) {
        Ok((path, sidecar)) => run_with(
            RunArgs {
                config: ConfigArg { config: path },
                log_format: Some(LogFormat::Console),
                drain_timeout: Duration::from_secs(5),
                strict: false,
            },
            Some(sidecar),
        ),
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn verify_app_command(listen: std::net::SocketAddr, args: &verify_app::VerifyArgs) -> ExitCode {
    init_logging(None, "info");
    let app = match verify_app::App::new(args) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gatehouse: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(address = %listen, "verify-app is listening");
        tokio::select! {
            () = verify_app::serve(listener, app) => {}
            () = reload::terminated() => {}
        }
        ExitCode::SUCCESS
    })
}

fn verify_token_command(args: &verify_app::VerifyArgs, token: Option<String>) -> ExitCode {
    let token = match token.filter(|t| t != "-") {
        Some(t) => t,
        None => {
            let mut buf = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf) {
                eprintln!("gatehouse: cannot read the token: {e}");
                return ExitCode::FAILURE;
            }
            buf
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(verify_app::verify_token(args, token.trim())) {
        Ok(claims) => {
            println!("{claims:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse: token refused: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprintln!("Password (input is shown; pipe it in to hide it):");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("gatehouse: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("gatehouse: empty password");
        return ExitCode::FAILURE;
    }
    println!("{}", gatehouse_identity::local::hash_password(password));
    ExitCode::SUCCESS
}

/// The configuration at `path`, with `--strict` applied.
fn load(path: &Path, strict: bool) -> Result<gatehouse_config::Loaded, gatehouse_config::Rejected> {
    let loaded = gatehouse_config::load_file(path)?;
    if strict { loaded.strict() } else { Ok(loaded) }
}

fn check(path: &Path, strict: bool) -> ExitCode {
    let loaded = match load(path, strict) {
        Ok(loaded) => loaded,
        Err(rejected) => {
            let all = problems::every_problem(rejected);
            for d in &all {
                println!("{d}");
            }
            let errors = all.iter().filter(|d| d.is_error()).count();
            println!("{}: {}", path.display(), counted(errors, "error"));
            return ExitCode::FAILURE;
        }
    };
    let mut problems = loaded.warnings.clone();
    match gatehouse_policy::compile_routes(&loaded.config.routes) {
        Ok(compiled) => problems.extend(compiled.warnings),
        Err(e) => problems.extend(e),
    }
    let mut later = Vec::new();
    if let Some(key) = &loaded.config.options.signing_key
        && let Err(e) = gatehouse_assertion::SigningKeys::from_pem(&key.value)
    {
        later.push(format!("{}: {e}", key.mark));
    }
    if let Some(m) = &loaded.config.metrics_tls
        && let Err(e) = gatehouse_proxy::tls::metrics_server_config(m)
    {
        later.push(e.to_string());
    }
    if !loaded.config.insecure_server
        && !loaded.config.certificates.is_empty()
        && let Err(e) = gatehouse_proxy::tls::CertStore::new(&loaded.config.certificates)
    {
        later.push(e.to_string());
    }
    problems.sort_by_key(|d| (d.mark.line, d.mark.col));
    for d in &problems {
        println!("{d}");
    }
    for e in &later {
        println!("{e}");
    }
    let errors = problems.iter().filter(|d| d.is_error()).count() + later.len();
    let warnings = problems.len() + later.len() - errors;
    if errors > 0 {
        let warnings = match warnings {
            0 => String::new(),
            n => format!(", {}", counted(n, "warning")),
        };
        println!("{}: {}{warnings}", path.display(), counted(errors, "error"),);
        return ExitCode::FAILURE;
    }
    println!(
        "{}: configuration OK ({}, {}); {} in force, {} without effect",
        path.display(),
        counted(loaded.config.routes.len(), "route"),
        counted(warnings, "warning"),
        counted(loaded.keys.in_force.len(), "key"),
        loaded.keys.without_effect.len(),
    );
    ExitCode::SUCCESS
}

fn init_logging(format: Option<LogFormat>, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        let level = match level {
            "trace" | "debug" | "info" | "warn" | "error" => level,
            "warning" => "warn",
            "fatal" | "panic" => "error",
            _ => "info",
        };
        EnvFilter::new(format!("{level},hyper=warn,rustls=warn"))
    });
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Console
    } else {
        LogFormat::Json
    });
    // Colours only for a person at a terminal: never into files or pipes
    // (https://no-color.org turns them off there too).
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Console => builder.init(),
    }
}

fn run(args: RunArgs) -> ExitCode {
    run_with(args, None)
}

fn run_with(args: RunArgs, sidecar: Option<quickstart::Sidecar>) -> ExitCode {
    let path = args.config.config.clone();
    let loaded = match load(&path, args.strict) {
        Ok(l) => l,
        Err(rejected) => {
            for d in problems::every_problem(rejected) {
                eprintln!("{d}");
            }
            eprintln!(
                "gatehouse: refusing to start: {} has errors",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let level = loaded
        .config
        .options
        .log_level
        .as_ref()
        .map(|l| l.value.to_ascii_lowercase())
        .unwrap_or_else(|| "info".into());
    init_logging(args.log_format, &level);
    for w in &loaded.warnings {
        tracing::warn!(config = %path.display(), "{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    memory::start();
    match runtime.block_on(serve(
        path,
        loaded.config,
        args.drain_timeout,
        sidecar,
        args.strict,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    path: PathBuf,
    config: gatehouse_config::Config,
    drain: Duration,
    sidecar: Option<quickstart::Sidecar>,
    strict: bool,
) -> anyhow::Result<()> {
    let mut banner = None;
    if let Some(sidecar) = sidecar {
        let app = verify_app::App::new(&sidecar.verify).map_err(anyhow::Error::msg)?;
        sidecar.listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(sidecar.listener)?;
        tracing::info!(address = %listener.local_addr()?, "verify app is listening");
        tokio::spawn(verify_app::serve(listener, app));
        banner = Some(sidecar.banner);
    }
    let watched = config.watched_files.clone();
    // `:9090` listens on every address, as Go's `net.Listen` reads it.
    let listen_on = |a: &str| match a.starts_with(':') {
        true => format!("0.0.0.0{a}"),
        false => a.to_string(),
    };
    let metrics_address = config
        .options
        .metrics_address
        .as_ref()
        .map(|a| listen_on(a.value.trim()));
    let health_address = config
        .options
        .health_check_addr
        .as_ref()
        .map(|a| a.value.trim())
        .filter(|a| !a.is_empty())
        .map(listen_on);
    let metrics_auth = config
        .options
        .metrics_basic_auth
        .as_ref()
        .map(|a| a.value.clone());
    // The console serves its routes through the proxy and is handed the
    // proxy for what it does outside a request (the binary owns both).
    let console = Arc::new(gatehouse_console::Console::new());
    let proxy = gatehouse_proxy::Proxy::new(config, Some(console.clone()))?;
    if let Some(addr) = metrics_address {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on metrics_address {addr}: {e}"))?;
        let tls = match &proxy.runtime().config.metrics_tls {
            Some(m) => Some(gatehouse_proxy::tls::metrics_server_config(m)?),
            None => None,
        };
        tracing::info!(
            address = %listener.local_addr()?,
            tls = tls.is_some(),
            "metrics are served at /metrics"
        );
        tokio::spawn(gatehouse_proxy::metrics::serve(
            listener,
            proxy.metrics().clone(),
            metrics_auth,
            tls,
        ));
    }
    if let Some(addr) = health_address {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on health_check_addr {addr}: {e}"))?;
        tracing::info!(
            address = %listener.local_addr()?,
            "health checks are served at /startupz, /readyz, /healthz and /status"
        );
        tokio::spawn(gatehouse_proxy::health::serve(listener, proxy.clone()));
    }
    // Console routes and settings are in force before the first request.
    console.start(&proxy).await;
    let routes = proxy.runtime().config.routes.len();
    let listeners = gatehouse_proxy::bind(&proxy).await?;
    reload::spawn(path, watched, proxy.clone(), console, strict);
    let settings = proxy.settings();
    tracing::info!(
        address = %listeners.main_addr()?,
        tls = !settings.insecure,
        routes,
        version = env!("CARGO_PKG_VERSION"),
        "gatehouse is listening"
    );
    if let Some(banner) = banner {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }
    gatehouse_proxy::serve(proxy, listeners, reload::terminated(), drain).await;
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// `1 route`, `2 routes`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
