//! Plain data that flows between the stages: what `generate` produces, what `drive` sends and
//! records, what `triage` minimises and writes as reproducers. No behaviour beyond encoding.

use crate::api::{RouteId, WsPath};
use serde::{Deserialize, Serialize};

/// Identifies one generated input: the n-th request of stream s of the run with seed `run`.
/// Regenerating from the same triple yields the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestSeed {
    pub run: u64,
    pub stream: u64,
    pub index: u64,
}

/// The traffic layer an input belongs to (weights per layer come from the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Valid according to the spec; a correct server accepts it.
    Valid,
    /// Valid HTTP, mutated JSON body.
    Json,
    /// HTTP-level mutation (headers, lengths, paths, methods); may need the raw-socket path.
    Http,
    /// WebSocket traffic (valid or mutated frames).
    Ws,
}

/// One step of a mutation trail: which operator did what, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationStep {
    /// Operator name, e.g. `json.swap-type`, `http.content-length-lie`, `ws.fragment`.
    pub op: String,
    /// Where: a JSON path (`$.stacktrace[0].lineno`), a header name, a frame index/field.
    pub at: String,
    /// What it did, short (`"string -> number 1e308"`).
    #[serde(default)]
    pub detail: String,
}

/// An HTTP/1.1 request as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// The catalogue route it was generated for (None for paths that match no route).
    pub route: Option<RouteId>,
    pub method: String,
    /// Request target: raw path and query, never re-encoded.
    pub target: String,
    /// Headers in order, names exactly as sent (case preserved, duplicates allowed).
    #[serde(with = "header_list")]
    pub headers: Vec<(String, Vec<u8>)>,
    #[serde(with = "bytes_text")]
    pub body: Vec<u8>,
    /// When set, exactly these bytes are written to the socket instead of the fields above
    /// (HTTP-level mutations that no client library would send).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes_text")]
    pub raw: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A well-formed request; adds `content-length` when there is a body.
    pub fn new(route: Option<RouteId>, method: &str, target: String, body: Vec<u8>) -> HttpRequest {
        let mut headers = Vec::new();
        if !body.is_empty() {
            headers.push(("content-type".to_string(), b"application/json".to_vec()));
            headers.push(("content-length".to_string(), body.len().to_string().into_bytes()));
        }
        HttpRequest { route, method: method.to_string(), target, headers, body, raw: None }
    }

    /// The first header with this name (exact, case-sensitive like Mesher).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// True when the request can only go through the raw-socket path (it carries raw bytes, or
    /// headers a client library would refuse or rewrite).
    pub fn needs_raw(&self) -> bool {
        self.raw.is_some()
    }

    /// The exact bytes to send. `host` (e.g. `127.0.0.1:8080`) is added as a `host` header unless
    /// the request already has one (any case).
    pub fn to_wire(&self, host: &str) -> Vec<u8> {
        self.to_wire_with(host, b"")
    }

    /// [`HttpRequest::to_wire`] with `extra` (whole header lines, each ending in `\r\n`) after
    /// the request's own headers; ignored for a raw request, whose bytes are sent as they are.
    pub fn to_wire_with(&self, host: &str, extra: &[u8]) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut out = self.head_with(Some(host), extra, self.body.len());
        out.extend_from_slice(&self.body);
        out
    }

    /// The bytes of [`HttpRequest::to_wire_with`] up to the body (request line, headers, the
    /// blank line) in a buffer with room for `room` more bytes; for a request that is not raw.
    /// `host: None` adds no `host` header even when the request has none (the HTTP mutators'
    /// missing-Host case).
    pub fn head_with(&self, host: Option<&str>, extra: &[u8], room: usize) -> Vec<u8> {
        // Reserved at its final size (exact but for a host line counted even when the request
        // has its own), so a head with a huge header or thousands of them is never regrown.
        let lines: usize = self.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let size =
            self.method.len() + self.target.len() + 12 + host.map_or(0, |h| h.len() + 8) + lines + extra.len() + 2;
        let mut out = Vec::with_capacity(size + room);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(host) = host
            && !self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(extra);
        out.extend_from_slice(b"\r\n");
        debug_assert!(out.len() <= size, "head of {} bytes, {size} reserved", out.len());
        out
    }
}

/// One WebSocket frame to send, at the level of RFC 6455 fields (so mutations can break them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsFrame {
    pub fin: bool,
    /// 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong (others for abuse).
    pub opcode: u8,
    /// RSV1..3 bits (0 when valid).
    #[serde(default)]
    pub rsv: u8,
    /// Clients must mask; false sends unmasked frames.
    #[serde(default = "yes")]
    pub masked: bool,
    #[serde(with = "bytes_text")]
    pub payload: Vec<u8>,
    /// Declared payload length when it must lie (oversized-frame mutations); None = true length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_len: Option<u64>,
    /// Pause before sending this frame, in milliseconds (slow partial frames).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u32,
}

fn yes() -> bool {
    true
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl WsFrame {
    pub fn text(s: impl Into<Vec<u8>>) -> WsFrame {
        WsFrame { fin: true, opcode: 1, rsv: 0, masked: true, payload: s.into(), declared_len: None, delay_ms: 0 }
    }

    /// The frame as RFC 6455 bytes, honouring every field, lies included (declared length,
    /// RSV bits, unmasked). `mask_key` is used when `masked`.
    pub fn encode(&self, mask_key: [u8; 4]) -> Vec<u8> {
        let len = self.declared_len.unwrap_or(self.payload.len() as u64);
        let mut out = Vec::with_capacity(self.payload.len() + 14);
        out.push((u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0x0f));
        let m = u8::from(self.masked) << 7;
        if len < 126 {
            out.push(m | len as u8);
        } else if len <= 0xffff {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(m | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        if self.masked {
            out.extend_from_slice(&mask_key);
            out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ mask_key[i % 4]));
        } else {
            out.extend_from_slice(&self.payload);
        }
        out
    }
}

/// A WebSocket conversation: handshake on `path` with extra headers, then frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsScript {
    // Not "kind": `Payload` is tagged with "kind" and would carry it twice (unreadable JSON).
    #[serde(rename = "path_kind")]
    pub kind: WsPath,
    /// Request target of the handshake, e.g. `/ingest`.
    pub path: String,
    /// Extra handshake headers (e.g. `x-sentry-auth`), in order.
    #[serde(with = "header_list")]
    pub headers: Vec<(String, Vec<u8>)>,
    pub frames: Vec<WsFrame>,
}

/// What a generated input is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Payload {
    Http(HttpRequest),
    Ws(WsScript),
}

/// A generated input with its provenance: seed, layer and mutation trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub seed: RequestSeed,
    pub layer: Layer,
    pub payload: Payload,
    #[serde(default)]
    pub trail: Vec<MutationStep>,
}

impl Generated {
    /// Name of the route or WebSocket path, for reports (`dashboard-health`, `ws-ingest`, or
    /// `unrouted`).
    pub fn route_name(&self) -> &'static str {
        match &self.payload {
            Payload::Http(r) => r.route.map(|id| crate::api::Route::get(id).name).unwrap_or("unrouted"),
            Payload::Ws(w) => w.kind.name(),
        }
    }
}

/// Bytes as JSON: a plain string when valid UTF-8, else `{"base64": "..."}`.
pub mod bytes_text {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(v) {
            Ok(t) => s.serialize_str(t),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("base64", &base64::engine::general_purpose::STANDARD.encode(v))?;
                m.end()
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        B64 { base64: String },
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(t.into_bytes()),
            Repr::B64 { base64 } => {
                base64::engine::general_purpose::STANDARD.decode(base64).map_err(serde::de::Error::custom)
            }
        }
    }
}

mod opt_bytes_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => super::bytes_text::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::bytes_text")] Vec<u8>);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

mod header_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct H(String, #[serde(with = "super::bytes_text")] Vec<u8>);

    pub fn serialize<S: Serializer>(v: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(n, val)| H(n.clone(), val.clone())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        Ok(Vec::<H>::deserialize(d)?.into_iter().map(|H(n, v)| (n, v)).collect())
    }
}

/// Anything that produces inputs by (stream, index): the generators implement it, the driver
/// consumes it. Implementations must be pure in (their run seed, stream, index) apart from ids
/// the run has created (documented by the implementation).
pub trait Source: Send + Sync {
    fn generate(&self, stream: u64, index: u64) -> Generated;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_and_json_round_trip() {
        let mut r = HttpRequest::new(Some(RouteId::EventsIngest), "POST", "/api/v1/events".into(), b"{}".to_vec());
        r.headers.push(("x-sentry-auth".into(), vec![0xff, b'k']));
        let wire = String::from_utf8_lossy(&r.to_wire("127.0.0.1:8080")).to_string();
        assert!(wire.starts_with("POST /api/v1/events HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n"));
        assert!(wire.ends_with("\r\n\r\n{}"));
        let g = Generated {
            seed: RequestSeed { run: 1, stream: 2, index: 3 },
            layer: Layer::Http,
            payload: Payload::Http(r),
            trail: vec![MutationStep { op: "http.x".into(), at: "x-sentry-auth".into(), detail: String::new() }],
        };
        let j = serde_json::to_string(&g).unwrap();
        assert!(j.contains("base64"));
        let back: Generated = serde_json::from_str(&j).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.route_name(), "events-ingest");
    }
}
