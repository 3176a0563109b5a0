//! Per-socket rate limits: a token bucket refilled continuously, with the time passed in — one of messages, and one
//! of the bytes the room encodes and sends back to one socket's requests — and the credit (in entries) a socket's
//! copies of presence draw on before they cost a message token.

/// Reply bytes one member (all their sockets in the room) may make the room encode and send them at once — the
/// answers to their sync requests and awareness queries, and the presence each of their joins is sent: a whole
/// document at its largest (1.9 MB) plus a whole room's presence (2 MiB), what a client joining the fullest room is
/// sent.
pub const REPLY_BYTES_BURST: u32 = 4 * 1024 * 1024;
/// Reply bytes refilled per second: a whole largest document about once a minute. A request costs one message
/// token however much it makes the room encode, and a sync request or awareness query makes it encode the whole
/// document or presence: one member looping them (3 bytes each) kept a room of 1 MB busy for everyone.
pub const REPLY_BYTES_PER_SECOND: u32 = 64 * 1024;

/// A token bucket: `burst` tokens at most, refilled at `per_second`. One update costs one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn full(burst: u32, now_ms: u64) -> Self {
        Self {
            tokens: f64::from(burst),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, per_second: u32, burst: u32, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Whether anything is left after refilling up to `now_ms`: a request whose cost is known only once it is
    /// served (a reply's size) may start, and pays with [`TokenBucket::spend`] after.
    pub fn has_any(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(per_second, burst, now_ms);
        self.tokens > 0.0
    }

    /// Spends `amount` tokens, going into debt if there are fewer: nothing more starts until refills repay it.
    pub fn spend(&mut self, amount: u64) {
        self.tokens -= amount as f64;
    }

    /// Whether the bucket is full again at `now_ms`, and so no different from a new one (it may be forgotten).
    pub fn is_full(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(per_second, burst, now_ms);
        self.tokens >= f64::from(burst)
    }

    /// A bucket at `now_ms` that will be full again at `full_at_ms` (see [`TokenBucket::full_at_ms`]): in debt when
    /// that is further away than a whole burst refills. A `full_at_ms` already passed gives a full bucket.
    pub fn until_full(per_second: u32, burst: u32, full_at_ms: u64, now_ms: u64) -> Self {
        let missing = full_at_ms.saturating_sub(now_ms) as f64 / 1000.0 * f64::from(per_second);
        Self {
            tokens: f64::from(burst) - missing,
            last_ms: now_ms,
        }
    }

    /// The bucket with its debt forgiven: one that is only ever taken from ([`TokenBucket::take`], a member's
    /// messages) is never below empty, and rebuilt from its [`TokenBucket::full_at_ms`] at other settings than it
    /// was stored at (a larger rate, a smaller burst) the time left read as a debt of many bursts.
    pub fn without_debt(self) -> Self {
        Self {
            tokens: self.tokens.max(0.0),
            ..self
        }
    }

    /// When the bucket is full again, refills alone (the whole of its state: with [`TokenBucket::until_full`] it is
    /// what a room keeps of a member's budget across hibernation). Rounded up: a bucket rebuilt from it never holds
    /// more than this one.
    pub fn full_at_ms(&self, per_second: u32, burst: u32) -> u64 {
        let missing = (f64::from(burst) - self.tokens).max(0.0);
        self.last_ms
            .saturating_add((missing * 1000.0 / f64::from(per_second.max(1))).ceil() as u64)
    }

    /// Milliseconds from `now_ms` until [`TokenBucket::has_any`] holds again (0 when it does now): when a request
    /// refused for the bucket's debt may come back.
    pub fn ms_until_any(&mut self, per_second: u32, burst: u32, now_ms: u64) -> u64 {
        self.refill(per_second, burst, now_ms);
        if self.tokens > 0.0 {
            return 0;
        }
        // Strictly more than the debt: `has_any` asks for a token's fraction above zero.
        (-self.tokens * 1000.0 / f64::from(per_second.max(1))).floor() as u64 + 1
    }

    /// Takes a token if one is left after refilling up to `now_ms`; false means over the rate.
    pub fn take(&mut self, per_second: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(per_second, burst, now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long a Durable Object with hibernatable sockets stays in memory after its last event (10 s): a bucket that is
/// full again within this of its last spend is full by the time the object can hibernate, and needs no storing.
pub const HIBERNATION_IDLE_MS: u64 = 10_000;

/// Whether a member's bucket, full again at `full_at_ms` after a spend at `now_ms`, is to be stored (its
/// [`TokenBucket::full_at_ms`] in the room's storage) so that it outlives the object's memory: a room that hibernated
/// or was evicted started every member's budgets full again, and a member who waited 10 s for it (a reconnect after
/// a failed join does) got a whole fresh burst — 4 MiB of replies every ~10 s instead of 64 KiB/s. `stored_ms` is
/// what is stored already: a new time is written only when it is further away than that by 1/16 of a whole burst's
/// refill (at most a 16th of the burst is given back to a member by a restart), so storing costs a write per 16th of
/// a burst spent at most, and nothing for a bucket that refills within [`HIBERNATION_IDLE_MS`] (an honest member's,
/// and every message bucket at the default rate).
pub fn worth_storing(
    full_at_ms: u64,
    stored_ms: Option<u64>,
    now_ms: u64,
    per_second: u32,
    burst: u32,
) -> bool {
    let slack_ms = u64::from(burst) * 1000 / u64::from(per_second.max(1)) / 16;
    full_at_ms > now_ms.saturating_add(HIBERNATION_IDLE_MS)
        && stored_ms.is_none_or(|stored| full_at_ms > stored.saturating_add(slack_ms))
}

/// Times one instance tries to read the budgets an earlier one stored before it gives up (see [`StoredBudgets`]).
pub const BUDGET_READ_ATTEMPTS: u8 = 4;

/// Whether an instance has read the members' budgets an earlier one stored (`room_budgets`). A read that fails is
/// tried again on the next budget asked for, up to [`BUDGET_READ_ATTEMPTS`] in all: marked read before it was
/// tried, one failure left every member of the instance's life with fresh budgets (a member in 4 MiB of reply debt
/// got a whole burst back). Bounded, so a storage that keeps failing costs a read per attempt, not per message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredBudgets {
    failures: u8,
    read: bool,
}

impl StoredBudgets {
    /// Whether to read them now: not read yet, and not given up on.
    pub fn due(&self) -> bool {
        !self.read && self.failures < BUDGET_READ_ATTEMPTS
    }

    /// The read succeeded: never read again.
    pub fn read(&mut self) {
        self.read = true;
    }

    /// The read failed; true when that was the last attempt (the instance goes on with the budgets in memory).
    pub fn failed(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.failures >= BUDGET_READ_ATTEMPTS
    }
}

/// Entries of copies of presence a socket may send beyond those the room's awareness frames to it account for: what a
/// client sends on its own that the room already holds — its own state again on connecting, a remote state timing out
/// in y-protocols (one entry every few seconds at most), the first copies after the room woke from hibernation (its
/// count starts again at zero).
pub const ECHO_BURST: u64 = 16;

/// The copies of presence a socket may send back without paying a message token. A y-websocket client sends back
/// every awareness frame it receives (y-protocols emits an update for each, and the provider sends each update), and
/// those copies carry nothing the room lacks, so they are not charged — but a copy costs the room its decoding and
/// comparing all the same, and a socket looping them slowed the room for everyone without ever being refused. A
/// socket's copies are therefore counted against the awareness the room sent it (every broadcast since it was first
/// counted, and what was sent to it alone) plus [`ECHO_BURST`]; past that, each one costs a token of the sender's
/// message bucket, which a loop empties. They are counted in entries, not frames: a y-websocket client's copy holds
/// the entries of the frame it answers that changed its awareness, never more, while a frame of copies may carry
/// thousands (up to a message's size) — counted in frames, every one-entry broadcast bought each of a member's 16
/// sockets a free copy of that size, whatever it had been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoCredit {
    /// The room's count of broadcast awareness entries when this socket was first counted.
    from: u64,
    /// Awareness entries sent to this socket alone (the presence a newcomer is sent, replies to its queries).
    own: u64,
    /// Entries of the copies received from it so far (a copy of none counts as one).
    used: u64,
}

impl EchoCredit {
    /// A socket first counted when the room had broadcast `broadcast` awareness entries.
    pub fn new(broadcast: u64) -> Self {
        Self {
            from: broadcast,
            own: 0,
            used: 0,
        }
    }

    /// The room sent this socket an awareness frame of its own, of `entries` entries.
    pub fn sent_own(&mut self, entries: usize) {
        self.own = self.own.saturating_add(entries as u64);
    }

    /// Counts a copy of `entries` entries from the socket (one at least: a copy of none is no less work), the room
    /// having broadcast `broadcast` awareness entries so far; false, counting nothing, when it would take its copies
    /// past what it was sent plus [`ECHO_BURST`] (the copy must then be paid for otherwise).
    pub fn take(&mut self, broadcast: u64, entries: usize) -> bool {
        let allowed = broadcast
            .saturating_sub(self.from)
            .saturating_add(self.own)
            .saturating_add(ECHO_BURST);
        let used = self.used.saturating_add((entries as u64).max(1));
        if used <= allowed {
            self.used = used;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_of_the_stored_budgets_is_tried_again_a_bounded_number_of_times() {
        let mut stored = StoredBudgets::default();
        assert!(stored.due(), "a new instance reads them");
        assert!(!stored.failed(), "one failure is not the last");
        assert!(stored.due(), "tried again after a failure");
        stored.read();
        assert!(!stored.due(), "never again once read");

        let mut failing = StoredBudgets::default();
        for attempt in 1..=BUDGET_READ_ATTEMPTS {
            assert!(failing.due(), "attempt {attempt} is made");
            assert_eq!(
                failing.failed(),
                attempt == BUDGET_READ_ATTEMPTS,
                "attempt {attempt}"
            );
        }
        assert!(
            !failing.due(),
            "given up after {BUDGET_READ_ATTEMPTS} failures"
        );
    }

    #[test]
    fn copies_are_free_as_far_as_the_entries_the_room_sent_then_they_are_not() {
        let mut credit = EchoCredit::new(100);
        for i in 0..ECHO_BURST {
            assert!(
                credit.take(100, 1),
                "one-entry copy {i} of the burst, nothing sent yet"
            );
        }
        assert!(
            !credit.take(100, 1),
            "a copy past the burst with nothing sent"
        );
        assert!(
            credit.take(101, 1),
            "one entry broadcast since: a copy of one entry"
        );
        assert!(!credit.take(101, 1), "and only one");
        credit.sent_own(3);
        assert!(
            credit.take(101, 2),
            "three entries of its own: a copy of two"
        );
        assert!(!credit.take(101, 2), "then not of two more");
        assert!(credit.take(101, 1), "but of the one left");
        assert!(!credit.take(101, 0), "a copy of no entries counts as one");
        assert!(
            credit.take(111, 10),
            "broadcasts before it was counted (100) are not credited, later ones are"
        );
        let mut woke = EchoCredit::new(0);
        assert!(woke.take(u64::MAX, usize::MAX), "counts saturate");
    }

    #[test]
    fn a_copy_larger_than_what_the_room_sent_is_not_free() {
        // A newcomer's echo of the room's presence (250 members) is free; a frame of thousands of invented entries
        // answering a one-entry broadcast is not, though it is one frame.
        let mut newcomer = EchoCredit::new(7);
        newcomer.sent_own(250);
        assert!(
            newcomer.take(7, 250),
            "the echo of what it was sent on joining"
        );
        let mut looper = EchoCredit::new(7);
        assert!(
            !looper.take(8, 8_192),
            "8,192 entries for one broadcast entry"
        );
        assert!(looper.take(8, 1), "its one-entry echo stays free");
    }

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies() {
        let mut bucket = TokenBucket::full(3, 1_000);
        let steps: &[(u64, bool, &str)] = &[
            (1_000, true, "first of the burst"),
            (1_000, true, "second of the burst"),
            (1_000, true, "third of the burst"),
            (1_000, false, "burst exhausted"),
            (
                1_099,
                false,
                "not yet a tenth of a second: no token at 10/s",
            ),
            (1_100, true, "one token refilled after 100 ms at 10/s"),
            (1_100, false, "and spent"),
            (60_000, true, "a long pause refills"),
            (60_000, true, "up to the burst"),
            (60_000, true, "the whole burst"),
            (60_000, false, "but never beyond it"),
            (59_000, false, "a clock going backwards refills nothing"),
        ];
        for (now, allowed, why) in steps {
            assert_eq!(bucket.take(10, 3, *now), *allowed, "at {now}: {why}");
        }
        assert!(!bucket.is_full(10, 3, 60_000), "spent at 60 s");
        assert!(
            bucket.is_full(10, 3, 60_300),
            "full again 3 tokens at 10/s later"
        );
    }

    #[test]
    fn a_bucket_is_rebuilt_from_when_it_is_full_again_never_fuller() {
        // 10/s, burst 100: 2,500 spent at t=1,000 is 2,400 of debt, full again 250 s later.
        let mut bytes = TokenBucket::full(100, 1_000);
        bytes.spend(2_500);
        let full_at = bytes.full_at_ms(10, 100);
        assert_eq!(full_at, 251_000);
        for now in [1_000, 30_000, 240_500, 250_999, 251_000, 400_000] {
            let mut rebuilt = TokenBucket::until_full(10, 100, full_at, now);
            let mut live = bytes;
            assert_eq!(
                rebuilt.has_any(10, 100, now),
                live.has_any(10, 100, now),
                "at {now}"
            );
            assert_eq!(
                rebuilt.ms_until_any(10, 100, now),
                live.ms_until_any(10, 100, now),
                "at {now}"
            );
            assert_eq!(
                rebuilt.is_full(10, 100, now),
                live.is_full(10, 100, now),
                "at {now}"
            );
        }
        // A fraction of a millisecond rounds the other way: the rebuilt bucket is never the fuller one.
        let mut odd = TokenBucket::full(3, 0);
        odd.spend(4);
        let full_at = odd.full_at_ms(3, 3);
        assert_eq!(full_at, 1_334, "4 tokens at 3/s: 1,333.3 ms, rounded up");
        let mut rebuilt = TokenBucket::until_full(3, 3, full_at, 0);
        assert!(!rebuilt.has_any(3, 3, 333) && !odd.has_any(3, 3, 333));
        assert!(rebuilt.tokens <= odd.tokens);
        assert_eq!(
            TokenBucket::until_full(3, 3, 5, 10),
            TokenBucket::full(3, 10),
            "a time passed: full"
        );
        assert_eq!(
            TokenBucket::full(3, 7).full_at_ms(3, 3),
            7,
            "a full bucket is full now"
        );
    }

    #[test]
    fn a_message_bucket_rebuilt_at_other_settings_is_at_worst_empty() {
        // 40 taken at 1/s (burst 40): full again 40 s later; read at 60/s that was 2,400 tokens of debt.
        let mut messages = TokenBucket::full(40, 0);
        while messages.take(1, 40, 0) {}
        let full_at = messages.full_at_ms(1, 40);
        let mut rebuilt = TokenBucket::until_full(60, 200, full_at, 0).without_debt();
        assert!(!rebuilt.take(60, 200, 0), "empty");
        assert!(rebuilt.take(60, 200, 17), "a token at the new rate");
        let owing = TokenBucket::until_full(1, 40, 80_000, 0);
        assert_eq!(owing.without_debt().tokens, 0.0);
        let some = TokenBucket::until_full(1, 40, 30_000, 0);
        assert_eq!(some.without_debt(), some, "tokens left are kept");
    }

    #[test]
    fn a_bucket_is_stored_when_it_outlasts_hibernation_and_then_only_per_sixteenth_of_its_burst() {
        // The reply budget: 4 MiB at 64 KiB/s, 64 s for a whole burst, so a 4 s step between writes.
        let (rate, burst) = (REPLY_BYTES_PER_SECOND, REPLY_BYTES_BURST);
        let now = 1_000_000;
        assert!(
            !worth_storing(now + 9_000, None, now, rate, burst),
            "full before it can hibernate"
        );
        assert!(worth_storing(now + 10_001, None, now, rate, burst));
        assert!(
            !worth_storing(now + 14_000, Some(now + 10_001), now, rate, burst),
            "within 4 s of what is stored"
        );
        assert!(worth_storing(
            now + 14_002,
            Some(now + 10_001),
            now,
            rate,
            burst
        ));
        // The default message bucket (200 at 60/s) is full within 3.4 s: never stored.
        let mut bucket = TokenBucket::full(200, now);
        while bucket.take(60, 200, now) {}
        assert!(!worth_storing(
            bucket.full_at_ms(60, 200),
            None,
            now,
            60,
            200
        ));
    }

    #[test]
    fn a_bucket_in_debt_says_when_it_may_start_again() {
        let mut bytes = TokenBucket::full(1_000, 0);
        assert_eq!(bytes.ms_until_any(100, 1_000, 0), 0, "full");
        bytes.spend(2_500);
        let wait = bytes.ms_until_any(100, 1_000, 0);
        assert_eq!(wait, 15_001, "1,500 of debt at 100/s, and a bit");
        let (mut later, mut before) = (bytes, bytes); // copies
        assert_eq!(later.ms_until_any(100, 1_000, 5_000), 10_001, "later, less");
        assert!(!before.has_any(100, 1_000, wait - 1), "not a moment before");
        assert!(bytes.has_any(100, 1_000, wait), "but then");
    }

    #[test]
    fn a_cost_known_after_serving_is_paid_in_debt_that_refills_must_repay() {
        let mut bytes = TokenBucket::full(1_000, 0);
        assert!(bytes.has_any(100, 1_000, 0), "a full bucket starts a reply");
        bytes.spend(2_500);
        let steps: &[(u64, bool, &str)] = &[
            (0, false, "1,500 in debt"),
            (14_999, false, "still in debt a moment before it is repaid"),
            (15_001, true, "repaid after 15 s at 100/s"),
        ];
        for (now, allowed, why) in steps {
            assert_eq!(bytes.has_any(100, 1_000, *now), *allowed, "at {now}: {why}");
        }
    }
}
