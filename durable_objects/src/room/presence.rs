//! Awareness (presence) bookkeeping: which socket announced which awareness client ids, the latest state of each,
//! and the removal entries to broadcast when a socket goes away.
//!
//! States live in memory only (the object forgets them when it hibernates; y-websocket clients re-announce theirs
//! at least every 15 s). What a removal needs — the client ids a socket announced and their clocks — is also kept
//! in the socket's attachment, so a socket closing after hibernation still removes its presence.

use std::collections::BTreeMap;

use super::wire::{echo_len, AwarenessEntry};

/// The awareness client ids a socket announced, with the last clock seen for each.
pub type Announced = BTreeMap<u64, u64>;

/// Tombstones (clocks of clients that left) kept to refuse late echoes; past this many they are all forgotten.
const MAX_TOMBSTONES: usize = 1024;

/// Awareness clients one socket may announce. A y-websocket connection carries one document and so one client id;
/// the bound keeps a socket from filling the room's memory (and every newcomer's first message) with invented
/// clients, and its record within the socket attachment's 2 KiB.
pub const MAX_CLIENTS_PER_SOCKET: usize = 16;

/// Entries one awareness message may carry (a y-websocket client sends one): more is refused outright, which also
/// bounds the work of checking a message (each entry is looked up among the socket's and the room's clients).
pub const MAX_ENTRIES_PER_MESSAGE: usize = 4 * MAX_CLIENTS_PER_SOCKET;

/// The bytes of awareness state a room keeps at most (sent whole to every newcomer): 250 members' states of a few
/// hundred bytes take a tenth of it. The room's limit is lower where its messages are smaller ([`room_limit`]); news
/// that would take the room past it is dropped.
pub const MAX_PRESENCE_BYTES: usize = 2 * 1024 * 1024;

/// What one client's entry adds to an awareness message besides its state: its id and clock (lib0 varints of
/// numbers up to 2^53, 8 bytes each) and its state's length (2 bytes up to 8 KiB), rounded up.
pub const ENTRY_OVERHEAD: usize = 24;

/// The most a room's presence may take, as a message: what [`ENTRY_OVERHEAD`] and the states add up to. A newcomer's
/// y-websocket client sends back every state it was sent on joining, in one awareness message, so presence larger
/// than the room's message limit (`max_message_bytes`, less the message's own type and lengths) closed every
/// newcomer with 1009 before it could edit — five members holding their 64 KiB share did it at the default 256 KiB.
pub fn room_limit(max_message_bytes: u32) -> usize {
    MAX_PRESENCE_BYTES.min((max_message_bytes as usize).saturating_sub(16))
}

/// How a message's news stands against the presence budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Fits,
    /// Its sender's clients would pass [`MAX_USER_PRESENCE_BYTES`]: the sender's doing.
    UserFull,
    /// The room's would pass its limit ([`room_limit`]): others hold it; the news is dropped, the socket stays.
    RoomFull,
}

/// The bytes of awareness state one member's clients may hold (a member with the document open on a few devices
/// holds a few KiB): a message taking its sender past its share is refused, so one member cannot fill the room's
/// budget and lock the others out.
pub const MAX_USER_PRESENCE_BYTES: usize = 64 * 1024;

/// Whether applying `entries` would leave a socket that announced `announced` with more than
/// [`MAX_CLIENTS_PER_SOCKET`] clients, or the message carries more than [`MAX_ENTRIES_PER_MESSAGE`] (checked before
/// anything is applied).
pub fn too_many_clients(announced: &Announced, entries: &[AwarenessEntry]) -> bool {
    if entries.len() > MAX_ENTRIES_PER_MESSAGE {
        return true;
    }
    let mut ids: Vec<u64> = announced.keys().copied().collect();
    for e in entries {
        let at = ids.iter().position(|id| *id == e.client_id);
        match (&e.state, at) {
            (Some(_), None) => ids.push(e.client_id),
            (None, Some(i)) => {
                ids.swap_remove(i);
            }
            _ => {}
        }
    }
    ids.len() > MAX_CLIENTS_PER_SOCKET
}

/// The client ids in `entries` that the sending socket has not announced itself. An awareness client belongs to the
/// user whose socket announced it: the glue checks these ids against the other users' open sockets (their
/// attachments, which outlive hibernation) and drops the entries another user owns, so a member cannot rewrite or
/// remove someone else's presence. Empty in the common case (a socket renewing its own client).
pub fn unannounced(announced: &Announced, entries: &[AwarenessEntry]) -> Vec<u64> {
    let mut ids: Vec<u64> = entries
        .iter()
        .map(|e| e.client_id)
        .filter(|id| !announced.contains_key(id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What the room knows of one awareness client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    clock: u64,
    /// `None`: the client left (the clock is kept so a late echo of an older state is refused).
    state: Option<String>,
    /// The state's [`echo_len`] (0 without one): what it counts for in the budgets, worked out once.
    weight: usize,
    /// The socket whose message last changed this client.
    socket: u64,
    /// The user whose socket announced it, who alone may change it (kept with the tombstone: a client that left,
    /// or whose socket dropped before it reconnected, is not another member's to take).
    user: String,
    /// When its state was last set or renewed (ms since the epoch): a state older than [`OUTDATED_MS`] is not shown
    /// to newcomers ([`Presence::snapshot`]).
    renewed_ms: u64,
}

/// How long a state stands without a renewal: y-protocols' `outdatedTimeout` (clients renew every 15 s), after
/// which the y-websocket server drops a remote client's state and every client drops its peers'.
pub const OUTDATED_MS: u64 = 30_000;

/// Latest awareness states by client id, with the socket that announced each.
#[derive(Debug, Default)]
pub struct Presence {
    clients: BTreeMap<u64, Known>,
    /// Bytes of the states held, in all and by user: kept as states change ([`Presence::put`]), so checking a
    /// message against the budgets costs its own entries, not the room's clients.
    bytes: usize,
    user_bytes: std::collections::HashMap<String, usize>,
    /// Clients holding a state (each costs [`ENTRY_OVERHEAD`] in a message carrying the room's presence).
    present: usize,
}

/// What one awareness message changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The entries that were news, to broadcast; all of them in the common case, none for an echo.
    pub fresh: Vec<AwarenessEntry>,
    /// The sending socket's record changed (the caller persists it in the attachment).
    pub announced_changed: bool,
}

impl Presence {
    /// Applies an awareness update from socket `socket` with y-protocols' rule (`applyAwarenessUpdate`): an entry
    /// counts only with a newer clock than the one known, or as a removal at the same clock. Everything else —
    /// above all the copies y-websocket clients send back of every update they apply — is dropped, not relayed:
    /// relaying those costs n² messages per presence change in a room of n (the plain relay's storm). `from` is the
    /// sending socket and its user; an entry for a client another user announced is dropped too.
    pub fn apply(
        &mut self,
        from: (u64, &str),
        entries: &[AwarenessEntry],
        announced: &mut Announced,
        now_ms: u64,
    ) -> Applied {
        let (socket, user) = from;
        let mut fresh = Vec::new();
        let mut announced_changed = false;
        for e in entries {
            let foreign = self
                .clients
                .get(&e.client_id)
                .is_some_and(|k| k.user != user);
            if foreign || !self.is_news(e) {
                continue;
            }
            self.put(
                e.client_id,
                Known {
                    clock: e.clock,
                    state: e.state.clone(),
                    weight: e.state.as_deref().map_or(0, echo_len),
                    socket,
                    user: user.to_owned(),
                    renewed_ms: now_ms,
                },
            );
            announced_changed |= match e.state {
                Some(_) => announced.insert(e.client_id, e.clock) != Some(e.clock),
                None => announced.remove(&e.client_id).is_some(),
            };
            fresh.push(e.clone());
        }
        // Only a removal adds a tombstone; most messages (renewals, echoes) need no count.
        if fresh.iter().any(|e| e.state.is_none()) {
            self.prune();
        }
        Applied {
            fresh,
            announced_changed,
        }
    }

    /// Stores what the room knows of a client, keeping the byte counts (the one place a state is stored; pruning
    /// only forgets tombstones, which hold none).
    fn put(&mut self, client_id: u64, known: Known) {
        let added = known.weight;
        self.present += usize::from(known.state.is_some());
        if added > 0 {
            *self.user_bytes.entry(known.user.clone()).or_default() += added;
            self.bytes += added;
        }
        let Some(old) = self.clients.insert(client_id, known) else {
            return;
        };
        let removed = old.weight;
        self.present -= usize::from(old.state.is_some());
        if removed > 0 {
            self.bytes = self.bytes.saturating_sub(removed);
            if let Some(held) = self.user_bytes.get_mut(&old.user) {
                *held = held.saturating_sub(removed);
                if *held == 0 {
                    self.user_bytes.remove(&old.user);
                }
            }
        }
    }

    /// Whether [`Presence::budget`] refuses `entries` at the largest room limit (for tests).
    #[cfg(test)]
    pub fn over_budget(&self, user: &str, entries: &[AwarenessEntry]) -> bool {
        self.budget(user, entries, MAX_PRESENCE_BYTES) != Budget::Fits
    }

    /// Where `user`'s news ([`Presence::news`]; another user's clients are dropped before) leaves the user against
    /// [`MAX_USER_PRESENCE_BYTES`] (states) and the room against `room_limit` (states and [`ENTRY_OVERHEAD`]s: see
    /// [`room_limit`]). Costs the entries. News that does not grow the room always fits it: a room over a limit
    /// lowered since (`ROOMS_MAX_MESSAGE_BYTES` is the latest config's) still takes removals and renewals, which
    /// dropped would leave a client that left present, and stop a renewing client's clock.
    pub fn budget(&self, user: &str, entries: &[AwarenessEntry], room_limit: usize) -> Budget {
        let held = self.bytes + self.present * ENTRY_OVERHEAD;
        let mut room = held;
        let mut mine = self.user_bytes.get(user).copied().unwrap_or(0);
        let mut seen = Vec::with_capacity(entries.len());
        for e in entries {
            let (old_mine, old_room) = if seen.contains(&e.client_id) {
                (0, 0)
            } else {
                seen.push(e.client_id);
                self.clients.get(&e.client_id).map_or((0, 0), |k| {
                    let overhead = if k.state.is_some() { ENTRY_OVERHEAD } else { 0 };
                    (k.weight, k.weight + overhead)
                })
            };
            let weight = e.state.as_deref().map_or(0, echo_len);
            let overhead = if e.state.is_some() { ENTRY_OVERHEAD } else { 0 };
            room = (room + weight + overhead).saturating_sub(old_room);
            mine = (mine + weight).saturating_sub(old_mine);
        }
        if mine > MAX_USER_PRESENCE_BYTES {
            Budget::UserFull
        } else if room > room_limit && room > held {
            Budget::RoomFull
        } else {
            Budget::Fits
        }
    }

    /// The entries of a message that [`Presence::apply`] would take, in order (a client's later entry is judged
    /// against its earlier one): what the limits on a socket's clients and on presence bytes are checked against, so
    /// stale entries (a removal at an old clock) buy no room.
    pub fn news(&self, entries: &[AwarenessEntry]) -> Vec<AwarenessEntry> {
        let mut seen: Vec<(u64, u64, bool)> = Vec::new();
        let mut news = Vec::new();
        for e in entries {
            let (clock, present) = match seen.iter().find(|s| s.0 == e.client_id) {
                Some(&(_, clock, present)) => (clock, present),
                None => self
                    .clients
                    .get(&e.client_id)
                    .map_or((0, false), |k| (k.clock, k.state.is_some())),
            };
            if clock < e.clock || (clock == e.clock && e.state.is_none() && present) {
                seen.retain(|s| s.0 != e.client_id);
                seen.push((e.client_id, e.clock, e.state.is_some()));
                news.push(e.clone());
            }
        }
        news
    }

    /// Whether a message holds any news: most awareness messages are the copies every client sends back, and the
    /// caller can drop those before reading the sending socket's record.
    pub fn has_news(&self, entries: &[AwarenessEntry]) -> bool {
        entries.iter().any(|e| self.is_news(e))
    }

    /// y-protocols' rule for one entry: a newer clock than the one known, or a removal of a present client at the
    /// same clock.
    fn is_news(&self, e: &AwarenessEntry) -> bool {
        let known = self.clients.get(&e.client_id);
        let clock = known.map_or(0, |k| k.clock);
        let present = known.is_some_and(|k| k.state.is_some());
        clock < e.clock || (clock == e.clock && e.state.is_none() && present)
    }

    /// Every present state renewed within [`OUTDATED_MS`] of `now_ms`, as entries for a newcomer (empty when nothing
    /// is known). An older one belongs to a client that stopped renewing while its socket stayed open (a frozen tab,
    /// a half-open connection): the room keeps it (its clock still rules what is news), but a newcomer shown it
    /// would show a user who is not there, as the y-websocket server, which drops it, does not.
    pub fn snapshot(&self, now_ms: u64) -> Vec<AwarenessEntry> {
        self.clients
            .iter()
            .filter(|(_, k)| now_ms.saturating_sub(k.renewed_ms) < OUTDATED_MS)
            .filter_map(|(client_id, k)| {
                k.state.as_ref().map(|state| AwarenessEntry {
                    client_id: *client_id,
                    clock: k.clock,
                    state: Some(state.clone()),
                })
            })
            .collect()
    }

    /// Forgets the clients closed socket `socket` announced and returns the removal entries to broadcast: state null
    /// at the client's current clock, as the y-websocket server sends them (y-protocols' `removeAwarenessStates` of a
    /// remote client; only a client removing itself moves its clock on), which every peer holding the state accepts.
    /// Not one past it: y-websocket keeps a client's id and clock across a reconnect, so its first renewal, one
    /// clock on, must be news — past a removal at clock + 1 it was dropped as well, and the user stayed hidden until
    /// the second renewal, ~30 s. A client that has since been announced by another socket (it reconnected before
    /// its old socket closed) stays.
    pub fn remove_socket(
        &mut self,
        from: (u64, &str),
        announced: &Announced,
    ) -> Vec<AwarenessEntry> {
        let (socket, user) = from;
        let mut removals = Vec::new();
        for (client_id, clock) in announced {
            let known = self.clients.get(client_id);
            if known.is_some_and(|k| k.socket != socket && k.state.is_some()) {
                continue;
            }
            let clock = known.map_or(*clock, |k| k.clock.max(*clock));
            self.put(
                *client_id,
                Known {
                    clock,
                    state: None,
                    weight: 0,
                    socket,
                    user: user.to_owned(),
                    renewed_ms: 0,
                },
            );
            removals.push(AwarenessEntry {
                client_id: *client_id,
                clock,
                state: None,
            });
        }
        self.prune();
        removals
    }

    /// Past [`MAX_TOMBSTONES`], forgets the tombstones of the user who left the most — so a member churning
    /// invented client ids evicts their own, never another user's (whose client id would then be free to take).
    fn prune(&mut self) {
        use std::collections::HashMap;
        loop {
            // Counted first without a map: every leave comes here, and almost always under the bound.
            if self.clients.values().filter(|k| k.state.is_none()).count() <= MAX_TOMBSTONES {
                return;
            }
            let mut per_user: HashMap<&str, usize> = HashMap::new();
            for k in self.clients.values().filter(|k| k.state.is_none()) {
                *per_user.entry(k.user.as_str()).or_default() += 1;
            }
            let Some(heaviest) = per_user
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(user, _)| user.to_owned())
            else {
                return;
            };
            self.clients
                .retain(|_, k| k.state.is_some() || k.user != heaviest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(client_id: u64, clock: u64, state: Option<&str>) -> AwarenessEntry {
        AwarenessEntry {
            client_id,
            clock,
            state: state.map(str::to_owned),
        }
    }

    /// A state not renewed for [`OUTDATED_MS`] is not shown to newcomers, but still rules what is news: the
    /// client's renewal, one clock on, shows it again.
    #[test]
    fn a_state_not_renewed_for_the_outdated_timeout_is_not_shown_to_newcomers() {
        let mut presence = Presence::default();
        let mut announced = Announced::new();
        let entry = |clock| AwarenessEntry {
            client_id: 10,
            clock,
            state: Some(r#"{"user":{"name":"ann"}}"#.to_owned()),
        };
        let from = (1, "ann");
        let applied = presence.apply(from, &[entry(5)], &mut announced, 1_000);
        assert_eq!(applied.fresh.len(), 1);
        assert_eq!(presence.snapshot(1_000 + OUTDATED_MS - 1), vec![entry(5)]);
        assert_eq!(presence.snapshot(1_000 + OUTDATED_MS), vec![]);
        // An echo of the old state is still no news; the renewal is, and shows it again.
        let echo = presence.apply(from, &[entry(5)], &mut announced, 40_000);
        assert!(echo.fresh.is_empty());
        assert_eq!(presence.snapshot(40_000), vec![]);
        let renewed = presence.apply(from, &[entry(6)], &mut announced, 41_000);
        assert_eq!(renewed.fresh, vec![entry(6)]);
        assert_eq!(presence.snapshot(41_000), vec![entry(6)]);
    }

    #[test]
    fn a_client_is_its_announcing_users_even_after_its_socket_closed() {
        let mut presence = Presence::default();
        let (mut alice, mut bob) = (Announced::new(), Announced::new());
        presence.apply((1, "alice"), &[entry(10, 1, Some("{}"))], &mut alice, 0);
        let forged = presence.apply(
            (2, "bob"),
            &[entry(10, 5, Some("{\"evil\":1}")), entry(10, 6, None)],
            &mut bob,
            0,
        );
        assert!(
            forged.fresh.is_empty(),
            "another user's update and removal are dropped"
        );
        assert!(bob.is_empty(), "and not recorded as bob's");
        // Alice's socket drops; before her client reconnects, bob tries to take the id over.
        presence.remove_socket((1, "alice"), &alice);
        assert!(presence
            .apply((2, "bob"), &[entry(10, 9, Some("{}"))], &mut bob, 0)
            .fresh
            .is_empty());
        let mut again = Announced::new();
        let back = presence.apply((3, "alice"), &[entry(10, 3, Some("{}"))], &mut again, 0);
        assert_eq!(back.fresh.len(), 1, "alice's reconnected client comes back");
        assert_eq!(presence.snapshot(0), vec![entry(10, 3, Some("{}"))]);
    }

    #[test]
    fn unannounced_lists_each_client_the_socket_has_not_announced_once() {
        let announced: Announced = [(10, 3)].into_iter().collect();
        let entries = [
            entry(10, 4, Some("{}")),
            entry(30, 1, None),
            entry(20, 1, Some("{}")),
            entry(30, 2, Some("{}")),
        ];
        assert_eq!(unannounced(&announced, &entries), vec![20, 30]);
        assert!(
            unannounced(&announced, &entries[..1]).is_empty(),
            "a renewal of its own client"
        );
    }

    #[test]
    fn a_socket_may_announce_a_bounded_number_of_clients() {
        let mut announced = Announced::new();
        let many: Vec<AwarenessEntry> = (0..MAX_CLIENTS_PER_SOCKET as u64)
            .map(|id| entry(id, 1, Some("{}")))
            .collect();
        assert!(!too_many_clients(&announced, &many), "up to the bound");
        for e in &many {
            announced.insert(e.client_id, e.clock);
        }
        assert!(
            too_many_clients(&announced, &[entry(99, 1, Some("{}"))]),
            "one more is refused"
        );
        assert!(
            !too_many_clients(&announced, &[entry(0, 2, Some("{}")), entry(99, 1, None)]),
            "renewals and removals are not new clients"
        );
        assert!(
            !too_many_clients(&announced, &[entry(0, 2, None), entry(99, 1, Some("{}"))]),
            "a client replaced in the same message"
        );
        // Announce-and-leave pairs never exceed the bound, but past MAX_ENTRIES_PER_MESSAGE entries a message is
        // refused before its entries are looked at one by one.
        let churn: Vec<AwarenessEntry> = (1000..1000 + MAX_ENTRIES_PER_MESSAGE as u64 / 2 + 1)
            .flat_map(|id| [entry(id, 1, Some("{}")), entry(id, 2, None)])
            .collect();
        assert!(
            too_many_clients(&Announced::new(), &churn),
            "too many entries"
        );
        assert!(
            !too_many_clients(&Announced::new(), &churn[..MAX_ENTRIES_PER_MESSAGE]),
            "up to the entry bound"
        );
    }

    #[test]
    fn a_closed_socket_removes_exactly_the_clients_it_announced() {
        let mut presence = Presence::default();
        let mut a = Announced::new();
        let mut b = Announced::new();
        let first = presence.apply((1, "u"), &[entry(10, 1, Some("{}"))], &mut a, 0);
        assert_eq!(
            first.fresh,
            vec![entry(10, 1, Some("{}"))],
            "a first announcement is news"
        );
        assert!(first.announced_changed, "and changes the socket's record");
        assert!(
            presence
                .apply((1, "u"), &[entry(10, 2, Some("{\"x\":1}"))], &mut a, 0)
                .announced_changed,
            "a newer clock is recorded"
        );
        assert_eq!(
            presence.apply((1, "u"), &[entry(10, 2, Some("{\"x\":1}"))], &mut a, 0),
            Applied::default(),
            "a repeat is neither news nor a change"
        );
        presence.apply((2, "u"), &[entry(20, 5, Some("{}"))], &mut b, 0);
        assert_eq!(presence.snapshot(0).len(), 2, "both clients are present");

        let removals = presence.remove_socket((1, "u"), &a);
        assert_eq!(
            removals,
            vec![entry(10, 2, None)],
            "removal nulls the state at the client's clock"
        );
        assert_eq!(
            presence.snapshot(0),
            vec![entry(20, 5, Some("{}"))],
            "the other socket's client stays"
        );
    }

    #[test]
    fn a_quick_reconnect_shows_again_at_the_first_renewal() {
        // y-websocket keeps its client id and awareness clock across a reconnect: the client at clock 5 drops,
        // announces clock 5 again on its new socket, and renews at 6 fifteen seconds later. The removal goes out at
        // the current clock, as the y-websocket server sends it, so the renewal at 6 is news for the room and for
        // peers (y-protocols takes a null state at the clock it holds, and a state at a newer one).
        let mut presence = Presence::default();
        let (mut old, mut new) = (Announced::new(), Announced::new());
        presence.apply((1, "u"), &[entry(10, 5, Some("{}"))], &mut old, 0);
        assert_eq!(
            presence.remove_socket((1, "u"), &old),
            vec![entry(10, 5, None)],
            "the removal is at the client's current clock"
        );
        assert!(
            presence
                .apply((2, "u"), &[entry(10, 5, Some("{}"))], &mut new, 0)
                .fresh
                .is_empty(),
            "the reconnect's announcement at the same clock is no news (nor for peers)"
        );
        assert_eq!(
            presence
                .apply((2, "u"), &[entry(10, 6, Some("{}"))], &mut new, 0)
                .fresh,
            vec![entry(10, 6, Some("{}"))],
            "the first renewal is broadcast"
        );
        assert_eq!(presence.snapshot(0), vec![entry(10, 6, Some("{}"))]);
        assert_eq!(new.get(&10), Some(&6), "and the new socket owns the client");
    }

    #[test]
    fn echoes_from_other_sockets_are_not_news_and_not_theirs() {
        let mut presence = Presence::default();
        let (mut a, mut b) = (Announced::new(), Announced::new());
        presence.apply((1, "u"), &[entry(10, 4, Some("{}"))], &mut a, 0);
        // Socket 2's y-websocket provider sends back what it applied: same clock.
        let echo = presence.apply(
            (2, "u"),
            &[entry(10, 4, Some("{}")), entry(20, 1, Some("{}"))],
            &mut b,
            0,
        );
        assert_eq!(
            echo.fresh,
            vec![entry(20, 1, Some("{}"))],
            "only the echo is dropped"
        );
        assert_eq!(
            b.keys().copied().collect::<Vec<_>>(),
            vec![20],
            "socket 2 does not own client 10"
        );
        assert_eq!(
            presence
                .apply((2, "u"), &[entry(10, 3, Some("{\"old\":1}"))], &mut b, 0)
                .fresh,
            vec![],
            "an older clock is refused"
        );
    }

    #[test]
    fn clock_zero_is_not_news_like_in_y_protocols() {
        // y-protocols peers start every unknown client at clock 0 and need a newer one; the room agrees with them.
        let mut presence = Presence::default();
        let mut a = Announced::new();
        assert!(presence
            .apply((1, "u"), &[entry(10, 0, Some("{}"))], &mut a, 0)
            .fresh
            .is_empty());
        assert!(presence.snapshot(0).is_empty());
    }

    #[test]
    fn a_late_echo_after_leaving_does_not_bring_the_client_back() {
        let mut presence = Presence::default();
        let (mut a, mut b) = (Announced::new(), Announced::new());
        presence.apply((1, "u"), &[entry(10, 2, Some("{}"))], &mut a, 0);
        assert_eq!(
            presence.remove_socket((1, "u"), &a),
            vec![entry(10, 2, None)]
        );
        assert!(presence
            .apply((2, "u"), &[entry(10, 2, Some("{}"))], &mut b, 0)
            .fresh
            .is_empty());
        assert!(presence.snapshot(0).is_empty(), "no ghost for newcomers");
        assert!(
            presence
                .apply((2, "u"), &[entry(10, 4, Some("{}"))], &mut b, 0)
                .fresh
                .len()
                == 1,
            "a real return is news"
        );
    }

    #[test]
    fn a_client_that_moved_to_a_new_socket_survives_the_old_one_closing() {
        let mut presence = Presence::default();
        let (mut old, mut new) = (Announced::new(), Announced::new());
        presence.apply((1, "u"), &[entry(10, 2, Some("{}"))], &mut old, 0);
        presence.apply((2, "u"), &[entry(10, 3, Some("{}"))], &mut new, 0);
        assert!(
            presence.remove_socket((1, "u"), &old).is_empty(),
            "nothing to remove"
        );
        assert_eq!(presence.snapshot(0), vec![entry(10, 3, Some("{}"))]);
    }

    #[test]
    fn removal_after_hibernation_uses_the_attachment_clock() {
        let mut presence = Presence::default();
        let announced: Announced = [(10, 7)].into_iter().collect();
        assert_eq!(
            presence.remove_socket((1, "u"), &announced),
            vec![entry(10, 7, None)],
            "state forgotten, clock kept"
        );
    }

    #[test]
    fn a_client_announcing_null_leaves_on_its_own() {
        let mut presence = Presence::default();
        let mut a = Announced::new();
        presence.apply((1, "u"), &[entry(10, 1, Some("{}"))], &mut a, 0);
        let left = presence.apply((1, "u"), &[entry(10, 2, None)], &mut a, 0);
        assert_eq!(
            left.fresh,
            vec![entry(10, 2, None)],
            "the removal is broadcast"
        );
        assert!(a.is_empty(), "nothing left to remove on close");
        assert!(presence.snapshot(0).is_empty(), "no state left");
    }

    #[test]
    fn presence_budgets_hold_per_room_and_per_member_and_follow_every_change() {
        let mut presence = Presence::default();
        let mut announced = Announced::new();
        let state = "x".repeat(8 * 1024);
        // Mallory fills her share: 8 clients of 8 KiB.
        let mallory: Vec<_> = (1..=8).map(|id| entry(id, 1, Some(&state))).collect();
        assert!(!presence.over_budget("mallory", &mallory));
        presence.apply((1, "mallory"), &mallory, &mut announced, 0);
        assert_eq!(presence.bytes, 64 * 1024);
        assert!(
            presence.over_budget("mallory", &[entry(9, 1, Some("{}"))]),
            "past her share"
        );
        assert!(
            !presence.over_budget("mallory", &[entry(1, 2, Some("{}"))]),
            "a smaller state replaces hers"
        );
        assert!(
            !presence.over_budget("alice", &[entry(100, 1, Some(&state))]),
            "others keep theirs"
        );
        // Leaving frees her bytes; a removal of a client counts down once.
        presence.remove_socket((1, "mallory"), &announced);
        assert_eq!((presence.bytes, presence.user_bytes.len()), (0, 0));
        // The room's budget: 32 members at their share, then the next refused.
        let mut room = Presence::default();
        for member in 0..32u64 {
            let states: Vec<_> = (0..8)
                .map(|i| entry(1000 + member * 8 + i, 1, Some(&state)))
                .collect();
            room.apply(
                (member, &format!("m{member}")),
                &states,
                &mut Announced::new(),
                0,
            );
        }
        assert_eq!(room.bytes, MAX_PRESENCE_BYTES);
        assert!(room.over_budget("late", &[entry(1, 1, Some("{}"))]));
    }

    #[test]
    fn the_room_holds_no_more_presence_than_one_message_carries_and_a_full_room_is_not_the_senders_fault(
    ) {
        assert_eq!(room_limit(256 * 1024), 256 * 1024 - 16);
        assert_eq!(
            room_limit(1024 * 1024),
            MAX_PRESENCE_BYTES.min(1024 * 1024 - 16)
        );
        let mut room = Presence::default();
        let state = "s".repeat(1_000);
        let limit = room_limit(4_096);
        for member in 0..3u64 {
            let news = [entry(member, 1, Some(&state))];
            let user = format!("m{member}");
            assert_eq!(
                room.budget(&user, &news, limit),
                Budget::Fits,
                "member {member}"
            );
            room.apply((member, &user), &news, &mut Announced::new(), 0);
        }
        assert_eq!(room.present, 3);
        // 3 × (1,000 + 24) held: a fourth state of 1,000 would make an echo of 4,096 bytes and more.
        let fourth = [entry(9, 1, Some(&state))];
        assert_eq!(room.budget("m9", &fourth, limit), Budget::RoomFull);
        // A state replacing one held is weighed as the difference; removing one frees its overhead too.
        assert_eq!(
            room.budget("m0", &[entry(0, 2, Some(&"t".repeat(1_000)))], limit),
            Budget::Fits
        );
        room.apply((0, "m0"), &[entry(0, 2, None)], &mut Announced::new(), 0);
        assert_eq!(room.present, 2);
        assert_eq!(room.budget("m9", &fourth, limit), Budget::Fits);
        // A room over a limit lowered since still takes what does not grow it: a renewal, a removal.
        let lowered = room_limit(1_024);
        assert_eq!(
            room.budget("m1", &[entry(1, 2, Some(&state))], lowered),
            Budget::Fits,
            "a renewal"
        );
        assert_eq!(
            room.budget("m1", &[entry(1, 2, None)], lowered),
            Budget::Fits,
            "a removal"
        );
        assert_eq!(room.budget("m9", &fourth, lowered), Budget::RoomFull);
        // The sender's own share comes first.
        let big = "b".repeat(8 * 1024);
        let hers: Vec<_> = (100..109).map(|id| entry(id, 1, Some(&big))).collect();
        assert_eq!(room.budget("mallory", &hers, usize::MAX), Budget::UserFull);
    }

    #[test]
    fn stale_entries_buy_no_room() {
        let mut presence = Presence::default();
        let mut announced = Announced::new();
        let state = "x".repeat(8 * 1024);
        let held: Vec<_> = (1..=8).map(|id| entry(id, 5, Some(&state))).collect();
        presence.apply((1, "mallory"), &held, &mut announced, 0);
        // Removals at an old clock (not news) beside one new client: judged on what would be taken.
        let mut message: Vec<_> = (1..=8).map(|id| entry(id, 1, None)).collect();
        message.push(entry(9, 1, Some(&state)));
        let news = presence.news(&message);
        assert_eq!(
            news,
            [entry(9, 1, Some(&state))],
            "only the new client is news"
        );
        assert!(presence.over_budget("mallory", &news), "past her share");
        let many: Vec<_> = (10..=18).map(|id| entry(id, 1, Some("{}"))).collect();
        let stale_and_many: Vec<_> = (1..=8).map(|id| entry(id, 1, None)).chain(many).collect();
        assert!(
            too_many_clients(&announced, &presence.news(&stale_and_many)),
            "17 clients"
        );
        // A client's second entry is judged against its first.
        let twice = [
            entry(20, 1, Some("{}")),
            entry(20, 1, None),
            entry(20, 1, None),
        ];
        assert_eq!(
            presence.news(&twice).len(),
            2,
            "the removal at the same clock once"
        );
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut presence = Presence::default();
        for id in 0..(MAX_TOMBSTONES as u64 + 10) {
            let mut a = Announced::new();
            presence.apply((id, "u"), &[entry(id, 1, Some("{}"))], &mut a, 0);
            presence.remove_socket((id, "u"), &a);
        }
        assert!(presence.clients.len() <= MAX_TOMBSTONES + 1);
    }

    #[test]
    fn churning_invented_clients_evicts_only_the_churners_tombstones() {
        let mut presence = Presence::default();
        let mut alice = Announced::new();
        presence.apply((1, "alice"), &[entry(7, 1, Some("{}"))], &mut alice, 0);
        presence.remove_socket((1, "alice"), &alice);
        let mut bob = Announced::new();
        for id in 100..(100 + MAX_TOMBSTONES as u64 + 5) {
            presence.apply(
                (2, "bob"),
                &[entry(id, 1, Some("{}")), entry(id, 2, None)],
                &mut bob,
                0,
            );
        }
        assert!(
            presence
                .apply((2, "bob"), &[entry(7, 9, Some("{}"))], &mut bob, 0)
                .fresh
                .is_empty(),
            "alice's client id is still hers"
        );
    }
}
