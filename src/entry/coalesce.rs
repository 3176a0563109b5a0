//! In-isolate coalescing: concurrent requests needing the same piece of work (a cache fill, a fragment fetch) let
//! one of them — the lead — do it, and the others wait for its outcome. Waiters poll a plain-data slot on their own
//! timer instead of awaiting the lead's future: workerd binds every promise to the request that created it and
//! cancels a request whose only pending work belongs to another as hung (found by the gateway's coalescing test),
//! while a timer is the waiter's own pending work. [`shared`] adds a memory for work whose outcome is the same for
//! every caller (a readiness probe, the room listing), so unauthenticated routes that fan out cost one run per
//! isolate and interval however often they are asked.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::thread::LocalKey;
use std::time::Duration;

use worker::Delay;

use super::respond;

/// One piece of work as its lead and its waiters share it: the outcome, filled in by its lead, and the work that
/// took over from it when a waiter found that outcome superseded (its key asked again). Waiters leaving the same work
/// follow it there, however late their timers let them look: polled, a waiter may see the outcome only once the
/// work asked again is done and released, and would otherwise ask a third time. The link is weak — a waiter whose
/// request was cancelled, its future never dropped, keeps the work it waited on but no chain of later ones — and
/// work taken over to is kept, released, under its key until its claim's deadline or the key's next claim, whichever
/// comes first ([`Lead`]'s drop).
pub struct Work<T> {
    outcome: RefCell<Option<T>>,
    successor: RefCell<Weak<Work<T>>>,
    /// Whether some work was left for this one (then it outlives its release, for the waiters still to follow).
    taken_over_to: Cell<bool>,
}

/// The shared handle on one piece of work.
pub type Slot<T> = Rc<Work<T>>;

impl<T> Default for Work<T> {
    fn default() -> Self {
        Self {
            outcome: RefCell::new(None),
            successor: RefCell::new(Weak::new()),
            taken_over_to: Cell::new(false),
        }
    }
}

impl<T: Clone> Work<T> {
    /// The lead's outcome, once it has one.
    pub fn outcome(&self) -> Option<T> {
        self.outcome.borrow().clone()
    }

    /// Whether the lead has handed out its outcome.
    pub fn is_done(&self) -> bool {
        self.outcome.borrow().is_some()
    }

    /// The work that took over from this one, if a waiter leaving it found or led any and anyone still holds it
    /// (a waiter on it, its lead, or the isolate keeping it released: [`Lead`]'s drop).
    pub fn successor(&self) -> Option<Slot<T>> {
        self.successor.borrow().upgrade()
    }

    /// Names `next` — the claim standing on this work's key now — the work that took over from this one, unless work
    /// that took over is done already: the first to take over and answer stands, so every waiter leaving this work
    /// meets the same answer. Work that took over and is not done is `next` itself (linked again, nothing changes) or
    /// no longer the standing claim: its lead went away without an outcome, or its claim lapsed or was replaced, and
    /// its own waiters leave it ([`wait`]); it gives way though they still hold it (else each of them, leaving it,
    /// asked the origin again). A claim on one key is only ever made afresh, so the successors of work on one key never
    /// loop back; callers never link work across keys.
    pub fn hand_over(&self, next: &Slot<T>) {
        if std::ptr::eq(self, Rc::as_ptr(next)) {
            return;
        }
        let mut successor = self.successor.borrow_mut();
        if !successor.upgrade().is_some_and(|s| s.is_done()) {
            *successor = Rc::downgrade(next);
            next.taken_over_to.set(true);
        }
    }
}

/// Work in progress in this isolate, by key (a `thread_local!` per kind of work): its slot and the time (ms) its
/// claim lapses.
pub type InFlight<T> = RefCell<HashMap<String, Claimed<T>>>;

/// A claim as the isolate holds it: the lead's slot, when (ms) it was made, until when (ms) it stands without being
/// released, its first deadline, and whether it was released (kept only as work taken over to, joined by no one).
pub struct Claimed<T> {
    slot: Slot<T>,
    since_ms: u64,
    until_ms: u64,
    deadline_ms: u64,
    released: bool,
}

impl<T> Claimed<T> {
    /// The slot of a claim that still stands at `now_ms`: a lead whose request was cancelled may never be dropped
    /// (a wasm future the runtime abandons is not), so a claim lapses at its own deadline rather than holding its
    /// key — and every request that joins it — until each waiter's budget runs out.
    fn live(&self, now_ms: u64) -> Option<&Slot<T>> {
        (!self.released && self.kept(now_ms)).then_some(&self.slot)
    }

    /// Whether the isolate still keeps this claim at `now_ms` (standing, or released and kept as work taken over to).
    fn kept(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }
}

/// How often a waiter looks at the slot.
const POLL_MS: u64 = 10;

/// What a lead's own steps add to the budget of its work: timers fire late, an aborted attempt settles, a body is
/// made a `Blob`.
const SLACK_MS: u64 = 1_000;

/// How long a claim on work bounded by `budget_ms` stands, and how long a waiter arriving with it waits: with
/// [`SLACK_MS`] more, so a live lead finishing at its budget's end is not taken for an abandoned one (its waiters
/// leaving it for a second origin request a few ms before its answer).
pub fn hold_ms(budget_ms: u64) -> u64 {
    budget_ms.saturating_add(SLACK_MS)
}

/// A request's claim on `key`: held while it does the work; dropping it (done, or the request went away) releases
/// the key, so waiters never wait for work that nobody is doing. Work some other was left for ([`Work::hand_over`])
/// and done stays under its key, released (joined by no one), however soon it was released, until the key's next
/// claim or the claim's first deadline (then until the next claim on any key: lapsed entries go then): the waiters
/// leaving that other work, however late they look, find its outcome through their weak link. One such per key at
/// most.
pub struct Lead<T: 'static> {
    in_flight: &'static LocalKey<InFlight<T>>,
    key: String,
    slot: Slot<T>,
}

impl<T: Clone + 'static> Lead<T> {
    /// Claims `key` (replacing a claim whose waiters gave up on it, or that lapsed) at `now_ms` for at most
    /// `hold_ms`: past it the claim lapses even if this lead is never dropped
    /// (its request cancelled and its future abandoned), and the next request for the key takes the lead.
    pub fn claim_at(
        in_flight: &'static LocalKey<InFlight<T>>,
        key: &str,
        now_ms: u64,
        hold_ms: u64,
    ) -> Self {
        let slot = Slot::default();
        let until_ms = now_ms.saturating_add(hold_ms);
        in_flight.with(|m| {
            let mut map = m.borrow_mut();
            // Lapsed claims go: an abandoned lead's key, never asked for again, would stay for the isolate's life.
            map.retain(|_, c| c.kept(now_ms));
            map.insert(
                key.to_owned(),
                Claimed {
                    slot: slot.clone(),
                    since_ms: now_ms,
                    until_ms,
                    deadline_ms: until_ms,
                    released: false,
                },
            )
        });
        Self {
            in_flight,
            key: key.to_owned(),
            slot,
        }
    }

    /// The work this lead does, as its waiters see it.
    pub fn slot(&self) -> &Slot<T> {
        &self.slot
    }

    /// Hands the outcome to the waiters (they read it at their next look, even after the claim is released).
    pub fn publish(&self, outcome: T) {
        *self.slot.outcome.borrow_mut() = Some(outcome);
    }

    /// [`Self::publish`], and the claim stands from `now_ms` for at most `keep_ms` more (while the lead stores the
    /// outcome, requests arriving take it), whatever its deadline was.
    pub fn publish_at(&self, outcome: T, now_ms: u64, keep_ms: u64) {
        self.publish(outcome);
        self.in_flight.with(|m| {
            if let Some(claimed) = m
                .borrow_mut()
                .get_mut(&self.key)
                .filter(|c| Rc::ptr_eq(&c.slot, &self.slot))
            {
                claimed.until_ms = now_ms.saturating_add(keep_ms);
            }
        });
    }
}

impl<T: 'static> Drop for Lead<T> {
    fn drop(&mut self) {
        self.in_flight.with(|m| {
            let mut map = m.borrow_mut();
            let Some(claimed) = map
                .get_mut(&self.key)
                .filter(|c| Rc::ptr_eq(&c.slot, &self.slot))
            else {
                return;
            };
            if self.slot.taken_over_to.get() && self.slot.outcome.borrow().is_some() {
                claimed.released = true;
                claimed.until_ms = claimed.deadline_ms;
            } else {
                map.remove(&self.key);
            }
        });
    }
}

/// The slot of the work in progress for `key`, if another request leads it (under a claim that has not lapsed).
pub fn in_progress<T: 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
) -> Option<Slot<T>> {
    in_progress_at(in_flight, key, respond::now_ms())
}

/// [`in_progress`] at `now_ms`: work claimed at any time.
pub fn in_progress_at<T: 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
    now_ms: u64,
) -> Option<Slot<T>> {
    in_progress_within(in_flight, key, now_ms, u64::MAX)
}

/// The slot of the work in progress for `key` at `now_ms`, only for work claimed less than `fresh_ms` before `now_ms` (0: none): for work whose outcome
/// is as old as its start — a read of something another isolate may change meanwhile — a caller that may take no
/// older answer does not wait for one begun before that.
pub fn in_progress_within<T: 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
    now_ms: u64,
    fresh_ms: u64,
) -> Option<Slot<T>> {
    in_flight.with(|m| {
        m.borrow()
            .get(key)
            .filter(|c| c.since_ms.saturating_add(fresh_ms) > now_ms)
            .and_then(|c| c.live(now_ms))
            .cloned()
    })
}

/// How many claims of the kind `in_flight` holds stand at `now_ms` (for the debug route the tests read).
pub fn claims_at<T: 'static>(in_flight: &'static LocalKey<InFlight<T>>, now_ms: u64) -> usize {
    in_flight.with(|m| {
        m.borrow()
            .values()
            .filter(|c| c.live(now_ms).is_some())
            .count()
    })
}

/// Whether `slot`'s claim on `key` still stands at `now_ms` (not released, replaced or lapsed).
fn leads<T: 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
    slot: &Slot<T>,
    now_ms: u64,
) -> bool {
    in_progress_at(in_flight, key, now_ms).is_some_and(|s| Rc::ptr_eq(&s, slot))
}

thread_local! {
    /// Requests of this isolate waiting in [`wait`] now, by the kind of work they wait on (the address of its
    /// [`InFlight`], a static).
    static WAITING: RefCell<HashMap<usize, usize>> = RefCell::new(HashMap::new());
}

/// The key [`WAITING`] counts the waiters on `in_flight`'s work under.
fn kind<T: 'static>(in_flight: &'static LocalKey<InFlight<T>>) -> usize {
    std::ptr::from_ref(in_flight) as usize
}

/// How many requests of this isolate wait on another's work of the kind `in_flight` holds now (for the debug
/// route the tests read).
pub fn waiting_on<T: 'static>(in_flight: &'static LocalKey<InFlight<T>>) -> usize {
    WAITING.with(|w| w.borrow().get(&kind(in_flight)).copied().unwrap_or(0))
}

/// How many requests of this isolate wait on another's work of any kind now.
pub fn waiting() -> usize {
    WAITING.with(|w| w.borrow().values().sum())
}

/// Counts a waiter under its kind of work for as long as it waits (also when its request goes away mid-wait and
/// the future is dropped).
struct Waiting(usize);

impl Waiting {
    fn start(kind: usize) -> Self {
        WAITING.with(|w| *w.borrow_mut().entry(kind).or_insert(0) += 1);
        Self(kind)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.with(|w| {
            let mut w = w.borrow_mut();
            if let Some(n) = w.get_mut(&self.0) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    w.remove(&self.0);
                }
            }
        });
    }
}

/// The lead's outcome, or `None` when the lead released the key without one, its claim lapsed or `budget_ms` passed (`None`: no
/// budget of its own; the caller's budget ends the wait by dropping this future).
pub async fn wait<T: Clone + 'static>(
    in_flight: &'static LocalKey<InFlight<T>>,
    key: &str,
    slot: &Slot<T>,
    budget_ms: Option<u64>,
) -> Option<T> {
    let started = respond::now_ms();
    let _counted = Waiting::start(kind(in_flight));
    loop {
        if let Some(outcome) = slot.outcome() {
            return Some(outcome);
        }
        let now = respond::now_ms();
        let leading = leads(in_flight, key, slot, now);
        let overdue = budget_ms.is_some_and(|b| now.saturating_sub(started) > b);
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
        let budget = hold_ms(sharing.budget_ms);
        if let Some(outcome) = wait(sharing.in_flight, KEY, &slot, Some(budget)).await {
            return outcome;
        }
        gave_up_on = Some(slot);
    }
    // Lapses with the run's budget: a run whose request was cancelled, its future never dropped, holds no one past it.
    let lead = Lead::claim_at(
        sharing.in_flight,
        KEY,
        respond::now_ms(),
        hold_ms(sharing.budget_ms),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static WORK: InFlight<u32> = RefCell::new(HashMap::new());
    }

    /// Work claimed on `key` at 0 whose lead was dropped without an outcome: the work a waiter left.
    fn left_work(key: &str) -> Slot<u32> {
        let left = Lead::<u32>::claim_at(&WORK, key, 0, 10_000);
        let slot = left.slot().clone();
        drop(left);
        slot
    }

    #[test]
    fn an_abandoned_claim_lapses_at_its_deadline_and_the_next_request_leads() {
        // A lead whose request was cancelled: its future is never polled or dropped again.
        let abandoned = Lead::<u32>::claim_at(&WORK, "k", 1_000, 20_000);
        assert!(in_progress_at(&WORK, "k", 1_000).is_some());
        let slot = in_progress_at(&WORK, "k", 20_999).expect("stands until its deadline");
        assert!(leads(&WORK, "k", &slot, 20_999));
        assert!(
            in_progress_at(&WORK, "k", 21_000).is_none(),
            "lapsed: nobody joins it"
        );
        assert!(
            !leads(&WORK, "k", &slot, 21_000),
            "its waiters stop waiting for it"
        );
        let next = Lead::claim_at(&WORK, "k", 21_000, 20_000);
        let taken = in_progress_at(&WORK, "k", 21_001).expect("the new lead's");
        assert!(!Rc::ptr_eq(&taken, &slot));
        drop(abandoned);
        assert!(
            in_progress_at(&WORK, "k", 21_001).is_some(),
            "the old lead, dropped late, leaves the new claim alone"
        );
        drop(next);
        assert!(in_progress_at(&WORK, "k", 21_001).is_none());
    }

    #[test]
    fn a_live_lead_publishing_just_past_its_budget_keeps_its_claim() {
        // A fill of 10 s × 2 attempts + 10 s of body: its timers fire late, an aborted attempt settles and the body
        // is made a Blob, so a lead still working publishes a few ms past the budget.
        let budget = 30_000;
        let lead = Lead::<u32>::claim_at(&WORK, "s", 1_000, hold_ms(budget));
        let slot = in_progress_at(&WORK, "s", 1_000 + budget + 5)
            .expect("still this lead's: nobody else asks the origin, and its waiters stay");
        assert!(leads(&WORK, "s", &slot, 1_000 + budget + 5));
        drop(lead);
    }

    #[test]
    fn a_lapsed_claim_left_by_an_abandoned_lead_is_removed_by_the_next_claim_on_any_key() {
        // A lead whose request was cancelled and whose future is never dropped: its key is never asked again.
        let abandoned = Lead::<u32>::claim_at(&WORK, "gone", 0, 1_000);
        std::mem::forget(abandoned);
        let other = Lead::<u32>::claim_at(&WORK, "other", 5_000, 1_000);
        assert!(
            WORK.with(|m| !m.borrow().contains_key("gone")),
            "the isolate keeps no entry per abandoned lead"
        );
        drop(other);
        assert!(WORK.with(|m| m.borrow().is_empty()));
    }

    #[test]
    fn only_work_claimed_within_the_freshness_asked_for_is_joined() {
        let lead = Lead::<u32>::claim_at(&WORK, "f", 1_000, 20_000);
        assert!(in_progress_within(&WORK, "f", 1_000, 1).is_some());
        assert!(in_progress_within(&WORK, "f", 5_999, 5_000).is_some());
        assert!(
            in_progress_within(&WORK, "f", 6_000, 5_000).is_none(),
            "begun 5 s before: an answer older than the caller may take"
        );
        assert!(
            in_progress_within(&WORK, "f", 1_000, 0).is_none(),
            "0: no work under way is fresh enough"
        );
        assert!(
            in_progress_at(&WORK, "f", 6_000).is_some(),
            "still in progress"
        );
        drop(lead);
    }

    #[test]
    fn work_taken_over_to_is_found_through_the_link_after_its_release_until_its_deadline() {
        let left = Lead::<u32>::claim_at(&WORK, "h", 0, 10_000);
        let slot = left.slot().clone();
        left.publish(1);
        drop(left);
        let again = Lead::<u32>::claim_at(&WORK, "h", 5, 10_000);
        slot.hand_over(again.slot());
        slot.hand_over(&slot.clone());
        again.publish(2);
        drop(again);
        assert!(
            in_progress_at(&WORK, "h", 7).is_none(),
            "released: a request arriving now joins no one"
        );
        assert_eq!(claims_at(&WORK, 7), 0);
        let next = slot
            .successor()
            .expect("kept for the waiters leaving the work");
        assert_eq!(
            next.outcome(),
            Some(2),
            "a waiter still holding the left work finds the work asked again, done and released"
        );
        assert!(next.successor().is_none());
        drop(next);
        // Past the claim's deadline the next claim on any key drops it: the link does not keep it.
        let other = Lead::<u32>::claim_at(&WORK, "other-h", 10_005, 1_000);
        assert!(slot.successor().is_none());
        drop(other);
    }

    #[test]
    fn the_first_work_to_take_over_stands_while_it_is_claimed_or_done() {
        let slot = left_work("s1");
        let first = Lead::<u32>::claim_at(&WORK, "s1", 5, 10_000);
        slot.hand_over(first.slot());
        slot.hand_over(&slot.clone());
        assert!(Rc::ptr_eq(&slot.successor().expect("linked"), first.slot()));
        // Replaced by a later claim (its waiters' budgets ran out), its waiters leave it too: it gives way.
        let second = Lead::<u32>::claim_at(&WORK, "s1", 6, 10_000);
        slot.hand_over(second.slot());
        assert!(Rc::ptr_eq(
            &slot.successor().expect("relinked"),
            second.slot()
        ));
        second.publish(2);
        let third = Lead::<u32>::claim_at(&WORK, "s1", 7, 10_000);
        slot.hand_over(third.slot());
        assert!(
            Rc::ptr_eq(&slot.successor().expect("linked"), second.slot()),
            "done, it stands"
        );
        drop(first);
        drop(second);
        drop(third);
        assert!(
            slot.successor().is_none(),
            "replaced before its release, nothing keeps it once its lead is dropped"
        );
        let fourth = Lead::<u32>::claim_at(&WORK, "s1", 8, 10_000);
        slot.hand_over(fourth.slot());
        assert!(
            Rc::ptr_eq(&slot.successor().expect("relinked"), fourth.slot()),
            "a link to work no longer held gives way"
        );
        drop(fourth);
        assert!(in_progress_at(&WORK, "s1", 9).is_none());
    }

    #[test]
    fn work_taken_over_to_that_went_away_without_an_outcome_gives_way_though_waiters_hold_it() {
        let slot = left_work("d");
        let gone = Lead::<u32>::claim_at(&WORK, "d", 5, 10_000);
        slot.hand_over(gone.slot());
        // Its waiters still hold it when its request goes away with no answer.
        let held = gone.slot().clone();
        drop(gone);
        let next = Lead::<u32>::claim_at(&WORK, "d", 6, 10_000);
        slot.hand_over(next.slot());
        assert!(
            Rc::ptr_eq(&slot.successor().expect("linked"), next.slot()),
            "the waiters leaving the left work meet the one that leads now"
        );
        // A lead abandoned, never dropped, whose claim lapsed and whose key was claimed afresh: the same.
        std::mem::forget(next);
        let after = Lead::<u32>::claim_at(&WORK, "d", 10_006, 10_000);
        slot.hand_over(after.slot());
        assert!(Rc::ptr_eq(
            &slot.successor().expect("relinked"),
            after.slot()
        ));
        assert!(held.outcome().is_none());
        drop(after);
    }

    #[test]
    fn a_lead_dropped_without_an_outcome_releases_its_key_though_work_was_left_for_it() {
        let slot = left_work("n");
        let gone = Lead::<u32>::claim_at(&WORK, "n", 5, 10_000);
        slot.hand_over(gone.slot());
        drop(gone);
        assert!(WORK.with(|m| !m.borrow().contains_key("n")));
        assert!(slot.successor().is_none());
    }

    #[test]
    fn publishing_dates_the_claim_afresh_and_dropping_releases_it() {
        let lead = Lead::<u32>::claim_at(&WORK, "p", 0, 10_000);
        lead.publish_at(7, 9_000, 5_000);
        let slot = in_progress_at(&WORK, "p", 13_999).expect("held while its outcome is stored");
        assert_eq!(slot.outcome(), Some(7));
        assert!(in_progress_at(&WORK, "p", 14_000).is_none());
        drop(lead);
        let held = Lead::<u32>::claim_at(&WORK, "q", 0, 10_000);
        assert!(in_progress_at(&WORK, "q", 9_999).is_some());
        drop(held);
        assert!(
            in_progress_at(&WORK, "q", 0).is_none(),
            "released before its deadline"
        );
    }
}
