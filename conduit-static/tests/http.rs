//! conduit-static over real sockets: a conduit server, hyper's HTTP/1.1 client, raw TCP and curl.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TempDir, raw_get, start};
use conduit_core::{Request, Router, get};
use conduit_static::{CacheConfig, ETagMode, ServeDir, ServeFile};

const SMALL: &str = "hello, static world\n";

fn tree(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    t.write("hello.txt", SMALL);
    t.write("app.js", "console.log('app');\n".repeat(20));
    t.write("app.js.br", b"BR-BYTES");
    t.write("app.js.gz", b"GZIP-BYTES!");
    t.write("app.js.zst", b"ZSTD-BYTES..");
    t.write("docs/index.html", "<h1>docs</h1>");
    t.write("empty/.keep", "");
    t.write("nested/a.css", "a{}");
    t.write(".env", "SECRET=1");
    t.write("page.html", "<p>page</p>");
    t.write(
        "data.bin",
        (0..=255u8).cycle().take(5000).collect::<Vec<u8>>(),
    );
    t
}

fn without_date(h: &http::HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = h
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn get_serves_a_file_with_validators_and_types() {
    let t = tree("basic");
    let addr = start(Router::new().mount("/static", ServeDir::new(t.path()))).await;
    let mut c = Client::new(addr).await;
    let r = c.get("/static/hello.txt").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, SMALL);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("max-age=31536000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some("20"));
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    let etag = r.header("etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
    assert!(r.header("vary").is_none(), "no variants, no Vary");
    // Binary types get no charset; the second request is a cache hit with the same headers.
    let r2 = c.get("/static/data.bin").await;
    assert_eq!(r2.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r2.body.len(), 5000);
    let again = c.get("/static/hello.txt").await;
    assert_eq!(without_date(&again.headers), without_date(&r.headers));
    // Missing file, file with a trailing slash.
    assert_eq!(c.get("/static/nope.txt").await.status, 404);
    assert_eq!(c.get("/static/hello.txt/").await.status, 404);
}

#[tokio::test]
async fn head_has_exactly_the_headers_of_get() {
    let t = tree("head");
    let addr = start(Router::new().mount("/s", ServeDir::new(t.path()).listing(true))).await;
    let mut c = Client::new(addr).await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/s/hello.txt", &[]),
        ("/s/app.js", &[]),
        ("/s/app.js", &[("accept-encoding", "gzip, br")]),
        ("/s/app.js", &[("accept-encoding", "zstd")]),
        ("/s/docs/", &[]),
        ("/s/docs", &[]),
        ("/s/empty/", &[]),
        ("/s/nested/a.css", &[("if-none-match", "\"nope\"")]),
    ];
    for (path, headers) in cases {
        let g = c.req("GET", path, headers).await;
        let h = c.req("HEAD", path, headers).await;
        assert_eq!(g.status, h.status, "{path}");
        assert_eq!(
            without_date(&g.headers),
            without_date(&h.headers),
            "{path} {headers:?}"
        );
        assert!(h.body.is_empty());
    }
    // Conditional HEAD: 304 like GET.
    let etag = c
        .get("/s/hello.txt")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let g = c
        .req("GET", "/s/hello.txt", &[("if-none-match", &etag)])
        .await;
    let h = c
        .req("HEAD", "/s/hello.txt", &[("if-none-match", &etag)])
        .await;
    assert_eq!((g.status, h.status), (304, 304));
    assert_eq!(without_date(&g.headers), without_date(&h.headers));
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let t = tree("methods");
    let addr = start(Router::new().mount("/s", ServeDir::new(t.path()))).await;
    let mut c = Client::new(addr).await;
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = c.req(m, "/s/hello.txt", &[]).await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
}

/// The RFC 9110 13.2.2 evaluation, written out independently of the crate.
fn expected(im: usize, ius: usize, inm: usize, ims: usize) -> u16 {
    // im: 0 absent, 1 match, 2 mismatch, 3 "*"; ius: 0 absent, 1 before (fails), 2 at;
    // inm: 0 absent, 1 match, 2 mismatch; ims: 0 absent, 1 before, 2 at (not modified).
    if im != 0 {
        if im == 2 {
            return 412;
        }
    } else if ius == 1 {
        return 412;
    }
    if inm != 0 {
        if inm == 1 {
            return 304;
        }
    } else if ims == 2 {
        return 304;
    }
    200
}

#[tokio::test]
async fn every_precondition_combination() {
    let t = tree("precond");
    let addr = start(ServeDir::new(t.path())).await;
    let mut c = Client::new(addr).await;
    let base = c.get("/hello.txt").await;
    let etag = base.header("etag").unwrap().to_owned();
    let lm = base.header("last-modified").unwrap().to_owned();
    let lm_time = httpdate::parse_http_date(&lm).unwrap();
    let before = httpdate::fmt_http_date(lm_time - Duration::from_secs(60));
    let other = "\"other\"".to_owned();
    let mut n = 0;
    for im in 0..4 {
        for ius in 0..3 {
            for inm in 0..3 {
                for ims in 0..3 {
                    let mut h: Vec<(&str, &str)> = Vec::new();
                    match im {
                        1 => h.push(("if-match", &etag)),
                        2 => h.push(("if-match", &other)),
                        3 => h.push(("if-match", "*")),
                        _ => {}
                    }
                    match ius {
                        1 => h.push(("if-unmodified-since", &before)),
                        2 => h.push(("if-unmodified-since", &lm)),
                        _ => {}
                    }
                    match inm {
                        1 => h.push(("if-none-match", &etag)),
                        2 => h.push(("if-none-match", &other)),
                        _ => {}
                    }
                    match ims {
                        1 => h.push(("if-modified-since", &before)),
                        2 => h.push(("if-modified-since", &lm)),
                        _ => {}
                    }
                    for method in ["GET", "HEAD"] {
                        let r = c.req(method, "/hello.txt", &h).await;
                        let want = expected(im, ius, inm, ims);
                        assert_eq!(r.status, want, "{method} {h:?}");
                        assert!(r.body.is_empty() || (want == 200 && method == "GET"));
                        if want == 304 {
                            assert_eq!(r.header("etag"), Some(etag.as_str()));
                            assert_eq!(r.header("last-modified"), Some(lm.as_str()));
                            assert_eq!(r.header("cache-control"), Some("max-age=31536000"));
                        }
                        n += 1;
                    }
                }
            }
        }
    }
    assert_eq!(n, 216);
    // A weak tag matches If-None-Match (weak comparison) but never If-Match.
    let weak = format!("W/{etag}");
    assert_eq!(
        c.req("GET", "/hello.txt", &[("if-none-match", &weak)])
            .await
            .status,
        304
    );
    assert_eq!(
        c.req("GET", "/hello.txt", &[("if-match", &weak)])
            .await
            .status,
        412
    );
    // Lists, and a malformed date (ignored).
    let list = format!("\"a\", {etag}");
    assert_eq!(
        c.req("GET", "/hello.txt", &[("if-none-match", &list)])
            .await
            .status,
        304
    );
    assert_eq!(
        c.req("GET", "/hello.txt", &[("if-modified-since", "yesterday")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn ranges_single_suffix_open_multi_and_unsatisfiable() {
    let t = tree("ranges");
    // data.bin twice: from memory (cache) and streamed from the file (no cache).
    for dir in [
        ServeDir::new(t.path()),
        ServeDir::new(t.path()).cache(None).chunk_size(1024),
    ] {
        let addr = start(dir).await;
        let mut c = Client::new(addr).await;
        let full = c.get("/data.bin").await.body;
        assert_eq!(full.len(), 5000);
        let etag = c.get("/data.bin").await.header("etag").unwrap().to_owned();

        let r = c.req("GET", "/data.bin", &[("range", "bytes=10-19")]).await;
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 10-19/5000"));
        assert_eq!(r.header("content-length"), Some("10"));
        assert_eq!(r.body, full.slice(10..20));
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert!(r.header("last-modified").is_some() && r.header("cache-control").is_some());

        let r = c.req("GET", "/data.bin", &[("range", "bytes=-100")]).await;
        assert_eq!(r.header("content-range"), Some("bytes 4900-4999/5000"));
        assert_eq!(r.body, full.slice(4900..));
        let r = c.req("GET", "/data.bin", &[("range", "bytes=1000-")]).await;
        assert_eq!(r.header("content-range"), Some("bytes 1000-4999/5000"));
        assert_eq!(r.body, full.slice(1000..));
        let r = c
            .req("GET", "/data.bin", &[("range", "bytes=4990-9999")])
            .await;
        assert_eq!(r.body, full.slice(4990..));

        // Several ranges: multipart/byteranges, parsed back.
        let r = c
            .req("GET", "/data.bin", &[("range", "bytes=0-4, 100-199, -3")])
            .await;
        assert_eq!(r.status, 206);
        let ct = r.header("content-type").unwrap();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .expect("multipart");
        assert_eq!(
            r.header("content-length").unwrap(),
            r.body.len().to_string()
        );
        let parts = parse_multipart(&r.body, boundary);
        let want = [(0, 5), (100, 200), (4997, 5000)];
        assert_eq!(parts.len(), 3);
        for ((cr, ctype, data), (a, b)) in parts.iter().zip(want) {
            assert_eq!(cr, &format!("bytes {a}-{}/5000", b - 1));
            assert_eq!(ctype, "application/octet-stream");
            assert_eq!(data.as_slice(), &full[a..b]);
        }

        // Unsatisfiable: 416 with bytes */LEN.
        let r = c.req("GET", "/data.bin", &[("range", "bytes=5000-")]).await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */5000"));
        assert!(r.body.is_empty());
        // Malformed: ignored, 200.
        let r = c.req("GET", "/data.bin", &[("range", "bytes=9-1")]).await;
        assert_eq!((r.status, r.body.len()), (200, 5000));
        let r = c.req("GET", "/data.bin", &[("range", "lines=1-2")]).await;
        assert_eq!(r.status, 200);

        // If-Range: matching ETag or date → 206; otherwise the whole file.
        let lm = c
            .get("/data.bin")
            .await
            .header("last-modified")
            .unwrap()
            .to_owned();
        // If-Range: a strong ETag or the exact date keeps the range; anything else, a weak
        // tag included, gets the whole file.
        let weak = format!("W/{etag}");
        for (if_range, status, len) in [
            (etag.as_str(), 206, 1),
            (lm.as_str(), 206, 1),
            ("\"old\"", 200, 5000),
            (weak.as_str(), 200, 5000),
        ] {
            let headers = [("range", "bytes=0-0"), ("if-range", if_range)];
            let r = c.req("GET", "/data.bin", &headers).await;
            assert_eq!(
                (r.status, r.body.len()),
                (status, len),
                "If-Range: {if_range}"
            );
        }
        // A failing precondition wins over Range; HEAD ignores Range.
        let r = c
            .req(
                "GET",
                "/data.bin",
                &[("range", "bytes=0-0"), ("if-none-match", &etag)],
            )
            .await;
        assert_eq!(r.status, 304);
        let r = c.req("HEAD", "/data.bin", &[("range", "bytes=0-0")]).await;
        assert_eq!((r.status, r.header("content-length")), (200, Some("5000")));
    }
}

/// Parts of a multipart/byteranges body: (Content-Range, Content-Type, data).
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String, Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let at = find(rest, delim.as_bytes()).expect("delimiter");
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            assert_eq!(rest, b"--\r\n", "closing delimiter ends the body");
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after delimiter");
        let end = find(rest, b"\r\n\r\n").expect("part headers");
        let headers = std::str::from_utf8(&rest[..end]).unwrap();
        let mut cr = String::new();
        let mut ct = String::new();
        for line in headers.split("\r\n") {
            let (k, v) = line.split_once(": ").unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-range" => cr = v.to_owned(),
                "content-type" => ct = v.to_owned(),
                other => panic!("unexpected part header {other}"),
            }
        }
        rest = &rest[end + 4..];
        let next = find(rest, delim.as_bytes()).expect("next delimiter");
        parts.push((cr, ct, rest[..next].to_vec()));
        rest = &rest[next..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn precompressed_variants_by_accept_encoding_with_vary_everywhere() {
    let t = tree("precomp");
    let addr = start(ServeDir::new(t.path())).await;
    let mut c = Client::new(addr).await;
    let cases = [
        ("", None, "console.log"),
        ("gzip", Some("gzip"), "GZIP-BYTES!"),
        ("br", Some("br"), "BR-BYTES"),
        ("zstd", Some("zstd"), "ZSTD-BYTES.."),
        // Equal weights: the shared preference (zstd, br, gzip), the compression middleware's.
        ("gzip, deflate, br, zstd", Some("zstd"), "ZSTD-BYTES.."),
        ("gzip, br", Some("br"), "BR-BYTES"),
        ("gzip;q=1, br;q=0.5", Some("gzip"), "GZIP-BYTES!"),
        ("br;q=0, gzip;q=0.1", Some("gzip"), "GZIP-BYTES!"),
        ("zstd;q=0.9, gzip;q=0.8", Some("zstd"), "ZSTD-BYTES.."),
        ("*", Some("zstd"), "ZSTD-BYTES.."),
        ("identity", None, "console.log"),
        ("gzip;q=0.5, identity", None, "console.log"),
        ("deflate", None, "console.log"),
    ];
    let mut etags = std::collections::HashSet::new();
    for (ae, enc, prefix) in cases {
        let h: &[(&str, &str)] = if ae.is_empty() {
            &[]
        } else {
            &[("accept-encoding", ae)]
        };
        let r = c.req("GET", "/app.js", h).await;
        assert_eq!(r.status, 200, "{ae}");
        assert_eq!(r.header("content-encoding"), enc, "{ae}");
        assert!(r.body.starts_with(prefix.as_bytes()), "{ae}");
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{ae}");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        etags.insert((enc, r.header("etag").unwrap().to_owned()));
        // 304 and 206 of the same variant carry Vary and that variant's ETag too.
        let etag = r.header("etag").unwrap().to_owned();
        let r304 = c
            .req("GET", "/app.js", &[h, &[("if-none-match", &etag)]].concat())
            .await;
        assert_eq!(r304.status, 304, "{ae}");
        assert_eq!(r304.header("vary"), Some("accept-encoding"));
        assert_eq!(r304.header("etag"), Some(etag.as_str()));
        let r206 = c
            .req("GET", "/app.js", &[h, &[("range", "bytes=0-1")]].concat())
            .await;
        assert_eq!(r206.status, 206, "{ae}");
        assert_eq!(r206.header("vary"), Some("accept-encoding"));
        assert_eq!(r206.header("content-encoding"), enc);
        assert_eq!(r206.body, prefix.as_bytes()[..2]);
        let r416 = c
            .req(
                "GET",
                "/app.js",
                &[h, &[("range", "bytes=99999-")]].concat(),
            )
            .await;
        assert_eq!(r416.status, 416);
        assert_eq!(r416.header("vary"), Some("accept-encoding"));
    }
    // One ETag per variant, four variants.
    let distinct: std::collections::HashSet<_> = etags.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(distinct.len(), 4, "{etags:?}");
    // A file without variants never gets Vary.
    let r = c
        .req("GET", "/hello.txt", &[("accept-encoding", "gzip")])
        .await;
    assert!(r.header("vary").is_none() && r.header("content-encoding").is_none());
    // Turned off: the identity file, no Vary.
    let addr = start(ServeDir::new(t.path()).precompressed(&[])).await;
    let r = Client::new(addr)
        .await
        .req("GET", "/app.js", &[("accept-encoding", "br")])
        .await;
    assert!(r.header("vary").is_none() && r.header("content-encoding").is_none());
}

#[tokio::test]
async fn directories_index_redirect_listing_and_spa() {
    let t = tree("dirs");
    let addr = start(Router::new().mount("/static", ServeDir::new(t.path()))).await;
    let mut c = Client::new(addr).await;
    let r = c.get("/static/docs").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/static/docs/"));
    let r = c.get("/static/docs?x=1").await;
    assert_eq!(r.header("location"), Some("/static/docs/?x=1"));
    let r = c.get("/static/docs/").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"<h1>docs</h1>"[..]));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        c.get("/static/empty/").await.status,
        403,
        "no listing by default"
    );
    // A redirect can never point at another host.
    let addr2 = start(ServeDir::new(t.path())).await;
    let r = Client::new(addr2).await.get("//docs").await;
    assert_eq!(r.header("location"), Some("/docs/"));

    let addr = start(
        ServeDir::new(t.path())
            .listing(true)
            .spa_fallback("page.html")
            .cache_control_for("html", "no-cache"),
    )
    .await;
    let mut c = Client::new(addr).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    let html = std::str::from_utf8(&r.body).unwrap();
    assert!(html.contains("href=\"docs/\"") && html.contains("href=\"hello.txt\""));
    assert!(!html.contains(".env"), "hidden files are not listed");
    let r = c.get("/client/route/42").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"<p>page</p>"[..]));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(
        c.get("/page.html").await.header("cache-control"),
        Some("no-cache")
    );
    // Refused paths are not rescued by the fallback.
    assert_eq!(c.get("/a/%2e%2e/x").await.status, 400);
}

#[tokio::test]
async fn cache_control_options_and_content_hash_etags() {
    let t = tree("cc");
    let addr = start(
        ServeDir::new(t.path())
            .immutable(true)
            .etag(ETagMode::ContentHash),
    )
    .await;
    let mut c = Client::new(addr).await;
    let r = c.get("/hello.txt").await;
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=31536000, immutable")
    );
    let want = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(SMALL.as_bytes()));
    assert_eq!(r.header("etag"), Some(want.as_str()));
    // The same content elsewhere (another machine, another mtime) has the same ETag.
    let t2 = TempDir::new("cc2");
    t2.write("copy.txt", SMALL);
    let addr = start(ServeDir::new(t2.path()).etag(ETagMode::ContentHash)).await;
    let r2 = Client::new(addr).await.get("/copy.txt").await;
    assert_eq!(r2.header("etag"), Some(want.as_str()));
}

#[tokio::test]
async fn hidden_files_and_symlinks() {
    let t = tree("hidden");
    let outside = TempDir::new("outside");
    outside.write("secret.txt", "TOP-SECRET");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), t.path().join("leak.txt"))
        .unwrap();
    std::os::unix::fs::symlink(outside.path(), t.path().join("leakdir")).unwrap();
    std::os::unix::fs::symlink(t.path().join("hello.txt"), t.path().join("alias.txt")).unwrap();
    let addr = start(ServeDir::new(t.path())).await;
    let mut c = Client::new(addr).await;
    assert_eq!(c.get("/.env").await.status, 404);
    assert_eq!(c.get("/%2eenv").await.status, 404);
    assert_eq!(c.get("/leak.txt").await.status, 404);
    assert_eq!(c.get("/leakdir/secret.txt").await.status, 404);
    assert_eq!(
        c.get("/alias.txt").await.body,
        SMALL,
        "symlinks inside the root are fine"
    );
    let addr = start(
        ServeDir::new(t.path())
            .allow_hidden(true)
            .follow_symlinks(true),
    )
    .await;
    let mut c = Client::new(addr).await;
    assert_eq!(c.get("/.env").await.body, "SECRET=1");
    assert_eq!(c.get("/leak.txt").await.body, "TOP-SECRET");
}

#[tokio::test]
async fn cache_revalidates_after_a_change_on_disk() {
    let t = tree("reval");
    let revalidate = Duration::from_millis(100);
    let dir = ServeDir::new(t.path()).cache(Some(CacheConfig {
        revalidate,
        ..CacheConfig::default()
    }));
    let addr = start(dir.clone()).await;
    let mut c = Client::new(addr).await;
    let first = c.get("/hello.txt").await;
    let etag1 = first.header("etag").unwrap().to_owned();
    for _ in 0..5 {
        assert_eq!(
            c.get("/hello.txt").await.header("etag"),
            Some(etag1.as_str())
        );
    }
    let s = dir.cache_stats();
    assert_eq!((s.misses, s.entries), (1, 1));
    assert!(s.hits >= 1 && s.memory == SMALL.len() as u64, "{s:?}");

    // Same size, new content: the sub-second mtime (or size) changes the ETag.
    std::thread::sleep(Duration::from_millis(20));
    t.write("hello.txt", "HELLO, STATIC WORLD\n");
    let changed_at = Instant::now();
    let r = loop {
        let r = c.get("/hello.txt").await;
        if r.header("etag") != Some(etag1.as_str()) {
            break r;
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(20),
            "never revalidated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.body, "HELLO, STATIC WORLD\n");
    let s = dir.cache_stats();
    assert!(s.revalidations + s.misses >= 2, "{s:?}");
    // Deleted: 404 after the window, and the entry is gone.
    std::fs::remove_file(t.path().join("hello.txt")).unwrap();
    let gone = Instant::now();
    while c.get("/hello.txt").await.status != 404 {
        assert!(
            gone.elapsed() < Duration::from_secs(20),
            "deleted file still served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cache_evicts_within_its_memory_budget() {
    let t = TempDir::new("evict");
    for i in 0..20 {
        t.write(&format!("f{i}.bin"), vec![i as u8; 1000]);
    }
    let dir = ServeDir::new(t.path()).cache(Some(CacheConfig {
        max_memory: 4000,
        shards: 1,
        ..CacheConfig::default()
    }));
    let addr = start(dir.clone()).await;
    let mut c = Client::new(addr).await;
    for i in 0..20 {
        let r = c.get(&format!("/f{i}.bin")).await;
        assert_eq!(r.body, vec![i as u8; 1000]);
    }
    let s = dir.cache_stats();
    assert!(s.memory <= 4000 && s.entries <= 4, "{s:?}");
    assert_eq!(s.evictions, 16, "{s:?}");
}

#[tokio::test]
async fn large_files_stream_in_chunks_with_flat_memory() {
    let t = TempDir::new("large");
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    t.write("big.bin", &big);
    let dir = ServeDir::new(t.path()).chunk_size(64 * 1024);
    let addr = start(dir.clone()).await;
    // Eight concurrent downloads over separate connections.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(async move {
            Client::new(addr).await.get("/big.bin").await
        }));
    }
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("3145745"));
        assert!(r.body == big, "streamed bytes differ");
    }
    // Bigger than the cache's file limit: cached as an open file, no bytes in memory.
    let s = dir.cache_stats();
    assert_eq!((s.entries, s.memory), (1, 0), "{s:?}");
    let mut c = Client::new(addr).await;
    let r = c
        .req(
            "GET",
            "/big.bin",
            &[("range", "bytes=1000000-1000009, 3000000-")],
        )
        .await;
    let boundary = r
        .header("content-type")
        .unwrap()
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_owned();
    let parts = parse_multipart(&r.body, &boundary);
    assert_eq!(parts[0].2, &big[1_000_000..1_000_010]);
    assert_eq!(parts[1].2, &big[3_000_000..]);
}

#[tokio::test]
async fn serve_file_answers_every_path_with_one_file() {
    let t = tree("servefile");
    let file = ServeFile::new(t.path().join("page.html"));
    let addr = start(
        Router::new()
            .route("/", get(file.clone()))
            .route("/missing", get(ServeFile::new(t.path().join("nope.html"))))
            .route("/x", get(|_req: Request| async { "x" })),
    )
    .await;
    let mut c = Client::new(addr).await;
    let r = c.get("/").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"<p>page</p>"[..]));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(
        c.req("GET", "/", &[("if-none-match", &etag)]).await.status,
        304
    );
    assert_eq!(c.req("GET", "/", &[("range", "bytes=3-3")]).await.body, "p");
    assert_eq!(c.get("/missing").await.status, 404);
}

#[tokio::test]
async fn curl_sees_ranges_head_and_validators() {
    let t = tree("curl");
    let addr = start(ServeDir::new(t.path())).await;
    let url = format!("http://{addr}/data.bin");
    let curl = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-s", "--max-time", "30"])
                .args(&args)
                .output()
                .expect("curl must be installed (scripts/test.sh installs it)")
        })
        .await
        .unwrap()
    };
    let out = curl(vec!["-r".into(), "0-9".into(), url.clone()]).await;
    assert_eq!(out.stdout, (0..10u8).collect::<Vec<_>>());
    let out = curl(vec!["-I".into(), url.clone()]).await;
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 5000") && head.contains("etag: \""));
    // curl -z sends If-Modified-Since from a date: unchanged file → 304, no body.
    let out = curl(vec![
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "-z".into(),
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600)),
        url.clone(),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "304");
    let out = curl(vec![
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "-X".into(),
        "POST".into(),
        url,
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
}

#[tokio::test]
async fn http2_serves_files_and_ranges() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let t = tree("h2");
    let addr = start(ServeDir::new(t.path()).cache(None)).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}/data.bin"))
        .header("range", "bytes=0-1,10-11")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = tx.send_request(req).await.unwrap();
    assert_eq!(res.status(), 206);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(find(&body, b"Content-Range: bytes 10-11/5000").is_some());
}

/// At least 40 encoded attacks; none may reach the file outside the root, none may get 5xx.
#[tokio::test]
async fn traversal_table_is_refused() {
    let outer = TempDir::new("trav");
    outer.write("secret.txt", "TOP-SECRET");
    outer.write("root/public.txt", "public");
    outer.write("root/sub/x.txt", "x");
    let root = outer.path().join("root");
    let addr = start(Router::new().mount("/static", ServeDir::new(&root))).await;
    let attacks: &[&str] = &[
        "/static/../secret.txt",
        "/static/../../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%2e%2e%2Fsecret.txt",
        "/static/.%2e/secret.txt",
        "/static/%2e./secret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static/sub%2f..%2f..%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/..%5Csecret.txt",
        "/static/..\\secret.txt",
        "/static/sub\\..\\..\\secret.txt",
        "/static/%5c..%5c..%5csecret.txt",
        "/static/..%252fsecret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/%252e%252e%252fsecret.txt",
        "/static/..%c0%afsecret.txt",
        "/static/..%c1%9csecret.txt",
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/%e0%80%ae%e0%80%ae/secret.txt",
        "/static/..%u2216secret.txt",
        "/static/%uff0e%uff0e/secret.txt",
        "/static/..%00/secret.txt",
        "/static/public.txt%00.html",
        "/static/%00",
        "/static/..;/secret.txt",
        "/static/./../secret.txt",
        "/static/.%2e%2f.%2e%2fsecret.txt",
        "/static/%2fetc%2fpasswd",
        "/static/%2Fetc/passwd",
        "/static//etc/passwd",
        "/static/C:/Windows/win.ini",
        "/static/c:%5cwindows%5cwin.ini",
        "/static/C%3a%5cboot.ini",
        "/static/public.txt::$DATA",
        "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/....//....//secret.txt",
        "/static/..././secret.txt",
        "/static/sub/..%2f..%2fsecret.txt",
        "/static/%2e%2e%5c%2e%2e%5csecret.txt",
        "/static/.%00./secret.txt",
        "/static/..%ef%bc%8fsecret.txt",
        "/static/%ff%fe/secret.txt",
        "/static/.git/config",
        "/static/%2egit/config",
        "/static/..",
        "/static/%2e%2e",
        "/static/sub/..",
        "/static/../root/../secret.txt",
    ];
    assert!(attacks.len() >= 40);
    for attack in attacks {
        let (status, response) = raw_get(addr, attack.as_bytes()).await;
        assert!(
            matches!(status, 400 | 403 | 404),
            "{attack}: status {status}\n{}",
            String::from_utf8_lossy(&response)
        );
        assert!(
            find(&response, b"TOP-SECRET").is_none() && find(&response, b"root:").is_none(),
            "{attack} leaked"
        );
    }
    // The server is still fine, and the root is served.
    assert_eq!(raw_get(addr, b"/static/public.txt").await.0, 200);
}

#[tokio::test]
async fn empty_files_with_and_without_the_cache() {
    let t = TempDir::new("empty");
    t.write("empty.txt", "");
    for dir in [ServeDir::new(t.path()), ServeDir::new(t.path()).cache(None)] {
        let addr = start(dir).await;
        let mut c = Client::new(addr).await;
        let r = c.get("/empty.txt").await;
        assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
        assert!(r.body.is_empty());
        let r = c.req("GET", "/empty.txt", &[("range", "bytes=0-")]).await;
        assert_eq!(
            (r.status, r.header("content-range")),
            (416, Some("bytes */0"))
        );
        // The connection is still usable.
        assert_eq!(c.get("/empty.txt").await.status, 200);
    }
}
