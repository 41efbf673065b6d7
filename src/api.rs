//! The Mesher route catalogue: the single source of truth for every HTTP route and WebSocket
//! path of Mesher's external interface (`docs/mesher-interface.md` §2.4, §3).
//!
//! Generators, driver, the built-in target and the reports all read routes from here; no other
//! module spells a route path. A route is described by its method, its path template (with
//! `:name` parameters), the kind of each parameter, its query parameters, the body it takes,
//! whether it needs an API key, the fixtures it needs to succeed and its success status.
//!
//! [`match_route`] implements Mesher's router exactly (§2.1 "Routing"): exact routes first
//! (byte-exact path), then parameterised routes in registration order, comparing the non-empty
//! `/`-separated segments; the method must match; no match is a 404 `Not Found`.

pub mod fields;

use serde::{Deserialize, Serialize};

/// HTTP method of a route. Mesher only registers GET and POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a path parameter holds and how Mesher resolves it (§2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// `:project_id`: a 36-code-point string is taken as a UUID as-is, anything else is a slug.
    ProjectRef,
    OrgId,
    IssueId,
    EventId,
    MembershipId,
    ApiKeyId,
    AlertRuleId,
    AlertId,
}

/// The kind of a query parameter's value, so generators know what to put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// Issue status filter (`unresolved`, `resolved`, `archived`, `discarded`).
    IssueStatus,
    /// Event level (`fatal`, `error`, `warning`, `info`, `debug`).
    Level,
    /// A user UUID.
    UserId,
    /// A timestamp cursor (PostgreSQL text form with the space replaced by `T`).
    Cursor,
    /// A UUID tie-breaker for `Cursor`.
    CursorId,
    /// Page size; 1..=100 honoured, anything else means 25 (§2.5 #3).
    Limit,
    /// Unvalidated `LIMIT` (top-issues, timeline): any integer ≥ 0.
    RawLimit,
    /// Full-text search words.
    SearchText,
    /// A tag key.
    TagKey,
    /// A tag value.
    TagValue,
    /// A `date_trunc` unit (`hour`, `day`, ...).
    Bucket,
    /// Alert status filter (`active`, `acknowledged`, `resolved`).
    AlertStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryParam {
    pub name: &'static str,
    pub kind: QueryKind,
    /// Mesher answers 400 when this parameter is missing or empty.
    pub required: bool,
}

/// Authentication a route needs (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    None,
    /// Raw API key in lowercase `x-sentry-auth` (or, if absent, `authorization`).
    ApiKey,
}

/// The request body a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    None,
    /// One event (§4).
    Event,
    /// The bulk route: the whole body is processed as one event (§2.5 #2).
    BulkEvent,
    /// `{"user_id":"<uuid>"}`
    Assign,
    /// `{"user_id":"<uuid>","role":"<text>"}`
    AddMember,
    /// `{"role":"owner"|"admin"|"member"}`
    MemberRole,
    /// `{"label":"<text>"}`
    ApiKeyLabel,
    /// `{"name","condition","action","cooldown_minutes"}`
    AlertRule,
    /// `{"enabled": <bool-ish>}`
    Toggle,
    /// `{"retention_days","sample_rate"}`
    Settings,
}

/// A fixture a route needs to return a successful, non-empty result (§5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fixture {
    Project,
    ApiKey,
    Org,
    User,
    Issue,
    Event,
    Membership,
    AlertRule,
    Alert,
}

/// Every HTTP route, in Mesher's registration order (the numbering of §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteId {
    EventsIngest,
    EventsBulk,
    IssuesList,
    EventsSearch,
    EventsTags,
    IssueEvents,
    DashboardVolume,
    DashboardLevels,
    DashboardTopIssues,
    DashboardTags,
    IssueTimeline,
    DashboardHealth,
    EventDetail,
    IssueResolve,
    IssueArchive,
    IssueUnresolve,
    IssueAssign,
    IssueDiscard,
    IssueDelete,
    MembersList,
    MembersAdd,
    MemberRole,
    MemberRemove,
    ApiKeysList,
    ApiKeysCreate,
    ApiKeyRevoke,
    AlertRulesList,
    AlertRulesCreate,
    AlertRuleToggle,
    AlertRuleDelete,
    AlertsList,
    AlertAcknowledge,
    AlertResolve,
    SettingsGet,
    SettingsUpdate,
    Storage,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Route {
    pub id: RouteId,
    /// The route's number in `docs/mesher-interface.md` §2.4 (1..=36).
    pub number: u8,
    /// Stable short name used in reports, corpus directories and profiles (`dashboard-health`).
    pub name: &'static str,
    pub method: Method,
    /// Path template, e.g. `/api/v1/projects/:project_id/dashboard/health`.
    pub template: &'static str,
    /// Kinds of the `:params` of `template`, in order.
    pub params: &'static [ParamKind],
    pub query: &'static [QueryParam],
    pub auth: Auth,
    pub body: BodyKind,
    /// Status of a successful request.
    pub success: u16,
    /// Fixtures needed for a successful, non-empty answer.
    pub needs: &'static [Fixture],
    /// True when the route reads or writes the database (all but none in Mesher: every handler
    /// fetches the pool). Kept explicit for the target's cumulative-crash counter.
    pub touches_db: bool,
    /// True when a successful call broadcasts an `issue` message to stream subscribers.
    pub broadcasts: bool,
    /// True for routes that change state (used to keep read-only benchmarks read-only).
    pub mutates: bool,
}

impl Route {
    /// Build a concrete path from the template, substituting `args` for the parameters in order.
    ///
    /// Panics if the number of arguments differs from the number of parameters: that is a
    /// programming error, never a property of input.
    pub fn path(&self, args: &[&str]) -> String {
        assert_eq!(args.len(), self.params.len(), "wrong argument count for {}", self.name);
        let mut out = String::with_capacity(self.template.len() + 40);
        let mut next = 0;
        for seg in self.template.split('/').skip(1) {
            out.push('/');
            if seg.starts_with(':') {
                out.push_str(args[next]);
                next += 1;
            } else {
                out.push_str(seg);
            }
        }
        out
    }

    /// Names of the template's parameters (`project_id`, ...), in order.
    pub fn param_names(&self) -> impl Iterator<Item = &'static str> {
        self.template.split('/').filter_map(|s| s.strip_prefix(':'))
    }

    /// True for routes without parameters (matched byte-exactly by Mesher's router).
    pub fn is_exact(&self) -> bool {
        self.params.is_empty()
    }

    pub fn get(id: RouteId) -> &'static Route {
        &ROUTES[id as usize]
    }

    pub fn by_name(name: &str) -> Option<&'static Route> {
        ROUTES.iter().find(|r| r.name == name)
    }
}

macro_rules! q {
    ($name:literal, $kind:ident) => {
        QueryParam { name: $name, kind: QueryKind::$kind, required: false }
    };
    ($name:literal, $kind:ident, required) => {
        QueryParam { name: $name, kind: QueryKind::$kind, required: true }
    };
}

use BodyKind as B;
use Fixture as F;
use Method::{Get, Post};
use ParamKind as P;

#[allow(clippy::too_many_arguments)] // one row of the catalogue table
const fn route(
    id: RouteId,
    name: &'static str,
    method: Method,
    template: &'static str,
    params: &'static [ParamKind],
    query: &'static [QueryParam],
    body: BodyKind,
    success: u16,
    needs: &'static [Fixture],
) -> Route {
    let auth = match id {
        RouteId::EventsIngest | RouteId::EventsBulk => Auth::ApiKey,
        _ => Auth::None,
    };
    let broadcasts =
        matches!(id, RouteId::IssueResolve | RouteId::IssueArchive | RouteId::IssueUnresolve | RouteId::IssueDiscard);
    Route {
        id,
        number: id as u8 + 1,
        name,
        method,
        template,
        params,
        query,
        auth,
        body,
        success,
        needs,
        touches_db: true,
        broadcasts,
        mutates: matches!(method, Method::Post),
    }
}

const PAGE: &[QueryParam] = &[q!("cursor", Cursor), q!("cursor_id", CursorId), q!("limit", Limit)];

/// The 36 routes, indexed by `RouteId as usize`, in Mesher's registration order.
pub static ROUTES: [Route; 36] = {
    use RouteId::*;
    [
        route(EventsIngest, "events-ingest", Post, "/api/v1/events", &[], &[], B::Event, 202, &[F::Project, F::ApiKey]),
        route(
            EventsBulk,
            "events-bulk",
            Post,
            "/api/v1/events/bulk",
            &[],
            &[],
            B::BulkEvent,
            202,
            &[F::Project, F::ApiKey],
        ),
        route(
            IssuesList,
            "issues-list",
            Get,
            "/api/v1/projects/:project_id/issues",
            &[P::ProjectRef],
            &[
                q!("status", IssueStatus),
                q!("level", Level),
                q!("assigned_to", UserId),
                q!("cursor", Cursor),
                q!("cursor_id", CursorId),
                q!("limit", Limit),
            ],
            B::None,
            200,
            &[F::Project, F::Issue],
        ),
        route(
            EventsSearch,
            "events-search",
            Get,
            "/api/v1/projects/:project_id/events/search",
            &[P::ProjectRef],
            &[q!("q", SearchText, required), q!("limit", Limit)],
            B::None,
            200,
            &[F::Project, F::Event],
        ),
        route(
            EventsTags,
            "events-tags",
            Get,
            "/api/v1/projects/:project_id/events/tags",
            &[P::ProjectRef],
            &[q!("key", TagKey, required), q!("value", TagValue, required), q!("limit", Limit)],
            B::None,
            200,
            &[F::Project, F::Event],
        ),
        route(
            IssueEvents,
            "issue-events",
            Get,
            "/api/v1/issues/:issue_id/events",
            &[P::IssueId],
            PAGE,
            B::None,
            200,
            &[F::Issue, F::Event],
        ),
        route(
            DashboardVolume,
            "dashboard-volume",
            Get,
            "/api/v1/projects/:project_id/dashboard/volume",
            &[P::ProjectRef],
            &[q!("bucket", Bucket)],
            B::None,
            200,
            &[F::Project, F::Event],
        ),
        route(
            DashboardLevels,
            "dashboard-levels",
            Get,
            "/api/v1/projects/:project_id/dashboard/levels",
            &[P::ProjectRef],
            &[],
            B::None,
            200,
            &[F::Project, F::Event],
        ),
        route(
            DashboardTopIssues,
            "dashboard-top-issues",
            Get,
            "/api/v1/projects/:project_id/dashboard/top-issues",
            &[P::ProjectRef],
            &[q!("limit", RawLimit)],
            B::None,
            200,
            &[F::Project, F::Issue],
        ),
        route(
            DashboardTags,
            "dashboard-tags",
            Get,
            "/api/v1/projects/:project_id/dashboard/tags",
            &[P::ProjectRef],
            &[q!("key", TagKey, required)],
            B::None,
            200,
            &[F::Project, F::Event],
        ),
        route(
            IssueTimeline,
            "issue-timeline",
            Get,
            "/api/v1/issues/:issue_id/timeline",
            &[P::IssueId],
            &[q!("limit", RawLimit)],
            B::None,
            200,
            &[F::Issue, F::Event],
        ),
        route(
            DashboardHealth,
            "dashboard-health",
            Get,
            "/api/v1/projects/:project_id/dashboard/health",
            &[P::ProjectRef],
            &[],
            B::None,
            200,
            &[F::Project],
        ),
        route(
            EventDetail,
            "event-detail",
            Get,
            "/api/v1/events/:event_id",
            &[P::EventId],
            &[],
            B::None,
            200,
            &[F::Event],
        ),
        route(
            IssueResolve,
            "issue-resolve",
            Post,
            "/api/v1/issues/:id/resolve",
            &[P::IssueId],
            &[],
            B::None,
            200,
            &[F::Issue],
        ),
        route(
            IssueArchive,
            "issue-archive",
            Post,
            "/api/v1/issues/:id/archive",
            &[P::IssueId],
            &[],
            B::None,
            200,
            &[F::Issue],
        ),
        route(
            IssueUnresolve,
            "issue-unresolve",
            Post,
            "/api/v1/issues/:id/unresolve",
            &[P::IssueId],
            &[],
            B::None,
            200,
            &[F::Issue],
        ),
        route(
            IssueAssign,
            "issue-assign",
            Post,
            "/api/v1/issues/:id/assign",
            &[P::IssueId],
            &[],
            B::Assign,
            200,
            &[F::Issue, F::User],
        ),
        route(
            IssueDiscard,
            "issue-discard",
            Post,
            "/api/v1/issues/:id/discard",
            &[P::IssueId],
            &[],
            B::None,
            200,
            &[F::Issue],
        ),
        route(
            IssueDelete,
            "issue-delete",
            Post,
            "/api/v1/issues/:id/delete",
            &[P::IssueId],
            &[],
            B::None,
            200,
            &[F::Issue],
        ),
        route(
            MembersList,
            "members-list",
            Get,
            "/api/v1/orgs/:org_id/members",
            &[P::OrgId],
            &[],
            B::None,
            200,
            &[F::Org, F::Membership],
        ),
        route(
            MembersAdd,
            "members-add",
            Post,
            "/api/v1/orgs/:org_id/members",
            &[P::OrgId],
            &[],
            B::AddMember,
            201,
            &[F::Org, F::User],
        ),
        route(
            MemberRole,
            "member-role",
            Post,
            "/api/v1/orgs/:org_id/members/:membership_id/role",
            &[P::OrgId, P::MembershipId],
            &[],
            B::MemberRole,
            200,
            &[F::Membership],
        ),
        route(
            MemberRemove,
            "member-remove",
            Post,
            "/api/v1/orgs/:org_id/members/:membership_id/remove",
            &[P::OrgId, P::MembershipId],
            &[],
            B::None,
            200,
            &[F::Membership],
        ),
        route(
            ApiKeysList,
            "api-keys-list",
            Get,
            "/api/v1/projects/:project_id/api-keys",
            &[P::ProjectRef],
            &[],
            B::None,
            200,
            &[F::Project, F::ApiKey],
        ),
        route(
            ApiKeysCreate,
            "api-keys-create",
            Post,
            "/api/v1/projects/:project_id/api-keys",
            &[P::ProjectRef],
            &[],
            B::ApiKeyLabel,
            201,
            &[F::Project],
        ),
        route(
            ApiKeyRevoke,
            "api-key-revoke",
            Post,
            "/api/v1/api-keys/:key_id/revoke",
            &[P::ApiKeyId],
            &[],
            B::None,
            200,
            &[F::ApiKey],
        ),
        route(
            AlertRulesList,
            "alert-rules-list",
            Get,
            "/api/v1/projects/:project_id/alert-rules",
            &[P::ProjectRef],
            &[],
            B::None,
            200,
            &[F::Project, F::AlertRule],
        ),
        route(
            AlertRulesCreate,
            "alert-rules-create",
            Post,
            "/api/v1/projects/:project_id/alert-rules",
            &[P::ProjectRef],
            &[],
            B::AlertRule,
            201,
            &[F::Project],
        ),
        route(
            AlertRuleToggle,
            "alert-rule-toggle",
            Post,
            "/api/v1/alert-rules/:rule_id/toggle",
            &[P::AlertRuleId],
            &[],
            B::Toggle,
            200,
            &[F::AlertRule],
        ),
        route(
            AlertRuleDelete,
            "alert-rule-delete",
            Post,
            "/api/v1/alert-rules/:rule_id/delete",
            &[P::AlertRuleId],
            &[],
            B::None,
            200,
            &[F::AlertRule],
        ),
        route(
            AlertsList,
            "alerts-list",
            Get,
            "/api/v1/projects/:project_id/alerts",
            &[P::ProjectRef],
            &[q!("status", AlertStatus)],
            B::None,
            200,
            &[F::Project, F::Alert],
        ),
        route(
            AlertAcknowledge,
            "alert-acknowledge",
            Post,
            "/api/v1/alerts/:id/acknowledge",
            &[P::AlertId],
            &[],
            B::None,
            200,
            &[F::Alert],
        ),
        route(
            AlertResolve,
            "alert-resolve",
            Post,
            "/api/v1/alerts/:id/resolve",
            &[P::AlertId],
            &[],
            B::None,
            200,
            &[F::Alert],
        ),
        route(
            SettingsGet,
            "settings-get",
            Get,
            "/api/v1/projects/:project_id/settings",
            &[P::ProjectRef],
            &[],
            B::None,
            200,
            &[F::Project],
        ),
        route(
            SettingsUpdate,
            "settings-update",
            Post,
            "/api/v1/projects/:project_id/settings",
            &[P::ProjectRef],
            &[],
            B::Settings,
            200,
            &[F::Project],
        ),
        route(
            Storage,
            "storage",
            Get,
            "/api/v1/projects/:project_id/storage",
            &[P::ProjectRef],
            &[],
            B::None,
            200,
            &[F::Project],
        ),
    ]
};

/// The two WebSocket paths Mesher distinguishes on port 8081 (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WsPath {
    /// `/ingest` (in fact any path not containing `/stream/projects/`): authenticated event frames.
    Ingest,
    /// `/stream/projects/:project_id`: subscription to a project's room.
    Stream,
}

impl WsPath {
    pub const INGEST: &'static str = "/ingest";
    pub const STREAM_PREFIX: &'static str = "/stream/projects/";

    pub fn name(self) -> &'static str {
        match self {
            WsPath::Ingest => "ws-ingest",
            WsPath::Stream => "ws-stream",
        }
    }

    /// The path to connect to. `project` is only used for [`WsPath::Stream`].
    pub fn path(self, project: &str) -> String {
        match self {
            WsPath::Ingest => Self::INGEST.to_string(),
            WsPath::Stream => format!("{}{}", Self::STREAM_PREFIX, project),
        }
    }

    /// Mesher's classification of a WebSocket request target (§3.2): stream client iff the
    /// target contains `/stream/projects/`.
    pub fn classify(target: &str) -> WsPath {
        if target.contains(Self::STREAM_PREFIX) { WsPath::Stream } else { WsPath::Ingest }
    }

    /// Mesher's extraction of the stream project id (§3.2): split on `/`; if the second element
    /// is `ws` take the fifth, otherwise the fourth. Not validated, query string kept.
    pub fn stream_project_id(target: &str) -> Option<&str> {
        let parts: Vec<&str> = target.split('/').collect();
        let idx = if parts.get(1) == Some(&"ws") { 4 } else { 3 };
        parts.get(idx).copied()
    }
}

/// The result of routing a request like Mesher does.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    pub route: &'static Route,
    /// The raw (never decoded) parameter segments, in template order.
    pub args: Vec<&'a str>,
}

/// Route `method` + `path` (query already removed) exactly like Mesher's router (§2.1).
/// `None` means 404 `Not Found` (also for a wrong method: Mesher has no 405).
pub fn match_route<'a>(method: &str, path: &'a str) -> Option<RouteMatch<'a>> {
    // Case-sensitive, and only GET and POST routes exist.
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        _ => return None,
    };
    // Pass 1: exact routes, byte-exact path.
    for r in exact_routes() {
        if r.method == method && r.template == path {
            return Some(RouteMatch { route: r, args: Vec::new() });
        }
    }
    // Pass 2: parameterised routes in registration order, comparing non-empty segments. No
    // template has more than MAX_SEGMENTS segments, so a longer path matches none.
    let mut segs: [&'a str; MAX_SEGMENTS] = [""; MAX_SEGMENTS];
    let mut n = 0;
    for s in path.split('/').filter(|s| !s.is_empty()) {
        if n == MAX_SEGMENTS {
            return None;
        }
        segs[n] = s;
        n += 1;
    }
    let segs = &segs[..n];
    'routes: for (r, tsegs) in &template_segments()[n] {
        if r.method != method {
            continue;
        }
        for (t, s) in tsegs.iter().zip(segs) {
            if !t.starts_with(':') && t != s {
                continue 'routes;
            }
        }
        let args = tsegs.iter().zip(segs).filter(|(t, _)| t.starts_with(':')).map(|(_, s)| *s).collect();
        return Some(RouteMatch { route: r, args });
    }
    None
}

/// Most non-empty segments in a route template.
const MAX_SEGMENTS: usize = 8;

/// The routes without parameters, in registration order.
fn exact_routes() -> &'static [&'static Route] {
    static EXACT: std::sync::OnceLock<Vec<&'static Route>> = std::sync::OnceLock::new();
    EXACT.get_or_init(|| ROUTES.iter().filter(|r| r.is_exact()).collect())
}

/// Parameterised routes with their templates' non-empty segments, grouped by segment count
/// (index = count; registration order kept within a group, which is all that matching order
/// needs: routes of different lengths never match the same path).
type Templates = [Vec<(&'static Route, Vec<&'static str>)>; MAX_SEGMENTS + 1];

fn template_segments() -> &'static Templates {
    static SEGS: std::sync::OnceLock<Templates> = std::sync::OnceLock::new();
    SEGS.get_or_init(|| {
        let mut by_len: Templates = Default::default();
        for r in ROUTES.iter().filter(|r| !r.is_exact()) {
            let t: Vec<&'static str> = r.template.split('/').filter(|s| !s.is_empty()).collect();
            assert!(t.len() <= MAX_SEGMENTS, "{}: raise MAX_SEGMENTS", r.template);
            by_len[t.len()].push((r, t));
        }
        by_len
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_indexed_by_id_and_numbered_like_the_spec() {
        assert_eq!(ROUTES.len(), 36);
        for (i, r) in ROUTES.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{}", r.name);
            assert_eq!(r.number as usize, i + 1);
            assert_eq!(r.param_names().count(), r.params.len(), "{}", r.name);
        }
        assert_eq!(ROUTES.iter().filter(|r| r.method == Method::Get).count(), 17);
        assert_eq!(ROUTES.iter().filter(|r| r.method == Method::Post).count(), 19);
        let mut names: Vec<_> = ROUTES.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 36, "route names are unique");
    }

    #[test]
    fn every_route_matches_its_own_path() {
        for r in ROUTES.iter() {
            let args: Vec<String> = (0..r.params.len()).map(|i| format!("arg{i}")).collect();
            let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
            let path = r.path(&args_ref);
            let m = match_route(r.method.as_str(), &path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(m.route.id, r.id, "{path}");
            assert_eq!(m.args, args_ref);
        }
    }

    #[test]
    fn router_quirks_follow_the_spec() {
        // Trailing slash on an exact route: no match.
        assert!(match_route("POST", "/api/v1/events/").is_none());
        // Collision: GET /events/bulk is the event-detail route with id "bulk".
        let m = match_route("GET", "/api/v1/events/bulk").unwrap();
        assert_eq!(m.route.id, RouteId::EventDetail);
        assert_eq!(m.args, vec!["bulk"]);
        // Repeated and trailing slashes are ignored on parameterised routes.
        let m = match_route("POST", "//api//v1/issues/X/resolve/").unwrap();
        assert_eq!(m.route.id, RouteId::IssueResolve);
        // Empty parameters never match.
        assert!(match_route("GET", "/api/v1/projects//issues").is_none());
        // Methods are case-sensitive and there is no 405.
        assert!(match_route("get", "/api/v1/projects/x/issues").is_none());
        assert!(match_route("DELETE", "/api/v1/events").is_none());
    }

    #[test]
    fn websocket_paths_are_classified_like_mesher() {
        assert_eq!(WsPath::classify("/ingest"), WsPath::Ingest);
        assert_eq!(WsPath::classify("/foo"), WsPath::Ingest);
        assert_eq!(WsPath::classify("/stream/projects"), WsPath::Ingest);
        assert_eq!(WsPath::classify("/stream/projects/abc"), WsPath::Stream);
        assert_eq!(WsPath::stream_project_id("/stream/projects/abc"), Some("abc"));
        assert_eq!(WsPath::stream_project_id("/ws/stream/projects/abc?x=1"), Some("abc?x=1"));
        assert_eq!(WsPath::stream_project_id("/a/stream/projects/x"), Some("projects"));
    }
}
