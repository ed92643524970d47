//! RFC 6455 framing, server side: parsing client frame headers (with every check a server
//! must make before reading the payload), unmasking, and writing unmasked server frames.
//!
//! Parsing looks only at the bytes it needs: a header is judged as soon as its first two bytes
//! arrive, so a frame that breaks a rule or announces a payload over the limit is refused
//! before any of its payload is buffered.

use bytes::{BufMut, BytesMut};

use crate::error::WsError;
use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};

/// A frame's opcode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub(crate) fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed client frame header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1: the first frame of a compressed message.
    pub(crate) compressed: bool,
    pub(crate) opcode: OpCode,
    pub(crate) mask: [u8; 4],
    /// Bytes of header (2 to 14).
    pub(crate) header_len: usize,
    pub(crate) payload_len: u64,
}

/// Parse a client frame header from the start of `buf`: `Ok(None)` if more bytes are needed.
/// Checks the rules that need no state: reserved bits, opcode, masking, control frames.
/// `rsv1` says whether permessage-deflate was negotiated (RSV1 marks a compressed message).
pub(crate) fn parse_header(buf: &[u8], rsv1: bool) -> Result<Option<Header>, WsError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 || (b0 & 0x40 != 0 && !rsv1) {
        return Err(WsError::Protocol("reserved bits set without an extension"));
    }
    let Some(opcode) = OpCode::from_bits(b0 & 0x0F) else {
        return Err(WsError::Protocol("unknown opcode"));
    };
    let compressed = b0 & 0x40 != 0;
    if compressed && opcode.is_control() {
        return Err(WsError::Protocol("compressed control frame"));
    }
    if compressed && opcode == OpCode::Continuation {
        return Err(WsError::Protocol("RSV1 on a continuation frame"));
    }
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(WsError::Protocol("unmasked client frame"));
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(WsError::Protocol("fragmented control frame"));
        }
        if len7 > 125 {
            return Err(WsError::Protocol("control frame over 125 bytes"));
        }
    }
    let (ext, payload_len) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (2, u64::from(u16::from_be_bytes([b[0], b[1]])))
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(WsError::Protocol("64-bit length with the high bit set"));
            }
            (8, len)
        }
        n => (0, u64::from(n)),
    };
    let Some(m) = buf.get(2 + ext..6 + ext) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        compressed,
        opcode,
        mask: [m[0], m[1], m[2], m[3]],
        header_len: 6 + ext,
        payload_len,
    }))
}

/// XOR the payload with the masking key (the offset is 0 at the payload's first byte).
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Append an unmasked, final server frame.
pub(crate) fn write_frame(out: &mut BytesMut, opcode: OpCode, payload: &[u8]) {
    write_frame_parts(out, opcode, false, &[payload]);
}

/// Append a final server frame of a compressed message (RSV1 set).
pub(crate) fn write_compressed(out: &mut BytesMut, opcode: OpCode, payload: &[u8]) {
    write_frame_parts(out, opcode, true, &[payload]);
}

fn write_frame_parts(out: &mut BytesMut, opcode: OpCode, rsv1: bool, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(10 + len);
    out.put_u8(0x80 | if rsv1 { 0x40 } else { 0 } | opcode.bits());
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    for p in parts {
        out.put_slice(p);
    }
}

/// Append a message as one server frame.
pub(crate) fn write_message(out: &mut BytesMut, msg: &Message) {
    match msg {
        Message::Text(t) => write_frame(out, OpCode::Text, t.as_bytes()),
        Message::Binary(b) => write_frame(out, OpCode::Binary, b),
        Message::Ping(b) => write_frame(out, OpCode::Ping, &b[..b.len().min(125)]),
        Message::Pong(b) => write_frame(out, OpCode::Pong, &b[..b.len().min(125)]),
        Message::Close(None) => write_frame(out, OpCode::Close, &[]),
        Message::Close(Some(f)) => write_close(out, f.code, &f.reason),
    }
}

/// Append a Close frame; the reason is cut to fit 125 bytes, at a character boundary.
pub(crate) fn write_close(out: &mut BytesMut, code: CloseCode, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    write_frame_parts(
        out,
        OpCode::Close,
        false,
        &[&code.0.to_be_bytes(), &reason.as_bytes()[..end]],
    );
}

/// Parse a received Close payload: empty, or a valid code and a UTF-8 reason.
pub(crate) fn parse_close(payload: bytes::Bytes) -> Result<Option<CloseFrame>, WsError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(WsError::Protocol("close frame with a 1-byte payload")),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_allowed_on_wire() {
                return Err(WsError::Protocol("close frame with an invalid code"));
            }
            let reason =
                Utf8Bytes::try_from_bytes(payload.slice(2..)).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        unmask(&mut p, mask);
        out.extend_from_slice(&p);
        out
    }

    #[test]
    fn header_lengths_7_16_and_64_bits() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let f = masked(0x82, &vec![7; len]);
            let h = parse_header(&f, false).unwrap().unwrap();
            assert_eq!(h.payload_len, len as u64);
            assert_eq!(h.header_len + len, f.len());
            assert_eq!(h.opcode, OpCode::Binary);
            assert!(h.fin);
            // Every strict prefix of the header asks for more bytes.
            for cut in 0..h.header_len {
                assert_eq!(
                    parse_header(&f[..cut], false).unwrap(),
                    None,
                    "len {len} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn rule_breaking_headers_are_refused_on_their_first_two_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (&[0xC1, 0x80], "reserved bits set without an extension"),
            (&[0x83, 0x80], "unknown opcode"),
            (&[0x8B, 0x80], "unknown opcode"),
            (&[0x81, 0x05], "unmasked client frame"),
            (&[0x09, 0x80], "fragmented control frame"),
            (&[0x89, 0xFE], "control frame over 125 bytes"),
        ];
        for (bytes, why) in cases {
            match parse_header(bytes, false) {
                Err(WsError::Protocol(w)) => assert_eq!(w, *why),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            parse_header(&huge, false),
            Err(WsError::Protocol(_))
        ));
        // With permessage-deflate, RSV1 marks the first frame of a data message only.
        let h = parse_header(&[0xC1, 0x80, 0, 0, 0, 0], true)
            .unwrap()
            .unwrap();
        assert!(h.compressed);
        for (bytes, why) in [
            (&[0xC9, 0x80][..], "compressed control frame"),
            (&[0xC0, 0x80][..], "RSV1 on a continuation frame"),
            (&[0xA1, 0x80][..], "reserved bits set without an extension"),
        ] {
            match parse_header(bytes, true) {
                Err(WsError::Protocol(w)) => assert_eq!(w, why),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unmask_is_its_own_inverse_at_every_length() {
        for len in 0..20 {
            let orig: Vec<u8> = (0..len as u8).collect();
            let mut p = orig.clone();
            unmask(&mut p, [0xAA, 0x55, 0x0F, 0xF0]);
            if len > 0 {
                assert_ne!(p, orig);
                assert_eq!(p[0], 0xAA);
            }
            unmask(&mut p, [0xAA, 0x55, 0x0F, 0xF0]);
            assert_eq!(p, orig);
        }
    }

    #[test]
    fn server_frames_are_unmasked_with_minimal_lengths() {
        let mut out = BytesMut::new();
        write_frame(&mut out, OpCode::Text, b"hi");
        assert_eq!(&out[..], b"\x81\x02hi");
        out.clear();
        write_frame(&mut out, OpCode::Binary, &[0; 126]);
        assert_eq!(&out[..4], &[0x82, 126, 0, 126]);
        out.clear();
        write_frame(&mut out, OpCode::Binary, &[0; 65536]);
        assert_eq!(&out[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let mut out = BytesMut::new();
        let reason = "é".repeat(100); // 200 bytes
        write_close(&mut out, CloseCode::AWAY, &reason);
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= 125);
        let parsed = parse_close(out.split_off(2).freeze()).unwrap().unwrap();
        assert_eq!(parsed.code, CloseCode::AWAY);
        assert_eq!(parsed.reason.len(), 122);
    }

    #[test]
    fn close_payloads_are_checked() {
        use bytes::Bytes;
        assert_eq!(parse_close(Bytes::new()).unwrap(), None);
        assert!(matches!(
            parse_close(Bytes::from_static(&[3])),
            Err(WsError::Protocol(_))
        ));
        for bad in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
            let p = Bytes::copy_from_slice(&bad.to_be_bytes());
            assert!(matches!(parse_close(p), Err(WsError::Protocol(_))), "{bad}");
        }
        let bad_utf8 = Bytes::from_static(&[0x03, 0xE8, 0xFF]);
        assert!(matches!(parse_close(bad_utf8), Err(WsError::InvalidUtf8)));
        let ok = parse_close(Bytes::from_static(b"\x0f\xa0ok"))
            .unwrap()
            .unwrap();
        assert_eq!((ok.code, ok.reason.as_str()), (CloseCode(4000), "ok"));
    }
}
