//! The `gatehouse` binary: command line, logging, signals and the reload
//! loop. It wires the crates together and owns no proxy logic itself.
#![forbid(unsafe_code)]

mod reload;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    Check(ConfigArg),
    /// Read a password on standard input and print its argon2id hash, for
    /// `password_hash` in `local_users`.
    HashPassword,
    /// Print a new P-256 private key for `signing_key` (PEM; `--base64` for
    /// the base64 form Pomerium's docs use).
    Keygen {
        #[arg(long)]
        base64: bool,
    },
    /// Start a local demo: HTTPS on *.localhost with a self-signed
    /// certificate, the built-in user directory with a demo user (the
    /// password is printed), and a page that shows who you are.
    Quickstart(QuickstartArgs),
}

#[derive(Args, Clone)]
struct QuickstartArgs {
    /// Port to serve HTTPS on (loopback only).
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Where to write the generated configuration (default: a new
    /// temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
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
        Some(Command::Check(args)) => check(&args.config),
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
        None => run(cli.run),
    }
}

fn quickstart(args: QuickstartArgs) -> ExitCode {
    use std::fmt::Write;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let password: String = (0..16)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("gatehouse-quickstart-{}", std::process::id())),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gatehouse: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let hash = gatehouse_identity::local::hash_password(&password);
    let mut config = String::new();
    let _ = write!(
        config,
        "# Written by `gatehouse quickstart`. Edit and save: changes apply live.
address: 127.0.0.1:{port}
idp_provider: local
local_users:
  - username: demo
    email: demo@example.com
    name: Demo User
    groups: [demo]
    password_hash: '{hash}'
routes:
  # Sign in, then see who gatehouse says you are.
  - from: https://verify.localhost
    redirect: {{path_redirect: /.pomerium/, response_code: 302}}
    allow_any_authenticated_user: true
  # A public page served by gatehouse itself.
  - from: https://hello.localhost
    response: {{status: 200, body: \"gatehouse is running\\n\"}}
    allow_public_unauthenticated_access: true
",
        port = args.port
    );
    let path = dir.join("config.yaml");
    if let Err(e) = std::fs::write(&path, config) {
        eprintln!("gatehouse: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("gatehouse quickstart");
    println!(
        "  open      https://verify.localhost:{} (accept the self-signed certificate)",
        args.port
    );
    println!("  username  demo");
    println!("  password  {password}");
    println!(
        "  config    {} (edit it: changes apply live)",
        path.display()
    );
    println!();
    run(RunArgs {
        config: ConfigArg { config: path },
        log_format: Some(LogFormat::Console),
        drain_timeout: Duration::from_secs(5),
    })
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

fn check(path: &Path) -> ExitCode {
    match gatehouse_config::load_file(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            let mut failed = false;
            if let Some(key) = &loaded.config.options.signing_key {
                if let Err(e) = gatehouse_assertion::SigningKeys::from_pem(&key.value) {
                    println!("{}: {e}", key.mark);
                    failed = true;
                }
            }
            if !loaded.config.insecure_server && !loaded.config.certificates.is_empty() {
                if let Err(e) = gatehouse_proxy::tls::CertStore::new(&loaded.config.certificates) {
                    println!("{e}");
                    failed = true;
                }
            }
            if failed {
                return ExitCode::FAILURE;
            }
            println!(
                "{}: configuration OK ({} routes, {} warnings)",
                path.display(),
                loaded.config.routes.len(),
                loaded.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(rejected) => {
            print!("{rejected}");
            let errors = rejected.diagnostics.iter().filter(|d| d.is_error()).count();
            println!("{}: {errors} error(s)", path.display());
            ExitCode::FAILURE
        }
    }
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    let path = args.config.config.clone();
    let loaded = match gatehouse_config::load_file(&path) {
        Ok(l) => l,
        Err(rejected) => {
            eprint!("{rejected}");
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
    match runtime.block_on(serve(path, loaded.config, args.drain_timeout)) {
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
) -> anyhow::Result<()> {
    let watched = config.watched_files.clone();
    let routes = config.routes.len();
    let proxy = gatehouse_proxy::Proxy::new(config)?;
    let listeners = gatehouse_proxy::bind(&proxy).await?;
    let settings = proxy.settings();
    tracing::info!(
        address = %listeners.main_addr()?,
        tls = !settings.insecure,
        routes,
        version = env!("CARGO_PKG_VERSION"),
        "gatehouse is listening"
    );
    reload::spawn(path, watched, proxy.clone());
    gatehouse_proxy::serve(proxy, listeners, reload::terminated(), drain).await;
    tracing::info!("gatehouse stopped");
    Ok(())
}
