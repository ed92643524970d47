//! [`WebSocketUpgrade`]: the RFC 6455 opening handshake, checked in a handler, and the 101
//! response that hands the connection over to a [`WebSocket`].
//!
//! [`WebSocketUpgrade::from_request`] refuses what is not a WebSocket handshake with the
//! status RFC 6455 asks for, as a [`WsRejection`] (which is a response), each with a log line:
//!
//! | request | answer |
//! | --- | --- |
//! | not GET | 405 with `Allow: GET` |
//! | no `Upgrade: websocket` (a plain GET) | 426 with `Upgrade: websocket`, `Sec-WebSocket-Version: 13` |
//! | `Upgrade: websocket` without `Connection: upgrade`, no or a bad `Sec-WebSocket-Key` (base64 of 16 bytes), HTTP/1.0 | 400 |
//! | `Sec-WebSocket-Version` other than 13 | 426 with `Sec-WebSocket-Version: 13` |
//! | an `Origin` outside [`allowed_origins`](WebSocketUpgrade::allowed_origins) | 403 |
//!
//! ```
//! use conduit_core::http::{Method, Request, StatusCode, header};
//! use conduit_core::{Body, IntoResponse};
//! use conduit_ws::WebSocketUpgrade;
//!
//! // A plain GET is told which upgrade it needs.
//! let mut plain = Request::new(Body::empty());
//! let refused = WebSocketUpgrade::from_request(&mut plain).unwrap_err().into_response();
//! assert_eq!(refused.status(), StatusCode::UPGRADE_REQUIRED);
//! assert_eq!(refused.headers()["sec-websocket-version"], "13");
//!
//! // A handshake with a key that is not base64 of 16 bytes is malformed.
//! let mut bad = Request::builder()
//!     .method(Method::GET)
//!     .header(header::UPGRADE, "websocket")
//!     .header(header::CONNECTION, "keep-alive, Upgrade")
//!     .header(header::SEC_WEBSOCKET_VERSION, "13")
//!     .header(header::SEC_WEBSOCKET_KEY, "c2hvcnQ=")
//!     .body(Body::empty())
//!     .unwrap();
//! let refused = WebSocketUpgrade::from_request(&mut bad).unwrap_err().into_response();
//! assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
//! ```
//!
//! In a handler, with a server (the socket echoes until the client closes):
//!
//! ```no_run
//! use conduit_core::{Request, Router, get};
//! use conduit_ws::{WebSocketUpgrade, WsRejection};
//!
//! let app = Router::new().route(
//!     "/ws",
//!     get(|mut req: Request| async move {
//!         let ws = WebSocketUpgrade::from_request(&mut req)?;
//!         Ok::<_, WsRejection>(ws.protocols(["chat"]).on_upgrade(|mut socket| async move {
//!             while let Some(Ok(msg)) = socket.recv().await {
//!                 if msg.is_close() || socket.send(msg).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }))
//!     }),
//! );
//! # let _ = app;
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use conduit_core::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use conduit_core::{Body, IntoResponse, Request, RequestExt, Response, ShutdownSignal, StreamHold};
use hyper::ext::Protocol;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};

use crate::deflate::{self, Session};
use crate::socket::{Config, WebSocket};

/// The GUID of RFC 6455 section 1.3, appended to the key for `Sec-WebSocket-Accept`.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A checked WebSocket handshake, ready to be accepted with
/// [`on_upgrade`](WebSocketUpgrade::on_upgrade).
pub struct WebSocketUpgrade {
    /// `Sec-WebSocket-Accept` (HTTP/1.1); `None` over HTTP/2, which has no key.
    accept: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
    /// Over HTTP/2: keeps the server counting the stream as open while the socket runs.
    hold: Option<StreamHold>,
    version: Version,
    offered: Vec<HeaderValue>,
    /// The `Sec-WebSocket-Extensions` lines of the request (permessage-deflate offers).
    extensions: Vec<HeaderValue>,
    protocol: Option<HeaderValue>,
    origin: Option<HeaderValue>,
    origin_allowed: bool,
    config: Config,
    peer: Option<SocketAddr>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .field("origin", &self.origin)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A refused handshake: a response with the status and headers RFC 6455 asks for.
#[derive(Debug)]
pub struct WsRejection {
    status: StatusCode,
    reason: &'static str,
}

impl WsRejection {
    fn new(status: StatusCode, reason: &'static str, peer: Option<SocketAddr>) -> Self {
        let peer = peer.map(tracing::field::display);
        if status == StatusCode::UPGRADE_REQUIRED && reason == NOT_AN_UPGRADE {
            tracing::debug!(
                peer,
                status = status.as_u16(),
                "refused WebSocket handshake: {reason} ({})",
                status.as_u16()
            );
        } else {
            tracing::info!(
                peer,
                status = status.as_u16(),
                "refused WebSocket handshake: {reason} ({})",
                status.as_u16()
            );
        }
        WsRejection { status, reason }
    }

    /// The status of the refusal.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why the handshake was refused.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for WsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status.as_u16())
    }
}

impl std::error::Error for WsRejection {}

impl IntoResponse for WsRejection {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(format!("{}\n", self.reason)));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match self.status {
            StatusCode::UPGRADE_REQUIRED => {
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                h.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            StatusCode::BAD_REQUEST => {
                h.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                h.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            _ => {}
        }
        // For the app's error renderer (problem+json or its own format).
        conduit_core::attach_problem(
            &mut res,
            conduit_core::Problem::new(self.status).with_detail(self.reason),
        );
        res
    }
}

const NOT_AN_UPGRADE: &str = "not a WebSocket upgrade (no Upgrade: websocket)";

/// Whether a comma-separated header (every occurrence) lists `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `Sec-WebSocket-Version` must be 13, once (both HTTP versions): 400 without it, 426 for
/// another.
fn check_version(h: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), WsRejection> {
    let mut versions = h.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v == "13" => Ok(()),
        (None, _) => Err(WsRejection::new(
            StatusCode::BAD_REQUEST,
            "no Sec-WebSocket-Version",
            peer,
        )),
        _ => Err(WsRejection::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version (13 is supported)",
            peer,
        )),
    }
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    STANDARD.encode(sha.finalize())
}

impl WebSocketUpgrade {
    /// Check the request's handshake and take its upgrade (the server puts it in the
    /// request's extensions). Refusals are responses; see the [module docs](self).
    pub fn from_request(req: &mut Request) -> Result<Self, WsRejection> {
        let peer = req.connect_info().map(|c| c.peer_addr());
        let reject = |status, reason| Err(WsRejection::new(status, reason, peer));
        if req.version() == Version::HTTP_2 && req.method() == Method::CONNECT {
            return Self::from_extended_connect(req, peer);
        }
        let h = req.headers();
        if !has_token(h, header::UPGRADE, "websocket") {
            return reject(StatusCode::UPGRADE_REQUIRED, NOT_AN_UPGRADE);
        }
        if req.method() != Method::GET {
            return reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "WebSocket handshake with a method other than GET",
            );
        }
        if req.version() < Version::HTTP_11 {
            return reject(StatusCode::BAD_REQUEST, "WebSocket handshake over HTTP/1.0");
        }
        if !has_token(h, header::CONNECTION, "upgrade") {
            return reject(
                StatusCode::BAD_REQUEST,
                "Upgrade: websocket without Connection: upgrade",
            );
        }
        check_version(h, peer)?;
        let mut keys = h.get_all(header::SEC_WEBSOCKET_KEY).iter();
        let key = match (keys.next(), keys.next()) {
            (Some(k), None) => k,
            (None, _) => return reject(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key"),
            _ => return reject(StatusCode::BAD_REQUEST, "more than one Sec-WebSocket-Key"),
        };
        if !STANDARD.decode(key.as_bytes()).is_ok_and(|k| k.len() == 16) {
            return reject(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key is not base64 of 16 bytes",
            );
        }
        let accept = HeaderValue::try_from(accept_key(key.as_bytes())).expect("base64 is ASCII");
        Self::accepted(req, Some(accept), peer)
    }

    /// RFC 8441: an HTTP/2 `CONNECT` with `:protocol websocket` opens the socket on its stream.
    fn from_extended_connect(
        req: &mut Request,
        peer: Option<SocketAddr>,
    ) -> Result<Self, WsRejection> {
        let reject = |status, reason| Err(WsRejection::new(status, reason, peer));
        match req.extensions().get::<Protocol>() {
            None => {
                return reject(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "CONNECT without :protocol on a WebSocket route",
                );
            }
            Some(p) if !p.as_str().eq_ignore_ascii_case("websocket") => {
                return reject(
                    StatusCode::BAD_REQUEST,
                    "extended CONNECT with a :protocol other than websocket",
                );
            }
            Some(_) => {}
        }
        check_version(req.headers(), peer)?;
        Self::accepted(req, None, peer)
    }

    /// The parts of an accepted handshake common to HTTP/1.1 (`accept` is the
    /// `Sec-WebSocket-Accept` value) and HTTP/2 (`None`).
    fn accepted(
        req: &mut Request,
        accept: Option<HeaderValue>,
        peer: Option<SocketAddr>,
    ) -> Result<Self, WsRejection> {
        let h = req.headers();
        let offered = h
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|p| HeaderValue::from_str(p.trim()).ok())
            .filter(|p| !p.is_empty())
            .collect();
        let origin = h.get(header::ORIGIN).cloned();
        let extensions = h
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .cloned()
            .collect();
        let version = req.version();
        let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
            // Not a client fault: a server without HTTP/1.1 upgrades or extended CONNECT.
            tracing::warn!(
                peer = peer.map(tracing::field::display),
                "WebSocket handshake on a connection that cannot be upgraded"
            );
            return Err(WsRejection::new(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded",
                peer,
            ));
        };
        let hold = req.extensions_mut().remove::<StreamHold>();
        Ok(WebSocketUpgrade {
            accept,
            on_upgrade,
            hold,
            version,
            offered,
            extensions,
            protocol: None,
            origin,
            origin_allowed: true,
            config: Config::default(),
            peer,
        })
    }

    /// The HTTP version the socket runs over: `HTTP/1.1` (an upgraded connection) or `HTTP/2`
    /// (an extended CONNECT stream, RFC 8441).
    pub fn http_version(&self) -> Version {
        self.version
    }

    /// Choose a subprotocol: the first of `supported` (in the server's order of preference)
    /// that the client offered in `Sec-WebSocket-Protocol`. If none matches, the response names
    /// none and the client decides whether to go on.
    pub fn protocols<I, P>(mut self, supported: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        self.protocol = supported
            .into_iter()
            .find_map(|s| self.offered.iter().find(|o| *o == s.as_ref()).cloned());
        self
    }

    /// The subprotocols the client offered, in its order.
    pub fn offered_protocols(&self) -> impl Iterator<Item = &str> {
        self.offered.iter().filter_map(|p| p.to_str().ok())
    }

    /// The chosen subprotocol, if any.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    /// Accept only these origins (`scheme://host[:port]`, compared case-insensitively): a
    /// handshake whose `Origin` is another one is refused with 403, so another site's page
    /// cannot open a socket with the user's cookies (cross-site WebSocket hijacking). A
    /// handshake without `Origin` (not from a browser) is accepted.
    pub fn allowed_origins<I, O>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = O>,
        O: AsRef<str>,
    {
        if let Some(origin) = &self.origin {
            let origin = origin.to_str().unwrap_or("");
            self.origin_allowed = origins.into_iter().any(|o| {
                o.as_ref()
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(origin)
            });
        }
        self
    }

    /// The limits and timers of the socket (see [`Config`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Accept the handshake: the 101 response, and `callback` run with the socket once the
    /// response is sent, in a task of its own. On server shutdown the socket sends Close 1001.
    /// A refused origin gets its 403 here instead.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if !self.origin_allowed {
            let origin = self
                .origin
                .as_ref()
                .and_then(|o| o.to_str().ok())
                .unwrap_or("");
            tracing::info!(origin, "WebSocket origin not allowed");
            return WsRejection::new(
                StatusCode::FORBIDDEN,
                "WebSocket handshake from an origin that is not allowed",
                self.peer,
            )
            .into_response();
        }
        let shutdown = ShutdownSignal::new();
        let signal = shutdown.clone();
        let WebSocketUpgrade {
            accept,
            on_upgrade,
            hold,
            version,
            protocol,
            config,
            peer,
            extensions,
            ..
        } = self;
        let chosen = protocol.clone();
        let deflate = config
            .get_deflate()
            .and_then(|d| Some(Session::new(deflate::negotiate(extensions.iter(), d)?, d)));
        let extensions = deflate.as_ref().map(|d| d.header().clone());
        tokio::spawn(async move {
            let peer = peer.map(tracing::field::display);
            match on_upgrade.await {
                Ok(upgraded) => {
                    tracing::debug!(peer, http = ?version, "WebSocket opened over {version:?}");
                    let socket = WebSocket::from_io(TokioIo::new(upgraded), config)
                        .with_protocol(chosen)
                        .with_deflate(deflate)
                        .with_http_version(version)
                        .close_on(signal)
                        .counted();
                    callback(socket).await;
                }
                Err(e) => tracing::debug!(peer, error = %e, "WebSocket upgrade failed"),
            }
            drop(hold);
        });
        let mut res = Response::new(Body::empty());
        // RFC 8441 section 5: over HTTP/2 a 2xx opens the socket on the stream.
        *res.status_mut() = match accept {
            Some(_) => StatusCode::SWITCHING_PROTOCOLS,
            None => StatusCode::OK,
        };
        let h = res.headers_mut();
        if let Some(accept) = accept {
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(p) = protocol {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        if let Some(e) = extensions {
            h.insert(header::SEC_WEBSOCKET_EXTENSIONS, e);
        }
        // The server links this to its drain, so the socket hears about shutdown.
        res.extensions_mut().insert(shutdown);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn tokens_are_matched_in_lists_case_insensitively() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("foo, UpGrade "),
        );
        assert!(has_token(&h, header::CONNECTION, "upgrade"));
        assert!(!has_token(&h, header::CONNECTION, "close"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocketx"));
        assert!(!has_token(&h, header::UPGRADE, "websocket"));
    }
}
