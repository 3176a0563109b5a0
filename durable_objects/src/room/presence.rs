//! Awareness (presence) bookkeeping: which socket announced which awareness client ids, the latest state of each,
//! and the removal entries to broadcast when a socket goes away.
//!
//! States live in memory only (the object forgets them when it hibernates; y-websocket clients re-announce theirs
//! at least every 15 s). What a removal needs — the client ids a socket announced and their clocks — is also kept
//! in the socket's attachment, so a socket closing after hibernation still removes its presence.

use std::collections::BTreeMap;

use super::wire::AwarenessEntry;

/// The awareness client ids a socket announced, with the last clock seen for each.
pub type Announced = BTreeMap<u64, u64>;

/// Latest awareness states by client id, with the socket that announced each.
#[derive(Debug, Default)]
pub struct Presence {
    states: BTreeMap<u64, (u64, String, u64)>,
}

impl Presence {
    /// Records the entries of an awareness update from socket `socket`, updating `announced` (the socket's own
    /// record). Returns true when the socket's record changed (the caller persists it in the attachment).
    pub fn apply(
        &mut self,
        socket: u64,
        entries: &[AwarenessEntry],
        announced: &mut Announced,
    ) -> bool {
        let before = announced.clone();
        for e in entries {
            match &e.state {
                Some(state) => {
                    self.states
                        .insert(e.client_id, (e.clock, state.clone(), socket));
                    announced.insert(e.client_id, e.clock);
                }
                None => {
                    self.states.remove(&e.client_id);
                    announced.remove(&e.client_id);
                }
            }
        }
        *announced != before
    }

    /// Every known state, as entries for a newcomer (empty when nothing is known).
    pub fn snapshot(&self) -> Vec<AwarenessEntry> {
        self.states
            .iter()
            .map(|(client_id, (clock, state, _))| AwarenessEntry {
                client_id: *client_id,
                clock: *clock,
                state: Some(state.clone()),
            })
            .collect()
    }

    /// Forgets the clients a closed socket announced and returns the removal entries to broadcast (clock + 1, state
    /// null: what y-protocols' `removeAwarenessStates` sends, which every peer accepts).
    pub fn remove_socket(&mut self, announced: &Announced) -> Vec<AwarenessEntry> {
        announced
            .iter()
            .map(|(client_id, clock)| {
                let clock = self
                    .states
                    .remove(client_id)
                    .map_or(*clock, |(c, _, _)| c.max(*clock));
                AwarenessEntry {
                    client_id: *client_id,
                    clock: clock + 1,
                    state: None,
                }
            })
            .collect()
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

    #[test]
    fn a_closed_socket_removes_exactly_the_clients_it_announced() {
        let mut presence = Presence::default();
        let mut a = Announced::new();
        let mut b = Announced::new();
        assert!(
            presence.apply(1, &[entry(10, 1, Some("{}"))], &mut a),
            "first announcement changes the record"
        );
        assert!(
            presence.apply(1, &[entry(10, 2, Some("{\"x\":1}"))], &mut a),
            "a newer clock is recorded"
        );
        assert!(
            !presence.apply(1, &[entry(10, 2, Some("{\"x\":1}"))], &mut a),
            "a repeat changes nothing"
        );
        presence.apply(2, &[entry(20, 5, Some("{}"))], &mut b);
        assert_eq!(presence.snapshot().len(), 2, "both clients are present");

        let removals = presence.remove_socket(&a);
        assert_eq!(
            removals,
            vec![entry(10, 3, None)],
            "removal bumps the clock and nulls the state"
        );
        assert_eq!(
            presence.snapshot(),
            vec![entry(20, 5, Some("{}"))],
            "the other socket's client stays"
        );
    }

    #[test]
    fn removal_after_hibernation_uses_the_attachment_clock() {
        let mut presence = Presence::default();
        let announced: Announced = [(10, 7)].into_iter().collect();
        assert_eq!(
            presence.remove_socket(&announced),
            vec![entry(10, 8, None)],
            "state forgotten, clock kept"
        );
    }

    #[test]
    fn a_client_announcing_null_leaves_on_its_own() {
        let mut presence = Presence::default();
        let mut a = Announced::new();
        presence.apply(1, &[entry(10, 1, Some("{}"))], &mut a);
        presence.apply(1, &[entry(10, 2, None)], &mut a);
        assert!(a.is_empty(), "nothing left to remove on close");
        assert!(presence.snapshot().is_empty(), "no state left");
    }
}
