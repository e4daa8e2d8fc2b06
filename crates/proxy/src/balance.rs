//! Which of a route's targets serves a request: the route's
//! `load_balancing_policy` over the targets that are in rotation, with
//! Envoy's ways of taking a failing target out: passive
//! (`outlier_detection`: consecutive failures eject it for a while) and
//! active (`health_checks`: probes on a timer). When every target is out,
//! all are used (Envoy's panic mode): a request is better tried than
//! refused.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use gatehouse_config::{
    HealthCheck, HealthCheckKind, LoadBalancing, OutlierDetection, UpstreamScheme, UpstreamTarget,
};

/// Milliseconds since the process started (ejection deadlines).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// One target's state.
#[derive(Default)]
struct Target {
    in_flight: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Out of rotation until this `now_ms` (0: in).
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    /// Set by the active checks.
    unhealthy: AtomicBool,
}

/// How an exchange with a target ended, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Ok,
    /// An answer of this 5xx status.
    Status(u16),
    /// No answer: connection refused, reset, timed out.
    Failed,
}

pub struct Balancer {
    policy: LoadBalancing,
    weights: Box<[u32]>,
    /// Targets can leave the rotation (outlier detection or health checks):
    /// only then does a pick look at their state.
    may_leave: bool,
    /// Smooth weighted round robin, precomputed.
    schedule: Box<[u16]>,
    next: AtomicUsize,
    /// Ring of (hash, target) for ring_hash and maglev, sorted.
    ring: Box<[(u64, u16)]>,
    targets: Box<[Target]>,
    outlier: Option<OutlierDetection>,
    /// For log lines.
    urls: Box<[String]>,
    route: String,
}

/// A target picked for a request; with `least_request`, counted in flight
/// until dropped.
pub struct Picked<'a> {
    pub index: usize,
    counted: Option<&'a Balancer>,
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.counted {
            b.targets[self.index]
                .in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Balancer {
    pub fn new(
        route: &str,
        targets: &[UpstreamTarget],
        policy: LoadBalancing,
        outlier: Option<OutlierDetection>,
        health_checked: bool,
    ) -> Balancer {
        let weights: Vec<u32> = targets.iter().map(|t| t.weight.max(1)).collect();
        let schedule = schedule(&weights);
        let mut ring = Vec::new();
        if matches!(policy, LoadBalancing::RingHash | LoadBalancing::Maglev) {
            // Points per target in proportion to its weight, at least 16.
            let total: u64 = weights.iter().map(|w| u64::from(*w)).sum::<u64>().max(1);
            for (i, w) in weights.iter().enumerate() {
                let points = ((u64::from(*w) * 1024) / total).clamp(16, 1024);
                for p in 0..points {
                    ring.push((hash(&(targets[i].url.as_str(), p)), i as u16));
                }
            }
            ring.sort_unstable();
        }
        Balancer {
            policy,
            may_leave: health_checked || outlier.is_some(),
            weights: weights.into_boxed_slice(),
            schedule,
            next: AtomicUsize::new(0),
            ring: ring.into_boxed_slice(),
            targets: targets.iter().map(|_| Target::default()).collect(),
            outlier,
            urls: targets.iter().map(|t| t.url.clone()).collect(),
            route: route.to_string(),
        }
    }

    fn in_rotation(&self, i: usize, now: u64) -> bool {
        let t = &self.targets[i];
        !t.unhealthy.load(Ordering::Relaxed) && t.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// The target for a request from `client`.
    pub fn pick(&self, client: IpAddr) -> Picked<'_> {
        let index = self.choose(client);
        // Only least_request reads the count: nobody else pays for it.
        let counted = (self.policy == LoadBalancing::LeastRequest).then_some(self);
        if counted.is_some() {
            self.targets[index]
                .in_flight
                .fetch_add(1, Ordering::Relaxed);
        }
        Picked { index, counted }
    }

    fn choose(&self, client: IpAddr) -> usize {
        let n = self.targets.len();
        if n <= 1 {
            return 0;
        }
        // Without ways to leave the rotation every target is in it: no
        // clock read, no target state looked at.
        let now = if self.may_leave { now_ms() } else { 0 };
        // Panic mode: none in rotation, all are.
        let all = !self.may_leave || !(0..n).any(|i| self.in_rotation(i, now));
        let ok = |i: usize| all || self.in_rotation(i, now);
        match self.policy {
            LoadBalancing::RoundRobin => {
                let len = self.schedule.len();
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..len)
                    .map(|k| self.schedule[(start + k) % len] as usize)
                    .find(|&i| ok(i))
                    .unwrap_or(0)
            }
            LoadBalancing::Random => self.weighted_random(&ok),
            LoadBalancing::LeastRequest => {
                let a = self.weighted_random(&ok);
                let b = self.weighted_random(&ok);
                let load = |i: usize| self.targets[i].in_flight.load(Ordering::Relaxed);
                if load(b) < load(a) { b } else { a }
            }
            LoadBalancing::RingHash | LoadBalancing::Maglev => {
                let h = hash(&client);
                let start = self.ring.partition_point(|(p, _)| *p < h);
                let len = self.ring.len();
                (0..len)
                    .map(|k| self.ring[(start + k) % len].1 as usize)
                    .find(|&i| ok(i))
                    .unwrap_or(0)
            }
        }
    }

    fn weighted_random(&self, ok: &dyn Fn(usize) -> bool) -> usize {
        let total: u64 = (0..self.weights.len())
            .filter(|&i| ok(i))
            .map(|i| u64::from(self.weights[i]))
            .sum();
        if total == 0 {
            return 0;
        }
        let mut r = rand::random::<u64>() % total;
        for i in (0..self.weights.len()).filter(|&i| ok(i)) {
            let w = u64::from(self.weights[i]);
            if r < w {
                return i;
            }
            r -= w;
        }
        0
    }

    /// How an exchange with target `i` ended (outlier detection).
    pub fn report(&self, i: usize, outcome: Outcome) {
        let Some(o) = &self.outlier else { return };
        let t = &self.targets[i];
        let (five, gateway) = match outcome {
            Outcome::Ok => {
                t.consecutive_5xx.store(0, Ordering::Relaxed);
                t.consecutive_gateway.store(0, Ordering::Relaxed);
                // A target that answers again earns its way back to short
                // ejections.
                if t.ejections.load(Ordering::Relaxed) > 0 {
                    let _ = t
                        .ejections
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                            Some(e.saturating_sub(1))
                        });
                }
                return;
            }
            Outcome::Status(s) => (true, matches!(s, 502..=504)),
            Outcome::Failed => (true, true),
        };
        let f5 = if five {
            t.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        };
        let fg = if gateway {
            t.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            t.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let trip = (o.consecutive_5xx > 0 && f5 >= o.consecutive_5xx)
            || (o.consecutive_gateway_failure > 0 && fg >= o.consecutive_gateway_failure);
        if trip {
            self.eject(i, o);
        }
    }

    fn eject(&self, i: usize, o: &OutlierDetection) {
        let now = now_ms();
        let n = self.targets.len();
        let out = (0..n)
            .filter(|&k| self.targets[k].ejected_until.load(Ordering::Relaxed) > now)
            .count();
        let max = ((n as u64 * u64::from(o.max_ejection_percent)) / 100).max(1) as usize;
        let t = &self.targets[i];
        t.consecutive_5xx.store(0, Ordering::Relaxed);
        t.consecutive_gateway.store(0, Ordering::Relaxed);
        if out >= max || t.ejected_until.load(Ordering::Relaxed) > now {
            return;
        }
        let times = t.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let span = o
            .base_ejection_time
            .saturating_mul(times.min(10))
            .min(o.max_ejection_time.max(o.base_ejection_time));
        let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        t.ejected_until
            .store(now.saturating_add(span_ms), Ordering::Relaxed);
        tracing::warn!(
            route = %self.route,
            upstream = %self.urls[i],
            seconds = span.as_secs(),
            "upstream taken out of rotation after consecutive failures (outlier_detection)"
        );
    }

    fn set_healthy(&self, i: usize, healthy: bool) {
        let was = !self.targets[i].unhealthy.swap(!healthy, Ordering::Relaxed);
        if was != healthy {
            if healthy {
                tracing::info!(route = %self.route, upstream = %self.urls[i], "upstream healthy again (health_checks)");
            } else {
                tracing::warn!(route = %self.route, upstream = %self.urls[i], "upstream unhealthy: out of rotation (health_checks)");
            }
        }
    }

    /// Whether outcomes are judged (`outlier_detection`).
    pub fn judges_outcomes(&self) -> bool {
        self.outlier.is_some()
    }

    #[cfg(test)]
    fn is_in_rotation(&self, i: usize) -> bool {
        self.in_rotation(i, now_ms())
    }
}

fn hash<T: Hash>(v: &T) -> u64 {
    // Fixed keys: the same client maps to the same point in every process.
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// Smooth weighted round robin, precomputed (at most ~4096 slots).
fn schedule(weights: &[u32]) -> Box<[u16]> {
    let gcd = weights.iter().copied().fold(0, gcd);
    let mut weights: Vec<u64> = weights.iter().map(|w| u64::from(w / gcd.max(1))).collect();
    let total: u64 = weights.iter().sum();
    if total > 4096 {
        for w in &mut weights {
            *w = ((*w * 4096) / total).max(1);
        }
    }
    let total: i64 = weights.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best as u16);
    }
    if schedule.is_empty() {
        schedule.push(0);
    }
    schedule.into_boxed_slice()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Runs a route's active health checks until its balancer is dropped (the
/// configuration replaced): each target probed every `interval`, the first
/// time at once.
pub fn spawn_health_checks(
    balancer: &Arc<Balancer>,
    targets: &[UpstreamTarget],
    checks: &[HealthCheck],
    client: crate::upstream::HttpClient,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for check in checks {
        let weak: Weak<Balancer> = Arc::downgrade(balancer);
        let targets = targets.to_vec();
        let check = check.clone();
        let client = client.clone();
        handle.spawn(async move {
            let n = targets.len();
            let mut ok_run = vec![0u32; n];
            let mut fail_run = vec![0u32; n];
            loop {
                for (i, t) in targets.iter().enumerate() {
                    let healthy = probe(&check, t, &client).await;
                    let Some(b) = weak.upgrade() else { return };
                    if healthy {
                        ok_run[i] += 1;
                        fail_run[i] = 0;
                        if ok_run[i] >= check.healthy_threshold {
                            b.set_healthy(i, true);
                        }
                    } else {
                        fail_run[i] += 1;
                        ok_run[i] = 0;
                        if fail_run[i] >= check.unhealthy_threshold {
                            b.set_healthy(i, false);
                        }
                    }
                }
                tokio::time::sleep(check.interval).await;
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
    }
}

/// One probe of one target.
async fn probe(
    check: &HealthCheck,
    target: &UpstreamTarget,
    client: &crate::upstream::HttpClient,
) -> bool {
    let work = async {
        match &check.kind {
            HealthCheckKind::Tcp => {
                let addr = target.authority.as_str().to_string();
                tokio::net::TcpStream::connect(addr).await.is_ok()
            }
            HealthCheckKind::Http {
                path,
                host,
                expected,
            } => {
                let scheme = match target.scheme {
                    UpstreamScheme::Https => "https",
                    UpstreamScheme::Http | UpstreamScheme::H2c | UpstreamScheme::Tcp => "http",
                };
                let uri = format!("{scheme}://{}{path}", target.authority);
                let mut req = http::Request::get(uri);
                if let Some(h) = host {
                    req = req.header(http::header::HOST, h);
                }
                let Ok(req) = req.body(crate::body::empty()) else {
                    return false;
                };
                match client.request(req).await {
                    Ok(resp) => {
                        let s = resp.status().as_u16();
                        expected.iter().any(|(a, b)| (*a..*b).contains(&s))
                    }
                    Err(_) => false,
                }
            }
        }
    };
    tokio::time::timeout(check.timeout, work)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn targets(weights: &[u32]) -> Vec<UpstreamTarget> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| gatehouse_config::parse_upstream(&format!("http://t{i}:80,{w}")).unwrap())
            .collect()
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn picks(b: &Balancer, n: usize) -> Vec<usize> {
        (0..n).map(|_| b.pick(IP).index).collect()
    }

    #[test]
    fn weights_are_respected_and_interleaved() {
        let b = Balancer::new(
            "r",
            &targets(&[3, 1]),
            LoadBalancing::RoundRobin,
            None,
            false,
        );
        let p = picks(&b, 8);
        assert_eq!(p.iter().filter(|&&p| p == 0).count(), 6);
        // Smooth: never three of the heavy target in a row at the start.
        assert_eq!(&p[..4], &[0, 0, 1, 0]);
        let b = Balancer::new(
            "r",
            &targets(&[1, 1, 1]),
            LoadBalancing::RoundRobin,
            None,
            false,
        );
        assert_eq!(picks(&b, 3), [0, 1, 2]);
    }

    #[test]
    fn huge_weights_stay_small() {
        let b = Balancer::new(
            "r",
            &targets(&[1_000_000, 999_999, 3]),
            LoadBalancing::RoundRobin,
            None,
            false,
        );
        assert!(b.schedule.len() <= 4096 + 3);
        assert!(b.schedule.contains(&2));
    }

    #[test]
    fn every_policy_spreads_and_skips_what_is_out() {
        for policy in [
            LoadBalancing::RoundRobin,
            LoadBalancing::Random,
            LoadBalancing::LeastRequest,
            LoadBalancing::RingHash,
            LoadBalancing::Maglev,
        ] {
            let b = Balancer::new("r", &targets(&[1, 1, 1]), policy, None, true);
            b.set_healthy(1, false);
            let p = picks(&b, 200);
            assert!(!p.contains(&1), "{policy:?}");
            // Panic mode: every target out means every target in.
            for i in 0..3 {
                b.set_healthy(i, false);
            }
            let _ = picks(&b, 10);
        }
        // Random and least_request reach every target.
        let b = Balancer::new(
            "r",
            &targets(&[1, 1, 1]),
            LoadBalancing::Random,
            None,
            false,
        );
        let p = picks(&b, 300);
        assert!((0..3).all(|i| p.contains(&i)));
        // Least request prefers the idle target.
        let b = Balancer::new(
            "r",
            &targets(&[1, 1]),
            LoadBalancing::LeastRequest,
            None,
            false,
        );
        // Target 0 holds requests in flight; target 1's are done.
        let (_busy, done): (Vec<_>, Vec<_>) =
            (0..50).map(|_| b.pick(IP)).partition(|p| p.index == 0);
        drop(done);
        let p = picks(&b, 50);
        assert!(p.iter().filter(|&&i| i == 1).count() > 30, "{p:?}");
    }

    #[test]
    fn ring_hash_keeps_a_client_on_one_target() {
        let b = Balancer::new(
            "r",
            &targets(&[1, 1, 1, 1]),
            LoadBalancing::RingHash,
            None,
            false,
        );
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let first = b.pick(client).index;
        assert!((0..50).all(|_| b.pick(client).index == first));
        let spread: std::collections::HashSet<usize> = (0..200u8)
            .map(|k| b.pick(IpAddr::from([10, 0, 1, k])).index)
            .collect();
        assert!(spread.len() >= 3, "{spread:?}");
    }

    #[test]
    fn consecutive_failures_eject_within_the_limit() {
        let o = OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 2,
            base_ejection_time: Duration::from_secs(60),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        };
        let b = Balancer::new(
            "r",
            &targets(&[1, 1, 1]),
            LoadBalancing::RoundRobin,
            Some(o),
            false,
        );
        b.report(0, Outcome::Status(500));
        b.report(0, Outcome::Status(500));
        b.report(0, Outcome::Ok);
        b.report(0, Outcome::Status(500));
        assert!(b.is_in_rotation(0), "the run was broken by a success");
        b.report(0, Outcome::Failed);
        b.report(0, Outcome::Failed);
        assert!(!b.is_in_rotation(0));
        assert!(!picks(&b, 30).contains(&0));
        // 10% of 3 rounds down, but one may always go: not a second one.
        b.report(1, Outcome::Status(503));
        b.report(1, Outcome::Status(503));
        assert!(b.is_in_rotation(1));
    }
}
