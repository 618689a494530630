//! A per-backend request rate limit: calls are spaced evenly, never bursting above the rate.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// At most `per_second` calls a second; `0` means no limit.
    pub fn new(per_second: u32) -> Self {
        let interval = match per_second {
            0 => Duration::ZERO,
            n => Duration::from_secs(1) / n,
        };
        Self { interval, next: Mutex::new(Instant::now()) }
    }

    /// Waits for this call's turn.
    pub async fn acquire(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_calls_evenly() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // The first call goes at once, the next four 100 ms apart.
        assert_eq!(Instant::now() - start, Duration::from_millis(400));
    }
}
