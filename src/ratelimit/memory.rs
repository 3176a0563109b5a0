//! What one isolate remembers between requests, so the cheap path costs no round trip: keys known to be exhausted
//! until a given time (refused locally), where each split key's part rotation stands, and limiter objects that let
//! a request wait its whole `timeout_ms` (not asked again for [`SILENT_FOR_MS`]). Pure; time is a parameter.
//! Bounded: at most `capacity` exhausted keys (expired ones are dropped first; when full of live entries, a new one
//! is simply not remembered, which costs a round trip, never correctness); silent objects are at most the
//! configured policies' shards.

use std::collections::HashMap;

/// How long an isolate leaves a limiter object unasked after a request waited its whole `timeout_ms` for it: the
/// policy's `failure` decides for that object's requests at once, instead of each waiting out the timeout again.
/// Then one request asks it again (a probe; the others still skip it while the probe waits), and its answer opens
/// the object to all, or its silence closes it for this long again. The answer the request stopped waiting for
/// ends the silence when it lands ([`IsolateMemory::object_late`]): the object is alive, and probed at once.
pub const SILENT_FOR_MS: u64 = 10_000;

/// Whether to ask a limiter object now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Ask,
    /// It let a request time out, and is not asked again before `until_ms`.
    Skip {
        until_ms: u64,
    },
}

/// A key refused by its object until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    pub until_ms: u64,
    /// When its quota is full again (for the `t` parameter).
    pub reset_at_ms: u64,
}

/// Why an object is not asked before `until_ms`.
#[derive(Debug, Clone, Copy)]
struct Mark {
    until_ms: u64,
    /// A probe is out (the window [`IsolateMemory::gate`] opened, at most the policy's timeout), not a silence: a late
    /// answer does not end it ([`IsolateMemory::object_late`]).
    probing: bool,
}

#[derive(Debug)]
pub struct IsolateMemory {
    exhausted: HashMap<String, Exhausted>,
    rotation: HashMap<String, u32>,
    /// Objects that let a request time out (or have a probe out): not asked before the time held.
    silent: HashMap<String, Mark>,
    capacity: usize,
    seed: u32,
}

impl IsolateMemory {
    /// `seed` (random per isolate) staggers where each isolate starts rotating a split key's parts.
    pub fn new(capacity: usize, seed: u32) -> Self {
        Self {
            exhausted: HashMap::new(),
            rotation: HashMap::new(),
            silent: HashMap::new(),
            capacity,
            seed,
        }
    }

    /// The entry for `key` if it is still exhausted at `now_ms`.
    pub fn exhausted(&self, key: &str, now_ms: u64) -> Option<Exhausted> {
        self.exhausted
            .get(key)
            .copied()
            .filter(|e| e.until_ms > now_ms)
    }

    /// Remembers that `key` was refused at `now_ms` for `retry_after_ms`.
    pub fn remember(&mut self, key: &str, now_ms: u64, retry_after_ms: u64, reset_ms: u64) {
        if retry_after_ms == 0 {
            return;
        }
        if self.exhausted.len() >= self.capacity && !self.exhausted.contains_key(key) {
            self.exhausted.retain(|_, e| e.until_ms > now_ms);
            if self.exhausted.len() >= self.capacity {
                return;
            }
        }
        self.exhausted.insert(
            key.to_owned(),
            Exhausted {
                until_ms: now_ms + retry_after_ms,
                reset_at_ms: now_ms + reset_ms,
            },
        );
    }

    /// Whether to ask `object` at `now_ms`. An object silent until a time now past is asked by this request alone
    /// (a probe): the others skip it for up to `probe_ms` (the policy's timeout), until the probe's outcome is known.
    pub fn gate(&mut self, object: &str, now_ms: u64, probe_ms: u64) -> Gate {
        match self.silent.get_mut(object) {
            None => Gate::Ask,
            Some(mark) if mark.until_ms > now_ms => Gate::Skip {
                until_ms: mark.until_ms,
            },
            Some(mark) => {
                *mark = Mark {
                    until_ms: now_ms + probe_ms,
                    probing: true,
                };
                Gate::Ask
            }
        }
    }

    /// Whether `object` is skipped at `now_ms` ([`IsolateMemory::gate`] would answer [`Gate::Skip`]). Changes nothing.
    pub fn silent(&self, object: &str, now_ms: u64) -> bool {
        self.silent
            .get(object)
            .is_some_and(|mark| mark.until_ms > now_ms)
    }

    /// Until when `object` is skipped, if it is at `now_ms` ([`IsolateMemory::silent`]): the moment this isolate next
    /// asks it (a probe), which a refusal for its silence tells the client to wait for (`Retry-After`).
    pub fn silent_until(&self, object: &str, now_ms: u64) -> Option<u64> {
        self.silent
            .get(object)
            .map(|mark| mark.until_ms)
            .filter(|&until_ms| until_ms > now_ms)
    }

    /// Whether any object is skipped at `now_ms`: the cheap test before asking about each.
    pub fn any_silent(&self, now_ms: u64) -> bool {
        self.silent.values().any(|mark| mark.until_ms > now_ms)
    }

    /// `object` let a request wait its whole timeout, ending at `now_ms`: skipped for [`SILENT_FOR_MS`].
    pub fn object_silent(&mut self, object: &str, now_ms: u64) {
        self.silent.insert(
            object.to_owned(),
            Mark {
                until_ms: now_ms + SILENT_FOR_MS,
                probing: false,
            },
        );
    }

    /// `object`'s answer to a request that stopped waiting for it (after `timeout_ms`) arrived at `now_ms`: it is
    /// alive, only slow. A silence its lateness marked ends now, so the next request probes it (the others still
    /// skip it while that probe waits) instead of none asking it for [`SILENT_FOR_MS`]. An object not marked stays
    /// unmarked, and a probe's window stays open: the answer of another request that timed out with this one, landing
    /// while the probe waits, sends no second probe (one at a time; the probe's outcome decides).
    pub fn object_late(&mut self, object: &str, now_ms: u64) {
        if let Some(mark) = self.silent.get_mut(object).filter(|mark| !mark.probing) {
            mark.until_ms = mark.until_ms.min(now_ms);
        }
    }

    /// `object` answered (anything, or failed at once): asked again by every request.
    pub fn object_answered(&mut self, object: &str) {
        self.silent.remove(object);
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.exhausted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exhausted.is_empty()
    }

    /// The next part of split key `key` (over `parts`) in this isolate's rotation that `usable` accepts, or `None`
    /// when no part is usable. Advances the rotation past the part chosen.
    pub fn next_part(
        &mut self,
        key: &str,
        parts: u32,
        mut usable: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        let start = *self
            .rotation
            .entry(key.to_owned())
            .or_insert(self.seed % parts.max(1));
        let chosen = (0..parts)
            .map(|i| (start + i) % parts)
            .find(|&p| usable(p))?;
        self.rotation.insert(key.to_owned(), (chosen + 1) % parts);
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_key_is_refused_locally_until_its_retry_time_only() {
        let mut memory = IsolateMemory::new(10, 0);
        memory.remember("api:k", 1_000, 500, 60_000);
        assert!(
            memory.exhausted("api:k", 1_000).is_some(),
            "refused at once"
        );
        assert!(
            memory.exhausted("api:k", 1_499).is_some(),
            "refused until retry time"
        );
        assert_eq!(
            memory.exhausted("api:k", 1_500),
            None,
            "asked again from retry time"
        );
        assert_eq!(
            memory.exhausted("api:other", 1_000),
            None,
            "other keys untouched"
        );
    }

    #[test]
    fn the_memory_is_bounded_and_drops_expired_entries_first() {
        let mut memory = IsolateMemory::new(2, 0);
        memory.remember("a", 0, 100, 100);
        memory.remember("b", 0, 1_000, 1_000);
        memory.remember("c", 50, 1_000, 1_000);
        assert_eq!(memory.len(), 2, "full of live entries: c not remembered");
        assert_eq!(memory.exhausted("c", 50), None);
        memory.remember("c", 200, 1_000, 1_000);
        assert!(
            memory.exhausted("c", 200).is_some(),
            "a expired and made room"
        );
        assert_eq!(memory.len(), 2);
    }

    #[test]
    fn a_silent_object_is_skipped_for_a_while_then_probed_by_one_request() {
        let mut memory = IsolateMemory::new(10, 0);
        assert_eq!(memory.gate("api:3", 0, 300), Gate::Ask, "unknown: asked");
        memory.object_silent("api:3", 1_000);
        let until_ms = 1_000 + SILENT_FOR_MS;
        assert_eq!(memory.gate("api:3", 1_000, 300), Gate::Skip { until_ms });
        assert_eq!(
            memory.gate("api:3", until_ms - 1, 300),
            Gate::Skip { until_ms }
        );
        assert_eq!(
            memory.gate("api:4", 1_000, 300),
            Gate::Ask,
            "other objects asked"
        );
        assert_eq!(memory.gate("api:3", until_ms, 300), Gate::Ask, "one probe");
        assert_eq!(
            memory.gate("api:3", until_ms + 1, 300),
            Gate::Skip {
                until_ms: until_ms + 300
            },
            "the others wait for the probe's outcome, at most its timeout"
        );
        memory.object_silent("api:3", until_ms + 300);
        assert_eq!(
            memory.gate("api:3", until_ms + 301, 300),
            Gate::Skip {
                until_ms: until_ms + 300 + SILENT_FOR_MS
            },
            "a silent probe closes it again"
        );
        assert_eq!(
            memory.gate("api:3", until_ms + 300 + SILENT_FOR_MS, 300),
            Gate::Ask
        );
        memory.object_answered("api:3");
        assert_eq!(
            memory.gate("api:3", until_ms + 300 + SILENT_FOR_MS, 300),
            Gate::Ask
        );
        assert_eq!(
            memory.gate("api:3", until_ms + 301 + SILENT_FOR_MS, 300),
            Gate::Ask,
            "an answered probe opens it to all"
        );
    }

    /// An object marked silent whose answer then arrived is alive, only slow: one late answer kept the whole
    /// isolate from asking it for [`SILENT_FOR_MS`] (its requests failed open, uncounted, or closed, 503). Now the
    /// mark ends when the answer lands: the next request probes it (the others still skip while that probe waits).
    #[test]
    fn a_late_answer_cuts_the_silence_short_to_one_probe() {
        let mut memory = IsolateMemory::new(10, 0);
        memory.object_silent("api:3", 1_000);
        memory.object_late("api:3", 1_100);
        assert_eq!(
            memory.gate("api:3", 1_100, 300),
            Gate::Ask,
            "probed at once"
        );
        assert_eq!(
            memory.gate("api:3", 1_101, 300),
            Gate::Skip { until_ms: 1_400 },
            "the others wait for the probe"
        );
        memory.object_late("api:4", 1_200);
        assert_eq!(
            memory.gate("api:4", 1_200, 300),
            Gate::Ask,
            "never marked: nothing to cut"
        );
        assert!(
            !memory.silent("api:4", 1_200),
            "a late answer marks nothing"
        );
    }

    /// The late answers of several requests that timed out together land one after another. The first cuts the
    /// silence and the next request probes; a later one, landing while that probe waits, cut the probe's window too
    /// (`min(until, now)`), and the request after it probed as well: a slow object under load got as many probes at
    /// once as late answers, where one at a time was meant. A late answer ends a silence, never a probe's window.
    #[test]
    fn a_late_answer_landing_while_a_probe_waits_sends_no_second_probe() {
        let mut memory = IsolateMemory::new(10, 0);
        memory.object_silent("api:3", 1_000);
        memory.object_late("api:3", 1_100);
        assert_eq!(memory.gate("api:3", 1_100, 300), Gate::Ask, "the probe");
        memory.object_late("api:3", 1_150);
        assert_eq!(
            memory.gate("api:3", 1_150, 300),
            Gate::Skip { until_ms: 1_400 },
            "still waiting for the probe"
        );
        assert!(memory.silent("api:3", 1_150));
        memory.object_silent("api:3", 1_400);
        memory.object_late("api:3", 1_500);
        assert_eq!(
            memory.gate("api:3", 1_500, 300),
            Gate::Ask,
            "the probe's own late answer ends its silence"
        );
    }

    #[test]
    fn parts_rotate_evenly_and_skip_unusable_ones() {
        let mut memory = IsolateMemory::new(10, 7);
        let picks: Vec<u32> = (0..8)
            .filter_map(|_| memory.next_part("hot", 4, |_| true))
            .collect();
        assert_eq!(
            picks,
            vec![3, 0, 1, 2, 3, 0, 1, 2],
            "seed 7 starts at part 3, then rotates"
        );
        let skip: Vec<u32> = (0..4)
            .filter_map(|_| memory.next_part("hot", 4, |p| p != 0))
            .collect();
        assert_eq!(skip, vec![3, 1, 2, 3], "part 0 skipped");
        assert_eq!(
            memory.next_part("hot", 4, |_| false),
            None,
            "no usable part"
        );
    }
}
