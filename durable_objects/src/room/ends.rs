//! Which of a room's items name a right origin that is right of them for good, so that an item claiming to end a
//! list where it cannot is refused.
//!
//! Yjs and yrs place an item between its origin (the left neighbour it was made beside) and its right origin (the
//! right one, or none at a list's end), scanning the items found between the two for concurrent inserts. An item
//! made after `O` with no right origin claims `O` was its list's last item — but when `O`'s own item names a right
//! origin `R` that is right of `O`, `R` stays right of it for good (an item depends on its right origin), so no Yjs
//! or yrs client ever writes that item. Crafted, it is costly: a member's update of 18,000 one-character items, each
//! after one character of another client's long item whose right origin is set, was taken live in 0.2 s (the long
//! item was whole), but a snapshot holds that item cut at each of them, and each of the 18,000 scanned every piece
//! after its origin up to the right origin's item (47 s to reload the room in workerd, past a Durable Object's 30 s
//! of CPU; 79 s for a newcomer's Yjs). Sent in any order, in one update or in many, it is refused here.
//!
//! A right origin is only a claim, though: a member can name one that is not right of the item's origin (say, the
//! text's first character, for an item after its last), and Yjs and yrs then place the item at its list's end,
//! where every honest client appends after it naming no right origin. Counting every named right origin, the rule
//! refused those honest appends (and every later `set` of a map key whose value was so crafted) for good: a client
//! resends a refused edit on each reconnect. So an item counts only when the room can tell its right origin is right
//! of it, by one of: it names no origin (it was placed from its list's start, and its right origin is in that list);
//! its right origin's origin is its own origin (an item sits right of its origin); or its origin's item counts and
//! names the same right origin. Text typed or pasted between two characters is one of these (see the tests); one
//! the room cannot vouch for (between two concurrent inserts that landed side by side, say) is only not counted:
//! inside it the costly shape is not caught, but nothing honest is refused.
//!
//! yrs keeps an item's origins private, so the room keeps its own account, read from the structs the shape check
//! records ([`super::shape`]): per client, the clock ranges of the structs it integrated with their origins (a
//! clock inside a range has the clock before as its origin; pieces of a split item share its right origin). It is
//! kept for what yrs integrated, after it did, and rebuilt from the snapshot and log when the room loads. Pure.

use std::collections::{HashMap, HashSet};

use super::order::Needs;

/// Why an update is refused: an item after `origin` names no right origin though `origin`'s item names one that is
/// right of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndsTooEarly {
    pub origin: (u64, u32),
}

/// One integrated struct (or the part of it that was new) as the room keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    start: u32,
    end: u32,
    /// The origin of its first clock; each later clock's is the clock before.
    origin: Option<(u64, u32)>,
    right: Option<(u64, u32)>,
    /// Its right origin is right of it for good (see the module doc).
    vouched: bool,
}

impl Kept {
    /// The origin of `clock` (of `client`, inside this range).
    fn origin_of(&self, client: u64, clock: u32) -> Option<(u64, u32)> {
        if clock == self.start {
            self.origin
        } else {
            Some((client, clock - 1))
        }
    }
}

/// The range holding `clock` in a client's sorted ranges.
fn find(list: &[Kept], clock: u32) -> Option<&Kept> {
    let at = list.partition_point(|k| k.end <= clock);
    list.get(at).filter(|k| k.start <= clock)
}

/// The structs of every item the room holds, per client.
#[derive(Debug, Clone, Default)]
pub struct RightOrigins {
    /// Per client: sorted, not overlapping; a range continuing the one before it (as yrs merges items) is merged.
    clients: HashMap<u64, Vec<Kept>>,
}

/// The new structs of an update, per client in clock order: what to keep of it once yrs integrated them.
#[derive(Debug, Clone, Default)]
pub struct Marked(HashMap<u64, Vec<Kept>>);

impl Marked {
    /// Nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl RightOrigins {
    /// Whether the room's item holding `clock` of `client` names a right origin it vouches for.
    #[cfg(test)]
    fn has(&self, client: u64, clock: u32) -> bool {
        self.clients
            .get(&client)
            .and_then(|list| find(list, clock))
            .is_some_and(|k| k.vouched)
    }

    /// The range holding `id`: the room's, or (for clocks past `known`) the update's read so far.
    fn at(
        &self,
        new: &HashMap<u64, Vec<Kept>>,
        known: &impl Fn(u64) -> u32,
        id: (u64, u32),
    ) -> Option<Kept> {
        let (client, clock) = id;
        let list = if clock < known(client) {
            self.clients.get(&client)?
        } else {
            new.get(&client)?
        };
        find(list, clock).copied()
    }

    /// Marks which of the `named` new structs (client, index in `new`) the room vouches for. Whatever order the
    /// update lists them in (a snapshot lists clients by descending id, a crafted update in any order), as the live
    /// room did when they came one by one: a struct vouched for by its origin's item follows that item's chain
    /// first, each struct decided once.
    fn vouch_for(
        &self,
        new: &mut HashMap<u64, Vec<Kept>>,
        named: &[(u64, usize)],
        known: &impl Fn(u64) -> u32,
    ) {
        let is_named: HashSet<(u64, usize)> = named.iter().copied().collect();
        let mut decided: HashMap<(u64, usize), bool> = HashMap::new();
        for &first in named {
            let mut path = Vec::new();
            let mut at = first;
            let vouched = loop {
                if let Some(&v) = decided.get(&at) {
                    break v;
                }
                // Origins in a loop (no update yrs integrates has them): not vouched for.
                if path.len() > named.len() {
                    break false;
                }
                // Not among the named (a struct the room has the start of, or naming no right origin).
                if !is_named.contains(&at) {
                    break false;
                }
                let Some(k) = new.get(&at.0).and_then(|list| list.get(at.1)).copied() else {
                    break false;
                };
                let (Some(origin), Some(right)) = (k.origin, k.right) else {
                    break k.right.is_some();
                };
                let rights_origin = self
                    .at(new, known, right)
                    .and_then(|r| r.origin_of(right.0, right.1));
                if rights_origin == Some(origin) {
                    break true;
                }
                if origin.1 < known(origin.0) {
                    break self
                        .at(new, known, origin)
                        .is_some_and(|o| o.vouched && o.right == Some(right));
                }
                let Some(list) = new.get(&origin.0) else {
                    break false;
                };
                let i = list.partition_point(|o| o.end <= origin.1);
                match list.get(i).filter(|o| o.start <= origin.1) {
                    Some(o) if o.right == Some(right) => {
                        path.push(at);
                        at = (origin.0, i);
                    }
                    _ => break false,
                }
            };
            decided.insert(at, vouched);
            for p in path {
                decided.insert(p, vouched);
            }
        }
        for (&(client, i), &vouched) in &decided {
            if let Some(k) = new.get_mut(&client).and_then(|list| list.get_mut(i)) {
                k.vouched = vouched && is_named.contains(&(client, i));
            }
        }
    }

    /// Reads the structs of an update about to be given to yrs, for a document whose state vector gives
    /// `known(client)` (only clocks past it are new: yrs skips the others). With `refuse`, an update holding a new
    /// item naming no right origin whose origin's item — in the room, or new in this update — names one the room
    /// vouches for is refused. An origin that is in neither is not judged here (yrs cannot place the item yet: it
    /// waits, and is read again when it continues).
    pub fn measure(
        &self,
        needs: &Needs,
        known: impl Fn(u64) -> u32,
        refuse: bool,
    ) -> Result<Marked, EndsTooEarly> {
        let mut new: HashMap<u64, Vec<Kept>> = HashMap::new();
        // The origins of the new items naming no right origin.
        let mut unnamed = Vec::new();
        // The new items naming a right origin the room may vouch for, once every new struct is read.
        let mut named = Vec::new();
        for run in &needs.runs {
            for s in &run.structs {
                let end = s.clock.saturating_add(s.len);
                let from = s.clock.max(known(run.client));
                if from >= end || s.skip {
                    continue;
                }
                // A struct the room has the start of is cut by yrs: its new part's origin is its own clock before,
                // and the room does not vouch for its right origin (nor judge it).
                let whole = from == s.clock;
                let origin = if whole {
                    s.origin
                } else {
                    Some((run.client, from - 1))
                };
                if let (None, Some(origin), true) = (s.right_origin, origin, whole) {
                    unnamed.push(origin);
                }
                let list = new.entry(run.client).or_default();
                if s.right_origin.is_some() && whole {
                    named.push((run.client, list.len()));
                }
                list.push(Kept {
                    start: from,
                    end,
                    origin,
                    right: s.right_origin,
                    vouched: false,
                });
            }
        }
        self.vouch_for(&mut new, &named, &known);
        if refuse {
            if let Some(&origin) = unnamed
                .iter()
                .find(|&&o| self.at(&new, &known, o).is_some_and(|k| k.vouched))
            {
                return Err(EndsTooEarly { origin });
            }
        }
        Ok(Marked(new))
    }

    /// Keeps what of `marked` yrs integrated: the clocks in `inserted` (client, first clock, end clock).
    pub fn keep(&mut self, marked: Marked, inserted: &[(u64, u32, u32)]) {
        let mut by_client: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
        for &(client, start, end) in inserted {
            by_client.entry(client).or_default().push((start, end));
        }
        for (client, structs) in marked.0 {
            let Some(ranges) = by_client.get(&client) else {
                continue;
            };
            for k in structs {
                for &(start, end) in ranges {
                    let (from, to) = (k.start.max(start), k.end.min(end));
                    if from >= to {
                        continue;
                    }
                    let piece = if from == k.start {
                        Kept { end: to, ..k }
                    } else {
                        Kept {
                            start: from,
                            end: to,
                            origin: Some((client, from - 1)),
                            vouched: false,
                            ..k
                        }
                    };
                    self.keep_piece(client, piece);
                }
            }
        }
    }

    /// Adds `piece` of `client`, merged into the range before it when it continues that range as yrs merges items
    /// (next clock, origin the clock before, same right origin and standing), so typing keeps one range per run.
    fn keep_piece(&mut self, client: u64, piece: Kept) {
        let list = self.clients.entry(client).or_default();
        let at = list.partition_point(|k| k.start < piece.start);
        if let Some(before) = at.checked_sub(1).map(|i| &mut list[i]) {
            if before.end == piece.start
                && piece.origin == Some((client, piece.start.wrapping_sub(1)))
                && before.right == piece.right
                && before.vouched == piece.vouched
            {
                before.end = piece.end;
                return;
            }
        }
        list.insert(at, piece);
    }
}

#[cfg(test)]
mod tests {
    use super::super::document::{CheckedUpdate, RoomDoc};
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update};

    use crate::room::order::write_var as var;

    fn apply(room: &mut RoomDoc, update: &[u8]) -> Result<(), String> {
        CheckedUpdate::decode(update)
            .and_then(|u| room.apply(u, 0))
            .map(drop)
            .map_err(|e| e.0)
    }

    fn text_of(room: &RoomDoc) -> String {
        room.to_json()["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Client `a`'s "a" × `n` before its "Z" (Z is a#0, the long item a#1..=n with right origin a#0).
    fn long_item(a: u64, n: usize) -> Vec<u8> {
        let doc = Doc::with_client_id(a);
        let text = doc.get_or_insert_text("text");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "Z");
        text.insert(&mut txn, 0, &"a".repeat(n));
        txn.encode_update_v1()
    }

    /// Client `b`'s one-character items from clock `clock`, each after a#k for k in `origins`; with `right`, each
    /// names that right origin.
    fn after_each(
        a: u64,
        b: u64,
        clock: u64,
        origins: &[u64],
        right: Option<(u64, u64)>,
    ) -> Vec<u8> {
        let mut u = Vec::new();
        for v in [1, origins.len() as u64, b, clock] {
            var(&mut u, v);
        }
        for &k in origins {
            u.push(if right.is_some() { 0xC4 } else { 0x84 });
            var(&mut u, a);
            var(&mut u, k);
            if let Some((c, r)) = right {
                var(&mut u, c);
                var(&mut u, r);
            }
            u.extend([1, b'b']);
        }
        u.push(0);
        u
    }

    #[test]
    fn items_ending_the_list_inside_an_item_with_a_right_origin_are_refused_however_sent() {
        // The review's shape: B's one-character items, each after one of A's characters, naming no right origin.
        // A snapshot of 4,000 of them took 4 s to load on the host (9.6 s in descending order, which took 8.3 s
        // live too); 18,000 took 47 s to reload a room in workerd.
        let n = 4_000u64;
        let ascending: Vec<u64> = (1..=n).collect();
        let descending: Vec<u64> = (1..=n).rev().collect();
        let (big, small) = ((1u64 << 53) - 1, (1u64 << 53) - 2);
        for (a, b) in [(big, small), (small, big)] {
            for (order, origins) in [("ascending", &ascending), ("descending", &descending)] {
                // In one update, and one item per update.
                for per in [origins.len(), 1] {
                    let case = format!("a={a} b={b} {order}, {per} per update");
                    let mut room = RoomDoc::new();
                    apply(&mut room, &long_item(a, n as usize)).expect("the long item is taken");
                    let mut refused = 0;
                    // (Each refused, so each starts at B's clock 0; one per update comes from a client of its own.)
                    for (i, chunk) in origins.chunks(per).enumerate() {
                        let sender = if per == 1 { 1_000 + i as u64 } else { b };
                        let update = after_each(a, sender, 0, chunk, None);
                        let why = apply(&mut room, &update).expect_err(&case);
                        assert!(why.contains("names no right origin"), "{case}: {why}");
                        refused += 1;
                        if refused == 3 {
                            break;
                        }
                    }
                    assert!(
                        !text_of(&room).contains('b'),
                        "{case}: nothing of B's is taken"
                    );
                }
            }
        }
        // With A's item in the same update (a sync step 2 carrying both).
        let both = {
            let mut room = yrs::Doc::new();
            let mut txn = room.transact_mut();
            txn.apply_update(Update::decode_v1(&long_item(big, 100)).unwrap())
                .unwrap();
            txn.apply_update(Update::decode_v1(&after_each(big, 5, 0, &[50], None)).unwrap())
                .unwrap();
            drop(txn);
            let bytes = room
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            room = Doc::new();
            drop(room);
            bytes
        };
        let mut room = RoomDoc::new();
        assert!(
            apply(&mut room, &both).is_err(),
            "refused within one update"
        );
        // Sent before A's item: it waits, and is dropped when it would continue.
        let mut room = RoomDoc::new();
        apply(&mut room, &after_each(big, 5, 0, &[10, 20], None)).expect("it waits");
        apply(&mut room, &long_item(big, 100)).expect("the long item is taken");
        assert_eq!(
            text_of(&room),
            format!("{}Z", "a".repeat(100)),
            "B's items dropped"
        );
        // Honest inserts inside A's item (naming the next character, or Z) and at its end (after Z) are taken.
        let mut room = RoomDoc::new();
        apply(&mut room, &long_item(big, 100)).expect("the long item is taken");
        apply(&mut room, &after_each(big, 5, 0, &[10, 20], Some((big, 0))))
            .expect("right origin Z");
        apply(&mut room, &after_each(big, 5, 2, &[30], Some((big, 31))))
            .expect("the next character");
        apply(&mut room, &after_each(big, 5, 3, &[0], None)).expect("after Z, the end");
        assert_eq!(text_of(&room).matches('b').count(), 4);
    }

    /// A client of a simulated session: its document, its undo manager, and the updates it has yet to send and to
    /// receive.
    struct Client {
        doc: Doc,
        text: yrs::TextRef,
        undo: yrs::UndoManager,
        outbox: Vec<Vec<u8>>,
        inbox: Vec<Vec<u8>>,
    }

    /// `clients` Yjs clients editing one text through a room for `edits` local edits, messages delayed at random
    /// (so edits are concurrent), each edit chosen by `pick` from a random number. Every update the room gets must
    /// be taken, and everyone ends with the room's text, as does a room rebuilt from its snapshot.
    fn session(clients: usize, edits: usize, seed: u64, pick: &Pick<'_>) {
        let mut rng = seed;
        let mut next = move || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng >> 33
        };
        let mut room = RoomDoc::new();
        let mut all: Vec<Client> = (0..clients)
            .map(|i| {
                // Ids on both sides of one another, as random ids are.
                let id = if i % 2 == 0 {
                    1_000 + i as u64
                } else {
                    (1 << 52) - i as u64
                };
                let doc = Doc::with_client_id(id);
                let text = doc.get_or_insert_text("text");
                let mut undo = yrs::UndoManager::with_options(yrs::undo::Options {
                    capture_timeout_millis: 0,
                    ..Default::default()
                });
                undo.expand_scope(&doc, &text);
                Client {
                    doc,
                    text,
                    undo,
                    outbox: Vec::new(),
                    inbox: Vec::new(),
                }
            })
            .collect();
        let mut made = 0;
        let mut taken = 0;
        while made < edits {
            let i = next() as usize % clients;
            match next() % 8 {
                0..=4 => {
                    let c = &mut all[i];
                    let edit = pick(next(), c);
                    let len = c.text.len(&c.doc.transact());
                    // What a Yjs client sends: the transaction's own update.
                    let update = match edit {
                        Edit::Insert(at, s) => {
                            let mut txn = c.doc.transact_mut();
                            c.text.insert(&mut txn, at.min(len), &s);
                            txn.encode_update_v1()
                        }
                        Edit::Delete(at, n) if len > 0 => {
                            let at = at.min(len - 1);
                            let mut txn = c.doc.transact_mut();
                            c.text.remove_range(&mut txn, at, n.min(len - at));
                            txn.encode_update_v1()
                        }
                        Edit::Delete(..) => continue,
                        Edit::Undo | Edit::Redo => {
                            let before = c.doc.transact().state_vector();
                            if matches!(edit, Edit::Undo) {
                                c.undo.undo_blocking();
                            } else {
                                c.undo.redo_blocking();
                            }
                            c.doc.transact().encode_state_as_update_v1(&before)
                        }
                    };
                    c.outbox.push(update);
                    made += 1;
                }
                5 | 6 => {
                    for update in std::mem::take(&mut all[i].outbox) {
                        apply(&mut room, &update).unwrap_or_else(|e| {
                            panic!("seed {seed}: edit {made} of client {i} refused: {e}")
                        });
                        taken += 1;
                        for (j, other) in all.iter_mut().enumerate() {
                            if j != i {
                                other.inbox.push(update.clone());
                            }
                        }
                    }
                }
                _ => receive(&mut all[i]),
            }
        }
        for i in 0..clients {
            for update in std::mem::take(&mut all[i].outbox) {
                apply(&mut room, &update).expect("taken");
                for (j, other) in all.iter_mut().enumerate() {
                    if j != i {
                        other.inbox.push(update.clone());
                    }
                }
            }
        }
        let text = text_of(&room);
        for c in &mut all {
            receive(c);
            assert_eq!(
                c.text.get_string(&c.doc.transact()),
                text,
                "seed {seed}: converged"
            );
        }
        let snapshot = room.snapshot();
        let (rebuilt, skipped) =
            RoomDoc::rebuild(Some(&snapshot.doc), [], [], 0).expect("rebuilds");
        assert_eq!(
            (text_of(&rebuilt), skipped),
            (text, 0),
            "seed {seed}: rebuilt"
        );
        assert!(taken > edits / 2);
    }

    fn receive(c: &mut Client) {
        for update in std::mem::take(&mut c.inbox) {
            let mut txn = c.doc.transact_mut_with("room");
            txn.apply_update(Update::decode_v1(&update).unwrap())
                .unwrap();
        }
    }

    /// How a client chooses its next edit, from a random number.
    type Pick<'a> = dyn Fn(u64, &Client) -> Edit + 'a;

    enum Edit {
        Insert(u32, String),
        Delete(u32, u32),
        Undo,
        Redo,
    }

    /// Each pattern with 3 and 8 clients, 300 edits each, all taken whole. (2,000 edits each and a 20,000-edit mixed
    /// session, with three seeds, were all taken too when the rule was written and at each review; at about a minute of
    /// a debug build they are not part of the suite.)
    #[test]
    fn honest_sessions_are_taken_whole() {
        let len = |c: &Client| c.text.len(&c.doc.transact());
        // Typing at one spot (the middle), at the end, type-delete-retype at the end, pasting anywhere, undo and
        // redo, and all of them mixed.
        let spot = |_: u64, c: &Client| Edit::Insert(len(c) / 2, "s".into());
        let end = |_: u64, c: &Client| Edit::Insert(len(c), "e".into());
        let retype = |r: u64, c: &Client| match r % 3 {
            0 => Edit::Delete(len(c).saturating_sub(1), 1),
            _ => Edit::Insert(len(c), "r".into()),
        };
        let paste = |r: u64, c: &Client| match r % 4 {
            0 => Edit::Insert(
                r as u32 % (len(c) + 1),
                "pasted text ".repeat(1 + r as usize % 20),
            ),
            1 => Edit::Delete(r as u32 % (len(c) + 1), 1 + r as u32 % 50),
            _ => Edit::Insert(len(c), "x".into()),
        };
        let undo = |r: u64, c: &Client| match r % 6 {
            0 => Edit::Undo,
            1 => Edit::Redo,
            2 => Edit::Delete(len(c).saturating_sub(2), 2),
            3 => Edit::Insert(r as u32 % (len(c) + 1), "u".into()),
            _ => Edit::Insert(len(c), "v".into()),
        };
        let mixed = |r: u64, c: &Client| match (r >> 8) % 5 {
            0 => spot(r, c),
            1 => end(r, c),
            2 => retype(r, c),
            3 => paste(r, c),
            _ => undo(r, c),
        };
        let picks: [(&str, &Pick<'_>); 6] = [
            ("one spot", &spot),
            ("the end", &end),
            ("retype at the end", &retype),
            ("paste", &paste),
            ("undo and redo", &undo),
            ("mixed", &mixed),
        ];
        for (what, pick) in picks {
            for clients in [3, 8] {
                eprintln!("{what}, {clients} clients");
                session(clients, 300, clients as u64, pick);
            }
        }
    }

    #[test]
    fn kept_structs_merge_when_they_continue_and_answer_for_every_clock() {
        let mut ends = RightOrigins::default();
        let piece = |start, end, origin, vouched| Kept {
            start,
            end,
            origin,
            right: Some((9, 0)),
            vouched,
        };
        for p in [
            piece(10, 12, None, true),
            piece(12, 14, Some((7, 11)), true), // continues 10..12
            piece(20, 25, Some((3, 1)), true),  // another origin
            piece(30, 31, Some((7, 24)), false), // not vouched
            piece(31, 33, Some((7, 30)), true), // continues, but vouched where 30 is not
        ] {
            ends.keep_piece(7, p);
        }
        let ranges: Vec<(u32, u32)> = ends.clients[&7].iter().map(|k| (k.start, k.end)).collect();
        assert_eq!(ranges, vec![(10, 14), (20, 25), (30, 31), (31, 33)]);
        let has: Vec<u32> = (0..40).filter(|&k| ends.has(7, k)).collect();
        let want: Vec<u32> = (10..14).chain(20..25).chain(31..33).collect();
        assert_eq!(has, want);
        assert!(!ends.has(8, 10), "another client");
    }

    /// A member's item naming a right origin that is not right of its origin (here the text's first character,
    /// after its last) is placed by Yjs and yrs at the list's end; every honest client then appends after it naming
    /// no right origin — Yjs does (checked with the `yjs` package: origin 200#0, right origin null) — and the rule
    /// refuses that honest edit (1007), for good: the client resends it on every reconnect. The same with a map
    /// key: a crafted value naming any right origin becomes the key's value, and every later `set` of the key is
    /// refused. (Found in review; the room now counts only right origins it can vouch for.)
    #[test]
    fn a_crafted_right_origin_does_not_make_honest_appends_refused() {
        let honest = Doc::with_client_id(100);
        let text = honest.get_or_insert_text("text");
        let mut room = RoomDoc::new();
        let typed = {
            let mut txn = honest.transact_mut();
            text.insert(&mut txn, 0, "hello");
            txn.encode_update_v1()
        };
        apply(&mut room, &typed).expect("honest typing");
        // Member 200's "b" after 100#4 (the last character) naming 100#0 (the first) as its right origin.
        let crafted = after_each(100, 200, 0, &[4], Some((100, 0)));
        apply(&mut room, &crafted).expect("the room takes it");
        honest
            .transact_mut()
            .apply_update(Update::decode_v1(&crafted).unwrap())
            .unwrap();
        assert_eq!(text.get_string(&honest.transact()), "hellob");
        let appended = {
            let mut txn = honest.transact_mut();
            text.insert(&mut txn, 6, "!");
            txn.encode_update_v1()
        };
        apply(&mut room, &appended).expect("an honest append after the crafted item is taken");

        // A map value naming a right origin (a character of the text) becomes the key's value.
        let map = honest.get_or_insert_map("map");
        let set = |value: &str| {
            let mut txn = honest.transact_mut();
            map.insert(&mut txn, "k", value);
            txn.encode_update_v1()
        };
        apply(&mut room, &set("v1")).expect("an honest set");
        let value = honest
            .transact()
            .state_vector()
            .get(&yrs::ClientID::new(100))
            - 1;
        let mut crafted = Vec::new();
        for v in [1, 1, 300, 0] {
            var(&mut crafted, v);
        }
        crafted.push(0xC4); // a string item with an origin and a right origin
        for v in [100, value as u64, 100, 0] {
            var(&mut crafted, v);
        }
        crafted.extend([1, b'x', 0]);
        apply(&mut room, &crafted).expect("the room takes it");
        honest
            .transact_mut()
            .apply_update(Update::decode_v1(&crafted).unwrap())
            .unwrap();
        assert_eq!(
            map.get(&honest.transact(), "k")
                .map(|v| v.to_string(&honest.transact())),
            Some("x".to_owned())
        );
        apply(&mut room, &set("v2")).expect("an honest set after the crafted value is taken");
    }

    #[test]
    fn items_inside_a_long_item_typed_between_two_characters_are_refused() {
        // The long item in the middle of a text, pasted whole or typed a character at a time (each naming the next
        // character as its right origin): the room vouches for that right origin, so the shape is refused there too.
        let (a, b) = (1u64 << 40, 5u64);
        for per_character in [false, true] {
            let doc = Doc::with_client_id(a);
            let text = doc.get_or_insert_text("text");
            let mut room = RoomDoc::new();
            let mut send = |f: &dyn Fn(&mut yrs::TransactionMut)| {
                let mut txn = doc.transact_mut();
                f(&mut txn);
                let update = txn.encode_update_v1();
                drop(txn);
                apply(&mut room, &update).expect("honest typing");
            };
            send(&|txn| text.insert(txn, 0, "PQ"));
            if per_character {
                for i in 0..100 {
                    send(&|txn| text.insert(txn, 1 + i, "a"));
                }
            } else {
                send(&|txn| text.insert(txn, 1, &"a".repeat(100)));
            }
            // a#2..=101 are the long item's characters.
            let why = apply(&mut room, &after_each(a, b, 0, &[10, 20, 30], None))
                .expect_err("items naming no right origin inside it");
            assert!(why.contains("names no right origin"), "{why}");
            apply(&mut room, &after_each(a, b, 0, &[10], Some((a, 11))))
                .expect("an honest insert inside it");
            apply(&mut room, &after_each(a, b, 1, &[1], None)).expect("after Q, the text's end");
        }
    }

    /// What the room took live is taken again when it reloads: a reload reads the snapshot's items, which yrs
    /// merges where the live room kept two ranges, and so may vouch for a right origin the live room did not (here,
    /// the part past the room's clock of a struct restating an item the room has). An item after that one, naming
    /// no right origin, was taken and relayed live, then refused when the log was replayed on reload: dropped from
    /// the room though every member holds it, so every later edit of theirs after it waited for good.
    #[test]
    fn what_was_taken_live_is_taken_again_on_reload() {
        let honest = Doc::with_client_id(100);
        let text = honest.get_or_insert_text("text");
        let mut room = RoomDoc::new();
        let typed = {
            let mut txn = honest.transact_mut();
            text.insert(&mut txn, 0, "PQ");
            txn.encode_update_v1()
        };
        apply(&mut room, &typed).expect("honest typing");
        // Client 7's "xx" between P and Q (vouched for), then the same item restated as "xxxx".
        let between = |n: usize| {
            let mut u = Vec::new();
            for v in [1, 1, 7, 0] {
                var(&mut u, v);
            }
            u.push(0xC4);
            for v in [100, 0, 100, 1, n as u64] {
                var(&mut u, v);
            }
            u.extend("x".repeat(n).bytes());
            u.push(0);
            u
        };
        apply(&mut room, &between(2)).expect("taken");
        apply(&mut room, &between(4)).expect("taken");
        let snapshot = room.snapshot();
        // 3#0 after 7#3 naming no right origin: taken live.
        let after = after_each(7, 3, 0, &[3], None);
        apply(&mut room, &after).expect("taken live");
        let live = text_of(&room);
        let (reloaded, skipped) =
            RoomDoc::rebuild(Some(&snapshot.doc), [&after[..]], [], 0).expect("rebuilds");
        assert_eq!((text_of(&reloaded), skipped), (live, 0));
    }

    #[test]
    fn a_reload_vouches_for_what_the_live_room_did_whatever_order_the_clients_come_in() {
        // A client pastes a long item between two characters of a client with a lower id. A snapshot lists the
        // higher id first, and the reload read the long item before the character its right origin is: it no
        // longer vouched for it, and took the costly shape inside it the live room refused.
        let (a, b) = (5u64, 1u64 << 40);
        let writer = Doc::with_client_id(a);
        let text = writer.get_or_insert_text("text");
        let typed = {
            let mut txn = writer.transact_mut();
            text.insert(&mut txn, 0, "PQ");
            txn.encode_update_v1()
        };
        let paster = Doc::with_client_id(b);
        let pasted_text = paster.get_or_insert_text("text");
        paster
            .transact_mut()
            .apply_update(Update::decode_v1(&typed).unwrap())
            .unwrap();
        let pasted = {
            let mut txn = paster.transact_mut();
            pasted_text.insert(&mut txn, 1, &"a".repeat(100));
            txn.encode_update_v1()
        };
        let mut room = RoomDoc::new();
        apply(&mut room, &typed).expect("honest typing");
        apply(&mut room, &pasted).expect("honest paste");
        let costly = after_each(b, 9, 0, &[10, 20, 30], None);
        let live = apply(&mut room, &costly).expect_err("refused live");
        let (mut reloaded, _) =
            RoomDoc::rebuild(Some(&room.snapshot().doc), [], [], 0).expect("rebuilds");
        let why = apply(&mut reloaded, &costly).expect_err("refused after a reload");
        assert_eq!(why, live);
    }
}
