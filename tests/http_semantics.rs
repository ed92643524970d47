//! One request, one answer: the compression middleware over `ServeDir` (`/gz`, what
//! `optimized_server` and `bench_server` do) and `ServeDir` with a precompressed sibling
//! (`/static`) negotiate the same coding, name encoded variants the same way, revalidate, and
//! carry the same `Vary` on 200, HEAD, 206 and 304 — over a real socket.

mod common;

use std::io::Write;

use bytes::Bytes;
use common::*;
use conduit::middleware::Compression;
use conduit::{HandlerExt, Router, ServeDir};
use http_body_util::Full;

const DOC: &str = "{\"items\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], \"name\": \"conduit\"}\n";

struct Tree(std::path::PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `data.json` (about 3 KiB) under `plain/`, and the same with a `.gz` sibling under `pre/`.
fn tree() -> Tree {
    let dir = std::env::temp_dir().join(format!("conduit-semantics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let body = DOC.repeat(50);
    for sub in ["plain", "pre"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("data.json"), &body).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body.as_bytes()).unwrap();
    std::fs::write(dir.join("pre/data.json.gz"), gz.finish().unwrap()).unwrap();
    Tree(dir)
}

fn app(t: &Tree) -> Router {
    // Only gzip on both sides, so both have the same codings to choose from.
    let gzip_only = Compression::new().br(None).zstd(None).deflate(None);
    Router::new()
        .mount("/gz", ServeDir::new(t.0.join("plain")).with(gzip_only))
        .mount("/static", ServeDir::new(t.0.join("pre")))
}

async fn ask(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = request(method, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(
        &mut h1_client(addr).await,
        req.body(Full::new(Bytes::new())).unwrap(),
    )
    .await
}

#[tokio::test]
async fn compression_and_precompressed_files_agree() {
    let t = tree();
    let srv = start(config(), app(&t)).await;
    let accepts = [
        "",
        "gzip",
        "x-gzip",
        "br",
        "gzip;q=0",
        "identity",
        "gzip;q=0.5, identity",
        "gzip, identity;q=0",
        "identity;q=0",
        "*;q=0",
        "br, identity;q=0",
        "*",
        "gzip;q=2",
    ];
    for ae in accepts {
        let h: &[(&str, &str)] = if ae.is_empty() {
            &[]
        } else {
            &[("accept-encoding", ae)]
        };
        let gz = ask(srv.addr, "GET", "/gz/data.json", h).await;
        let st = ask(srv.addr, "GET", "/static/data.json", h).await;
        assert_eq!(gz.status, 200, "{ae:?}");
        assert_eq!(st.status, 200, "{ae:?}: same status");
        assert_eq!(
            gz.header("content-encoding"),
            st.header("content-encoding"),
            "{ae:?}: same coding"
        );
        assert_eq!(gz.header("vary"), Some("accept-encoding"), "{ae:?}");
        assert_eq!(st.header("vary"), Some("accept-encoding"), "{ae:?}");
        for r in [&gz, &st] {
            let etag = r.header("etag").unwrap();
            assert_eq!(
                etag.ends_with("-gzip\""),
                r.header("content-encoding") == Some("gzip"),
                "{ae:?}: the variant's tag names its coding: {etag}"
            );
            let cache_control = r.header("cache-control").unwrap_or("");
            assert!(!cache_control.contains("public"), "{ae:?}: {cache_control}");
        }
    }
    srv.handle.shutdown();
}

#[tokio::test]
async fn negotiated_responses_revalidate_with_the_headers_of_their_200() {
    let t = tree();
    let srv = start(config(), app(&t)).await;
    for path in ["/gz/data.json", "/static/data.json"] {
        let ae = [("accept-encoding", "gzip")];
        let ok = ask(srv.addr, "GET", path, &ae).await;
        assert_eq!(ok.header("content-encoding"), Some("gzip"), "{path}");
        let etag = ok.header("etag").unwrap().to_owned();
        assert!(etag.ends_with("-gzip\""), "{path}: {etag}");

        // The tag the client got revalidates: 304, same tag, same Vary and Cache-Control.
        let r304 = ask(srv.addr, "GET", path, &[ae[0], ("if-none-match", &etag)]).await;
        assert_eq!(
            r304.status, 304,
            "{path}: a compressed response revalidates"
        );
        assert!(r304.body.is_empty());
        assert_eq!(r304.header("etag"), Some(etag.as_str()), "{path}");
        assert_eq!(r304.header("vary"), Some("accept-encoding"), "{path}");
        assert_eq!(
            r304.header("cache-control"),
            ok.header("cache-control"),
            "{path}"
        );
        assert!(r304.header("content-encoding").is_none(), "{path}");

        // HEAD: the headers of the GET, without the body.
        let head = ask(srv.addr, "HEAD", path, &ae).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        for name in [
            "vary",
            "content-encoding",
            "etag",
            "cache-control",
            "content-type",
        ] {
            assert_eq!(head.header(name), ok.header(name), "{path}: HEAD {name}");
        }

        // A range of a negotiated resource: 206 with the Vary of its 200.
        let r206 = ask(srv.addr, "GET", path, &[ae[0], ("range", "bytes=0-9")]).await;
        assert_eq!(r206.status, 206, "{path}");
        assert_eq!(r206.body.len(), 10, "{path}");
        assert_eq!(r206.header("vary"), Some("accept-encoding"), "{path}");
        assert_eq!(
            r206.header("cache-control"),
            ok.header("cache-control"),
            "{path}"
        );
    }
    // The compressed body of a file held in memory goes out with its length.
    let ok = ask(
        srv.addr,
        "GET",
        "/gz/data.json",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(
        ok.header("content-length"),
        Some(ok.body.len().to_string().as_str())
    );
    srv.handle.shutdown();
}
