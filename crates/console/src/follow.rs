//! Following the console's store: saves other instances make are put in
//! force here too, and the routes' request counts are sampled for the
//! recent rates the list shows.

use std::sync::{Arc, Weak};
use std::time::Duration;

use gatehouse_identity::console_store::ConsoleStore;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::runtime::Runtime;

use crate::Console;

/// Follows saves made by other instances sharing the store: announced
/// ones at once, and a check every few seconds in case one was missed.
/// Also samples the routes' request counts for the recent rates. Ends
/// when the proxy is gone (it holds the console): the task keeps neither
/// alive.
pub(crate) async fn follow(
    console: Weak<Console>,
    proxy: Weak<Proxy>,
    store: Arc<dyn ConsoleStore>,
) {
    let mut watch = store.watch();
    // Only a store other instances write to can change behind our back.
    let shared = watch.is_some();
    let mut samples = tokio::time::interval(Duration::from_secs(5));
    loop {
        let announced = async {
            match watch.as_mut() {
                Some(w) => w.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let mut shared_check = false;
        tokio::select! {
            ok = announced => {
                if !ok {
                    watch = None;
                }
                shared_check = true;
            }
            _ = samples.tick() => {}
        }
        let (Some(c), Some(proxy)) = (console.upgrade(), proxy.upgrade()) else {
            return;
        };
        c.sample(&proxy.runtime());
        if shared_check || shared {
            c.sync(&proxy, &store).await;
        }
    }
}

impl Console {
    fn sample(&self, rt: &Runtime) {
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        rates.sample(
            rt.config
                .routes
                .iter()
                .zip(&rt.routes)
                .map(|(r, s)| (r.label().to_string(), s.metrics.counts().requests)),
        );
    }
}

/// Request totals per route label, one sample every 5 s for a minute.
#[derive(Default)]
pub(crate) struct Rates {
    samples:
        std::collections::VecDeque<(std::time::Instant, std::collections::HashMap<String, u64>)>,
}

impl Rates {
    pub(crate) fn sample(&mut self, totals: impl Iterator<Item = (String, u64)>) {
        self.samples
            .push_back((std::time::Instant::now(), totals.collect()));
        while self.samples.len() > 13 {
            self.samples.pop_front();
        }
    }

    /// Requests per minute since the oldest sample.
    pub(crate) fn rate(&self, label: &str, total: u64) -> Option<f64> {
        let (at, totals) = self.samples.front()?;
        let secs = at.elapsed().as_secs_f64();
        if secs < 1.0 {
            return None;
        }
        let then = totals.get(label).copied().unwrap_or(0);
        Some(total.saturating_sub(then) as f64 * 60.0 / secs)
    }

    /// Requests counted since the oldest sample (at most a minute ago): a
    /// count, not a rate extrapolated from a few seconds, so it is never
    /// more than the route's total.
    pub(crate) fn recent(&self, label: &str, total: u64) -> Option<u64> {
        let (_, totals) = self.samples.front()?;
        Some(total.saturating_sub(totals.get(label).copied().unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::Rates;

    #[test]
    fn the_last_minute_is_a_count_never_above_the_total() {
        let mut rates = Rates::default();
        assert_eq!(rates.recent("wiki", 5), None, "no sample yet");
        rates.sample([("wiki".to_string(), 3)].into_iter());
        assert_eq!(rates.recent("wiki", 5), Some(2));
        assert_eq!(rates.recent("new route", 4), Some(4));
        for _ in 0..20 {
            rates.sample([("wiki".to_string(), 10)].into_iter());
        }
        assert_eq!(rates.recent("wiki", 12), Some(2), "the oldest sample kept");
    }
}
