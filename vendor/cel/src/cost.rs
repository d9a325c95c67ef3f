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
    static SPENT: Cell<u64> = const { Cell::new(0) };
    static LIMIT: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Runs `evaluate` with at most `limit` units to spend; returns its result and the units spent.
/// Past the limit every charge fails, so an error that an operator swallows (`error || true`)
/// still stops the work: the caller checks `spent > limit`, not only the result.
pub fn metered<T>(limit: u64, evaluate: impl FnOnce() -> T) -> (T, u64) {
    let outer = (SPENT.replace(0), LIMIT.replace(limit));
    let result = evaluate();
    let spent = SPENT.replace(outer.0);
    LIMIT.set(outer.1);
    (result, spent)
}

/// Charges `units`, failing once the limit is passed.
#[inline(always)]
pub(crate) fn charge(units: u64) -> Result<(), ExecutionError> {
    let spent = SPENT.get().saturating_add(units);
    SPENT.set(spent);
    if spent > LIMIT.get() {
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
    if let Some(string) = value.downcast_ref::<CelString>() {
        return string.inner().len() as u64 / 8;
    }
    if let Some(bytes) = value.downcast_ref::<CelBytes>() {
        return bytes.inner().len() as u64 / 8;
    }
    value
        .as_sizer()
        .map_or(0, |sizer| (*sizer.size().inner()).max(0) as u64)
}
