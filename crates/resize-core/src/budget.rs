//! A memory budget shared by the images rendered at once.
//!
//! Each image is admitted with its estimated peak working set (see
//! [`working_set`](crate::pixels::working_set)) and waits while the sum of
//! the admitted would pass the budget. Admission is first come, first
//! served: a large image waiting for room is not overtaken forever by small
//! ones. An image that needs more than the whole budget is refused at once
//! with both figures, since waiting cannot help it.
//!
//! A count of images in flight cannot do this: four 72 MP photos need
//! four times what one does, and the count is set before any header is
//! read. The budget blocks the calling thread (a CLI worker, a Lambda
//! `spawn_blocking` thread), never rayon's pool.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Bytes in a megabyte as the messages print them (MiB, as Lambda's memory
/// setting counts).
const MB: u64 = 1 << 20;

/// How much memory the images rendered at once may take together. Cheap to
/// clone; clones share the budget. The default is unlimited.
#[derive(Clone, Debug, Default)]
pub struct MemoryBudget {
    /// `None` when unlimited.
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    total: u64,
    /// What the budget is, for messages ("the function has 256 MB").
    has: String,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    available: u64,
    /// The next ticket to hand out, and the ticket admitted next: tickets
    /// make admission first come, first served.
    next: u64,
    serving: u64,
}

/// An image needs more memory than the whole budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("needs about {} MB of memory; {has}", needs.div_ceil(MB))]
pub struct OverBudget {
    /// The estimate, in bytes.
    pub needs: u64,
    /// The whole budget, in bytes.
    pub budget: u64,
    /// What the budget is, as the adapter describes it.
    pub has: String,
}

/// Memory held for one image; returned to the budget when dropped.
#[derive(Debug)]
#[must_use = "the memory is returned as soon as the admission is dropped"]
pub struct Admission {
    shared: Option<Arc<Shared>>,
    bytes: u64,
}

impl MemoryBudget {
    /// No limit: every image is admitted at once.
    pub fn unlimited() -> MemoryBudget {
        MemoryBudget::default()
    }

    /// A budget of `bytes`. `has` says what it is, for the message of an
    /// image that cannot fit: "the function has 256 MB, of which 64 MB are
    /// kept for the runtime".
    pub fn new(bytes: u64, has: impl Into<String>) -> MemoryBudget {
        MemoryBudget {
            shared: Some(Arc::new(Shared {
                total: bytes,
                has: has.into(),
                state: Mutex::new(State {
                    available: bytes,
                    next: 0,
                    serving: 0,
                }),
                changed: Condvar::new(),
            })),
        }
    }

    /// The whole budget in bytes; `None` when unlimited.
    pub fn bytes(&self) -> Option<u64> {
        self.shared.as_ref().map(|s| s.total)
    }

    /// Waits until `needs` bytes fit beside the images already admitted
    /// and every image that asked earlier is admitted, then holds them
    /// until the [`Admission`] is dropped. Refuses at once what could never
    /// fit.
    pub fn admit(&self, needs: u64) -> Result<Admission, OverBudget> {
        let Some(shared) = &self.shared else {
            return Ok(Admission {
                shared: None,
                bytes: 0,
            });
        };
        if needs > shared.total {
            return Err(OverBudget {
                needs,
                budget: shared.total,
                has: shared.has.clone(),
            });
        }
        // No code below can panic while holding the lock, so a poisoned
        // lock still holds consistent figures.
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = state.next;
        state.next += 1;
        while state.serving != ticket || state.available < needs {
            state = shared.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.available -= needs;
        state.serving += 1;
        drop(state);
        // The next ticket may fit already.
        shared.changed.notify_all();
        Ok(Admission {
            shared: Some(Arc::clone(shared)),
            bytes: needs,
        })
    }
}

impl Admission {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.available += self.bytes;
            drop(state);
            shared.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_image_larger_than_the_budget_is_refused_with_both_figures() {
        let budget = MemoryBudget::new(192 * MB, "the function has 256 MB");
        let e = budget.admit(410 * MB).unwrap_err();
        assert_eq!(
            e.to_string(),
            "needs about 410 MB of memory; the function has 256 MB"
        );
        assert_eq!((e.needs, e.budget), (410 * MB, 192 * MB));
        // Exactly the budget fits.
        assert_eq!(budget.admit(192 * MB).unwrap().bytes(), 192 * MB);
        assert!(MemoryBudget::unlimited().admit(u64::MAX).is_ok());
    }

    #[test]
    fn admitted_images_never_pass_the_budget_together() {
        // Threads ask for random-ish shares; a gauge of what is held must
        // never pass the budget, and every thread must get through.
        let budget = MemoryBudget::new(100, "test");
        let held = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..8u64 {
                let (budget, held, peak) = (&budget, &held, &peak);
                s.spawn(move || {
                    for j in 0..20u64 {
                        let needs = 10 + (i * 37 + j * 11) % 80;
                        let admission = budget.admit(needs).unwrap();
                        let now = held.fetch_add(needs, Ordering::SeqCst) + needs;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        held.fetch_sub(needs, Ordering::SeqCst);
                        drop(admission);
                    }
                });
            }
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 100, "held {peak} of 100");
        assert!(peak > 50, "the budget was never shared: peak {peak}");
    }

    #[test]
    fn a_large_image_is_not_overtaken_by_later_small_ones() {
        let budget = MemoryBudget::new(100, "test");
        let small = budget.admit(60).unwrap();
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                let _large = budget.admit(90).unwrap();
                order.lock().unwrap().push("large");
            });
            // Let the large one take its ticket first.
            while budget.shared.as_ref().unwrap().state.lock().unwrap().next < 2 {
                std::thread::yield_now();
            }
            s.spawn(|| {
                // 30 fits beside the 60 held, but the large one asked first.
                let _late = budget.admit(30).unwrap();
                order.lock().unwrap().push("small");
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                order.lock().unwrap().is_empty(),
                "nothing fits beside 60 in order"
            );
            drop(small);
        });
        assert_eq!(*order.lock().unwrap(), ["large", "small"]);
    }
}
