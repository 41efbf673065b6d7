//! Planted faults of the built-in target. Each reproduces one crash class of `mesher-api.md` §6
//! with a real process death or hang, never a simulated status code. Triggers and symptoms are
//! listed in [`HELP`] (shown by `mesher-stress target --help`).
//!
//! - [`Fault`]: the parsed `--fault NAME[=PARAM]` values.
//! - [`FaultSet`]: the switched-on faults at run time, with their counters; the server asks it at
//!   the trigger points (`http.rs`: accept, content length, every request (`leak`, `delay`);
//!   `ingest.rs`: event shape, rate limit).
//! - `delay=DURATION` is the one fault that is not a crash class: a planted slowdown (every HTTP
//!   answer waits, asynchronously, so other requests are served meanwhile) for baseline
//!   comparisons to catch.
//! - The crash functions ([`service_reply_abi_crash`], [`cumulative_crash`],
//!   [`api_key_reply_crash`], [`ws_binary_frame_crash`]) are `#[inline(never)]`
//!   with telling names so gdb/core backtraces show them; they write through a null pointer
//!   (genuine SIGSEGV, exit 139). [`oversized_content_length_abort`] really asks the allocator
//!   for the buffer (genuine SIGABRT, exit 134).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A fault and its parameters. Written on the command line and in profiles as `name` or
/// `name=param` (e.g. `leak=51200`, `pause=5s/300ms`, `cumulative-crash=500`).
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
}

impl Fault {
    pub const NAMES: [&'static str; 11] = [
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
                        (crate::profile::parse_duration(e)?, crate::profile::parse_duration(l)?)
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
                    Some(p) => crate::profile::parse_duration(p)?,
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
                            service_reply_abi_crash (mesher-api.md 6.1).
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
                            an unknown path is still answered 404). A hang, not a death.";

/// The smallest JSON body that triggers `service-reply-abi` (with a valid API key).
pub const SERVICE_REPLY_ABI_SMALLEST_TRIGGER: &str =
    r#"{"stacktrace":[{"colno":0,"in_app":false}],"user_context":{"email":0}}"#;

/// Lower bound (inclusive) of the Content-Length that triggers `oversized-content-length`.
pub const OVERSIZED_CONTENT_LENGTH_MIN: u64 = 1 << 40;

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
    /// `global-lock-hang`: the pipeline registry's lock.
    registry: tokio::sync::Mutex<()>,
    db_requests: std::sync::atomic::AtomicU64,
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
            let n = self.db_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n >= after {
                cumulative_crash(n);
            }
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

    /// `ws-binary-frame-segv`: called with every data frame of an `/ingest` connection.
    pub fn ingest_frame(&self, binary: bool) {
        if self.ws_binary_frame_segv && binary {
            ws_binary_frame_crash();
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
            assert_eq!(Fault::parse(n).unwrap().name(), n);
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
