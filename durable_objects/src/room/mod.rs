//! Room: one collaborative Yjs document per room name, joined over hibernating WebSockets that speak the
//! y-protocols sync and awareness messages (the stock `y-websocket` provider connects unchanged).
//!
//! Invariants:
//! - an update is appended to the object's SQLite log before it is broadcast or answered in a sync reply;
//! - the document in memory is always rebuildable from snapshot + log (it is rebuilt on the first message after the
//!   object was evicted or hibernated, and dropped whenever a write fails);
//! - a bad frame (malformed, over-size, over-rate) closes only the socket that sent it;
//! - a ticket admits one socket once, before it expires.

pub mod depth;
pub mod document;
pub mod ends;
pub mod limits;
pub mod log;
pub mod object;
pub mod order;
pub mod presence;
pub mod protocol;
pub mod shape;
pub mod wire;
