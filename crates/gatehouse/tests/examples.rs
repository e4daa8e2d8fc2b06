//! Every example configuration (examples/*.yaml and examples/pomerium/*.yaml,
//! found by listing the directories, so a new one is covered at once) passes
//! `gatehouse check` with no warning on a fresh machine, after exactly the
//! commands its header gives and nothing else.
//!
//! A header command is a comment line `#   $ command`; one ending in `\`
//! goes on over the next comment line. The commands run in order in one
//! `sh -eu`, in an empty directory of their own (where the copy of the
//! example is), with the gatehouse binary on PATH and a nearly empty
//! environment. `/etc/gatehouse`, where the examples keep their files, is
//! a directory inside it (in the commands and the configuration alike).
//! Only a few programs may run, and no other absolute path may be named:
//! a header is checked before anything of it runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;

/// The directory the examples keep their files in.
const ETC: &str = "/etc/gatehouse";

/// What a header may run: making keys, certificates and secrets. A
/// program with a list runs only those subcommands.
const PROGRAMS: &[(&str, &[&str])] = &[
    ("gatehouse", &["keygen", "hash-password"]),
    ("openssl", &["req", "x509", "ca", "genpkey", "pkey", "rand"]),
    ("head", &[]),
    ("base64", &[]),
    ("echo", &[]),
    ("touch", &[]),
    ("mkdir", &[]),
    ("cd", &[]),
    ("umask", &[]),
];

/// The `#   $ ` commands of an example, continuation lines joined.
fn header_commands(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if open {
            let last = out.last_mut().expect("a command is open");
            let rest = line.strip_prefix('#').unwrap_or(line).trim();
            last.push(' ');
            last.push_str(rest);
        } else if let Some(cmd) = line.strip_prefix("#   $ ") {
            out.push(cmd.trim().to_string());
        } else {
            continue;
        }
        let last = out.last_mut().expect("a command was pushed");
        open = last.ends_with('\\');
        if open {
            last.pop();
            *last = last.trim_end().to_string();
        }
    }
    out
}

/// Shell words of one command: `(word, quoted)`; only single quotes.
fn words(cmd: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut rest = cmd.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('#') {
            break; // a comment after the command
        }
        if let Some(q) = rest.strip_prefix('\'') {
            let end = q.find('\'').ok_or("an unclosed quote")?;
            out.push((q[..end].to_string(), true));
            rest = &q[end + 1..];
            if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                return Err("a quote glued to a word".into());
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            if word.contains('\'') {
                return Err(format!("a quote inside `{word}`"));
            }
            out.push((word.to_string(), false));
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(out)
}

/// Refuses a command that could do more than make files here: only
/// [`PROGRAMS`], joined by `|` and `&&`, output by `>` to a plain name;
/// no other shell syntax; no path but `/dev/urandom`, [`ETC`] and an
/// X.509 subject (`-subj /CN=...`).
fn refuse_unsafe(cmd: &str) -> Result<(), String> {
    let words = words(cmd)?;
    let mut program_next = true;
    let mut redirect_next = false;
    let mut subcommands: Option<&[&str]> = None;
    let mut program = "";
    let mut prev = "";
    for (word, quoted) in &words {
        let after = std::mem::replace(&mut prev, word.as_str());
        // Options that would load code or write arbitrary bytes: openssl's
        // engines and providers, echo's escapes (`\177ELF...`), base64's
        // decoding. (`-config` stays: a config file made here can name a
        // module only by a path, and no path but ours passes, nor can a
        // module's bytes be written here.)
        let loads_or_decodes = match program {
            "openssl" => ["-engine", "-keygen_engine", "-provider", "-provider-path"]
                .iter()
                .any(|o| word == o || word.starts_with(&format!("{o}="))),
            "echo" => word.contains('\\') || (!quoted && word.starts_with('-')),
            "base64" => word.starts_with("-d") || word.starts_with("--d") || word == "-i",
            _ => false,
        };
        if loads_or_decodes && !program_next {
            return Err(format!("`{word}` for {program}"));
        }
        if !quoted {
            match word.as_str() {
                "|" | "&&" if !program_next && !redirect_next => {
                    program_next = true;
                    continue;
                }
                ">" if !program_next && !redirect_next => {
                    redirect_next = true;
                    continue;
                }
                _ => {}
            }
            if let Some(c) = word.chars().find(|c| "|&;<>`$(){}*?[]\\\"~".contains(*c)) {
                return Err(format!("`{c}` in `{word}`"));
            }
        }
        if word.split('/').any(|part| part == "..") {
            return Err(format!("`..` in `{word}`"));
        }
        if redirect_next {
            if word.is_empty() || word.contains('/') || word.starts_with('-') {
                return Err(format!("output to `{word}`: only to a file here"));
            }
            redirect_next = false;
            continue;
        }
        if program_next {
            let known = PROGRAMS.iter().find(|(p, _)| p == word).filter(|_| !quoted);
            let Some((_, subs)) = known else {
                return Err(format!("`{word}` is not a program a header may run"));
            };
            subcommands = Some(*subs).filter(|s| !s.is_empty());
            program = PROGRAMS
                .iter()
                .find(|(p, _)| p == word)
                .map_or("", |(p, _)| p);
            program_next = false;
            continue;
        }
        if let Some(subs) = subcommands.take() {
            if !subs.contains(&word.as_str()) {
                return Err(format!("`{word}` is not one of {subs:?}"));
            }
            continue;
        }
        let allowed = word == "/dev/urandom"
            || word == ETC
            || word.starts_with(&format!("{ETC}/"))
            || (after == "-subj" && word.starts_with("/CN="));
        if word.contains('/') && !allowed {
            return Err(format!("the path `{word}`"));
        }
    }
    if program_next || redirect_next || subcommands.is_some() {
        return Err("it ends where more must follow".into());
    }
    Ok(())
}

/// Every example configuration, by listing the directories.
fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .canonicalize()
        .unwrap();
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("pomerium")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Does what the example's header says in a fresh directory, then checks
/// the example there; `Err` says what went wrong.
fn check_as_written(example: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(example).map_err(|e| e.to_string())?;
    let commands = header_commands(&text);
    for cmd in &commands {
        refuse_unsafe(cmd).map_err(|e| format!("header command `{cmd}` refused: {e}"))?;
    }
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let etc = format!("{}{ETC}", here.display());
    let bin = here.join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("gatehouse")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let run = |cmd: &mut Command| {
        cmd.current_dir(here)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", here)
            .output()
            .unwrap()
    };

    if !commands.is_empty() {
        let script = commands.join("\n").replace(ETC, &etc);
        let out = run(Command::new("sh").args(["-eu", "-c", &script]));
        if !out.status.success() {
            return Err(format!(
                "the header's commands failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }

    let copy = here.join(example.file_name().unwrap());
    std::fs::write(&copy, text.replace(ETC, &etc)).unwrap();
    let out = run(Command::new(BIN).arg("check").arg("-c").arg(&copy));
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) {
        return Err(format!("check failed:\n{report}"));
    }
    if !report.contains(", 0 warnings);") || !report.contains(" 0 without effect") {
        return Err(format!("check warned:\n{report}"));
    }
    Ok(())
}

#[test]
fn every_example_checks_after_what_its_header_says() {
    let examples = examples();
    let mut failed = Vec::new();
    for example in &examples {
        if let Err(e) = check_as_written(example) {
            failed.push(format!("{}: {e}", example.display()));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n\n"));
    // The eight examples of today; listing must not have lost any.
    assert!(examples.len() >= 8, "{examples:?}");
}

#[test]
fn headers_are_read_as_written() {
    let text = "# Intro.\n#   $ mkdir -p /etc/gatehouse && cd /etc/gatehouse\n#   $ openssl req -x509 \\\n#       -out tls.crt\n#     not a command\naddress: :443\n";
    assert_eq!(
        header_commands(text),
        [
            "mkdir -p /etc/gatehouse && cd /etc/gatehouse",
            "openssl req -x509 -out tls.crt"
        ]
    );
}

#[test]
fn header_commands_that_could_do_harm_are_refused() {
    for ok in [
        "mkdir -p /etc/gatehouse && cd /etc/gatehouse && umask 027",
        "head -c32 /dev/urandom | base64 > cookie-secret",
        "gatehouse keygen > signing-key.pem",
        "echo 'client secret = from the provider' > idp-client-secret",
        "openssl req -x509 -subj /CN=a.example.com -addext 'subjectAltName=DNS:*.example.com' -out tls.crt",
        "touch index.txt   # a comment",
    ] {
        assert_eq!(refuse_unsafe(ok), Ok(()), "{ok}");
    }
    for bad in [
        "rm -rf /",
        "cat /etc/passwd",
        "head -c32 /dev/urandom > /etc/passwd",
        "echo x > ../x",
        "echo $(id) > x",
        "echo x; rm x",
        "echo x > x && sh x",
        "openssl req -out /tmp/x",
        "cd ..",
        "echo x |",
        "echo 'unclosed > x",
        "openssl req -addext subjectAltName=DNS:*.example.com",
        "'gatehouse' keygen",
        "gatehouse run -c x.yaml",
        "openssl s_client -connect example.com:443",
        "openssl rand -provider-path . -provider evil 4",
        "openssl req -engine evil -out x",
        "echo '\\177ELF' > evil.so",
        "echo -e x > x",
        "head -c4 /dev/urandom | base64 -d > x",
        "openssl req -out=/tmp/x",
        "openssl req -out /CN=x",
        "openssl",
    ] {
        assert!(refuse_unsafe(bad).is_err(), "{bad}");
    }
}
