//! In-isolate coalescing: concurrent requests needing the same piece of work (a cache fill, a fragment fetch) let
//! one of them — the lead — do it, and the others wait for its outcome. Waiters poll a plain-data slot on their own
//! timer instead of awaiting the lead's future: workerd binds every promise to the request that created it and
//! cancels a request whose only pending work belongs to another as hung (found by the gateway's coalescing test),
//! while a timer is the waiter's own pending work. [`shared`] adds a memory for work whose outcome is the same for
//! every caller (a readiness probe, the room listing), so unauthenticated routes that fan out cost one run per
//! isolate and interval however often they are asked.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::thread::LocalKey;
use std::time::Duration;

use worker::Delay;

use super::respond;

/// The outcome of one piece of work, filled in by its lead.
pub type Slot<T> = Rc<RefCell<Option<T>>>;

/// Work in progress in this isolate, by key (a `thread_local!` per kind of work).
pub type InFlight<T> = RefCell<HashMap<String, Slot<T>>>;

/// How often a waiter looks at the slot.
const POLL_MS: u64 = 10;

/// A request's claim on `key`: held while it does the work; dropping it (done, or the request went away) releases
/// the key, so waiters never wait for work that nobody is doing.
pub struct Lead<T: 'static> {
    in_flight: &'static LocalKey<InFlight<T>>,
    key: String,
    slot: Slot<T>,
}

impl<T: Clone + 'static> Lead<T> {
    /// Claims `key` (replacing a claim whose waiters gave up on it).
    pub fn claim(in_flight: &'static LocalKey<InFlight<T>>, key: &str) -> Self {
        let slot = Slot::default();
        in_flight.with(|m| m.borrow_mut().insert(key.to_owned(), slot.clone()));
        Self {
            in_flight,
            key: key.to_owned(),
            slot,
        }
    }

    /// Hands the outcome to the waiters (they read it at their next look, even after the claim is released).
    pub fn publish(&self, outcome: T) {
        *self.slot.borrow_mut() = Some(outcome);
    }
}

impl<T: 'static> Drop for Lead<T> {
    fn drop(&mut self) {
        self.in_flight.with(|m| {
            let mut map = m.borrow_mut();
            if map
                .get(&self.key)
                .is_some_and(|s| Rc::ptr_eq(s, &self.slot))
            {
                map.remove(&self.key);
            }
        });
    }
}

/// The slot of the work in progress for `key`, if another request leads it.
pub fn in_progress<T: 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
) -> Option<Slot<T>> {
    in_flight.with(|m| m.borrow().get(key).cloned())
}

thread_local! {
    /// Requests of this isolate waiting in [`wait`] now.
    static WAITING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many requests of this isolate wait on another's work now (for the debug route the tests read).
pub fn waiting() -> usize {
    WAITING.with(std::cell::Cell::get)
}

/// Counts a waiter for as long as it waits (also when its request goes away mid-wait and the future is dropped).
struct Waiting;

impl Waiting {
    fn start() -> Self {
        WAITING.with(|w| w.set(w.get() + 1));
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.with(|w| w.set(w.get().saturating_sub(1)));
    }
}

/// The lead's outcome, or `None` when the lead released the key without one or `budget_ms` passed (`None`: no
/// budget of its own; the caller's budget ends the wait by dropping this future).
pub async fn wait<T: Clone + 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
    slot: &Slot<T>,
    budget_ms: Option<u64>,
) -> Option<T> {
    let started = respond::now_ms();
    let _counted = Waiting::start();
    loop {
        if let Some(outcome) = slot.borrow().clone() {
            return Some(outcome);
        }
        let leading = in_flight.with(|m| m.borrow().get(key).is_some_and(|s| Rc::ptr_eq(s, slot)));
        let overdue = budget_ms.is_some_and(|b| respond::now_ms().saturating_sub(started) > b);
        if !leading || overdue {
            return None;
        }
        Delay::from(Duration::from_millis(POLL_MS)).await;
    }
}

/// An outcome an isolate keeps for a while: when it was made and what it was.
pub type Memory<T> = RefCell<Option<(u64, T)>>;

/// How [`shared`] shares one kind of work.
pub struct Sharing<T: 'static> {
    pub in_flight: &'static LocalKey<InFlight<T>>,
    pub memory: &'static LocalKey<Memory<T>>,
    /// How long an outcome answers later callers (0: only callers arriving while it is made).
    pub memory_ms: u64,
    /// How long one run may take: past it, the run ends with its `timed_out` outcome, so neither its caller nor
    /// those waiting for it wait on a stalled binding.
    pub budget_ms: u64,
    /// Whether an outcome is remembered (a failed one may be worth asking again at once).
    pub keep: fn(&T) -> bool,
}

/// `work`'s outcome, shared by the isolate: a caller within `memory_ms` of the last kept outcome gets it, one
/// arriving while a run is in progress waits for that run, and only otherwise does the caller run `work` itself —
/// also when the run it waited for went away without an outcome (its request cancelled) or overran its budget.
pub async fn shared<T: Clone + 'static, F: Future<Output = T>>(
    sharing: &Sharing<T>,
    work: impl FnOnce() -> F,
    timed_out: impl FnOnce() -> T,
) -> T {
    const KEY: &str = "";
    let now = respond::now_ms();
    let recent = sharing.memory.with(|m| {
        m.borrow()
            .as_ref()
            .filter(|(at, _)| {
                now.checked_sub(*at)
                    .is_some_and(|age| age < sharing.memory_ms)
            })
            .map(|(_, outcome)| outcome.clone())
    });
    if let Some(outcome) = recent {
        return outcome;
    }
    // A lead that went away is usually replaced by one of its waiters: the others wait for that one.
    let mut gave_up_on: Option<Slot<T>> = None;
    while let Some(slot) = in_progress(sharing.in_flight, KEY) {
        if gave_up_on.as_ref().is_some_and(|g| Rc::ptr_eq(g, &slot)) {
            break;
        }
        let budget = sharing.budget_ms.saturating_add(1_000);
        if let Some(outcome) = wait(sharing.in_flight, KEY, &slot, Some(budget)).await {
            return outcome;
        }
        gave_up_on = Some(slot);
    }
    let lead = Lead::claim(sharing.in_flight, KEY);
    let timer = Delay::from(Duration::from_millis(sharing.budget_ms));
    let outcome = match futures_util::future::select(std::pin::pin!(work()), timer).await {
        futures_util::future::Either::Left((outcome, _)) => outcome,
        futures_util::future::Either::Right(_) => timed_out(),
    };
    if (sharing.keep)(&outcome) {
        sharing
            .memory
            .with(|m| *m.borrow_mut() = Some((respond::now_ms(), outcome.clone())));
    }
    lead.publish(outcome.clone());
    outcome
}
