//! End-to-end handler benches over loopback (a real server, a real hyper client, one
//! keep-alive HTTP/1.1 connection): SimpleHandler, JSONResponse, JSONArrayResponse and
//! POSTWithBody. Bytes per operation are the response (or request) body sizes.
use std::hint::black_box;

use bytes::Bytes;
use conduit::{Json, Request, RequestExt, Router, get, post};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

mod support;
use support::{LoopbackServer, client_runtime, h1, send1};

#[derive(Serialize, Deserialize, Clone)]
struct User {
    id: u64,
    name: String,
    email: String,
    active: bool,
}

fn users(n: u64) -> Vec<User> {
    (0..n)
        .map(|id| User {
            id,
            name: format!("user {id}"),
            email: format!("user{id}@example.com"),
            active: id % 2 == 0,
        })
        .collect()
}

/// The shared list, serialized on every request without cloning it.
struct Users(std::sync::Arc<Vec<User>>);

impl Serialize for Users {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn app() -> Router {
    let list = std::sync::Arc::new(users(100));
    Router::new()
        .route("/", get(|_req: Request| async { "Hello, World!" }))
        .route(
            "/json",
            get(|_req: Request| async {
                Json(serde_json::json!({"message": "Hello, World!", "status": "ok"}))
            }),
        )
        .route(
            "/users",
            get(move |_req: Request| {
                let list = list.clone();
                async move { Json(Users(list)) }
            }),
        )
        .route(
            "/users",
            post(|req: Request| async move {
                let user: User = req.json().await?;
                Ok::<_, conduit::Error>(Json(user))
            }),
        )
}

fn bench(c: &mut Criterion) {
    let server = LoopbackServer::start(app());
    let rt = client_runtime();
    let mut conn = rt.block_on(h1(server.addr));
    let mut g = c.benchmark_group("e2e");

    for (name, path) in [
        ("simple_handler", "/"),
        ("json_response", "/json"),
        ("json_array_response_100", "/users"),
    ] {
        let size = rt.block_on(send1(&mut conn, support::get(path))).len();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(send1(&mut conn, support::get(path)))))
        });
    }

    // A small JSON object, and one with a 6.4 KB field: parse, then serialize back.
    for name_len in [6, 6400] {
        let mut u = users(1).remove(0);
        u.name = "x".repeat(name_len);
        let body = Bytes::from(serde_json::to_vec(&u).unwrap());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("post_with_body_{}b", body.len()), |b| {
            b.iter(|| {
                let req = support::post("/users", "application/json", body.clone());
                black_box(rt.block_on(send1(&mut conn, req)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
