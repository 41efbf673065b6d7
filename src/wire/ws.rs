//! WebSocket bytes: the client handshake, `Sec-WebSocket-Accept`, a whole script as bytes, and
//! the frames a server sends. Client frames are encoded by [`WsFrame::encode`], honouring every
//! field (lying lengths, RSV bits, unmasked frames).

use crate::model::{WsFrame, WsScript};
use base64::Engine;

/// The handshake key of RFC 6455's example: a fixed key keeps the bytes of a script
/// reproducible.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Which of the handshake's own headers go out when the script carries one of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// Ours always, then the script's: mutated scripts test duplicated headers this way.
    Added,
    /// The script's replace ours: a reproducer is replayed with the headers it recorded.
    Replace,
}

/// The client handshake request of `script` on `host`: request line, `host`, `upgrade`,
/// `connection`, `sec-websocket-key` ([`SAMPLE_KEY`]), `sec-websocket-version`, then the
/// script's headers in order.
pub fn handshake(script: &WsScript, host: &str, given: Given) -> Vec<u8> {
    let has = |name: &str| given == Given::Replace && script.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let ours: [(&str, &[u8]); 5] = [
        ("host", host.as_bytes()),
        ("upgrade", b"websocket"),
        ("connection", b"Upgrade"),
        ("sec-websocket-key", SAMPLE_KEY.as_bytes()),
        ("sec-websocket-version", b"13"),
    ];
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(script.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let theirs = script.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    for (n, v) in ours.into_iter().filter(|(n, _)| !has(n)).chain(theirs) {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A whole script as bytes: the handshake ([`Given::Added`]) then every frame masked with
/// `mask_key` (when masked). Delays are not represented.
pub fn script_bytes(script: &WsScript, host: &str, mask_key: [u8; 4]) -> Vec<u8> {
    let mut out = handshake(script, host, Given::Added);
    for f in &script.frames {
        out.extend_from_slice(&f.encode(mask_key));
    }
    out
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

/// A polite close frame (status 1000).
pub fn close_frame() -> WsFrame {
    WsFrame {
        fin: true,
        opcode: 8,
        rsv: 0,
        masked: true,
        payload: 1000u16.to_be_bytes().to_vec(),
        declared_len: None,
        delay_ms: 0,
    }
}

/// Where one server frame lies in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFrame {
    pub opcode: u8,
    /// The payload is `start..end`; the frame ends at `end`.
    pub start: usize,
    pub end: usize,
}

/// The first whole frame at the start of `buf`; None until all of it is there.
pub fn parse_server_frame(buf: &[u8]) -> Option<ServerFrame> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut start): (usize, usize) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if masked {
        start += 4;
    }
    let end = start.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    Some(ServerFrame { opcode, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(headers: &[(&str, &str)]) -> WsScript {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
        WsScript { kind: crate::api::WsPath::Ingest, path: "/ingest".into(), headers, frames: vec![] }
    }

    #[test]
    fn handshakes_add_or_replace_given_headers() {
        let plain = "GET /ingest HTTP/1.1\r\nhost: h:1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                     sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n";
        let s = script(&[]);
        assert_eq!(handshake(&s, "h:1", Given::Added), format!("{plain}\r\n").into_bytes());
        assert_eq!(handshake(&s, "h:1", Given::Replace), format!("{plain}\r\n").into_bytes());
        let s = script(&[("Host", "x"), ("x-a", "1")]);
        assert_eq!(handshake(&s, "h:1", Given::Added), format!("{plain}Host: x\r\nx-a: 1\r\n\r\n").into_bytes());
        let replaced = String::from_utf8(handshake(&s, "h:1", Given::Replace)).unwrap();
        assert!(replaced.starts_with("GET /ingest HTTP/1.1\r\nupgrade: websocket\r\n"), "{replaced}");
        assert!(replaced.ends_with("Host: x\r\nx-a: 1\r\n\r\n"), "{replaced}");
    }

    #[test]
    fn frames_and_accept() {
        let f = WsFrame::text("hi");
        assert_eq!(f.encode([1, 2, 3, 4]), vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        let lie = WsFrame { declared_len: Some(70_000), masked: false, ..WsFrame::text("x") };
        let b = lie.encode([0; 4]);
        assert_eq!(&b[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(b[2..10].try_into().unwrap()), 70_000);
        assert_eq!(parse_server_frame(&[0x81, 2, b'o', b'k']), Some(ServerFrame { opcode: 1, start: 2, end: 4 }));
        assert_eq!(parse_server_frame(&[0x81, 3, b'o']), None);
        assert_eq!(accept_key(SAMPLE_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
