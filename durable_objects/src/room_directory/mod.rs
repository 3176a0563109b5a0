//! Room directory: which rooms are active and how many members each has, sharded over N objects by a stable hash
//! of the room name so no single object sees every join. Rooms report their member count on every join and leave;
//! a room reporting zero members leaves the listing.

pub mod object;
pub mod protocol;
