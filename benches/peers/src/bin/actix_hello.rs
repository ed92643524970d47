// actix-web 4 hello world + JSON + actix-files: the TechEmpower leader among mainstream Rust frameworks.
use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:18082".into());
    let root = std::env::args().nth(2).unwrap_or(".".into());
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    HttpServer::new(move || {
        App::new()
            .route(
                "/",
                web::get().to(|| async { HttpResponse::Ok().body("Hello, World!") }),
            )
            .route(
                "/json",
                web::get().to(|| async {
                    HttpResponse::Ok().json(serde_json::json!({"message":"Hello, World!"}))
                }),
            )
            .service(actix_files::Files::new("/static", &root))
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
