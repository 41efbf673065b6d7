//! Buckets and reproducers on disk.
//!
//! A bucket is one distinct crash: its [`Signature`] is how the target died (signal / exit code
//! / hang) + the route(s) + the shape of the minimised input (JSON skeleton: keys and types,
//! never values; header names) + the top frames of a gdb backtrace when available. The bucket
//! id is a short hash of the signature plus a readable slug (`3f9c1a2b7d-sigsegv-events-ingest`).
//!
//! Layout of `corpus/crashes/<bucket-id>/`: `meta.json` ([`Meta`]), `payloads.json` (what
//! `mesher-stress replay` sends: payloads, concurrency, repeat count), `request.http` (exact
//! bytes of a single HTTP reproducer) or `frames.json` (a single WebSocket script), `body.bin`
//! (for curl), `repro.sh`. New buckets are written into a temp directory, fsynced and renamed
//! into place; meta updates go through a temp file + rename. A `kill -9` at any moment leaves
//! either the old or the new state, never a half-written bucket.

use super::Death;
use super::kind::CrashKind;
use super::shrink::route_key;
use crate::model::{HttpRequest, MutationStep, Payload, RequestSeed};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What makes two crashes the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `SIGSEGV`, `exit-3`, `hang`.
    pub death: String,
    pub kind: CrashKind,
    /// Route name(s) of the reproducer, in order.
    pub routes: Vec<String>,
    /// Skeleton of each minimised payload (one per payload; for cumulative crashes: empty).
    pub shapes: Vec<String>,
    /// Top function names of the backtrace (libc/raise frames skipped); empty without gdb.
    #[serde(default)]
    pub frames: Vec<String>,
}

impl Signature {
    pub fn text(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.death,
            self.kind,
            self.routes.join(","),
            self.shapes.join(" ; "),
            self.frames.join(" < ")
        )
    }

    pub fn slug(&self) -> String {
        let mut s = format!(
            "{}-{}",
            self.death.to_ascii_lowercase(),
            self.routes.first().map(String::as_str).unwrap_or("none")
        );
        if self.kind != CrashKind::Single {
            s.push('-');
            s.push_str(self.kind.as_str());
        }
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
    }

    /// `<10 hex of sha1(signature)>-<slug>`.
    pub fn bucket_id(&self) -> String {
        let h = sha1_smol::Sha1::from(self.text()).digest().to_string();
        format!("{}-{}", &h[..10], self.slug())
    }
}

/// Keys and types of a JSON value, never its values. Objects list sorted keys; arrays list the
/// distinct element shapes.
pub fn json_skeleton(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "num".into(),
        Value::String(_) => "str".into(),
        Value::Array(a) => {
            let mut shapes: Vec<String> = a.iter().map(json_skeleton).collect();
            shapes.sort();
            shapes.dedup();
            format!("[{}]", shapes.join("|"))
        }
        Value::Object(m) => {
            let mut keys: Vec<(&String, &Value)> = m.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k:?}:{}", json_skeleton(v))).collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

fn body_shape(b: &[u8]) -> String {
    if b.is_empty() {
        "empty".into()
    } else if let Ok(v) = serde_json::from_slice::<Value>(b) {
        json_skeleton(&v)
    } else {
        "bytes".into()
    }
}

fn header_names<'a>(hs: impl Iterator<Item = &'a str>) -> String {
    // Mesher reads the API key from `x-sentry-auth` or, without it, `authorization`: one
    // header under two names, not two shapes.
    let mut names: Vec<String> = hs
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| n != "host")
        .map(|n| if n == "authorization" { "x-sentry-auth".to_string() } else { n })
        .collect();
    names.sort();
    names.dedup();
    names.join(",")
}

/// Shape of one payload (method, header names, body skeleton; WS: opcodes and payload shapes).
pub fn payload_shape(p: &Payload) -> String {
    match p {
        Payload::Http(r) => {
            if let Some(raw) = &r.raw {
                // The head ends at the first empty line, CRLF or bare LF alike.
                let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
                let lf = raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
                let (head, body) = match end.into_iter().chain(lf).min() {
                    Some((h, b)) => (&raw[..h], &raw[b..]),
                    None => (&raw[..], &[][..]),
                };
                let head = String::from_utf8_lossy(head);
                let method = head.split(' ').next().unwrap_or("").to_string();
                let names = header_names(
                    head.lines().skip(1).filter_map(|l| l.split(':').next()).map(str::trim).filter(|n| !n.is_empty()),
                );
                // No mark of its own: raw bytes that minimise to a well-formed request have the
                // shape of that request (one crash, one bucket); malformed heads differ anyway.
                format!("{method} h[{names}] {}", body_shape(body))
            } else {
                let names = header_names(r.headers.iter().map(|(n, _)| n.as_str()));
                format!("{} h[{names}] {}", r.method, body_shape(&r.body))
            }
        }
        Payload::Ws(w) => {
            let frames: Vec<String> = w
                .frames
                .iter()
                .map(|f| {
                    let mut s = format!("op{}", f.opcode);
                    if !f.fin {
                        s.push_str("-nofin");
                    }
                    if f.rsv != 0 {
                        s.push_str("-rsv");
                    }
                    if !f.masked {
                        s.push_str("-unmasked");
                    }
                    if f.declared_len.is_some() {
                        s.push_str("-lying-len");
                    }
                    format!("{s}:{}", body_shape(&f.payload))
                })
                .collect();
            format!("ws h[{}] {}", header_names(w.headers.iter().map(|(n, _)| n.as_str())), frames.join(" "))
        }
    }
}

/// Reproduction rates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReproRate {
    pub tries: usize,
    pub serial_hits: usize,
    pub concurrent_hits: usize,
}

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub bucket_id: String,
    pub signature: Signature,
    pub death: Death,
    /// `SIGSEGV` etc. (None for exit codes and hangs).
    pub signal: Option<String>,
    pub signo: Option<i32>,
    /// Shell form (139 for SIGSEGV).
    pub shell_exit: Option<i32>,
    /// First route (also in the signature).
    pub route: String,
    pub kind: CrashKind,
    pub concurrency: usize,
    /// Cumulative crashes: number of requests after which the target dies, counted after its
    /// readiness probe (a target nobody probed needs one more).
    pub cumulative_count: Option<u64>,
    pub run_seed: Option<u64>,
    pub request_seeds: Vec<RequestSeed>,
    pub trails: Vec<Vec<MutationStep>>,
    /// Oracle executions, target restarts and seconds spent (attribution + minimisation).
    pub executions: u64,
    pub restarts: u64,
    pub seconds: f64,
    /// Total payload bytes before and after minimisation.
    pub size_before: usize,
    pub size_after: usize,
    pub repro: ReproRate,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub tool_version: String,
    /// The target command that was used.
    pub target: String,
    /// Coarse keys (death + route + unminimised shape) already attributed to this bucket: a new
    /// crash with one of these is counted without re-triage.
    #[serde(default)]
    pub coarse_keys: Vec<String>,
    #[serde(default)]
    pub backtrace: Vec<String>,
    #[serde(default)]
    pub log_tail: Vec<String>,
    /// The profile of the run that found it (`replay` without target options starts that
    /// target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<PathBuf>,
}

/// `payloads.json`: what replay sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReproInputs {
    pub payloads: Vec<Payload>,
    /// 1 = serially in order.
    pub concurrency: usize,
    /// Send the payloads this many times (cumulative crashes), else 1.
    pub repeat: u64,
    pub death: Death,
    /// The probe the crash was judged with (hangs: a request that needs what the hang holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Payload>,
}

/// The crash corpus directory.
pub struct Store {
    pub dir: PathBuf,
}

pub fn now_text() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn sync_dir(path: &Path) {
    if let Ok(d) = std::fs::File::open(path) {
        let _ = d.sync_all();
    }
}

/// Replace `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp =
        dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|s| s.to_str()).unwrap_or("f"), std::process::id()));
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename into {}", path.display()))?;
    sync_dir(dir);
    Ok(())
}

impl Store {
    /// Open (create) a corpus directory; removes temp directories older than 10 minutes left by
    /// a killed writer.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a.as_secs() > 600);
                if name.starts_with(".tmp-") && old {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Store { dir })
    }

    /// All buckets (directories with a readable meta.json), sorted by id.
    pub fn list(&self) -> Result<Vec<Meta>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(m) = read_meta(&e.path()) {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.bucket_id.cmp(&b.bucket_id));
        Ok(out)
    }

    pub fn bucket_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The bucket a coarse key was attributed to before, if any.
    pub fn find_coarse(&self, key: &str) -> Result<Option<Meta>> {
        Ok(self.list()?.into_iter().find(|m| m.coarse_keys.iter().any(|k| k == key)))
    }

    /// The bucket with this signature apart from its gdb frames, if any.
    pub fn find_signature(&self, sig: &Signature) -> Result<Option<Meta>> {
        Ok(self.list()?.into_iter().find(|m| {
            let s = &m.signature;
            s.death == sig.death && s.kind == sig.kind && s.routes == sig.routes && s.shapes == sig.shapes
        }))
    }

    /// Count one more hit of an existing bucket (atomic meta rewrite).
    pub fn hit(&self, id: &str, coarse_key: Option<&str>) -> Result<Meta> {
        let dir = self.bucket_dir(id);
        let mut m = read_meta(&dir)?;
        m.count += 1;
        m.last_seen = now_text();
        if let Some(k) = coarse_key
            && !m.coarse_keys.iter().any(|x| x == k)
            && m.coarse_keys.len() < 64
        {
            m.coarse_keys.push(k.to_string());
        }
        write_atomic(&dir.join("meta.json"), &serde_json::to_vec_pretty(&m)?)?;
        Ok(m)
    }

    /// Record a crash: a new bucket directory (written atomically), or one more hit of the
    /// existing bucket with the same id. Returns the bucket's meta and whether it is new.
    pub fn record(&self, meta: Meta, inputs: &ReproInputs) -> Result<(Meta, bool)> {
        let id = meta.bucket_id.clone();
        let dir = self.bucket_dir(&id);
        if dir.join("meta.json").exists() {
            let key = meta.coarse_keys.first().cloned();
            return Ok((self.hit(&id, key.as_deref())?, false));
        }
        let tmp = self.dir.join(format!(".tmp-{id}-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&tmp)?;
        write_synced(&tmp.join("payloads.json"), &serde_json::to_vec_pretty(inputs)?)?;
        if let [p] = inputs.payloads.as_slice() {
            match p {
                Payload::Http(r) => {
                    write_synced(&tmp.join("request.http"), &r.to_wire("127.0.0.1:8080"))?;
                    write_synced(&tmp.join("body.bin"), &r.body)?;
                }
                Payload::Ws(w) => write_synced(&tmp.join("frames.json"), &serde_json::to_vec_pretty(w)?)?,
            }
        }
        let script = repro_script(&meta, inputs);
        write_synced(&tmp.join("repro.sh"), script.as_bytes())?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.join("repro.sh"), std::fs::Permissions::from_mode(0o755))?;
        }
        write_synced(&tmp.join("meta.json"), &serde_json::to_vec_pretty(&meta)?)?;
        sync_dir(&tmp);
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok((meta, true))
            }
            Err(_) if dir.join("meta.json").exists() => {
                let _ = std::fs::remove_dir_all(&tmp);
                let key = meta.coarse_keys.first().cloned();
                Ok((self.hit(&id, key.as_deref())?, false))
            }
            Err(e) => Err(e).with_context(|| format!("cannot move bucket into {}", dir.display())),
        }
    }
}

pub fn read_meta(dir: &Path) -> Result<Meta> {
    let p = dir.join("meta.json");
    let t = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_slice(&t).with_context(|| format!("{} is not a valid meta.json", p.display()))
}

pub fn read_inputs(dir: &Path) -> Result<ReproInputs> {
    let p = dir.join("payloads.json");
    let t = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_slice(&t).with_context(|| format!("{} is not a valid payloads.json", p.display()))
}

fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The curl command line for a request, when curl sends exactly the same request (modulo the
/// Host/User-Agent/Accept headers it adds and we blank).
pub fn curl_command(r: &HttpRequest) -> Option<String> {
    if r.raw.is_some() || !r.method.bytes().all(|b| b.is_ascii_uppercase()) || !r.target.starts_with('/') {
        return None;
    }
    if !r.target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let mut args = vec![
        "curl -sS -m 10 -g --path-as-is -o /dev/null -w '%{http_code}\\n'".to_string(),
        format!("-X {}", sq(&r.method)),
        "-H 'Accept:' -H 'User-Agent:'".to_string(),
    ];
    let mut cl = 0;
    let mut ct = false;
    for (n, v) in &r.headers {
        let v = std::str::from_utf8(v).ok()?;
        if !is_token(n) || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) || v.starts_with(' ') || v.ends_with(' ') {
            return None;
        }
        let lower = n.to_ascii_lowercase();
        match lower.as_str() {
            "host" | "transfer-encoding" | "expect" | "connection" => return None,
            "content-length" => {
                if v != r.body.len().to_string() {
                    return None;
                }
                cl += 1;
                continue;
            }
            "content-type" => ct = true,
            _ => {}
        }
        if v.is_empty() {
            args.push(format!("-H {}", sq(&format!("{n};"))));
        } else {
            args.push(format!("-H {}", sq(&format!("{n}: {v}"))));
        }
    }
    if cl > 1 || (cl == 0 && !r.body.is_empty()) {
        return None;
    }
    if !r.body.is_empty() {
        if !ct {
            args.push("-H 'Content-Type:'".into());
        }
        args.push("--data-binary @\"$DIR/body.bin\"".into());
    }
    args.push(format!("\"http://$HOST:$PORT\"{}", sq(&r.target)));
    Some(args.join(" "))
}

/// `repro.sh` for a bucket: curl when curl can express the request, else bash's `/dev/tcp`;
/// WebSocket scripts and concurrent sets go through `mesher-stress replay`.
pub fn repro_script(meta: &Meta, inputs: &ReproInputs) -> String {
    let mut s = String::from("#!/usr/bin/env bash\n");
    s.push_str(&format!(
        "# Reproducer for bucket {}\n# Expected: the target dies: {} on {} ({}).\n",
        meta.bucket_id, meta.death, meta.route, meta.kind
    ));
    s.push_str(
        "# Sends to a running target at $HOST:$PORT (HTTP) / $WS_PORT (WebSocket); defaults 127.0.0.1:8080/8081.\n",
    );
    s.push_str(
        "# Then it asks the target's probe: exit 0 when the target no longer answers (reproduced), 1 when it does.\n",
    );
    s.push_str("set -u\nDIR=\"$(cd \"$(dirname \"${BASH_SOURCE[0]}\")\" && pwd)\"\n");
    s.push_str("HOST=\"${HOST:-127.0.0.1}\"\nPORT=\"${PORT:-8080}\"\nWS_PORT=\"${WS_PORT:-8081}\"\n");
    let single_http = match inputs.payloads.as_slice() {
        [Payload::Http(r)] if inputs.concurrency <= 1 => Some(r),
        _ => None,
    };
    match single_http {
        Some(r) => {
            let send = match curl_command(r) {
                Some(c) => format!("  {c} || true\n"),
                None => "  exec 3<>\"/dev/tcp/$HOST/$PORT\" || exit 1\n  cat \"$DIR/request.http\" >&3\n  timeout 10 cat <&3 | head -c 300; echo\n  exec 3<&-\n".to_string(),
            };
            if inputs.repeat > 1 {
                s.push_str(&format!("for _i in $(seq 1 {}); do\n{send}done\n", inputs.repeat));
            } else {
                s.push_str(&format!("{{\n{send}}}\n"));
            }
        }
        None => {
            s.push_str("\"${MESHER_STRESS:-mesher-stress}\" replay \"$DIR\" --http \"http://$HOST:$PORT\" --ws \"ws://$HOST:$WS_PORT\" \"$@\"\n");
        }
    }
    let probe = match inputs.probe.as_ref().unwrap_or(&super::oracle::default_probe()) {
        Payload::Http(r) => r.target.clone(),
        Payload::Ws(_) => "/".into(),
    };
    s.push_str(&format!(
        "# Did it die (or hang)? Ask the probe, once the target had a moment.\n\
         sleep \"${{SETTLE:-0.5}}\"\n\
         if curl -sS -g --path-as-is -m \"${{PROBE_TIMEOUT:-5}}\" -o /dev/null \"http://$HOST:$PORT\"{probe} 2>/dev/null; then\n\
         \x20 echo \"NOT REPRODUCED: the target still answers GET {shown}\"\n\
         \x20 exit 1\n\
         fi\n\
         echo \"REPRODUCED: the target no longer answers GET {shown} (expected: {})\"\n",
        meta.death,
        probe = sq(&probe),
        shown = probe.replace(['"', '$', '`', '\\', '\''], "")
    ));
    s
}

/// One bucket as the reports' tables show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRow {
    pub bucket_id: String,
    pub death: String,
    pub route: String,
    pub kind: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub size_after: usize,
}

/// Every bucket of the store as a table row.
pub fn bucket_table(store: &Store) -> Result<Vec<BucketRow>> {
    Ok(store
        .list()?
        .into_iter()
        .map(|m| BucketRow {
            bucket_id: m.bucket_id,
            death: m.death.key(),
            route: m.route,
            kind: m.kind.to_string(),
            count: m.count,
            first_seen: m.first_seen,
            last_seen: m.last_seen,
            size_after: m.size_after,
        })
        .collect())
}

/// Human text of the bucket table.
pub fn format_table(rows: &[BucketRow]) -> String {
    let mut s =
        format!("{:<48} {:<9} {:<24} {:<10} {:>6}  {}\n", "bucket", "death", "route", "kind", "count", "last seen");
    for r in rows {
        s.push_str(&format!(
            "{:<48} {:<9} {:<24} {:<10} {:>6}  {}\n",
            r.bucket_id, r.death, r.route, r.kind, r.count, r.last_seen
        ));
    }
    s
}

/// Route names of payloads.
pub fn routes_of(ps: &[Payload]) -> Vec<String> {
    ps.iter().map(route_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skeleton_ignores_values() {
        let a = json!({"b": [1, "x"], "a": {"c": null}});
        let b = json!({"a": {"c": null}, "b": ["yy", 2, 3]});
        assert_eq!(json_skeleton(&a), json_skeleton(&b));
        assert_eq!(json_skeleton(&a), r#"{"a":{"c":null},"b":[num|str]}"#);
    }

    #[test]
    fn bucket_id_is_stable() {
        let sig = Signature {
            death: "SIGSEGV".into(),
            kind: CrashKind::Set,
            routes: vec!["events-ingest".into(), "issue-assign".into()],
            shapes: vec![r#"{"a":num}"#.into(), "GET h[] empty".into()],
            frames: vec!["crashy::handle".into(), "crashy::serve".into()],
        };
        assert_eq!(sig.bucket_id(), "5322c5e707-sigsegv-events-ingest-set");
        let json = serde_json::to_value(&sig).unwrap();
        assert_eq!(json["kind"], "set");
    }

    #[test]
    fn curl_only_when_exact() {
        let r = HttpRequest::new(None, "POST", "/x?a=1".into(), b"{}".to_vec());
        let c = curl_command(&r).unwrap();
        assert!(c.contains("-H 'content-type: application/json'") && c.contains("'/x?a=1'"), "{c}");
        let mut lie = r.clone();
        lie.headers[1].1 = b"99".to_vec();
        assert!(curl_command(&lie).is_none());
    }
}

#[cfg(test)]
mod ws_roundtrip {
    #[test]
    fn ws_payload_json_round_trip() {
        use crate::api::WsPath;
        use crate::model::{Payload, WsFrame, WsScript};
        let p = Payload::Ws(WsScript {
            kind: WsPath::Ingest,
            path: "/ingest".into(),
            headers: vec![],
            frames: vec![WsFrame::text("x")],
        });
        let j = serde_json::to_string(&p).unwrap();
        let back: Result<Payload, _> = serde_json::from_str(&j);
        assert!(back.is_ok(), "{j} -> {back:?}");
    }
}
