//! mesher-stress: load, fuzz and soak stress testing for Mesher, with crash triage.
//! See ARCHITECTURE.md for the pipeline and where to change what.
pub mod api;
pub mod checkpoint;
pub mod checks;
pub mod cli;
pub mod db;
pub mod drive;
pub mod exit;
pub mod generate;
pub mod invariants;
pub mod model;
pub mod profile;
pub mod reference;
pub mod report;
pub mod run;
pub mod safety;
pub mod signals;
pub mod triage;
pub mod util;
pub mod watch;
pub mod wire;
