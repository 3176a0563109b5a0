//! Yjs' integration order: which structs of an update continue from what a document has. Yjs integrates a client's
//! structs in clock order and keeps pending those that follow clocks it lacks or depend on ids it lacks. yrs
//! integrates such structs anyway when they depend on nothing missing, marking the gap with a skip, and from there
//! its state goes wrong (content integrated but not shown, snapshots and diffs that drop structs). So the room hands
//! yrs only what continues ([`Needs::split`]) and holds the rest back until it does. Pure: it reads the struct
//! positions the shape check recorded ([`super::shape`]) and cuts the update's bytes (v1 structs do not depend on
//! their position, so a client's structs can be re-framed with a header of their own).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// One struct of an update: its clocks, where its bytes are, and the ids it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Struct {
    pub clock: u32,
    pub len: u32,
    /// Byte range of the encoded struct in the update.
    pub bytes: (usize, usize),
    /// A skip: clocks the sender did not have.
    pub skip: bool,
    /// Range of its dependencies in [`Needs::deps`].
    pub deps: (usize, usize),
    /// Where its parent comes from: the first of its dependencies, or not.
    pub link: Link,
    /// An item whose content is a shared type (a map, array, text or XML node nested in the document).
    pub creates_type: bool,
    /// It names its parent with a map key.
    pub keyed: bool,
    /// Its origin (left neighbour when it was made), if it names one.
    pub origin: Option<(u64, u32)>,
    /// Its right origin (right neighbour when it was made), if it names one.
    pub right_origin: Option<(u64, u32)>,
}

/// Where a struct's parent type comes from, as Yjs reads it: an item with an origin (or, without one, a right
/// origin) has that neighbour's parent; one without either names its parent — a root type, or the item holding a
/// nested type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// GC and skip ranges, and empty items: no parent that matters.
    None,
    Root,
    /// Its first dependency is the item holding its parent type.
    Parent,
    /// Its first dependency is a neighbour in the same parent.
    Neighbour,
}

/// One client's structs in an update, in clock order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Run {
    pub client: u64,
    pub structs: Vec<Struct>,
}

/// What an update's structs need to be integrated in Yjs' order, read while checking its shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub(crate) runs: Vec<Run>,
    /// Ids the items depend on: their origins and parent items.
    pub(crate) deps: Vec<(u64, u32)>,
    /// Where the delete set starts in the update.
    pub(crate) delete_set_at: usize,
}

/// An update cut in two for a document: what continues from what it has, and what must wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// The structs that continue and the whole delete set (`None`: neither).
    pub ready: Option<Vec<u8>>,
    /// The structs that must wait, as an update of their own (`None`: everything continues).
    pub waiting: Option<Vec<u8>>,
}

impl Needs {
    /// Cuts `bytes` — the update these needs were read from — for a document whose state vector gives
    /// `known(client)`. A client's structs continue when the first starts at or below what the document has, up to
    /// a skip over clocks the document lacks, and up to the first struct depending on an id that is neither in the
    /// document nor among the continuing structs taken before it (nor an earlier clock of its own client) — so
    /// structs that depend only on one another wait. When everything continues, `ready` is `None` and `waiting`
    /// too: the update goes to yrs as it is.
    pub fn split(&self, bytes: &[u8], known: impl Fn(u64) -> u32) -> Split {
        // How many structs of each run continue.
        let cut: Vec<usize> = self
            .runs
            .iter()
            .map(|run| {
                let have = known(run.client);
                match run.structs.first() {
                    Some(first) if first.clock <= have => run
                        .structs
                        .iter()
                        .position(|s| s.skip && s.clock + s.len > have)
                        .unwrap_or(run.structs.len()),
                    _ => 0,
                }
            })
            .collect();
        let whole = |cut: &[usize]| {
            self.runs
                .iter()
                .zip(cut)
                .all(|(run, &n)| n == run.structs.len())
        };
        // The usual update continues whole and depends only on what the document has: no need for its own reach.
        if whole(&cut) && !self.cut_at_missing(&mut cut.clone(), &known) {
            return Split::default();
        }
        // Dependencies may point at other structs of the update: take, per client and in clock order, what can be
        // integrated in some order — never structs that only depend on one another, which yrs would hold pending.
        let cut = self.integrable(&cut, &known);
        if whole(&cut) {
            return Split::default();
        }
        let delete_set = &bytes[self.delete_set_at..];
        let sections = |pick: &dyn Fn(&Run, usize) -> &[Struct]| -> Vec<(u64, &[Struct])> {
            self.runs
                .iter()
                .zip(&cut)
                .map(|(run, &n)| (run.client, pick(run, n)))
                .filter(|(_, structs)| !structs.is_empty())
                .collect()
        };
        let ready = sections(&|run, n| &run.structs[..n]);
        let waiting = sections(&|run, n| &run.structs[n..]);
        let deletes = delete_set.first().is_some_and(|&clients| clients != 0);
        Split {
            ready: (!ready.is_empty() || deletes).then(|| encode(bytes, &ready, delete_set)),
            waiting: (!waiting.is_empty()).then(|| encode(bytes, &waiting, &[0])),
        }
    }

    /// The id of the first struct that restates the start of an item the document has (`known(client)` falls inside
    /// it) and names as its right origin the document's last clock of that client: yrs cuts it there, and its new
    /// part takes that id as its origin — an item between one id and itself, which the shape check refuses when it
    /// is declared (see `shape::check_update`). An honest restatement (a merged item a peer relays) names the right
    /// origin each of its pieces had, never its own left neighbour.
    pub fn restated_between_one_id(&self, known: impl Fn(u64) -> u32) -> Option<(u64, u32)> {
        self.runs.iter().find_map(|run| {
            let have = known(run.client);
            run.structs
                .iter()
                .filter(|s| !s.skip && s.clock < have && have < s.clock.saturating_add(s.len))
                .find(|s| s.right_origin == Some((run.client, have - 1)))
                .map(|s| (run.client, s.clock))
        })
    }

    /// Each client's run, by its index in [`Needs::runs`].
    pub(crate) fn run_of_client(&self) -> HashMap<u64, usize> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, run)| (run.client, i))
            .collect()
    }

    /// The clients whose clocks decide whether the update continues: its own and those it depends on.
    pub fn clients(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs
            .iter()
            .map(|run| run.client)
            .chain(self.deps.iter().map(|&(client, _)| client))
    }

    /// Cuts each run at its first struct (one the document lacks: yrs drops the others) depending on an id that is
    /// neither in the document nor an earlier clock of its own client. Whether any cut moved.
    fn cut_at_missing(&self, cut: &mut [usize], known: &impl Fn(u64) -> u32) -> bool {
        let mut changed = false;
        for (run, n) in self.runs.iter().zip(cut.iter_mut()) {
            let have = known(run.client);
            let blocked = run.structs[..*n].iter().position(|s| {
                s.clock + s.len > have
                    && self.deps[s.deps.0..s.deps.1]
                        .iter()
                        .any(|&(client, clock)| {
                            let in_document = clock < known(client);
                            let earlier_own = client == run.client && clock < s.clock;
                            !in_document && !earlier_own
                        })
            });
            if let Some(at) = blocked {
                *n = at;
                changed = true;
            }
        }
        changed
    }

    /// How many structs of each run (at most `bound`) can be integrated: a client's structs in clock order, each
    /// once every id it depends on is in the document, an earlier clock of its own, or in a struct taken before it.
    /// Structs that only depend on one another (a cycle) are not taken. A run blocked on an id waits for that id's
    /// client to get past it, so each struct is looked at once per id it waits for.
    fn integrable(&self, bound: &[usize], known: &impl Fn(u64) -> u32) -> Vec<usize> {
        let run_of = self.run_of_client();
        let mut taken = vec![0; self.runs.len()];
        // The clock each run's client is taken up to: the document's, or the end of its last struct taken.
        let reach = |taken: &[usize], client: u64| -> u32 {
            let have = known(client);
            match run_of.get(&client) {
                Some(&j) if taken[j] > 0 => {
                    let last = &self.runs[j].structs[taken[j] - 1];
                    have.max(last.clock + last.len)
                }
                _ => have,
            }
        };
        // Runs blocked until a client is taken past a clock, per client, soonest first.
        let mut blocked: HashMap<u64, BinaryHeap<Reverse<(u32, usize)>>> = HashMap::new();
        let mut queue: VecDeque<usize> = (0..self.runs.len()).collect();
        while let Some(i) = queue.pop_front() {
            let run = &self.runs[i];
            let before = taken[i];
            let have = known(run.client);
            while taken[i] < bound[i] {
                let s = &run.structs[taken[i]];
                // What the document has already: yrs skips it, whatever it depends on.
                let missing = (s.clock + s.len > have)
                    .then(|| {
                        self.deps[s.deps.0..s.deps.1]
                            .iter()
                            .copied()
                            .find(|&(client, clock)| {
                                let earlier_own = client == run.client && clock < s.clock;
                                !earlier_own && clock >= reach(&taken, client)
                            })
                    })
                    .flatten();
                match missing {
                    None => taken[i] += 1,
                    Some((client, clock)) => {
                        blocked.entry(client).or_default().push(Reverse((clock, i)));
                        break;
                    }
                }
            }
            if taken[i] > before {
                let now = reach(&taken, run.client);
                if let Some(waiting) = blocked.get_mut(&run.client) {
                    while let Some(&Reverse((clock, j))) = waiting.peek() {
                        if clock >= now {
                            break;
                        }
                        waiting.pop();
                        queue.push_back(j);
                    }
                }
            }
        }
        taken
    }

    /// Whether the update holds structs past `known` that the `waiting` updates do not hold between them: news,
    /// rather than a copy of what already waits (every connecting client echoes what it keeps pending).
    pub fn adds_to<'a>(
        &self,
        known: impl Fn(u64) -> u32,
        waiting: impl Iterator<Item = &'a Needs>,
    ) -> bool {
        self.news_bytes(known, waiting) > 0
    }

    /// Bytes of the update's structs holding clocks past `known` that the `waiting` updates do not hold: what it
    /// can add to a room, before it is applied.
    pub fn news_bytes<'a>(
        &self,
        known: impl Fn(u64) -> u32,
        waiting: impl Iterator<Item = &'a Needs>,
    ) -> usize {
        // What waits, per client: clock ranges, sorted.
        let mut held: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
        for run in waiting.flat_map(|w| w.runs.iter()) {
            held.entry(run.client).or_default().extend(
                run.structs
                    .iter()
                    .filter(|s| !s.skip)
                    .map(|s| (s.clock, s.clock + s.len)),
            );
        }
        held.values_mut().for_each(|ranges| ranges.sort_unstable());
        self.runs
            .iter()
            .flat_map(|run| {
                let have = known(run.client);
                let ranges = held.get(&run.client).map_or(&[][..], Vec::as_slice);
                run.structs.iter().filter(move |s| {
                    !s.skip && !covered(s.clock.max(have), s.clock + s.len, ranges)
                })
            })
            .map(|s| s.bytes.1 - s.bytes.0)
            .sum()
    }
}

/// Whether the clocks `from..to` are all in `ranges` (sorted by start).
fn covered(mut from: u32, to: u32, ranges: &[(u32, u32)]) -> bool {
    // Ranges starting at or before `from`, in order: each may carry `from` past its end.
    let upto = ranges.partition_point(|&(start, _)| start <= from);
    for &(_, end) in &ranges[..upto] {
        if end > from {
            from = end.min(to);
        }
    }
    let mut rest = ranges[upto..].iter();
    while from < to {
        match rest.next() {
            Some(&(start, end)) if start <= from => from = from.max(end),
            _ => break,
        }
    }
    from >= to
}

/// A v1 update of the given clients' structs (cut from `bytes`) and `delete_set`.
fn encode(bytes: &[u8], runs: &[(u64, &[Struct])], delete_set: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    write_var(&mut out, runs.len() as u64);
    for (client, structs) in runs {
        write_var(&mut out, structs.len() as u64);
        write_var(&mut out, *client);
        write_var(&mut out, u64::from(structs[0].clock));
        out.extend_from_slice(&bytes[structs[0].bytes.0..structs[structs.len() - 1].bytes.1]);
    }
    out.extend_from_slice(delete_set);
    out
}

/// lib0's variable-length unsigned integer (also what the rooms' tests write updates by hand with).
pub(crate) fn write_var(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
