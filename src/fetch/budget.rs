//! The memory response bodies may hold on one rank: `CPU_QUEUE_MB`, counted in 1 KiB units.
//!
//! A body's share is reserved once its response head has arrived and before any of it is read:
//! its `Content-Length`, or the body cap (`MAX_BODY_MB`) when the server does not announce one.
//! The permit travels with the body to the CPU pool and is released when the image has been
//! processed, so the bodies held in memory, read or waiting for a worker, never exceed the
//! budget. Reserving all of a body's share at once means no two bodies can each hold part of
//! what the other waits for.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A permit is worth this many bytes of body, so the semaphore counts stay small.
pub const BUDGET_UNIT: u64 = 1024;

/// The rank's body budget; cheap to clone (one shared semaphore).
#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total: u32,
}

/// One body's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct BodyPermit {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
}

impl BodyPermit {
    /// Bytes this permit holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl BodyBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> BodyBudget {
        let total = (bytes / BUDGET_UNIT).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        BodyBudget { units: Arc::new(Semaphore::new(total as usize)), total }
    }

    /// Waits until `bytes` (rounded up to whole units, at most the whole budget) are free, and
    /// takes them.
    pub async fn reserve(&self, bytes: u64) -> BodyPermit {
        let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, u64::from(self.total)) as u32;
        let permit = self.units.clone().acquire_many_owned(units).await.expect("the budget is never closed");
        BodyPermit { _permit: permit, bytes: u64::from(units) * BUDGET_UNIT }
    }

    /// Whether nothing is left: a host should not start a request whose body could only wait.
    pub fn exhausted(&self) -> bool {
        self.units.available_permits() == 0
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> u64 {
        u64::from(self.total).saturating_sub(self.units.available_permits() as u64) * BUDGET_UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_until_enough_is_given_back() {
        let budget = BodyBudget::new(10 * BUDGET_UNIT);
        let a = budget.reserve(6 * BUDGET_UNIT).await;
        assert_eq!(budget.in_use(), 6 * BUDGET_UNIT);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(5 * BUDGET_UNIT).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "5 units cannot fit beside 6 of 10");
        drop(a);
        let b = waiting.await.unwrap();
        assert_eq!((b.bytes(), budget.in_use()), (5 * BUDGET_UNIT, 5 * BUDGET_UNIT));
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_takes_all_of_it_and_an_unknown_size_is_rounded_up() {
        let budget = BodyBudget::new(4 * BUDGET_UNIT);
        let all = budget.reserve(100 * BUDGET_UNIT).await;
        assert!(budget.exhausted());
        assert_eq!(all.bytes(), 4 * BUDGET_UNIT);
        drop(all);
        assert_eq!(budget.reserve(1).await.bytes(), BUDGET_UNIT);
    }
}
