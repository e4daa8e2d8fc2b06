//! Hot reload: the config file and every file it references are watched
//! (their directories, so editors that replace files are seen too), and
//! SIGHUP reloads on demand. A broken file is logged with all its errors
//! and the last good configuration keeps serving.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use gatehouse_console::Console;
use gatehouse_proxy::Proxy;

/// Starts the reload loop. The file watcher and the SIGHUP handler are in
/// place when this returns, so an edit or a signal that follows the
/// "listening" line is never missed (an early SIGHUP would otherwise end
/// the process, its default action). A reload reads the file with
/// `console`'s routes and settings laid over it.
pub fn spawn(
    config_path: PathBuf,
    watched: Vec<PathBuf>,
    proxy: Arc<Proxy>,
    console: Arc<Console>,
    strict: bool,
) {
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            let hup_tx = tx.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP received: reloading configuration");
                    let _ = hup_tx.send(());
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on signal is off"),
    }
    let watcher = match new_watcher(tx.clone(), &watched) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch configuration files; use SIGHUP to reload");
            None
        }
    };
    tokio::spawn(run(
        config_path,
        watched,
        (proxy, console),
        watcher,
        (tx, rx),
        strict,
    ));
}

async fn run(
    config_path: PathBuf,
    mut watched: Vec<PathBuf>,
    (proxy, console): (Arc<Proxy>, Arc<Console>),
    mut watcher: Option<notify::RecommendedWatcher>,
    (tx, mut rx): (mpsc::UnboundedSender<()>, mpsc::UnboundedReceiver<()>),
    strict: bool,
) {
    while rx.recv().await.is_some() {
        // Editors write in several steps: wait for the burst to end.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while rx.try_recv().is_ok() {}
        let loaded = console
            .load_file(&config_path)
            .and_then(|l| if strict { l.strict() } else { Ok(l) });
        match loaded {
            Err(rejected) => {
                proxy.metrics().reload(false);
                // Each at its own level: a warning beside the errors stays
                // a warning.
                for d in crate::problems::every_problem(rejected) {
                    if d.is_error() {
                        tracing::error!(config = %config_path.display(), "{d}");
                    } else {
                        tracing::warn!(config = %config_path.display(), "{d}");
                    }
                }
                tracing::error!(
                    config = %config_path.display(),
                    "configuration reload rejected; the last good configuration keeps serving"
                );
            }
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!(config = %config_path.display(), "{w}");
                }
                let new_watched = loaded.config.watched_files.clone();
                let routes = loaded.config.routes.len();
                match proxy.apply(loaded.config) {
                    Ok(()) => {
                        proxy.metrics().reload(true);
                        tracing::info!(routes, "configuration reloaded");
                        // A console added by this reload starts now.
                        console.start(&proxy).await;
                        if new_watched != watched {
                            watched = new_watched;
                            watcher = new_watcher(tx.clone(), &watched).ok();
                        }
                    }
                    Err(e) => {
                        proxy.metrics().reload(false);
                        tracing::error!(
                            error = %e,
                            "configuration reload rejected; the last good configuration keeps serving"
                        )
                    }
                }
            }
        }
    }
    drop(watcher);
}

fn new_watcher(
    tx: mpsc::UnboundedSender<()>,
    files: &[PathBuf],
) -> notify::Result<notify::RecommendedWatcher> {
    let names: HashSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let dirs: HashSet<PathBuf> = names
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.kind.is_access() {
                return;
            }
            if event.paths.iter().any(|p| names.contains(&absolute(p))) {
                let _ = tx.send(());
            }
        }
    })?;
    for dir in dirs {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received: draining"),
    }
}
