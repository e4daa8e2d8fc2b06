//! Loading a configuration: the file or text, environment overrides,
//! `*_file` secrets, an optional layer laid over the tree (the console's
//! overlay), then validation and compilation.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::compiled::Config;
use crate::diagnostic::Diagnostic;
use crate::input::read_limited;
use crate::model::Options;
use crate::yaml::{self, Mark};
use crate::{compile, de, origin, registry};

/// A change laid over the parsed tree after the environment and the
/// secret files, before anything is checked (the console's overlay).
pub(crate) type Layer<'a> = &'a dyn Fn(&mut yaml::Node);

/// A successfully loaded configuration and the warnings it produced.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    /// The keys the file sets, in force and without effect.
    pub keys: registry::KeyCounts,
}

/// A configuration that cannot run: every error (and warning) found.
#[derive(Debug)]
pub struct Rejected {
    pub diagnostics: Vec<Diagnostic>,
    /// Each route's authorization as written, when the configuration got
    /// as far as its routes: the policy crate checks them too, so `check`
    /// reports policy mistakes beside the others.
    pub policies: Vec<RoutePolicy>,
}

/// A route's authorization as written, with what names the route.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    pub label: String,
    pub mark: Mark,
    pub authorization: crate::compiled::Authorization,
}

impl Rejected {
    pub fn new(diagnostics: Vec<Diagnostic>) -> Rejected {
        Rejected {
            diagnostics,
            policies: Vec::new(),
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// Loads a configuration file, with overrides from the process environment.
pub fn load_file(path: &Path) -> Result<Loaded, Rejected> {
    load_file_with_env(path, &|k| std::env::var(k).ok())
}

/// Loads a configuration file with an explicit environment (for tests).
pub fn load_file_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Rejected> {
    load_file_inner(path, env, None)
}

pub(crate) fn load_file_inner(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    layer: Option<Layer<'_>>,
) -> Result<Loaded, Rejected> {
    let origin = path.display().to_string();
    let file_mark = Mark {
        origin: origin.as_str().into(),
        line: 1,
        col: 1,
    };
    let text = match read_limited(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => return Err(reject(file_mark, "the file is not valid UTF-8")),
        },
        // No line to point at: the file's name alone.
        Err(e) => {
            let whole = Mark {
                line: 0,
                col: 0,
                ..file_mark
            };
            return Err(reject(
                whole,
                format!("cannot read config file: {}", crate::input::io_reason(&e)),
            ));
        }
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        return Err(reject(
            file_mark,
            "TOML configuration is not supported; use YAML or JSON",
        ));
    }
    let base_dir = path.parent().unwrap_or(Path::new("."));
    load_str_inner(&text, &origin, base_dir, env, layer)
}

fn reject(mark: Mark, message: impl Into<String>) -> Rejected {
    Rejected::new(vec![Diagnostic::error(mark, message)])
}

/// Loads configuration text. `origin` names it in diagnostics; relative file
/// paths inside it are resolved against `base_dir`.
pub fn load_str(
    text: &str,
    origin: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Rejected> {
    load_str_inner(text, origin, base_dir, env, None)
}

fn load_str_inner(
    text: &str,
    origin: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    layer: Option<Layer<'_>>,
) -> Result<Loaded, Rejected> {
    let file_mark = Mark {
        origin: origin.into(),
        line: 1,
        col: 1,
    };
    let mut root = yaml::parse(text, origin)
        .map_err(|e| Rejected::new(vec![Diagnostic::error(e.mark, e.message)]))?;
    if !matches!(root.value, yaml::Value::Map(_)) {
        if root.is_null() {
            root = yaml::Node::empty_map(file_mark.clone());
        } else {
            let kind = root.kind();
            return Err(reject(
                root.mark,
                format!("the configuration must be a mapping of options, found {kind}"),
            ));
        }
    }
    let mut diags = Vec::new();
    apply_env(&mut root, env, &mut diags);
    let (secret_files, unreadable_secrets) = read_secret_files(&mut root, base_dir, &mut diags);
    if let Some(layer) = layer {
        layer(&mut root);
    }
    // Each source was parsed within the limits; together they must be too.
    if let Err(e) = yaml::check_limits(&root) {
        diags.push(Diagnostic::error(e.mark, e.message));
        return Err(Rejected::new(diags));
    }
    let survey = registry::check(&root, env, de::struct_fields::<Options>(), &mut diags);

    // A value of the wrong type is reported, then set aside so the rest
    // of the file is still read: every mistake in one pass, not the first.
    let mut attempts = 0;
    let (options, ctx) = loop {
        let ctx = de::Context::default();
        match de::from_node(&root, &ctx) {
            Ok(o) => break (o, ctx),
            Err(e) => {
                attempts += 1;
                let set_aside = match &e.mark {
                    Some(m) if attempts < 64 => root.remove_at(m),
                    _ => false,
                };
                diags.push(Diagnostic::error(
                    e.mark.unwrap_or(file_mark.clone()),
                    e.message,
                ));
                if !set_aside {
                    return Err(Rejected::new(diags));
                }
            }
        }
    };
    // Values from the environment share one mark: compare names too. A
    // set, as a file may hold a key per route for a quarter million routes.
    let reported: std::collections::HashSet<(&str, &Mark)> = survey
        .reported
        .iter()
        .map(|(k, m)| (k.as_str(), m))
        .collect();
    let mut hinted = 0;
    for (key, mark) in ctx.unknown_keys.into_inner() {
        if !reported.contains(&(key.as_str(), &mark)) {
            // Each hint compares the key with every known one: only the
            // first few get one, so a file of unknown keys costs no more
            // than its size to read.
            let hint = hinted < HINTED_UNKNOWN_KEYS;
            hinted += usize::from(hint);
            diags.push(unknown_key(&key, mark, hint));
        }
    }

    let mut compiler = compile::Compiler {
        base_dir,
        diags,
        // Secret files are watched like every other file the config names.
        watched: secret_files,
        file_mark: file_mark.clone(),
        ppl_text_budget: compile::PPL_TEXT_BUDGET,
        policies: Vec::new(),
        unreadable_secrets,
    };
    let source = Path::new(origin).to_path_buf();
    let config = compiler.compile(options, source);
    let mut diags = std::mem::take(&mut compiler.diags);
    diags.sort_by_key(|d| (d.mark.line, d.mark.col));
    match config {
        Some(config) if !diags.iter().any(Diagnostic::is_error) => Ok(Loaded {
            config,
            warnings: diags,
            keys: survey.keys,
        }),
        _ => Err(Rejected {
            diagnostics: diags,
            policies: compiler.policies,
        }),
    }
}

/// A key neither the model nor [`registry::KEYS`] knows, with the known
/// key it was most likely meant to be.
fn unknown_key(key: &str, mark: Mark, hint: bool) -> Diagnostic {
    let hint = if hint {
        did_you_mean_hint(key, known_keys())
    } else {
        String::new()
    };
    // A file may carry options for a newer version; the console and its
    // API write what they mean, so a key they send must be one we know.
    if origin::target(&mark).is_some() {
        return Diagnostic::error(mark, format!("unknown route option `{key}`{hint}"));
    }
    Diagnostic {
        unknown_key: true,
        ..Diagnostic::warning(
            mark,
            format!("unknown config option `{key}`{IGNORED}{hint}"),
        )
    }
}

/// What an unknown key's warning says of it; `--strict` says otherwise.
const IGNORED: &str = " (ignored)";

/// Unknown keys that get a "did you mean" (the first ones in the file).
const HINTED_UNKNOWN_KEYS: usize = 32;

impl Loaded {
    /// The warnings about keys gatehouse does not know.
    pub fn unknown_keys(&self) -> impl Iterator<Item = &Diagnostic> {
        self.warnings.iter().filter(|d| d.unknown_key)
    }

    /// Under `--strict` (`check`, `run` and every reload): a key gatehouse
    /// does not know refuses the configuration, as a misspelt key's default
    /// would otherwise apply silently.
    pub fn strict(self) -> Result<Loaded, Rejected> {
        if self.unknown_keys().next().is_none() {
            return Ok(self);
        }
        let diagnostics = self
            .warnings
            .into_iter()
            .map(|mut d| {
                if d.unknown_key {
                    d.severity = crate::diagnostic::Severity::Error;
                    d.message = d.message.replacen(IGNORED, " (--strict)", 1);
                }
                d
            })
            .collect();
        // Each route's authorization, so its mistakes are reported too.
        let policies = self
            .config
            .routes
            .iter()
            .map(|r| RoutePolicy {
                label: r.label().to_string(),
                mark: r.mark.clone(),
                authorization: r.authorization.clone(),
            })
            .collect();
        Err(Rejected {
            diagnostics,
            policies,
        })
    }
}

/// `; did you mean `x`?` when a candidate is close to `word`, else nothing.
pub fn did_you_mean_hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// The candidate closest to `word` as a misspelling: at most one edit per
/// four letters, at most three.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k)
}

fn known_keys() -> impl Iterator<Item = &'static str> {
    registry::KEYS
        .iter()
        .map(|e| e.key)
        .filter(|k| !k.ends_with('*'))
        .chain(de::struct_fields::<Options>().iter().copied())
        .chain(
            de::struct_fields::<crate::model::RouteOptions>()
                .iter()
                .copied(),
        )
}

/// Edit distance counting a swap of two neighbours as one edit (the
/// commonest typo: `emial`), as the optimal string alignment distance.
/// Keys are short: the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    // A long word is no misspelling of a key: refused before any copy.
    if a.chars().nth(64).is_some() || b.chars().nth(64).is_some() {
        return usize::MAX;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = best;
        }
    }
    d[a.len() * w + b.len()]
}

/// Every top-level key may also come from the environment, named in upper
/// case (`COOKIE_SECRET`); the environment wins over the file, as Pomerium.
/// Structured values (routes, maps) are read as YAML; `POLICY`/`ROUTES` may
/// be base64, and `HEADERS` sets `set_response_headers`.
fn apply_env(
    root: &mut yaml::Node,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut names: Vec<(&str, String)> = de::struct_fields::<Options>()
        .iter()
        .map(|f| (*f, f.to_ascii_uppercase()))
        .collect();
    names.push(("set_response_headers", "HEADERS".to_string()));
    for (key, var) in names {
        let Some(value) = env(&var) else { continue };
        let mark = Mark::env(&var);
        let structured = matches!(
            key,
            "routes"
                | "policy"
                | "certificates"
                | "local_users"
                | "identity_providers"
                | "runtime_flags"
        ) || (value.trim_start().starts_with('{')
            || value.trim_start().starts_with('['));
        let node = if structured {
            let text = if matches!(key, "routes" | "policy")
                && !value.trim_start().starts_with(['[', '-', '{'])
            {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or(value.clone())
            } else {
                value.clone()
            };
            match yaml::parse(&text, &mark.origin) {
                Ok(mut n) => {
                    n.relabel(&mark);
                    n
                }
                Err(e) => {
                    diags.push(Diagnostic::error(mark, format!("{}: {}", var, e.message)));
                    continue;
                }
            }
        } else {
            yaml::Node::scalar(value, mark.clone())
        };
        set_key(root, key, node, mark);
    }
    // `downstream_mtls`'s keys one by one (`DOWNSTREAM_MTLS_CA_FILE`), as
    // Pomerium reads them; they win over the file's.
    for sub in [
        "ca",
        "ca_file",
        "crl",
        "crl_file",
        "enforcement",
        "match_subject_alt_names",
        "max_verify_depth",
    ] {
        let var = format!("DOWNSTREAM_MTLS_{}", sub.to_ascii_uppercase());
        // Set to nothing: not set, so a blank variable never unsets the
        // file's CA (which would switch client certificates off).
        let Some(value) = env(&var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let mark = Mark::env(&var);
        let node = if sub == "match_subject_alt_names" {
            match yaml::parse(&value, &mark.origin) {
                Ok(mut n) => {
                    n.relabel(&mark);
                    n
                }
                Err(e) => {
                    diags.push(Diagnostic::error(mark, format!("{var}: {}", e.message)));
                    continue;
                }
            }
        } else {
            yaml::Node::scalar(value, mark.clone())
        };
        if !matches!(
            root.get("downstream_mtls").map(|n| &n.value),
            Some(yaml::Value::Map(_))
        ) {
            set_key(
                root,
                "downstream_mtls",
                yaml::Node::empty_map(mark.clone()),
                mark.clone(),
            );
        }
        if let yaml::Value::Map(entries) = &mut root.value
            && let Some((_, mtls)) = entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some("downstream_mtls"))
        {
            set_key(mtls, sub, node, mark);
        }
    }
}

fn set_key(root: &mut yaml::Node, key: &str, value: yaml::Node, mark: Mark) {
    if let yaml::Value::Map(entries) = &mut root.value {
        match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
            Some(entry) => entry.1 = value,
            None => entries.push((yaml::Node::scalar(key, mark), value)),
        }
    }
}

/// Top-level options whose values are secrets: never exported (the
/// console), echoed or logged. `true`: a `<key>_file` is read as the value
/// (`certificate_key_file` stays a path, for the certificate code).
pub const SECRET_KEYS: &[(&str, bool)] = &[
    ("shared_secret", true),
    ("cookie_secret", true),
    ("idp_client_secret", true),
    ("signing_key", true),
    ("databroker_storage_connection_string", true),
    ("metrics_basic_auth", true),
    ("certificate_key", false),
    ("metrics_certificate_key", false),
    ("autocert_eab_mac_key", false),
    ("idp_service_account", false),
    (
        "google_cloud_serverless_authentication_service_account",
        false,
    ),
    ("ssh_host_keys", false),
    ("ssh_user_ca_key", false),
    // Often a collector's credentials (`Authorization=Bearer …`).
    ("otel_exporter_otlp_headers", false),
    ("otel_exporter_otlp_traces_headers", false),
];

/// Route options whose values are secrets: never exported (the console).
pub const ROUTE_SECRET_KEYS: &[&str] = &[
    "idp_client_secret",
    "tls_client_key",
    "kubernetes_service_account_token",
];

/// `shared_secret_file` etc.: the file's content becomes the option's value
/// (trailing newline removed). The `*_file` keys that Pomerium keeps as
/// paths (certificates, CA, user directory) are handled by the compiler.
/// Puts the content of each `<secret>_file` in place of `<secret>`; the
/// files read, for hot reload.
fn read_secret_files(
    root: &mut yaml::Node,
    base_dir: &Path,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<PathBuf>, Vec<String>) {
    let mut read_files = Vec::new();
    let mut unreadable = Vec::new();
    let file_keys = SECRET_KEYS.iter().filter(|(_, file)| *file).map(|(k, _)| k);
    for key in file_keys {
        let file_key = format!("{key}_file");
        let Some(path_node) = root.get(&file_key).cloned() else {
            continue;
        };
        let Some(path) = path_node.as_str().filter(|p| !p.is_empty()) else {
            continue;
        };
        let full = crate::input::resolve(base_dir, path);
        let read = read_limited(&full).and_then(|b| {
            String::from_utf8(b).map_err(|_| std::io::Error::other("it is not valid UTF-8"))
        });
        match read {
            Ok(content) => {
                if root.get(key).is_some() {
                    diags.push(Diagnostic::warning(
                        path_node.mark.clone(),
                        format!("both `{key}` and `{file_key}` are set; using `{file_key}`"),
                    ));
                }
                read_files.push(full);
                let value = content.trim_end_matches(['\n', '\r']).to_string();
                set_key(
                    root,
                    key,
                    yaml::Node::scalar(value, path_node.mark.clone()),
                    path_node.mark.clone(),
                );
            }
            Err(e) => {
                unreadable.push(key.to_string());
                diags.push(Diagnostic::error(
                    path_node.mark.clone(),
                    format!(
                        "cannot read `{file_key}` `{}`: {}",
                        full.display(),
                        crate::input::io_reason(&e)
                    ),
                ));
            }
        }
    }
    (read_files, unreadable)
}
