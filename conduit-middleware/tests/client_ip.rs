//! ClientIp over a real socket, with and without trusted proxies.

mod wire;

use conduit_core::{HandlerExt, Request, Router, get};
use conduit_middleware::{ClientIp, TrustedProxies};
use wire::{send, start};

fn app() -> Router {
    Router::new().route(
        "/ip",
        get(|req: Request| async move {
            ClientIp::of(&req)
                .map(|ip| ip.to_string())
                .unwrap_or_default()
        }),
    )
}

async fn ip(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> String {
    send(addr, "GET", "/ip", headers).await.text().to_owned()
}

#[tokio::test]
async fn without_trusted_proxies_the_peer_is_the_client() {
    let plain = start(app()).await;
    assert_eq!(ip(plain.addr, &[]).await, "127.0.0.1");
    assert_eq!(
        ip(plain.addr, &[("x-forwarded-for", "1.1.1.1")]).await,
        "127.0.0.1"
    );

    // A proxy list that does not include the peer changes nothing either.
    let elsewhere = start(app().with(TrustedProxies::new(["10.0.0.0/8"]).unwrap())).await;
    assert_eq!(
        ip(elsewhere.addr, &[("x-forwarded-for", "1.1.1.1")]).await,
        "127.0.0.1"
    );
}

#[tokio::test]
async fn behind_trusted_proxies_the_rightmost_untrusted_hop() {
    let xff = start(app().with(TrustedProxies::new(["127.0.0.1", "10.0.0.0/8"]).unwrap())).await;
    #[rustfmt::skip]
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[], "127.0.0.1"),
        (&[("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
        (&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")], "198.51.100.7"),
        (&[("x-forwarded-for", "198.51.100.7, not-an-ip")], "127.0.0.1"),
        (&[("x-forwarded-for", "[2001:db8::7]:443")], "2001:db8::7"),
        (&[("forwarded", "for=198.51.100.9")], "127.0.0.1"), // this app reads X-Forwarded-For
    ];
    for (headers, want) in cases {
        assert_eq!(ip(xff.addr, headers).await, want, "{headers:?}");
    }

    let fwd = start(
        app().with(
            TrustedProxies::new(["127.0.0.0/8"])
                .unwrap()
                .use_forwarded(),
        ),
    )
    .await;
    #[rustfmt::skip]
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("forwarded", "for=198.51.100.9;proto=https")], "198.51.100.9"),
        (&[("forwarded", r#"for=6.6.6.6, for="[2001:db8::9]:80""#)], "2001:db8::9"),
        (&[("forwarded", "for=unknown")], "127.0.0.1"),
        (&[("forwarded", "for=\"unterminated")], "127.0.0.1"),
    ];
    for (headers, want) in cases {
        assert_eq!(ip(fwd.addr, headers).await, want, "{headers:?}");
    }
}
