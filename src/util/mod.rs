//! Shared plumbing under every stage: durations as users write them, atomic files, a thread of
//! its own for short-lived allocations, figures as users read them. It imports nothing from the
//! crate.
pub mod duration;
pub mod flags;
pub mod fs;
pub mod thread;
pub mod units;
