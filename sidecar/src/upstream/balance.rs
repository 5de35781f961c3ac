//! Endpoint selection: round robin, smooth weighted round robin, power of two choices.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::EndpointState;
use crate::config::Balance;

/// Endpoint selection. Weighted round robin precomputes one cycle of nginx's smooth weighted
/// round robin, so picking is one atomic increment and shares are exact over every cycle.
pub(super) enum Balancer {
    RoundRobin { next: AtomicUsize },
    Weighted { next: AtomicUsize, schedule: Vec<usize> },
    P2c,
}

/// Longest weighted schedule kept; larger weight sums are scaled down proportionally.
const MAX_SCHEDULE: u64 = 4096;

impl Balancer {
    pub(super) fn new(balance: Balance, endpoints: &[EndpointState]) -> Self {
        match balance {
            Balance::RoundRobin => Balancer::RoundRobin {
                next: AtomicUsize::new(0),
            },
            Balance::P2cLeastRequest => Balancer::P2c,
            Balance::WeightedRoundRobin => {
                let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
                Balancer::Weighted {
                    next: AtomicUsize::new(0),
                    schedule: smooth_wrr_cycle(&weights),
                }
            }
        }
    }

    pub(super) fn pick(&self, endpoints: &[EndpointState]) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        Some(match self {
            // One endpoint: no shared counter to bump (workers would contend for its line).
            _ if n == 1 => 0,
            Balancer::RoundRobin { next } => next.fetch_add(1, Ordering::Relaxed) % n,
            Balancer::Weighted { next, schedule } => schedule[next.fetch_add(1, Ordering::Relaxed) % schedule.len()],
            Balancer::P2c => {
                let a = rand::random_range(0..n);
                let b = (a + rand::random_range(1..n)) % n;
                if endpoints[b].in_flight() < endpoints[a].in_flight() {
                    b
                } else {
                    a
                }
            }
        })
    }
}

/// One full cycle of smooth weighted round robin: each step, every endpoint gains its weight,
/// the richest is picked and pays the total. Weights are reduced by their gcd and, if their sum
/// is huge, scaled down (each keeps at least 1).
fn smooth_wrr_cycle(weights: &[u32]) -> Vec<usize> {
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w))).max(1);
    let mut w: Vec<i64> = weights.iter().map(|&x| (u64::from(x) / g) as i64).collect();
    let sum: i64 = w.iter().sum();
    if sum as u64 > MAX_SCHEDULE {
        w = w
            .iter()
            .map(|&x| ((x as u64 * MAX_SCHEDULE / sum as u64).max(1)) as i64)
            .collect();
    }
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    (0..total)
        .map(|_| {
            for (c, &wi) in current.iter_mut().zip(&w) {
                *c += wi;
            }
            let best = (0..w.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .expect("non-empty");
            current[best] -= total;
            best
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Meter;
    use std::sync::Arc;

    fn endpoints(weights: &[u32]) -> Vec<EndpointState> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| EndpointState::new(&format!("127.0.0.1:{}", 1000 + i), w, Arc::new(Meter::new(1))))
            .collect()
    }

    fn counts(b: &Balancer, eps: &[EndpointState], n: usize) -> Vec<usize> {
        let mut c = vec![0; eps.len()];
        for _ in 0..n {
            c[b.pick(eps).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_is_exact() {
        let eps = endpoints(&[1, 5, 1]);
        let b = Balancer::new(Balance::RoundRobin, &eps);
        assert_eq!(counts(&b, &eps, 300), vec![100, 100, 100]);
    }

    #[test]
    fn smooth_weighted_round_robin_is_exact_and_interleaved() {
        assert_eq!(smooth_wrr_cycle(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        let eps = endpoints(&[1, 2, 3]);
        let b = Balancer::new(Balance::WeightedRoundRobin, &eps);
        assert_eq!(counts(&b, &eps, 600), vec![100, 200, 300]);
        assert_eq!(smooth_wrr_cycle(&[200, 400]).len(), 3, "weights reduce by their gcd");
        let huge = smooth_wrr_cycle(&[1_000_000, 3_000_000, 1]);
        assert!(huge.len() as u64 <= MAX_SCHEDULE + 1);
        assert!(huge.contains(&2), "a tiny weight keeps a slot");
    }

    #[test]
    fn p2c_prefers_the_less_loaded_endpoint() {
        let eps = endpoints(&[1, 1]);
        eps[0].in_flight.store(10, Ordering::Relaxed);
        let b = Balancer::new(Balance::P2cLeastRequest, &eps);
        assert_eq!(counts(&b, &eps, 100), vec![0, 100]);
        let three = endpoints(&[1, 1, 1]);
        three[1].in_flight.store(5, Ordering::Relaxed);
        let c = counts(&Balancer::new(Balance::P2cLeastRequest, &three), &three, 3000);
        assert!(
            c[1] < 100,
            "the busy endpoint only wins when drawn against itself: {c:?}"
        );
        assert!(c[0] > 1000 && c[2] > 1000, "{c:?}");
    }
}
