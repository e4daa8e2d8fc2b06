//! Configuration input: what a configuration file (or a reload, or a file it
//! names) can make gatehouse do. YAML alias bombs and deep nesting are
//! refused with a position and bounded memory, inputs are read only up to a
//! size limit (`/dev/zero`, endless pipes), huge values are never echoed
//! whole, a byte order mark does not hide the first key, Pomerium settings
//! that gatehouse does not implement and that protect something are refused
//! by `check`, `run` and reload, and the quickstart's secrets are private.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A "billion laughs" file: 10 levels of lists of 9 aliases of the level
/// before (9^10 values from ~350 bytes).
fn alias_bomb() -> String {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=10 {
        let items = vec![format!("*a{}", i - 1); 9].join(",");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    text
}

/// Runs `gatehouse check` on `config` under a 2 GiB address-space limit
/// and a 120 s CPU-time limit (so a regression aborts instead of taking
/// the machine), sampling its peak resident memory while it runs. Returns
/// (exit code, output, peak KiB); its output is read while it runs, so
/// any amount of it can be written.
fn check_bounded(config: &Path) -> (i32, String, u64) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152; ulimit -t 120; exec \"$0\" check -c \"$1\"")
        .arg(BIN)
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            pipe.read_to_end(&mut out).unwrap();
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut peak = 0;
    let status = loop {
        peak = peak.max(proc_status_kib(child.id(), "VmHWM:"));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let text = stdout.join().unwrap() + &stderr.join().unwrap();
    (status.code().unwrap_or(-1), text, peak)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const ROUTE: &str = "routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n";

#[test]
fn an_alias_bomb_is_refused_at_the_alias_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "bomb.yaml", &alias_bomb());
    let (code, out, peak_kib) = check_bounded(&config);
    assert_eq!(code, 1, "{out}");
    let at = format!("{}:6:", config.display());
    assert!(out.contains(&at), "no position `{at}` in:\n{out}");
    assert!(
        out.contains("alias `*a4` makes the configuration take more than 64 MiB"),
        "{out}"
    );
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB:\n{out}");
}

/// PPL given as text (`sub_policies.source_ppl`) is parsed on its own: each
/// string under the file's budget is not enough, as forty strings of ~10 MiB
/// once read would hold 400 MiB. All PPL text of a load shares one budget.
#[test]
fn many_ppl_strings_share_one_tree_budget() {
    let mut ppl = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=4 {
        let items = vec![format!("*a{}", i - 1); 9].join(",");
        ppl.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let mut text = format!("{ROUTE}    sub_policies:\n");
    for p in 0..40 {
        text.push_str(&format!("      - id: p{p}\n        source_ppl: |\n"));
        for line in ppl.lines() {
            text.push_str(&format!("          {line}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "ppl.yaml", &text);
    let (code, out, peak_kib) = check_bounded(&config);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("makes the configuration take more than"),
        "{out}"
    );
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB:\n{out}");
}

/// A file of unknown keys and many routes costs what reading it costs:
/// only the first 32 unknown keys get a "did you mean" (each compares the
/// key with every known one); keys reported per route, duplicate routes and
/// each route's errors are found without a walk over all the others. This
/// file took 10 s of CPU per load (and per reload) in a release build, more
/// than 10 minutes in a debug one; now 1.3 s and 40 s.
#[test]
fn a_flood_of_unknown_keys_is_reported_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    // Top-level keys, each one edit away from a real one, then routes that
    // each set a key gatehouse reports (ignored) and an unknown one.
    let mut text = String::with_capacity(8 << 20);
    for i in 0..1000 {
        text.push_str(&format!("authenticate_service_url{i:03}: 1\n"));
    }
    for i in 0..100_000 {
        text.push_str(&format!("zq{i:06}: 1\n"));
    }
    text.push_str("routes:\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "  - {{from: https://r{i}.example.com, to: http://127.0.0.1:1, allow_public_unauthenticated_access: true, tls_upstream_allow_renegotiation: true, tos: {i}}}\n"
        ));
    }
    assert!(text.len() < 8 << 20, "{} bytes", text.len());
    let config = write(dir.path(), "flood.yaml", &text);
    let (code, out, _) = check_bounded(&config);
    assert_eq!(
        code,
        0,
        "check did not finish within its CPU limit: {}",
        &out[out.len().saturating_sub(2000)..]
    );
    assert!(out.contains("configuration OK (20000 routes, 141000 warnings)"));
    assert!(out.contains("unknown config option `zq099999` (ignored)"));
    assert!(out.contains("unknown config option `tos`"));
    // The first 32 near-misses get their hint, no other key does.
    assert!(out.contains(
        "`authenticate_service_url000` (ignored); did you mean `authenticate_service_url`?"
    ));
    assert!(out.contains("`authenticate_service_url031` (ignored); did you mean"));
    assert!(out.contains("`authenticate_service_url032` (ignored)\n"));
    assert_eq!(out.matches("did you mean").count(), 32);
}

#[test]
fn deep_nesting_is_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    // Block style: the YAML scanner itself sets no limit on it.
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("{}k:\n", "  ".repeat(i)));
    }
    let config = write(dir.path(), "deep.yaml", &text);
    let (code, out, _) = check_bounded(&config);
    assert_eq!(code, 1, "{out}");
    // Line 65 holds the 65th mapping (the column is where the parser
    // places a block mapping's start: at its first key's colon).
    let expected = format!("{}:65:", config.display());
    assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    assert!(
        out.contains("lists and mappings are nested more than 64 levels deep"),
        "{out}"
    );
    // Flow style: refused too, by whichever limit comes first.
    let config = write(
        dir.path(),
        "flow.yaml",
        &format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let (code, out, _) = check_bounded(&config);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("flow.yaml:1:"), "{out}");
}

#[test]
fn dev_zero_and_endless_pipes_are_refused_by_size() {
    let (code, out, _) = check_bounded(Path::new("/dev/zero"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("/dev/zero: cannot read config file: it is larger than the limit of 8 MiB"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let writer_path = fifo.clone();
    // Writes until the reader goes away (gatehouse stopped reading).
    let writer = std::thread::spawn(move || {
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap();
        let chunk = vec![b'#'; 64 * 1024];
        let mut written = 0usize;
        while pipe.write_all(&chunk).is_ok() {
            written += chunk.len();
        }
        written
    });
    let (code, out, _) = check_bounded(&fifo);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("larger than the limit of 8 MiB"), "{out}");
    let written = writer.join().unwrap();
    assert!(written < 64 << 20, "gatehouse read {written} bytes");
}

#[test]
fn a_huge_bad_value_is_not_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let value = "x".repeat(7 << 20);
    let config = write(
        dir.path(),
        "big.yaml",
        &format!("timeout_read: {value}\n{ROUTE}"),
    );
    let (code, out) = check_file(&config);
    assert_eq!(code, 1, "{}", &out[..out.len().min(2000)]);
    assert!(out.len() < 2048, "{} bytes of output", out.len());
    assert!(
        out.contains(":1:15: invalid duration `xxxx") && out.contains("…(7340032 bytes)`"),
        "{out}"
    );
}

#[test]
fn a_byte_order_mark_does_not_hide_the_first_key() {
    let (code, out) = check(&format!("\u{feff}{ROUTE}"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("configuration OK (1 route, 0 warnings)"),
        "{out}"
    );
    // The first key is read as itself: its bad value is an error, not an
    // unknown key dropped with a warning.
    let (code, out) = check("\u{feff}authenticate_service_url: not a url\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("config.yaml:1:"), "{out}");
    assert!(!out.contains("unknown config option"), "{out}");
}

/// Settings gatehouse cannot honour as written, each an error at its key
/// (never dropped with a warning, which would open the route):
/// `(what, file text, line:col, the message)`.
fn refused_cases() -> Vec<(&'static str, String, (u32, u32), &'static str)> {
    vec![
        (
            "a route's own client without an OpenID provider",
            format!("{ROUTE}    idp_client_id: another-client\n"),
            (5, 20),
            "a route's own idp_client_id / idp_client_secret needs an OpenID Connect idp_provider",
        ),
        (
            "rules only as Rego",
            format!("{ROUTE}    sub_policies: [{{id: x, rego: ['package pomerium.policy']}}]\n"),
            (5, 28),
            "sub_policies: `rego` is not run by gatehouse",
        ),
        (
            "client certificates asked for with a blank CA",
            format!("downstream_mtls: {{ca: '', enforcement: reject_connection}}\n{ROUTE}"),
            (1, 18),
            "downstream_mtls needs a `ca` (or `ca_file`), or a route's `tls_downstream_client_ca`",
        ),
        (
            "upstream probes as fast as the config asks (a probe storm)",
            format!(
                "{ROUTE}    health_checks: [{{interval: 100ms, timeout: 50ms, tcp_health_check: {{}}}}]\n"
            ),
            (5, 21),
            "a health check needs an `interval` of at least 1s and a non-zero `timeout` no longer than it",
        ),
        (
            "a sub-policy's rules that are not text (never dropped)",
            format!("{ROUTE}    sub_policies: [{{id: x, rego: [{{deny: 1}}]}}]\n"),
            (5, 35),
            "sub_policies: `rego` takes text or a list of text",
        ),
        (
            "paths not normalized",
            format!("normalize_path: false\n{ROUTE}"),
            (1, 17),
            "normalize_path: false is not supported",
        ),
    ]
}

#[test]
fn settings_gatehouse_cannot_honour_are_refused_by_check() {
    for (what, text, (line, col), message) in refused_cases() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), "config.yaml", &text);
        let (code, out) = check_file(&config);
        assert_eq!(code, 1, "{what}: {out}");
        let expected = format!("{}:{line}:{col}: {message}", config.display());
        assert!(
            out.contains(&expected),
            "{what}: missing `{expected}` in:\n{out}"
        );
    }
}

#[test]
fn settings_gatehouse_cannot_honour_are_refused_by_run() {
    for (what, text, (line, col), message) in refused_cases() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = write(
            dir.path(),
            "config.yaml",
            &format!("address: 127.0.0.1:{port}\n{text}"),
        );
        let out = Command::new(BIN)
            .args(["run", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("refusing to start"), "{err}");
        // One line lower: the address line comes first.
        let expected = format!("{}:{}:{col}: {message}", config.display(), line + 1);
        assert!(
            err.contains(&expected),
            "{what}: missing `{expected}` in:\n{err}"
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_with_a_refused_setting_or_a_bomb_keeps_the_last_good_config() {
    let up = echo_upstream("a").await;
    let base = format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n  - from: https://one.localhost\n    to: http://{}\n    allow_public_unauthenticated_access: true\n",
        up.addr
    );
    let gh = Gatehouse::start(&base);
    let c = gh.client(&["one.localhost"]);
    let serves = || async {
        c.get(gh.url("one.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(serves().await, 200);

    gh.write_config(&format!("{base}    idp_client_id: another-client\n"));
    assert!(gh.wait_log("reload rejected", 0), "{}", gh.log_text());
    let log = gh.log_text();
    assert!(
        log.contains("config.yaml:6:20: a route's own idp_client_id / idp_client_secret needs an OpenID Connect idp_provider"),
        "{log}"
    );
    assert_eq!(serves().await, 200, "the last good config still serves");

    let rejected = gh.log_count("reload rejected");
    gh.write_config(&format!("{base}{}", alias_bomb()));
    assert!(
        gh.wait_log("reload rejected", rejected),
        "{}",
        gh.log_text()
    );
    assert!(
        gh.log_text()
            .contains("alias `*a4` makes the configuration take more than 64 MiB"),
        "{}",
        gh.log_text()
    );
    assert_eq!(serves().await, 200, "the last good config still serves");
    assert!(
        gh.peak_rss_kib() < 300 * 1024,
        "peak RSS {} KiB",
        gh.peak_rss_kib()
    );
}

/// Mode bits of a file, without the type.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// What `gatehouse quickstart` printed and where it keeps its files.
#[derive(Debug)]
struct Started {
    dir: PathBuf,
    password: String,
    /// Every line up to the banner's end, logs included.
    output: String,
}

/// Runs `gatehouse quickstart` (with its state directory under `home`)
/// until it prints its banner, then stops it. `Err` holds what it printed
/// when it refused to start.
fn quickstart(args: &[&str], home: &Path) -> Result<Started, String> {
    let port = free_port().to_string();
    let default_port = ["--port", port.as_str()];
    let out = Command::new(BIN)
        .arg("quickstart")
        .args(if args.contains(&"--port") {
            &[][..]
        } else {
            &default_port[..]
        })
        .args(args)
        .env("XDG_STATE_HOME", home)
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    read_banner(out)
}

fn read_banner(mut child: std::process::Child) -> Result<Started, String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx2.send(line);
        }
    });
    let mut seen = Vec::new();
    let (mut password, mut dir) = (None, None);
    // gatehouse logs that it listens (stderr) before it prints the banner
    // (stdout), but the two pipes are read by two threads: the banner's
    // end may come first here. Both are waited for.
    let (mut banner_done, mut listening) = (false, false);
    let result = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                listening |= line.contains("gatehouse is listening");
                let t = line.trim_start();
                if let Some(rest) = t.strip_prefix("password") {
                    password = Some(rest.trim().to_string());
                }
                // `  files      /path (kept across runs; --reset starts over)`
                if let Some(rest) = t.strip_prefix("files") {
                    dir = Some(PathBuf::from(rest.trim_start().split(" (").next().unwrap()));
                }
                // The banner's last line.
                banner_done |= line.ends_with("(valid for localhost names only).");
                seen.push(line);
                if banner_done && listening {
                    break Ok(Started {
                        dir: dir.take().expect("the banner names the directory"),
                        password: password.take().expect("the banner names the password"),
                        output: seen.join("\n"),
                    });
                }
            }
            Err(_) => break Err(seen.join("\n")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
fn quickstart_writes_its_secrets_private() {
    let tmp = tempfile::tempdir().unwrap();
    // The default: a private directory in the user's state directory.
    let first = quickstart(&[], tmp.path()).unwrap();
    let dir = first.dir.clone();
    assert_eq!(dir, tmp.path().join("gatehouse/quickstart"));
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let secrets = [
        "config.yaml",
        "ca-key.pem",
        "localhost-key.pem",
        "signing-key.pem",
        "cookie-secret",
        "shared-secret",
        "demo-password",
        "users.yaml",
    ];
    for secret in secrets {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    for public in ["ca.pem", "localhost.pem"] {
        assert_eq!(mode(&dir.join(public)), 0o644, "{public}");
    }
    let users = std::fs::read_to_string(dir.join("users.yaml")).unwrap();
    assert!(
        users.contains("password_hash"),
        "the user file holds a secret"
    );

    // `--dir` that does not exist yet: made private; a second run over
    // older, world-readable secrets makes them private again.
    let given = tmp.path().join("given/qs");
    let given_arg = given.to_str().unwrap().to_string();
    quickstart(&["--dir", &given_arg], tmp.path()).unwrap();
    assert_eq!(mode(&given), 0o700);
    for secret in [
        "signing-key.pem",
        "config.yaml",
        "cookie-secret",
        "demo-password",
    ] {
        std::fs::set_permissions(
            given.join(secret),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    quickstart(&["--dir", &given_arg], tmp.path()).unwrap();
    for secret in secrets {
        assert_eq!(mode(&given.join(secret)), 0o600, "{secret}");
    }
    assert!(
        std::fs::read_dir(&given)
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| !e.file_name().to_string_lossy().starts_with('.')),
        "no temporary file is left behind"
    );

    // A directory others may write to is refused (they could plant a CA or
    // a configuration), and nothing is written into it.
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let refused = quickstart(&["--dir", open.to_str().unwrap()], tmp.path()).unwrap_err();
    assert!(refused.contains("no one else may write"), "{refused}");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
    // ...and so is one below such a directory (not sticky, as /tmp is):
    // another user could swap the tree between a check and an open.
    let below = open.join("qs");
    let refused = quickstart(&["--dir", below.to_str().unwrap()], tmp.path()).unwrap_err();
    assert!(refused.contains("others may change it"), "{refused}");
    assert!(!below.join("ca-key.pem").exists());

    // The CA can vouch for localhost names and loopback addresses only.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Name Constraints: critical"), "{text}");
    assert!(text.contains("DNS:localhost"), "{text}");
    let verified = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(dir.join("ca.pem"))
        .arg(dir.join("localhost.pem"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
}

#[test]
fn quickstart_keeps_its_password_ca_and_edits_until_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let first = quickstart(&[], tmp.path()).unwrap();
    let dir = first.dir.clone();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let (ca, cookie) = (read("ca.pem"), read("cookie-secret"));

    // A second run: the same password, CA and secrets.
    let second = quickstart(&[], tmp.path()).unwrap();
    assert_eq!(second.password, first.password);
    assert_eq!(read("ca.pem"), ca);
    assert_eq!(read("cookie-secret"), cookie);

    // The user's edit of the configuration is kept.
    let edited = read("config.yaml").replace("gatehouse is running", "edited by hand");
    std::fs::write(dir.join("config.yaml"), &edited).unwrap();
    // ...and names its port: another port is refused, with the way out.
    let port = read("ports").split_whitespace().next().unwrap().to_string();
    let refused = quickstart(&[], tmp.path()).unwrap_err();
    assert!(
        refused.contains(&format!("--port {port}")) && refused.contains("--reset"),
        "{refused}"
    );
    quickstart(&["--port", &port], tmp.path()).unwrap();
    assert_eq!(read("config.yaml"), edited);

    // A CA from an older version (no key kept, no name constraints) is
    // replaced, and the banner says so; a relative --dir works.
    std::fs::remove_file(dir.join("ca-key.pem")).unwrap();
    let port = read("ports").split_whitespace().next().unwrap().to_string();
    let remade = quickstart(&["--port", &port], tmp.path()).unwrap();
    assert!(remade.output.contains("A new CA"), "{}", remade.output);
    assert_ne!(read("ca.pem"), ca);
    let ca = read("ca.pem");
    let relative = Command::new(BIN)
        .current_dir(tmp.path())
        .args([
            "quickstart",
            "--dir",
            "rel/qs",
            "--port",
            &free_port().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let relative = read_banner(relative).unwrap();
    assert_eq!(relative.dir, tmp.path().join("rel/qs"));

    // --reset: everything new.
    let reset = quickstart(&["--reset"], tmp.path()).unwrap();
    assert_ne!(reset.password, first.password);
    assert_ne!(read("ca.pem"), ca);
    assert_ne!(read("cookie-secret"), cookie);
    assert!(!read("config.yaml").contains("edited by hand"));
}

#[test]
fn quickstart_config_loads_without_warnings_and_logs_plain_text() {
    let tmp = tempfile::tempdir().unwrap();
    let started = quickstart(&[], tmp.path()).unwrap();
    let logs = &started.output;
    assert!(logs.contains("gatehouse is listening"), "{logs}");
    assert!(
        !logs.contains("WARN"),
        "the quickstart's own config warns:\n{logs}"
    );
    assert!(
        !logs.contains('\x1b'),
        "colour codes off a terminal:\n{logs}"
    );
    let config = started.dir.join("config.yaml");
    let out = Command::new(BIN)
        .args(["check", "--strict", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 warnings"), "{text}");
}
