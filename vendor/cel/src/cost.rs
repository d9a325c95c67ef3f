//! koreo-rs patch: a cost meter, so no expression can run or allocate without bound.
//!
//! Evaluation charges 1 unit per node evaluated, and for every value a call, operator, literal
//! or comprehension builds or a call reads, 1 unit per list or map entry and per 8 bytes of string
//! or bytes. Memory is bounded with time: nothing large is built without paying for its size.
//! The meter is per thread: an evaluation runs on one thread from start to end.

use crate::common::types::{CelBytes, CelString};
use crate::common::value::Val;
use crate::ExecutionError;
use std::cell::Cell;

thread_local! {
    /// Units left; below zero once the limit is passed. One cell: a charge is one add and one
    /// compare on the hot path.
    static LEFT: Cell<i64> = const { Cell::new(i64::MAX) };
    static LIMIT: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Runs `evaluate` with at most `limit` units to spend; returns its result and the units spent.
/// Past the limit every charge fails, so an error that an operator swallows (`error || true`)
/// still stops the work: the caller checks `spent > limit`, not only the result.
pub fn metered<T>(limit: u64, evaluate: impl FnOnce() -> T) -> (T, u64) {
    let start = i64::try_from(limit).unwrap_or(i64::MAX);
    let outer = (LEFT.replace(start), LIMIT.replace(limit));
    let result = evaluate();
    let left = LEFT.replace(outer.0);
    LIMIT.set(outer.1);
    let spent = (start as i128 - left as i128).max(0) as u64;
    (result, spent)
}

/// Charges `units`, failing once the limit is passed.
#[inline(always)]
pub(crate) fn charge(units: u64) -> Result<(), ExecutionError> {
    let left = LEFT.get().saturating_sub(units.min(i64::MAX as u64) as i64);
    LEFT.set(left);
    if left < 0 {
        return Err(ExecutionError::CostLimitExceeded(LIMIT.get()));
    }
    Ok(())
}

/// Charges for the size of `value`.
#[inline(always)]
pub(crate) fn charge_size(value: &dyn Val) -> Result<(), ExecutionError> {
    charge(size(value))
}

fn size(value: &dyn Val) -> u64 {
    // Most values built are scalars: one virtual call tells.
    let Some(sizer) = value.as_sizer() else {
        return 0;
    };
    if let Some(string) = value.downcast_ref::<CelString>() {
        return string.inner().len() as u64 / 8;
    }
    if let Some(bytes) = value.downcast_ref::<CelBytes>() {
        return bytes.inner().len() as u64 / 8;
    }
    (*sizer.size().inner()).max(0) as u64
}
