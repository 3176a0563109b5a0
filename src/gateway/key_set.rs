//! The isolate's memory of the JWKS read from KV: when to read it again, what requests use meanwhile, and which
//! read's outcome is kept.
//!
//! A key set is reused for its TTL. When it lapses, one request re-reads it and the requests arriving during that
//! read keep using the lapsed set (for at most [`REFRESH_STALE_MS`], in case the read stalls): before, every request
//! in flight at the lapse read and parsed KV itself, and each read replaced the set, restarting the memory of
//! verified tokens that belongs to it (`token_cache`) as many times. A re-read that finds the document unchanged
//! keeps the same set, so that memory outlives the TTL; a changed one (a rotation) replaces it. A slower read never
//! replaces the outcome of one that started after it: neither its kept set nor its failure (and that failure's hold).
//!
//! An isolate with no set yet (cold) has nothing to lend: the requests arriving while its first read is under way
//! wait for that read's outcome ([`Lookup::Await`]) instead of each reading and parsing KV itself — a burst of N
//! requests to a fresh isolate made N reads. A failed read fails its waiters too (nothing is verified without a
//! key set), and the next request reads again; a read that stalls is waited for at most [`REFRESH_STALE_MS`] from
//! its start.
//!
//! A failed read (KV erring, no document, one that is no JWKS) holds off the next read for a while
//! (`GATEWAY_JWKS_HOLD_MS`, [`KeySetMemory::failed`]): meanwhile requests use the kept set while it may be lent
//! ([`KeySetMemory::grace`]) and are otherwise answered that failure ([`Lookup::Held`]) without a read of their own
//! — before, while the document was broken or missing every JWT request read KV again, and logged it.
//!
//! Which failure it was matters to an older read that ends after it ([`ReadFailure`]): a document found missing or
//! no JWKS is newer word of the document than what the older read found, while KV erring says nothing of it — the
//! older read's good document is then the newest known, and is kept (lifting the hold) rather than a hiccup's.

use std::rc::Rc;

/// How long the requests arriving while the key set is re-read keep using the lapsed one, counted from the first
/// re-read. A KV read takes milliseconds; past this the read is taken as stalled (its request may have gone away
/// without finishing it) and every request reads again until one read is kept.
pub const REFRESH_STALE_MS: u64 = 2_000;

/// What a request does for its key set.
#[derive(Debug)]
pub enum Lookup<K> {
    /// Use this set (fresh, or lapsed while another request re-reads it).
    Use(Rc<K>),
    /// Read the document and hand it to [`KeySetMemory::keep`] with this read number.
    Read(u64),
    /// No set yet, and read `read` is under way: wait for its outcome for at most `wait_ms`, what is left of
    /// [`REFRESH_STALE_MS`] from that read's start (counted from the waiter's own arrival, a request arriving late in
    /// a stalled read waited up to twice that before reading itself), then look up again if none came.
    Await { read: u64, wait_ms: u64 },
    /// A read failed less than the hold ago and no kept set may be lent: answer that failure (`detail`, of `kind`)
    /// without reading again, for `left_ms` more.
    Held {
        detail: String,
        kind: ReadFailure,
        left_ms: u64,
    },
}

/// Why a read found no key set: what it says of the document an older read, ending after it, found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// The document is missing or is no JWKS: newer word of it than an older read's, which is not kept over it.
    Document,
    /// KV erred (a hiccup, an outage): nothing is known of the document, so an older read's good one is kept.
    Store,
}

/// A read that failed: until when it holds off the next read, why it failed, and its number (a read that started
/// before it and fails after it sets no hold of its own).
struct Failed {
    until_ms: u64,
    detail: String,
    /// Whether it said anything of the document, or KV erred (answered 503 while it holds: a store outage passes).
    kind: ReadFailure,
    read: u64,
}

struct Kept<K> {
    /// When the read that produced it started (ms since the epoch).
    at_ms: u64,
    /// That read's number: reads are numbered in the order they started.
    read: u64,
    document: String,
    keys: Rc<K>,
}

/// The kept key set and the read in progress, if any.
pub struct KeySetMemory<K> {
    kept: Option<Kept<K>>,
    reads: u64,
    /// The read in progress: its number.
    refreshing: Option<u64>,
    /// When the read in progress started: a cold isolate's requests wait for it until [`REFRESH_STALE_MS`] from then.
    read_started: u64,
    /// When the first read since the kept set was last refreshed started: the lapsed set is used for at most
    /// [`REFRESH_STALE_MS`] from then, however many reads stall or fail meanwhile (counted from the latest read,
    /// a KV that keeps stalling or failing would keep a removed key accepted, one request every 2 s waiting).
    refresh_since: Option<u64>,
    /// The last read that failed, while it holds off the next ([`Self::failed`]).
    failed: Option<Failed>,
    /// The newest read that found the document missing or no JWKS (0: none): an older read's document is not kept
    /// over it, whichever failure set the hold since (a later KV error says nothing of the document).
    document_failed: u64,
}

impl<K> Default for KeySetMemory<K> {
    fn default() -> Self {
        Self {
            kept: None,
            reads: 0,
            refreshing: None,
            read_started: 0,
            refresh_since: None,
            failed: None,
            document_failed: 0,
        }
    }
}

impl<K> KeySetMemory<K> {
    /// The key set for a request arriving at `now_ms`, or the number of the read it must make.
    pub fn lookup(&mut self, now_ms: u64, ttl_ms: u64) -> Lookup<K> {
        if let Some(kept) = &self.kept {
            let age = now_ms.saturating_sub(kept.at_ms);
            let read_under_way = self.refreshing.is_some()
                && self
                    .refresh_since
                    .is_some_and(|since| now_ms.saturating_sub(since) < REFRESH_STALE_MS);
            if age < ttl_ms || read_under_way {
                return Lookup::Use(kept.keys.clone());
            }
        }
        if let Some(failed) = self.failed.as_ref().filter(|f| now_ms < f.until_ms) {
            return match self.grace(now_ms, ttl_ms) {
                Some(keys) => Lookup::Use(keys),
                None => Lookup::Held {
                    detail: failed.detail.clone(),
                    kind: failed.kind,
                    left_ms: failed.until_ms - now_ms,
                },
            };
        }
        if let (None, Some(read)) = (&self.kept, self.refreshing) {
            let waited = now_ms.saturating_sub(self.read_started);
            if waited < REFRESH_STALE_MS {
                return Lookup::Await {
                    read,
                    wait_ms: REFRESH_STALE_MS - waited,
                };
            }
        }
        self.reads += 1;
        self.refreshing = Some(self.reads);
        self.read_started = now_ms;
        self.refresh_since.get_or_insert(now_ms);
        Lookup::Read(self.reads)
    }

    /// The key set read `read` (started at `started_ms`) found in `document`: the kept set when the document is
    /// unchanged, else `parse`'s, kept unless a read that started later has been kept meanwhile — or has found the
    /// document broken or gone ([`ReadFailure::Document`], remembered whatever failure set the hold since): that is
    /// newer than this read's document, which neither lifts the hold nor restarts the kept set's age; its own request
    /// (and its waiters) use it all the same, and the next read after the hold decides. (Before, a stalled read ending
    /// after a newer one failed was kept for a whole TTL, and lifted the hold the newer failure had set.) A later read
    /// that failed because KV erred ([`ReadFailure::Store`]) read no document: this one's is the newest known, kept,
    /// and lifts that hold (before, a KV hiccup beat a good read, and requests were answered 500 or lent the older set
    /// meanwhile).
    pub fn keep<E>(
        &mut self,
        read: u64,
        started_ms: u64,
        document: String,
        parse: impl FnOnce(&str) -> Result<K, E>,
    ) -> Result<Rc<K>, E> {
        self.finished(read);
        let newer_failed = self.document_failed > read;
        if let Some(kept) = self.kept.as_mut().filter(|k| k.document == document) {
            if kept.read < read && !newer_failed {
                kept.at_ms = started_ms;
                kept.read = read;
                self.refresh_since = None;
                self.failed = None;
            }
            return Ok(kept.keys.clone());
        }
        let keys = Rc::new(parse(&document)?);
        if !newer_failed && self.kept.as_ref().is_none_or(|k| k.read < read) {
            self.kept = Some(Kept {
                at_ms: started_ms,
                read,
                document,
                keys: keys.clone(),
            });
            self.refresh_since = None;
            self.failed = None;
        }
        Ok(keys)
    }

    /// The kept set for a request whose re-read failed at `now_ms` (KV erring, no document, one that is no JWKS),
    /// while that set is younger than twice `ttl_ms` (its TTL, then as long again): a document rewritten broken, or
    /// a KV outage, does not fail every token the moment the TTL lapses. Past that, `None`: the failure answers.
    /// A set read again unchanged restarts its age; a rotation (a valid document) replaces it at once, as ever.
    pub fn grace(&self, now_ms: u64, ttl_ms: u64) -> Option<Rc<K>> {
        self.kept
            .as_ref()
            .filter(|k| now_ms.saturating_sub(k.at_ms) < ttl_ms.saturating_mul(2))
            .map(|k| k.keys.clone())
    }

    /// Read `read` failed at `now_ms` (`detail`: why): no request reads again for `hold_ms` — they use the kept set
    /// while [`Self::grace`] lends it, else are answered the failure ([`Lookup::Held`]) — so a broken or missing
    /// document costs one read per hold, not one per request. A read that started before the kept set's holds
    /// nothing off (a later read found the document), nor does one that started before the failed read that set the
    /// hold: a stalled read failing during (or after) the hold a later read set would restart it, and extend it —
    /// a hold is set by the newest read alone.
    pub fn failed(
        &mut self,
        read: u64,
        now_ms: u64,
        hold_ms: u64,
        kind: ReadFailure,
        detail: String,
    ) {
        self.finished(read);
        if kind == ReadFailure::Document {
            self.document_failed = self.document_failed.max(read);
        }
        if self.kept.as_ref().is_some_and(|k| k.read > read)
            || self.failed.as_ref().is_some_and(|f| f.read > read)
        {
            return;
        }
        self.failed = Some(Failed {
            until_ms: now_ms.saturating_add(hold_ms),
            detail,
            kind,
            read,
        });
    }

    /// Moves every time this memory holds `ms` into the past, as if that long had passed: the tests' way (through
    /// a debug route) to see a TTL, a grace or a hold lapse without waiting it out.
    pub fn age(&mut self, ms: u64) {
        if let Some(kept) = &mut self.kept {
            kept.at_ms = kept.at_ms.saturating_sub(ms);
        }
        if let Some(failed) = &mut self.failed {
            failed.until_ms = failed.until_ms.saturating_sub(ms);
        }
        if let Some(since) = &mut self.refresh_since {
            *since = since.saturating_sub(ms);
        }
        self.read_started = self.read_started.saturating_sub(ms);
    }

    /// How many reads requests were told to make (the debug route reports it: the tests count reads by it).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Read `read` ended without a key set (it failed, or its request went away): the next request reads again.
    pub fn finished(&mut self, read: u64) {
        if self.refreshing == Some(read) {
            self.refreshing = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 60_000;

    fn read(memory: &mut KeySetMemory<String>, now: u64) -> u64 {
        match memory.lookup(now, TTL) {
            Lookup::Read(n) => n,
            other => panic!("expected a read, got {other:?}"),
        }
    }

    fn used(memory: &mut KeySetMemory<String>, now: u64) -> Rc<String> {
        match memory.lookup(now, TTL) {
            Lookup::Use(keys) => keys,
            other => panic!("expected a key set, got {other:?}"),
        }
    }

    fn held(memory: &mut KeySetMemory<String>, now: u64) -> String {
        match memory.lookup(now, TTL) {
            Lookup::Held { detail, .. } => detail,
            other => panic!("expected the failure held, got {other:?}"),
        }
    }

    fn awaited(memory: &mut KeySetMemory<String>, now: u64) -> u64 {
        match memory.lookup(now, TTL) {
            Lookup::Await { read, .. } => read,
            other => panic!("expected to wait for a read, got {other:?}"),
        }
    }

    fn parse(doc: &str) -> Result<String, String> {
        Ok(format!("parsed {doc}"))
    }

    /// Cold: read 1 stalls, and read 2 (past the stall bound) fails with `kind`, holding off reads for `hold`.
    /// Gives the memory and the two reads' numbers.
    fn stalled_then_failed(
        hold: u64,
        kind: ReadFailure,
        detail: &str,
    ) -> (KeySetMemory<String>, u64, u64) {
        let mut memory = KeySetMemory::default();
        let stalled = read(&mut memory, 0);
        let newer = read(&mut memory, REFRESH_STALE_MS);
        memory.failed(newer, REFRESH_STALE_MS, hold, kind, detail.into());
        (memory, stalled, newer)
    }

    /// Warm: the set `"a"` kept at 0 lapses, read 2 (at the TTL) stalls, and read 3 fails with `kind` past the stall
    /// bound, holding off reads for `hold` (the set lent meanwhile). Gives the memory, the kept set and read 2.
    fn lapsed_then_failed(
        hold: u64,
        kind: ReadFailure,
        detail: &str,
    ) -> (KeySetMemory<String>, Rc<String>, u64) {
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        let kept = memory.keep(first, 0, "a".into(), parse).unwrap();
        let stalled = read(&mut memory, TTL);
        let failing = read(&mut memory, TTL + REFRESH_STALE_MS);
        memory.failed(failing, TTL + REFRESH_STALE_MS, hold, kind, detail.into());
        (memory, kept, stalled)
    }

    #[test]
    fn a_set_is_reused_for_its_ttl_then_read_once_while_others_use_the_lapsed_one() {
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        let keys = memory.keep(first, 0, "a".into(), parse).unwrap();
        assert!(Rc::ptr_eq(&used(&mut memory, TTL - 1), &keys));
        let again = read(&mut memory, TTL);
        // Requests arriving during that read: the lapsed set, no read of their own.
        for now in [TTL, TTL + 5, TTL + REFRESH_STALE_MS - 1] {
            assert!(Rc::ptr_eq(&used(&mut memory, now), &keys));
        }
        let changed = memory.keep(again, TTL, "b".into(), parse).unwrap();
        assert_eq!(*changed, "parsed b");
        assert!(Rc::ptr_eq(&used(&mut memory, TTL + 10), &changed));
    }

    #[test]
    fn an_unchanged_document_keeps_the_set_and_its_age_restarts() {
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        let keys = memory.keep(first, 0, "a".into(), parse).unwrap();
        let again = read(&mut memory, TTL);
        let mut parsed = false;
        let kept = memory
            .keep(again, TTL, "a".into(), |d| {
                parsed = true;
                parse(d)
            })
            .unwrap();
        assert!(
            Rc::ptr_eq(&kept, &keys),
            "the same set: its token memory goes on"
        );
        assert!(!parsed, "not parsed again");
        assert!(
            Rc::ptr_eq(&used(&mut memory, 2 * TTL - 1), &keys),
            "fresh again"
        );
        read(&mut memory, 2 * TTL);
    }

    #[test]
    fn a_stalled_or_failed_read_lets_the_next_request_read() {
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        memory.keep(first, 0, "a".into(), parse).unwrap();
        let stalled = read(&mut memory, TTL);
        let next = read(&mut memory, TTL + REFRESH_STALE_MS);
        assert!(next > stalled);
        memory.finished(next);
        read(&mut memory, TTL + REFRESH_STALE_MS + 1);
        // A first read that fails leaves nothing to use: every request reads until one succeeds.
        let mut cold = KeySetMemory::<String>::default();
        let a = read(&mut cold, 0);
        assert!(cold.keep(a, 0, "x".into(), |_| Err("bad")).is_err());
        read(&mut cold, 1);
    }

    #[test]
    fn the_lapsed_set_is_used_at_most_2_s_however_many_reads_stall_or_fail() {
        // Reads that keep stalling: 2 s after the first began, every request reads (as none would be answered with a
        // key that may have been removed), not one request every 2 s while the rest keep the lapsed set.
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        memory.keep(first, 0, "a".into(), parse).unwrap();
        read(&mut memory, TTL);
        used(&mut memory, TTL + REFRESH_STALE_MS - 1);
        read(&mut memory, TTL + REFRESH_STALE_MS);
        read(&mut memory, TTL + REFRESH_STALE_MS + 500);
        read(&mut memory, TTL + REFRESH_STALE_MS + 501);
        // Reads that fail (KV erring): likewise counted from the first, not restarted by each failure.
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        memory.keep(first, 0, "a".into(), parse).unwrap();
        let failed = read(&mut memory, TTL);
        memory.finished(failed);
        read(&mut memory, TTL + 1_500);
        read(&mut memory, TTL + 2_500);
        // Once a read is kept, the next lapse has its own 2 s.
        let kept = read(&mut memory, TTL + 3_000);
        memory.keep(kept, TTL + 3_000, "a".into(), parse).unwrap();
        read(&mut memory, 2 * TTL + 3_000);
        used(&mut memory, 2 * TTL + 3_000 + REFRESH_STALE_MS - 1);
    }

    #[test]
    fn a_cold_isolate_reads_once_for_the_requests_arriving_meanwhile() {
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        for now in [0, 1, REFRESH_STALE_MS - 1] {
            assert_eq!(
                awaited(&mut memory, now),
                first,
                "at {now} ms: wait for the read under way"
            );
        }
        let keys = memory.keep(first, 0, "a".into(), parse).unwrap();
        assert!(Rc::ptr_eq(&used(&mut memory, 5), &keys));
    }

    #[test]
    fn a_cold_isolates_requests_wait_only_for_what_is_left_of_the_reads_two_seconds() {
        // Counted from each waiter's arrival, one arriving 1.9 s into a stalled read waited until 3.9 s before it
        // read KV itself: past the 2 s the README promises from the read's start.
        let mut memory = KeySetMemory::<String>::default();
        let first = read(&mut memory, 1_000);
        for (now, left) in [
            (1_000, REFRESH_STALE_MS),
            (1_500, REFRESH_STALE_MS - 500),
            (1_000 + REFRESH_STALE_MS - 1, 1),
        ] {
            match memory.lookup(now, TTL) {
                Lookup::Await { read, wait_ms } => {
                    assert_eq!(read, first, "at {now} ms: the read under way");
                    assert_eq!(wait_ms, left, "at {now} ms: what is left of the read's 2 s");
                }
                other => panic!("at {now} ms: expected to wait for a read, got {other:?}"),
            }
        }
        assert!(read(&mut memory, 1_000 + REFRESH_STALE_MS) > first);
    }

    #[test]
    fn a_cold_isolates_failed_or_abandoned_read_is_not_kept_waiting_on() {
        // Failed (KV erred, or the document does not parse): its waiters are told by its request; the next reads.
        let mut memory = KeySetMemory::<String>::default();
        let first = read(&mut memory, 0);
        awaited(&mut memory, 1);
        assert!(memory.keep(first, 0, "x".into(), |_| Err("bad")).is_err());
        let second = read(&mut memory, 2);
        assert_eq!(
            awaited(&mut memory, 3),
            second,
            "the next read is waited for in turn"
        );
        // Its request went away mid-read: the next request reads.
        memory.finished(second);
        let third = read(&mut memory, 4);
        // Stalled: waited for 2 s from its start, then another read is made (and waited for).
        awaited(&mut memory, 4 + REFRESH_STALE_MS - 1);
        let fourth = read(&mut memory, 4 + REFRESH_STALE_MS);
        assert!(fourth > third);
        assert_eq!(awaited(&mut memory, 5 + REFRESH_STALE_MS), fourth);
        // The stalled read ending after the later one was kept changes nothing.
        let kept = memory
            .keep(fourth, 4 + REFRESH_STALE_MS, "new".into(), parse)
            .unwrap();
        memory.keep(third, 4, "old".into(), parse).unwrap();
        assert!(Rc::ptr_eq(&used(&mut memory, 6 + REFRESH_STALE_MS), &kept));
    }

    #[test]
    fn a_slower_read_never_replaces_a_later_one() {
        let mut memory = KeySetMemory::default();
        let older = read(&mut memory, 0);
        // A cold isolate whose first read stalled: the next request reads too.
        let newer = read(&mut memory, REFRESH_STALE_MS);
        let new_keys = memory.keep(newer, 1, "new".into(), parse).unwrap();
        let old_keys = memory.keep(older, 0, "old".into(), parse).unwrap();
        assert_eq!(
            *old_keys, "parsed old",
            "its own request still uses what it read"
        );
        assert!(Rc::ptr_eq(
            &used(&mut memory, REFRESH_STALE_MS + 1),
            &new_keys
        ));
        // The same when the slower one read the same document as the kept one: the later read's age stands.
        let mut memory = KeySetMemory::default();
        let older = read(&mut memory, 0);
        let newer = read(&mut memory, REFRESH_STALE_MS);
        memory
            .keep(newer, REFRESH_STALE_MS, "d".into(), parse)
            .unwrap();
        memory.keep(older, 0, "d".into(), parse).unwrap();
        used(&mut memory, TTL + REFRESH_STALE_MS - 1);
    }

    #[test]
    fn a_failed_re_read_lends_the_kept_set_for_its_ttl_again_then_fails() {
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        let keys = memory.keep(first, 0, "a".into(), parse).unwrap();
        let again = read(&mut memory, TTL);
        assert!(memory
            .keep(again, TTL, "{broken".into(), |_| Err::<String, _>(
                "no JWKS"
            ))
            .is_err());
        for now in [TTL, TTL + 1, 2 * TTL - 1] {
            let lent = memory.grace(now, TTL).expect("within the grace");
            assert!(Rc::ptr_eq(&lent, &keys), "{now}");
        }
        assert!(
            memory.grace(2 * TTL, TTL).is_none(),
            "twice the TTL: the failure answers"
        );
        // A TTL of 0 (read on every request) lends nothing.
        assert!(memory.grace(1, 0).is_none());
        // A cold isolate has nothing to lend.
        assert!(KeySetMemory::<String>::default().grace(0, TTL).is_none());
    }

    #[test]
    fn a_failed_read_holds_off_the_next_lending_the_kept_set_or_answering_the_failure() {
        const HOLD: u64 = 1_000;
        // Cold: a failed read is answered to every request of the hold, none reading; then one reads again.
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, 0);
        memory.failed(
            first,
            5,
            HOLD,
            ReadFailure::Document,
            "JWKS: no document".into(),
        );
        for now in [5, 6, HOLD + 4] {
            assert_eq!(held(&mut memory, now), "JWKS: no document", "{now}");
        }
        assert_eq!(memory.reads(), 1);
        let again = read(&mut memory, HOLD + 5);
        let keys = memory.keep(again, HOLD + 5, "a".into(), parse).unwrap();
        assert!(
            Rc::ptr_eq(&used(&mut memory, HOLD + 6), &keys),
            "a read kept ends the hold"
        );

        // Warm: past the TTL a failed re-read lends the kept set for the hold without another read, within its grace.
        let start = HOLD + 5;
        let lapsed = read(&mut memory, start + TTL);
        memory.failed(
            lapsed,
            start + TTL,
            HOLD,
            ReadFailure::Document,
            "JWKS: broken".into(),
        );
        for now in [start + TTL, start + TTL + HOLD - 1] {
            assert!(Rc::ptr_eq(&used(&mut memory, now), &keys), "{now}");
        }
        assert_eq!(memory.reads(), 3, "one read for the hold");
        let next = read(&mut memory, start + TTL + HOLD);
        // Past the grace, the hold answers the failure.
        memory.failed(
            next,
            start + 2 * TTL,
            HOLD,
            ReadFailure::Document,
            "JWKS: broken".into(),
        );
        assert_eq!(held(&mut memory, start + 2 * TTL + 1), "JWKS: broken");
        assert_eq!(memory.reads(), 4);

        // A failed read that started before the kept set's read holds nothing off; a hold of 0 holds nothing.
        let mut memory = KeySetMemory::default();
        let t = 10 * TTL;
        let slow = read(&mut memory, t);
        memory.finished(slow);
        let quick = read(&mut memory, t + REFRESH_STALE_MS);
        memory
            .keep(quick, t + REFRESH_STALE_MS, "a".into(), parse)
            .unwrap();
        memory.failed(
            slow,
            t + REFRESH_STALE_MS + 1,
            HOLD,
            ReadFailure::Document,
            "late".into(),
        );
        let after = read(&mut memory, t + REFRESH_STALE_MS + TTL);
        memory.failed(
            after,
            t + REFRESH_STALE_MS + TTL,
            0,
            ReadFailure::Document,
            "no hold".into(),
        );
        read(&mut memory, t + REFRESH_STALE_MS + TTL);
    }

    #[test]
    fn a_read_begun_before_the_hold_that_fails_during_it_does_not_extend_it() {
        const HOLD: u64 = 1_000;
        // Cold: read 1 stalls, read 2 (past the stall bound) fails and holds off reads until 2 s + HOLD.
        let (mut memory, stalled, newer) =
            stalled_then_failed(HOLD, ReadFailure::Document, "JWKS: broken");
        // The stalled read fails near the hold's end: before, it restarted the hold (until 2 s + 2 * HOLD - 1).
        memory.failed(
            stalled,
            REFRESH_STALE_MS + HOLD - 1,
            HOLD,
            ReadFailure::Document,
            "JWKS: stalled".into(),
        );
        match memory.lookup(REFRESH_STALE_MS + HOLD - 1, TTL) {
            Lookup::Held { detail, .. } => {
                assert_eq!(detail, "JWKS: broken", "the newest read's failure")
            }
            other => panic!("within the hold: {other:?}"),
        }
        let next = read(&mut memory, REFRESH_STALE_MS + HOLD);
        assert!(next > newer, "the hold the newest read set ends on time");
        // Failing after that hold too (no newer read failed or kept since): still no hold of its own.
        let (mut memory, stalled, _) =
            stalled_then_failed(HOLD, ReadFailure::Document, "JWKS: broken");
        memory.failed(
            stalled,
            REFRESH_STALE_MS + HOLD,
            HOLD,
            ReadFailure::Document,
            "late".into(),
        );
        read(&mut memory, REFRESH_STALE_MS + HOLD);
        // A newer read's failure still sets its own hold after an older one's.
        let mut memory = KeySetMemory::<String>::default();
        let first = read(&mut memory, 0);
        memory.failed(first, 0, HOLD, ReadFailure::Document, "first".into());
        let second = read(&mut memory, HOLD);
        memory.failed(second, HOLD, HOLD, ReadFailure::Document, "second".into());
        match memory.lookup(2 * HOLD - 1, TTL) {
            Lookup::Held { detail, .. } => assert_eq!(detail, "second"),
            other => panic!("within the second hold: {other:?}"),
        }
        // A hold says what failed and how much of it is left: a store's failure is answered as an outage (503,
        // `Retry-After` the hold left), a document's as the deployment's (500).
        let mut memory = KeySetMemory::<String>::default();
        let store = read(&mut memory, 0);
        memory.failed(store, 0, HOLD, ReadFailure::Store, "KV erred".into());
        match memory.lookup(HOLD - 250, TTL) {
            Lookup::Held { kind, left_ms, .. } => {
                assert_eq!((kind, left_ms), (ReadFailure::Store, 250))
            }
            other => panic!("within the hold: {other:?}"),
        }
    }

    #[test]
    fn an_older_read_that_succeeds_after_a_newer_one_failed_is_not_kept_and_lifts_no_hold() {
        const HOLD: u64 = 1_000;
        // Cold: read 1 stalls, read 2 (past the stall bound) fails — the document is broken or gone, or KV erred —
        // and holds off reads. Read 1 then ends with the document as it was before: what read 2 saw is newer.
        let (mut memory, older, newer) =
            stalled_then_failed(HOLD, ReadFailure::Document, "JWKS: broken");
        let keys = memory.keep(older, 0, "old".into(), parse).expect("parsed");
        assert_eq!(*keys, "parsed old", "its own request uses what it read");
        // Before, the older document was kept for a whole TTL and the newer read's hold lifted.
        match memory.lookup(REFRESH_STALE_MS + 1, TTL) {
            Lookup::Held { detail, .. } => {
                assert_eq!(detail, "JWKS: broken", "the newest read's outcome")
            }
            other => panic!("within the hold: {other:?}"),
        }
        assert!(
            read(&mut memory, REFRESH_STALE_MS + HOLD) > newer,
            "read again once the hold ends"
        );
        // Warm: the kept set lapses, read 2 stalls, read 3 fails (the kept set lent for the hold); read 2 ending
        // with the same document restarts neither its age nor lifts the hold: once the hold ends, a read is made.
        let (mut memory, _, stalled) =
            lapsed_then_failed(HOLD, ReadFailure::Document, "JWKS: broken");
        memory.keep(stalled, TTL, "a".into(), parse).unwrap();
        used(&mut memory, TTL + REFRESH_STALE_MS + HOLD - 1);
        read(&mut memory, TTL + REFRESH_STALE_MS + HOLD);
        // A newer read's success still replaces an older failure, as ever.
        let mut memory = KeySetMemory::<String>::default();
        let first = read(&mut memory, 0);
        memory.failed(first, 0, HOLD, ReadFailure::Document, "JWKS: broken".into());
        let second = read(&mut memory, HOLD);
        let kept = memory.keep(second, HOLD, "b".into(), parse).unwrap();
        assert!(Rc::ptr_eq(&used(&mut memory, HOLD + 1), &kept));
    }

    #[test]
    fn an_older_good_read_ending_after_a_newer_one_failed_on_kv_is_kept_and_lifts_the_hold() {
        const HOLD: u64 = 1_000;
        // Cold: read 1 stalls, read 2 fails because KV erred (a hiccup: it says nothing of the document), then read
        // 1 ends with a good document — the newest word of it. Before, the hiccup's hold stood over it: requests
        // were answered 500 until the hold ended, then read again.
        let kv = "reading the JWKS from KV";
        let (mut memory, older, _) = stalled_then_failed(HOLD, ReadFailure::Store, kv);
        let keys = memory.keep(older, 0, "good".into(), parse).expect("parsed");
        assert!(
            Rc::ptr_eq(&used(&mut memory, REFRESH_STALE_MS + 1), &keys),
            "kept, the hold lifted"
        );
        assert!(
            Rc::ptr_eq(&used(&mut memory, TTL - 1), &keys),
            "fresh for its TTL from its own start"
        );
        read(&mut memory, TTL);
        // Warm: the kept set lapses, read 2 stalls, read 3 fails on KV (the set lent for the hold); read 2 ends with
        // the same document: its age restarts from read 2's start and the hold is lifted — no read once it ends.
        let (mut memory, kept, stalled) = lapsed_then_failed(HOLD, ReadFailure::Store, kv);
        memory.keep(stalled, TTL, "a".into(), parse).unwrap();
        assert!(
            Rc::ptr_eq(&used(&mut memory, TTL + REFRESH_STALE_MS + HOLD), &kept),
            "fresh again from the stalled read's start"
        );
        read(&mut memory, 2 * TTL);
        // A document found broken by the newer read still stands over the older read's (`ReadFailure::Document`,
        // the test above): only KV erring gives way.
    }

    #[test]
    fn a_document_found_gone_stays_newer_than_an_older_read_after_a_later_read_fails_on_kv() {
        const HOLD: u64 = 1_000;
        // Cold: read 1 stalls, read 2 finds no document, and after its hold read 3 fails because KV erred; then read 1
        // ends with the document it found before read 2 began. Read 2's word is still newer than read 1's: before,
        // read 3's hiccup replaced the failure that said so, and read 1's old document was kept for a whole TTL.
        let (mut memory, older, _) =
            stalled_then_failed(HOLD, ReadFailure::Document, "JWKS: no document");
        let after = REFRESH_STALE_MS + HOLD;
        let hiccup = read(&mut memory, after);
        let kv = "reading the JWKS from KV";
        memory.failed(hiccup, after, HOLD, ReadFailure::Store, kv.into());
        memory.keep(older, 0, "old".into(), parse).unwrap();
        assert_eq!(
            held(&mut memory, after + 1),
            kv,
            "not kept: the hold stands"
        );
        read(&mut memory, after + HOLD);
        // The same when the document's failure ends after the hiccup's (it set no hold of its own, being older).
        let mut memory = KeySetMemory::default();
        let older = read(&mut memory, 0);
        let gone = read(&mut memory, REFRESH_STALE_MS);
        let hiccup = read(&mut memory, 2 * REFRESH_STALE_MS);
        memory.failed(
            hiccup,
            2 * REFRESH_STALE_MS,
            HOLD,
            ReadFailure::Store,
            kv.into(),
        );
        memory.failed(
            gone,
            2 * REFRESH_STALE_MS,
            HOLD,
            ReadFailure::Document,
            "gone".into(),
        );
        memory.keep(older, 0, "old".into(), parse).unwrap();
        assert_eq!(held(&mut memory, 2 * REFRESH_STALE_MS + 1), kv);
    }

    #[test]
    fn aged_memory_sees_its_ttl_and_hold_lapse() {
        // Times as the runtime's clock gives them (ms since the epoch): aging moves them back.
        const T: u64 = 1_700_000_000_000;
        let mut memory = KeySetMemory::default();
        let first = read(&mut memory, T);
        let keys = memory.keep(first, T, "a".into(), parse).unwrap();
        assert!(Rc::ptr_eq(&used(&mut memory, T + 1), &keys));
        memory.age(TTL);
        let again = read(&mut memory, T + 1);
        memory.failed(
            again,
            T + 1,
            10 * TTL,
            ReadFailure::Document,
            "broken".into(),
        );
        assert!(
            Rc::ptr_eq(&used(&mut memory, T + 2), &keys),
            "lent: TTL old, within its grace"
        );
        memory.age(TTL);
        match memory.lookup(T + 2, TTL) {
            Lookup::Held { .. } => {}
            other => panic!("past the grace, within the hold: {other:?}"),
        }
        memory.age(10 * TTL);
        read(&mut memory, T + 2);
    }
}
