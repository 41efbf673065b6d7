//! HTTP/1.1 answers: the response head (httparse), the framing of the body it announces, chunked
//! bodies, and the status line of an answer that may be cut short.
//!
//! [`parse_head`] and [`decode_chunks`] are the hot path of the default load executor
//! (`drive::wire`): they borrow the caller's buffer and allocate nothing.
//!
//! Framing: `Content-Length` (several equal values allowed, differing ones are a bad response),
//! `Transfer-Encoding: chunked` (when chunked is the last coding, with trailers), bodies
//! delimited by the connection's close, no body for HEAD, 1xx, 204 and 304. A connection is
//! kept after an answer unless it says `Connection: close`, is HTTP/1.0 without `keep-alive`,
//! has a body delimited by close, or switches protocols (101).

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most headers accepted in a response.
const MAX_HEADERS: usize = 128;

/// The answer is not HTTP, or its head or framing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadResponse;

/// A response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Head bytes, the blank line included: the body starts at this offset.
    pub len: usize,
    pub framing: Framing,
    /// The connection may carry another request after this answer.
    pub keep: bool,
}

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(usize),
    Chunked,
    /// Delimited by the connection's close.
    Close,
}

/// Parse a response head at the start of `buf` (`head_request`: the answer of a HEAD, which
/// has no body whatever it announces). `Ok(None)`: more bytes are needed.
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, BadResponse> {
    // Uninitialised slots: filling 128 empty headers (4 KiB) per answer cost more than parsing
    // a small head.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut r, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        _ => return Err(BadResponse),
    };
    let status = r.code.unwrap_or(0);
    let mut keep = r.version == Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            match (v, length) {
                (None, _) => return Err(BadResponse),
                (Some(v), Some(l)) if v != l => return Err(BadResponse),
                (Some(v), _) => length = Some(v),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked =
                h.value.rsplit(|&b| b == b',').next().is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && r.version == Some(0) {
                    keep = true;
                }
            }
        }
    }
    let framing = if head_request || status / 100 == 1 || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        keep = false;
        Framing::Close
    };
    if status == 101 {
        keep = false;
    }
    Ok(Some(Head { status, len, framing, keep }))
}

/// Where a chunked body stands after decoding what `buf[from..]` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunks {
    /// The body ends at this offset (trailers included).
    Done(usize),
    /// More bytes needed; decoding resumes at this offset.
    More(usize),
}

/// Decode chunks in `buf[from..]`, adding data lengths to `body_len` and the data to `keep`.
pub fn decode_chunks(
    buf: &[u8],
    mut from: usize,
    body_len: &mut usize,
    keep: &mut Option<Vec<u8>>,
) -> Result<Chunks, BadResponse> {
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[from..]) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) => return Ok(Chunks::More(from)),
            Err(_) => return Err(BadResponse),
        };
        if size == 0 {
            // Trailers: header lines up to an empty line.
            let rest = &buf[from + used..];
            if rest.starts_with(b"\r\n") {
                return Ok(Chunks::Done(from + used + 2));
            }
            return match find(rest, b"\r\n\r\n") {
                Some(i) => Ok(Chunks::Done(from + used + i + 4)),
                None => Ok(Chunks::More(from)),
            };
        }
        let size = usize::try_from(size).map_err(|_| BadResponse)?;
        let end = from.saturating_add(used).saturating_add(size);
        if buf.len() < end.saturating_add(2) {
            return Ok(Chunks::More(from));
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(BadResponse);
        }
        *body_len += size;
        if let Some(k) = keep.as_mut() {
            k.extend_from_slice(&buf[from + used..end]);
        }
        from = end + 2;
    }
}

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status code of an answer's first line `HTTP/x NNN ...`, whatever follows it: the
/// blocking client reports the status of answers cut short or with heads httparse refuses.
pub fn status_line(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let mut parts = line.split(|&b| b == b' ');
    let v = parts.next()?;
    if !v.starts_with(b"HTTP/") {
        return None;
    }
    std::str::from_utf8(parts.next()?).ok()?.trim().parse().ok()
}

/// The body of an answer: what follows its head's blank line (nothing without one).
pub fn body_of(answer: &[u8]) -> &[u8] {
    find(answer, b"\r\n\r\n").map(|i| &answer[i + 4..]).unwrap_or(&[])
}

/// Parse a raw HTTP request file: structured when it parses cleanly (request line, headers,
/// body of exactly Content-Length bytes), else kept as raw bytes.
pub fn parse_request(bytes: &[u8]) -> crate::model::HttpRequest {
    let raw = || crate::model::HttpRequest {
        route: None,
        method: String::new(),
        target: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        raw: Some(bytes.to_vec()),
    };
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return raw() };
    let Ok(head) = std::str::from_utf8(&bytes[..end]) else { return raw() };
    let body = &bytes[end + 4..];
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() != 3 || parts[2] != "HTTP/1.1" {
        return raw();
    }
    let mut headers = Vec::new();
    for l in lines {
        let Some((n, v)) = l.split_once(": ") else { return raw() };
        headers.push((n.to_string(), v.as_bytes().to_vec()));
    }
    let cl: Vec<&(String, Vec<u8>)> =
        headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")).collect();
    let ok = match cl.as_slice() {
        [] => body.is_empty(),
        [(_, v)] => v == body.len().to_string().as_bytes(),
        _ => false,
    };
    if !ok {
        return raw();
    }
    let path = parts[1].split('?').next().unwrap_or("");
    crate::model::HttpRequest {
        route: crate::api::match_route(parts[0], path).map(|m| m.route.id),
        method: parts[0].into(),
        target: parts[1].into(),
        headers,
        body: body.to_vec(),
        raw: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_framing() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false).unwrap().unwrap();
        assert_eq!((h.status, h.len, h.framing, h.keep), (200, 38, Framing::Length(5), true));
        let h = parse_head(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Length(2), false));
        let h = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false).unwrap().unwrap();
        assert!(!h.keep, "HTTP/1.0 closes unless keep-alive");
        let h = parse_head(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(h.keep);
        let h = parse_head(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Close, false));
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true).unwrap().unwrap();
        assert_eq!(h.framing, Framing::None, "HEAD: no body whatever the length");
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep), (Framing::None, true));
        let h = parse_head(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.status, h.framing, h.keep), (101, Framing::None, false));
        let h = parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nConnection: close\r\n\r\nNot Found", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.len, h.framing, h.keep), (404, 64, Framing::Length(9), false));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false), Ok(None));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", false),
            Err(BadResponse)
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", false), Err(BadResponse));
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false), Err(BadResponse));
        assert_eq!(parse_head(b"garbage", false), Err(BadResponse));
    }

    #[test]
    fn chunks_decode_across_reads_with_trailers() {
        let all = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 0..all.len() {
            let (mut n, mut keep) = (0, Some(Vec::new()));
            let first = decode_chunks(&all[..cut], 0, &mut n, &mut keep).unwrap();
            let from = match first {
                Chunks::Done(_) => panic!("done after {cut} bytes"),
                Chunks::More(at) => at,
            };
            match decode_chunks(all, from, &mut n, &mut keep).unwrap() {
                Chunks::Done(end) => assert_eq!(end, all.len()),
                Chunks::More(_) => panic!("not done"),
            }
            assert_eq!((n, keep.as_deref()), (11, Some(&b"hello world"[..])), "cut at {cut}");
        }
        let (mut n, mut keep) = (0, None);
        assert_eq!(decode_chunks(b"3\r\nabcX\r\n", 0, &mut n, &mut keep), Err(BadResponse));
        assert_eq!(decode_chunks(b"zz\r\n", 0, &mut n, &mut keep), Err(BadResponse));
    }

    #[test]
    fn status_lines_and_bodies() {
        assert_eq!(status_line(b"HTTP/1.1 202 Accepted\r\n"), Some(202));
        assert_eq!(status_line(b"HTTP/1.1 500 Inter"), Some(500));
        assert_eq!(status_line(b"SSH-2.0 200"), None);
        assert_eq!(body_of(b"HTTP/1.1 200 OK\r\n\r\n{}"), b"{}");
        assert_eq!(body_of(b"HTTP/1.1 200 OK\r\n"), b"");
    }
}
