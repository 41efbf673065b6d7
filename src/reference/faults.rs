//! Planted faults of the built-in target. Each reproduces one crash class of `docs/mesher-interface.md` §6
//! with a real process death or hang, never a simulated status code. Triggers and symptoms are
//! listed in [`HELP`] (shown by `mesher-stress target --help`).
//!
//! - [`Fault`]: the parsed `--fault NAME[=PARAM]` values.
//! - [`FaultSet`]: the switched-on faults at run time, with their counters; the server asks it at
//!   the trigger points (`http.rs`: accept, content length, every request (`leak`, `delay`),
//!   every routed request (`cumulative-crash`, `route-cumulative`); `ingest.rs`: event shape,
//!   rate limit; `routes.rs`: the typed fields of settings, alert rules and top issues; `ws.rs`:
//!   every `/ingest` data frame).
//! - `delay=DURATION` is the one fault that is not a crash class: a planted slowdown (every HTTP
//!   answer waits, asynchronously, so other requests are served meanwhile) for baseline
//!   comparisons to catch.
//! - The crash functions ([`service_reply_abi_crash`], [`cumulative_crash`],
//!   [`api_key_reply_crash`], [`ws_binary_frame_crash`], [`negative_retention_crash`],
//!   [`alert_cooldown_overflow_crash`], [`negative_limit_crash`], [`ws_level_case_crash`],
//!   [`route_cumulative_crash`]) are `#[inline(never)]` with telling names so gdb/core
//!   backtraces show them; they write through a null pointer (genuine SIGSEGV, exit 139).
//!   [`oversized_content_length_abort`] really asks the allocator for the buffer (genuine
//!   SIGABRT, exit 134).
//! - The typed-boundary faults (`settings-negative-retention`, `alert-cooldown-overflow`,
//!   `top-issues-negative-limit`, `ws-level-case`) each hang on one boundary value of one field
//!   that valid traffic never sends: a field-level fuzzer finds them, a valid-traffic generator
//!   does not.

use crate::api::{ROUTES, Route, RouteId};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A fault and its parameters. Written on the command line and in profiles as `name` or
/// `name=param` (e.g. `leak=51200`, `pause=5s/300ms`, `cumulative-crash=500`,
/// `route-cumulative=alerts-list/300`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// §6.1: an authenticated event of a particular shape → SIGSEGV (exit 139).
    ServiceReplyAbi,
    /// §6.1: the first rate-limit check of each project answers "limited" (429).
    RateLimitBool,
    /// §6.4 R1: an absurdly large `Content-Length` → SIGABRT (exit 134).
    OversizedContentLength,
    /// §6.4 R2: idle or trickling connections block the server (hang).
    SlowReaderStall,
    /// Every handled request leaks `bytes` bytes.
    Leak { bytes: usize },
    /// A stop-the-world pause of `length` every `every`.
    Pause { every: Duration, length: Duration },
    /// SIGSEGV after `after` database-touching requests, whatever they contain.
    CumulativeCrash { after: u64 },
    /// Every HTTP request waits `length` (asynchronously) before it is handled: a slowdown.
    Delay { length: Duration },
    /// §6.1's reply ABI on the API-key service: every created key kills the process (SIGSEGV)
    /// just after its 201 is sent.
    ApiKeyReplyAbi,
    /// A binary WebSocket frame on `/ingest` → SIGSEGV.
    WsBinaryFrameSegv,
    /// An assign with a non-string `user_id` leaves the registry lock taken: every request that
    /// needs the registry (all routed ones, every WebSocket frame) waits forever.
    GlobalLockHang,
    /// A settings update whose JSON `retention_days` is a number below zero → SIGSEGV.
    SettingsNegativeRetention,
    /// An alert rule created with a JSON integer `cooldown_minutes` that does not fit an i32
    /// (above 2147483647) → SIGSEGV.
    AlertCooldownOverflow,
    /// Top issues asked with a negative integer `limit` query parameter → SIGSEGV.
    TopIssuesNegativeLimit,
    /// A WebSocket `/ingest` text frame whose `level` is a known level in other ASCII case
    /// (`"Error"`) → SIGSEGV.
    WsLevelCase,
    /// SIGSEGV on the `after`-th HTTP request routed to `route`, whatever it contains; other
    /// routes do not count.
    RouteCumulative { route: RouteId, after: u64 },
}

impl Fault {
    pub const NAMES: [&'static str; 16] = [
        "service-reply-abi",
        "rate-limit-bool",
        "oversized-content-length",
        "slow-reader-stall",
        "leak",
        "pause",
        "cumulative-crash",
        "delay",
        "api-key-reply-abi",
        "ws-binary-frame-segv",
        "global-lock-hang",
        "settings-negative-retention",
        "alert-cooldown-overflow",
        "top-issues-negative-limit",
        "ws-level-case",
        "route-cumulative",
    ];

    /// Parse `name` or `name=param`.
    pub fn parse(s: &str) -> Result<Fault, String> {
        let (name, param) = match s.split_once('=') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let no_param = |f: Fault| match param {
            None => Ok(f),
            Some(_) => Err(format!("fault {name} takes no parameter")),
        };
        match name {
            "service-reply-abi" => no_param(Fault::ServiceReplyAbi),
            "rate-limit-bool" => no_param(Fault::RateLimitBool),
            "oversized-content-length" => no_param(Fault::OversizedContentLength),
            "slow-reader-stall" => no_param(Fault::SlowReaderStall),
            "api-key-reply-abi" => no_param(Fault::ApiKeyReplyAbi),
            "ws-binary-frame-segv" => no_param(Fault::WsBinaryFrameSegv),
            "global-lock-hang" => no_param(Fault::GlobalLockHang),
            "settings-negative-retention" => no_param(Fault::SettingsNegativeRetention),
            "alert-cooldown-overflow" => no_param(Fault::AlertCooldownOverflow),
            "top-issues-negative-limit" => no_param(Fault::TopIssuesNegativeLimit),
            "ws-level-case" => no_param(Fault::WsLevelCase),
            "route-cumulative" => {
                // No default: which route to count is the whole point of the fault.
                let syntax = "write route-cumulative=ROUTE/N (ROUTE a route name, N a positive request count), \
                              e.g. route-cumulative=alerts-list/300";
                let p = param.ok_or_else(|| format!("route-cumulative: the parameter is required; {syntax}"))?;
                let (r, n) = p.split_once('/').ok_or_else(|| format!("route-cumulative={p}: {syntax}"))?;
                let route = Route::by_name(r).ok_or_else(|| {
                    let known: Vec<&str> = ROUTES.iter().map(|r| r.name).collect();
                    format!("route-cumulative={p}: unknown route {r:?}; {syntax}; known routes: {}", known.join(", "))
                })?;
                let after = n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("route-cumulative={p}: N must be a positive request count; {syntax}"))?;
                Ok(Fault::RouteCumulative { route: route.id, after })
            }
            "leak" => {
                let bytes = match param {
                    None => 50 * 1024,
                    Some(p) => {
                        p.parse().map_err(|_| format!("leak={p}: the parameter is a byte count, e.g. leak=51200"))?
                    }
                };
                Ok(Fault::Leak { bytes })
            }
            "pause" => {
                let (every, length) = match param {
                    None => (Duration::from_secs(5), Duration::from_millis(500)),
                    Some(p) => {
                        let (e, l) = p
                            .split_once('/')
                            .ok_or_else(|| format!("pause={p}: write pause=EVERY/LENGTH, e.g. pause=5s/500ms"))?;
                        (crate::util::duration::parse(e)?, crate::util::duration::parse(l)?)
                    }
                };
                if every.is_zero() || length.is_zero() {
                    return Err("pause: EVERY and LENGTH must be positive".into());
                }
                Ok(Fault::Pause { every, length })
            }
            "cumulative-crash" => {
                let after =
                    match param {
                        None => 1000,
                        Some(p) => p.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            format!("cumulative-crash={p}: the parameter is a positive request count")
                        })?,
                    };
                Ok(Fault::CumulativeCrash { after })
            }
            "delay" => {
                let length = match param {
                    None => Duration::from_millis(5),
                    Some(p) => crate::util::duration::parse(p)?,
                };
                if length.is_zero() || length > Duration::from_secs(60) {
                    return Err(format!("delay={}: must be between 1ms and 60s, e.g. delay=5ms", param.unwrap_or("")));
                }
                Ok(Fault::Delay { length })
            }
            _ => Err(format!("unknown fault {name:?}; known faults: {}", Fault::NAMES.join(", "))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fault::ServiceReplyAbi => "service-reply-abi",
            Fault::RateLimitBool => "rate-limit-bool",
            Fault::OversizedContentLength => "oversized-content-length",
            Fault::SlowReaderStall => "slow-reader-stall",
            Fault::Leak { .. } => "leak",
            Fault::Pause { .. } => "pause",
            Fault::CumulativeCrash { .. } => "cumulative-crash",
            Fault::Delay { .. } => "delay",
            Fault::ApiKeyReplyAbi => "api-key-reply-abi",
            Fault::WsBinaryFrameSegv => "ws-binary-frame-segv",
            Fault::GlobalLockHang => "global-lock-hang",
            Fault::SettingsNegativeRetention => "settings-negative-retention",
            Fault::AlertCooldownOverflow => "alert-cooldown-overflow",
            Fault::TopIssuesNegativeLimit => "top-issues-negative-limit",
            Fault::WsLevelCase => "ws-level-case",
            Fault::RouteCumulative { .. } => "route-cumulative",
        }
    }
}

/// Help text for `mesher-stress target --help`: trigger and symptom of every fault.
pub const HELP: &str = "Planted faults (--fault NAME[=PARAM], repeatable). Each is a REAL process death or hang:

  service-reply-abi         Trigger: an authenticated event (POST /api/v1/events or
                            /api/v1/events/bulk with a valid key, or a WebSocket /ingest frame)
                            whose JSON has a stacktrace frame with \"in_app\": false AND
                            \"colno\": 0 (any number equal to zero), AND a user_context object
                            with an \"email\" key. Smallest trigger:
                            {\"stacktrace\":[{\"colno\":0,\"in_app\":false}],\"user_context\":{\"email\":0}}
                            Symptom: no response; the process dies by SIGSEGV (exit 139) in
                            service_reply_abi_crash (docs/mesher-interface.md §6.1).
  rate-limit-bool           Trigger: the first rate-limit check of each project (first
                            authenticated event). Symptom: 429 {\"error\":\"rate limited\"}
                            although the budget is untouched; later checks are normal (6.1, the
                            Bool reply misread).
  oversized-content-length  Trigger: any request on the HTTP port (any path, no auth) with a
                            Content-Length >= 2^40 and < 2^63. Symptom: the server allocates the
                            body buffer up front like Mesher's runtime; the allocation fails and
                            the process aborts with SIGABRT (exit 134), stderr `memory
                            allocation of N bytes failed` (6.4 R1).
  slow-reader-stall         Trigger: 2 connections to the HTTP port that send nothing or trickle
                            bytes. Symptom: only 2 connections are served at a time (a slot is
                            held from accept until the connection ends; reads time out after 30
                            s of silence), so every other request hangs (6.4 R2). A hang, not a
                            death.
  leak[=BYTES]              Every handled HTTP request leaks BYTES (default 51200) of touched
                            memory: RSS grows by about requests x BYTES.
  pause[=EVERY/LENGTH]      A stop-the-world pause of LENGTH every EVERY (default 5s/500ms):
                            requests arriving or in flight during it wait until it ends.
  cumulative-crash[=N]      The N-th database-touching request (any routed HTTP request, default
                            1000) kills the process by SIGSEGV (exit 139) in cumulative_crash,
                            whatever it contains; the first N-1 are answered normally.
  delay[=DURATION]          Every HTTP request (any path) waits DURATION (default 5ms) before it
                            is handled. The wait is asynchronous: other requests are served
                            meanwhile, so latency grows by DURATION and throughput falls only
                            where concurrency bounds it. A planted slowdown, not a crash (for
                            baseline comparisons).
  api-key-reply-abi         Trigger: any successful POST /api/v1/projects/:id/api-keys (the key
                            service's String reply is misread). Symptom: the 201 with the new
                            key is sent, then the process dies by SIGSEGV (exit 139) in
                            api_key_reply_crash. Mixed traffic reaches it within a second.
  ws-binary-frame-segv      Trigger: a binary frame (opcode 2) on a WebSocket /ingest
                            connection. Symptom: no reply; SIGSEGV (exit 139) in
                            ws_binary_frame_crash. Ingest connections that reconnect at once
                            kill a restarted server again right away.
  global-lock-hang          Trigger: POST /api/v1/issues/:id/assign whose JSON user_id is
                            neither a string nor null (a number, boolean, array or object).
                            Symptom: 400 {\"error\":\"invalid user_id\"}, but the handler returns
                            without giving back the registry lock every routed request and every
                            WebSocket frame takes: from then on all of them wait forever (GET of
                            an unknown path is still answered 404). A hang, not a death.
  settings-negative-retention
                            Trigger: POST /api/v1/projects/:id/settings (any :id) whose JSON
                            object body has a \"retention_days\" that is a number below zero
                            (any negative integer or fraction, e.g. -1 or -0.5; -0, 0, positive
                            numbers, strings and null are handled normally). Smallest trigger:
                            {\"retention_days\":-1}
                            Symptom: no response; SIGSEGV (exit 139) in
                            negative_retention_crash.
  alert-cooldown-overflow   Trigger: POST /api/v1/projects/:id/alert-rules (any :id) whose JSON
                            object body has a \"cooldown_minutes\" that is an integer (digits
                            only: no sign, fraction or exponent) above 2147483647, so it does
                            not fit an i32; 2147483647 itself, 2147483648.0, 3e9 and strings are
                            handled normally. Smallest trigger: {\"cooldown_minutes\":2147483648}
                            Symptom: no response; SIGSEGV (exit 139) in
                            alert_cooldown_overflow_crash.
  top-issues-negative-limit Trigger: GET /api/v1/projects/:id/dashboard/top-issues (any :id)
                            whose query parameter limit (last one wins, nothing decoded) is '-'
                            then digits, not all zero: a negative integer of any size. Missing, 0,
                            -0, positive and non-numeric limits are handled normally. Smallest
                            trigger: ?limit=-1
                            Symptom: no response; SIGSEGV (exit 139) in negative_limit_crash.
  ws-level-case             Trigger: a text frame on a WebSocket /ingest connection (opened
                            with an API key header; the key is not checked first) whose JSON
                            object has a string \"level\" equal to fatal, error, warning, info
                            or debug ignoring ASCII case but not exactly (\"Error\",
                            \"ERROR\"). Exact lowercase levels and unknown words are handled
                            normally, and so is HTTP ingestion. Smallest trigger:
                            {\"level\":\"Info\"}
                            Symptom: no reply frame; SIGSEGV (exit 139) in
                            ws_level_case_crash.
  route-cumulative=ROUTE/N  Trigger: the N-th HTTP request routed to ROUTE (a route name of the
                            catalogue; ROUTE/N is required, e.g. alerts-list/300) in one process
                            lifetime, whatever it contains; requests to other routes do not
                            count. Smallest trigger: route-cumulative=ROUTE/1 and one request
                            to ROUTE. Symptom: the first N-1 are answered normally; the N-th
                            gets no response, SIGSEGV (exit 139) in route_cumulative_crash.
                            Repeatable: each ROUTE/N given counts on its own.";

/// The smallest JSON body that triggers `service-reply-abi` (with a valid API key).
pub const SERVICE_REPLY_ABI_SMALLEST_TRIGGER: &str =
    r#"{"stacktrace":[{"colno":0,"in_app":false}],"user_context":{"email":0}}"#;

/// Lower bound (inclusive) of the Content-Length that triggers `oversized-content-length`.
pub const OVERSIZED_CONTENT_LENGTH_MIN: u64 = 1 << 40;

/// The largest `cooldown_minutes` that `alert-cooldown-overflow` lets through (i32::MAX).
pub const ALERT_COOLDOWN_MAX: u128 = i32::MAX as u128;

/// Connections served at a time under `slow-reader-stall`.
pub const SLOW_READER_SLOTS: usize = 2;

/// The faults switched on for one server, with the run-time state they need.
#[derive(Debug, Default)]
pub struct FaultSet {
    pub service_reply_abi: bool,
    pub rate_limit_bool: bool,
    pub oversized_content_length: bool,
    pub slow_reader_stall: bool,
    pub leak: Option<usize>,
    pub pause: Option<(Duration, Duration)>,
    pub cumulative_crash: Option<u64>,
    pub delay: Option<Duration>,
    pub api_key_reply_abi: bool,
    pub ws_binary_frame_segv: bool,
    pub global_lock_hang: bool,
    pub settings_negative_retention: bool,
    pub alert_cooldown_overflow: bool,
    pub top_issues_negative_limit: bool,
    pub ws_level_case: bool,
    /// `route-cumulative`: per fault given, the route, its N and the requests routed to it so far.
    route_cumulative: Vec<(RouteId, u64, AtomicU64)>,
    /// `global-lock-hang`: the pipeline registry's lock.
    registry: tokio::sync::Mutex<()>,
    db_requests: AtomicU64,
    first_checks: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl FaultSet {
    pub fn new(faults: &[Fault]) -> FaultSet {
        let mut s = FaultSet::default();
        for f in faults {
            match f {
                Fault::ServiceReplyAbi => s.service_reply_abi = true,
                Fault::RateLimitBool => s.rate_limit_bool = true,
                Fault::OversizedContentLength => s.oversized_content_length = true,
                Fault::SlowReaderStall => s.slow_reader_stall = true,
                Fault::Leak { bytes } => s.leak = Some(*bytes),
                Fault::Pause { every, length } => s.pause = Some((*every, *length)),
                Fault::CumulativeCrash { after } => s.cumulative_crash = Some(*after),
                Fault::Delay { length } => s.delay = Some(*length),
                Fault::ApiKeyReplyAbi => s.api_key_reply_abi = true,
                Fault::WsBinaryFrameSegv => s.ws_binary_frame_segv = true,
                Fault::GlobalLockHang => s.global_lock_hang = true,
                Fault::SettingsNegativeRetention => s.settings_negative_retention = true,
                Fault::AlertCooldownOverflow => s.alert_cooldown_overflow = true,
                Fault::TopIssuesNegativeLimit => s.top_issues_negative_limit = true,
                Fault::WsLevelCase => s.ws_level_case = true,
                Fault::RouteCumulative { route, after } => s.route_cumulative.push((*route, *after, AtomicU64::new(0))),
            }
        }
        s
    }

    /// `rate-limit-bool`: true when this is the first rate-limit check of `project` (answer "limited").
    pub fn first_rate_check_misread(&self, project: &str) -> bool {
        self.rate_limit_bool && self.first_checks.lock().unwrap_or_else(|e| e.into_inner()).insert(project.to_string())
    }

    /// `oversized-content-length`: called with every HTTP request's raw Content-Length value.
    pub fn check_content_length(&self, raw: &str) {
        if !self.oversized_content_length {
            return;
        }
        if let Ok(n) = raw.trim().parse::<u64>()
            && (OVERSIZED_CONTENT_LENGTH_MIN..1 << 63).contains(&n)
        {
            oversized_content_length_abort(n);
        }
    }

    /// `cumulative-crash` and `leak`: called once per routed (database-touching) HTTP request.
    pub fn on_db_request(&self) {
        if let Some(after) = self.cumulative_crash {
            let n = self.db_requests.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= after {
                cumulative_crash(n);
            }
        }
    }

    /// `route-cumulative`: called once per HTTP request the router matched, with its route.
    pub fn on_routed(&self, route: RouteId) {
        for (counted, after, seen) in &self.route_cumulative {
            if *counted == route {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= *after {
                    route_cumulative_crash(Route::get(route).name, n);
                }
            }
        }
    }

    /// `settings-negative-retention`: called with the body of every settings update.
    pub fn settings_update(&self, body: &[u8]) {
        if self.settings_negative_retention && object_field(body, "retention_days").is_some_and(is_negative_number) {
            negative_retention_crash();
        }
    }

    /// `alert-cooldown-overflow`: called with the body of every alert rule creation.
    pub fn alert_rule_create(&self, body: &[u8]) {
        if self.alert_cooldown_overflow && object_field(body, "cooldown_minutes").is_some_and(is_integer_above_i32) {
            alert_cooldown_overflow_crash();
        }
    }

    /// `top-issues-negative-limit`: called with the raw `limit` query value of every top-issues
    /// request that has one.
    pub fn top_issues_limit(&self, limit: &str) {
        if self.top_issues_negative_limit && is_negative_integer_text(limit) {
            negative_limit_crash();
        }
    }

    /// `global-lock-hang`: every routed request and WebSocket frame passes the registry (takes
    /// its lock and gives it back); after a leak it waits here forever.
    pub async fn pass_registry(&self) {
        if self.global_lock_hang {
            drop(self.registry.lock().await);
        }
    }

    /// `global-lock-hang`: the assign handler got a `user_id` of the wrong type. True when the
    /// fault is on and the lock is now held for good (the handler answers 400 all the same).
    pub async fn assign_user_id(&self, user_id: &serde_json::Value) -> bool {
        if !self.global_lock_hang || user_id.is_string() || user_id.is_null() {
            return false;
        }
        eprintln!("[mesher-stress target] global-lock-hang: assign returns early, the registry lock stays taken");
        std::mem::forget(self.registry.lock().await);
        true
    }

    /// `api-key-reply-abi`: a key was created; the process dies once the answer is out.
    pub fn api_key_created(&self) {
        if self.api_key_reply_abi {
            crash_after_answer(api_key_reply_crash);
        }
    }

    /// `ws-binary-frame-segv` and `ws-level-case`: called with every data frame of an `/ingest`
    /// connection.
    pub fn ingest_frame(&self, binary: bool, payload: &[u8]) {
        if self.ws_binary_frame_segv && binary {
            ws_binary_frame_crash();
        }
        if self.ws_level_case
            && !binary
            && serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("level").and_then(|l| l.as_str()).map(is_level_in_other_case))
                .unwrap_or(false)
        {
            ws_level_case_crash();
        }
    }

    /// `leak`: called once per handled HTTP request.
    pub fn on_request(&self) {
        if let Some(bytes) = self.leak {
            leak_bytes(bytes);
        }
    }
}

/// True when `event` has the shape that triggers `service-reply-abi`: some `stacktrace` frame with
/// `"in_app": false` and a `colno` number equal to zero, and a `user_context` object with `email`.
pub fn is_service_reply_abi_trigger(event: &serde_json::Value) -> bool {
    let frame_hit = event.get("stacktrace").and_then(|s| s.as_array()).is_some_and(|frames| {
        frames.iter().any(|f| {
            f.get("in_app") == Some(&serde_json::Value::Bool(false))
                && f.get("colno").and_then(|c| c.as_f64()).is_some_and(|c| c == 0.0)
        })
    });
    frame_hit && event.get("user_context").and_then(|u| u.as_object()).is_some_and(|u| u.contains_key("email"))
}

/// The value of `key` in a JSON object body, read from the same lossy UTF-8 text the handlers
/// hand to PostgreSQL; None when the body is not JSON, not an object or lacks the key.
fn object_field(body: &[u8], key: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(body)).ok()?;
    v.as_object_mut()?.remove(key)
}

/// `settings-negative-retention`: a JSON number below zero. Decided on the number's text (the
/// crate keeps it, `arbitrary_precision`), so `-1e-400` counts and `-0`, `-0.0e5` do not.
pub fn is_negative_number(v: serde_json::Value) -> bool {
    let serde_json::Value::Number(n) = v else {
        return false;
    };
    let t = n.to_string();
    let mantissa = t.split(['e', 'E']).next().unwrap_or("");
    mantissa.starts_with('-') && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// `alert-cooldown-overflow`: a JSON integer (digits only, as written) above [`ALERT_COOLDOWN_MAX`].
pub fn is_integer_above_i32(v: serde_json::Value) -> bool {
    let serde_json::Value::Number(n) = v else {
        return false;
    };
    let t = n.to_string();
    // Beyond u128 the digits alone say it is too large.
    t.bytes().all(|b| b.is_ascii_digit()) && t.parse::<u128>().map_or(true, |v| v > ALERT_COOLDOWN_MAX)
}

/// `top-issues-negative-limit`: `-` then ASCII digits, not all zero (a negative integer of any size).
pub fn is_negative_integer_text(s: &str) -> bool {
    s.strip_prefix('-')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && d.bytes().any(|b| b != b'0'))
}

/// `ws-level-case`: one of the known levels in other ASCII case (`Error`, `ERROR`), not the level itself.
pub fn is_level_in_other_case(level: &str) -> bool {
    crate::reference::ingest::LEVELS.iter().any(|l| *l != level && l.eq_ignore_ascii_case(level))
}

/// `service-reply-abi`: die by a genuine SIGSEGV, as Mesher does after misreading a service reply.
#[inline(never)]
pub fn service_reply_abi_crash() -> ! {
    eprintln!("[mesher-stress target] service-reply-abi: misread service reply, dereferencing it");
    null_write(0xdead)
}

/// How long after an answer the processes of the `…-after-answer` faults die: the answer is
/// written meanwhile, as Mesher writes its reply and then misreads the service reply.
pub const AFTER_ANSWER: Duration = Duration::from_millis(5);

/// Run `crash` on a thread of its own after [`AFTER_ANSWER`].
fn crash_after_answer(crash: fn() -> !) {
    let _ = std::thread::Builder::new().name("reply-abi".into()).spawn(move || {
        std::thread::sleep(AFTER_ANSWER);
        crash()
    });
}

/// `api-key-reply-abi`: die by a genuine SIGSEGV after answering a key creation.
#[inline(never)]
pub fn api_key_reply_crash() -> ! {
    eprintln!("[mesher-stress target] api-key-reply-abi: misread key service reply, dereferencing it");
    null_write(0xbeef)
}

/// `ws-binary-frame-segv`: die by a genuine SIGSEGV on a binary ingest frame.
#[inline(never)]
pub fn ws_binary_frame_crash() -> ! {
    eprintln!("[mesher-stress target] ws-binary-frame-segv: binary frame taken for text");
    null_write(0xb1)
}

/// `cumulative-crash`: die by a genuine SIGSEGV after `n` database-touching requests.
#[inline(never)]
pub fn cumulative_crash(n: u64) -> ! {
    eprintln!("[mesher-stress target] cumulative-crash: request {n} corrupts the heap");
    null_write(n)
}

/// `settings-negative-retention`: die by a genuine SIGSEGV on a negative retention.
#[inline(never)]
pub fn negative_retention_crash() -> ! {
    eprintln!("[mesher-stress target] settings-negative-retention: negative retention_days indexes before the table");
    null_write(0x4e7)
}

/// `alert-cooldown-overflow`: die by a genuine SIGSEGV on a cooldown that does not fit an i32.
#[inline(never)]
pub fn alert_cooldown_overflow_crash() -> ! {
    eprintln!("[mesher-stress target] alert-cooldown-overflow: cooldown_minutes overflows its i32");
    null_write(0xc001)
}

/// `top-issues-negative-limit`: die by a genuine SIGSEGV on a negative `limit`.
#[inline(never)]
pub fn negative_limit_crash() -> ! {
    eprintln!("[mesher-stress target] top-issues-negative-limit: negative limit sizes the result buffer");
    null_write(0x11)
}

/// `ws-level-case`: die by a genuine SIGSEGV on a level in other ASCII case.
#[inline(never)]
pub fn ws_level_case_crash() -> ! {
    eprintln!("[mesher-stress target] ws-level-case: level lookup misses its table");
    null_write(0x1e)
}

/// `route-cumulative`: die by a genuine SIGSEGV on the `n`-th request routed to `route`.
#[inline(never)]
pub fn route_cumulative_crash(route: &str, n: u64) -> ! {
    eprintln!("[mesher-stress target] route-cumulative: request {n} to {route} corrupts the heap");
    null_write(n)
}

#[inline(never)]
fn null_write(v: u64) -> ! {
    // SAFETY: deliberately not safe: the planted fault writes through a null pointer so the kernel
    // delivers SIGSEGV. The volatile write cannot be optimised away.
    unsafe {
        std::ptr::write_volatile(std::ptr::null_mut::<u64>(), v);
    }
    // Not reached; if the platform somehow maps page 0, still die by SIGSEGV.
    // SAFETY: raising a signal at ourselves has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    std::process::abort()
}

/// `oversized-content-length`: allocate the body buffer up front like Mesher's runtime. The
/// allocation of >= 1 TiB fails (Rust's allocation-error handler prints `memory allocation of N
/// bytes failed` and aborts: SIGABRT). Should the kernel grant it (overcommit "always"), abort
/// with the same message anyway, since the fault promises a death.
#[inline(never)]
pub fn oversized_content_length_abort(n: u64) -> ! {
    let buf: Vec<u8> = Vec::with_capacity(n as usize);
    std::hint::black_box(&buf);
    eprintln!("memory allocation of {n} bytes failed");
    std::process::abort()
}

/// `leak`: allocate `bytes`, write every page, and forget it.
#[inline(never)]
pub fn leak_bytes(bytes: usize) {
    let v = vec![0xA5u8; bytes];
    std::mem::forget(std::hint::black_box(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        for n in Fault::NAMES {
            // route-cumulative alone has no default parameter.
            let spec =
                if n == "route-cumulative" { "route-cumulative=alerts-list/3".to_string() } else { n.to_string() };
            assert_eq!(Fault::parse(&spec).unwrap().name(), n);
        }
        assert_eq!(Fault::parse("leak=10").unwrap(), Fault::Leak { bytes: 10 });
        assert_eq!(
            Fault::parse("pause=2s/100ms").unwrap(),
            Fault::Pause { every: Duration::from_secs(2), length: Duration::from_millis(100) }
        );
        assert!(Fault::parse("nope").unwrap_err().contains("known faults"));
        assert!(Fault::parse("leak=x").is_err());
        assert!(Fault::parse("service-reply-abi=1").is_err());
        assert_eq!(Fault::parse("delay=20ms").unwrap(), Fault::Delay { length: Duration::from_millis(20) });
        assert_eq!(Fault::parse("delay").unwrap(), Fault::Delay { length: Duration::from_millis(5) });
        assert!(Fault::parse("delay=0s").unwrap_err().contains("between"));
        assert!(Fault::parse("delay=5").unwrap_err().contains("invalid duration"));
    }

    #[test]
    fn route_cumulative_needs_a_known_route_and_a_positive_count() {
        assert_eq!(
            Fault::parse("route-cumulative=alerts-list/300").unwrap(),
            Fault::RouteCumulative { route: RouteId::AlertsList, after: 300 }
        );
        for bad in [
            "route-cumulative",
            "route-cumulative=",
            "route-cumulative=alerts-list",
            "route-cumulative=alerts-list/0",
            "route-cumulative=alerts-list/-1",
            "route-cumulative=alerts-list/x",
            "route-cumulative=/5",
        ] {
            let e = Fault::parse(bad).unwrap_err();
            assert!(e.contains("route-cumulative=ROUTE/N"), "{bad}: {e}");
        }
        let e = Fault::parse("route-cumulative=alert-list/5").unwrap_err();
        assert!(e.contains("unknown route \"alert-list\"") && e.contains("alerts-list"), "{e}");
    }

    #[test]
    fn typed_boundary_triggers_and_near_misses() {
        let num = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
        for t in ["-1", "-0.5", "-1e-400", "-2147483649", "-99999999999999999999999", "-1E3"] {
            assert!(is_negative_number(num(t)), "{t}");
        }
        for t in ["0", "-0", "-0.0", "-0.0e5", "1", "0.5", "\"-1\"", "null", "[-1]"] {
            assert!(!is_negative_number(num(t)), "{t}");
        }
        for t in ["2147483648", "4294967296", "18446744073709551616", "999999999999999999999999999999999999999999"] {
            assert!(is_integer_above_i32(num(t)), "{t}");
        }
        for t in ["2147483647", "0", "-2147483649", "2147483648.0", "3e9", "\"2147483648\"", "null"] {
            assert!(!is_integer_above_i32(num(t)), "{t}");
        }
        for t in ["-1", "-10", "-00", "-01", "-9223372036854775809"] {
            assert_eq!(is_negative_integer_text(t), t != "-00", "{t}");
        }
        for t in ["", "0", "-0", "5", "-", "-1.5", "- 1", "%2D1", "-1x", "+1", "abc"] {
            assert!(!is_negative_integer_text(t), "{t}");
        }
        for l in ["Error", "ERROR", "fAtal", "Warning", "INFO", "debuG"] {
            assert!(is_level_in_other_case(l), "{l}");
        }
        for l in ["error", "fatal", "warning", "info", "debug", "Errors", "loud", "", "ERR"] {
            assert!(!is_level_in_other_case(l), "{l}");
        }
    }

    #[test]
    fn typed_boundary_fields_are_read_from_object_bodies_only() {
        assert!(object_field(br#"{"retention_days":-1}"#, "retention_days").is_some_and(is_negative_number));
        // Last duplicate wins, as in PostgreSQL's jsonb.
        assert!(
            !object_field(br#"{"retention_days":-1,"retention_days":3}"#, "retention_days")
                .is_some_and(is_negative_number)
        );
        assert!(object_field(br#"[{"retention_days":-1}]"#, "retention_days").is_none());
        assert!(object_field(b"retention_days=-1", "retention_days").is_none());
        assert!(
            object_field(b"{\"cooldown_minutes\":2147483648,\"name\":\"\xff\"}", "cooldown_minutes")
                .is_some_and(is_integer_above_i32)
        );
    }

    #[test]
    fn smallest_trigger_triggers_and_near_misses_do_not() {
        let v: serde_json::Value = serde_json::from_str(SERVICE_REPLY_ABI_SMALLEST_TRIGGER).unwrap();
        assert!(is_service_reply_abi_trigger(&v));
        for miss in [
            r#"{"stacktrace":[{"colno":1,"in_app":false}],"user_context":{"email":0}}"#,
            r#"{"stacktrace":[{"colno":0,"in_app":true}],"user_context":{"email":0}}"#,
            r#"{"stacktrace":[{"colno":0,"in_app":false}],"user_context":{"id":0}}"#,
            r#"{"stacktrace":[{"colno":0}],"user_context":{"email":0}}"#,
            r#"{"stacktrace":{"colno":0,"in_app":false},"user_context":{"email":0}}"#,
        ] {
            assert!(!is_service_reply_abi_trigger(&serde_json::from_str(miss).unwrap()), "{miss}");
        }
        let deep = r#"{"message":"x","stacktrace":[{"filename":"a","colno":3},{"colno":0.0,"in_app":false}],
                       "user_context":{"id":"u","email":"a@b"}}"#;
        assert!(is_service_reply_abi_trigger(&serde_json::from_str(deep).unwrap()));
    }
}
