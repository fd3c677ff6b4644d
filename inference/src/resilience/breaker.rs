//! A per-provider circuit breaker: closed → open after N consecutive
//! failures → half-open after a cooldown (one probe request) → closed on the
//! probe's success, open again on its failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Clock;

/// When a breaker opens and how long it stays open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed requests that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before one probe may pass.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, cooldown_ms: 30_000 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests pass.
    Closed,
    /// Requests are refused without being sent.
    Open,
    /// The cooldown is over: one probe request may pass.
    HalfOpen,
}

/// A request the breaker refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Until the breaker half-opens; zero while a probe is in flight.
    pub retry_in: Duration,
}

pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Instant,
    probe_in_flight: bool,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        CircuitBreaker {
            config,
            clock,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: now,
                probe_in_flight: false,
            }),
        }
    }

    fn cooldown(&self) -> Duration {
        Duration::from_millis(self.config.cooldown_ms)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state as a request would see it now.
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            BreakerState::Open if self.clock.now().duration_since(inner.opened_at) >= self.cooldown() => {
                BreakerState::HalfOpen
            }
            state => state,
        }
    }

    /// Asks to send a request. Every granted request must end with
    /// [`Self::record_success`], [`Self::record_failure`] or
    /// [`Self::release`].
    pub fn acquire(&self) -> Result<(), Refused> {
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => {
                let open_for = self.clock.now().duration_since(inner.opened_at);
                if open_for < self.cooldown() {
                    return Err(Refused { retry_in: self.cooldown() - open_for });
                }
                inner.state = BreakerState::HalfOpen;
                inner.probe_in_flight = true;
                Ok(())
            }
            BreakerState::HalfOpen if inner.probe_in_flight => Err(Refused { retry_in: Duration::ZERO }),
            BreakerState::HalfOpen => {
                inner.probe_in_flight = true;
                Ok(())
            }
        }
    }

    /// The provider answered: the breaker closes.
    pub fn record_success(&self) {
        let mut inner = self.lock();
        inner.state = BreakerState::Closed;
        inner.consecutive_failures = 0;
        inner.probe_in_flight = false;
    }

    /// The provider failed (timeout, connection error, 429, 5xx).
    pub fn record_failure(&self) {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.probe_in_flight = false;
        match inner.state {
            BreakerState::HalfOpen => {
                inner.state = BreakerState::Open;
                inner.opened_at = now;
            }
            BreakerState::Closed => {
                inner.consecutive_failures += 1;
                if inner.consecutive_failures >= self.config.failure_threshold.max(1) {
                    inner.state = BreakerState::Open;
                    inner.opened_at = now;
                }
            }
            BreakerState::Open => {}
        }
    }

    /// A granted request ended without a verdict (it was cancelled).
    pub fn release(&self) {
        self.lock().probe_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::ManualClock;

    #[test]
    fn the_breaker_opens_half_opens_and_closes() {
        let clock = Arc::new(ManualClock::new());
        let breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 3, cooldown_ms: 1000 }, clock.clone());
        for _ in 0..2 {
            breaker.acquire().unwrap();
            breaker.record_failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        // A success resets the count of consecutive failures.
        breaker.acquire().unwrap();
        breaker.record_success();
        for _ in 0..3 {
            breaker.acquire().unwrap();
            breaker.record_failure();
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.acquire(), Err(Refused { retry_in: Duration::from_millis(1000) }));

        clock.advance(Duration::from_millis(400));
        assert_eq!(breaker.acquire(), Err(Refused { retry_in: Duration::from_millis(600) }));
        clock.advance(Duration::from_millis(600));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // One probe at a time.
        breaker.acquire().unwrap();
        assert_eq!(breaker.acquire(), Err(Refused { retry_in: Duration::ZERO }));
        // A failed probe opens the breaker for another cooldown.
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        clock.advance(Duration::from_millis(999));
        assert!(breaker.acquire().is_err());
        clock.advance(Duration::from_millis(1));
        breaker.acquire().unwrap();
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.acquire().unwrap();
    }

    #[test]
    fn a_cancelled_probe_lets_the_next_one_through() {
        let clock = Arc::new(ManualClock::new());
        let breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 1, cooldown_ms: 10 }, clock.clone());
        breaker.acquire().unwrap();
        breaker.record_failure();
        clock.advance(Duration::from_millis(10));
        breaker.acquire().unwrap();
        breaker.release();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.acquire().unwrap();
    }
}
