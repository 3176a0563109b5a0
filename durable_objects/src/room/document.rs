//! The room's `yrs` document: rebuilt from a snapshot plus the update log, fed validated updates, asked for the diff
//! a client lacks, encoded whole for compaction and rendered as JSON for consumers that do not speak Yjs.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Map, Value};
use yrs::updates::decoder::Decode;
use yrs::{Any, Doc, GetString, IdSet, Out, ReadTxn, StateVector, Transact, Update};

use super::depth::{Depths, Unplaceable, MAX_TYPE_DEPTH};
use super::ends::RightOrigins;
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
    /// When the oldest of the deletions yrs keeps pending (of ids the document lacks) arrived: they wait as
    /// [`Waiting`] structs do, and go with them past the TTL (see [`RoomDoc::expire`]). `None`: none is pending.
    /// Invariant: `Some` exactly when yrs holds pending deletions — the per-message path asks this, not yrs.
    pending_deletes_since: Option<u64>,
    /// The pending deletions expired: the next [`RoomDoc::snapshot`] leaves them out (the document is then rebuilt
    /// from it, see `log::expire`: yrs has no way to forget them in place).
    pending_deletes_expired: bool,
    /// How deep the items inside nested types sit (see [`super::depth`]).
    depths: Depths,
    /// Which items name a right origin (see [`super::ends`]).
    ends: RightOrigins,
    /// Replaying the log on load: what it holds was taken live, and is taken again whatever [`super::ends`] says
    /// (its record, rebuilt from the snapshot, may vouch for right origins the live room could not, say when an
    /// update listed a client before the one its right origin is in; a refusal then dropped what every member
    /// holds, and each later edit of theirs after it waited for good).
    replaying_log: bool,
    /// The document's JSON text as [`RoomDoc::json_text`] last rendered it, until the next change clears it: a
    /// state read renders the whole document in the object every member's messages wait on (a map of 32,000 short
    /// entries took ~200 ms), so reads between two changes share one rendering.
    rendered: RefCell<Option<Rc<str>>>,
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

/// Why an update was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Refused before anything of it was applied.
    Refused(DocError),
    /// yrs refused it, possibly after integrating part of it.
    Failed(DocError),
}

impl From<ApplyError> for DocError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Refused(e) | ApplyError::Failed(e) => e,
        }
    }
}

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
    /// A set of deletions yrs keeps pending began with this update (none was, or none of those that were still
    /// is): dated by its arrival (see [`RoomDoc::expire`]).
    pub deletes_began: bool,
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
    /// Waiting updates (or parts) this update let continue, as yrs integrated them, and the pending deletions it let
    /// yrs apply (as an update of no structs): news for the room's members, who are not sent what waits (it may yet
    /// be refused when it continues) nor deletions of ids the room lacks (see [`RoomDoc::without_pending_deletes`]).
    pub released: Vec<Vec<u8>>,
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
        self.taken(sent)
            .into_iter()
            .chain(self.waits.as_deref())
            .collect()
    }

    /// What [`to_log`](Self::to_log) logs of what the document took (`None`: nothing), without what waits.
    pub fn taken<'a>(&'a self, sent: &'a [u8]) -> Option<&'a [u8]> {
        if (self.integrated || self.pending_changed) && self.effect.is_none() {
            Some(self.given.as_deref().unwrap_or(sent))
        } else {
            self.effect.as_deref()
        }
    }
}

/// An update made ready to apply: cut into what continues from what the document has and what must wait.
pub struct Prepared {
    update: Update,
    /// What the update needs and the document's state vector it was prepared against, when it goes to yrs whole
    /// (`None` too for a stored update today's check refuses). A prepared update is applied to the document it was
    /// prepared from, unchanged in between (a compaction changes no clock), so the state is read once.
    whole: Option<(Needs, StateVector)>,
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

/// An update of no structs deleting `ids`.
fn deletes_update(ids: &IdSet) -> Vec<u8> {
    use yrs::updates::encoder::Encode;
    let mut update = vec![0];
    update.extend(ids.encode_v1());
    update
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
            pending_deletes_since: None,
            pending_deletes_expired: false,
            depths: Depths::default(),
            ends: RightOrigins::default(),
            replaying_log: false,
            rendered: RefCell::new(None),
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
            room.integrate(update, needs.as_ref(), None, None, false)
                .map_err(DocError::from)?;
            room.settle_pending_deletes(now);
        }
        let mut skipped = 0;
        // What waits is judged as when it continued live (it was never relayed, and one refused then stays stored).
        let log = log.into_iter().map(|entry| (entry, now, true));
        let waiting = waiting
            .into_iter()
            .map(|(entry, since)| (entry, since, false));
        for (entry, since, logged) in log.chain(waiting) {
            room.replaying_log = logged;
            if CheckedUpdate::decode_stored(entry)
                .and_then(|update| room.apply_stored(update, since))
                .is_err()
            {
                skipped += 1;
                room.settle_pending_deletes(since);
            }
        }
        room.replaying_log = false;
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
                whole: None,
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
                whole: Some((needs, state)),
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
            whole: None,
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
        Ok(self.apply_cut(prepared, false, now)?)
    }

    /// [`RoomDoc::apply`] for what the room stored: no bound on what waits (it was within it when stored).
    fn apply_stored(&mut self, update: CheckedUpdate, since: u64) -> Result<Applied, DocError> {
        let prepared = self.prepare_bounded(update, usize::MAX)?;
        Ok(self.apply_cut(prepared, false, since)?)
    }

    /// Applies a [`RoomDoc::prepare`]d update that arrived at `now`, with the effect to log for it
    /// ([`Applied::effect`]).
    pub fn apply_prepared(&mut self, prepared: Prepared, now: u64) -> Result<Applied, ApplyError> {
        self.apply_cut(prepared, true, now)
    }

    /// Applies a prepared update; `effect`: encode what it changed, for the log (a rebuild has no use for it);
    /// `since`: when what of it waits arrived.
    fn apply_cut(
        &mut self,
        prepared: Prepared,
        effect: bool,
        since: u64,
    ) -> Result<Applied, ApplyError> {
        // What the waiting updates look at, before: only a change there can let one of them continue.
        let watched = self.watched();
        // The deletions pending before, and the update's own while some are (see `note_pending_deletes`).
        let deletes_before = self.pending_delete_ids();
        let deletes_sent = deletes_before
            .as_ref()
            .map(|_| prepared.update.delete_set().clone());
        // Only an update that deletes can leave deletions pending where none were (what waits carries none).
        let may_pend = deletes_before.is_some() || !prepared.update.delete_set().is_empty();
        let mut applied = match prepared.split {
            None => {
                let (needs, state) = prepared.whole.as_ref().map(|(n, s)| (n, s)).unzip();
                self.integrate(prepared.update, needs, state, Some(MAX_TYPE_DEPTH), effect)?
            }
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
            applied.released = self.retry_waiting();
        }
        let deletes_after = if may_pend {
            self.read_pending_delete_ids()
        } else {
            None
        };
        if let Some(before) = &deletes_before {
            // Deletions pending before that yrs now applied (their ids arrived): members were never sent them (see
            // `without_pending_deletes`), so they go to every member now.
            let resolved = before.diff(deletes_after.as_ref().unwrap_or(&IdSet::default()));
            if !resolved.is_empty() {
                applied.released.push(deletes_update(&resolved));
            }
        }
        applied.deletes_began =
            self.note_pending_deletes(since, deletes_before, deletes_sent, deletes_after);
        Ok(applied)
    }

    /// The ids of the deletions yrs keeps pending (`None`: none), read only when some are: every message asks, and
    /// [`RoomDoc::pending_deletes_since`] answers the usual "none" without a transaction.
    fn pending_delete_ids(&self) -> Option<IdSet> {
        self.pending_deletes_since?;
        self.read_pending_delete_ids()
    }

    /// [`RoomDoc::pending_delete_ids`] as yrs holds them, for where they may have changed.
    fn read_pending_delete_ids(&self) -> Option<IdSet> {
        self.doc.transact().store().pending_ds().cloned()
    }

    /// Sets [`RoomDoc::pending_deletes_since`] from what yrs holds, after the document changed outside
    /// [`RoomDoc::apply_cut`]'s account (a snapshot loaded, a stored update yrs refused part-way): deletions it did
    /// not date are dated `since`.
    fn settle_pending_deletes(&mut self, since: u64) {
        let pending = self.read_pending_delete_ids().is_some();
        self.pending_deletes_since = pending.then(|| self.pending_deletes_since.unwrap_or(since));
    }

    /// Keeps [`RoomDoc::pending_deletes_since`] after an update that arrived at `since`, given the pending deletions
    /// `before` it and the update's own (`sent`, when some were pending): a set that goes on keeps its date, made
    /// older by an update that brings some of it (a rebuild replays the log before the waiting row that dates the
    /// set); a set none of whose ids was pending before is new, and dated `since` — not by a set that was resolved
    /// (its row, left until the next compaction, is replayed on a reload, and must not date the sets after it).
    /// Whether a set began. `after`: the deletions pending after the update.
    fn note_pending_deletes(
        &mut self,
        since: u64,
        before: Option<IdSet>,
        sent: Option<IdSet>,
        after: Option<IdSet>,
    ) -> bool {
        let Some(after) = after else {
            self.pending_deletes_since = None;
            return false;
        };
        let overlaps = |a: &IdSet| !a.intersect(&after).is_empty();
        match (self.pending_deletes_since, before) {
            (Some(oldest), Some(before)) if overlaps(&before) => {
                let brought = sent.as_ref().is_some_and(overlaps);
                self.pending_deletes_since = Some(if brought { oldest.min(since) } else { oldest });
                false
            }
            _ => {
                self.pending_deletes_since = Some(since);
                true
            }
        }
    }

    /// Whether yrs keeps deletions of ids the document lacks pending.
    pub fn has_pending_deletes(&self) -> bool {
        self.pending_deletes_since.is_some()
    }

    /// Whether [`RoomDoc::pending_deletes_since`] says what a read of yrs' pending deletions says.
    #[cfg(test)]
    pub(crate) fn pending_deletes_cached_as_read(&self) -> bool {
        self.pending_deletes_since.is_some() == self.read_pending_delete_ids().is_some()
    }

    /// The deletions yrs keeps pending, as an update of no structs (`None`: none).
    pub fn pending_deletes(&self) -> Option<Vec<u8>> {
        self.pending_delete_ids().map(|ids| deletes_update(&ids))
    }

    /// `part` (a v1 update the room took) without the deletions the room keeps pending, for its members (`None`:
    /// nothing is left of it). A Yjs client keeps a deletion it cannot apply pending and sends it back whole in
    /// every sync step 2, so deletions of ids nobody has, sent on, made each later step 2 of a member larger than
    /// the message cap (closed 1009 on every reconnect) and came back after the room dropped them; they reach the
    /// members when their ids arrive (see [`Applied::released`]).
    pub fn without_pending_deletes(&self, part: &[u8]) -> Option<Vec<u8>> {
        use yrs::updates::encoder::Encode;
        let Some(pending) = self.pending_delete_ids() else {
            return Some(part.to_vec());
        };
        // A part the room took was checked and decoded as it arrived.
        let Ok((_, needs)) = super::shape::check_update_needs(part) else {
            return Some(part.to_vec());
        };
        let at = needs.delete_set_at;
        let Some(deletes) = part.get(at..).and_then(|ds| IdSet::decode_v1(ds).ok()) else {
            return Some(part.to_vec());
        };
        let kept = deletes.diff(&pending);
        if kept == deletes {
            return Some(part.to_vec());
        }
        if needs.runs.is_empty() && kept.is_empty() {
            return None;
        }
        let mut out = part[..at].to_vec();
        out.extend(kept.encode_v1());
        Some(out)
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
    /// What was integrated, as it was given to yrs.
    fn retry_waiting(&mut self) -> Vec<Vec<u8>> {
        let mut released = Vec::new();
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
                match self.integrate_part(&now, false) {
                    Ok(_) => released.push(now),
                    Err(_) => self.dropped += 1,
                }
            }
        }
        released
    }

    /// [`RoomDoc::integrate`] for a part the order check cut from an update.
    fn integrate_part(&mut self, bytes: &[u8], effect: bool) -> Result<Applied, ApplyError> {
        let update = Update::decode_v1(bytes)
            .map_err(|e| ApplyError::Refused(DocError(format!("update does not decode: {e}"))))?;
        let needs = super::shape::check_update_needs(bytes)
            .ok()
            .map(|(_, needs)| needs);
        self.integrate(update, needs.as_ref(), None, Some(MAX_TYPE_DEPTH), effect)
    }

    /// Applies an update to the yrs document in one transaction — unless, by its `needs`, it would nest a shared
    /// type deeper than `max_depth` (see [`super::depth`]); `state`: the document's state vector, when the caller
    /// has it; with `effect`, encodes what it changed when that holds all of it (see [`Applied::effect`]).
    fn integrate(
        &mut self,
        update: Update,
        needs: Option<&Needs>,
        state: Option<&StateVector>,
        max_depth: Option<u32>,
        effect: bool,
    ) -> Result<Applied, ApplyError> {
        // The one place the document changes: a rendering of it is stale from here.
        self.rendered.get_mut().take();
        let mut txn = self.doc.transact_mut();
        let measured = match needs {
            Some(needs) => {
                let read;
                let state = match state {
                    Some(state) => state,
                    None => {
                        read = txn.state_vector();
                        &read
                    }
                };
                let measured = self
                    .depths
                    .measure(needs, clock_of(state), max_depth)
                    .map_err(|why| {
                        ApplyError::Refused(DocError(match why {
                            Unplaceable::TooDeep => {
                                format!("shared types nest more than {MAX_TYPE_DEPTH} deep")
                            }
                            Unplaceable::RestatesWithParent => "a struct restates the start of an \
                                item the room has and names a map key elsewhere: send what follows the \
                                room's clock with that item as its origin"
                                .to_owned(),
                        }))
                    })?;
                // Refused where the depth is (not in a snapshot, which the room must always load, nor in the log).
                let refuse = max_depth.is_some() && !self.replaying_log;
                if let Some((client, clock)) = needs
                    .restated_between_one_id(clock_of(state))
                    .filter(|_| refuse)
                {
                    return Err(ApplyError::Refused(DocError(format!(
                        "the struct at {client}#{clock} restates an item the room has and names its last clock as \
                         right origin: its new part would sit between one id and itself"
                    ))));
                }
                let marked = self
                    .ends
                    .measure(needs, clock_of(state), refuse)
                    .map_err(|why| {
                        let (client, clock) = why.origin;
                        ApplyError::Refused(DocError(format!(
                            "an item after {client}#{clock} names no right origin, though the item holding \
                             {client}#{clock} names one: no Yjs client writes it"
                        )))
                    })?;
                Some((measured, marked))
            }
            None => None,
        };
        let pending_before = pending(&txn);
        txn.apply_update(update)
            .map_err(|e| ApplyError::Failed(DocError(format!("update does not apply: {e}"))))?;
        if let Some((measured, marked)) = measured.filter(|(m, e)| !m.is_empty() || !e.is_empty()) {
            // Kept for what yrs integrated, now that it did.
            let inserted: Vec<(u64, u32, u32)> = txn
                .insert_set()
                .iter()
                .flat_map(|(client, ranges)| {
                    ranges.iter().map(move |r| (client.get(), r.start, r.end))
                })
                .collect();
            self.depths.keep(measured, &inserted);
            self.ends.keep(marked, &inserted);
        }
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
            deletes_began: false,
            waits: None,
            given: None,
            released: Vec::new(),
        })
    }

    /// The v1-encoded state vector (sync step 1 payload).
    pub fn state_vector(&self) -> Vec<u8> {
        use yrs::updates::encoder::Encode;
        self.doc.transact().state_vector().encode_v1()
    }

    /// The updates a peer with state vector `sv` lacks: what the document integrated past `sv` (the sync step 2
    /// payload), then the structs it keeps pending, if any (none from live updates, which the order check holds
    /// back first; only a stored update today's check refuses can leave some) — not its pending deletions: see
    /// [`RoomDoc::without_pending_deletes`]. yrs would merge them into one update, but its merge drops
    /// structs integrated past a gap (see [`inserted_past_a_gap`]) when pending structs of their client fall into
    /// that gap, so they are kept apart.
    pub fn diff(&self, sv: &[u8]) -> Result<Vec<Vec<u8>>, DocError> {
        super::shape::check_state_vector(sv)
            .map_err(|e| DocError(format!("state vector does not decode: {}", e.0)))?;
        let sv = StateVector::decode_v1(sv)
            .map_err(|e| DocError(format!("state vector does not decode: {e}")))?;
        // Not what waits: it may yet be refused when it continues, and a member holding it would then never sync.
        // Nor the pending deletions: see `without_pending_deletes`.
        let Snapshot { doc, pending, .. } = self.parts_past(&sv, false);
        Ok(std::iter::once(doc).chain(pending).collect())
    }

    /// The whole document as v1 updates, for compaction: what it integrated, what it keeps pending and what waits
    /// (as in [`RoomDoc::diff`]); rebuilt in that order they make this document again. The pending deletions are
    /// stored as waiting, with when the oldest of them arrived (a reload keeps their age), or left out once expired.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.parts_past(&StateVector::default(), true);
        let deletes_pending = self.doc.transact().store().pending_ds().is_some();
        if let (Some(since), true) = (self.pending_deletes_since, deletes_pending) {
            // The last pending part (see `parts_past`).
            let deletes = snapshot.pending.pop();
            if !self.pending_deletes_expired {
                snapshot.waiting.extend(deletes.map(|bytes| (bytes, since)));
            }
        }
        snapshot
    }

    /// What a peer with state `sv` lacks, and what the document keeps pending: with its pending deletions (the last
    /// pending part) when `deletes`.
    fn parts_past(&self, sv: &StateVector, deletes: bool) -> Snapshot {
        use yrs::updates::encoder::Encode;
        let txn = self.doc.transact();
        let mut pending = Vec::new();
        let store = txn.store();
        if let Some(structs) = store.pending_update() {
            pending.push(structs.update.encode_v1());
        }
        pending.extend(self.pending_deletes().filter(|_| deletes));
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

    /// When the oldest waiting update, or pending deletion, arrived (`None`: none waits).
    pub fn oldest_waiting(&self) -> Option<u64> {
        self.waiting
            .iter()
            .map(|w| w.since)
            .chain(self.pending_deletes_since)
            .min()
    }

    /// Drops the waiting updates that arrived before `before`: how many. An honest room's waiting updates are
    /// taken within moments (a peer relayed edits out of order, their author syncs soon), and whoever holds them
    /// sends them again with its next sync step 2 (Yjs includes what it keeps pending); ones that wait on what never
    /// comes — a member can send up to [`MAX_WAITING`] — would otherwise be held, weighed and sent to every newcomer
    /// for good, with no way for anyone to delete them.
    /// Deletions yrs keeps pending go too once the oldest of them is past it (they are kept as one delete set), and
    /// the document must then be rebuilt from its [`RoomDoc::snapshot`]: a member can send deletions of ids nobody
    /// has as fast as its rate allows, and kept for good they filled the room to its size limit.
    pub fn expire(&mut self, before: u64) -> usize {
        let had = self.waiting.len();
        self.waiting.retain(|w| w.since >= before);
        let deletes = self
            .pending_deletes_since
            .is_some_and(|since| since < before);
        self.pending_deletes_expired |= deletes;
        had - self.waiting.len() + usize::from(deletes)
    }

    /// Whether [`RoomDoc::expire`] dropped pending deletions, which the document still holds until it is rebuilt.
    pub fn must_rebuild(&self) -> bool {
        self.pending_deletes_expired
    }

    /// [`RoomDoc::to_json`] as text, rendered once per change of the document.
    pub fn json_text(&self) -> Rc<str> {
        if let Some(text) = self.rendered.borrow().as_ref() {
            return Rc::clone(text);
        }
        let text: Rc<str> = self.to_json().to_string().into();
        *self.rendered.borrow_mut() = Some(Rc::clone(&text));
        text
    }

    /// The document as JSON, one key per root type, as Yjs' `toJSON()` of each reads it: a text as its string, an
    /// array as its array, an XML fragment as its XML text, a map as its object. Yjs does not encode root types and
    /// the room declares none, so each is read as the kind its content shows ([`RootKind::of`]).
    pub fn to_json(&self) -> Value {
        let txn = self.doc.transact();
        let mut roots = Map::new();
        for (name, out) in txn.root_refs() {
            let value = match out {
                Out::YText(text) => Value::String(text.get_string(&txn)),
                // Read as the kind it looks like now, without declaring it: a root declared while its sequence
                // was empty (all deleted) would stay a map, and every later read would miss its content.
                Out::UndefinedRef(branch) => match RootKind::of(branch, &txn) {
                    RootKind::Text => Value::String(yrs::TextRef::from(branch).get_string(&txn)),
                    RootKind::Xml => {
                        Value::String(yrs::XmlFragmentRef::from(branch).get_string(&txn))
                    }
                    RootKind::Array => any_to_json(&yrs::types::ToJson::to_json(
                        &yrs::ArrayRef::from(branch),
                        &txn,
                    )),
                    RootKind::Map => any_to_json(&yrs::types::ToJson::to_json(
                        &yrs::MapRef::from(branch),
                        &txn,
                    )),
                },
                other => any_to_json(&yrs::types::ToJson::to_json(&other, &txn)),
            };
            roots.insert(name.to_owned(), value);
        }
        Value::Object(roots)
    }
}

/// The kind a root of undeclared type reads as, by what its sequence holds now (deleted items do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootKind {
    /// Strings or embeds: a `Y.Text`.
    Text,
    /// XML elements or XML texts: a `Y.XmlFragment` (y-prosemirror's, say).
    Xml,
    /// Other values or types: a `Y.Array`.
    Array,
    /// No sequence: a `Y.Map` (also a text or array whose content was all deleted, which reads as `{}`).
    Map,
}

impl RootKind {
    fn of<T: ReadTxn>(branch: yrs::branch::BranchPtr, txn: &T) -> Self {
        use yrs::Text;
        if branch.len() == 0 {
            return RootKind::Map;
        }
        // yrs keeps a branch's items private; a text diff is the one public walk of them that is safe on any root:
        // it steps item to item, skips deleted ones, and yields strings and embeds as values and nested types as
        // themselves (array values not at all). yrs' array reads, by contrast, loop for good on a root holding
        // non-ASCII text (see the README), so they are used only once no text is left.
        let mut xml = false;
        for chunk in yrs::TextRef::from(branch).diff(txn, |_| ()) {
            match chunk.insert {
                Out::Any(_) => return RootKind::Text,
                Out::YXmlElement(_) | Out::YXmlText(_) => xml = true,
                _ => {}
            }
        }
        if xml {
            RootKind::Xml
        } else {
            RootKind::Array
        }
    }
}

/// A number as `JSON.stringify` writes it: an integral one in digits, without a fraction — lib0 writes every integer
/// past int32 as a float (a `Date.now()` is a float64), which serde_json would write as `1700000000123.0`, refused as
/// an integer by typed readers — from Rust's shortest round-trip digits, as JavaScript's (`2 ** 60` is
/// `1152921504606847000`), where an `i64` holds them; others as serde_json writes them (NaN and infinities as `null`,
/// as JavaScript does).
fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 {
        if let Ok(digits) = format!("{n}").parse::<i64>() {
            return Value::from(digits);
        }
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn any_to_json(any: &Any) -> Value {
    match any {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(b) => Value::Bool(*b),
        Any::Number(yrs::any::Number::Int(n)) => Value::from(*n),
        Any::Number(yrs::any::Number::Float(n)) => number_to_json(*n),
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

#[cfg(test)]
mod tests {
    //! Ways an update could place a shared type deeper than the room's account says (found by a review): each is
    //! refused at the limit now. The updates are written by hand, as a client could.
    use super::*;
    use yrs::{Array, Map};

    use crate::room::order::write_var as var;
    fn string(out: &mut Vec<u8>, s: &str) {
        var(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    #[derive(Clone)]
    enum P {
        Root(&'static str),
        Id(u64, u32),
        None,
    }
    #[derive(Clone)]
    enum C {
        Str(&'static str),
        Map,
        Array,
        Gc(u32),
    }
    #[derive(Clone)]
    struct It {
        origin: Option<(u64, u32)>,
        right: Option<(u64, u32)>,
        parent: P,
        sub: Option<&'static str>,
        content: C,
    }
    fn it(parent: P, sub: Option<&'static str>, content: C) -> It {
        It {
            origin: None,
            right: None,
            parent,
            sub,
            content,
        }
    }
    fn nb(origin: Option<(u64, u32)>, right: Option<(u64, u32)>, content: C) -> It {
        It {
            origin,
            right,
            parent: P::None,
            sub: None,
            content,
        }
    }
    fn item(out: &mut Vec<u8>, i: &It) {
        if let C::Gc(n) = i.content {
            out.push(0);
            var(out, n as u64);
            return;
        }
        let kind = match i.content {
            C::Str(_) => 4,
            _ => 7,
        };
        let mut info = kind;
        if i.origin.is_some() {
            info |= 0x80
        }
        if i.right.is_some() {
            info |= 0x40
        }
        let no_origins = i.origin.is_none() && i.right.is_none();
        if no_origins && i.sub.is_some() {
            info |= 0x20
        }
        out.push(info);
        for (c, k) in i.origin.iter().chain(i.right.iter()) {
            var(out, *c);
            var(out, *k as u64);
        }
        if no_origins {
            match i.parent {
                P::Root(n) => {
                    var(out, 1);
                    string(out, n)
                }
                P::Id(c, k) => {
                    var(out, 0);
                    var(out, c);
                    var(out, k as u64)
                }
                P::None => panic!("no parent"),
            }
            if let Some(s) = i.sub {
                string(out, s)
            }
        }
        match i.content {
            C::Str(s) => string(out, s),
            C::Map => out.push(1),
            C::Array => out.push(0),
            C::Gc(_) => unreachable!(),
        }
    }
    fn update(runs: &[(u64, u32, Vec<It>)]) -> Vec<u8> {
        let mut out = Vec::new();
        var(&mut out, runs.len() as u64);
        for (client, clock, items) in runs {
            var(&mut out, items.len() as u64);
            var(&mut out, *client);
            var(&mut out, *clock as u64);
            for i in items {
                item(&mut out, i);
            }
        }
        var(&mut out, 0);
        out
    }

    /// The deepest nesting of shared types, following yrs' own lists (as its deletion does). Roots' children: 1.
    fn actual_depth(doc: &RoomDoc) -> usize {
        let txn = doc.doc.transact();
        let mut stack: Vec<(Out, usize)> = txn.root_refs().map(|(_, o)| (o, 0)).collect();
        let mut max = 0;
        while let Some((out, d)) = stack.pop() {
            max = max.max(d);
            let children: Vec<Out> = match out {
                Out::YMap(m) => m.iter(&txn).map(|(_, v)| v).collect(),
                Out::YArray(a) => a.iter(&txn).collect(),
                Out::UndefinedRef(b) => {
                    let mut v: Vec<Out> = yrs::MapRef::from(b).iter(&txn).map(|(_, v)| v).collect();
                    v.extend(yrs::ArrayRef::from(b).iter(&txn));
                    v
                }
                _ => vec![],
            };
            for c in children {
                if matches!(c, Out::YMap(_) | Out::YArray(_)) {
                    stack.push((c, d + 1));
                }
            }
        }
        max
    }

    #[test]
    fn the_json_text_is_rendered_once_per_change_of_the_document() {
        use yrs::Text;
        // An update inserting `chunk` at the start of root text "t", by client `client`.
        let insert = |client: u64, chunk: &str| {
            let doc = Doc::with_client_id(client);
            let t = doc.get_or_insert_text("t");
            let mut txn = doc.transact_mut();
            t.insert(&mut txn, 0, chunk);
            txn.encode_update_v1()
        };
        let mut room = RoomDoc::new();
        let apply = |room: &mut RoomDoc, update: Vec<u8>| {
            room.apply(CheckedUpdate::decode(&update).expect("an update"), 0)
                .expect("applies");
        };
        apply(&mut room, insert(7, "a"));
        let first = room.json_text();
        assert_eq!(&*first, r#"{"t":"a"}"#);
        assert!(
            Rc::ptr_eq(&first, &room.json_text()),
            "read again without a change: the same rendering"
        );
        apply(&mut room, insert(8, "b"));
        let second = room.json_text();
        assert!(!Rc::ptr_eq(&first, &second), "a change renders anew");
        assert_eq!(&*second, room.to_json().to_string());
        assert_eq!(second.len(), r#"{"t":"ab"}"#.len());
    }

    #[test]
    fn numbers_render_as_json_stringify_writes_them() {
        // Yjs 13.6's update for a map "m" set to a: 1700000000123 (a `Date.now()`), b: 2 ** 40, c: 2 ** 60, d: -0,
        // e: 1.5, f: -(2 ** 33), h: 3 — lib0 writes an integer past int32 as a float32 or float64, which yrs reads as a
        // float. JSON.stringify(doc.toJSON()) writes the line below; the room wrote "a":1700000000123.0, which a typed
        // reader refuses as an integer (Go's encoding/json into an int64, serde into a u64).
        let yjs: &[u8] = &[
            1, 7, 1, 0, 40, 1, 1, b'm', 1, b'a', 1, 123, 66, 120, 188, 254, 86, 135, 176, 0, 40, 1,
            1, b'm', 1, b'b', 1, 124, 83, 128, 0, 0, 40, 1, 1, b'm', 1, b'c', 1, 124, 93, 128, 0,
            0, 40, 1, 1, b'm', 1, b'd', 1, 125, 64, 40, 1, 1, b'm', 1, b'e', 1, 124, 63, 192, 0, 0,
            40, 1, 1, b'm', 1, b'f', 1, 124, 208, 0, 0, 0, 40, 1, 1, b'm', 1, b'h', 1, 125, 3, 0,
        ];
        let mut room = RoomDoc::new();
        offer(&mut room, yjs).expect("applies");
        assert_eq!(
            &*room.json_text(),
            r#"{"m":{"a":1700000000123,"b":1099511627776,"c":1152921504606847000,"d":0,"e":1.5,"f":-8589934592,"h":3}}"#
        );
    }

    /// The room's JSON after each doc `f` writes (as client `client`) is applied, whole, to a fresh room (which, as
    /// live, declares no root type).
    /// A client id and what it writes to its doc.
    type Writer<'a> = (u64, &'a dyn Fn(&Doc));

    fn json_of(docs: &[Writer<'_>]) -> Value {
        let mut room = RoomDoc::new();
        for (client, f) in docs {
            let doc = Doc::with_client_id(*client);
            f(&doc);
            let update = doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            offer(&mut room, &update).expect("applies");
        }
        room.to_json()
    }

    #[test]
    fn an_array_root_renders_as_its_array() {
        // A Yjs client's `doc.getArray("todos").push([1, "two", {done: true}])`.
        let json = json_of(&[(7, &|doc| {
            let todos = doc.get_or_insert_array("todos");
            let txn = &mut doc.transact_mut();
            todos.push_back(txn, 1);
            todos.push_back(txn, "two");
            todos.push_back(txn, yrs::any!({ "done": true }));
        })]);
        assert_eq!(
            json,
            serde_json::json!({ "todos": [1, "two", { "done": true }] })
        );
    }

    #[test]
    fn an_xml_fragment_root_renders_as_its_xml() {
        use yrs::{XmlElementPrelim, XmlFragment, XmlTextPrelim};
        // y-prosemirror's `getXmlFragment("prosemirror")` holding one paragraph "héllo" (non-ASCII on purpose).
        let json = json_of(&[(7, &|doc| {
            let fragment = doc.get_or_insert_xml_fragment("prosemirror");
            let txn = &mut doc.transact_mut();
            let paragraph = fragment.push_back(txn, XmlElementPrelim::empty("paragraph"));
            paragraph.push_back(txn, XmlTextPrelim::new("héllo"));
        })]);
        assert_eq!(
            json,
            serde_json::json!({ "prosemirror": "<paragraph>héllo</paragraph>" })
        );
    }

    #[test]
    fn text_and_map_roots_still_render_as_text_and_map() {
        use yrs::Text;
        let json = json_of(&[(7, &|doc| {
            let text = doc.get_or_insert_text("text");
            let meta = doc.get_or_insert_map("meta");
            let txn = &mut doc.transact_mut();
            text.insert(txn, 0, "héllo 👋");
            let bold = yrs::types::Attrs::from([("b".into(), true.into())]);
            text.format(txn, 0, 2, bold);
            text.insert_embed(txn, 1, yrs::any!({ "image": "x.png" }));
            meta.insert(txn, "n", 2);
        })]);
        assert_eq!(
            json,
            serde_json::json!({ "text": "héllo 👋", "meta": { "n": 2 } })
        );
    }

    #[test]
    fn deleted_items_do_not_decide_a_roots_kind() {
        use yrs::Text;
        // Root "r" once held text (client 7, deleted), now array items (client 8); root "gone" held an array,
        // all deleted: no sequence is left, so it reads as the (empty) map.
        let json = json_of(&[
            (7, &|doc| {
                let text = doc.get_or_insert_text("r");
                let txn = &mut doc.transact_mut();
                text.insert(txn, 0, "héllo");
                let len = text.len(txn);
                text.remove_range(txn, 0, len);
            }),
            (8, &|doc| {
                let r = doc.get_or_insert_array("r");
                let gone = doc.get_or_insert_array("gone");
                let txn = &mut doc.transact_mut();
                r.push_back(txn, 1);
                gone.push_back(txn, 1);
                gone.remove(txn, 0);
            }),
        ]);
        assert_eq!(json, serde_json::json!({ "r": [1], "gone": {} }));
    }

    const K: u64 = 1;
    const E: u64 = 2;

    /// Client K: maps 1..=126 deep under root "m" (K:0..=125), an array at depth 127 (K:126), a string in it (K:127).
    fn room_with_chain() -> RoomDoc {
        let mut items = vec![it(P::Root("m"), Some("a"), C::Map)];
        for k in 1..126u32 {
            items.push(it(P::Id(K, k - 1), Some("a"), C::Map));
        }
        items.push(it(P::Id(K, 125), Some("a"), C::Array));
        items.push(it(P::Id(K, 126), None, C::Str("x")));
        let mut room = RoomDoc::new();
        offer(&mut room, &update(&[(K, 0, items)])).expect("a chain below the limit");
        assert_eq!(actual_depth(&room), 127);
        room
    }

    fn offer(room: &mut RoomDoc, u: &[u8]) -> Result<Applied, DocError> {
        room.apply(CheckedUpdate::decode(u).expect("passes the shape check"), 0)
    }

    /// Maps `from..to` of `client`, each nested under the previous clock's map at key "a".
    fn maps_under(client: u64, from: u32, to: u32) -> Vec<It> {
        (from..to)
            .map(|k| it(P::Id(client, k - 1), Some("a"), C::Map))
            .collect()
    }

    fn refused(result: Result<Applied, DocError>) -> bool {
        matches!(result, Err(DocError(e)) if e.contains("nest more than 128"))
    }

    #[test]
    fn a_type_one_level_past_the_limit_is_refused() {
        let mut room = room_with_chain();
        let at_limit = update(&[(E, 0, vec![it(P::Id(K, 126), None, C::Map)])]);
        offer(&mut room, &at_limit).expect("a map at depth 128");
        let past = update(&[(E, 1, maps_under(E, 1, 2))]);
        assert!(refused(offer(&mut room, &past)));
        assert_eq!(actual_depth(&room), 128);
    }

    #[test]
    fn an_origin_in_a_collected_range_with_a_deep_right_origin_is_measured_by_the_right_one() {
        // E:0 a collected range; E:1 a map whose origin is it and right origin the string in the depth-127 array:
        // yrs takes the right origin's parent, the left being no item.
        let mut room = room_with_chain();
        let mut items = vec![
            nb(None, None, C::Gc(1)),
            nb(Some((E, 0)), Some((K, 127)), C::Map),
        ];
        items.extend(maps_under(E, 2, 129));
        assert!(refused(offer(&mut room, &update(&[(E, 0, items)]))));
        assert_eq!(actual_depth(&room), 127);
    }

    #[test]
    fn a_struct_the_room_has_the_start_of_is_measured_where_yrs_links_its_new_part() {
        // E:0 "p" sits in the depth-127 array; "pq" resent from E:0 after an item of root "r", or naming root "r":
        // yrs cuts it at E:1 and links "q" after E:0, in the deep array's list, which deletion walks.
        for first in [
            nb(Some((3, 0)), None, C::Str("pq")),
            it(P::Root("r"), None, C::Str("pq")),
        ] {
            let mut room = room_with_chain();
            let z = update(&[(3, 0, vec![it(P::Root("r"), None, C::Str("z"))])]);
            offer(&mut room, &z).expect("z");
            let p = update(&[(E, 0, vec![it(P::Id(K, 126), None, C::Str("p"))])]);
            offer(&mut room, &p).expect("p");
            let mut items = vec![first, nb(Some((E, 1)), None, C::Map)];
            items.extend(maps_under(E, 3, 130));
            assert!(refused(offer(&mut room, &update(&[(E, 0, items)]))));
        }
    }

    #[test]
    fn a_struct_the_room_has_the_start_of_may_not_name_another_maps_key() {
        // Named into root map "r" at key "k", yrs would link "q" after "p" in the deep array yet make it r's "k":
        // a later map at r's "k" is then linked into the deep array, 127 levels down, counted as a root's child.
        let mut room = room_with_chain();
        let p = update(&[(E, 0, vec![it(P::Id(K, 126), None, C::Str("p"))])]);
        offer(&mut room, &p).expect("p");
        for cut in [
            it(P::Root("r"), Some("k"), C::Str("pq")),
            it(P::Id(K, 0), Some("k"), C::Str("pq")),
        ] {
            let result = offer(&mut room, &update(&[(E, 0, vec![cut])]));
            assert!(
                matches!(&result, Err(DocError(e)) if e.contains("restates the start")),
                "{result:?}"
            );
        }
        // What follows, as Yjs sends it (from the room's clock, after the item it has): taken.
        let q = update(&[(E, 1, vec![nb(Some((E, 0)), None, C::Str("q"))])]);
        offer(&mut room, &q).expect("q");
        assert_eq!(actual_depth(&room), 127);
    }

    #[test]
    fn a_restated_item_after_a_collected_range_is_taken() {
        // The room has client 10's first clocks only as a collected range (someone deleted what held them before
        // their state reached it); 10's whole state, restating a merged text item in a type the room never had
        // live, is honest (from a review's property test): yrs links nothing after a collected range.
        let mut room = room_with_chain();
        offer(
            &mut room,
            &update(&[(10, 0, vec![nb(None, None, C::Gc(4))])]),
        )
        .expect("collected");
        let restated = update(&[(10, 3, vec![it(P::Id(10, 2), None, C::Str("txy"))])]);
        offer(&mut room, &restated).expect("an honest restatement");
    }

    #[test]
    fn a_waiting_update_yrs_refuses_when_retried_leaves_no_account() {
        let mut room = room_with_chain();
        const Q: u64 = 3;
        // W: E:0 a map whose parent is Q:0, which the room lacks: it waits.
        let w = update(&[(E, 0, vec![it(P::Id(Q, 0), Some("a"), C::Map)])]);
        offer(&mut room, &w).expect("waits");
        // Q:0, a string in map K:0: W is retried, and yrs refuses it (its parent is no type).
        let q = update(&[(Q, 0, vec![it(P::Id(K, 0), Some("s"), C::Str("s"))])]);
        offer(&mut room, &q).expect("q");
        assert_eq!(room.dropped, 1);
        // E:0 again, a map in the depth-127 array (depth 128), then maps nested in it.
        let e0 = update(&[(E, 0, vec![it(P::Id(K, 126), None, C::Map)])]);
        offer(&mut room, &e0).expect("E:0 at depth 128");
        assert!(refused(offer(
            &mut room,
            &update(&[(E, 1, maps_under(E, 1, 126))])
        )));
        assert_eq!(actual_depth(&room), 128);
    }

    #[test]
    fn structs_that_only_depend_on_one_another_wait_and_are_measured_when_they_continue() {
        let mut room = room_with_chain();
        const A: u64 = 4;
        const B: u64 = 5;
        let cycle = update(&[
            (A, 0, vec![nb(Some((B, 0)), None, C::Map)]),
            (B, 0, vec![nb(Some((A, 0)), None, C::Str("b"))]),
        ]);
        let applied = offer(&mut room, &cycle).expect("waits");
        assert!(
            applied.waits.is_some() && !applied.integrated,
            "{applied:?}"
        );
        // B:0 in the depth-127 array: A:0, following it, continues at depth 128; a map in it would be at 129.
        let b = update(&[(B, 0, vec![it(P::Id(K, 126), None, C::Str("b"))])]);
        offer(&mut room, &b).expect("b");
        assert!(refused(offer(
            &mut room,
            &update(&[(A, 1, maps_under(A, 1, 128))])
        )));
        assert_eq!(actual_depth(&room), 128);
    }
}
