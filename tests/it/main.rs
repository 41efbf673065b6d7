//! The integration tests: one binary (linking the crate once), one module per area, and the
//! helpers they share in `support`. Run one area with `cargo test --test it AREA::`.
//!
//! Tests of different areas run at the same time in this one process, so none of them changes
//! process-wide state (environment, current directory, signal dispositions) and none listens on
//! a fixed port: each asks the kernel for free ports. What needs its own environment or signal
//! dispositions runs as a child (targets, PostgreSQL, this binary re-executed as one of its
//! servers: `support::crashy`, `hostile::frozen_entry`).

mod support;

mod architecture;
mod baseline;
mod checkpoint;
mod drive_cli;
mod drive_http;
mod drive_ws;
mod foundation;
mod generate_accept;
mod generate_determinism;
mod generate_mutators;
mod generate_valid;
mod hostile;
mod hunt_command_target;
mod invariants;
mod junit_schema;
mod reference_faults;
mod reference_routes;
mod run_checks;
mod soak;
mod triage_builtin;
mod triage_builtin_faults;
mod triage_cli;
mod triage_crashes;
mod triage_profile;
mod watch_supervisor;
