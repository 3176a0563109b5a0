//! The room's `yrs` document: rebuilt from a snapshot plus the update log, fed validated updates, asked for the diff
//! a client lacks, encoded whole for compaction and rendered as JSON for consumers that do not speak Yjs.

use serde_json::{Map, Value};
use yrs::updates::decoder::Decode;
use yrs::{Any, Doc, GetString, IdSet, Out, ReadTxn, StateVector, Transact, Update};

use super::shape::Shape;

/// A room's document. Pure: bytes in, bytes out.
pub struct RoomDoc {
    doc: Doc,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Something was inserted or deleted.
    pub integrated: bool,
    /// What the document keeps pending changed (or may have: see [`RoomDoc::apply`]).
    pub pending_changed: bool,
    /// Ranges this update newly deleted (each can split an item, growing the snapshot).
    pub deleted_ranges: usize,
    /// What the update changed, alone, as a v1 update: the structs it integrated and the ranges it newly deleted —
    /// for a reconnect's sync step 2 a small part of its bytes, which repeat the client's whole delete set. `None`
    /// when nothing was integrated or when anything is pending afterwards (then only the update's own bytes are
    /// sure to hold what waits).
    pub effect: Option<Vec<u8>>,
}

impl Applied {
    /// Whether the document holds anything it did not before.
    pub fn changed(&self) -> bool {
        self.integrated || self.pending_changed
    }
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

/// A v1 update that decoded (and how many structs it inserts); applying it may still be refused.
pub struct CheckedUpdate(Update, Shape);

impl CheckedUpdate {
    /// Decodes a v1 update sent by a client, after its shape is checked (see [`super::shape`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DocError> {
        let shape = super::shape::check_update(bytes)
            .map_err(|e| DocError(format!("update does not decode: {}", e.0)))?;
        Update::decode_v1(bytes)
            .map(|update| CheckedUpdate(update, shape))
            .map_err(|e| DocError(format!("update does not decode: {e}")))
    }

    /// Decodes an update the room stored itself (a snapshot or a log entry): already checked when it arrived, under
    /// the rules of its day, so it is not refused by today's (a room must always load what it holds).
    pub fn decode_stored(bytes: &[u8]) -> Result<Self, DocError> {
        Update::decode_v1(bytes)
            // Its struct count is not needed: stored updates are not weighed against the size limit again.
            .map(|update| CheckedUpdate(update, Shape::default()))
            .map_err(|e| DocError(format!("stored update does not decode: {e}")))
    }

    /// True when the update carries no insertions and no deletions (e.g. an empty sync step 2).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the update inserts nothing: at most deletions, which cannot grow the document.
    pub fn only_deletes(&self) -> bool {
        self.1.structs == 0
    }

    /// What the shape check counted (all zero for an update the room stored itself).
    pub fn shape(&self) -> Shape {
        self.1
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
        Self { doc: Doc::new() }
    }

    /// The document a snapshot plus the updates logged after it describe, and how many logged updates did not apply.
    /// A snapshot that does not rebuild is an error (corruption); a logged update that no longer decodes or applies
    /// is skipped rather than making the whole room unloadable (the caller reports it): every entry was applied to
    /// the live document before it was stored, so this only happens if storage and memory ever disagreed.
    pub fn rebuild<'a>(
        snapshot: Option<&[u8]>,
        log: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(Self, usize), DocError> {
        let mut room = Self::new();
        if let Some(snapshot) = snapshot {
            room.apply(CheckedUpdate::decode_stored(snapshot)?)?;
        }
        let mut skipped = 0;
        for entry in log {
            if CheckedUpdate::decode_stored(entry)
                .and_then(|update| room.apply(update))
                .is_err()
            {
                skipped += 1;
            }
        }
        Ok((room, skipped))
    }

    /// Applies an update (idempotent: updates already integrated change nothing) and says what it changed: whether
    /// it inserted or deleted anything, and whether it changed what is kept pending (parts waiting for what they
    /// need). A reconnecting Yjs client's sync step 2 always carries its whole delete set, which changes nothing.
    pub fn apply(&mut self, update: CheckedUpdate) -> Result<Applied, DocError> {
        let mut txn = self.doc.transact_mut();
        let pending_before = pending(&txn);
        txn.apply_update(update.0)
            .map_err(|e| DocError(format!("update does not apply: {e}")))?;
        let pending_after = pending(&txn);
        let inserted = !txn.insert_set().is_empty();
        let deleted_ranges: usize = txn.delete_set().iter().map(|(_, r)| r.len()).sum();
        let integrated = inserted || deleted_ranges > 0;
        Ok(Applied {
            integrated,
            effect: (integrated && pending_after.is_none()).then(|| txn.encode_update_v1()),
            pending_changed: pending_after != pending_before,
            deleted_ranges,
        })
    }

    /// The v1-encoded state vector (sync step 1 payload).
    pub fn state_vector(&self) -> Vec<u8> {
        use yrs::updates::encoder::Encode;
        self.doc.transact().state_vector().encode_v1()
    }

    /// The update a peer with state vector `sv` lacks (sync step 2 payload).
    pub fn diff(&self, sv: &[u8]) -> Result<Vec<u8>, DocError> {
        super::shape::check_state_vector(sv)
            .map_err(|e| DocError(format!("state vector does not decode: {}", e.0)))?;
        let sv = StateVector::decode_v1(sv)
            .map_err(|e| DocError(format!("state vector does not decode: {e}")))?;
        Ok(self.doc.transact().encode_state_as_update_v1(&sv))
    }

    /// The whole document as one v1 update (a snapshot; pending updates included).
    pub fn snapshot(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// The document as JSON, one key per root type. Roots whose type no client declared to us are read as text
    /// when they hold a sequence and as a map otherwise (Yjs does not encode root types).
    pub fn to_json(&self) -> Value {
        let undefined: Vec<(String, bool)> = {
            let txn = self.doc.transact();
            txn.root_refs()
                .filter_map(|(name, out)| match out {
                    Out::UndefinedRef(branch) => Some((name.to_owned(), branch.len() > 0)),
                    _ => None,
                })
                .collect()
        };
        for (name, is_sequence) in undefined {
            if is_sequence {
                self.doc.get_or_insert_text(name.as_str());
            } else {
                self.doc.get_or_insert_map(name.as_str());
            }
        }
        let txn = self.doc.transact();
        let mut roots = Map::new();
        for (name, out) in txn.root_refs() {
            let value = match &out {
                Out::YText(text) => Value::String(text.get_string(&txn)),
                other => any_to_json(&yrs::types::ToJson::to_json(other, &txn)),
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
