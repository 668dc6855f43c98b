//! Rate limiting of wrong PINs, per source address and per room, and
//! constant-time secret comparison.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::PinPolicy;

/// Compares a supplied secret with the expected one in constant time (both
/// are hashed first, so their lengths leak nothing either).
pub fn secret_matches(supplied: &str, expected: &str) -> bool {
    let a = Sha256::digest(supplied.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// What an admin secret check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// The room has no secret, or the secret is right.
    Allowed,
    /// A secret is needed but none was given.
    Missing,
    /// The secret is wrong.
    Wrong,
}

/// Checks a room's admin secret (in constant time).
pub fn check_secret(expected: Option<&str>, supplied: Option<&str>) -> SecretCheck {
    match (expected, supplied) {
        (None, _) => SecretCheck::Allowed,
        (Some(_), None) => SecretCheck::Missing,
        (Some(e), Some(s)) if secret_matches(s, e) => SecretCheck::Allowed,
        (Some(_), Some(_)) => SecretCheck::Wrong,
    }
}

/// What a PIN check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// The room has no PIN, or the PIN is right.
    Allowed,
    /// No PIN was given but one is needed.
    Missing,
    /// The PIN is wrong.
    Wrong,
    /// Too many wrong attempts lately; not even checked.
    Limited,
}

/// Failure counters over a sliding window.
#[derive(Debug)]
pub struct PinLimiter {
    policy: PinPolicy,
    by_source: HashMap<IpAddr, Vec<Instant>>,
    by_room: HashMap<u64, Vec<Instant>>,
}

impl PinLimiter {
    /// A limiter with this policy.
    pub fn new(policy: PinPolicy) -> Self {
        PinLimiter {
            policy,
            by_source: HashMap::new(),
            by_room: HashMap::new(),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.policy.window_secs)
    }

    fn recent(list: &mut Vec<Instant>, now: Instant, window: Duration) -> usize {
        list.retain(|t| now.saturating_duration_since(*t) < window);
        list.len()
    }

    /// Checks `supplied` against the room's PIN, counting failures.
    pub fn check(
        &mut self,
        now: Instant,
        source: IpAddr,
        room: u64,
        expected: Option<&str>,
        supplied: Option<&str>,
    ) -> PinCheck {
        let Some(expected) = expected else {
            return PinCheck::Allowed;
        };
        let window = self.window();
        let max = self.policy.max_failures as usize;
        let source_failures = Self::recent(self.by_source.entry(source).or_default(), now, window);
        let room_failures = Self::recent(self.by_room.entry(room).or_default(), now, window);
        if source_failures >= max || room_failures >= max {
            return PinCheck::Limited;
        }
        let verdict = match supplied {
            None => PinCheck::Missing,
            Some(pin) if secret_matches(pin, expected) => PinCheck::Allowed,
            Some(_) => PinCheck::Wrong,
        };
        if verdict == PinCheck::Wrong {
            self.by_source.entry(source).or_default().push(now);
            self.by_room.entry(room).or_default().push(now);
        }
        verdict
    }

    /// Forgets counters whose window has passed.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window();
        self.by_source
            .retain(|_, l| Self::recent(l, now, window) > 0);
        self.by_room.retain(|_, l| Self::recent(l, now, window) > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn constant_time_compare() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abc", "abd"));
        assert!(!secret_matches("", "abc"));
    }

    #[test]
    fn wrong_pins_are_limited_until_the_window_passes() {
        let policy = PinPolicy {
            max_failures: 3,
            window_secs: 10,
        };
        let mut l = PinLimiter::new(policy);
        let t0 = Instant::now();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(l.check(t0, ip, 1, None, None), PinCheck::Allowed);
        assert_eq!(l.check(t0, ip, 1, Some("p"), None), PinCheck::Missing);
        for _ in 0..3 {
            assert_eq!(l.check(t0, ip, 1, Some("p"), Some("x")), PinCheck::Wrong);
        }
        assert_eq!(l.check(t0, ip, 1, Some("p"), Some("p")), PinCheck::Limited);
        // Per room too: another address is limited on the same room.
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(
            l.check(t0, other, 1, Some("p"), Some("p")),
            PinCheck::Limited
        );
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            l.check(later, ip, 1, Some("p"), Some("p")),
            PinCheck::Allowed
        );
        l.prune(later);
        assert!(l.by_source.is_empty());
    }
}
