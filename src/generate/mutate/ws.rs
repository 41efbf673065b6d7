//! WebSocket mutation operators (`docs/mesher-interface.md` §3, §7 "WS"): on `WsScript` and `WsFrame`
//! fields — text vs binary, fragmentation, invalid UTF-8, length lies, control-frame abuse
//! (ping floods, oversized pings, odd close codes and reasons), frames around the close, unmasked
//! frames, RSV bits, unknown opcodes, slow frames, JSON mutations of a frame's payload, and the
//! handshake's auth header and path.

use super::step;
use crate::api::WsPath;
use crate::generate::json::J;
use crate::generate::rng::{GenRng, below, chance, pick, range};
use crate::generate::valid::{self, Ctx};
use crate::model::{MutationStep, WsFrame, WsScript};

pub struct WsOp {
    pub name: &'static str,
    pub apply: fn(&mut GenRng, &Ctx, &mut WsScript) -> Option<(String, String)>,
}

pub const OPS: &[WsOp] = &[
    WsOp { name: "ws.binary", apply: binary },
    WsOp { name: "ws.fragment", apply: fragment },
    WsOp { name: "ws.invalid-utf8", apply: invalid_utf8 },
    WsOp { name: "ws.declared-len", apply: declared_len },
    WsOp { name: "ws.big-payload", apply: big_payload },
    WsOp { name: "ws.ping-flood", apply: ping_flood },
    WsOp { name: "ws.control-abuse", apply: control_abuse },
    WsOp { name: "ws.close-code", apply: close_code },
    WsOp { name: "ws.around-close", apply: around_close },
    WsOp { name: "ws.unmasked", apply: unmasked },
    WsOp { name: "ws.rsv", apply: rsv },
    WsOp { name: "ws.opcode", apply: opcode },
    WsOp { name: "ws.slow", apply: slow },
    WsOp { name: "ws.json", apply: json },
    WsOp { name: "ws.auth", apply: auth },
    WsOp { name: "ws.path", apply: path },
];

pub fn apply(name: &str, r: &mut GenRng, ctx: &Ctx, s: &mut WsScript) -> Option<MutationStep> {
    let op = OPS.iter().find(|o| o.name == name)?;
    (op.apply)(r, ctx, s).map(|(a, d)| step(op.name, a, d))
}

/// Mutate a valid script: a quarter stay valid (empty trail), the rest get 1..=max_mutations
/// operators.
pub fn mutate(r: &mut GenRng, ctx: &Ctx, mut s: WsScript) -> (WsScript, Vec<MutationStep>) {
    let mut trail = Vec::new();
    if chance(r, 0.25) {
        return (s, trail);
    }
    let n = range(r, 1, ctx.opts.max_mutations.max(1) as u64);
    for _ in 0..n {
        for _ in 0..4 {
            let op = pick(r, OPS);
            if let Some((a, d)) = (op.apply)(r, ctx, &mut s) {
                trail.push(step(op.name, a, d));
                break;
            }
        }
    }
    (s, trail)
}

fn data_frames(s: &WsScript) -> Vec<usize> {
    s.frames.iter().enumerate().filter(|(_, f)| matches!(f.opcode, 1 | 2) && f.fin).map(|(i, _)| i).collect()
}

fn text_frames(s: &WsScript) -> Vec<usize> {
    s.frames.iter().enumerate().filter(|(_, f)| f.opcode == 1).map(|(i, _)| i).collect()
}

fn frame(opcode: u8, payload: Vec<u8>) -> WsFrame {
    WsFrame { fin: true, opcode, rsv: 0, masked: true, payload, declared_len: None, delay_ms: 0 }
}

fn binary(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let t = text_frames(s);
    if t.is_empty() {
        return None;
    }
    let i = *pick(r, &t);
    s.frames[i].opcode = 2;
    Some((format!("frame {i}"), "text -> binary".into()))
}

fn fragment(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let d = data_frames(s);
    if d.is_empty() {
        return None;
    }
    let i = *pick(r, &d);
    let f = s.frames[i].clone();
    let len = f.payload.len();
    let pieces = match below(r, 4) {
        0 => 2,
        1 => range(r, 3, 16) as usize,
        2 => range(r, 17, 1000) as usize,
        _ => len.max(2),
    };
    // Split points: even-ish chunks; chunks may be empty when there are more pieces than bytes.
    let mut out = Vec::with_capacity(pieces);
    for k in 0..pieces {
        let a = len * k / pieces;
        let b = len * (k + 1) / pieces;
        let mut p = frame(if k == 0 { f.opcode } else { 0 }, f.payload[a..b].to_vec());
        p.fin = k + 1 == pieces;
        p.masked = f.masked;
        out.push(p);
    }
    s.frames.splice(i..=i, out);
    Some((format!("frame {i}"), format!("{pieces} fragments of a {len}-byte message")))
}

fn invalid_utf8(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let t = text_frames(s);
    if t.is_empty() {
        return None;
    }
    let i = *pick(r, &t);
    let (label, seq) = *pick(r, crate::generate::mutate::json::INVALID_UTF8);
    let p = &mut s.frames[i].payload;
    // Insert after an ASCII byte (or at the start) so the sequence stays invalid.
    let ascii: Vec<usize> = p.iter().enumerate().filter(|(_, b)| b.is_ascii()).map(|(k, _)| k + 1).collect();
    let pos = if ascii.is_empty() { 0 } else { *pick(r, &ascii) };
    p.splice(pos..pos, seq.iter().copied());
    Some((format!("frame {i} byte {pos}"), format!("inserted {label} in a text frame")))
}

fn declared_len(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    if s.frames.is_empty() {
        return None;
    }
    let i = below(r, s.frames.len());
    let len = s.frames[i].payload.len() as u64;
    let v = match below(r, 8) {
        0 => len + range(r, 1, 1024),
        1 if len > 0 => len - 1,
        1 | 2 => 16 * 1024 * 1024 + 1,
        3 => 1 << 63,
        4 => 1 << 62,
        5 => 1 << 32,
        6 => *pick(r, &[125u64, 126, 65535, 65536]),
        _ => u64::MAX,
    };
    s.frames[i].declared_len = Some(v);
    Some((format!("frame {i}"), format!("declares {v} bytes, carries {len}")))
}

fn big_payload(r: &mut GenRng, ctx: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let max = ctx.opts.max_string.max(1);
    let n = match below(r, 5) {
        0 => 125,
        1 => 126,
        2 => 65535,
        3 => 65536,
        _ => max,
    }
    .min(max);
    // A JSON string of `n - 2` characters: a valid JSON text for ingest and stream clients.
    let mut p = Vec::with_capacity(n);
    p.push(b'"');
    p.extend(std::iter::repeat_n(b'a', n.saturating_sub(2)));
    p.push(b'"');
    let at = s.frames.len().saturating_sub(1);
    s.frames.insert(at, frame(1, p));
    Some((format!("frame {at}"), format!("text frame of {n} bytes")))
}

fn ping_flood(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let n = range(r, 10, 1000) as usize;
    let at = below(r, s.frames.len() + 1);
    let pings: Vec<WsFrame> = (0..n).map(|k| frame(9, (k as u32).to_be_bytes().to_vec())).collect();
    s.frames.splice(at..at, pings);
    Some((format!("frame {at}"), format!("{n} pings")))
}

fn control_abuse(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let at = below(r, s.frames.len() + 1);
    let (f, label) = match below(r, 4) {
        0 => {
            let n = range(r, 126, 4096) as usize;
            (frame(9, vec![b'p'; n]), format!("ping with {n}-byte payload (> 125)"))
        }
        1 => {
            let mut f = frame(9, b"frag".to_vec());
            f.fin = false;
            (f, "fragmented ping (FIN=0)".to_string())
        }
        2 => (frame(10, b"unsolicited".to_vec()), "unsolicited pong".to_string()),
        _ => {
            let n = range(r, 126, 1024) as usize;
            (frame(10, vec![b'q'; n]), format!("pong with {n}-byte payload"))
        }
    };
    s.frames.insert(at, f);
    Some((format!("frame {at}"), label))
}

const CLOSE_CODES: &[u16] =
    &[0, 999, 1000, 1001, 1004, 1005, 1006, 1007, 1011, 1015, 1016, 2999, 3000, 4999, 5000, 65535];

fn close_code(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let (payload, label) = match below(r, 5) {
        0 => (Vec::new(), "empty close".to_string()),
        1 => (vec![0x03], "1-byte close payload".to_string()),
        2 => {
            let mut p = 1000u16.to_be_bytes().to_vec();
            p.extend(std::iter::repeat_n(b'r', 124));
            (p, "close reason of 124 bytes (frame > 125)".to_string())
        }
        3 => {
            let mut p = 1000u16.to_be_bytes().to_vec();
            p.extend_from_slice(&[0xff, 0xfe]);
            (p, "invalid UTF-8 close reason".to_string())
        }
        _ => {
            let c = *pick(r, CLOSE_CODES);
            (valid::close(c, b"bye").payload, format!("close code {c}"))
        }
    };
    let f = frame(8, payload);
    match s.frames.iter().rposition(|f| f.opcode == 8) {
        Some(i) => {
            s.frames[i] = f;
            Some((format!("frame {i}"), label))
        }
        None => {
            s.frames.push(f);
            Some((format!("frame {}", s.frames.len() - 1), label))
        }
    }
}

fn around_close(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let data = s.frames.iter().find(|f| matches!(f.opcode, 1 | 2)).cloned().unwrap_or_else(|| frame(1, b"{}".to_vec()));
    if chance(r, 0.5) {
        let n = range(r, 1, 5) as usize;
        for _ in 0..n {
            s.frames.push(data.clone());
        }
        if chance(r, 0.5) {
            s.frames.push(valid::close(1000, b""));
        }
        Some(("end".into(), format!("{n} data frames after the close")))
    } else {
        s.frames.insert(0, valid::close(1000, b""));
        Some(("frame 0".into(), "close before any data".into()))
    }
}

fn unmasked(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    if s.frames.is_empty() {
        return None;
    }
    if chance(r, 0.5) {
        s.frames.iter_mut().for_each(|f| f.masked = false);
        Some(("all".into(), "all frames unmasked".into()))
    } else {
        let i = below(r, s.frames.len());
        s.frames[i].masked = false;
        Some((format!("frame {i}"), "unmasked".into()))
    }
}

fn rsv(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    if s.frames.is_empty() {
        return None;
    }
    let i = below(r, s.frames.len());
    let bits = range(r, 1, 7) as u8;
    s.frames[i].rsv = bits;
    Some((format!("frame {i}"), format!("RSV bits {bits:03b}")))
}

fn opcode(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let at = below(r, s.frames.len() + 1);
    let (f, label) = match below(r, 3) {
        0 => {
            let op = *pick(r, &[3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15]);
            (vec![frame(op, b"x".to_vec())], format!("unknown opcode {op}"))
        }
        1 => (vec![frame(0, b"{}".to_vec())], "continuation without a start".to_string()),
        _ => {
            let mut a = frame(1, b"{\"a\":".to_vec());
            a.fin = false;
            (vec![a, frame(1, b"{}".to_vec())], "new text frame during a fragmented message".to_string())
        }
    };
    s.frames.splice(at..at, f);
    Some((format!("frame {at}"), label))
}

fn slow(r: &mut GenRng, _: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    if s.frames.is_empty() {
        return None;
    }
    let i = below(r, s.frames.len());
    let ms = range(r, 101, 1000) as u32;
    s.frames[i].delay_ms = ms;
    Some((format!("frame {i}"), format!("sent after {ms} ms")))
}

fn json(r: &mut GenRng, ctx: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let t = text_frames(s);
    if t.is_empty() {
        return None;
    }
    let i = *pick(r, &t);
    let v: serde_json::Value = serde_json::from_slice(&s.frames[i].payload).ok()?;
    let small = crate::generate::GenOptions { max_mutations: 1, ..ctx.opts.clone() };
    let (bytes, trail) = crate::generate::mutate::json::mutate_value(r, &small, J::from_value(&v));
    s.frames[i].payload = bytes;
    let inner = trail.first().map(|t| format!("{} at {}: {}", t.op, t.at, t.detail)).unwrap_or_default();
    Some((format!("frame {i}"), inner))
}

fn auth(r: &mut GenRng, ctx: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    if s.kind != WsPath::Ingest {
        return None;
    }
    s.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("x-sentry-auth") && !n.eq_ignore_ascii_case("authorization"));
    let key = ctx.fixtures.api_key().to_string();
    let (h, label): (Option<(&str, String)>, &str) = match below(r, 5) {
        0 => (None, "no auth header"),
        1 => (Some(("X-Sentry-Auth", key)), "capitalised X-Sentry-Auth"),
        2 => (Some(("x-sentry-auth", String::new())), "empty value"),
        3 => (Some(("x-sentry-auth", ctx.fixtures.revoked_key.1.clone())), "revoked key"),
        _ => (Some(("authorization", "Bearer nonsense".into())), "arbitrary authorization value"),
    };
    if let Some((n, v)) = h {
        s.headers.push((n.to_string(), v.into_bytes()));
    }
    Some(("handshake".into(), label.into()))
}

fn path(r: &mut GenRng, ctx: &Ctx, s: &mut WsScript) -> Option<(String, String)> {
    let f = &ctx.fixtures;
    let (p, label): (String, &str) = match below(r, 9) {
        0 => (WsPath::Stream.path(&f.project_slug), "stream by slug"),
        1 => (WsPath::Stream.path(&f.project_id.to_uppercase()), "stream by uppercase UUID"),
        2 => (WsPath::Stream.path(&format!("{}?x=1", f.project_id)), "stream with a query string"),
        3 => (format!("/ws{}", WsPath::Stream.path(&f.project_id)), "proxy prefix /ws"),
        4 => (WsPath::STREAM_PREFIX.trim_end_matches('/').to_string(), "stream prefix without slash"),
        5 => (format!("/a{}", WsPath::Stream.path(&f.project_id)), "extra prefix"),
        6 => ("/".into(), "root path"),
        7 => (format!("/{}", "p".repeat(range(r, 1000, 20_000) as usize)), "very long path"),
        _ => (format!("{}?token=%20x", WsPath::INGEST), "ingest with a query string"),
    };
    s.kind = WsPath::classify(&p);
    s.path = p;
    Some(("path".into(), label.into()))
}
