//! Where the queue reads the time. Every script that compares instants (lease deadlines, retry
//! backoff, reaping) takes `now` from its caller, so a test can run the protocol on a
//! [`Clock::manual`] and move time forward instead of sleeping. Redis's own expiries (finished
//! jobs' TTL, pub/sub) stay on Redis's clock.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The system clock (the default) or a manual one.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// Milliseconds since the Unix epoch, moved by [`Clock::advance`] only.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock reading the system time now, from then on moved only by
    /// [`Clock::advance`].
    pub fn manual() -> Self {
        Self::Manual(Arc::new(AtomicI64::new(crate::model::now_ms())))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Self::System => crate::model::now_ms(),
            Self::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (every clone sees it). The system clock cannot be moved:
    /// a call on it panics, as a test that meant to control time would be wrong otherwise.
    pub fn advance(&self, d: Duration) {
        match self {
            Self::System => panic!("Clock::advance on the system clock"),
            Self::Manual(t) => {
                t.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_for_every_clone() {
        let c = Clock::manual();
        let seen = c.clone();
        let t0 = c.now_ms();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.now_ms(), t0);
        c.advance(Duration::from_millis(1500));
        assert_eq!(seen.now_ms(), t0 + 1500);
        assert!(Clock::System.now_ms() >= t0);
    }
}
