//! The room's `yrs` document: rebuilt from a snapshot plus the update log, fed validated updates, asked for the diff
//! a client lacks, encoded whole for compaction and rendered as JSON for consumers that do not speak Yjs.

use serde_json::{Map, Value};
use yrs::updates::decoder::Decode;
use yrs::{Any, Doc, GetString, IdSet, Out, ReadTxn, StateVector, Transact, Update};

use super::depth::{Depths, MAX_TYPE_DEPTH};
use super::order::{Needs, Split};
use super::shape::Shape;

/// At most this many updates wait in a room (see [`super::order`]): an honest room has a few at most, after a peer
/// relayed updates out of order; past it, what would wait is not kept (a member sending updates that can never
/// continue fills it, and must not stall everyone else's reconnects).
pub const MAX_WAITING: usize = 256;

/// A room's document. Pure: bytes in, bytes out.
pub struct RoomDoc {
    doc: Doc,
    /// Structs held back until the document has what they follow (see [`super::order`]), as updates of their own.
    waiting: Vec<Waiting>,
    /// Held-back updates that yrs refused once they were ready (and that were dropped).
    dropped: usize,
    /// How deep the items inside nested types sit (see [`super::depth`]).
    depths: Depths,
}

struct Waiting {
    bytes: Vec<u8>,
    needs: Needs,
    /// When it arrived (ms since the epoch): what waits too long is dropped (see [`RoomDoc::expire`]).
    since: u64,
}

/// The whole document as v1 updates (see [`RoomDoc::snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What the document integrated.
    pub doc: Vec<u8>,
    /// What yrs keeps pending: its structs, then its deletions.
    pub pending: Vec<Vec<u8>>,
    /// What waits (see [`super::order`]), each with when it arrived.
    pub waiting: Vec<(Vec<u8>, u64)>,
}

impl Snapshot {
    /// Every part, in the order that rebuilds the document.
    pub fn parts(self) -> Vec<Vec<u8>> {
        std::iter::once(self.doc)
            .chain(self.pending)
            .chain(self.waiting.into_iter().map(|(bytes, _)| bytes))
            .collect()
    }
}

/// An update or state vector that does not decode or apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError(pub String);

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What applying an update changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Something was inserted or deleted.
    pub integrated: bool,
    /// What the document keeps pending changed (or may have: see [`RoomDoc::apply`]).
    pub pending_changed: bool,
    /// Ranges this update newly deleted (each can split an item, growing the snapshot).
    pub deleted_ranges: usize,
    /// What the update changed, alone, as a v1 update: the structs it integrated and the ranges it newly deleted —
    /// for a reconnect's sync step 2 a small part of its bytes, which repeat the client's whole delete set. `None`
    /// when nothing was integrated, when anything of it went pending in yrs or when structs were integrated past a
    /// gap (then only the update's own bytes are sure to hold them).
    pub effect: Option<Vec<u8>>,
    /// The structs of the update that now wait for what they follow, as an update of their own (`None`: none, or
    /// only copies of what already waits).
    pub waits: Option<Vec<u8>>,
    /// When the update was cut: the part of it given to yrs (`None`: all of it, or none).
    pub given: Option<Vec<u8>>,
}

impl Applied {
    /// Whether the document holds anything it did not before.
    pub fn changed(&self) -> bool {
        self.integrated || self.pending_changed || self.waits.is_some()
    }

    /// What to log for it, `sent` being the update as it arrived: its effect and what now waits, or — when the
    /// effect does not hold all it integrated (something went pending in yrs, or past a gap) — what yrs was given
    /// (the update as sent, or the part of it that continued) and what now waits. Never a part the room did not
    /// keep, which a reload would otherwise bring back.
    pub fn to_log<'a>(&'a self, sent: &'a [u8]) -> Vec<&'a [u8]> {
        let head = if (self.integrated || self.pending_changed) && self.effect.is_none() {
            Some(self.given.as_deref().unwrap_or(sent))
        } else {
            self.effect.as_deref()
        };
        head.into_iter().chain(self.waits.as_deref()).collect()
    }
}

/// An update made ready to apply: cut into what continues from what the document has and what must wait.
pub struct Prepared {
    update: Update,
    /// What the update needs, when it goes to yrs whole (`None` too for a stored update today's check refuses).
    needs: Option<Needs>,
    split: Option<(Split, Option<Needs>)>,
    /// Bytes of its structs the room has neither integrated nor waiting (see [`Needs::news_bytes`]).
    pub news_bytes: usize,
}

/// What [`pending`] prints: the encoded state the pending structs wait for, the ids they cover and the ids pending
/// deletions cover (id sets are canonical: equal sets compare equal however their ranges arrived).
type PendingPrint = (Vec<u8>, IdSet, IdSet);

/// An exact print of the document's pending state (`None`: nothing pending, the usual case): the ids of the structs
/// kept waiting and of the deletions kept waiting. Exact, so an update whose structs or deletions are all pending
/// already (every connecting client's sync step 2 echoes a room's pending update back) is seen to change nothing,
/// and any new one is seen; taken around every update, it reads the pending structs' ids without encoding them.
fn pending(txn: &yrs::TransactionMut) -> Option<PendingPrint> {
    use yrs::updates::encoder::Encode;
    let store = txn.store();
    let update = store.pending_update();
    let deletes = store.pending_ds();
    if update.is_none() && deletes.is_none() {
        return None;
    }
    let (missing, structs) = update.map_or_else(Default::default, |p| {
        (p.missing.encode_v1(), p.update.insertions(true))
    });
    Some((missing, structs, deletes.cloned().unwrap_or_default()))
}

/// Whether the transaction integrated structs past a gap in their client's clocks. Unlike Yjs, which keeps such
/// structs pending, yrs integrates those that depend on nothing missing and marks the gap with a skip; the state
/// vector stops at the gap, and so does the transaction's own encoding (`encode_update_v1` writes each client from
/// its state), which then leaves those structs out.
fn inserted_past_a_gap(txn: &yrs::TransactionMut) -> bool {
    let state = txn.state_vector();
    txn.insert_set()
        .iter()
        .any(|(client, ranges)| ranges.iter().any(|r| r.end > state.get(client)))
}

/// A state vector as the order check reads it: a client's next clock.
fn clock_of(state: &StateVector) -> impl Fn(u64) -> u32 + Copy + '_ {
    |client| state.get(&yrs::ClientID::new(client))
}

/// A v1 update that decoded (and what its shape check counted); applying it may still be refused.
pub struct CheckedUpdate {
    update: Update,
    shape: Shape,
    /// What it needs to be integrated in Yjs' order; `None` for a stored update today's check refuses (applied as
    /// it comes).
    needs: Option<Needs>,
    bytes: Vec<u8>,
}

impl CheckedUpdate {
    /// Decodes a v1 update sent by a client, after its shape is checked (see [`super::shape`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DocError> {
        let (shape, needs) = super::shape::check_update_needs(bytes)
            .map_err(|e| DocError(format!("update does not decode: {}", e.0)))?;
        Update::decode_v1(bytes)
            .map(|update| CheckedUpdate {
                update,
                shape,
                needs: Some(needs),
                bytes: bytes.to_vec(),
            })
            .map_err(|e| DocError(format!("update does not decode: {e}")))
    }

    /// Decodes an update the room stored itself (a snapshot or a log entry): already checked when it arrived, under
    /// the rules of its day, so it is not refused by today's (a room must always load what it holds).
    pub fn decode_stored(bytes: &[u8]) -> Result<Self, DocError> {
        let (shape, needs) = match super::shape::check_update_needs(bytes) {
            Ok((shape, needs)) => (shape, Some(needs)),
            Err(_) => (Shape::default(), None),
        };
        Update::decode_v1(bytes)
            .map(|update| CheckedUpdate {
                update,
                shape,
                needs,
                bytes: bytes.to_vec(),
            })
            .map_err(|e| DocError(format!("stored update does not decode: {e}")))
    }

    /// True when the update carries no insertions and no deletions (e.g. an empty sync step 2).
    pub fn is_empty(&self) -> bool {
        self.update.is_empty()
    }

    /// True when the update inserts nothing: at most deletions, which cannot grow the document.
    pub fn only_deletes(&self) -> bool {
        self.shape.structs == 0
    }

    /// What the shape check counted (all zero for a stored update today's check refuses).
    pub fn shape(&self) -> Shape {
        self.shape
    }
}

impl Default for RoomDoc {
    fn default() -> Self {
        Self::new()
    }
}

impl RoomDoc {
    /// An empty document.
    pub fn new() -> Self {
        Self {
            doc: Doc::new(),
            waiting: Vec::new(),
            dropped: 0,
            depths: Depths::default(),
        }
    }

    /// The document a snapshot plus the updates logged after it describe, and how many logged updates did not apply
    /// (at once, or once they were ready).
    /// A snapshot that does not rebuild is an error (corruption); a logged update that no longer decodes or applies
    /// is skipped rather than making the whole room unloadable (the caller reports it): every entry was applied to
    /// the live document before it was stored, so this only happens if storage and memory ever disagreed.
    /// `waiting` are the stored waiting updates with when they arrived; what waits from the log counts from `now`.
    pub fn rebuild<'a>(
        snapshot: Option<&[u8]>,
        log: impl IntoIterator<Item = &'a [u8]>,
        waiting: impl IntoIterator<Item = (&'a [u8], u64)>,
        now: u64,
    ) -> Result<(Self, usize), DocError> {
        let mut room = Self::new();
        if let Some(snapshot) = snapshot {
            // As it is: it was encoded from an integrated document (one written before updates waited may hold
            // skips and pending structs, which the order check would hold back whole).
            let update = Update::decode_v1(snapshot)
                .map_err(|e| DocError(format!("stored update does not decode: {e}")))?;
            let needs = super::shape::check_update_needs(snapshot)
                .ok()
                .map(|(_, needs)| needs);
            room.integrate(update, needs.as_ref(), None, false)?;
        }
        let mut skipped = 0;
        let entries = log.into_iter().map(|entry| (entry, now)).chain(waiting);
        for (entry, since) in entries {
            if CheckedUpdate::decode_stored(entry)
                .and_then(|update| room.apply_stored(update, since))
                .is_err()
            {
                skipped += 1;
            }
        }
        let skipped = skipped + room.dropped;
        Ok((room, skipped))
    }

    /// Cuts an update into what continues from what the document has and what must wait (see [`super::order`]); past
    /// [`MAX_WAITING`] waiting updates, a new waiting part is not kept.
    pub fn prepare(&self, update: CheckedUpdate) -> Result<Prepared, DocError> {
        self.prepare_bounded(update, MAX_WAITING)
    }

    fn prepare_bounded(
        &self,
        update: CheckedUpdate,
        max_waiting: usize,
    ) -> Result<Prepared, DocError> {
        let CheckedUpdate {
            update,
            needs,
            bytes,
            ..
        } = update;
        let Some(needs) = needs else {
            return Ok(Prepared {
                news_bytes: bytes.len(),
                update,
                needs: None,
                split: None,
            });
        };
        let state = self.doc.transact().state_vector();
        let known = clock_of(&state);
        let news_bytes = needs.news_bytes(known, self.waiting.iter().map(|w| &w.needs));
        let split = needs.split(&bytes, known);
        if split.waiting.is_none() {
            return Ok(Prepared {
                update,
                needs: Some(needs),
                split: None,
                news_bytes,
            });
        }
        let waiting_needs = split
            .waiting
            .as_deref()
            .and_then(|w| super::shape::check_update_needs(w).ok())
            .map(|(_, needs)| needs)
            .filter(|needs| needs.adds_to(known, self.waiting.iter().map(|w| &w.needs)));
        // Past the bound the part that would wait is not kept (its sender and its author keep it, and send it
        // again with their next sync step 2); what continues is taken all the same.
        let waiting_needs = waiting_needs.filter(|_| self.waiting.len() < max_waiting);
        Ok(Prepared {
            update,
            needs: None,
            split: Some((split, waiting_needs)),
            news_bytes,
        })
    }

    /// Applies an update (idempotent: updates already integrated change nothing) and says what it changed: whether
    /// it inserted or deleted anything, whether it changed what yrs keeps pending, and what of it now waits. A
    /// reconnecting Yjs client's sync step 2 always carries its whole delete set, which changes nothing. Structs
    /// that do not continue from what the document has wait and are tried again after every update that integrates
    /// something; a copy of what already waits changes nothing.
    /// `now`: when it arrived (ms), for what of it waits.
    pub fn apply(&mut self, update: CheckedUpdate, now: u64) -> Result<Applied, DocError> {
        let prepared = self.prepare(update)?;
        self.apply_cut(prepared, false, now)
    }

    /// [`RoomDoc::apply`] for what the room stored: no bound on what waits (it was within it when stored).
    fn apply_stored(&mut self, update: CheckedUpdate, since: u64) -> Result<Applied, DocError> {
        let prepared = self.prepare_bounded(update, usize::MAX)?;
        self.apply_cut(prepared, false, since)
    }

    /// Applies a [`RoomDoc::prepare`]d update that arrived at `now`, with the effect to log for it
    /// ([`Applied::effect`]).
    pub fn apply_prepared(&mut self, prepared: Prepared, now: u64) -> Result<Applied, DocError> {
        self.apply_cut(prepared, true, now)
    }

    /// Applies a prepared update; `effect`: encode what it changed, for the log (a rebuild has no use for it);
    /// `since`: when what of it waits arrived.
    fn apply_cut(
        &mut self,
        prepared: Prepared,
        effect: bool,
        since: u64,
    ) -> Result<Applied, DocError> {
        // What the waiting updates look at, before: only a change there can let one of them continue.
        let watched = self.watched();
        let applied = match prepared.split {
            None => self.integrate(
                prepared.update,
                prepared.needs.as_ref(),
                Some(MAX_TYPE_DEPTH),
                effect,
            )?,
            Some((split, waiting_needs)) => {
                let mut applied = match split.ready {
                    Some(ready) => {
                        let mut applied = self.integrate_part(&ready, effect)?;
                        applied.given = Some(ready);
                        applied
                    }
                    None => Applied::default(),
                };
                if let (Some(bytes), Some(needs)) = (split.waiting, waiting_needs) {
                    applied.waits = Some(bytes.clone());
                    self.waiting.push(Waiting {
                        bytes,
                        needs,
                        since,
                    });
                }
                applied
            }
        };
        if applied.integrated && watched != self.watched() {
            self.retry_waiting();
        }
        Ok(applied)
    }

    /// The clocks the document has of the clients waiting updates look at (empty when none waits).
    fn watched(&self) -> Vec<(u64, u32)> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let state = self.doc.transact().state_vector();
        let mut clients: Vec<u64> = self
            .waiting
            .iter()
            .flat_map(|w| w.needs.clients())
            .collect();
        clients.sort_unstable();
        clients.dedup();
        clients
            .into_iter()
            .map(|c| (c, clock_of(&state)(c)))
            .collect()
    }

    /// Integrates what of the waiting updates now continues (each may let others continue). What was integrated
    /// was logged when it arrived; what yrs refuses then is dropped, as a rebuild drops it too.
    fn retry_waiting(&mut self) {
        let mut progress = true;
        while progress {
            progress = false;
            let state = self.doc.transact().state_vector();
            let known = clock_of(&state);
            let mut still = Vec::with_capacity(self.waiting.len());
            let mut ready = Vec::new();
            for waiting in std::mem::take(&mut self.waiting) {
                let split = waiting.needs.split(&waiting.bytes, known);
                match (split.ready, split.waiting) {
                    // All of it continues now.
                    (_, None) => ready.push(waiting.bytes),
                    // Nothing of it continues yet.
                    (None, Some(_)) => still.push(waiting),
                    (Some(now), Some(rest)) => {
                        ready.push(now);
                        match super::shape::check_update_needs(&rest) {
                            Ok((_, needs)) => still.push(Waiting {
                                bytes: rest,
                                needs,
                                since: waiting.since,
                            }),
                            Err(_) => self.dropped += 1,
                        }
                    }
                }
            }
            self.waiting = still;
            for now in ready {
                progress = true;
                if self.integrate_part(&now, false).is_err() {
                    self.dropped += 1;
                }
            }
        }
    }

    /// [`RoomDoc::integrate`] for a part the order check cut from an update.
    fn integrate_part(&mut self, bytes: &[u8], effect: bool) -> Result<Applied, DocError> {
        let update = Update::decode_v1(bytes)
            .map_err(|e| DocError(format!("update does not decode: {e}")))?;
        let needs = super::shape::check_update_needs(bytes)
            .ok()
            .map(|(_, needs)| needs);
        self.integrate(update, needs.as_ref(), Some(MAX_TYPE_DEPTH), effect)
    }

    /// Applies an update to the yrs document in one transaction — unless, by its `needs`, it would nest a shared
    /// type deeper than `max_depth` (see [`super::depth`]); with `effect`, encodes what it changed when that holds
    /// all of it (see [`Applied::effect`]).
    fn integrate(
        &mut self,
        update: Update,
        needs: Option<&Needs>,
        max_depth: Option<u32>,
        effect: bool,
    ) -> Result<Applied, DocError> {
        let mut txn = self.doc.transact_mut();
        if let Some(needs) = needs {
            let state = txn.state_vector();
            self.depths
                .admit(needs, clock_of(&state), max_depth)
                .map_err(|_| {
                    DocError(format!("shared types nest more than {MAX_TYPE_DEPTH} deep"))
                })?;
        }
        let pending_before = pending(&txn);
        txn.apply_update(update)
            .map_err(|e| DocError(format!("update does not apply: {e}")))?;
        let pending_after = pending(&txn);
        let inserted = !txn.insert_set().is_empty();
        let deleted_ranges: usize = txn.delete_set().iter().map(|(_, r)| r.len()).sum();
        let integrated = inserted || deleted_ranges > 0;
        // Nothing of it went pending (what was pending before may stay so: a planted deletion of an id that will
        // never exist would otherwise keep every later update from being logged as its effect).
        let effect_holds_all =
            effect && integrated && pending_after == pending_before && !inserted_past_a_gap(&txn);
        Ok(Applied {
            integrated,
            effect: effect_holds_all.then(|| txn.encode_update_v1()),
            pending_changed: pending_after != pending_before,
            deleted_ranges,
            waits: None,
            given: None,
        })
    }

    /// The v1-encoded state vector (sync step 1 payload).
    pub fn state_vector(&self) -> Vec<u8> {
        use yrs::updates::encoder::Encode;
        self.doc.transact().state_vector().encode_v1()
    }

    /// The updates a peer with state vector `sv` lacks: what the document integrated past `sv` (the sync step 2
    /// payload), then what it keeps pending, if anything. yrs would merge them into one update, but its merge drops
    /// structs integrated past a gap (see [`inserted_past_a_gap`]) when pending structs of their client fall into
    /// that gap, so they are kept apart.
    pub fn diff(&self, sv: &[u8]) -> Result<Vec<Vec<u8>>, DocError> {
        super::shape::check_state_vector(sv)
            .map_err(|e| DocError(format!("state vector does not decode: {}", e.0)))?;
        let sv = StateVector::decode_v1(sv)
            .map_err(|e| DocError(format!("state vector does not decode: {e}")))?;
        Ok(self.parts_past(&sv).parts())
    }

    /// The whole document as v1 updates, for compaction: what it integrated, what it keeps pending and what waits
    /// (as in [`RoomDoc::diff`]); rebuilt in that order they make this document again.
    pub fn snapshot(&self) -> Snapshot {
        self.parts_past(&StateVector::default())
    }

    fn parts_past(&self, sv: &StateVector) -> Snapshot {
        use yrs::updates::encoder::Encode;
        let txn = self.doc.transact();
        let mut pending = Vec::new();
        let store = txn.store();
        if let Some(structs) = store.pending_update() {
            pending.push(structs.update.encode_v1());
        }
        if let Some(deletes) = store.pending_ds() {
            // An update of no structs and this delete set.
            let mut update = vec![0];
            update.extend(deletes.encode_v1());
            pending.push(update);
        }
        Snapshot {
            doc: txn.encode_diff_v1(sv),
            pending,
            waiting: self
                .waiting
                .iter()
                .map(|w| (w.bytes.clone(), w.since))
                .collect(),
        }
    }

    /// When the oldest waiting update arrived (`None`: none waits).
    pub fn oldest_waiting(&self) -> Option<u64> {
        self.waiting.iter().map(|w| w.since).min()
    }

    /// Drops the waiting updates that arrived before `before`: how many. An honest room's waiting updates are
    /// taken within moments (a peer relayed edits out of order, their author syncs soon), and whoever holds them
    /// sends them again with its next sync step 2 (Yjs includes what it keeps pending); ones that wait on what never
    /// comes — a member can send up to [`MAX_WAITING`] — would otherwise be held, weighed and sent to every newcomer
    /// for good, with no way for anyone to delete them.
    pub fn expire(&mut self, before: u64) -> usize {
        let had = self.waiting.len();
        self.waiting.retain(|w| w.since >= before);
        had - self.waiting.len()
    }

    /// The document as JSON, one key per root type. Roots whose type no client declared to us are read as text
    /// when they hold a sequence and as a map otherwise (Yjs does not encode root types).
    pub fn to_json(&self) -> Value {
        let txn = self.doc.transact();
        let mut roots = Map::new();
        for (name, out) in txn.root_refs() {
            let value = match out {
                Out::YText(text) => Value::String(text.get_string(&txn)),
                // Read as the kind it looks like now, without declaring it: a root declared while its sequence
                // was empty (all deleted) would stay a map, and every later read would miss its text.
                Out::UndefinedRef(branch) if branch.len() > 0 => {
                    Value::String(yrs::TextRef::from(branch).get_string(&txn))
                }
                Out::UndefinedRef(branch) => any_to_json(&yrs::types::ToJson::to_json(
                    &Out::YMap(yrs::MapRef::from(branch)),
                    &txn,
                )),
                other => any_to_json(&yrs::types::ToJson::to_json(&other, &txn)),
            };
            roots.insert(name.to_owned(), value);
        }
        Value::Object(roots)
    }
}

fn any_to_json(any: &Any) -> Value {
    match any {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(b) => Value::Bool(*b),
        Any::Number(yrs::any::Number::Int(n)) => Value::from(*n),
        Any::Number(yrs::any::Number::Float(n)) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        Any::String(s) => Value::String(s.to_string()),
        Any::Buffer(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
        Any::Array(items) => Value::Array(items.iter().map(any_to_json).collect()),
        Any::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), any_to_json(v)))
                .collect(),
        ),
    }
}
