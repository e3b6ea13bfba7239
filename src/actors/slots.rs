//! Rank-wide request slots: how many requests (and bodies in memory) may be in flight at once.
//!
//! A slot is taken before a request starts and given back when its row is handed to the writer
//! (or when it will be retried). A host that finds no slot free queues itself and is woken, in
//! order, when one is given back: no polling, and no host starves.

use std::collections::VecDeque;

/// Plain bookkeeping; the waker type is generic so the logic is testable without actors.
#[derive(Debug)]
pub struct Slots<W> {
    available: usize,
    waiters: VecDeque<(String, W)>,
}

impl<W> Slots<W> {
    pub fn new(capacity: usize) -> Slots<W> {
        Slots { available: capacity.max(1), waiters: VecDeque::new() }
    }

    /// Takes a slot, or queues `host` (once) to be woken with `waker` when one frees.
    pub fn try_take(&mut self, host: &str, waker: impl FnOnce() -> W) -> bool {
        if self.available > 0 {
            self.available -= 1;
            return true;
        }
        if !self.waiters.iter().any(|(h, _)| h == host) {
            self.waiters.push_back((host.to_string(), waker()));
        }
        false
    }

    /// Gives a slot back; returns the waiter to wake, if any.
    pub fn give_back(&mut self) -> Option<W> {
        self.available += 1;
        self.waiters.pop_front().map(|(_, w)| w)
    }

    /// The next waiter to wake while a slot is free and nobody has taken it: a host that was
    /// woken but had nothing to send passes its turn on, so no waiter sleeps beside a free slot.
    pub fn pass_on(&mut self) -> Option<W> {
        if self.available > 0 {
            self.waiters.pop_front().map(|(_, w)| w)
        } else {
            None
        }
    }

    pub fn available(&self) -> usize {
        self.available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_woken_in_order_and_queued_once() {
        let mut s: Slots<&str> = Slots::new(1);
        assert!(s.try_take("a", || "wake a"));
        assert!(!s.try_take("b", || "wake b"));
        assert!(!s.try_take("b", || "wake b again"));
        assert!(!s.try_take("c", || "wake c"));
        assert_eq!(s.give_back(), Some("wake b"));
        assert!(s.try_take("b", || "unused"));
        assert_eq!(s.give_back(), Some("wake c"));
        assert_eq!(s.give_back(), None);
        assert_eq!(s.available(), 2, "never more than given back");
    }

    #[test]
    fn a_woken_host_with_nothing_to_send_passes_its_turn_on() {
        let mut s: Slots<&str> = Slots::new(1);
        assert!(s.try_take("a", || "wake a"));
        assert!(!s.try_take("b", || "wake b"));
        assert!(!s.try_take("c", || "wake c"));
        assert_eq!(s.give_back(), Some("wake b"));
        // b has nothing left to send and does not take the slot: c must not sleep forever.
        assert_eq!(s.pass_on(), Some("wake c"));
        assert_eq!(s.pass_on(), None);
        assert!(s.try_take("c", || "unused"));
        assert_eq!(s.pass_on(), None, "no slot free, nobody to wake");
    }
}
