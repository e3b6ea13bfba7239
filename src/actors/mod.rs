//! `actors`: the engine's long-lived owners of state.
//!
//! `server` holds everything about being polite to one host. The logic there is plain Rust that
//! takes time as an argument, so it is tested without actix, sockets or sleeping; the actors that
//! drive it are thin shells added on top. Nothing here decodes images or writes shards.

pub mod server;
pub mod writer;
