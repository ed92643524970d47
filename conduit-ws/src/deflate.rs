//! permessage-deflate (RFC 7692): negotiation from the client's offer, and the per-message
//! compression and bounded inflation a [`WebSocket`](crate::WebSocket) does with it.
//!
//! What a socket costs depends on who keeps a compression context between messages
//! ("context takeover"), which the handshake decides:
//!
//! | mode | kept per socket | per worker thread | measured per socket |
//! | --- | --- | --- | --- |
//! | no compression | nothing | nothing | 4.7 KiB |
//! | `server_no_context_takeover` + `client_no_context_takeover` (the default) | nothing | one compressor per window size and level in use, one 15-bit inflater | 4.9 KiB |
//! | client context takeover ([`Deflate::client_context_takeover`]) | an inflater (a 2^w-byte window and its state) | the compressor | 25 KiB |
//! | server context takeover ([`Deflate::server_context_takeover`]) | a compressor (zlib's deflate state: about 2^(w+2) bytes plus 128 KiB of hash tables at w = 15) | the inflater | 316 KiB |
//! | both | both | nothing | 335 KiB |
//!
//! The last column is the growth of resident memory per socket, server and client side of
//! each, with 1,000 sockets that each echoed one compressed 200-byte message (release build,
//! 15-bit windows, zlib-rs; `cargo run --release -p conduit-ws --example idle_sockets -- 1000
//! MODE`, 2026-12-07). The default costs what an uncompressed socket costs.
//!
//! Without context takeover a message is compressed and inflated on its own, so the contexts
//! are reset after each message and shared by every socket a worker thread runs: they are
//! kept in a thread-local and borrowed for the duration of one message (no `await` in
//! between). The default answers every offer with both `no_context_takeover` parameters (the
//! server may ask the client for `client_no_context_takeover`, RFC 7692 section 7.1.1.2), so a
//! compressed socket costs nothing more than an uncompressed one; the price is a lower ratio
//! on streams of similar small messages, which context takeover compresses against each other.
//!
//! Inflation is bounded: a compressed message is inflated in steps, and one whose output
//! passes the message limit is refused with 1009 as soon as the step that crosses it is done,
//! never inflated in full.
//!
//! ```
//! use conduit_ws::{Config, Deflate};
//!
//! // The default: compression when offered, nothing kept per socket.
//! let config = Config::default();
//! assert!(config.get_deflate().is_some());
//! // Better ratios for chatty sockets, at ~40 KiB (w = 15) of inflater per socket.
//! let config = Config::default().deflate(Some(Deflate::default().client_context_takeover(true)));
//! // No compression at all.
//! let config = Config::default().deflate(None);
//! # let _ = config;
//! ```

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use http::HeaderValue;

use crate::error::WsError;

/// The empty stored block a sync flush ends with: stripped from each sent message and put
/// back after each received one (RFC 7692 section 7.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// How much inflated output one step may add, at most (it doubles from here with the output).
const INFLATE_STEP: usize = 16 << 10;

/// permessage-deflate settings of the server (see the [module docs](self) for the memory each
/// mode costs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deflate {
    server_context_takeover: bool,
    client_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    level: u32,
    threshold: usize,
}

impl Default for Deflate {
    /// No context kept in either direction, 15-bit windows, level 1, messages of 64 bytes or
    /// more compressed.
    fn default() -> Self {
        Deflate {
            server_context_takeover: false,
            client_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 1,
            threshold: 64,
        }
    }
}

impl Deflate {
    /// Keep the server's compressor between messages (one per socket; see the module docs).
    /// A client offer with `server_no_context_takeover` still gets none.
    pub fn server_context_takeover(mut self, keep: bool) -> Self {
        self.server_context_takeover = keep;
        self
    }

    /// Let the client keep its compressor between messages, so the server keeps an inflater
    /// per socket. Off: the response asks for `client_no_context_takeover`.
    pub fn client_context_takeover(mut self, keep: bool) -> Self {
        self.client_context_takeover = keep;
        self
    }

    /// The largest LZ77 window (9 to 15 bits) the server compresses with.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(9, 15);
        self
    }

    /// The largest window (9 to 15 bits) asked of a client that offers `client_max_window_bits`
    /// (with client context takeover, the size of each socket's inflater).
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(9, 15);
        self
    }

    /// The compression level, 0 to 9 (default 1: the fastest).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Messages shorter than this are sent uncompressed (default 64 bytes).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }
}

/// What the handshake settled: the parameters of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_window_bits: u8,
    /// `Some` when the client offered `client_max_window_bits` (and the response names it).
    pub(crate) client_window_bits: Option<u8>,
}

impl Params {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub(crate) fn header(&self) -> HeaderValue {
        let mut s = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_window_bits < 15 {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_window_bits
            ));
        }
        if let Some(bits) = self.client_window_bits {
            s.push_str(&format!("; client_max_window_bits={bits}"));
        }
        HeaderValue::try_from(s).expect("ASCII")
    }
}

/// Choose the first acceptable permessage-deflate offer of `Sec-WebSocket-Extensions` (every
/// header line, comma-separated offers, `;`-separated parameters). An offer with an unknown,
/// repeated or invalid parameter is declined, as RFC 7692 section 7 asks.
pub(crate) fn negotiate<'a>(
    offers: impl Iterator<Item = &'a HeaderValue>,
    config: &Deflate,
) -> Option<Params> {
    offers
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|offer| accept_offer(offer, config))
}

fn accept_offer(offer: &str, config: &Deflate) -> Option<Params> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let (mut snct, mut cnct) = (false, false);
    let mut smwb: Option<u8> = None;
    let mut cmwb: Option<Option<u8>> = None;
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        let bits = |v: Option<&str>| -> Option<u8> {
            let v = v?;
            // RFC 7692: 1*DIGIT without leading zeros, 8 to 15.
            if v.starts_with('0') {
                return None;
            }
            v.parse().ok().filter(|b| (8..=15).contains(b))
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() && !snct => snct = true,
            "client_no_context_takeover" if value.is_none() && !cnct => cnct = true,
            "server_max_window_bits" if smwb.is_none() => smwb = Some(bits(value)?),
            "client_max_window_bits" if cmwb.is_none() => {
                cmwb = Some(match value {
                    None => None,
                    v => Some(bits(v)?),
                });
            }
            _ => return None,
        }
    }
    // zlib cannot compress with an 8-bit window: an offer that limits ours to 8 is declined
    // (the client may have another offer).
    let server_window_bits = match smwb {
        Some(8) => return None,
        Some(b) => b.min(config.server_max_window_bits),
        None => config.server_max_window_bits,
    };
    let client_window_bits = cmwb.map(|b| b.unwrap_or(15).min(config.client_max_window_bits));
    Some(Params {
        server_no_context_takeover: snct || !config.server_context_takeover,
        client_no_context_takeover: cnct || !config.client_context_takeover,
        server_window_bits,
        client_window_bits,
    })
}

/// Thread-local contexts for sockets that keep none: reset after each message.
struct Shared {
    /// Compressors by (window bits, level).
    compressors: Vec<(u8, u32, Compress)>,
    /// A 15-bit inflater (it inflates any smaller window).
    inflater: Option<Decompress>,
}

thread_local! {
    static SHARED: RefCell<Shared> = const {
        RefCell::new(Shared { compressors: Vec::new(), inflater: None })
    };
}

/// The compression state of one socket.
pub(crate) struct Session {
    params: Params,
    /// The response's `Sec-WebSocket-Extensions`.
    header: HeaderValue,
    level: u32,
    threshold: usize,
    /// With server context takeover: this socket's compressor (made at its first use).
    compressor: Option<Box<Compress>>,
    /// With client context takeover: this socket's inflater (made at its first use).
    inflater: Option<Box<Decompress>>,
}

impl Session {
    pub(crate) fn new(params: Params, config: &Deflate) -> Self {
        Session {
            header: params.header(),
            params,
            level: config.level,
            threshold: config.threshold,
            compressor: None,
            inflater: None,
        }
    }

    /// The response's `Sec-WebSocket-Extensions` value.
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// Compress `payload` as one message into `out` (the tail stripped), or `false` (and
    /// `out` untouched) when it is sent as it is: shorter than the threshold, or not smaller
    /// compressed.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if payload.len() < self.threshold {
            return false;
        }
        let bits = self.params.server_window_bits;
        let level = self.level;
        let done = if self.params.server_no_context_takeover {
            SHARED.with(|s| {
                let mut s = s.borrow_mut();
                let i = match s
                    .compressors
                    .iter()
                    .position(|(b, l, _)| *b == bits && *l == level)
                {
                    Some(i) => i,
                    None => {
                        let c =
                            Compress::new_with_window_bits(Compression::new(level), false, bits);
                        s.compressors.push((bits, level, c));
                        s.compressors.len() - 1
                    }
                };
                let c = &mut s.compressors[i].2;
                let ok = deflate_into(c, payload, out);
                c.reset();
                ok
            })
        } else {
            let c = self.compressor.get_or_insert_with(|| {
                Box::new(Compress::new_with_window_bits(
                    Compression::new(level),
                    false,
                    bits,
                ))
            });
            let ok = deflate_into(c, payload, out);
            if ok {
                // The context took the message in: the peer must see it, even when it did not
                // get smaller, or the two windows would differ.
                return true;
            }
            // zlib fails only without output room, which `deflate_into` always gives; start
            // afresh all the same and send the message as it is.
            c.reset();
            false
        };
        if !done || out.len() >= payload.len() {
            out.clear();
            return false;
        }
        true
    }

    /// Inflate one received message, refusing output past `limit` (1009) before it is done.
    pub(crate) fn inflate(&mut self, payload: &[u8], limit: usize) -> Result<Bytes, WsError> {
        if self.params.client_no_context_takeover {
            SHARED.with(|s| {
                let mut s = s.borrow_mut();
                let d = s
                    .inflater
                    .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
                let res = inflate_bounded(d, payload, limit);
                d.reset(false);
                res
            })
        } else {
            let bits = self.params.client_window_bits.unwrap_or(15).max(9);
            let d = self
                .inflater
                .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
            inflate_bounded(d, payload, limit)
        }
    }
}

/// Compress `input` with a sync flush into `out`; strip the tail. `false` on a zlib error.
fn deflate_into(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(input.len() / 2 + 64);
    let start = c.total_in();
    loop {
        let consumed = (c.total_in() - start) as usize;
        if c.compress_vec(&input[consumed..], out, FlushCompress::Sync)
            .is_err()
        {
            return false;
        }
        let consumed = (c.total_in() - start) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    true
}

/// Inflate `input` and the tail into a buffer that grows in bounded steps, failing with 1009
/// as soon as the output passes `limit`.
fn inflate_bounded(d: &mut Decompress, input: &[u8], limit: usize) -> Result<Bytes, WsError> {
    let too_big = || WsError::TooBig {
        what: "message",
        limit,
    };
    let mut out: Vec<u8> = Vec::new();
    for chunk in [input, &TAIL[..]] {
        let mut pos = 0;
        loop {
            let room = out.capacity() - out.len();
            if room == 0 {
                // Double, from INFLATE_STEP, but never past one byte over the limit.
                let step = out
                    .len()
                    .max(INFLATE_STEP)
                    .min(limit.saturating_add(1) - out.len());
                out.reserve_exact(step.max(1));
            }
            let (in_before, out_before) = (d.total_in(), d.total_out());
            d.decompress_vec(&chunk[pos..], &mut out, FlushDecompress::Sync)
                .map_err(|_| WsError::Protocol("invalid permessage-deflate data"))?;
            if out.len() > limit {
                return Err(too_big());
            }
            pos += (d.total_in() - in_before) as usize;
            let progressed = d.total_in() != in_before || d.total_out() != out_before;
            if pos == chunk.len() && out.len() < out.capacity() {
                break;
            }
            if !progressed && out.len() < out.capacity() {
                // Input left that inflates to nothing more (data after the end of the
                // deflate stream).
                return Err(WsError::Protocol("invalid permessage-deflate data"));
            }
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(s: &'static str) -> Option<Params> {
        negotiate([HeaderValue::from_static(s)].iter(), &Deflate::default())
    }

    #[test]
    fn negotiation_follows_the_offer() {
        let p = offer("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(
            p.header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"
        );
        let p = offer("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(p.server_window_bits, 10);
        assert!(
            p.header()
                .to_str()
                .unwrap()
                .contains("server_max_window_bits=10")
        );
        // Invalid offers are declined; a later valid one is taken.
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=8",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
        }
        let p = offer("permessage-deflate; server_max_window_bits=8, permessage-deflate").unwrap();
        assert_eq!(p.server_window_bits, 15);
        let takeover = Deflate::default()
            .server_context_takeover(true)
            .client_context_takeover(true)
            .client_max_window_bits(10);
        let p = negotiate(
            [HeaderValue::from_static(
                "permessage-deflate; client_max_window_bits",
            )]
            .iter(),
            &takeover,
        )
        .unwrap();
        assert_eq!(p.header(), "permessage-deflate; client_max_window_bits=10");
    }

    #[test]
    fn compressed_messages_round_trip_and_bombs_stop_at_the_limit() {
        let params = offer("permessage-deflate").unwrap();
        let mut s = Session::new(params, &Deflate::default());
        let text = "hello hello hello hello ".repeat(100);
        let mut out = Vec::new();
        assert!(s.compress(text.as_bytes(), &mut out));
        assert!(out.len() < text.len() / 5);
        assert_eq!(s.inflate(&out, 1 << 20).unwrap(), text.as_bytes());
        // Short messages go as they are.
        assert!(!s.compress(b"hi", &mut out));
        // 10 MB of zeros compresses to a few dozen KB; with a 64 KiB limit inflation stops early.
        let zeros = vec![0u8; 10 << 20];
        assert!(s.compress(&zeros, &mut out));
        assert!(out.len() < zeros.len() / 50, "{}", out.len());
        match s.inflate(&out, 64 << 10) {
            Err(WsError::TooBig { limit, .. }) => assert_eq!(limit, 64 << 10),
            other => panic!("{:?}", other.map(|b| b.len())),
        }
        // Exactly at the limit is fine.
        let exact = vec![7u8; 64 << 10];
        assert!(s.compress(&exact, &mut out));
        assert_eq!(s.inflate(&out, 64 << 10).unwrap().len(), 64 << 10);
        assert_eq!(
            s.inflate(&out, usize::MAX).unwrap().len(),
            64 << 10,
            "no limit"
        );
        assert!(matches!(
            s.inflate(&out, (64 << 10) - 1),
            Err(WsError::TooBig { .. })
        ));
        assert!(matches!(
            s.inflate(b"\xff\xff\xff\xff", 1 << 20),
            Err(WsError::Protocol(_))
        ));
    }
}
