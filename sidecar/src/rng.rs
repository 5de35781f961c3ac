//! Per-thread randomness for what needs to be unique and evenly spread but not secret:
//! request ids, trace and span ids, sampling draws.
//!
//! `rand`'s thread generator is a ChaCha stream cipher, built to be unpredictable: its block
//! refills cost a few hundred instructions per request across the four draws a request makes.
//! Xoshiro256++ (`SmallRng`), seeded per thread from that generator, is a few instructions per
//! draw. Nobody gains from predicting these values: W3C Trace Context asks trace ids to be
//! random, not secret, and a request id is a correlation key.

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    // `fill_bytes` takes eight bytes a draw; `random::<[u8; N]>()` would draw once per byte.
    let mut out = [0; N];
    RNG.with(|r| r.borrow_mut().fill_bytes(&mut out));
    out
}

/// True with probability `p` (a sampling draw).
pub fn chance(p: f64) -> bool {
    p >= 1.0 || (p > 0.0 && RNG.with(|r| r.borrow_mut().random::<f64>()) < p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_chances_hold_their_ratio() {
        assert_ne!(bytes::<16>(), bytes::<16>());
        assert!(chance(1.0) && !chance(0.0) && !chance(-1.0));
        let hits = (0..100_000).filter(|_| chance(0.25)).count();
        assert!((23_500..26_500).contains(&hits), "{hits} hits in 100,000 at 0.25");
    }
}
