//! Compression and decompression over real sockets, decoded with reference crates and curl.

mod common;

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use conduit_core::http::{HeaderMap, HeaderValue, StatusCode, header};
use conduit_core::{Body, HandlerExt, Request, RequestExt, Router, get, post};
use conduit_middleware::{Compression, Decompression};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

fn json_doc() -> String {
    let mut s = String::from("[");
    for i in 0..500 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(r#"{{"id":{i},"name":"user {i}","active":true}}"#));
    }
    s.push(']');
    s
}

fn with_type(ct: &'static str, body: impl Into<Body>) -> conduit_core::Response {
    let mut res = conduit_core::Response::new(body.into());
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    res
}

/// A receiver of chunks as a `Stream`.
struct Chunks(mpsc::UnboundedReceiver<Bytes>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

fn app() -> impl conduit_core::Handler {
    Router::new()
        .route(
            "/json",
            get(|_r: Request| async { with_type("application/json", json_doc()) }),
        )
        .route(
            "/small",
            get(|_r: Request| async { with_type("application/json", "[1,2,3]") }),
        )
        .route(
            "/png",
            get(|_r: Request| async { with_type("image/png", vec![7u8; 4096]) }),
        )
        .route(
            "/encoded",
            get(|_r: Request| async {
                let mut res = with_type("text/plain", "x".repeat(4096));
                res.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static("identity2"),
                );
                res
            }),
        )
        .route(
            "/no-transform",
            get(|_r: Request| async {
                let mut res = with_type("text/plain", "x".repeat(4096));
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-transform"),
                );
                res
            }),
        )
        .route(
            "/partial",
            get(|_r: Request| async {
                let mut res = with_type("text/plain", "x".repeat(4096));
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                res.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_static("bytes 0-4095/10000"),
                );
                res
            }),
        )
        .route(
            "/no-content",
            get(|_r: Request| async { (StatusCode::NO_CONTENT, ()) }),
        )
        .route(
            "/etag",
            get(|r: Request| async move {
                let weak = r.uri().query() == Some("weak");
                let mut res = with_type("text/html", "<p>hello</p>".repeat(200));
                let tag = if weak { "W/\"abc\"" } else { "\"abc\"" };
                res.headers_mut()
                    .insert(header::ETAG, HeaderValue::from_static(tag));
                res.headers_mut()
                    .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                res
            }),
        )
        .with(Compression::new())
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn decode(encoding: &str, b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => return gunzip(b),
        "deflate" => {
            flate2::read::ZlibDecoder::new(b)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(b, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(b).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

async fn fetch(
    addr: std::net::SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = request(path);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT_ENCODING, a);
    }
    send(addr, req.body(empty()).unwrap()).await
}

#[tokio::test]
async fn every_encoding_decodes_with_reference_crates() {
    let srv = start(app()).await;
    let doc = json_doc();
    for encoding in ["gzip", "deflate", "br", "zstd"] {
        let (status, headers, body) = fetch(srv.addr, "/json", Some(encoding)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_ENCODING], encoding);
        assert_eq!(headers[header::VARY], "accept-encoding");
        // A body in memory is compressed at once and sent with its length, not chunked.
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            body.len().to_string(),
            "{encoding}"
        );
        assert!(
            body.len() < doc.len() / 3,
            "{encoding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(encoding, &body), doc.as_bytes(), "{encoding}");
    }
    // No Accept-Encoding: identity, still Vary.
    let (_, headers, body) = fetch(srv.addr, "/json", None).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(headers[header::VARY], "accept-encoding");
    assert_eq!(headers[header::CONTENT_LENGTH], doc.len().to_string());
    assert_eq!(body, doc.as_bytes());
    srv.handle.shutdown();
}

#[tokio::test]
async fn curl_compressed_decodes_every_encoding() {
    let srv = start(app()).await;
    let url = format!("http://{}/json", srv.addr);
    let doc = json_doc();
    for encoding in ["gzip", "deflate", "br", "zstd"] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--compressed", "-H"])
            .arg(format!("Accept-Encoding: {encoding}"))
            .args(["-D", "-", "--max-time", "30"])
            .arg(&url)
            .output()
            .await
            .expect("curl runs (scripts/test.sh installs it)");
        assert!(out.status.success(), "curl {encoding}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-encoding: {encoding}")),
            "{head}"
        );
        assert_eq!(body, doc, "{encoding}");
    }
    srv.handle.shutdown();
}

#[tokio::test]
async fn negotiation_over_the_wire() {
    let srv = start(app()).await;
    let cases: &[(&str, StatusCode, Option<&str>)] = &[
        ("gzip;q=0.5, br;q=0.8", StatusCode::OK, Some("br")),
        ("gzip, br, zstd", StatusCode::OK, Some("zstd")),
        ("*", StatusCode::OK, Some("zstd")),
        ("zstd;q=0, br;q=0, *;q=0.3", StatusCode::OK, Some("gzip")),
        ("gzip;q=0", StatusCode::OK, None),
        ("identity", StatusCode::OK, None),
        ("compress", StatusCode::OK, None),
        // Nothing acceptable: identity, as RFC 9110 section 12.5.3 asks (and ServeDir answers).
        ("compress, identity;q=0", StatusCode::OK, None),
        ("*;q=0", StatusCode::OK, None),
        ("gzip;q=nonsense, ;;;, br", StatusCode::OK, Some("br")),
        ("gz\u{ef}p, br;q=0.1", StatusCode::OK, None),
    ];
    for (accept, status, encoding) in cases {
        let mut req = request("/json");
        if let Ok(v) = HeaderValue::from_str(accept) {
            req = req.header(header::ACCEPT_ENCODING, v);
        } else {
            req = req.header(
                header::ACCEPT_ENCODING,
                HeaderValue::from_bytes(accept.as_bytes()).unwrap(),
            );
        }
        let (got, headers, _) = send(srv.addr, req.body(empty()).unwrap()).await;
        assert_eq!(got, *status, "{accept}");
        assert_eq!(
            headers
                .get(header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap()),
            *encoding,
            "{accept}"
        );
    }
    // A small body is compressed anyway when the client refuses identity.
    let (status, headers, body) = fetch(srv.addr, "/small", Some("gzip, identity;q=0")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gunzip(&body), b"[1,2,3]");
    srv.handle.shutdown();
}

#[tokio::test]
async fn what_is_left_alone() {
    let srv = start(app()).await;
    let accept = Some("gzip");
    // Too small and not compressible: identity, but Vary (it could have been compressed).
    for path in ["/small", "/png"] {
        let (status, headers, _) = fetch(srv.addr, path, accept).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::CONTENT_ENCODING).is_none(), "{path}");
        assert_eq!(headers[header::VARY], "accept-encoding", "{path}");
        assert!(headers.contains_key(header::CONTENT_LENGTH), "{path}");
    }
    // Already encoded, no-transform: untouched, no Vary.
    for path in ["/encoded", "/no-transform"] {
        let (_, headers, body) = fetch(srv.addr, path, accept).await;
        assert_ne!(
            headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()),
            Some(&b"gzip"[..]),
            "{path}"
        );
        assert!(headers.get(header::VARY).is_none(), "{path}");
        assert_eq!(body.len(), 4096, "{path}");
    }
    let (status, headers, body) = fetch(srv.addr, "/no-content", accept).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert!(body.is_empty());
    // Partial: the bytes asked for, as they are, but with the Vary its 200 has.
    let (status, headers, body) = fetch(srv.addr, "/partial", accept).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(headers[header::VARY], "accept-encoding");
    assert_eq!(body.len(), 4096);
    // HEAD: no body, and the headers its GET gets.
    let req = http::Request::head("/json")
        .header("host", "t")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(empty())
        .unwrap();
    let (status, headers, body) = send(srv.addr, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(headers[header::VARY], "accept-encoding");
    assert!(headers.get(header::CONTENT_LENGTH).is_none());
    assert!(body.is_empty());
    let (_, get_headers, _) = fetch(srv.addr, "/json", accept).await;
    assert_eq!(get_headers[header::CONTENT_ENCODING], "gzip");
    srv.handle.shutdown();
}

#[tokio::test]
async fn etag_of_the_encoded_variant_is_distinct() {
    let srv = start(app()).await;
    let (_, headers, _) = fetch(srv.addr, "/etag", Some("gzip")).await;
    assert_eq!(headers[header::ETAG], "\"abc-gzip\"");
    assert!(headers.get(header::ACCEPT_RANGES).is_none());
    let (_, headers, _) = fetch(srv.addr, "/etag", Some("br")).await;
    assert_eq!(headers[header::ETAG], "\"abc-br\"");
    let (_, headers, _) = fetch(srv.addr, "/etag", None).await;
    assert_eq!(headers[header::ETAG], "\"abc\"");
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    let (_, headers, _) = fetch(srv.addr, "/etag?weak", Some("gzip")).await;
    assert_eq!(headers[header::ETAG], "W/\"abc-gzip\"");
    srv.handle.shutdown();
}

/// A client revalidating the compressed variant it holds (`If-None-Match: "x-gzip"`) gets a
/// 304 naming that variant, with the `Vary` of the 200: whether the tag comes from the `ETag`
/// middleware inside or from a handler that evaluates `If-None-Match` itself.
#[tokio::test]
async fn the_encoded_variant_revalidates() {
    use conduit_core::headers::{Comparison, EntityTag, EntityTagList};
    use conduit_middleware::ETag;
    let page = "<p>hello</p>".repeat(200);
    let app = Router::new()
        .route(
            "/hashed",
            get({
                let page = page.clone();
                (move |_r: Request| {
                    let page = page.clone();
                    async move { with_type("text/html", page) }
                })
                .with(ETag::new())
            }),
        )
        .route(
            "/own",
            get(|r: Request| async move {
                let current = EntityTag::strong(b"own").unwrap();
                let list = EntityTagList::new(r.headers().get_all(header::IF_NONE_MATCH));
                let mut res = if list.matches(&current, Comparison::Weak) == Ok(true) {
                    let mut res = conduit_core::Response::new(Body::empty());
                    *res.status_mut() = StatusCode::NOT_MODIFIED;
                    res
                } else {
                    with_type("text/html", "<p>own</p>".repeat(200))
                };
                res.headers_mut()
                    .insert(header::ETAG, HeaderValue::from_static("\"own\""));
                res
            }),
        )
        .with(Compression::new());
    let srv = start(app).await;
    for path in ["/hashed", "/own"] {
        let (status, headers, _) = fetch(srv.addr, path, Some("gzip")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let tag = headers[header::ETAG].clone();
        assert!(
            tag.to_str().unwrap().ends_with("-gzip\""),
            "{path}: {tag:?}"
        );

        let req = request(path)
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(header::IF_NONE_MATCH, tag.clone())
            .body(empty())
            .unwrap();
        let (status, h304, body) = send(srv.addr, req).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        assert_eq!(
            h304[header::ETAG],
            tag,
            "{path}: the 304 names the variant held"
        );
        assert_eq!(h304[header::VARY], "accept-encoding", "{path}");
        assert!(h304.get(header::CONTENT_ENCODING).is_none(), "{path}");

        // Another coding's tag is another representation: the full body.
        let req = request(path)
            .header(header::ACCEPT_ENCODING, "br")
            .header(header::IF_NONE_MATCH, tag.clone())
            .body(empty())
            .unwrap();
        let (status, headers, _) = send(srv.addr, req).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_ENCODING], "br");
    }
    srv.handle.shutdown();
}

/// The first SSE event reaches a gzip client before the second is even produced.
#[tokio::test]
async fn streamed_events_are_flushed_through_gzip() {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let rx = std::sync::Mutex::new(Some(rx));
    let rx = std::sync::Arc::new(rx);
    let app = Router::new()
        .route(
            "/events",
            get(move |_r: Request| {
                let rx = rx.lock().unwrap().take();
                async move {
                    let rx = rx.expect("one stream");
                    with_type("text/event-stream", Body::from_stream(Chunks(rx)))
                }
            }),
        )
        .with(Compression::new());
    let srv = start(app).await;
    let req = request("/events")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(empty())
        .unwrap();
    tx.send(Bytes::from_static(b"data: one\n\n")).unwrap();
    let res = send_streaming(srv.addr, req).await;
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
    let mut body = res.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    // Read frames until the first event is decoded; the second does not exist yet.
    async fn until(
        body: &mut hyper::body::Incoming,
        decoder: &mut flate2::write::GzDecoder<Vec<u8>>,
        want: &str,
    ) {
        loop {
            let text = String::from_utf8_lossy(decoder.get_ref()).into_owned();
            if text.contains(want) {
                return;
            }
            let frame = tokio::time::timeout(HANG, body.frame())
                .await
                .expect("the event arrives without waiting for more")
                .expect("stream not ended")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                decoder.write_all(&data).unwrap();
                decoder.flush().unwrap();
            }
        }
    }
    until(&mut body, &mut decoder, "data: one\n\n").await;
    tx.send(Bytes::from_static(b"data: two\n\n")).unwrap();
    until(&mut body, &mut decoder, "data: two\n\n").await;
    drop(tx);
    while let Some(frame) = tokio::time::timeout(HANG, body.frame()).await.unwrap() {
        if let Ok(data) = frame.unwrap().into_data() {
            decoder.write_all(&data).unwrap();
        }
    }
    let all = decoder.finish().unwrap();
    assert_eq!(all, b"data: one\n\ndata: two\n\n");
    srv.handle.shutdown();
}

/// A body that fails after its first chunk, through gzip: the client gets that chunk
/// (decodable), then the response is aborted (HTTP/1: no last chunk, connection closed;
/// HTTP/2: stream reset) rather than ended as if complete, and the server keeps serving.
#[tokio::test]
async fn an_error_mid_stream_aborts_the_compressed_response() {
    let app = Router::new()
        .route(
            "/fails",
            get(|_r: Request| async {
                // The error comes once the first chunk is on the wire.
                let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
                tokio::spawn(async move {
                    let _ = tx.send(Ok(Bytes::from_static(b"data: one\n\n"))).await;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let _ = tx
                        .send(Err(std::io::Error::other("the event source failed")))
                        .await;
                });
                with_type(
                    "text/event-stream",
                    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
                )
            }),
        )
        .route("/", get(|_r: Request| async { "still serving" }))
        .with(Compression::new());
    let srv = start(app).await;
    let req = || {
        request("/fails")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(empty())
            .unwrap()
    };
    let h1 = send_streaming(srv.addr, req()).await;
    let mut h2 = h2_client(srv.addr).await;
    let h2 = tokio::time::timeout(HANG, h2.send_request(req()))
        .await
        .unwrap()
        .unwrap();
    for (proto, res) in [("HTTP/1.1", h1), ("HTTP/2", h2)] {
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip", "{proto}");
        let mut body = res.into_body();
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        let end = loop {
            match tokio::time::timeout(HANG, body.frame()).await.unwrap() {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        decoder.write_all(&data).unwrap();
                        decoder.flush().unwrap();
                    }
                }
                other => break other,
            }
        };
        assert!(
            matches!(end, Some(Err(_))),
            "{proto}: the response must end in an error, not look complete: {end:?}"
        );
        assert_eq!(decoder.get_ref().as_slice(), b"data: one\n\n", "{proto}");
    }
    let (status, _, body) = fetch(srv.addr, "/", None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"still serving"[..]));
    srv.handle.shutdown();
}

fn echo_app() -> impl conduit_core::Handler {
    Router::new().route(
        "/upload",
        post(
            (|req: Request| async move { req.bytes().await.map(|b| format!("{} bytes", b.len())) })
                .with(Decompression::new()),
        ),
    )
}

fn post_encoded(encoding: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::post("/upload")
        .header("host", "t")
        .header(header::CONTENT_ENCODING, encoding)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn request_bodies_are_decoded() {
    let srv = start(echo_app()).await;
    let data = json_doc().into_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zl.write_all(&data).unwrap();
    let zl = zl.finish().unwrap();
    let mut br = Vec::new();
    brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
        .write_all(&data)
        .unwrap();
    let zs = zstd::encode_all(&data[..], 3).unwrap();
    let expected = format!("{} bytes", data.len());
    for (enc, body) in [
        ("gzip", gz.clone()),
        ("x-gzip", gz.clone()),
        ("deflate", zl),
        ("br", br),
        ("zstd", zs),
    ] {
        let (status, _, text) = send(srv.addr, post_encoded(enc, body)).await;
        assert_eq!(
            (status, &text[..]),
            (StatusCode::OK, expected.as_bytes()),
            "{enc}"
        );
    }
    // Bad input: unsupported and stacked codings are 415, corrupt data 400, truncated 400.
    let (status, headers, _) = send(srv.addr, post_encoded("compress", gz.clone())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        headers[header::ACCEPT_ENCODING]
            .to_str()
            .unwrap()
            .contains("gzip")
    );
    let (status, _, _) = send(srv.addr, post_encoded("gzip, br", gz.clone())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = send(srv.addr, post_encoded("gzip", b"not gzip at all".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = send(srv.addr, post_encoded("gzip", gz[..gz.len() / 2].to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // identity passes through.
    let (status, _, text) = send(srv.addr, post_encoded("identity", b"plain".to_vec())).await;
    assert_eq!((status, &text[..]), (StatusCode::OK, &b"5 bytes"[..]));
    srv.handle.shutdown();
}

/// 10 MB of zeros, gzipped to about 10 KB, posted to a 1 MB limit: 413, not 10 MB in memory.
#[tokio::test]
async fn gzip_bomb_gets_413() {
    let srv = start_with(config().max_body_bytes(1 << 20), echo_app()).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..10 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let (status, _, _) = send(srv.addr, post_encoded("gzip", bomb)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit decodes fine.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros[..1000 * 1000]).unwrap();
    let (status, _, text) = send(srv.addr, post_encoded("gzip", gz.finish().unwrap())).await;
    assert_eq!((status, &text[..]), (StatusCode::OK, &b"1000000 bytes"[..]));
    srv.handle.shutdown();
}
