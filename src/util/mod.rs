//! Shared plumbing under every stage: durations as users write them, atomic files, a thread of
//! its own for short-lived allocations. It imports nothing from the crate.
pub mod duration;
pub mod flags;
pub mod fs;
pub mod thread;
