//! The random helpers: every draw from the seeded stream (chances, uniform, normal and
//! Poisson counts, picks from a list), random people's names and hashed phone numbers.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use super::Generator;
use super::reference::{FIRST_NAMES, LAST_NAMES};

impl Generator {
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    pub(super) fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.rng.random::<f64>()
    }

    fn normal(&mut self) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub(super) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// A count with mean `lambda` (Poisson; a normal approximation for large means).
    pub(super) fn count(&mut self, lambda: f64) -> usize {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as usize;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.rng.random::<f64>();
        while p > limit {
            k += 1;
            p *= self.rng.random::<f64>();
        }
        k
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    pub(super) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    pub(super) fn phone_hash(&self, phone: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.phone_key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(phone.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..10].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn random_phone_hash(&mut self) -> String {
        let phone = format!("7{}", self.rng.random_range(9_000_000_000u64..9_999_999_999));
        self.phone_hash(&phone)
    }

    pub(super) fn person_name(&mut self) -> String {
        let first = *self.pick(FIRST_NAMES);
        let last = *self.pick(LAST_NAMES);
        // Feminine surnames for the feminine first names of the list (every second one).
        let feminine = FIRST_NAMES.iter().position(|n| *n == first).is_some_and(|i| i % 2 == 1);
        if feminine { format!("{first} {last}а") } else { format!("{first} {last}") }
    }
}
