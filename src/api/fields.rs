//! Every field the API reads, with its type: request body members (by [`BodyKind`]), query
//! parameters, path parameters, the API-key header, and the members of WebSocket frames. The
//! field-level operators (`generate::field`) follow from a field's [`FieldType`], never from a
//! hand list per route: a new route or body member gets its boundary cases by being named here.
//!
//! Body paths are written `a.b` for members and `a[0].b` for the first element of an array.

use super::{Auth, BodyKind, ParamKind, QueryKind, ROUTES, Route, WsPath};
use serde::Serialize;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    Str,
    /// A UUID (ids, cursors' tie-breakers).
    Uuid,
    Int,
    Float,
    /// A boolean, or Mesher's bool-ish text (`"true"`, `"on"`, `1`).
    Bool,
    /// One of a closed set of words.
    Enum(&'static [&'static str]),
    /// A timestamp in PostgreSQL's text form.
    Timestamp,
    Object,
    Array,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Uuid => "uuid",
            FieldType::Int => "integer",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Enum(_) => "enum",
            FieldType::Timestamp => "timestamp",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }
}

/// Where a field is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    Body,
    Query,
    Path,
    Header,
    /// A member of a WebSocket text frame's JSON.
    Frame,
}

impl Place {
    pub fn name(self) -> &'static str {
        match self {
            Place::Body => "body",
            Place::Query => "query",
            Place::Path => "path",
            Place::Header => "header",
            Place::Frame => "frame",
        }
    }
}

/// One field of one route (or WebSocket path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Route name (`Route::name`) or `ws-ingest` / `ws-stream`.
    pub route: &'static str,
    pub place: Place,
    /// Body/frame path (`exception.type_name`, `stacktrace[0].lineno`), query parameter,
    /// path parameter or header name.
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

impl Field {
    /// `place:name`, e.g. `body:retention_days`, `query:limit`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.place.name(), self.name)
    }
}

pub const LEVELS: &[&str] = &["fatal", "error", "warning", "info", "debug"];
pub const ROLES: &[&str] = &["owner", "admin", "member"];
pub const ISSUE_STATUSES: &[&str] = &["unresolved", "resolved", "archived", "discarded"];
pub const ALERT_STATUSES: &[&str] = &["active", "acknowledged", "resolved"];
pub const BUCKET_UNITS: &[&str] = &["minute", "hour", "day", "week", "month"];
pub const CONDITION_TYPES: &[&str] = &["threshold", "new_issue"];
pub const ACTION_TYPES: &[&str] = &["websocket"];
pub const FRAME_TYPES: &[&str] = &["subscribe"];

use FieldType as T;

/// (path, type, required) of one event (§4); the bulk route and WebSocket ingest frames read
/// the same members.
const EVENT: &[(&str, FieldType, bool)] = &[
    ("message", T::Str, true),
    ("level", T::Enum(LEVELS), false),
    ("exception", T::Object, false),
    ("exception.type_name", T::Str, false),
    ("exception.value", T::Str, false),
    ("exception.module_name", T::Str, false),
    ("stacktrace", T::Array, false),
    ("stacktrace[0].filename", T::Str, false),
    ("stacktrace[0].function_name", T::Str, false),
    ("stacktrace[0].lineno", T::Int, false),
    ("stacktrace[0].colno", T::Int, false),
    ("stacktrace[0].context_line", T::Str, false),
    ("stacktrace[0].in_app", T::Bool, false),
    ("breadcrumbs", T::Array, false),
    ("breadcrumbs[0].timestamp", T::Timestamp, false),
    ("breadcrumbs[0].category", T::Str, false),
    ("breadcrumbs[0].message", T::Str, false),
    ("breadcrumbs[0].level", T::Enum(LEVELS), false),
    ("breadcrumbs[0].data", T::Object, false),
    ("tags", T::Object, false),
    ("tags.environment", T::Str, false),
    ("tags.release", T::Str, false),
    ("extra", T::Object, false),
    ("user_context", T::Object, false),
    ("user_context.id", T::Str, false),
    ("user_context.email", T::Str, false),
    ("sdk_name", T::Str, false),
    ("sdk_version", T::Str, false),
    ("fingerprint", T::Str, false),
];

const ALERT_RULE: &[(&str, FieldType, bool)] = &[
    ("name", T::Str, false),
    ("condition", T::Object, false),
    ("condition.condition_type", T::Enum(CONDITION_TYPES), false),
    ("condition.threshold", T::Int, false),
    ("condition.window_minutes", T::Int, false),
    ("action", T::Object, false),
    ("action.type", T::Enum(ACTION_TYPES), false),
    ("cooldown_minutes", T::Int, false),
];

const STREAM_FILTER: &[(&str, FieldType, bool)] = &[
    ("type", T::Enum(FRAME_TYPES), true),
    ("filters", T::Object, false),
    ("filters.level", T::Enum(LEVELS), false),
    ("filters.environment", T::Str, false),
];

/// The members a body kind reads.
pub fn body_members(kind: BodyKind) -> &'static [(&'static str, FieldType, bool)] {
    match kind {
        BodyKind::None => &[],
        BodyKind::Event | BodyKind::BulkEvent => EVENT,
        BodyKind::Assign => &[("user_id", T::Uuid, true)],
        BodyKind::AddMember => &[("user_id", T::Uuid, true), ("role", T::Enum(ROLES), false)],
        BodyKind::MemberRole => &[("role", T::Enum(ROLES), true)],
        BodyKind::ApiKeyLabel => &[("label", T::Str, false)],
        BodyKind::AlertRule => ALERT_RULE,
        BodyKind::Toggle => &[("enabled", T::Bool, true)],
        BodyKind::Settings => &[("retention_days", T::Int, false), ("sample_rate", T::Float, false)],
    }
}

fn query_type(k: QueryKind) -> FieldType {
    match k {
        QueryKind::IssueStatus => T::Enum(ISSUE_STATUSES),
        QueryKind::Level => T::Enum(LEVELS),
        QueryKind::UserId | QueryKind::CursorId => T::Uuid,
        QueryKind::Cursor => T::Timestamp,
        QueryKind::Limit | QueryKind::RawLimit => T::Int,
        QueryKind::SearchText | QueryKind::TagKey | QueryKind::TagValue => T::Str,
        QueryKind::Bucket => T::Enum(BUCKET_UNITS),
        QueryKind::AlertStatus => T::Enum(ALERT_STATUSES),
    }
}

fn param_type(k: ParamKind) -> FieldType {
    match k {
        // A 36-character reference is taken as a UUID, anything else as a slug.
        ParamKind::ProjectRef => T::Str,
        _ => T::Uuid,
    }
}

/// The fields of one route.
pub fn route_fields(r: &'static Route) -> Vec<Field> {
    let mut out = Vec::new();
    for (name, kind) in r.param_names().zip(r.params.iter()) {
        out.push(Field { route: r.name, place: Place::Path, name, ty: param_type(*kind), required: true });
    }
    for q in r.query {
        out.push(Field {
            route: r.name,
            place: Place::Query,
            name: q.name,
            ty: query_type(q.kind),
            required: q.required,
        });
    }
    if r.auth == Auth::ApiKey {
        out.push(Field { route: r.name, place: Place::Header, name: "x-sentry-auth", ty: T::Str, required: true });
    }
    if r.body != BodyKind::None {
        out.push(Field { route: r.name, place: Place::Body, name: ROOT, ty: T::Object, required: true });
    }
    for (name, ty, required) in body_members(r.body) {
        out.push(Field { route: r.name, place: Place::Body, name, ty: *ty, required: *required });
    }
    out
}

/// The name of a body's (or frame's) whole JSON value: an unknown extra member, an empty
/// object, another type in its place.
pub const ROOT: &str = "$";

/// The fields of a WebSocket path's frames.
pub fn ws_fields(w: WsPath) -> Vec<Field> {
    let (route, members) = match w {
        WsPath::Ingest => ("ws-ingest", EVENT),
        WsPath::Stream => ("ws-stream", STREAM_FILTER),
    };
    std::iter::once(Field { route, place: Place::Frame, name: ROOT, ty: T::Object, required: true })
        .chain(members.iter().map(|(name, ty, required)| Field {
            route,
            place: Place::Frame,
            name,
            ty: *ty,
            required: *required,
        }))
        .collect()
}

/// Every field of the API: the routes in catalogue order, then the WebSocket paths.
pub fn all() -> Vec<Field> {
    let mut out: Vec<Field> = ROUTES.iter().flat_map(route_fields).collect();
    out.extend(ws_fields(WsPath::Ingest));
    out.extend(ws_fields(WsPath::Stream));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_with_a_body_query_or_param_has_fields() {
        for r in ROUTES.iter() {
            let f = route_fields(r);
            let expected = r.params.len()
                + r.query.len()
                + body_members(r.body).len()
                + (r.body != BodyKind::None) as usize
                + (r.auth == Auth::ApiKey) as usize;
            assert_eq!(f.len(), expected, "{}", r.name);
        }
        let all = all();
        assert!(all.iter().any(|f| f.route == "settings-update" && f.name == "retention_days" && f.ty == T::Int));
        assert!(all.iter().any(|f| f.route == "ws-ingest" && f.place == Place::Frame && f.name == "level"));
        // No duplicate (route, place, name).
        let mut keys: Vec<(&str, Place, &str)> = all.iter().map(|f| (f.route, f.place, f.name)).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
