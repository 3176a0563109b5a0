//! Every Durable Object class of edgekit, each in its own folder: a pure core (state machine, tested on the host),
//! a `protocol` shared with the Worker that calls it (binding name, object naming, wire types), and an `object`
//! module, the thin `#[durable_object]` glue that is the only part touching the runtime.

pub mod debug_panic;
pub mod hash;
pub mod log;
pub mod ratelimit;

pub use ratelimit::object::RateLimiter;

pub mod room;
pub mod room_directory;

pub use room::object::Room;
pub use room_directory::object::RoomDirectory;
