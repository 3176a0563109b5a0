//! Durable update log: the order of operations that makes an accepted update survive eviction, and the policy that
//! compacts the log into a snapshot.
//!
//! Invariant: [`accept`] returns `Accepted::Stored` only after the update is in the store, so the caller
//! broadcasts or acknowledges it only then. Compaction writes a snapshot of the whole document and replaces the log
//! entries and waiting updates it covers in one store operation (the object runs it in `transactionSync`: a
//! statement failing in a plain synchronous turn does not undo the ones before it). Storage sits behind
//! [`UpdateStore`]; [`MemoryStore`] is the host fake, the object implements it over SQLite.

use super::document::{Applied, ApplyError, CheckedUpdate, DocError, Prepared, RoomDoc, Snapshot};
use super::shape;

/// What a store holds: the latest snapshot (if any), every update appended after it, oldest first, and the
/// updates that wait (see [`super::order`]) with when they arrived (ms since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub snapshot: Option<Vec<u8>>,
    pub log: Vec<Vec<u8>>,
    pub waiting: Vec<(Vec<u8>, u64)>,
}

/// Where a room's updates live.
pub trait UpdateStore {
    /// Reads the snapshot, the log and what waits.
    fn load(&mut self) -> Result<Stored, String>;
    /// Appends one update to the log; durable when it returns.
    fn append(&mut self, update: &[u8]) -> Result<(), String>;
    /// Stores an update that waits, with when it arrived; durable when it returns.
    fn append_waiting(&mut self, update: &[u8], since: u64) -> Result<(), String>;
    /// Replaces everything stored with `snapshot`, the log with `pending` and what waits with `waiting`, as one
    /// atomic step: when it fails, what was stored before is all still there (a snapshot written before a failing
    /// append would have dropped the log that append was to restate).
    /// Given the parts whole (the snapshot may be near 2 MB): the store keeps or sends them without a copy.
    fn compact(&mut self, snapshot: Snapshot) -> Result<(), String>;
}

/// The room's rules for what it keeps, from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub compaction: CompactionPolicy,
    /// Storage the room may occupy (see [`accept`]).
    pub max_document_bytes: u64,
    /// How long an update may wait for what it follows before it is dropped (see [`RoomDoc::expire`]).
    pub waiting_ttl_ms: u64,
}

/// When the log is folded into a snapshot: past either threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompactionPolicy {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl CompactionPolicy {
    pub fn due(&self, stats: LogStats) -> bool {
        stats.entries >= self.max_entries || stats.bytes >= self.max_bytes
    }
}

/// Size of the log since the last snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub entries: u64,
    pub bytes: u64,
}

impl LogStats {
    pub fn of(log: &[Vec<u8>]) -> Self {
        Self {
            entries: log.len() as u64,
            bytes: log.iter().map(|e| e.len() as u64).sum(),
        }
    }
}

/// A document loaded from a store, with the log statistics compaction needs.
pub struct Loaded {
    pub doc: RoomDoc,
    pub stats: LogStats,
    /// Bytes of the stored snapshot (0 without one): with `stats.bytes`, what the room occupies in storage.
    pub snapshot_bytes: u64,
    /// What folding the log may add to a snapshot beyond the log's bytes: [`SPLIT_BYTES`] for each struct and each
    /// deleted range logged since the last snapshot (see [`splits`]). Counted with the stored bytes, so the snapshot a
    /// compaction writes stays within the limit the log was held to.
    pub splits: u64,
    /// Logged updates the rebuild skipped because they no longer applied (see [`RoomDoc::rebuild`]).
    pub skipped: usize,
}

impl Loaded {
    /// Storage the room would occupy with `extra` more bytes.
    fn stored_bytes_with(&self, extra: u64) -> u64 {
        self.snapshot_bytes
            .saturating_add(self.stats.bytes)
            .saturating_add(self.splits)
            .saturating_add(extra)
    }
}

/// What a deleted range or an inserted struct can add to a snapshot: the two items a deletion inside a text item
/// leaves, or the pieces an item inserted inside one (or two, by its origin and right origin) leaves, with their ids
/// and origins (about 21 bytes measured with small client ids, up to ~57 with the largest; rounded up). Inserts
/// count too: a member's one-character items, 14 bytes each, each inserted inside another client's long item (whose
/// every piece then repeats its ids), folded into a snapshot 2.5 times the log — a room held to 1 MiB stored one of
/// 1.99 MB, at the 2 MB a row holds, and a room past its limit refused every update, its emptying too, for good.
const SPLIT_BYTES: u64 = 64;

/// [`SPLIT_BYTES`] for each struct and deleted range of a stored part (0 for a part today's check refuses).
fn splits(part: &[u8]) -> u64 {
    shape::check_update(part).map_or(0, |s| {
        ((s.structs + s.delete_ranges) as u64).saturating_mul(SPLIT_BYTES)
    })
}

/// Updates that only delete may take the stored room this fraction (1/64) past its limit, so a full room can still
/// be emptied.
const DELETE_MARGIN: u64 = 64;

/// Rebuilds the document from the store (snapshot + log + what waits) at `now` (ms since the epoch).
pub fn load(store: &mut dyn UpdateStore, now: u64) -> Result<Loaded, AcceptError> {
    let stored = store.load().map_err(AcceptError::Store)?;
    let (doc, skipped) = RoomDoc::rebuild(
        stored.snapshot.as_deref(),
        stored.log.iter().map(Vec::as_slice),
        stored
            .waiting
            .iter()
            .map(|(u, since)| (u.as_slice(), *since)),
        now,
    )
    .map_err(|e| AcceptError::Store(format!("stored document does not rebuild: {e}")))?;
    // What waits counts as logged, as it did when it was stored.
    let waiting = stored.waiting.iter().map(|(u, _)| u.len() as u64);
    Ok(Loaded {
        doc,
        stats: LogStats {
            entries: (stored.log.len() + stored.waiting.len()) as u64,
            bytes: LogStats::of(&stored.log).bytes + waiting.sum::<u64>(),
        },
        snapshot_bytes: stored.snapshot.as_ref().map_or(0, |s| s.len() as u64),
        splits: stored
            .log
            .iter()
            .chain(stored.waiting.iter().map(|(u, _)| u))
            .map(|part| splits(part))
            .sum(),
        skipped,
    })
}

/// The outcome of an accepted update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored (and possibly compacted): broadcast it.
    Stored { compacted: bool },
    /// Carried nothing: nothing stored, nothing to broadcast.
    Empty,
}

/// Why an update was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptError {
    /// The client sent bytes that are not a valid update: close its socket as invalid data.
    Invalid(DocError),
    /// The store failed: the in-memory document may be ahead of storage and must be dropped and reloaded.
    Store(String),
    /// Storing it would take the room past its size limit (nothing was applied or stored).
    DocumentFull { limit: u64 },
}

/// What [`accept`] did with an update, and what to relay to the room's other members: what was stored, which is
/// what the room took of it (a reconnect's sync step 2 repeats the client's whole delete set, and a part past the
/// bound on waiting updates is not kept: relayed, it would put in their documents what the room does not hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: Accepted,
    /// For the other members: what the room took of the update.
    pub relay: Vec<Vec<u8>>,
    /// For every member, its sender too: waiting updates it let continue (no member was sent them before).
    pub released: Vec<Vec<u8>>,
    /// The compaction due after the update was stored failed (why): the update is stored all the same — the log
    /// holds it, or the snapshot already does — so it is relayed and its sender stays; the store is as it was before
    /// the compaction, and the caller drops the document from memory for the next message to reload.
    pub not_compacted: Option<String>,
}

/// Validates, applies, stores and (past the policy's threshold) compacts one client update. What is stored is the
/// update's effect (what it integrated and newly deleted) and what of it waits ([`Applied::to_log`]).
/// An update that would take the stored room (snapshot + log) past `max_document_bytes` is refused — undone if it
/// was applied, and only after a compaction, when the log holds anything, since deleted content shrinks in a
/// snapshot. The bound keeps a snapshot within what one storage row takes (Cloudflare's SQLite-backed objects store
/// at most 2 MB per row) and a room loadable in an object's memory.
///
/// Waiting updates older than the rules' TTL are dropped first, by a compaction (which rewrites what waits).
pub fn accept(
    loaded: &mut Loaded,
    store: &mut dyn UpdateStore,
    rules: Rules,
    bytes: &[u8],
    now: u64,
) -> Result<Outcome, AcceptError> {
    let Rules {
        compaction: policy,
        max_document_bytes,
        waiting_ttl_ms,
    } = rules;
    let nothing = Outcome {
        accepted: Accepted::Empty,
        relay: Vec::new(),
        released: Vec::new(),
        not_compacted: None,
    };
    expire(loaded, store, waiting_ttl_ms, now)?;
    let update = CheckedUpdate::decode(bytes).map_err(AcceptError::Invalid)?;
    if update.is_empty() {
        return Ok(nothing);
    }
    // An update is weighed by what it adds to the stored room: what it changed (its effect: the structs it
    // integrated, the ranges it newly deleted — a Yjs sync step 2 carries the client's whole delete set, mostly
    // known, which is neither weighed nor stored) and for each range it newly deletes the items that deletion can
    // split (a range deleted inside a text item leaves up to two more items in the snapshot, each with its ids:
    // SPLIT_BYTES). Insertions are refused before they are applied when the bytes of their structs the room has
    // neither integrated nor waiting would pass the limit (after a compaction first: deleted content shrinks in a
    // snapshot) — copies, such as a reconnect's echo of what waits, weigh nothing; updates that only delete may go a
    // margin past it, so a full room can still be emptied; one that also deletes is weighed once applied.
    let only_deletes = update.only_deletes();
    // An update that also deletes (typing or pasting over a selection) may free more than it inserts: it is weighed
    // once applied, by what the room folds to with it.
    let also_deletes = update.shape().delete_ranges > 0;
    let limit = if only_deletes {
        max_document_bytes.saturating_add(max_document_bytes / DELETE_MARGIN)
    } else {
        max_document_bytes
    };
    let full = || AcceptError::DocumentFull {
        limit: max_document_bytes,
    };
    let prepared = loaded.doc.prepare(update).map_err(AcceptError::Invalid)?;
    let news = prepared.news_bytes as u64;
    if loaded.stored_bytes_with(news) > max_document_bytes && loaded.stats.entries > 0 {
        compact(loaded, store)?;
    }
    if !only_deletes
        && loaded.stored_bytes_with(news) > max_document_bytes
        && (!also_deletes || news > max_document_bytes)
    {
        return Err(full());
    }
    let mut applied = apply_or_reload(loaded, store, prepared, now)?;
    // Nothing the room did not have (a reconnecting client's sync step 2 repeats its whole delete set): nothing to
    // store or broadcast.
    if !applied.changed() {
        return Ok(nothing);
    }
    // What folding the log may add past its bytes, once this update is stored: its allowance for splits on top of
    // the log's, or what measuring the folded document found.
    let mut splits = None;
    let mut fold_now = false;
    if loaded.stored_bytes_with(weight(&applied, bytes)) > limit {
        // Over by its weight: undone (memory rebuilt from storage), and once more after a compaction when the log
        // holds anything, since deleted content shrinks in a snapshot.
        if loaded.stats.entries > 0 {
            *loaded = load(store, now)?;
            compact(loaded, store)?;
            let again = CheckedUpdate::decode(bytes)
                .and_then(|update| loaded.doc.prepare(update))
                .map_err(AcceptError::Invalid)?;
            applied = apply_or_reload(loaded, store, again, now)?;
        }
        // The allowance for splits is a bound, far above what honest structs split (most split nothing): before
        // refusing, the document is folded as it now is and the update taken if that and the stored room fit.
        if loaded.stored_bytes_with(weight(&applied, bytes)) > limit {
            match measured_splits(loaded, &applied, bytes, limit) {
                Ok(measured) => splits = Some(measured),
                // Taken and folded at once when the room folds with it within the limit, or — an update that only
                // deletes — smaller than the room stored now: a room past even the margin (its limit was lowered
                // after it grew) refused every deletion and could never be emptied, and an edit replacing more than
                // it inserts was refused in a full room, its sender closed 1009 on every reconnect (its sync step 2
                // repeats it).
                Err(folded)
                    if applied.deleted_ranges > 0
                        && (folded <= max_document_bytes
                            || (only_deletes
                                && folded
                                    < loaded
                                        .snapshot_bytes
                                        .saturating_add(loaded.stats.bytes))) =>
                {
                    splits = Some(0);
                    fold_now = true;
                }
                Err(_) => {
                    *loaded = load(store, now)?;
                    return Err(full());
                }
            }
        }
    }
    // Its effect and what of it waits (the usual case), else what yrs was given and what waits. What waits is
    // written first: it is relayed to no one, so when the write after it fails (the caller closes the sender, which
    // sends it all again on reconnecting) nothing stored went unrelayed — written second, a failure left the taken
    // part stored and relayed to no member until it reconnected.
    let taken = applied.taken(bytes);
    if let Some(part) = &applied.waits {
        store
            .append_waiting(part, now)
            .map_err(AcceptError::Store)?;
    }
    // A set of deletions of ids the room lacks that begins is also written as waiting, with when it came: a reload
    // replays the log as arriving then, and would make them young again (see `RoomDoc::expire`).
    let deletes_began = applied
        .deletes_began
        .then(|| loaded.doc.pending_deletes())
        .flatten();
    if let Some(part) = &deletes_began {
        store
            .append_waiting(part, now)
            .map_err(AcceptError::Store)?;
    }
    if let Some(part) = taken {
        store.append(part).map_err(AcceptError::Store)?;
    }
    for part in applied
        .to_log(bytes)
        .into_iter()
        .chain(deletes_began.as_deref())
    {
        loaded.stats.entries += 1;
        loaded.stats.bytes += part.len() as u64;
    }
    loaded.splits =
        splits.unwrap_or_else(|| loaded.splits.saturating_add(split_weight(&applied, bytes)));
    // Relayed: what the room took, not what waits (it may yet be refused when it continues, and a member holding it
    // would then never sync); what waited and continues now goes to everyone.
    // Nor the deletions it keeps pending (see `RoomDoc::without_pending_deletes`).
    let relay = taken
        .and_then(|part| loaded.doc.without_pending_deletes(part))
        .into_iter()
        .collect();
    // Stored: from here on a failure must not lose the relay (the other members would miss a stored update until
    // they reconnected, and its sender, closed, would resend what the room holds).
    let mut not_compacted = None;
    let compacted = (policy.due(loaded.stats) || fold_now)
        && match compact(loaded, store) {
            Ok(()) => true,
            Err(AcceptError::Store(e)) => {
                not_compacted = Some(e);
                false
            }
            Err(e) => {
                not_compacted = Some(format!("{e:?}"));
                false
            }
        };
    Ok(Outcome {
        accepted: Accepted::Stored { compacted },
        relay,
        released: std::mem::take(&mut applied.released),
        not_compacted,
    })
}

/// Drops the waiting updates older than `ttl_ms` at `now`, in memory and (by a compaction, which rewrites what
/// waits) in storage; nothing when none is. Called before an update is taken and before a newcomer is answered.
pub fn expire(
    loaded: &mut Loaded,
    store: &mut dyn UpdateStore,
    ttl_ms: u64,
    now: u64,
) -> Result<(), AcceptError> {
    let before = now.saturating_sub(ttl_ms);
    if loaded
        .doc
        .oldest_waiting()
        .is_some_and(|since| since < before)
    {
        loaded.doc.expire(before);
        compact(loaded, store)?;
        if loaded.doc.must_rebuild() {
            *loaded = load(store, now)?;
        }
    }
    Ok(())
}

/// What storing an applied update adds to the room: the bytes stored (see [`accept`]) and what its new
/// deletions and its structs can split ([`split_weight`]).
fn weight(applied: &Applied, bytes: &[u8]) -> u64 {
    let stored = applied.to_log(bytes).iter().map(|p| p.len()).sum::<usize>() as u64;
    stored.saturating_add(split_weight(applied, bytes))
}

/// With `applied` in the document: what folding it into a snapshot adds past the stored room and the update's stored
/// bytes, when the folded document and the stored room are both within `limit` (else `Err` with the folded bytes).
/// Encodes the whole document: only for an update the allowance for splits alone would refuse.
fn measured_splits(
    loaded: &Loaded,
    applied: &Applied,
    bytes: &[u8],
    limit: u64,
) -> Result<u64, u64> {
    let stored = applied.to_log(bytes).iter().map(|p| p.len()).sum::<usize>() as u64;
    // The measure replaces the allowance counted so far, so the room is weighed without it.
    let with_it = loaded
        .stored_bytes_with(stored)
        .saturating_sub(loaded.splits);
    let folded = folded_bytes(&loaded.doc.snapshot());
    if folded <= limit && with_it <= limit {
        Ok(folded.saturating_sub(with_it))
    } else {
        Err(folded)
    }
}

/// Bytes a compaction stores for `snapshot`: the document, and what stays pending or waiting beside it.
fn folded_bytes(snapshot: &Snapshot) -> u64 {
    (snapshot.doc.len()
        + snapshot.pending.iter().map(Vec::len).sum::<usize>()
        + snapshot
            .waiting
            .iter()
            .map(|(part, _)| part.len())
            .sum::<usize>()) as u64
}

/// What an applied update's splits may add to a snapshot: [`SPLIT_BYTES`] for each range it newly deleted and each
/// struct it stores.
fn split_weight(applied: &Applied, bytes: &[u8]) -> u64 {
    let structs: usize = applied
        .to_log(bytes)
        .iter()
        .map(|p| shape::check_update(p).map_or(0, |s| s.structs))
        .sum();
    ((applied.deleted_ranges + structs) as u64).saturating_mul(SPLIT_BYTES)
}

/// Applies a prepared update, or — when yrs refuses it, which it may do after integrating part of it (a pending
/// update's retry failing, say) — rebuilds the document from what is stored, so memory never holds what storage
/// does not: a later update that only applies on top of the leftover would be stored, and the log would no longer
/// rebuild.
fn apply_or_reload(
    loaded: &mut Loaded,
    store: &mut dyn UpdateStore,
    prepared: Prepared,
    now: u64,
) -> Result<Applied, AcceptError> {
    match loaded.doc.apply_prepared(prepared, now) {
        Ok(applied) => Ok(applied),
        // Nothing of it was applied.
        Err(ApplyError::Refused(refused)) => Err(AcceptError::Invalid(refused)),
        Err(ApplyError::Failed(refused)) => {
            *loaded = load(store, now)?;
            Err(AcceptError::Invalid(refused))
        }
    }
}

/// Folds the log into a snapshot of the whole document: what it integrated, with what it keeps pending logged
/// after it and what waits (see [`RoomDoc::snapshot`]), in one atomic store step.
fn compact(loaded: &mut Loaded, store: &mut dyn UpdateStore) -> Result<(), AcceptError> {
    let snapshot = loaded.doc.snapshot();
    // What is pending and waiting cannot be folded in: it counts with the snapshot, not towards the next compaction
    // (which would otherwise follow every update once it held as many parts as the policy's entries). A reload counts
    // those rows as log entries again, so with a policy of fewer entries than parts the first update after a load
    // compacts once more.
    let bytes = folded_bytes(&snapshot);
    store.compact(snapshot).map_err(AcceptError::Store)?;
    loaded.stats = LogStats::default();
    loaded.snapshot_bytes = bytes;
    loaded.splits = 0;
    Ok(())
}

/// The in-memory store used by host tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    pub stored: Stored,
}

impl UpdateStore for MemoryStore {
    fn load(&mut self) -> Result<Stored, String> {
        Ok(self.stored.clone())
    }
    fn append(&mut self, update: &[u8]) -> Result<(), String> {
        self.stored.log.push(update.to_vec());
        Ok(())
    }
    fn append_waiting(&mut self, update: &[u8], since: u64) -> Result<(), String> {
        self.stored.waiting.push((update.to_vec(), since));
        Ok(())
    }
    fn compact(&mut self, snapshot: Snapshot) -> Result<(), String> {
        self.stored = Stored {
            snapshot: Some(snapshot.doc),
            log: snapshot.pending,
            waiting: snapshot.waiting,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, ReadTxn, StateVector, Text, Transact};

    use super::*;
    use crate::room::document::MAX_WAITING;

    /// The rules with `compaction`, no size limit, and nothing waiting too long.
    fn rules(compaction: CompactionPolicy) -> Rules {
        Rules {
            compaction,
            max_document_bytes: u64::MAX,
            waiting_ttl_ms: u64::MAX,
        }
    }

    /// [`accept`] with [`rules`] at time 0.
    fn accept_relaying(loaded: &mut Loaded, store: &mut MemoryStore, bytes: &[u8]) -> Outcome {
        accept(loaded, store, rules(policy(1_000)), bytes, 0).expect("accepted")
    }

    /// [`accept`], for tests that look only at whether it stored.
    fn accept_update(
        loaded: &mut Loaded,
        store: &mut dyn UpdateStore,
        policy: CompactionPolicy,
        max_document_bytes: u64,
        bytes: &[u8],
    ) -> Result<Accepted, AcceptError> {
        let rules = Rules {
            compaction: policy,
            max_document_bytes,
            waiting_ttl_ms: u64::MAX,
        };
        accept(loaded, store, rules, bytes, 0).map(|o| o.accepted)
    }

    /// Which write a [`Failing`] store refuses.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Fails {
        Compaction,
        Waiting,
    }

    /// A memory store whose one kind of write fails (a snapshot row too large, storage full).
    struct Failing(MemoryStore, Fails);

    impl UpdateStore for Failing {
        fn load(&mut self) -> Result<Stored, String> {
            self.0.load()
        }
        fn append(&mut self, update: &[u8]) -> Result<(), String> {
            self.0.append(update)
        }
        fn append_waiting(&mut self, update: &[u8], since: u64) -> Result<(), String> {
            match self.1 {
                Fails::Waiting => Err("SQLITE_FULL".into()),
                Fails::Compaction => self.0.append_waiting(update, since),
            }
        }
        fn compact(&mut self, snapshot: Snapshot) -> Result<(), String> {
            match self.1 {
                Fails::Compaction => Err("SQLITE_FULL".into()),
                Fails::Waiting => self.0.compact(snapshot),
            }
        }
    }

    #[test]
    fn an_update_stored_before_its_compaction_fails_is_still_relayed() {
        let mut store = Failing(MemoryStore::default(), Fails::Compaction);
        let mut loaded = load(&mut store, 0).expect("an empty room loads");
        let doc = Doc::with_client_id(1);
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "kept");
        let update = txn.encode_update_v1();
        drop(txn);
        let outcome = accept(&mut loaded, &mut store, rules(policy(1)), &update, 0)
            .expect("stored, though not compacted");
        assert_eq!(outcome.accepted, Accepted::Stored { compacted: false });
        assert_eq!(outcome.not_compacted.as_deref(), Some("SQLITE_FULL"));
        assert_eq!(outcome.relay.len(), 1, "relayed to the other members");
        let reloaded = load(&mut store, 0).expect("the store rebuilds");
        assert_eq!(reloaded.doc.to_json(), serde_json::json!({ "t": "kept" }));
    }

    /// One client edit the property test replays.
    #[derive(Debug, Clone)]
    enum Edit {
        Insert {
            client: usize,
            at: u32,
            text: String,
        },
        Delete {
            client: usize,
            at: u32,
            len: u32,
        },
        Set {
            client: usize,
            key: u8,
            value: i32,
        },
        /// Client `from` receives everything client `to` has (so later edits interleave causally), and relays it.
        Sync {
            from: usize,
            to: usize,
        },
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..3usize, any::<u32>(), "[a-zé]{1,5}").prop_map(|(client, at, text)| Edit::Insert {
                client,
                at,
                text
            }),
            (0..3usize, any::<u32>(), 1..4u32).prop_map(|(client, at, len)| Edit::Delete {
                client,
                at,
                len
            }),
            (0..3usize, 0..4u8, any::<i32>()).prop_map(|(client, key, value)| Edit::Set {
                client,
                key,
                value
            }),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Edit::Sync { from, to }),
        ]
    }

    /// Runs the edits on three client docs, sending each produced update to the room; returns the updates sent.
    /// `updates` with every third one repeated, shuffled by `order` (xorshift, Fisher–Yates): a delivery out of
    /// order with repeats.
    fn delivered(updates: &[Vec<u8>], order: u64) -> Vec<&Vec<u8>> {
        let mut delivery: Vec<&Vec<u8>> = updates.iter().chain(updates.iter().step_by(3)).collect();
        let mut seed = order | 1;
        for i in (1..delivery.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            delivery.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        delivery
    }

    fn client_updates(edits: &[Edit]) -> Vec<Vec<u8>> {
        // Yjs counts text offsets in UTF-16 code units, as the browser clients do.
        let clients: Vec<Doc> = (1..=3)
            .map(|id| {
                Doc::with_options(yrs::Options {
                    offset_kind: yrs::OffsetKind::Utf16,
                    ..yrs::Options::with_client_id(yrs::ClientID::new(id as u64))
                })
            })
            .collect();
        let mut sent = Vec::new();
        for e in edits {
            match e {
                Edit::Insert { client, at, text } => {
                    let doc = &clients[*client];
                    let t = doc.get_or_insert_text("text");
                    let mut txn = doc.transact_mut();
                    let len = t.len(&txn);
                    t.insert(&mut txn, at % (len + 1), text);
                    sent.push(txn.encode_update_v1());
                }
                Edit::Delete { client, at, len } => {
                    let doc = &clients[*client];
                    let t = doc.get_or_insert_text("text");
                    let mut txn = doc.transact_mut();
                    let total = t.len(&txn);
                    if total == 0 {
                        continue;
                    }
                    let at = at % total;
                    t.remove_range(&mut txn, at, (*len).min(total - at));
                    sent.push(txn.encode_update_v1());
                }
                Edit::Set { client, key, value } => {
                    let doc = &clients[*client];
                    let m = doc.get_or_insert_map("meta");
                    let mut txn = doc.transact_mut();
                    m.insert(&mut txn, format!("k{key}"), *value as f64);
                    sent.push(txn.encode_update_v1());
                }
                Edit::Sync { from, to } => {
                    let update = clients[*to]
                        .transact()
                        .encode_state_as_update_v1(&clients[*from].transact().state_vector());
                    let u = yrs::Update::decode_v1(&update).expect("own update decodes");
                    clients[*from]
                        .transact_mut()
                        .apply_update(u)
                        .expect("own update applies");
                    // Relayed to the room too, as a peer syncing over another provider does: several clients'
                    // structs in one update.
                    sent.push(update);
                }
            }
        }
        sent
    }

    fn policy(n: u64) -> CompactionPolicy {
        CompactionPolicy {
            max_entries: n,
            max_bytes: u64::MAX,
        }
    }

    impl MemoryStore {
        /// Bytes the room occupies: its snapshot and its log.
        fn bytes(&self) -> u64 {
            self.stored.snapshot.as_ref().map_or(0, |s| s.len() as u64)
                + self.stored.log.iter().map(|e| e.len() as u64).sum::<u64>()
                + self
                    .stored
                    .waiting
                    .iter()
                    .map(|(e, _)| e.len() as u64)
                    .sum::<u64>()
        }

        /// Updates stored after the snapshot: logged and waiting.
        fn entries(&self) -> usize {
            self.stored.log.len() + self.stored.waiting.len()
        }
    }

    /// A writer's document (client 9) with one text, and an empty room.
    fn writer_and_room() -> (Doc, yrs::TextRef, MemoryStore, Loaded) {
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let mut store = MemoryStore::default();
        let loaded = load(&mut store, 0).expect("loads");
        (doc, text, store, loaded)
    }

    /// The update `f` makes to `doc`.
    fn edit_of(doc: &Doc, f: &dyn Fn(&mut yrs::TransactionMut)) -> Vec<u8> {
        let mut txn = doc.transact_mut();
        f(&mut txn);
        txn.encode_update_v1()
    }

    /// A document's JSON without empty roots: a root whose content was all deleted is collected in a snapshot
    /// (Yjs does not encode roots), so it reads as absent after a rebuild and as empty before.
    fn content(doc: &RoomDoc) -> serde_json::Value {
        let mut json = doc.to_json();
        if let Some(roots) = json.as_object_mut() {
            roots.retain(|_, v| {
                !matches!(v, serde_json::Value::Object(o) if o.is_empty()) && v != ""
            });
        }
        json
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(std::env::var("ROOM_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96)))]

        #[test]
        fn any_updates_persisted_compacted_anywhere_and_rebuilt_equal_the_live_document(
            edits in prop::collection::vec(edit(), 1..40),
            compact_every in 1..12u64,
            extra_compaction_at in any::<prop::sample::Index>(),
        ) {
            let updates = client_updates(&edits);
            let mut live = RoomDoc::new();
            let mut store = MemoryStore::default();
            let mut loaded = load(&mut store, 0).expect("empty store loads");
            let extra = if updates.is_empty() { usize::MAX } else { extra_compaction_at.index(updates.len()) };
            for (i, u) in updates.iter().enumerate() {
                live.apply(CheckedUpdate::decode(u).expect("decodes"), 0).expect("applies");
                accept_update(&mut loaded, &mut store, policy(compact_every), u64::MAX, u).expect("accepted");
                if i == extra {
                    compact(&mut loaded, &mut store).expect("compacts");
                }
            }
            let rebuilt = load(&mut store, 0).expect("rebuilds").doc;
            prop_assert_eq!(rebuilt.to_json(), live.to_json(), "rebuilt document differs from the live one");
            prop_assert_eq!(rebuilt.state_vector(), live.state_vector(), "state vectors differ");
            prop_assert_eq!(loaded.doc.to_json(), live.to_json(), "the room's own document differs");
        }

        #[test]
        fn updates_arriving_in_any_order_and_repeated_are_persisted_and_rebuilt_equal_the_live_document(
            edits in prop::collection::vec(edit(), 1..30),
            order in any::<u64>(),
            compact_every in 1..8u64,
        ) {
            // Out-of-order delivery leaves parts pending until what they follow arrives; repeats change nothing.
            let updates = client_updates(&edits);
            let mut live = RoomDoc::new();
            for u in &updates {
                live.apply(CheckedUpdate::decode(u).expect("decodes"), 0).expect("applies");
            }
            let delivery = delivered(&updates, order);
            let mut store = MemoryStore::default();
            let mut loaded = load(&mut store, 0).expect("empty store loads");
            for u in delivery {
                accept_update(&mut loaded, &mut store, policy(compact_every), u64::MAX, u).expect("accepted");
                let rebuilt = load(&mut store, 0).expect("rebuilds at every step").doc;
                prop_assert_eq!(content(&rebuilt), content(&loaded.doc), "storage and memory differ");
                prop_assert!(loaded.doc.pending_deletes_cached_as_read(), "live: cached pending deletions");
                prop_assert!(rebuilt.pending_deletes_cached_as_read(), "reloaded: cached pending deletions");
                // Coverage only (already so): the order check leaves yrs no structs to keep pending, so a newcomer's
                // sync reply is the document alone — Yjs would keep such structs pending and echo them back.
                prop_assert_eq!(loaded.doc.diff(&[0]).expect("diff").len(), 1, "a newcomer is sent pending structs");
                prop_assert_eq!(rebuilt.state_vector(), loaded.doc.state_vector());
            }
            prop_assert_eq!(content(&loaded.doc), content(&live), "the room did not converge");
        }

        #[test]
        fn arbitrary_bytes_are_refused_or_accepted_but_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut store = MemoryStore::default();
            let mut loaded = load(&mut store, 0).expect("empty store loads");
            let _ = accept_update(&mut loaded, &mut store, policy(3), u64::MAX, &bytes);
            let _ = crate::room::wire::decode(&bytes);
        }
    }

    #[test]
    fn empty_and_invalid_updates_store_nothing() {
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        let cases: &[(&str, &[u8], bool)] = &[
            ("an empty update is accepted as empty", &[0, 0], true),
            ("garbage is refused", &[0xff, 0xff, 0xff], false),
        ];
        for (name, bytes, ok) in cases {
            let outcome = accept_update(&mut loaded, &mut store, policy(10), u64::MAX, bytes);
            assert_eq!(outcome.is_ok(), *ok, "{name}: {outcome:?}");
            assert_eq!(store.entries(), 0, "{name}: nothing stored");
        }
    }

    #[test]
    fn an_update_that_waits_and_then_does_not_apply_is_dropped_in_memory_and_on_reload_alike() {
        // K: a string item of client 7 at clock 1 whose parent is item (7,0), which does not exist yet: it waits.
        let k: &[u8] = &[1, 1, 7, 1, 4, 0, 7, 0, 1, b'k', 0];
        // L: item (7,0), a string in root "t". It is taken; K, tried again then, does not apply (its parent is not
        // a type) and is dropped. (Before updates waited in the room, yrs kept K pending and refused L after
        // integrating part of it.)
        let l: &[u8] = &[1, 1, 7, 0, 4, 1, 1, b't', 1, b'l', 0];
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        let mut outcomes = Vec::new();
        for u in [k, l, l] {
            outcomes.push(accept_update(
                &mut loaded,
                &mut store,
                policy(1_000),
                u64::MAX,
                u,
            ));
        }
        let stored = Ok(Accepted::Stored { compacted: false });
        assert_eq!(outcomes, [stored.clone(), stored, Ok(Accepted::Empty)]);
        let rebuilt = load(&mut store, 0).expect("the stored log always rebuilds");
        assert_eq!(rebuilt.skipped, 1, "K is dropped on reload too");
        assert_eq!(rebuilt.doc.to_json(), serde_json::json!({ "t": "l" }));
        assert_eq!(
            rebuilt.doc.state_vector(),
            loaded.doc.state_vector(),
            "memory and storage agree"
        );
        assert_eq!(rebuilt.doc.to_json(), loaded.doc.to_json());
    }

    #[test]
    fn updates_that_change_nothing_are_not_stored_also_at_the_size_limit() {
        let (doc, text, mut store, mut loaded) = writer_and_room();
        let edit = |f: &dyn Fn(&mut yrs::TransactionMut)| edit_of(&doc, f);
        let insert = edit(&|txn| text.insert(txn, 0, &"z".repeat(20_000)));
        let delete = edit(&|txn| text.remove_range(txn, 0, 10));
        // The insertion just fits; everything after it is past the limit.
        let limit = insert.len() as u64 + 2;
        let mut accept =
            |u: &[u8], limit| accept_update(&mut loaded, &mut store, policy(1_000), limit, u);
        assert_eq!(
            accept(&insert, limit),
            Ok(Accepted::Stored { compacted: false })
        );
        assert_eq!(
            accept(&insert, u64::MAX),
            Ok(Accepted::Empty),
            "the same insertion again"
        );
        assert_eq!(
            accept(&delete, limit),
            Ok(Accepted::Stored { compacted: false }),
            "a deletion at the limit"
        );
        assert_eq!(
            accept(&delete, limit),
            Ok(Accepted::Empty),
            "the same deletion again"
        );
        // What a reconnecting client sends in sync step 2: what the room lacks (nothing) and its whole delete set.
        let reconnect = doc
            .transact()
            .encode_state_as_update_v1(&doc.transact().state_vector());
        assert_eq!(
            accept(&reconnect, limit),
            Ok(Accepted::Empty),
            "a reconnect's step 2"
        );
        // Deleting what the room never had (client 99) is kept pending; a reconnect's step 2 afterwards still changes
        // nothing (the pending state is the same before and after it).
        let unknown = |clock: u8| vec![0, 1, 99, 1, clock, 1];
        assert!(
            matches!(accept(&unknown(0), limit), Ok(Accepted::Stored { .. })),
            "within the deletion margin"
        );
        assert_eq!(
            accept(&reconnect, limit),
            Ok(Accepted::Empty),
            "pending and unchanged: not news"
        );
        // Deletions are weighed too and have only a margin past the limit: a stream of them is refused in the end.
        let accepted = (1..=200u8)
            .take_while(|clock| accept(&unknown(clock.wrapping_mul(2)), limit).is_ok())
            .count();
        assert!(
            accepted < 200,
            "the margin ran out after {accepted} deletions"
        );
        let stored = store.bytes();
        assert!(
            stored <= limit + limit / 64,
            "within the limit and its margin: {stored}"
        );
    }

    #[test]
    fn a_document_of_many_structs_is_taken_when_it_folds_within_the_limit() {
        // A client's document typed backwards (3,000 one-character structs, ~17 KB) joining an empty room: its
        // allowance for splits (64 bytes a struct) is three times the limit, but it splits nothing; the room folds it
        // to measure it and takes it.
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let typed = edit_of(&doc, &|txn| {
            for _ in 0..3_000 {
                text.insert(txn, 0, "t");
            }
        });
        let limit = 64 * 1024;
        assert!(typed.len() as u64 + 3_000 * SPLIT_BYTES > limit);
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        assert!(matches!(
            accept_update(&mut loaded, &mut store, policy(1_000), limit, &typed),
            Ok(Accepted::Stored { .. })
        ));
        assert_eq!(
            content(&loaded.doc),
            serde_json::json!({ "text": "t".repeat(3_000) })
        );
        // What it may still add when folded is what measuring it found, not its allowance.
        assert!(loaded.stored_bytes_with(0) <= limit);
    }

    #[test]
    fn inserts_that_split_items_count_towards_the_limit_and_a_room_full_of_them_can_be_emptied() {
        // Client A's long item with a right origin ("a" × 3,900 before "Z"), then client B's one-character items,
        // each between two of A's characters: 24 bytes each as sent, but each splits A's item, whose every piece
        // repeats A's ids in a snapshot. (Naming no right origin, they were 14 bytes; such items are now refused:
        // see `room::ends`.) Unweighed, the log stayed under the limit while
        // the snapshot folded from it came out 2.5 times larger, and the room then refused every update, for good.
        let limit = 64 * 1024;
        let (a_id, b_id) = ((1u64 << 53) - 1, (1u64 << 53) - 2);
        let var = crate::room::order::write_var;
        let writer = Doc::with_client_id(a_id);
        let text = writer.get_or_insert_text("text");
        let long = edit_of(&writer, &|txn| {
            text.insert(txn, 0, "Z");
            text.insert(txn, 0, &"a".repeat(3900));
        });
        let mut updates = vec![long];
        let mut clock = 0;
        for k in (1..3900u64).step_by(270) {
            let n = 270.min(3900 - k);
            let mut update = Vec::new();
            for v in [1, n, b_id, clock] {
                var(&mut update, v);
            }
            for j in 0..n {
                update.push(0xC4); // a string item with an origin and a right origin
                var(&mut update, a_id);
                var(&mut update, k + j);
                var(&mut update, a_id);
                var(&mut update, k + j + 1);
                update.extend([1, b'b']);
            }
            update.push(0);
            clock += n;
            updates.push(update);
        }
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        let mut accepted = 0;
        for update in &updates {
            match accept_update(&mut loaded, &mut store, policy(1_000), limit, update) {
                Ok(_) => accepted += 1,
                Err(AcceptError::DocumentFull { .. }) => break,
                Err(e) => panic!("update refused otherwise: {e:?}"),
            }
        }
        assert!(accepted > 1, "some of B's items were taken ({accepted})");
        compact(&mut loaded, &mut store).expect("compacts");
        assert!(
            store.bytes() <= limit,
            "the folded room stays within its limit: {} bytes",
            store.bytes()
        );
        // Deleting it all is taken (it was refused when the snapshot alone was past the limit).
        let everything = Doc::new();
        {
            let mut txn = everything.transact_mut();
            let stored = store.stored.snapshot.clone().expect("a snapshot");
            txn.apply_update(yrs::Update::decode_v1(&stored).expect("decodes"))
                .expect("applies");
        }
        let all = everything.get_or_insert_text("text");
        let len = all.len(&everything.transact());
        let erase = edit_of(&everything, &|txn| all.remove_range(txn, 0, len));
        assert!(
            matches!(
                accept_update(&mut loaded, &mut store, policy(1_000), limit, &erase),
                Ok(Accepted::Stored { .. })
            ),
            "emptying the room is taken"
        );
        assert_eq!(
            content(&loaded.doc),
            serde_json::json!({}),
            "the room is empty"
        );
    }

    #[test]
    fn an_edit_over_the_limit_by_its_weight_is_taken_after_a_compaction_frees_room() {
        let (doc, text, mut store, mut loaded) = writer_and_room();
        let edit = |f: &dyn Fn(&mut yrs::TransactionMut)| edit_of(&doc, f);
        let insert = edit(&|txn| text.insert(txn, 0, &"w".repeat(4_000)));
        let delete = edit(&|txn| text.remove_range(txn, 0, 3_000));
        for u in [&insert, &delete] {
            assert!(accept_update(&mut loaded, &mut store, policy(1_000), u64::MAX, u).is_ok());
        }
        // Replacing a selection: a deletion and a character, weighed past the limit while the deleted text is
        // still in the log — and well within it once compacted.
        let replace = edit(&|txn| {
            text.remove_range(txn, 10, 1);
            text.insert(txn, 10, "x");
        });
        let limit = loaded.snapshot_bytes + loaded.stats.bytes + replace.len() as u64 + 20;
        assert!(matches!(
            accept_update(&mut loaded, &mut store, policy(1_000), limit, &replace),
            Ok(Accepted::Stored { .. })
        ));
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            loaded.doc.to_json()
        );
    }

    #[test]
    fn a_reconnect_to_a_fragmented_room_at_its_limit_is_not_refused() {
        // A room edited a lot: thousands of separate deletions, all in every client's delete set.
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        let mut accept =
            |u: &[u8], limit| accept_update(&mut loaded, &mut store, policy(1_000), limit, u);
        let insert = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, &"q".repeat(6_000));
            txn.encode_update_v1()
        };
        assert!(accept(&insert, u64::MAX).is_ok());
        let sieve = {
            let mut txn = doc.transact_mut();
            for i in 0..2_000 {
                text.remove_range(&mut txn, i * 2, 1);
            }
            txn.encode_update_v1()
        };
        assert!(accept(&sieve, u64::MAX).is_ok());
        // Its sync step 2 repeats 2,000 ranges the room has: nothing new, whatever the room's limit.
        let reconnect = doc
            .transact()
            .encode_state_as_update_v1(&doc.transact().state_vector());
        assert_eq!(accept(&reconnect, 64 * 1024), Ok(Accepted::Empty));
    }

    #[test]
    fn a_reconnect_carrying_an_offline_edit_to_a_fragmented_room_at_its_limit_stores_the_edit_alone(
    ) {
        for plant_first in [false, true] {
            // A much-edited room (2,000 separate deletions), compacted, with a limit just above what it stores.
            let (writer, text, mut store, mut loaded) = writer_and_room();
            let insert = edit_of(&writer, &|txn| text.insert(txn, 0, &"q".repeat(6_000)));
            let sieve = edit_of(&writer, &|txn| {
                for i in 0..2_000 {
                    text.remove_range(txn, i * 2, 1);
                }
            });
            // With a deletion of an id that will never exist planted first (kept pending for good), too.
            let plant: &[u8] = &[0, 1, 99, 1, 0, 1];
            let planted = if plant_first { vec![plant] } else { vec![] };
            for update in planted
                .into_iter()
                .chain([insert.as_slice(), sieve.as_slice()])
            {
                assert!(
                    accept_update(&mut loaded, &mut store, policy(1_000), u64::MAX, update).is_ok()
                );
            }
            compact(&mut loaded, &mut store).expect("compacts");
            let limit = store.bytes() + 256;
            // A client that synced, went offline and typed one word: its sync step 2 is that word plus its whole delete
            // set, kilobytes the room already has.
            let offline = Doc::with_client_id(5);
            for update in loaded.doc.snapshot().parts() {
                offline
                    .transact_mut()
                    .apply_update(yrs::Update::decode_v1(&update).expect("decodes"))
                    .expect("applies");
            }
            let word = offline.get_or_insert_text("text");
            word.insert(&mut offline.transact_mut(), 0, "word ");
            let room_sv = yrs::StateVector::decode_v1(&loaded.doc.state_vector()).expect("decodes");
            let reconnect = offline.transact().encode_state_as_update_v1(&room_sv);
            assert!(
                reconnect.len() > 1_000,
                "the delete set: {} bytes",
                reconnect.len()
            );
            let before = store.bytes();
            assert_eq!(
                accept_update(&mut loaded, &mut store, policy(1_000), limit, &reconnect),
                Ok(Accepted::Stored { compacted: false })
            );
            let added = store.bytes() - before;
            assert!(added < 64, "only the edit is stored: {added} bytes");
            let rebuilt = load(&mut store, 0).expect("reloads");
            assert_eq!(rebuilt.doc.to_json(), loaded.doc.to_json());
            assert!(rebuilt.doc.to_json()["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("word ")));
        }
    }

    #[test]
    fn a_pending_update_echoed_back_is_not_stored_again_while_new_pending_parts_are() {
        // Edits whose first part the room never got stay pending, and every connecting client echoes them back in
        // its sync step 2: those echoes change nothing. A new edit of that client goes pending too, and is stored.
        let (writer, text, mut store, mut loaded) = writer_and_room();
        let edits: Vec<Vec<u8>> = (0..4)
            .map(|i| edit_of(&writer, &|txn| text.insert(txn, i, "x")))
            .collect();
        let mut accept = |u: &[u8]| {
            let outcome = accept_update(&mut loaded, &mut store, policy(1_000), u64::MAX, u);
            (outcome, store.entries())
        };
        let stored = Ok(Accepted::Stored { compacted: false });
        assert_eq!(accept(&edits[2]), (stored.clone(), 1));
        for _ in 0..3 {
            assert_eq!(accept(&edits[2]), (Ok(Accepted::Empty), 1), "the echo");
        }
        assert_eq!(accept(&edits[3]), (stored.clone(), 2));
        assert_eq!(accept(&edits[3]), (Ok(Accepted::Empty), 2));
        // The missing parts arrive: everything integrates, and the room reloads the same.
        assert_eq!(accept(&edits[0]), (stored.clone(), 3));
        assert_eq!(accept(&edits[1]), (stored, 4));
        assert_eq!(loaded.doc.to_json()["text"], "xxxx");
        let rebuilt = load(&mut store, 0).expect("reloads");
        assert_eq!(rebuilt.doc.to_json(), loaded.doc.to_json());
    }

    #[test]
    fn an_update_arriving_before_the_one_it_follows_waits_and_nothing_is_lost() {
        // Client 9 types, then sets a map key; the room gets the second update first (relayed by a peer, say).
        // The key depends on nothing, so yrs would integrate it past the gap; the room holds it back instead.
        let (writer, text, mut store, mut loaded) = writer_and_room();
        let typed = edit_of(&writer, &|txn| text.insert(txn, 0, "abc"));
        let map = writer.get_or_insert_map("m");
        let keyed = edit_of(&writer, &|txn| {
            map.insert(txn, "k", "v");
        });
        let stored = Ok(Accepted::Stored { compacted: false });
        let accept = |loaded: &mut Loaded, store: &mut MemoryStore, u: &[u8]| {
            accept_update(loaded, store, policy(1_000), u64::MAX, u)
        };
        assert_eq!(accept(&mut loaded, &mut store, &keyed), stored.clone());
        assert_eq!(
            accept(&mut loaded, &mut store, &keyed),
            Ok(Accepted::Empty),
            "a copy of what waits"
        );
        // A newcomer asking now is not sent what waits (it may yet be refused); it is relayed once it continues.
        let parts = loaded.doc.diff(&[0]).expect("diff");
        assert_eq!(parts, [vec![0, 0]], "an empty document: {parts:?}");
        let taken = accept_relaying(&mut loaded, &mut store, &typed);
        assert_eq!(taken.accepted, Accepted::Stored { compacted: false });
        assert_eq!(taken.relay.len(), 1, "the edit");
        assert_eq!(
            taken.released,
            [keyed],
            "what it let continue, for everyone"
        );
        let expected = serde_json::json!({ "text": "abc", "m": { "k": "v" } });
        assert_eq!(loaded.doc.to_json(), expected);
        let rebuilt = load(&mut store, 0).expect("reloads");
        assert_eq!(rebuilt.doc.to_json(), expected);
        compact(&mut loaded, &mut store).expect("compacts");
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            expected
        );
    }

    /// `u` offered to the room under a generous policy and no size limit.
    fn offer(
        loaded: &mut Loaded,
        store: &mut MemoryStore,
        u: &[u8],
    ) -> Result<Accepted, AcceptError> {
        accept_update(loaded, store, policy(1_000), u64::MAX, u)
    }

    /// Client 9 typing `n` runs of five characters, one update each: clocks 5i..5i+5.
    fn typed_runs(n: u32) -> Vec<Vec<u8>> {
        let (writer, text, _, _) = writer_and_room();
        (0..n)
            .map(|i| edit_of(&writer, &|txn| text.insert(txn, 5 * i, "abcde")))
            .collect()
    }

    /// One update holding two clients' structs: client 9's second edit (`runs[1]`, which continues after
    /// `runs[0]`) and client 77's second edit, whose first the room never got (an orphan, which waits).
    fn continuing_with_orphan(runs: &[Vec<u8>]) -> Vec<u8> {
        let other = Doc::with_client_id(77);
        let t = other.get_or_insert_text("other");
        edit_of(&other, &|txn| t.insert(txn, 0, "xy"));
        let orphan = edit_of(&other, &|txn| t.insert(txn, 2, "z"));
        yrs::merge_updates_v1([runs[1].as_slice(), orphan.as_slice()]).expect("merges")
    }

    #[test]
    fn what_continues_in_an_update_is_taken_and_only_the_rest_waits() {
        // One update holding two clients' structs: client 9's next edit, which continues, and client 77's second
        // edit, whose first the room never got. Only the orphan waits; the edit is taken.
        let runs = typed_runs(2);
        let bundled = continuing_with_orphan(&runs);
        let (_, _, mut store, mut loaded) = writer_and_room();
        assert!(matches!(
            offer(&mut loaded, &mut store, &runs[0]),
            Ok(Accepted::Stored { .. })
        ));
        assert!(matches!(
            offer(&mut loaded, &mut store, &bundled),
            Ok(Accepted::Stored { .. })
        ));
        assert_eq!(
            offer(&mut loaded, &mut store, &bundled),
            Ok(Accepted::Empty),
            "a copy"
        );
        assert_eq!(
            loaded.doc.to_json(),
            serde_json::json!({ "text": "abcdeabcde" })
        );
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            loaded.doc.to_json()
        );
    }

    #[test]
    fn an_update_whose_waiting_part_is_not_stored_leaves_nothing_stored_unrelayed() {
        // Client 9's next edit, which continues, bundled with client 77's orphan, which waits: the waiting part's
        // write fails. The update is refused as not stored (no relay), so the store must not hold its taken part:
        // the other members would miss it until they reconnected.
        let runs = typed_runs(2);
        let bundled = continuing_with_orphan(&runs);
        let mut store = Failing(MemoryStore::default(), Fails::Waiting);
        let mut loaded = load(&mut store, 0).expect("loads");
        assert!(matches!(
            accept_update(&mut loaded, &mut store, policy(1_000), u64::MAX, &runs[0]),
            Ok(Accepted::Stored { .. })
        ));
        let stored = store.0.stored.clone();
        assert!(matches!(
            accept_update(&mut loaded, &mut store, policy(1_000), u64::MAX, &bundled),
            Err(AcceptError::Store(_))
        ));
        assert_eq!(store.0.stored, stored, "nothing of it is stored");
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            serde_json::json!({ "text": "abcde" })
        );
    }

    /// Client 11's maps nested `levels` deep under root map "m", one update per level, and the deepest.
    fn nested_maps(levels: usize) -> (Doc, Vec<Vec<u8>>, yrs::MapRef) {
        let doc = Doc::with_client_id(11);
        let mut cur = doc.get_or_insert_map("m");
        let mut updates = Vec::new();
        for _ in 0..levels {
            let next = std::cell::RefCell::new(None);
            updates.push(edit_of(&doc, &|txn| {
                *next.borrow_mut() = Some(cur.insert(txn, "a", yrs::MapPrelim::default()));
            }));
            cur = next.into_inner().expect("inserted");
        }
        (doc, updates, cur)
    }

    /// How deep maps nest under "a" keys in a document's root map "m".
    fn map_depth(doc: &RoomDoc) -> usize {
        let json = doc.to_json();
        let mut cur = &json["m"];
        let mut depth = 0;
        while let Some(next) = cur.get("a") {
            depth += 1;
            cur = next;
        }
        depth
    }

    #[test]
    fn a_shared_type_nested_past_the_limit_is_refused_and_a_chain_at_it_deletes_and_reloads() {
        use crate::room::depth::MAX_TYPE_DEPTH;
        let limit = MAX_TYPE_DEPTH as usize;
        let (writer, updates, deepest) = nested_maps(limit);
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        for u in &updates {
            offer(&mut loaded, &mut store, u).expect("within the limit");
        }
        let deeper = edit_of(&writer, &|txn| {
            deepest.insert(txn, "a", yrs::MapPrelim::default());
        });
        match offer(&mut loaded, &mut store, &deeper) {
            Err(AcceptError::Invalid(e)) => assert!(e.0.contains("nest"), "{e}"),
            other => panic!("a type past the limit is refused, not {other:?}"),
        }
        assert_eq!(map_depth(&loaded.doc), limit);
        let reloaded = load(&mut store, 0).expect("rebuilds");
        assert_eq!((reloaded.skipped, map_depth(&reloaded.doc)), (0, limit));
        // Deleting the chain from its top (yrs recurses through it), then compacting and reloading.
        let root = writer.get_or_insert_map("m");
        let delete = edit_of(&writer, &|txn| {
            root.remove(txn, "a");
        });
        offer(&mut loaded, &mut store, &delete).expect("deleting the chain");
        assert_eq!(map_depth(&loaded.doc), 0);
        compact(&mut loaded, &mut store).expect("compacts");
        assert_eq!(map_depth(&load(&mut store, 0).expect("rebuilds").doc), 0);
    }

    #[test]
    fn a_shared_type_past_the_limit_that_waited_is_dropped_in_memory_and_on_reload_alike() {
        // The level past the limit arrives before the one it nests in, and waits; when that arrives, the waiting
        // level is tried and dropped — and a reload of the log, where both are stored, drops it too, so no chain
        // grows past the limit one waiting update at a time.
        use crate::room::depth::MAX_TYPE_DEPTH;
        let limit = MAX_TYPE_DEPTH as usize;
        let (writer, updates, deepest) = nested_maps(limit);
        let deeper = edit_of(&writer, &|txn| {
            deepest.insert(txn, "a", yrs::MapPrelim::default());
        });
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        for u in &updates[..limit - 1] {
            offer(&mut loaded, &mut store, u).expect("within the limit");
        }
        let waits = offer(&mut loaded, &mut store, &deeper);
        assert_eq!(waits, Ok(Accepted::Stored { compacted: false }));
        offer(&mut loaded, &mut store, &updates[limit - 1]).expect("the last level");
        assert_eq!(map_depth(&loaded.doc), limit);
        let reloaded = load(&mut store, 0).expect("rebuilds");
        assert_eq!(map_depth(&reloaded.doc), limit);
        assert_eq!(reloaded.doc.state_vector(), loaded.doc.state_vector());
        compact(&mut loaded, &mut store).expect("compacts");
        assert_eq!(
            map_depth(&load(&mut store, 0).expect("rebuilds").doc),
            limit
        );
    }

    #[test]
    fn a_run_with_a_gap_inside_is_taken_up_to_the_gap_and_the_rest_waits() {
        // One update of client 9's clocks 5..10 and 15..20 (a skip for 10..15 between them), to a room at clock 5:
        // 5..10 continue and are taken, 15..20 wait until 10..15 arrive. yrs would integrate both at once.
        let runs = typed_runs(4);
        let gapped =
            yrs::merge_updates_v1([runs[1].as_slice(), runs[3].as_slice()]).expect("merges");
        let (_, _, mut store, mut loaded) = writer_and_room();
        assert!(offer(&mut loaded, &mut store, &runs[0]).is_ok());
        assert!(matches!(
            offer(&mut loaded, &mut store, &gapped),
            Ok(Accepted::Stored { .. })
        ));
        assert_eq!(
            loaded.doc.to_json(),
            serde_json::json!({ "text": "abcdeabcde" })
        );
        assert!(matches!(
            offer(&mut loaded, &mut store, &runs[2]),
            Ok(Accepted::Stored { .. })
        ));
        assert_eq!(
            loaded.doc.to_json(),
            serde_json::json!({ "text": "abcdeabcdeabcdeabcde" })
        );
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            loaded.doc.to_json()
        );
    }

    #[test]
    fn a_snapshot_written_with_a_gap_in_it_still_loads_whole() {
        // Snapshots written before updates waited hold what yrs integrated past a gap: loaded as they are.
        let runs = typed_runs(3);
        let gapped =
            yrs::merge_updates_v1([runs[0].as_slice(), runs[2].as_slice()]).expect("merges");
        let mut store = MemoryStore {
            stored: Stored {
                snapshot: Some(gapped),
                log: vec![runs[1].clone()],
                waiting: Vec::new(),
            },
        };
        let loaded = load(&mut store, 0).expect("loads");
        assert_eq!(loaded.skipped, 0);
        assert_eq!(
            loaded.doc.to_json()["text"].as_str().map(str::len),
            Some(15)
        );
    }

    /// Client `client`'s struct at clock 1 (a string in root "t"), whose clock 0 the room never gets.
    fn orphan(client: u64) -> Vec<u8> {
        let mut update = vec![1, 1];
        let mut id = client;
        while id >= 0x80 {
            update.push((id as u8 & 0x7f) | 0x80);
            id >>= 7;
        }
        update.push(id as u8);
        update.extend([1, 4, 1, 1, b't', 1, b'o', 0]);
        update
    }

    #[test]
    fn at_most_max_waiting_updates_wait_and_they_do_not_make_every_update_compact() {
        // 256 orphans from a member are kept to wait, then no more are; everyone's edits are still taken.
        let (_, _, mut store, mut loaded) = writer_and_room();
        let every_third = policy(3);
        for client in 0..MAX_WAITING as u64 {
            let outcome = accept_update(
                &mut loaded,
                &mut store,
                every_third,
                u64::MAX,
                &orphan(100 + client),
            );
            assert!(
                matches!(outcome, Ok(Accepted::Stored { .. })),
                "{client}: {outcome:?}"
            );
        }
        // Past the bound what would wait is not kept; what continues in the same update is taken.
        let runs = typed_runs(5);
        let bundled =
            yrs::merge_updates_v1([runs[0].as_slice(), orphan(1_000).as_slice()]).expect("merges");
        let taken = accept_update(&mut loaded, &mut store, every_third, u64::MAX, &bundled);
        assert!(matches!(taken, Ok(Accepted::Stored { .. })), "{taken:?}");
        assert_eq!(loaded.doc.to_json()["text"], "abcde");
        assert_eq!(
            accept_update(
                &mut loaded,
                &mut store,
                every_third,
                u64::MAX,
                &orphan(1_001)
            ),
            Ok(Accepted::Empty),
            "an orphan alone changes nothing now"
        );
        assert_eq!(
            accept_update(&mut loaded, &mut store, every_third, u64::MAX, &orphan(103)),
            Ok(Accepted::Empty),
            "a copy of what waits is still fine"
        );
        // A part dropped at the bound is not logged either, also when the update is logged as yrs got it (its
        // deletion of an id the room lacks goes pending, so its effect is not used): a reload must not bring it
        // back (no compaction here, which would rewrite the log from memory).
        let dropped_and_deleting =
            yrs::merge_updates_v1([orphan(1_002).as_slice(), &[0, 1, 98, 1, 0, 1]])
                .expect("merges");
        assert!(matches!(
            accept_update(
                &mut loaded,
                &mut store,
                policy(1_000),
                u64::MAX,
                &dropped_and_deleting
            ),
            Ok(Accepted::Stored { .. })
        ));
        let reloaded = load(&mut store, 0).expect("reloads");
        assert_eq!(
            reloaded.doc.snapshot().waiting.len(),
            loaded.doc.snapshot().waiting.len(),
            "as many parts wait"
        );
        // What waits stays logged after the snapshot, yet compaction still comes every third update.
        let compacted: Vec<bool> = runs[1..]
            .iter()
            .map(
                |u| match accept_update(&mut loaded, &mut store, every_third, u64::MAX, u) {
                    Ok(Accepted::Stored { compacted }) => compacted,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert!(
            compacted
                .windows(3)
                .all(|w| w.iter().filter(|c| **c).count() <= 1),
            "one compaction in any three updates: {compacted:?}"
        );
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            loaded.doc.to_json()
        );
    }

    #[test]
    fn what_is_relayed_is_what_the_room_took() {
        let ids = |part: &[u8]| {
            yrs::Update::decode_v1(part)
                .expect("a relayed part decodes")
                .insertions(true)
        };
        let (writer, text, mut store, mut loaded) = writer_and_room();
        // Another member, which applies what is relayed to it.
        let member = Doc::new();
        let mut relayed = |u: &[u8]| {
            let relay = accept(&mut loaded, &mut store, rules(policy(1_000)), u, 0)
                .expect("accepted")
                .relay;
            for part in &relay {
                member
                    .transact_mut()
                    .apply_update(yrs::Update::decode_v1(part).expect("decodes"))
                    .expect("applies");
            }
            relay
        };
        // A reconnect's sync step 2 repeats its whole delete set: only what is new in it is relayed.
        relayed(&edit_of(&writer, &|txn| {
            text.insert(txn, 0, &"x".repeat(200))
        }));
        for i in 0..50 {
            relayed(&edit_of(&writer, &|txn| text.remove_range(txn, i, 1)));
        }
        let room_state = writer.transact().state_vector();
        edit_of(&writer, &|txn| text.insert(txn, 0, "new"));
        let reconnect = writer.transact().encode_state_as_update_v1(&room_state);
        let relay = relayed(&reconnect);
        assert_eq!(relay.len(), 1);
        assert!(
            relay[0].len() < reconnect.len() / 4,
            "{} of {} bytes relayed",
            relay[0].len(),
            reconnect.len()
        );
        let shown = |doc: &Doc| doc.get_or_insert_text("text").get_string(&doc.transact());
        assert_eq!(shown(&member), shown(&writer));
        // What waits is not relayed; past the bound on waiting updates, the part that would wait is not kept.
        for client in 0..MAX_WAITING as u64 {
            let relay = relayed(&orphan(100 + client));
            assert!(relay.is_empty(), "an orphan waits, unrelayed");
        }
        let more = edit_of(&writer, &|txn| text.insert(txn, 0, "more"));
        let bundled =
            yrs::merge_updates_v1([more.as_slice(), orphan(1_000).as_slice()]).expect("merges");
        let relay = relayed(&bundled);
        assert!(!relay.is_empty(), "what continues is relayed");
        let clients: Vec<u64> = relay
            .iter()
            .flat_map(|part| {
                ids(part)
                    .iter()
                    .map(|(client, _)| client.get())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(clients.contains(&9), "the writer's edit: {clients:?}");
        assert!(
            !clients.contains(&1_000),
            "not the dropped part: {clients:?}"
        );
    }

    #[test]
    fn a_waiting_chain_refused_when_it_continues_never_reaches_the_members() {
        // Sent before its first level, a chain past the nesting limit waits; relayed then, members would hold it,
        // integrate it when the first level came, and be refused on every reconnect once the room dropped it.
        let (_, updates, _) = nested_maps(200);
        let rest = yrs::merge_updates_v1(updates[1..].iter().map(Vec::as_slice)).expect("merges");
        let (_, _, mut store, mut loaded) = writer_and_room();
        let waits = accept_relaying(&mut loaded, &mut store, &rest);
        assert_eq!(waits.accepted, Accepted::Stored { compacted: false });
        assert!(waits.relay.is_empty(), "what waits is not relayed");
        assert!(loaded
            .doc
            .diff(&[0])
            .expect("diff")
            .iter()
            .all(|p| p != &rest));
        let first = accept_relaying(&mut loaded, &mut store, &updates[0]);
        assert_eq!(
            first.relay.len(),
            1,
            "the first level alone: {:?}",
            first.relay.len()
        );
        assert_eq!(
            map_depth(&loaded.doc),
            1,
            "the chain was refused when it continued"
        );
        assert_eq!(map_depth(&load(&mut store, 0).expect("reloads").doc), 1);
    }

    /// [`accept`] in a room whose waiting updates are kept `ttl` ms (and compacted after 1,000 entries).
    fn accept_under_ttl(
        loaded: &mut Loaded,
        store: &mut MemoryStore,
        ttl: u64,
        u: &[u8],
        now: u64,
    ) -> Result<Outcome, AcceptError> {
        let rules = Rules {
            waiting_ttl_ms: ttl,
            ..rules(policy(1_000))
        };
        accept(loaded, store, rules, u, now)
    }

    #[test]
    fn what_waits_past_its_ttl_is_dropped_and_what_it_let_continue_is_kept() {
        const TTL: u64 = 1_000;
        let at = |loaded: &mut Loaded, store: &mut MemoryStore, u: &[u8], now: u64| {
            accept_under_ttl(loaded, store, TTL, u, now).map(|o| o.accepted)
        };
        let (_, _, mut store, mut loaded) = writer_and_room();
        let runs = typed_runs(4);
        let stored = Ok(Accepted::Stored { compacted: false });
        // At 0 an orphan that never continues and the writer's third run; at 500 another orphan.
        assert_eq!(at(&mut loaded, &mut store, &orphan(100), 0), stored);
        assert_eq!(at(&mut loaded, &mut store, &runs[2], 0), stored);
        assert_eq!(at(&mut loaded, &mut store, &orphan(101), 500), stored);
        // The first two runs arrive at 10: the third continues from them, and is integrated.
        at(&mut loaded, &mut store, &runs[0], 10).expect("taken");
        at(&mut loaded, &mut store, &runs[1], 10).expect("taken");
        assert_eq!(loaded.doc.to_json()["text"], "abcde".repeat(3));
        assert_eq!(loaded.doc.oldest_waiting(), Some(0));
        // Past the first orphan's TTL, the next update drops it (a compaction) and keeps the rest.
        assert_eq!(
            at(&mut loaded, &mut store, &runs[3], 1_001),
            Ok(Accepted::Stored { compacted: false })
        );
        assert_eq!(loaded.doc.oldest_waiting(), Some(500));
        assert_eq!(
            store.stored.waiting,
            [(orphan(101), 500)],
            "in storage too, with when it came"
        );
        let reloaded = load(&mut store, 1_001).expect("reloads");
        assert_eq!(
            reloaded.doc.to_json()["text"],
            "abcde".repeat(4),
            "nothing taken was lost"
        );
        assert_eq!(
            reloaded.doc.oldest_waiting(),
            Some(500),
            "a reload keeps when it came"
        );
        assert_eq!(reloaded.doc.snapshot().waiting.len(), 1);
        // A newcomer is no longer sent what expired.
        assert_eq!(loaded.doc.snapshot().waiting.len(), 1, "one update waits");
        // Past the second one's TTL, from a reload (its arrival was stored), it goes too.
        let mut loaded = reloaded;
        let delete: &[u8] = &[0, 1, 9, 1, 0, 1];
        at(&mut loaded, &mut store, delete, 1_501).expect("taken");
        assert_eq!(loaded.doc.oldest_waiting(), None);
        assert!(store.stored.waiting.is_empty());
        let reloaded = load(&mut store, 1_501).expect("reloads");
        assert_eq!(reloaded.doc.to_json(), loaded.doc.to_json());
        assert_eq!(reloaded.doc.snapshot().waiting.len(), 0);
    }

    /// An update of no structs deleting clock 0 of each of the `n` clients from `first` on: ids nobody has.
    fn deletions_of_unknown_ids(first: u64, n: u64) -> Vec<u8> {
        let ranges: Vec<_> = (first..first + n).map(|client| (client, 0, 1)).collect();
        deletions_of(&ranges)
    }

    /// An update of no structs deleting, for each `(client, clock, len)`, that client's clocks `clock..clock + len`
    /// (one range per client, each client listed once).
    fn deletions_of(ranges: &[(u64, u32, u32)]) -> Vec<u8> {
        use yrs::encoding::write::Write;
        let mut update = vec![0];
        update.write_var(ranges.len() as u64);
        for &(client, clock, len) in ranges {
            update.write_var(client);
            update.write_var(1u32);
            update.write_var(clock);
            update.write_var(len);
        }
        update
    }

    #[test]
    fn deletions_of_ids_nobody_has_wait_no_longer_than_the_ttl_so_a_room_they_filled_takes_edits_again(
    ) {
        // yrs keeps a deletion of an id it lacks pending, for good: a member sending them filled a room to its
        // size limit in 55 messages, after which it refused every insert (1009), however long anyone waited. They
        // now wait as out-of-order structs do, and go with the TTL — also across a reload.
        const TTL: u64 = 1_000;
        const LIMIT: u64 = 64 * 1024;
        let at = |loaded: &mut Loaded, store: &mut MemoryStore, u: &[u8], now: u64| {
            let rules = Rules {
                compaction: policy(1_000),
                max_document_bytes: LIMIT,
                waiting_ttl_ms: TTL,
            };
            accept(loaded, store, rules, u, now).map(|o| o.accepted)
        };
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("an empty room loads");
        let mut sent = 0;
        let refused = loop {
            let u = deletions_of_unknown_ids(1_000_000 + sent * 200, 200);
            match at(&mut loaded, &mut store, &u, 0) {
                Ok(Accepted::Stored { .. }) => sent += 1,
                other => break other,
            }
            assert!(sent < 1_000, "the limit never applied");
        };
        assert_eq!(refused, Err(AcceptError::DocumentFull { limit: LIMIT }));
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let edit = edit_of(&doc, &|txn| text.insert(txn, 0, &"y".repeat(1024)));
        assert_eq!(
            at(&mut loaded, &mut store, &edit, TTL - 1),
            Err(AcceptError::DocumentFull { limit: LIMIT }),
            "within the TTL they count"
        );
        // The object hibernates and is loaded again before the TTL has passed: when they came is kept.
        let mut loaded = load(&mut store, TTL - 1).expect("reloads");
        assert!(
            matches!(
                at(&mut loaded, &mut store, &edit, TTL + 1),
                Ok(Accepted::Stored { .. })
            ),
            "past the TTL they are dropped and the edit is taken"
        );
        let reloaded = load(&mut store, TTL + 1).expect("reloads");
        assert_eq!(reloaded.doc.to_json()["text"], "y".repeat(1024));
        assert_eq!(reloaded.doc.oldest_waiting(), None, "nothing waits");
        assert!(store.bytes() < 2 * 1024, "storage freed: {}", store.bytes());
        // A deletion of an unknown id that is only logged (no compaction since) keeps when it came across a reload.
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("an empty room loads");
        let u = deletions_of_unknown_ids(5, 1);
        assert_eq!(
            at(&mut loaded, &mut store, &u, 0),
            Ok(Accepted::Stored { compacted: false })
        );
        assert!(store.stored.snapshot.is_none(), "not folded");
        let reloaded = load(&mut store, TTL - 1).expect("reloads");
        assert_eq!(reloaded.doc.oldest_waiting(), Some(0), "its age is kept");
    }

    /// Client 5's document and first item, which the deletions of 5:0 wait for, and that item with a deletion of
    /// 7:0 (which no one has): the message that resolves one pending set and begins another.
    fn item_of_five() -> (Doc, yrs::TextRef, Vec<u8>, Vec<u8>) {
        let five = Doc::with_client_id(5);
        let text = five.get_or_insert_text("text");
        let item = edit_of(&five, &|txn| text.insert(txn, 0, "x"));
        let resolving_and_new =
            yrs::merge_updates_v1([item.as_slice(), &deletions_of_unknown_ids(7, 1)])
                .expect("merges");
        (five, text, item, resolving_and_new)
    }

    #[test]
    fn a_set_of_pending_deletions_is_dated_by_its_own_arrivals_live_and_after_a_reload() {
        // A pending set that resolved leaves its waiting row behind until the next compaction; replayed on a reload,
        // it dated a later set by the first set's arrival, and a set begun by the message that resolved the one
        // before took that one's age live: both expired before their TTL (and the live room and its reload differed).
        const TTL: u64 = 1_000;
        let offer_at = |loaded: &mut Loaded, store: &mut MemoryStore, u: &[u8], now: u64| {
            let outcome = accept_under_ttl(loaded, store, TTL, u, now).expect("taken");
            assert_eq!(outcome.accepted, Accepted::Stored { compacted: false });
        };
        let (_, _, item, resolving_and_new) = item_of_five();
        for (case, later) in [
            (
                "a set begun after the first resolved",
                vec![(item.clone(), 1), (deletions_of_unknown_ids(6, 1), 500)],
            ),
            (
                "a set begun by the message that resolved the first",
                vec![(resolving_and_new, 500)],
            ),
        ] {
            let (_, _, mut store, mut loaded) = writer_and_room();
            offer_at(&mut loaded, &mut store, &deletions_of_unknown_ids(5, 1), 0);
            for (u, now) in &later {
                offer_at(&mut loaded, &mut store, u, *now);
            }
            assert!(loaded.doc.has_pending_deletes(), "{case}: a set waits");
            assert_eq!(loaded.doc.oldest_waiting(), Some(500), "{case}: live");
            let mut reloaded = load(&mut store, 900).expect("reloads");
            assert_eq!(reloaded.doc.oldest_waiting(), Some(500), "{case}: reloaded");
            expire(&mut reloaded, &mut store, TTL, TTL + 1).expect("expires");
            assert!(
                reloaded.doc.has_pending_deletes(),
                "{case}: kept past the first set's TTL"
            );
            expire(&mut reloaded, &mut store, TTL, 500 + TTL + 1).expect("expires");
            assert!(
                !reloaded.doc.has_pending_deletes(),
                "{case}: gone past its own"
            );
        }
    }

    #[test]
    fn the_cached_pending_deletions_say_what_yrs_holds_live_across_reloads_and_expiry() {
        // The room answers "are deletions pending?" from when the oldest arrived, not by reading yrs on every
        // message: the two must agree after every message, on every reload and after every expiry — also for a
        // snapshot that holds deletions of ids it lacks (written by no build today; a reload must date them).
        const TTL: u64 = 1_000;
        let (five, text, _, resolving_and_new) = item_of_five();
        let messages = [
            (deletions_of_unknown_ids(5, 1), 0),
            (deletions_of_unknown_ids(6, 2), 10),
            (deletions_of_unknown_ids(6, 2), 20),
            (resolving_and_new, 30),
            (edit_of(&five, &|txn| text.insert(txn, 1, "y")), 40),
            (deletions_of_unknown_ids(9, 1), 2_000),
            (edit_of(&five, &|txn| text.insert(txn, 2, "z")), 3_500),
        ];
        let agree = |doc: &RoomDoc, step: &str| {
            assert!(doc.pending_deletes_cached_as_read(), "{step}");
        };
        let mut store = MemoryStore {
            stored: Stored {
                snapshot: Some(deletions_of_unknown_ids(3, 1)),
                log: Vec::new(),
                waiting: Vec::new(),
            },
        };
        let mut loaded = load(&mut store, 0).expect("loads");
        agree(
            &loaded.doc,
            "a snapshot holding deletions of ids it lacks, loaded",
        );
        for (i, (u, now)) in messages.iter().enumerate() {
            accept_under_ttl(&mut loaded, &mut store, TTL, u, *now).expect("taken");
            agree(&loaded.doc, &format!("message {i}, live"));
            agree(
                &load(&mut store, *now).expect("reloads").doc,
                &format!("message {i}, reloaded"),
            );
            // Expired on a copy of the room, which goes on with the next message.
            let mut aside = store.clone();
            let mut expired = load(&mut aside, *now).expect("reloads");
            expire(&mut expired, &mut aside, TTL, now + TTL + 1).expect("expires");
            agree(&expired.doc, &format!("message {i}, expired"));
            agree(
                &load(&mut aside, now + TTL + 1).expect("reloads").doc,
                &format!("message {i}, expired and reloaded"),
            );
        }
    }

    /// One step of [`the_cached_pending_deletions_say_what_yrs_holds_after_any_steps`].
    #[derive(Debug, Clone)]
    enum Step {
        /// One of the clients' updates (in any order, some again).
        Update(prop::sample::Index),
        /// A deletion of `client`'s clocks `at..at + len`: of clients 1 to 3 ids that may yet arrive (the deletion
        /// is then applied in part or whole by an update carrying no delete set), of client 40 ids that never do.
        Delete {
            client: u64,
            at: u32,
            len: u32,
        },
        /// Time passes (ms), past the TTL or not; the next update or expiry drops what waited too long.
        Wait(u64),
        /// Expiry, as a newcomer's arrival runs it.
        Expire,
        Compact,
        Reload,
        /// A row an earlier build stored that today's check refuses (an update with a byte after its delete set):
        /// replayed as it comes, yrs keeps pending what of it does not continue.
        LegacyRow(prop::sample::Index),
        /// A stored row that no longer decodes (skipped on load).
        BrokenRow,
        /// Rows an earlier build stored that yrs refuses part-way on load: an item whose parent 7:0 the room lacks,
        /// with a byte after its delete set (yrs keeps it pending), then 7:0, a string — yrs integrates it, retries
        /// the pending item, refuses it (its parent is no type) and has forgotten its pending deletions by then.
        RefusedRows,
        /// A snapshot of an earlier build holding a deletion of ids it lacks.
        LegacySnapshot {
            client: u64,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        let client = prop_oneof![1..=3u64, Just(40u64)];
        prop_oneof![
            4 => any::<prop::sample::Index>().prop_map(Step::Update),
            3 => (client.clone(), 0..6u32, 1..4u32)
                .prop_map(|(client, at, len)| Step::Delete { client, at, len }),
            2 => (0..150u64).prop_map(Step::Wait),
            1 => Just(Step::Expire),
            1 => Just(Step::Compact),
            1 => Just(Step::Reload),
            1 => any::<prop::sample::Index>().prop_map(Step::LegacyRow),
            1 => Just(Step::BrokenRow),
            1 => Just(Step::RefusedRows),
            1 => client.prop_map(|client| Step::LegacySnapshot { client }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(std::env::var("ROOM_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96)))]

        #[test]
        fn the_cached_pending_deletions_say_what_yrs_holds_after_any_steps(
            edits in prop::collection::vec(edit(), 1..25),
            steps in prop::collection::vec(step(), 1..40),
        ) {
            // `pending_deletes_since` answers "are deletions pending?" for every message instead of yrs: after every
            // step — updates out of order, deletions resolved by inserts, expiry, compaction, reloads, rows stored
            // by earlier builds, rows that no longer decode — it must say what a read of yrs says, live and reloaded.
            const TTL: u64 = 100;
            let updates = client_updates(&edits);
            let mut store = MemoryStore::default();
            let mut loaded = load(&mut store, 0).expect("empty store loads");
            let mut now = 0;
            let reload = |store: &mut MemoryStore, now| {
                load(store, now).map_err(|e| TestCaseError::fail(format!("does not load: {e:?}")))
            };
            for (i, step) in steps.iter().enumerate() {
                let taken = match step {
                    Step::Update(_) if updates.is_empty() => Ok(()),
                    Step::Update(which) => accept_under_ttl(&mut loaded, &mut store, TTL, &updates[which.index(updates.len())], now).map(drop),
                    Step::Delete { client, at, len } => {
                        accept_under_ttl(&mut loaded, &mut store, TTL, &deletions_of(&[(*client, *at, *len)]), now).map(drop)
                    }
                    Step::Wait(ms) => {
                        now += ms;
                        Ok(())
                    }
                    Step::Expire => expire(&mut loaded, &mut store, TTL, now),
                    Step::Compact => compact(&mut loaded, &mut store),
                    Step::Reload => {
                        loaded = reload(&mut store, now)?;
                        Ok(())
                    }
                    Step::LegacyRow(_) if updates.is_empty() => Ok(()),
                    Step::LegacyRow(which) => {
                        let mut row = updates[which.index(updates.len())].clone();
                        row.push(0);
                        store.stored.log.push(row);
                        loaded = reload(&mut store, now)?;
                        Ok(())
                    }
                    Step::BrokenRow => {
                        store.stored.log.push(vec![0xff, 0xff, 0xff]);
                        loaded = reload(&mut store, now)?;
                        Ok(())
                    }
                    Step::RefusedRows => {
                        store.stored.log.push(vec![1, 1, 7, 1, 4, 0, 7, 0, 1, b'k', 0, 0]);
                        store.stored.log.push(vec![1, 1, 7, 0, 4, 1, 1, b't', 1, b'l', 0]);
                        loaded = reload(&mut store, now)?;
                        Ok(())
                    }
                    Step::LegacySnapshot { client } => {
                        compact(&mut loaded, &mut store).expect("compacts");
                        let doc = store.stored.snapshot.take().unwrap_or_else(|| vec![0, 0]);
                        let with = yrs::merge_updates_v1([doc.as_slice(), &deletions_of(&[(*client, 9, 1)])])
                            .expect("merges");
                        store.stored.snapshot = Some(with);
                        loaded = reload(&mut store, now)?;
                        Ok(())
                    }
                };
                prop_assert!(!matches!(taken, Err(AcceptError::Store(_))), "step {} {:?}: {:?}", i, step, taken);
                prop_assert!(loaded.doc.pending_deletes_cached_as_read(), "step {} {:?}: live", i, step);
                let reloaded = reload(&mut store, now)?;
                prop_assert!(reloaded.doc.pending_deletes_cached_as_read(), "step {} {:?}: reloaded", i, step);
            }
        }
    }

    #[test]
    fn an_echo_of_structs_yrs_keeps_pending_waits_once_per_ttl() {
        // Structs yrs keeps pending come only from a stored row today's check refuses (here a byte after its delete
        // set): an item whose parent 7:0 the room lacks. A newcomer is sent them, and its Yjs echoes them in each
        // sync step 2: the order check holds the echo back as waiting (relayed to no one), once per TTL.
        const TTL: u64 = 100;
        let mut store = MemoryStore::default();
        store
            .stored
            .log
            .push(vec![1, 1, 7, 1, 4, 0, 7, 0, 1, b'k', 0, 0]);
        let mut loaded = load(&mut store, 0).expect("loads");
        let sent = loaded.doc.diff(&[0]).expect("a newcomer's reply");
        assert_eq!(sent.len(), 2, "the document, then the pending structs");
        let stored = Accepted::Stored { compacted: false };
        // When each echo arrives, what it comes to, and when the waiting row it leaves arrived.
        for (now, accepted, since) in [
            (0, stored, 0),
            (10, Accepted::Empty, 0),
            (TTL + 1, stored, TTL + 1),
        ] {
            let outcome =
                accept_under_ttl(&mut loaded, &mut store, TTL, &sent[1], now).expect("taken");
            assert_eq!(outcome.accepted, accepted, "echo at {now}");
            assert!(outcome.relay.is_empty(), "echo at {now}: relayed to no one");
            assert_eq!(
                store.stored.waiting,
                [(sent[1].clone(), since)],
                "echo at {now}"
            );
        }
    }

    #[test]
    fn deletions_of_ids_the_room_lacks_reach_no_member_until_their_ids_arrive() {
        // Members keep a deletion they cannot apply pending, as Yjs does, and send it back in every sync step 2: a
        // member's deletions of made-up ids, relayed or sent to newcomers, made every later step 2 of theirs larger
        // than the message cap (closed 1009 on each reconnect), and brought the set back after the room dropped it.
        let (_, _, mut store, mut loaded) = writer_and_room();
        let member = Doc::new();
        let take = |doc: &Doc, parts: &[Vec<u8>]| {
            let mut txn = doc.transact_mut();
            for part in parts {
                txn.apply_update(yrs::Update::decode_v1(part).expect("decodes"))
                    .expect("applies");
            }
        };
        let five = Doc::with_client_id(5);
        let text = five.get_or_insert_text("text");
        let item = edit_of(&five, &|txn| text.insert(txn, 0, "x"));
        let other = Doc::with_client_id(6);
        let kept = other.get_or_insert_text("text");
        let edit = edit_of(&other, &|txn| kept.insert(txn, 0, "yz"));
        let unz = edit_of(&other, &|txn| kept.remove_range(txn, 1, 1));
        // A deletion of 5:0 with an edit the room can take and a deletion of its z: the edit and the deletion the
        // room applied are relayed, the deletion of 5:0 is not.
        let both = yrs::merge_updates_v1([edit.as_slice(), &unz, &deletions_of_unknown_ids(5, 1)])
            .expect("merges");
        let outcome =
            accept(&mut loaded, &mut store, rules(policy(1_000)), &both, 0).expect("taken");
        take(&member, &outcome.relay);
        take(&member, &outcome.released);
        let newcomer = Doc::new();
        take(&newcomer, &loaded.doc.diff(&[0]).expect("diff"));
        // Read with no transaction held: a text is got through a write transaction.
        let seen = |doc: &Doc| {
            let text = doc.get_or_insert_text("text");
            let txn = doc.transact();
            (text.get_string(&txn), txn.store().pending_ds().is_some())
        };
        for (who, doc) in [("member", &member), ("newcomer", &newcomer)] {
            assert_eq!(
                seen(doc),
                ("y".into(), false),
                "{who}: the edit, no deletion pending"
            );
        }
        // 5:0 arrives: the room deletes it, and every member is told.
        let outcome =
            accept(&mut loaded, &mut store, rules(policy(1_000)), &item, 1).expect("taken");
        for doc in [&member, &newcomer] {
            take(doc, &outcome.relay);
            take(doc, &outcome.released);
            assert_eq!(seen(doc), ("y".into(), false));
        }
        assert_eq!(loaded.doc.to_json()["text"], "y");
    }

    #[test]
    fn the_part_of_a_waiting_update_left_waiting_keeps_when_it_came() {
        let (_, _, mut store, mut loaded) = writer_and_room();
        let runs = typed_runs(4);
        let gapped =
            yrs::merge_updates_v1([runs[1].as_slice(), runs[3].as_slice()]).expect("merges");
        let offer_at = |loaded: &mut Loaded, store: &mut MemoryStore, u: &[u8], now: u64| {
            accept(loaded, store, rules(policy(1_000)), u, now).expect("taken")
        };
        offer_at(&mut loaded, &mut store, &gapped, 100);
        offer_at(&mut loaded, &mut store, &runs[0], 200);
        assert_eq!(loaded.doc.to_json()["text"], "abcde".repeat(2));
        assert_eq!(
            loaded.doc.oldest_waiting(),
            Some(100),
            "the rest came at 100"
        );
        assert_eq!(
            load(&mut store, 300).expect("reloads").doc.oldest_waiting(),
            Some(100)
        );
    }

    #[test]
    fn a_reconnect_echoing_what_waits_is_not_weighed_by_it() {
        // What waits is sent to every newcomer, which keeps it pending and sends it back in each sync step 2: in a
        // room at its limit that echo adds nothing, and must not be refused.
        let (_, _, mut store, mut loaded) = writer_and_room();
        let long = Doc::with_client_id(77);
        let t = long.get_or_insert_text("other");
        edit_of(&long, &|txn| t.insert(txn, 0, "x"));
        let waits = edit_of(&long, &|txn| t.insert(txn, 1, &"y".repeat(2_000)));
        assert!(matches!(
            offer(&mut loaded, &mut store, &waits),
            Ok(Accepted::Stored { .. })
        ));
        let limit = store.bytes() + 64;
        assert_eq!(
            accept_update(&mut loaded, &mut store, policy(1_000), limit, &waits),
            Ok(Accepted::Empty)
        );
    }

    #[test]
    fn adjacent_pending_deletions_are_each_stored() {
        // Two deletions of what the room never had, next to each other: they merge into one pending range, whose
        // count does not change — the second must still be stored, or storage would miss it.
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        for clock in [0, 1] {
            let outcome = accept_update(
                &mut loaded,
                &mut store,
                policy(1_000),
                u64::MAX,
                &[0, 1, 99, 1, clock, 1],
            );
            assert!(
                matches!(outcome, Ok(Accepted::Stored { .. })),
                "clock {clock}: {outcome:?}"
            );
        }
        // Both are logged; the first, which began the pending set, is also kept with when it came.
        assert_eq!(store.stored.log.len(), 2);
        assert_eq!(store.stored.waiting.len(), 1);
        let reloaded = load(&mut store, 0).expect("reloads");
        assert_eq!(
            reloaded.doc.snapshot(),
            loaded.doc.snapshot(),
            "both deletions are kept"
        );
    }

    #[test]
    fn a_deleted_range_of_no_length_is_refused_and_splits_nothing_in_the_rooms_memory() {
        // A range of no length deletes nothing, so the room stored and relayed nothing for it — but yrs (as Yjs)
        // splits the item it falls inside, and inside a surrogate pair each half becomes U+FFFD: the room's memory
        // (its `/state`, its next snapshot, every newcomer's sync) read "\u{FFFD}\u{FFFD}" where storage and every
        // member held the emoji, under equal state vectors.
        let (doc, text, mut store, mut loaded) = writer_and_room();
        let emoji = edit_of(&doc, &|txn| text.insert(txn, 0, "😀"));
        accept_relaying(&mut loaded, &mut store, &emoji);
        for (what, clock) in [("inside the surrogate pair", 1), ("at the item's start", 0)] {
            let outcome = accept_update(
                &mut loaded,
                &mut store,
                policy(1_000),
                u64::MAX,
                &deletions_of(&[(9, clock, 0)]),
            );
            assert!(
                matches!(outcome, Err(AcceptError::Invalid(_))),
                "{what}: {outcome:?}"
            );
        }
        let reloaded = load(&mut store, 0).expect("reloads");
        assert_eq!(loaded.doc.to_json(), serde_json::json!({"text": "😀"}));
        assert_eq!(reloaded.doc.to_json(), loaded.doc.to_json());
        assert_eq!(reloaded.doc.snapshot(), loaded.doc.snapshot());
    }

    #[test]
    fn a_restatement_whose_new_part_would_sit_between_one_id_and_itself_is_refused() {
        // The room has client 9's "abc" (9#0..3). A struct restating 9#1 as "xyz" and naming 9#2 as its right origin
        // is cut by yrs at the room's clock: its new part, "z" at 9#3, takes 9#2 as its origin — between one id and
        // itself, which the shape check refuses when declared. Taken, the room relayed that very item, read "abzc"
        // live and "abcz" once compacted and reloaded.
        let (doc, text, mut store, mut loaded) = writer_and_room();
        let abc = edit_of(&doc, &|txn| text.insert(txn, 0, "abc"));
        accept_relaying(&mut loaded, &mut store, &abc);
        let crafted = [1, 1, 9, 1, 0x44, 9, 2, 3, b'x', b'y', b'z', 0];
        let outcome = accept_update(&mut loaded, &mut store, policy(1), u64::MAX, &crafted);
        assert!(
            matches!(outcome, Err(AcceptError::Invalid(_))),
            "{outcome:?}"
        );
        let reloaded = load(&mut store, 0).expect("reloads");
        assert_eq!(loaded.doc.to_json(), serde_json::json!({"text": "abc"}));
        assert_eq!(reloaded.doc.to_json(), loaded.doc.to_json());
        // An honest restatement cut at the same place is taken: the writer's whole state, "abcd" merged in one item
        // naming no right origin (a peer relaying it, or a reconnect with a stale state vector, sends it so).
        edit_of(&doc, &|txn| text.insert(txn, 3, "d"));
        let whole = doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        assert!(
            shape::check_update(&whole).is_ok_and(|s| s.structs == 1),
            "one merged item"
        );
        accept_relaying(&mut loaded, &mut store, &whole);
        assert_eq!(loaded.doc.to_json(), serde_json::json!({"text": "abcd"}));
    }

    #[test]
    fn deleting_every_other_character_is_weighed_by_the_items_it_splits() {
        // One long item, then one update deleting every other character: it splits the item into thousands, which
        // grows the snapshot about five times the update's size. Its allowance for splits is over the limit, so the
        // room folds the document to measure it: taken where that fits, refused where it does not.
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let insert = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, &"y".repeat(4_000));
            txn.encode_update_v1()
        };
        let sieve = {
            let mut txn = doc.transact_mut();
            for i in 0..2_000 {
                text.remove_range(&mut txn, i, 1);
            }
            txn.encode_update_v1()
        };
        let folded = |loaded: &Loaded| -> u64 {
            loaded
                .doc
                .snapshot()
                .parts()
                .iter()
                .map(|p| p.len() as u64)
                .sum()
        };
        let room = |limit| {
            let mut store = MemoryStore::default();
            let mut loaded = load(&mut store, 0).expect("loads");
            assert!(accept_update(&mut loaded, &mut store, policy(1_000), limit, &insert).is_ok());
            let outcome = accept_update(&mut loaded, &mut store, policy(1_000), limit, &sieve);
            (outcome, folded(&loaded))
        };
        let limit: u64 = 64 * 1024;
        let (outcome, whole) = room(limit);
        assert!(
            matches!(outcome, Ok(Accepted::Stored { .. })),
            "its allowance is over the limit, its folded room is not: {outcome:?}"
        );
        assert!(
            (sieve.len() as u64 + 2_000 * SPLIT_BYTES) > limit,
            "the allowance alone would refuse it"
        );
        assert!(whole <= limit, "the room stays within its limit: {whole}");
        // A limit whose margin for deletions (1/64) ends just below the folded room.
        let tight = (whole - 1) * DELETE_MARGIN / (DELETE_MARGIN + 1);
        let (outcome, kept) = room(tight);
        assert_eq!(outcome, Err(AcceptError::DocumentFull { limit: tight }));
        assert!(kept <= tight, "the room stays within its limit: {kept}");
    }

    #[test]
    fn a_room_stops_growing_at_its_size_limit_and_deleting_content_makes_room_again() {
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        let policy = CompactionPolicy {
            max_entries: 1_000,
            max_bytes: 1 << 20,
        };
        const LIMIT: u64 = 8 * 1024;
        let chunk = "y".repeat(1024);
        let mut accepted = 0;
        let refused = loop {
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len, &chunk);
            let u = txn.encode_update_v1();
            drop(txn);
            match accept_update(&mut loaded, &mut store, policy, LIMIT, &u) {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted < 100, "the limit never applied");
        };
        assert_eq!(refused, AcceptError::DocumentFull { limit: LIMIT });
        assert_eq!(accepted, 7, "about 1 KiB each under an 8 KiB limit");
        let stored = store.bytes();
        assert!(stored <= LIMIT, "storage stays within the limit: {stored}");
        let live = loaded
            .doc
            .diff(&StateVector::default().encode_v1_helper())
            .expect("diff");
        let rebuilt = load(&mut store, 0).expect("rebuilds").doc;
        assert_eq!(
            rebuilt
                .diff(&StateVector::default().encode_v1_helper())
                .expect("diff"),
            live,
            "the refused update was neither applied nor stored"
        );

        // The writer's own copy holds the refused chunk too; it deletes everything, which the room accepts (the
        // deletion is small) and, compacted, frees the space.
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        text.remove_range(&mut txn, 0, len);
        let u = txn.encode_update_v1();
        drop(txn);
        assert!(
            accept_update(&mut loaded, &mut store, policy, LIMIT, &u).is_ok(),
            "a deletion fits"
        );
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, &chunk);
        let u = txn.encode_update_v1();
        drop(txn);
        assert!(
            accept_update(&mut loaded, &mut store, policy, LIMIT, &u).is_ok(),
            "after a compaction drops the deleted text, new text fits again"
        );
    }

    #[test]
    fn an_edit_that_replaces_more_than_it_inserts_is_taken_in_a_full_room() {
        // Typing over a selection (or pasting over it) is one transaction: a deletion and an insertion. In a room at
        // its limit it frees more than it adds, so it fits; refused, its sender's every reconnect repeated it (its
        // sync step 2) and was closed 1009 again.
        let (doc, text, mut store, mut loaded) = writer_and_room();
        let policy = CompactionPolicy {
            max_entries: 1_000,
            max_bytes: 1 << 20,
        };
        const LIMIT: u64 = 8 * 1024;
        let chunk = "y".repeat(1024);
        loop {
            let u = edit_of(&doc, &|txn| {
                let len = text.len(txn);
                text.insert(txn, len, &chunk);
            });
            if accept_update(&mut loaded, &mut store, policy, LIMIT, &u).is_err() {
                break;
            }
        }
        // The writer's copy holds the refused chunk: start over from the room's document.
        let doc = Doc::with_client_id(10);
        let text = doc.get_or_insert_text("text");
        let full = StateVector::default().encode_v1_helper();
        let update =
            yrs::Update::decode_v1(&loaded.doc.diff(&full).expect("diff")[0]).expect("decodes");
        doc.transact_mut().apply_update(update).expect("applies");
        let before = text.get_string(&doc.transact());
        let u = edit_of(&doc, &|txn| {
            text.remove_range(txn, 0, 3 * 1024);
            text.insert(txn, 0, &"z".repeat(1024));
        });
        assert!(
            matches!(
                accept_update(&mut loaded, &mut store, policy, LIMIT, &u),
                Ok(Accepted::Stored { .. })
            ),
            "a replacement freeing more than it adds is taken"
        );
        assert!(
            store.bytes() <= LIMIT,
            "the room stays within its limit: {}",
            store.bytes()
        );
        let rebuilt = load(&mut store, 0).expect("rebuilds");
        assert_eq!(
            rebuilt.doc.to_json()["text"].as_str().map(str::len),
            Some(before.len() - 2 * 1024),
            "stored as taken"
        );
    }

    #[test]
    fn a_room_over_a_lowered_limit_can_still_be_emptied() {
        // A room filled under one ROOMS_MAX_DOCUMENT_BYTES, then read under a lower one (the operator lowered it):
        // deleting what it holds must be taken, or the room refuses every update for good.
        let (doc, text, mut store, mut loaded) = writer_and_room();
        let policy = CompactionPolicy {
            max_entries: 1_000,
            max_bytes: 1 << 20,
        };
        let chunk = "y".repeat(1024);
        for _ in 0..32 {
            let u = edit_of(&doc, &|txn| {
                let len = text.len(txn);
                text.insert(txn, len, &chunk);
            });
            accept_update(&mut loaded, &mut store, policy, 1 << 20, &u).expect("fits 1 MiB");
        }
        const LOWERED: u64 = 8 * 1024;
        assert!(
            store.bytes() > LOWERED,
            "the room is past the lowered limit"
        );
        // Reloaded under the lowered limit, as a new instance with the new settings would.
        let mut loaded = load(&mut store, 0).expect("loads");
        // Half of it first (a member deleting a part at a time): taken, the room smaller though still past it.
        let before = store.bytes();
        let u = edit_of(&doc, &|txn| text.remove_range(txn, 0, 16 * 1024));
        assert_eq!(
            accept_update(&mut loaded, &mut store, policy, LOWERED, &u),
            Ok(Accepted::Stored { compacted: true }),
            "deleting half of it is taken"
        );
        assert!(
            store.bytes() < before,
            "and shrinks the room: {} -> {}",
            before,
            store.bytes()
        );
        let u = edit_of(&doc, &|txn| {
            let len = text.len(txn);
            text.remove_range(txn, 0, len);
        });
        assert_eq!(
            accept_update(&mut loaded, &mut store, policy, LOWERED, &u),
            Ok(Accepted::Stored { compacted: true }),
            "deleting everything empties the room"
        );
        assert!(
            store.bytes() <= LOWERED,
            "and brings it within the limit: {}",
            store.bytes()
        );
        assert_eq!(
            content(&load(&mut store, 0).expect("rebuilds").doc),
            serde_json::json!({})
        );
        let u = edit_of(&doc, &|txn| text.insert(txn, 0, "again"));
        assert!(
            accept_update(&mut loaded, &mut store, policy, LOWERED, &u).is_ok(),
            "and it takes edits again"
        );
    }

    #[test]
    fn the_log_compacts_past_the_count_or_size_threshold() {
        let doc = Doc::with_client_id(9);
        let text = doc.get_or_insert_text("text");
        let mut store = MemoryStore::default();
        let mut loaded = load(&mut store, 0).expect("loads");
        let policy = CompactionPolicy {
            max_entries: 3,
            max_bytes: 1 << 20,
        };
        let mut compactions = Vec::new();
        for i in 0..7 {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, i, "x");
            let u = txn.encode_update_v1();
            drop(txn);
            match accept_update(&mut loaded, &mut store, policy, u64::MAX, &u).expect("accepted") {
                Accepted::Stored { compacted } => compactions.push(compacted),
                Accepted::Empty => panic!("update {i} was empty"),
            }
        }
        assert_eq!(
            compactions,
            [false, false, true, false, false, true, false],
            "every third update compacts"
        );
        assert_eq!(
            store.stored.log.len(),
            1,
            "one update logged since the last snapshot"
        );
        let rebuilt = load(&mut store, 0).expect("rebuilds").doc;
        let check = Doc::new();
        let t = check.get_or_insert_text("text");
        let u = yrs::Update::decode_v1(
            &rebuilt
                .diff(&StateVector::default().encode_v1_helper())
                .expect("diff")[0],
        )
        .expect("decodes");
        check.transact_mut().apply_update(u).expect("applies");
        assert_eq!(t.get_string(&check.transact()), "xxxxxxx", "rebuilt text");

        let by_size = CompactionPolicy {
            max_entries: 1000,
            max_bytes: 10,
        };
        assert!(
            by_size.due(LogStats {
                entries: 1,
                bytes: 10
            }),
            "size threshold"
        );
        assert!(
            !by_size.due(LogStats {
                entries: 1,
                bytes: 9
            }),
            "under both thresholds"
        );
    }

    /// An update setting key "k" of root map "meta" (client 1) to the lib0 value `value`, as Yjs writes one.
    fn meta_k_set_to(value: &[u8]) -> Vec<u8> {
        [
            &[1u8, 1, 1, 0, 40, 1, 4, b'm', b'e', b't', b'a', 1, b'k', 1][..],
            value,
            &[0],
        ]
        .concat()
    }

    #[test]
    fn a_bigint_the_room_would_store_as_a_number_is_refused_and_one_it_keeps_is_taken() {
        // Yjs writes a JavaScript BigInt as lib0 tag 122 and reads it back as a BigInt; yrs reads it as an integer and
        // writes that back as a number whenever one holds it. Taken, the relay and the snapshot said 1700000000000
        // where its sender has 1700000000000n: every other member and newcomer read a number (Yjs: typeof "number"),
        // the sender a BigInt, under equal state vectors, and /state read 1700000000000 before a restart and
        // 1700000000000.0 after. (Bytes as Yjs 13.6 writes `map.set("k", 1700000000000n)`.)
        let number_held = [&[122u8][..], &1_700_000_000_000i64.to_be_bytes()].concat();
        let cases: &[(&str, Vec<u8>)] = &[
            ("a BigInt a double holds", number_held.clone()),
            (
                "a small BigInt",
                [&[122u8][..], &5i64.to_be_bytes()].concat(),
            ),
            (
                "i64::MAX, read back as 2^63",
                [&[122u8][..], &i64::MAX.to_be_bytes()].concat(),
            ),
            (
                "one inside an array",
                [&[117u8, 1][..], &number_held].concat(),
            ),
            (
                "one inside an object",
                [&[118u8, 1, 1, b'n'][..], &number_held].concat(),
            ),
        ];
        for (what, value) in cases {
            let (_, _, mut store, mut loaded) = writer_and_room();
            let outcome = accept(
                &mut loaded,
                &mut store,
                rules(policy(1)),
                &meta_k_set_to(value),
                0,
            );
            assert!(
                matches!(&outcome, Err(AcceptError::Invalid(e)) if e.0.contains("BigInt")),
                "{what}: {outcome:?}"
            );
            assert_eq!(store.stored, Stored::default(), "{what}: nothing stored");
        }
        // 2^53 + 1 has no double: yrs writes it back as a BigInt, as it came.
        let kept = [&[122u8][..], &((1i64 << 53) + 1).to_be_bytes()].concat();
        let (_, _, mut store, mut loaded) = writer_and_room();
        let outcome = accept(
            &mut loaded,
            &mut store,
            rules(policy(1)),
            &meta_k_set_to(&kept),
            0,
        )
        .expect("taken");
        assert_eq!(outcome.relay, [meta_k_set_to(&kept)], "relayed as it came");
        assert_eq!(
            store.stored.snapshot,
            Some(meta_k_set_to(&kept)),
            "stored as it came"
        );
        assert_eq!(
            load(&mut store, 0).expect("reloads").doc.to_json(),
            serde_json::json!({ "meta": { "k": (1i64 << 53) + 1 } })
        );
    }

    /// A memory store whose writes fail where `fails` says (bit i: the i-th write, of any kind, modulo 64).
    struct Flaky {
        store: MemoryStore,
        fails: u64,
        writes: u32,
    }

    impl Flaky {
        fn fail_now(&mut self) -> bool {
            let i = self.writes % 64;
            self.writes += 1;
            self.fails & (1 << i) != 0
        }
    }

    impl UpdateStore for Flaky {
        fn load(&mut self) -> Result<Stored, String> {
            self.store.load()
        }
        fn append(&mut self, update: &[u8]) -> Result<(), String> {
            if self.fail_now() {
                return Err("SQLITE_FULL".into());
            }
            self.store.append(update)
        }
        fn append_waiting(&mut self, update: &[u8], since: u64) -> Result<(), String> {
            if self.fail_now() {
                return Err("SQLITE_FULL".into());
            }
            self.store.append_waiting(update, since)
        }
        fn compact(&mut self, snapshot: Snapshot) -> Result<(), String> {
            if self.fail_now() {
                return Err("SQLITE_FULL".into());
            }
            self.store.compact(snapshot)
        }
    }

    /// The yrs snapshot (state vector and delete set) of what a room document integrated.
    fn integrated(doc: &RoomDoc) -> yrs::Snapshot {
        let d = Doc::new();
        let whole = doc.diff(&[0]).expect("diff");
        d.transact_mut()
            .apply_update(yrs::Update::decode_v1(&whole[0]).expect("decodes"))
            .expect("applies");
        let snapshot = d.transact().snapshot();
        snapshot
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(std::env::var("ROOM_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96)))]

        #[test]
        fn what_members_were_sent_is_stored_whatever_write_fails(
            edits in prop::collection::vec(edit(), 1..30),
            order in any::<u64>(),
            compact_every in 1..6u64,
            fails in any::<u64>(),
            ttl in 1..20u64,
            limit in prop_oneof![Just(u64::MAX), 300..3000u64],
        ) {
            let updates = client_updates(&edits);
            let delivery = delivered(&updates, order);
            let mut store = Flaky { store: MemoryStore::default(), fails: fails & fails.rotate_left(17), writes: 0 };
            let mut loaded: Option<Loaded> = None;
            // A member that sent nothing: what it was sent.
            let observer = Doc::new();
            for (step, u) in delivery.into_iter().enumerate() {
                if loaded.is_none() {
                    loaded = Some(load(&mut store, 0).expect("loads"));
                }
                let room = loaded.as_mut().expect("loaded");
                let now = step as u64;
                let r = Rules { compaction: policy(compact_every), max_document_bytes: limit, waiting_ttl_ms: ttl };
                match accept(room, &mut store, r, u, now) {
                    Ok(outcome) => {
                        for part in outcome.relay.iter().chain(&outcome.released) {
                            observer.transact_mut()
                                .apply_update(yrs::Update::decode_v1(part).expect("decodes"))
                                .expect("applies");
                        }
                        if outcome.not_compacted.is_some() {
                            loaded = None;
                        }
                    }
                    Err(AcceptError::Store(_)) => loaded = None,
                    Err(AcceptError::DocumentFull { .. }) => {}
                    Err(e) => prop_assert!(false, "step {step}: {e:?}"),
                }
                let stored = load(&mut store.store, now).expect("rebuilds");
                prop_assert_eq!(stored.skipped, 0, "step {}: stored updates skipped", step);
                if let Some(room) = &loaded {
                    prop_assert_eq!(content(&stored.doc), content(&room.doc), "step {}: storage and memory differ", step);
                    let sv = |d: &RoomDoc| StateVector::decode_v1(&d.state_vector()).expect("decodes");
                    prop_assert_eq!(sv(&stored.doc), sv(&room.doc), "step {}: state vectors differ", step);
                }
                let kept = integrated(&stored.doc);
                let seen = observer.transact().snapshot();
                for (client, clock) in seen.state_map.iter() {
                    prop_assert!(kept.state_map.get(client) >= *clock,
                        "step {}: a member was sent {:?} up to {} the store holds to {}", step, client, clock, kept.state_map.get(client));
                }
                prop_assert!(seen.delete_set.diff(&kept.delete_set).is_empty(),
                    "step {}: a member was sent deletions the store lacks", step);
            }
        }
    }

    trait EncodeHelper {
        fn encode_v1_helper(&self) -> Vec<u8>;
    }
    impl EncodeHelper for StateVector {
        fn encode_v1_helper(&self) -> Vec<u8> {
            use yrs::updates::encoder::Encode;
            self.encode_v1()
        }
    }
}
