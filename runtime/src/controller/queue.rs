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

/// The wait after the `n`th failure in a row: 1 s doubling to at most 5 min, with ±20% jitter.
pub(super) fn backoff(n: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = Duration::from_secs(1) * 2u32.saturating_pow(n.saturating_sub(1)).min(300);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(n);
    let jitter = 0.8 + 0.4 * (hasher.finish() % 1000) as f64 / 1000.0;
    base.mul_f64(jitter).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_five_minutes() {
        for (n, base) in [(1u32, 1.0), (2, 2.0), (5, 16.0)] {
            let d = backoff(n).as_secs_f64();
            assert!(d >= base * 0.8 && d <= base * 1.2, "failure {n}: {d}");
        }
        assert!(backoff(30) <= Duration::from_secs(300));
        let spread: HashSet<u128> = (0..20).map(|_| backoff(4).as_millis()).collect();
        assert!(spread.len() > 1, "jitter varies the waits");
    }
}
