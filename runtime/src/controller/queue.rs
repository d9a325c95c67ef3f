//! The queue's bookkeeping: one turn per parent at a time, and the backoff after API failures.

use super::*;

/// Parents being reconciled, and those changed meanwhile (reconciled again right after).
#[derive(Default)]
pub(super) struct Turns {
    pub(super) busy: HashSet<ParentKey>,
    pub(super) again: HashSet<ParentKey>,
}

/// One parent's turn: when it ends, the parent is free, and reconciled again if it changed.
pub(super) struct Turn {
    pub(super) turns: Arc<Mutex<Turns>>,
    pub(super) key: ParentKey,
    pub(super) queue: mpsc::UnboundedSender<ParentKey>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = lock(&self.turns);
        turns.busy.remove(&self.key);
        if turns.again.remove(&self.key) {
            let _ = self.queue.send(self.key.clone());
        }
    }
}

pub(super) fn lock(turns: &Mutex<Turns>) -> std::sync::MutexGuard<'_, Turns> {
    turns.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits after failures in a row: from 1 s, doubling, never longer than `max`, with jitter (up
/// to as much again) so that many parents failing together do not come back together. Retries
/// never stop: nothing is given up because the API server was away.
pub(super) fn backoff(max: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_limit() {
        let waits: Vec<f64> = backoff(Duration::from_secs(300))
            .build()
            .take(12)
            .map(|d| d.as_secs_f64())
            .collect();
        for (n, base) in [(0, 1.0), (1, 2.0), (4, 16.0)] {
            assert!(
                waits[n] >= base && waits[n] <= base * 2.0,
                "failure {}: {}",
                n + 1,
                waits[n]
            );
        }
        assert!(waits.iter().all(|w| *w <= 300.0), "{waits:?}");
        let spread: HashSet<u128> = (0..20)
            .map(|_| {
                let mut waits = backoff(Duration::from_secs(300)).build();
                waits.nth(3).unwrap_or_default().as_millis()
            })
            .collect();
        assert!(spread.len() > 1, "jitter varies the waits");
    }
}
