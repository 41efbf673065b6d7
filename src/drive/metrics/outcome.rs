//! [`Outcome`]: what happened to one request, and [`Key`]: what a histogram pair is kept for.

use crate::model::Layer;
use serde::{Deserialize, Serialize};

/// What happened to one request (or WebSocket frame / script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    #[serde(rename = "1xx")]
    S1xx,
    #[serde(rename = "2xx")]
    S2xx,
    #[serde(rename = "3xx")]
    S3xx,
    #[serde(rename = "4xx")]
    S4xx,
    #[serde(rename = "5xx")]
    S5xx,
    ConnectRefused,
    ConnectReset,
    ConnectTimeout,
    ConnectAddrNotAvailable,
    ConnectOther,
    /// Connection reset while the request was in flight.
    Reset,
    /// Request or body timeout: no (complete) answer in time.
    Timeout,
    /// The target stopped taking the request's bytes: a write made no progress in time (a
    /// server that accepted the connection but does not read).
    WriteTimeout,
    /// The connection closed without (a complete) answer.
    Closed,
    /// An answer that is not HTTP / not a WebSocket handshake.
    BadResponse,
    /// WebSocket: a data frame came back (an ack); `{"error":..}` acks count here too when they
    /// are not recognisably errors — see [`Outcome::AckError`].
    AckOk,
    /// WebSocket: an ack whose text starts with `{"error"`.
    AckError,
    /// WebSocket: the server sent a Close frame instead of an ack.
    WsClose,
    /// Stream fan-out: the event arrived on a subscriber (not a request).
    Delivered,
    /// Stream fan-out: an accepted event never arrived within the fan-out timeout (not a request).
    Missed,
    /// The run was stopped (Ctrl-C or hard stop) while this request was in flight.
    Interrupted,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::S1xx => "1xx",
            Outcome::S2xx => "2xx",
            Outcome::S3xx => "3xx",
            Outcome::S4xx => "4xx",
            Outcome::S5xx => "5xx",
            Outcome::ConnectRefused => "connect-refused",
            Outcome::ConnectReset => "connect-reset",
            Outcome::ConnectTimeout => "connect-timeout",
            Outcome::ConnectAddrNotAvailable => "connect-addr-not-available",
            Outcome::ConnectOther => "connect-other",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::WriteTimeout => "write-timeout",
            Outcome::Closed => "closed",
            Outcome::BadResponse => "bad-response",
            Outcome::AckOk => "ack-ok",
            Outcome::AckError => "ack-error",
            Outcome::WsClose => "ws-close",
            Outcome::Delivered => "delivered",
            Outcome::Missed => "missed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// From an HTTP status code.
    pub fn from_status(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::S2xx,
            300..=399 => Outcome::S3xx,
            400..=499 => Outcome::S4xx,
            500..=599 => Outcome::S5xx,
            _ => Outcome::S1xx,
        }
    }

    /// True for samples that stand for a sent request/frame/script (everything but fan-out
    /// observations). The report checks: sum of request outcomes = requests sent.
    pub fn is_request(self) -> bool {
        !matches!(self, Outcome::Delivered | Outcome::Missed)
    }

    /// Errors for the error-rate threshold: 5xx and every transport failure. 4xx and WebSocket
    /// error acks are answers (fuzz traffic expects them); interrupted requests are not errors.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::S5xx
                | Outcome::ConnectRefused
                | Outcome::ConnectReset
                | Outcome::ConnectTimeout
                | Outcome::ConnectAddrNotAvailable
                | Outcome::ConnectOther
                | Outcome::Reset
                | Outcome::Timeout
                | Outcome::WriteTimeout
                | Outcome::Closed
                | Outcome::BadResponse
                | Outcome::WsClose
                | Outcome::Missed
        )
    }

    /// The target answered (any HTTP status, a WebSocket ack or close frame); the outage
    /// detector looks for stretches without any.
    pub fn is_answer(self) -> bool {
        matches!(
            self,
            Outcome::S1xx
                | Outcome::S2xx
                | Outcome::S3xx
                | Outcome::S4xx
                | Outcome::S5xx
                | Outcome::AckOk
                | Outcome::AckError
                | Outcome::WsClose
        )
    }

    /// Connect failures (the request never reached the target).
    pub fn is_connect_error(self) -> bool {
        matches!(
            self,
            Outcome::ConnectRefused
                | Outcome::ConnectReset
                | Outcome::ConnectTimeout
                | Outcome::ConnectAddrNotAvailable
                | Outcome::ConnectOther
        )
    }

    /// Classify a connect error.
    pub fn from_connect_error(e: &std::io::Error) -> Outcome {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Outcome::ConnectRefused,
            K::ConnectionReset | K::ConnectionAborted => Outcome::ConnectReset,
            K::TimedOut => Outcome::ConnectTimeout,
            K::AddrNotAvailable | K::AddrInUse => Outcome::ConnectAddrNotAvailable,
            _ => match e.raw_os_error() {
                Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE) => Outcome::ConnectAddrNotAvailable,
                Some(libc::ETIMEDOUT) => Outcome::ConnectTimeout,
                _ => Outcome::ConnectOther,
            },
        }
    }

    /// Classify an error while writing a request ([`crate::drive::net::write_bounded`] turns a
    /// stall into `TimedOut`).
    pub fn from_write_error(e: &std::io::Error) -> Outcome {
        if e.kind() == std::io::ErrorKind::TimedOut { Outcome::WriteTimeout } else { Outcome::from_io_error(e) }
    }

    /// Classify an I/O error while a request was in flight.
    pub fn from_io_error(e: &std::io::Error) -> Outcome {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Outcome::Reset,
            K::TimedOut => Outcome::Timeout,
            K::UnexpectedEof => Outcome::Closed,
            K::InvalidData => Outcome::BadResponse,
            _ => Outcome::Closed,
        }
    }
}

/// What a histogram pair is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Route name (`api::Route::name`), `ws-ingest`, `ws-stream`, `ws-churn` or `unrouted`.
    pub route: &'static str,
    pub layer: Layer,
    pub outcome: Outcome,
}
