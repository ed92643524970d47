//! StaticFileServing, end to end over loopback: `ServeDir` answering GETs for files of 1 KiB,
//! 64 KiB and 1 MiB on one keep-alive HTTP/1.1 connection (bytes per operation = file size),
//! and a conditional GET answered 304 from the ETag.
use std::hint::black_box;

use conduit::{Router, ServeDir};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;
use support::{LoopbackServer, client_runtime, h1, send1};

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("conduit-bench-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sizes = [("1k", 1024usize), ("64k", 64 * 1024), ("1m", 1024 * 1024)];
    for (name, size) in sizes {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(dir.join(format!("{name}.txt")), body).unwrap();
    }
    let server = LoopbackServer::start(Router::new().mount("/static", ServeDir::new(&dir)));
    let rt = client_runtime();
    let mut conn = rt.block_on(h1(server.addr));
    let mut g = c.benchmark_group("static_file_serving");
    for (name, size) in sizes {
        let path = format!("/static/{name}.txt");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(send1(&mut conn, support::get(&path)))))
        });
    }

    // 304 Not Modified: the validator check without the body.
    let etag = rt.block_on(async {
        let res = conn
            .send_request(support::get("/static/64k.txt"))
            .await
            .unwrap();
        let etag = res.headers()["etag"].clone();
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap();
        etag
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("not_modified_304", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::get("/static/64k.txt")
                    .header("host", "bench")
                    .header("if-none-match", etag.clone())
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let res = conn.send_request(req).await.unwrap();
                assert_eq!(res.status(), 304);
                black_box(res)
            })
        })
    });
    g.finish();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
