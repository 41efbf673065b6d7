//! The verification report's checks (`shared/seeds/`), made automatic.
use serde::{Deserialize, Serialize};

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    /// (a) the startup lines appear in order (only for a target the tool spawned).
    Startup,
    /// (b) `GET …/dashboard/health` → 200 with unresolved_count, events_24h, new_today.
    Health,
    /// (c) `POST /api/v1/orgs/:org/members` → 201 with an id, and the row is in org_memberships.
    Members,
    /// (d) WebSocket upgrade on /ingest and /stream/projects/:id → 101 with a correct accept.
    Websocket,
    /// (e) an authenticated `POST /api/v1/events` is accepted or kills the target (reported).
    Ingest,
}
