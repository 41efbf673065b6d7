//! `wire`: the HTTP/1.1 and WebSocket bytes, in one place. Everything that writes a request or
//! reads an answer by hand goes through here: the default load executor (`drive::wire`), the raw
//! and raw-WebSocket executors (`drive::net`, `drive::ws`), the blocking one-request client
//! ([`blocking`]: triage, the readiness gate and the hang probe), `gen --wire` and the checks.
//! hyper (`drive::http`) stays beside it as an independent second executor to cross-check with.
//!
//! * [`http`]: response heads (httparse), their body framing (length, chunked, close, none),
//!   chunked bodies, the lenient status line of a possibly truncated answer. Requests are
//!   encoded by `model::HttpRequest::to_wire`/`head_with`, since every stage holds that type.
//! * [`ws`]: the client handshake, `Sec-WebSocket-Accept`, whole scripts as bytes, server frames;
//!   client frames are encoded by `model::WsFrame::encode`.
//! * [`blocking`]: connect, write bounded, read to completion, classify ([`blocking::Reply`]).
//!
//! Below `db` and `drive`: it may use only `util`, `api` and `model`, so its errors are its own
//! and each executor maps them to its outcomes.

pub mod blocking;
pub mod http;
pub mod ws;

/// The bytes of an input as sent to `127.0.0.1:8080` / `:8081` (`gen --wire`, reproducers).
pub fn input_bytes(g: &crate::model::Generated) -> Vec<u8> {
    match &g.payload {
        crate::model::Payload::Http(h) => h.to_wire("127.0.0.1:8080"),
        crate::model::Payload::Ws(w) => ws_script_bytes(w),
    }
}

/// A WebSocket script as bytes: the client handshake (fixed key) then every frame with the
/// masking key `37 fa 21 3d`, so the same script always gives the same bytes. Delays are not
/// represented.
pub fn ws_script_bytes(s: &crate::model::WsScript) -> Vec<u8> {
    ws::script_bytes(s, "127.0.0.1:8081", [0x37, 0xfa, 0x21, 0x3d])
}
