//! How deep shared types nest in a room's document. yrs deletes a shared type by recursing into the types it holds
//! (so does Yjs, and so does rendering one as JSON): a chain of 5,000 maps nested one in another — about 40 KB of
//! updates, sent a little at a time — overflows a 1 MB stack when its outer map is deleted. In the room that trap
//! would reset the object, and every later deletion of the chain would reset it again. So a room refuses an update
//! that would nest a type deeper than [`MAX_TYPE_DEPTH`].
//!
//! yrs does not say where an item sits, so the room keeps its own account, read from the links the shape check
//! records (`order::Link`): an item names its parent (a root, or the item holding a nested type) or takes
//! the parent of the neighbour it was inserted beside. Only items inside nested types are kept (a root's items are
//! the default), as clock ranges per client with the depth of their parent, so a room of plain text keeps nothing.
//! Where yrs could place an item otherwise than its link says, the account takes the deepest candidate, which for
//! an honest update are one and the same: an item with both neighbours is as deep as the deeper one's parent (yrs
//! takes the right one's when the left is a collected range), and a struct the document has the start of is cut by
//! yrs and its new part linked after the document's last item of that client (whatever parent it names; deletion
//! recurses along those links). Only what yrs integrated is kept, after it did. Pure.

use std::collections::HashMap;

use super::order::{Link, Needs};

/// How deep shared types may nest: a root's children are at depth 1. Rich-text editors nest a node per list or
/// quote level and a document model's JSON a few dozen levels; a chain this deep deletes and renders on the room's
/// stack many times over (the Miniflare tests delete and render one at the limit).
pub const MAX_TYPE_DEPTH: u32 = 128;

/// Kept for the clocks of collected ranges (GC structs): no list, no parent — yrs links nothing after them.
const COLLECTED: u32 = u32::MAX;

/// A kept value as a depth: a collected range counts as a root's.
fn depth_of(kept: u32) -> u32 {
    if kept == COLLECTED {
        0
    } else {
        kept
    }
}

/// Why an update is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplaceable {
    /// It would nest a shared type past [`MAX_TYPE_DEPTH`].
    TooDeep,
    /// It restates the start of an item the room has, naming the item's parent and a map key, goes on past it,
    /// and the parent it names is at another depth than the client's last item the room has: yrs links the new
    /// part after that item, in that item's list, yet records it as the named map's entry for the key — which then
    /// leads into the other list, where later entries of that key are linked, unmeasured (a review chained 10,000
    /// levels so). Yjs never merges a map entry with a live one after it, so an honest restatement with a key is a
    /// run of deleted entries, in the map that item is in. (Without a key, the new part's own depth counts the
    /// list it is linked into, and nothing else follows it there.)
    RestatesWithParent,
}

/// The depth of the parent of every item the room holds inside a nested type.
#[derive(Debug, Clone, Default)]
pub struct Depths {
    /// Per client: (first clock, end clock, depth of the items' parent type), sorted, not overlapping (a client's
    /// clocks grow, so ranges are added at the end).
    clients: HashMap<u64, Vec<(u32, u32, u32)>>,
}

/// The new clocks of an update's structs with the depth of their parent (see [`Depths::measure`]): what to keep
/// of it once yrs integrated them.
#[derive(Debug, Clone, Default)]
pub struct Measured(Vec<(u64, u32, u32, u32)>);

impl Measured {
    /// Nothing to keep (the usual update: plain text, or only what the room has).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Depths {
    /// What is kept for the item holding `clock`: the depth of its parent, [`COLLECTED`], or 0 (a root) for items
    /// kept nowhere.
    fn parent_depth(&self, client: u64, clock: u32) -> u32 {
        let Some(ranges) = self.clients.get(&client) else {
            return 0;
        };
        let after = ranges.partition_point(|&(start, _, _)| start <= clock);
        match after.checked_sub(1).map(|i| ranges[i]) {
            Some((_, end, depth)) if clock < end => depth,
            _ => 0,
        }
    }

    /// Measures the structs of an update about to be given to yrs, for a document whose state vector gives
    /// `known(client)`: only clocks past it are new (yrs skips the others). With `limit`, an update that would nest
    /// a new type deeper is refused. An item whose neighbours or parent are neither kept nor in the update counts as
    /// a root's (yrs cannot place it either: it stays pending, or is collected).
    pub fn measure(
        &self,
        needs: &Needs,
        known: impl Fn(u64) -> u32,
        limit: Option<u32>,
    ) -> Result<Measured, Unplaceable> {
        let has_new = needs.runs.iter().any(|run| {
            run.structs
                .last()
                .is_some_and(|s| s.clock.saturating_add(s.len) > known(run.client))
        });
        if !has_new {
            return Ok(Measured::default());
        }
        let (depths, misplaced) = self.parent_depths(needs, &known);
        let mut new = Vec::new();
        let structs = needs
            .runs
            .iter()
            .flat_map(|run| run.structs.iter().map(move |s| (run.client, s)));
        for (((client, s), depth), misplaced) in structs.zip(depths).zip(misplaced) {
            let end = s.clock.saturating_add(s.len);
            let from = s.clock.max(known(client));
            if from >= end {
                continue;
            }
            if limit.is_some() && misplaced {
                return Err(Unplaceable::RestatesWithParent);
            }
            if limit.is_some_and(|limit| s.creates_type && depth >= limit) {
                return Err(Unplaceable::TooDeep);
            }
            if s.link == Link::None && !s.skip {
                new.push((client, from, end, COLLECTED));
            } else if depth > 0 {
                new.push((client, from, end, depth));
            }
        }
        Ok(Measured(new))
    }

    /// Keeps what of `measured` yrs integrated: the clocks in `inserted` (client, first clock, end clock).
    pub fn keep(&mut self, measured: Measured, inserted: &[(u64, u32, u32)]) {
        for (client, from, to, depth) in measured.0 {
            for &(_, start, end) in inserted.iter().filter(|(c, _, _)| *c == client) {
                let (from, to) = (from.max(start), to.min(end));
                if from < to {
                    self.keep_range(client, from, to, depth);
                }
            }
        }
    }

    /// Keeps `from..to` of `client` at `depth`, where nothing is kept yet (clocks are integrated once, so only a
    /// room whose document yrs rebuilt around what it held pending can see a clock again).
    fn keep_range(&mut self, client: u64, from: u32, to: u32, depth: u32) {
        let ranges = self.clients.entry(client).or_default();
        // The gaps of `from..to` between what is kept.
        let mut gaps = Vec::new();
        let mut at = from;
        let first = ranges.partition_point(|&(_, end, _)| end <= from);
        for &(start, end, _) in &ranges[first..] {
            if start >= to {
                break;
            }
            if start > at {
                gaps.push((at, start));
            }
            at = at.max(end);
        }
        if at < to {
            gaps.push((at, to));
        }
        for (from, to) in gaps {
            let after = ranges.partition_point(|&(start, _, _)| start <= from);
            match after.checked_sub(1).map(|i| &mut ranges[i]) {
                // Continues the range before it at the same depth (a client typing into one nested text).
                Some((_, end, kept)) if *end == from && *kept == depth => *end = to,
                _ => ranges.insert(after, (from, to, depth)),
            }
        }
    }

    /// The depth of each struct's parent, in the order of the update's runs and structs.
    /// With it, for each struct, whether it is cut by yrs and names a parent at another depth than the list its new
    /// part is linked into (see [`Unplaceable::RestatesWithParent`]).
    fn parent_depths(&self, needs: &Needs, known: &impl Fn(u64) -> u32) -> (Vec<u32>, Vec<bool>) {
        let runs = needs.run_of_client();
        // Where each run's structs start in the flat order.
        let mut offsets = Vec::with_capacity(needs.runs.len());
        let mut total = 0;
        for run in &needs.runs {
            offsets.push(total);
            total += run.structs.len();
        }
        let flat: Vec<_> = needs
            .runs
            .iter()
            .flat_map(|run| run.structs.iter().map(move |s| (run.client, s)))
            .collect();
        // The struct of this update holding an id the document lacks (what it has is placed already).
        let find = |client: u64, clock: u32| -> Option<usize> {
            if clock < known(client) {
                return None;
            }
            let i = *runs.get(&client)?;
            let structs = &needs.runs[i].structs;
            let at = structs.partition_point(|s| s.clock + s.len <= clock);
            structs
                .get(at)
                .filter(|s| s.clock <= clock)
                .map(|_| offsets[i] + at)
        };
        #[derive(Clone, Copy)]
        enum State {
            New,
            Visiting,
            Done(u32),
        }
        let mut state = vec![State::New; total];
        let mut misplaced = vec![false; total];
        // Depth-first along each struct's links, without recursion (links can chain through the whole update); a
        // cycle, which yrs cannot integrate either, counts as a root.
        let mut stack = Vec::new();
        for start in 0..total {
            stack.push(start);
            'walk: while let Some(&j) = stack.last() {
                if let State::Done(_) = state[j] {
                    stack.pop();
                    continue;
                }
                let (client, s) = flat[j];
                let links = match s.link {
                    Link::None | Link::Root => &[][..],
                    Link::Parent | Link::Neighbour => &needs.deps[s.deps.0..s.deps.1],
                };
                let mut depth = 0;
                for &(c, k) in links {
                    let linked = match find(c, k).filter(|&t| t != j) {
                        Some(t) => match state[t] {
                            State::New => {
                                state[j] = State::Visiting;
                                stack.push(t);
                                continue 'walk;
                            }
                            State::Visiting => 0,
                            State::Done(depth) => depth,
                        },
                        None => depth_of(self.parent_depth(c, k)),
                    };
                    depth = depth.max(linked);
                }
                if s.link == Link::Parent {
                    depth = depth.saturating_add(1);
                }
                // Cut by yrs at the document's clock: the new part follows the client's last item there.
                let have = known(client);
                if s.clock < have && have < s.clock.saturating_add(s.len) {
                    // (After a collected range yrs links nothing: the new part is collected too.)
                    let there = self.parent_depth(client, have - 1);
                    misplaced[j] = s.keyed && there != COLLECTED && there != depth;
                    depth = depth.max(depth_of(there));
                }
                state[j] = State::Done(depth);
                stack.pop();
            }
        }
        let depths = state
            .into_iter()
            .map(|s| match s {
                State::Done(depth) => depth,
                State::New | State::Visiting => 0,
            })
            .collect();
        (depths, misplaced)
    }
}

#[cfg(test)]
mod tests {
    use yrs::updates::decoder::Decode;
    use yrs::{
        Array, ArrayPrelim, ArrayRef, ClientID, Doc, Map, MapPrelim, MapRef, ReadTxn, StateVector,
        Text, TextPrelim, Transact, Update,
    };

    use super::*;
    use crate::room::shape::check_update_needs;

    /// A document with the room's account beside it.
    #[derive(Default)]
    struct Room {
        doc: Doc,
        depths: Depths,
    }

    impl Room {
        fn offer(&mut self, update: &[u8], limit: Option<u32>) -> Result<(), Unplaceable> {
            let (_, needs) = check_update_needs(update).expect("passes the shape check");
            let mut txn = self.doc.transact_mut();
            let state = txn.state_vector();
            let measured = self
                .depths
                .measure(&needs, |c| state.get(&ClientID::new(c)), limit)?;
            txn.apply_update(Update::decode_v1(update).expect("decodes"))
                .expect("applies");
            let inserted: Vec<(u64, u32, u32)> = txn
                .insert_set()
                .iter()
                .flat_map(|(c, ranges)| ranges.iter().map(move |r| (c.get(), r.start, r.end)))
                .collect();
            self.depths.keep(measured, &inserted);
            Ok(())
        }

        fn offer_all(&mut self, updates: &[Vec<u8>]) -> Result<(), Unplaceable> {
            updates
                .iter()
                .try_for_each(|u| self.offer(u, Some(MAX_TYPE_DEPTH)))
        }
    }

    /// The update `f` makes to `doc`.
    fn edit(doc: &Doc, f: impl FnOnce(&mut yrs::TransactionMut)) -> Vec<u8> {
        let mut txn = doc.transact_mut();
        f(&mut txn);
        txn.encode_update_v1()
    }

    /// Maps nested `levels` deep under root map "m", one update per level: each names its parent.
    fn nested_maps(doc: &Doc, levels: usize) -> (Vec<Vec<u8>>, MapRef) {
        let mut cur = doc.get_or_insert_map("m");
        let mut updates = Vec::new();
        for _ in 0..levels {
            let mut next = None;
            updates.push(edit(doc, |txn| {
                next = Some(cur.insert(txn, "a", MapPrelim::default()));
            }));
            cur = next.expect("inserted");
        }
        (updates, cur)
    }

    /// Arrays nested `levels` deep under root array "r", each inserted after a string in its parent, so it names
    /// no parent: only its neighbour.
    fn nested_arrays(doc: &Doc, levels: usize) -> (Vec<Vec<u8>>, ArrayRef) {
        let mut cur = doc.get_or_insert_array("r");
        let mut updates = Vec::new();
        for _ in 0..levels {
            updates.push(edit(doc, |txn| {
                cur.push_back(txn, "x");
            }));
            let mut next = None;
            updates.push(edit(doc, |txn| {
                next = Some(cur.push_back(txn, ArrayPrelim::default()));
            }));
            cur = next.expect("inserted");
        }
        (updates, cur)
    }

    #[test]
    fn maps_nest_to_the_limit_and_no_further() {
        let author = Doc::with_client_id(1);
        let (updates, deepest) = nested_maps(&author, MAX_TYPE_DEPTH as usize);
        let mut room = Room::default();
        room.offer_all(&updates).expect("the limit is allowed");
        let deeper = edit(&author, |txn| {
            deepest.insert(txn, "a", MapPrelim::default());
        });
        assert_eq!(
            room.offer(&deeper, Some(MAX_TYPE_DEPTH)),
            Err(Unplaceable::TooDeep)
        );
        // A value at the deepest level, and a sibling type higher up, still go in.
        let value = edit(&author, |txn| {
            deepest.insert(txn, "v", 1);
        });
        room.offer(&value, Some(MAX_TYPE_DEPTH))
            .expect("a value at the limit");
    }

    #[test]
    fn arrays_placed_by_their_neighbours_nest_to_the_limit_and_no_further() {
        let author = Doc::with_client_id(2);
        let (updates, deepest) = nested_arrays(&author, MAX_TYPE_DEPTH as usize);
        let mut room = Room::default();
        room.offer_all(&updates).expect("the limit is allowed");
        let after_string = edit(&author, |txn| {
            deepest.push_back(txn, "x");
        });
        room.offer(&after_string, Some(MAX_TYPE_DEPTH))
            .expect("a string");
        let deeper = edit(&author, |txn| {
            deepest.push_back(txn, ArrayPrelim::default());
        });
        assert_eq!(
            room.offer(&deeper, Some(MAX_TYPE_DEPTH)),
            Err(Unplaceable::TooDeep)
        );
    }

    #[test]
    fn a_chain_built_by_two_clients_in_one_update_is_measured_across_them() {
        // Levels alternate between two clients, each syncing the other first; sent as one merged update, each
        // level's parent is in the other client's run of the same update.
        let chain = |levels: usize| -> Vec<u8> {
            let docs = [Doc::with_client_id(3), Doc::with_client_id(4)];
            let mut updates = Vec::new();
            let mut path: Vec<&str> = Vec::new();
            for level in 0..levels {
                let (doc, other) = (&docs[level % 2], &docs[(level + 1) % 2]);
                let mut cur = doc.get_or_insert_map("m");
                for _ in &path {
                    let txn = doc.transact();
                    cur = match cur.get(&txn, "a") {
                        Some(yrs::Out::YMap(m)) => m,
                        _ => panic!("the chain so far is there"),
                    };
                }
                let update = edit(doc, |txn| {
                    cur.insert(txn, "a", MapPrelim::default());
                });
                other
                    .transact_mut()
                    .apply_update(Update::decode_v1(&update).expect("decodes"))
                    .expect("applies");
                updates.push(update);
                path.push("a");
            }
            yrs::merge_updates_v1(updates).expect("merges")
        };
        let mut room = Room::default();
        room.offer(&chain(MAX_TYPE_DEPTH as usize), Some(MAX_TYPE_DEPTH))
            .expect("the limit is allowed");
        let mut room = Room::default();
        assert_eq!(
            room.offer(&chain(MAX_TYPE_DEPTH as usize + 1), Some(MAX_TYPE_DEPTH)),
            Err(Unplaceable::TooDeep)
        );
        // Refused whole: nothing of it was kept.
        assert!(room.depths.clients.is_empty());
    }

    #[test]
    fn a_snapshot_is_kept_as_it_is_and_bounds_what_follows() {
        let author = Doc::with_client_id(5);
        let (updates, deepest) = nested_arrays(&author, MAX_TYPE_DEPTH as usize);
        let mut room = Room::default();
        room.offer_all(&updates).expect("the limit is allowed");
        let snapshot = room
            .doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let mut reloaded = Room::default();
        reloaded.offer(&snapshot, None).expect("a snapshot is kept");
        let deeper = edit(&author, |txn| {
            deepest.push_back(txn, ArrayPrelim::default());
        });
        assert_eq!(
            reloaded.offer(&deeper, Some(MAX_TYPE_DEPTH)),
            Err(Unplaceable::TooDeep)
        );
    }

    #[test]
    fn typing_into_a_nested_text_keeps_one_range() {
        let author = Doc::with_client_id(6);
        let root = author.get_or_insert_map("m");
        let mut text = None;
        let first = edit(&author, |txn| {
            text = Some(root.insert(txn, "t", TextPrelim::new("")));
        });
        let text = text.expect("inserted");
        let mut room = Room::default();
        room.offer(&first, Some(MAX_TYPE_DEPTH)).expect("a text");
        for i in 0..200 {
            let keystroke = edit(&author, |txn| text.insert(txn, i, "k"));
            room.offer(&keystroke, Some(MAX_TYPE_DEPTH))
                .expect("a keystroke");
        }
        let kept = &room.depths.clients[&6];
        assert_eq!(kept.len(), 1, "one range: {kept:?}");
        assert_eq!(kept.first(), Some(&(1, 201, 1)));
    }
}
