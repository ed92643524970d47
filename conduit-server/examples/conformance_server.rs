//! A minimal server for conformance suites (h2spec, request-smuggling probes): every request's
//! body is read and answered with "Hello, World!".
//!
//! ```text
//! cargo run -p conduit-server --example conformance_server -- 127.0.0.1:18443            # h2c + HTTP/1.1
//! cargo run -p conduit-server --example conformance_server -- 127.0.0.1:18443 cert.pem key.pem  # TLS
//! h2spec -h 127.0.0.1 -p 18443 [-t -k]
//! ```
use conduit_core::Request;
use conduit_server::{Config, TlsConfig};

fn main() -> Result<(), conduit_server::ServerError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = Config::new(args.first().map_or("127.0.0.1:18443", String::as_str));
    if let [_, cert, key] = &args[..] {
        config = config.tls(TlsConfig::from_pem_files(cert, key));
    }
    conduit_server::run(config, |req: Request| async move {
        let _ = conduit_core::to_bytes(req.into_body(), usize::MAX).await;
        "Hello, World!"
    })
}
