//! Sender tests. Real traffic goes only to receivers on 127.0.0.1; everything that involves
//! another address uses a stub resolver and a dialer that records instead of dialing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use hookline_core::url_policy::{IpCidr, UrlPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_service::Service;

use super::connect::{tls_config, ConnectError, Connector};
use super::test_support::*;
use super::*;

// ---- helpers ----------------------------------------------------------------

fn local_policy(allow_http: bool) -> UrlPolicy {
    UrlPolicy {
        allow_http,
        allow_targets: vec![IpCidr::parse("127.0.0.1/32").unwrap()],
    }
}

fn config(policy: UrlPolicy) -> SenderConfig {
    SenderConfig {
        policy,
        timeout: Duration::from_secs(10),
        body_cap: 4096,
        extra_ca_pem: None,
        user_agent: "Hookline-test/1".to_string(),
        max_idle_per_host: 4,
    }
}

fn post(url: String) -> OutboundRequest {
    OutboundRequest {
        url,
        headers: Vec::new(),
        body: Bytes::from_static(br#"{"hello":"world"}"#),
    }
}

fn echo() -> Handler {
    handler(|hit| {
        let mut r = respond(200, hit.body.clone());
        r.headers_mut()
            .insert("x-receiver", http::HeaderValue::from_static("yes"));
        r
    })
}

fn error_kind(r: &SendResult) -> Option<ErrorKind> {
    r.error.as_ref().map(|(k, _)| *k)
}

fn header<'a>(r: &'a SendResult, name: &str) -> Option<&'a str> {
    r.response_headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Reads from `stream` until the end of the request head.
async fn read_head(stream: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn connector(policy: UrlPolicy, resolver: Arc<dyn Resolve>, dialer: Arc<dyn Dial>) -> Connector {
    connector_with_timeout(policy, resolver, dialer, Duration::from_secs(5))
}

fn connector_with_timeout(
    policy: UrlPolicy,
    resolver: Arc<dyn Resolve>,
    dialer: Arc<dyn Dial>,
    timeout: Duration,
) -> Connector {
    Connector::new(policy, resolver, dialer, tls_config(None).unwrap(), timeout)
}

/// Calls the connector once; it must fail (the recording dialer never connects).
async fn connect_err(c: &mut Connector, uri: &str) -> ConnectError {
    match c.call(uri.parse().unwrap()).await {
        Ok(_) => panic!("{uri}: connector unexpectedly produced a connection"),
        Err(e) => e,
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- delivery, timings, pool --------------------------------------------------

#[tokio::test]
async fn delivers_to_local_http_receiver_and_reports_timings() {
    let rx = http_receiver(echo()).await;
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let mut req = post(rx.http_url("/hook?x=1"));
    req.headers = vec![
        ("X-Custom".into(), "a".into()),
        ("Authorization".into(), "Bearer t".into()),
        ("X-Custom".into(), "b".into()),
    ];
    let r = sender.send(req).await;

    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.response_body, r#"{"hello":"world"}"#);
    assert!(!r.response_truncated);
    assert_eq!(r.http_version, Some("HTTP/1.1"));
    assert!(!r.reused_connection);
    assert_eq!(r.timings.dns_ms, None, "IP literal: no DNS");
    assert!(r.timings.connect_ms.is_some());
    assert_eq!(r.timings.tls_ms, None);
    let ttfb = r.timings.ttfb_ms.unwrap();
    assert!(r.timings.total_ms > 0.0 && r.timings.total_ms >= ttfb);
    assert_eq!(header(&r, "x-receiver"), Some("yes"));
    assert_eq!(r.retry_after, None);

    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.target, "/hook?x=1");
    assert_eq!(hit.body.as_ref(), br#"{"hello":"world"}"#);
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["user-agent"], "Hookline-test/1");
    assert_eq!(hit.headers["content-length"], "17");
    assert_eq!(hit.headers["authorization"], "Bearer t");
    assert_eq!(hit.headers["host"], rx.addr.to_string());
    let custom: Vec<_> = hit.headers.get_all("x-custom").iter().collect();
    assert_eq!(custom, ["a", "b"]);
}

#[tokio::test]
async fn caller_headers_override_defaults_and_framing_headers_are_ignored() {
    let rx = http_receiver(echo()).await;
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let mut req = post(rx.http_url("/"));
    req.headers = vec![
        ("content-type".into(), "application/cloudevents+json".into()),
        ("User-Agent".into(), "Custom/2".into()),
        ("Content-Length".into(), "9999".into()),
        ("Host".into(), "evil.example".into()),
        ("Transfer-Encoding".into(), "chunked".into()),
        ("Connection".into(), "close".into()),
    ];
    let r = sender.send(req).await;
    assert_eq!(r.status_code, Some(200), "{r:?}");
    let hit = &rx.hits()[0];
    let ct: Vec<_> = hit.headers.get_all("content-type").iter().collect();
    assert_eq!(ct, ["application/cloudevents+json"]);
    assert_eq!(hit.headers["user-agent"], "Custom/2");
    assert_eq!(hit.headers["content-length"], "17");
    assert_eq!(hit.headers["host"], rx.addr.to_string());
    assert!(hit.headers.get("transfer-encoding").is_none());
    assert_eq!(hit.body.len(), 17);
}

#[tokio::test]
async fn invalid_request_header_is_reported_without_sending() {
    let rx = http_receiver(echo()).await;
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let mut req = post(rx.http_url("/"));
    req.headers = vec![("X-Bad".into(), "a\r\nInjected: 1".into())];
    let r = sender.send(req).await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Protocol), "{r:?}");
    assert_eq!(r.status_code, None);
    assert!(rx.hits().is_empty());
}

#[tokio::test]
async fn reuses_pooled_connection_on_second_send() {
    let rx = http_receiver(echo()).await;
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let first = sender.send(post(rx.http_url("/a"))).await;
    assert_eq!(first.status_code, Some(200), "{first:?}");
    assert!(!first.reused_connection);
    assert!(first.timings.connect_ms.is_some());

    // A clone shares the pool.
    let second = sender.clone().send(post(rx.http_url("/b"))).await;
    assert_eq!(second.status_code, Some(200), "{second:?}");
    assert!(second.reused_connection);
    assert_eq!(second.timings.connect_ms, None);
    assert_eq!(second.timings.dns_ms, None);
    assert_eq!(second.timings.tls_ms, None);
    assert!(second.timings.ttfb_ms.is_some());
    assert_eq!(rx.connection_count(), 1);
    assert_eq!(rx.hits().len(), 2);
}

// ---- TLS and HTTP/2 -----------------------------------------------------------

#[tokio::test]
async fn https_receiver_with_self_signed_cert_trusted_via_extra_ca() {
    let pki = TestPki::new();
    let rx = https_receiver(echo(), pki.server_config(&[b"http/1.1"])).await;
    let mut cfg = config(local_policy(false));
    cfg.extra_ca_pem = Some(pki.ca_pem.clone().into_bytes());
    let sender = Sender::new(cfg).unwrap();

    let r = sender.send(post(rx.https_url("/secure"))).await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.http_version, Some("HTTP/1.1"));
    assert!(r.timings.connect_ms.is_some());
    assert!(r.timings.tls_ms.is_some());
    assert_eq!(r.timings.dns_ms, None);
    assert_eq!(r.response_body, r#"{"hello":"world"}"#);

    let again = sender.send(post(rx.https_url("/secure"))).await;
    assert_eq!(again.status_code, Some(200));
    assert!(again.reused_connection);
    assert_eq!(again.timings.tls_ms, None);
    assert_eq!(rx.connection_count(), 1);
}

#[tokio::test]
async fn https_to_hostname_resolves_through_resolver_and_verifies_the_name() {
    let pki = TestPki::new();
    let rx = https_receiver(echo(), pki.server_config(&[b"http/1.1"])).await;
    let resolver = StubResolver::always(&["127.0.0.1"]);
    let dialer = Arc::new(LoopbackDialer::default());
    let mut cfg = config(local_policy(false));
    cfg.extra_ca_pem = Some(pki.ca_pem.clone().into_bytes());
    let sender = Sender::with_parts(cfg, resolver.clone(), dialer.clone()).unwrap();

    let url = format!("https://localhost:{}/named", rx.addr.port());
    let r = sender.send(post(url)).await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.status_code, Some(200));
    assert!(r.timings.dns_ms.is_some());
    assert!(r.timings.tls_ms.is_some());
    assert_eq!(
        *resolver.questions.lock().unwrap(),
        [("localhost".to_string(), rx.addr.port())]
    );
    assert_eq!(*dialer.dialed.lock().unwrap(), [rx.addr]);
}

#[tokio::test]
async fn https_certificate_for_another_name_fails_with_tls_error() {
    let pki = TestPki::new();
    let rx = https_receiver(echo(), pki.server_config(&[b"http/1.1"])).await;
    // A public-looking name that the stub resolver points at the local receiver; the
    // allowlist admits 127.0.0.1, but the certificate is for localhost only.
    let resolver = StubResolver::always(&["127.0.0.1"]);
    let mut cfg = config(local_policy(false));
    cfg.extra_ca_pem = Some(pki.ca_pem.clone().into_bytes());
    let sender = Sender::with_parts(cfg, resolver, Arc::new(LoopbackDialer::default())).unwrap();
    let url = format!("https://hooks.example.com:{}/", rx.addr.port());
    let r = sender.send(post(url)).await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Tls), "{r:?}");
    assert!(rx.hits().is_empty());
}

#[tokio::test]
async fn negotiates_http2_when_receiver_offers_it_by_alpn() {
    let pki = TestPki::new();
    let rx = https_receiver(echo(), pki.server_config(&[b"h2", b"http/1.1"])).await;
    let mut cfg = config(local_policy(false));
    cfg.extra_ca_pem = Some(pki.ca_pem.clone().into_bytes());
    let sender = Sender::new(cfg).unwrap();

    let r = sender.send(post(rx.https_url("/h2"))).await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.http_version, Some("HTTP/2"));
    assert!(!r.reused_connection);
    assert!(r.timings.tls_ms.is_some());
    assert_eq!(r.response_body, r#"{"hello":"world"}"#);
    let hit = &rx.hits()[0];
    assert_eq!(hit.version, http::Version::HTTP_2);
    assert_eq!(hit.target, "/h2");
    assert_eq!(hit.headers["content-type"], "application/json");

    let again = sender.send(post(rx.https_url("/h2"))).await;
    assert_eq!(again.http_version, Some("HTTP/2"));
    assert!(again.reused_connection, "{again:?}");
    assert_eq!(again.timings.connect_ms, None);
    assert_eq!(rx.connection_count(), 1);
}

#[tokio::test]
async fn huge_body_over_http2_is_capped_and_connection_survives() {
    let pki = TestPki::new();
    let big = Bytes::from(vec![b'y'; 4 * 1024 * 1024]);
    let rx = https_receiver(
        handler(move |hit| {
            if hit.target == "/big" {
                respond(200, big.clone())
            } else {
                respond(204, Bytes::new())
            }
        }),
        pki.server_config(&[b"h2"]),
    )
    .await;
    let mut cfg = config(local_policy(false));
    cfg.extra_ca_pem = Some(pki.ca_pem.clone().into_bytes());
    cfg.body_cap = 1000;
    let sender = Sender::new(cfg).unwrap();

    let r = sender.send(post(rx.https_url("/big"))).await;
    assert_eq!(r.status_code, Some(200), "{r:?}");
    assert_eq!(r.http_version, Some("HTTP/2"));
    assert_eq!(r.response_body.len(), 1000);
    assert!(r.response_truncated);

    // Only the stream was reset; the connection carries the next request.
    let next = sender.send(post(rx.https_url("/small"))).await;
    assert_eq!(next.status_code, Some(204), "{next:?}");
    assert!(next.reused_connection);
}

#[tokio::test]
async fn https_without_extra_ca_fails_with_tls_error() {
    let pki = TestPki::new();
    let rx = https_receiver(echo(), pki.server_config(&[b"h2", b"http/1.1"])).await;
    let sender = Sender::new(config(local_policy(false))).unwrap();
    let r = sender.send(post(rx.https_url("/"))).await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Tls), "{r:?}");
    assert_eq!(r.status_code, None);
    assert!(r.timings.connect_ms.is_some());
    assert!(r.timings.tls_ms.is_some());
    assert!(rx.hits().is_empty());
}

#[test]
fn new_rejects_bad_extra_ca_pem_and_user_agent() {
    let mut cfg = config(local_policy(false));
    cfg.extra_ca_pem = Some(b"not a certificate".to_vec());
    assert!(Sender::new(cfg.clone()).is_err());
    cfg.extra_ca_pem =
        Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
    assert!(Sender::new(cfg.clone()).is_err());
    cfg.extra_ca_pem = Some(TestPki::new().ca_pem.into_bytes());
    assert!(Sender::new(cfg.clone()).is_ok());
    cfg.user_agent = "bad\nagent".into();
    assert!(Sender::new(cfg).is_err());
    assert!(Sender::new(SenderConfig::default()).is_ok());
}

// ---- redirects, timeouts, failures -----------------------------------------------

#[tokio::test]
async fn redirect_is_not_followed() {
    let rx = http_receiver(handler(|hit| {
        if hit.target == "/start" {
            let mut r = respond(301, "moved");
            r.headers_mut()
                .insert("location", http::HeaderValue::from_static("/target"));
            r
        } else {
            respond(200, "target reached")
        }
    }))
    .await;
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let r = sender.send(post(rx.http_url("/start"))).await;
    assert_eq!(r.status_code, Some(301), "{r:?}");
    assert_eq!(r.error, None);
    assert_eq!(header(&r, "location"), Some("/target"));
    assert_eq!(r.response_body, "moved");
    let targets: Vec<_> = rx.hits().into_iter().map(|h| h.target).collect();
    assert_eq!(targets, ["/start"]);
}

#[tokio::test]
async fn hanging_receiver_times_out() {
    let listener = local_listener().await;
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections, never reads or answers.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut cfg = config(local_policy(true));
    cfg.timeout = Duration::from_millis(300);
    let sender = Sender::new(cfg).unwrap();
    let started = Instant::now();
    let r = sender.send(post(format!("http://{addr}/"))).await;
    let elapsed = started.elapsed();
    assert_eq!(error_kind(&r), Some(ErrorKind::Timeout), "{r:?}");
    assert_eq!(r.status_code, None);
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(r.timings.total_ms >= 250.0);
    hold.abort();
}

#[tokio::test]
async fn hanging_dns_times_out() {
    let dialer = RecordingDialer::new();
    let mut cfg = config(UrlPolicy::default());
    cfg.timeout = Duration::from_millis(200);
    let sender = Sender::with_parts(cfg, StubResolver::hanging(), dialer.clone()).unwrap();
    let started = Instant::now();
    let r = sender
        .send(post("https://slow-dns.example.com/".into()))
        .await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Timeout), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(dialer.dialed().is_empty());
}

#[tokio::test]
async fn stalled_body_returns_status_within_timeout() {
    let listener = local_listener().await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let mut cfg = config(local_policy(true));
    cfg.timeout = Duration::from_millis(400);
    let sender = Sender::new(cfg).unwrap();
    let started = Instant::now();
    let r = sender.send(post(format!("http://{addr}/"))).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status_code, Some(200), "{r:?}");
    assert_eq!(r.error, None);
    assert_eq!(r.response_body, "partial");
    assert!(r.response_truncated);
    server.abort();
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let addr = {
        let l = local_listener().await;
        l.local_addr().unwrap()
    };
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let r = sender.send(post(format!("http://{addr}/"))).await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Connect), "{r:?}");
    assert_eq!(r.status_code, None);
    assert!(r.timings.connect_ms.is_some());
    assert!(r.error.unwrap().1.contains(&addr.to_string()));
}

#[tokio::test]
async fn peer_closing_without_response_is_a_protocol_error() {
    let listener = local_listener().await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_head(&mut s).await;
        s.write_all(b"garbage that is not HTTP\r\n\r\n")
            .await
            .unwrap();
    });
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let r = sender.send(post(format!("http://{addr}/"))).await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Protocol), "{r:?}");
    assert_eq!(r.status_code, None);
    server.await.unwrap();
}

// ---- response bounds ------------------------------------------------------------

#[tokio::test]
async fn huge_response_body_is_capped() {
    const TOTAL: usize = 20 * 1024 * 1024;
    let listener = local_listener().await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_head(&mut s).await;
        s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0;
        while written < TOTAL {
            if s.write_all(&chunk).await.is_err() {
                return Err(written);
            }
            written += chunk.len();
        }
        Ok(written)
    });
    let mut cfg = config(local_policy(true));
    cfg.body_cap = 4096;
    let sender = Sender::new(cfg).unwrap();
    let r = sender.send(post(format!("http://{addr}/"))).await;
    assert_eq!(r.status_code, Some(200), "{r:?}");
    assert_eq!(r.response_body.len(), 4096);
    assert!(r.response_body.bytes().all(|b| b == b'x'));
    assert!(r.response_truncated);

    // The connection was closed, not drained: the receiver fails to write everything.
    let outcome = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("receiver still writing 10 s after the sender returned")
        .unwrap();
    match outcome {
        Err(written) => assert!(written < TOTAL),
        Ok(written) => panic!("receiver wrote all {written} bytes: the body was drained"),
    }
}

#[tokio::test]
async fn endless_chunked_response_is_cut_off() {
    let listener = local_listener().await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let mut chunk = b"4000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'z', 0x4000));
        chunk.extend_from_slice(b"\r\n");
        let mut sent = 0usize;
        while s.write_all(&chunk).await.is_ok() {
            sent += 1;
        }
        sent
    });
    let mut cfg = config(local_policy(true));
    cfg.body_cap = 100;
    let sender = Sender::new(cfg).unwrap();
    let r = sender.send(post(format!("http://{addr}/"))).await;
    assert_eq!(r.status_code, Some(200), "{r:?}");
    assert_eq!(r.response_body, "z".repeat(100));
    assert!(r.response_truncated);
    let sent = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("endless receiver was never cut off")
        .unwrap();
    assert!(sent > 0);
}

#[tokio::test]
async fn small_overflow_is_drained_and_connection_kept() {
    let rx = http_receiver(handler(|hit| match hit.target.as_str() {
        "/exact" => respond(200, "0123456789abcdef"),
        _ => respond(200, "0123456789abcdefXYZW"),
    }))
    .await;
    let mut cfg = config(local_policy(true));
    cfg.body_cap = 16;
    let sender = Sender::new(cfg).unwrap();

    let over = sender.send(post(rx.http_url("/over"))).await;
    assert_eq!(over.response_body, "0123456789abcdef", "{over:?}");
    assert!(over.response_truncated);

    // The overflow (≤ cap) was read to the end, so the connection went back to the pool.
    let exact = sender.send(post(rx.http_url("/exact"))).await;
    assert_eq!(exact.response_body, "0123456789abcdef");
    assert!(!exact.response_truncated);
    assert!(exact.reused_connection, "{exact:?}");
    assert_eq!(rx.connection_count(), 1);
}

#[tokio::test]
async fn body_cut_inside_a_character_drops_the_partial_character() {
    let rx = http_receiver(handler(|_| respond(200, "ééééé"))).await;
    let mut cfg = config(local_policy(true));
    cfg.body_cap = 5;
    let sender = Sender::new(cfg).unwrap();
    let r = sender.send(post(rx.http_url("/"))).await;
    assert_eq!(r.response_body, "éé", "{r:?}");
    assert!(r.response_truncated);
}

#[test]
fn lossy_utf8_handles_cuts_and_invalid_bytes() {
    assert_eq!(lossy_utf8("aé".as_bytes(), false), "aé");
    assert_eq!(lossy_utf8(&"aé".as_bytes()[..2], true), "a");
    assert_eq!(lossy_utf8(&"a€".as_bytes()[..3], true), "a");
    assert_eq!(lossy_utf8(&"a😀".as_bytes()[..4], true), "a");
    assert_eq!(lossy_utf8("a😀".as_bytes(), true), "a😀");
    assert_eq!(lossy_utf8(b"a\xffb", false), "a\u{fffd}b");
    assert_eq!(lossy_utf8(&"aé".as_bytes()[..2], false), "a\u{fffd}");
    assert_eq!(lossy_utf8(b"", true), "");
    assert_eq!(lossy_utf8(b"\x80\x80\x80\x80", true), "\u{fffd}".repeat(4));
}

#[tokio::test]
async fn response_headers_are_bounded() {
    let rx = http_receiver(handler(|_| {
        let mut r = respond(200, "ok");
        let h = r.headers_mut();
        h.insert("x-long", "v".repeat(2000).parse().unwrap());
        h.insert(
            "x-binary",
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        for i in 0..60 {
            h.insert(
                http::HeaderName::from_bytes(format!("x-many-{i}").as_bytes()).unwrap(),
                http::HeaderValue::from_static("1"),
            );
        }
        r
    }))
    .await;
    let sender = Sender::new(config(local_policy(true))).unwrap();
    let r = sender.send(post(rx.http_url("/"))).await;
    assert_eq!(r.status_code, Some(200), "{r:?}");
    assert_eq!(r.response_headers.len(), MAX_RESPONSE_HEADERS);
    assert!(r.response_headers.iter().all(|(_, v)| v.len() <= 1024));
    assert_eq!(header(&r, "x-long").map(str::len), Some(1024));
    assert_eq!(header(&r, "x-binary"), Some("caf\u{fffd}"));
}

// ---- Retry-After --------------------------------------------------------------------

#[tokio::test]
async fn retry_after_is_parsed() {
    let rx = http_receiver(handler(|hit| {
        let mut r = respond(if hit.target == "/date" { 503 } else { 429 }, "slow down");
        let value = match hit.target.as_str() {
            "/seconds" => "7".to_string(),
            "/date" => (Utc::now() + chrono::Duration::seconds(120))
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
            "/past" => "Sun, 06 Nov 1994 08:49:37 GMT".to_string(),
            _ => return r,
        };
        r.headers_mut()
            .insert("retry-after", value.parse().unwrap());
        r
    }))
    .await;
    let sender = Sender::new(config(local_policy(true))).unwrap();

    let r = sender.send(post(rx.http_url("/seconds"))).await;
    assert_eq!(r.status_code, Some(429));
    assert_eq!(r.retry_after, Some(Duration::from_secs(7)));

    let r = sender.send(post(rx.http_url("/date"))).await;
    assert_eq!(r.status_code, Some(503));
    let d = r.retry_after.expect("HTTP-date parsed");
    assert!(
        d >= Duration::from_secs(100) && d <= Duration::from_secs(121),
        "{d:?}"
    );

    let r = sender.send(post(rx.http_url("/past"))).await;
    assert_eq!(r.retry_after, Some(Duration::ZERO));

    let r = sender.send(post(rx.http_url("/none"))).await;
    assert_eq!(r.retry_after, None);
}

#[test]
fn retry_after_forms() {
    let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 30).unwrap();
    let s = Duration::from_secs;
    let table: &[(&str, Option<Duration>)] = &[
        ("7", Some(s(7))),
        ("  120 ", Some(s(120))),
        ("0", Some(s(0))),
        ("99999999999999999999999", Some(s(u64::MAX))),
        ("-1", None),
        ("1.5", None),
        ("", None),
        ("soon", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT", Some(s(7))),
        ("Sunday, 06-Nov-94 08:49:37 GMT", Some(s(7))),
        ("Sun Nov  6 08:49:37 1994", Some(s(7))),
        ("Sun, 06 Nov 1994 08:49:00 GMT", Some(s(0))),
        ("Sun, 06 Nov 1994 09:49:30 GMT", Some(s(3600))),
    ];
    for (value, want) in table {
        assert_eq!(parse_retry_after(value, now), *want, "{value:?}");
    }
}

#[test]
fn error_kind_strings() {
    let all = [
        (ErrorKind::InvalidUrl, "invalid_url"),
        (ErrorKind::BlockedDestination, "blocked_destination"),
        (ErrorKind::Dns, "dns"),
        (ErrorKind::Connect, "connect"),
        (ErrorKind::Tls, "tls"),
        (ErrorKind::Timeout, "timeout"),
        (ErrorKind::Protocol, "protocol"),
    ];
    for (kind, s) in all {
        assert_eq!(kind.as_str(), s);
        assert_eq!(kind.to_string(), s);
    }
}

// ---- SSRF: URL level -------------------------------------------------------------

#[tokio::test]
async fn blocked_literal_and_names() {
    let resolver = StubResolver::always(&["93.184.216.34"]);
    let dialer = RecordingDialer::new();
    let with_http = UrlPolicy {
        allow_http: true,
        allow_targets: Vec::new(),
    };
    let sender = Sender::with_parts(config(with_http), resolver.clone(), dialer.clone()).unwrap();
    let https_only = Sender::with_parts(
        config(UrlPolicy::default()),
        resolver.clone(),
        dialer.clone(),
    )
    .unwrap();

    use ErrorKind::*;
    let cases: &[(&Sender, &str, ErrorKind)] = &[
        (&sender, "https://10.0.0.1/", BlockedDestination),
        (
            &sender,
            "http://169.254.169.254/latest/meta-data/",
            BlockedDestination,
        ),
        (&sender, "https://[::ffff:127.0.0.1]/", BlockedDestination),
        (&sender, "https://[fd00:ec2::254]/", BlockedDestination),
        (&sender, "https://2130706433/", BlockedDestination),
        (&sender, "https://0x7f.1/", BlockedDestination),
        (&sender, "https://localhost/", BlockedDestination),
        (
            &sender,
            "https://metadata.google.internal/",
            BlockedDestination,
        ),
        (&sender, "https://intranet/", BlockedDestination),
        (&https_only, "http://169.254.169.254/", InvalidUrl),
        (&https_only, "http://hooks.example.com/", InvalidUrl),
        (&sender, "ftp://hooks.example.com/", InvalidUrl),
        (&sender, "https://user:pw@hooks.example.com/", InvalidUrl),
        (&sender, "https://hooks.example.com/#frag", InvalidUrl),
        (&sender, "not a url", InvalidUrl),
        (&sender, "", InvalidUrl),
    ];
    for (s, url, want) in cases {
        let r = s.send(post(url.to_string())).await;
        assert_eq!(error_kind(&r), Some(*want), "{url}: {r:?}");
        assert_eq!(r.status_code, None);
    }
    assert_eq!(resolver.calls(), 0, "nothing was resolved");
    assert!(dialer.dialed().is_empty(), "nothing was dialled");
}

#[tokio::test]
async fn send_to_public_name_dials_only_the_checked_answer() {
    let resolver = StubResolver::always(&["10.0.0.1", "93.184.216.34"]);
    let dialer = RecordingDialer::new();
    let sender = Sender::with_parts(
        config(UrlPolicy::default()),
        resolver.clone(),
        dialer.clone(),
    )
    .unwrap();
    let r = sender
        .send(post("https://hooks.example.com/x".into()))
        .await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Connect), "{r:?}");
    assert!(r.error.as_ref().unwrap().1.contains("recording dialer"));
    assert!(r.timings.dns_ms.is_some());
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);
    assert_eq!(resolver.calls(), 1);
}

#[tokio::test]
async fn send_to_name_resolving_only_to_private_addresses_is_blocked() {
    let resolver = StubResolver::always(&["10.0.0.1", "169.254.169.254"]);
    let dialer = RecordingDialer::new();
    let sender =
        Sender::with_parts(config(UrlPolicy::default()), resolver, dialer.clone()).unwrap();
    let r = sender.send(post("https://hooks.example.com/".into())).await;
    assert_eq!(error_kind(&r), Some(ErrorKind::BlockedDestination), "{r:?}");
    let message = &r.error.as_ref().unwrap().1;
    assert!(message.contains("10.0.0.1"), "{message}");
    assert!(message.contains("private network address"), "{message}");
    assert!(dialer.dialed().is_empty());
}

#[tokio::test]
async fn send_resolves_once_per_attempt_defeating_rebinding() {
    let resolver = StubResolver::new(vec![
        Some(addrs(&["93.184.216.34"])),
        Some(addrs(&["127.0.0.1"])),
    ]);
    let dialer = RecordingDialer::new();
    let sender = Sender::with_parts(
        config(UrlPolicy::default()),
        resolver.clone(),
        dialer.clone(),
    )
    .unwrap();
    let r = sender
        .send(post("https://rebind.example.com/".into()))
        .await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Connect), "{r:?}");
    assert_eq!(resolver.calls(), 1);
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);

    // The next attempt resolves again and gets the rebound answer, which is refused.
    let r = sender
        .send(post("https://rebind.example.com/".into()))
        .await;
    assert_eq!(error_kind(&r), Some(ErrorKind::BlockedDestination), "{r:?}");
    assert_eq!(resolver.calls(), 2);
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);
}

// ---- SSRF: connector level ---------------------------------------------------------

#[tokio::test]
async fn connector_dials_exactly_the_public_answer() {
    let resolver = StubResolver::always(&["93.184.216.34"]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver.clone(), dialer.clone());
    let e = connect_err(&mut c, "https://hooks.example.com:8443/x").await;
    assert_eq!(e.kind, ErrorKind::Connect, "{e:?}");
    assert!(e.message.contains("recording dialer: not dialing"), "{e:?}");
    assert!(e.dns_ms.is_some() && e.connect_ms.is_some());
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:8443")]);
    assert_eq!(
        *resolver.questions.lock().unwrap(),
        [("hooks.example.com".to_string(), 8443)]
    );
}

#[tokio::test]
async fn connector_refuses_private_only_answer() {
    let resolver = StubResolver::always(&["10.0.0.1", "192.168.1.10", "::1"]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver, dialer.clone());
    let e = connect_err(&mut c, "https://hooks.example.com/").await;
    assert_eq!(e.kind, ErrorKind::BlockedDestination, "{e:?}");
    assert!(e.message.contains("hooks.example.com"), "{e:?}");
    assert!(e.dns_ms.is_some());
    assert!(dialer.dialed().is_empty());
}

#[tokio::test]
async fn connector_dials_only_the_allowed_part_of_a_mixed_answer() {
    let resolver = StubResolver::always(&["10.0.0.1", "93.184.216.34"]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver, dialer.clone());
    let e = connect_err(&mut c, "https://hooks.example.com/").await;
    assert_eq!(e.kind, ErrorKind::Connect, "{e:?}");
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);
}

#[tokio::test]
async fn connector_tries_allowed_addresses_in_order() {
    let resolver = StubResolver::always(&[
        "2606:2800:220:1:248:1893:25c8:1946",
        "127.0.0.1",
        "93.184.216.34",
    ]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver, dialer.clone());
    let e = connect_err(&mut c, "https://hooks.example.com/").await;
    assert_eq!(e.kind, ErrorKind::Connect, "{e:?}");
    assert!(e.message.contains("2 addresses"), "{e:?}");
    assert_eq!(
        dialer.dialed(),
        [
            sa("[2606:2800:220:1:248:1893:25c8:1946]:443"),
            sa("93.184.216.34:443")
        ]
    );
}

#[tokio::test]
async fn connector_resolves_once_per_connection_defeating_rebinding() {
    let resolver = StubResolver::new(vec![
        Some(addrs(&["93.184.216.34"])),
        Some(addrs(&["127.0.0.1"])),
    ]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver.clone(), dialer.clone());

    let e = connect_err(&mut c, "https://rebind.example.com/").await;
    assert_eq!(e.kind, ErrorKind::Connect, "{e:?}");
    assert_eq!(resolver.calls(), 1);
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);

    let e = connect_err(&mut c, "https://rebind.example.com/").await;
    assert_eq!(e.kind, ErrorKind::BlockedDestination, "{e:?}");
    assert_eq!(resolver.calls(), 2);
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);
}

#[tokio::test]
async fn connector_refuses_ipv4_mapped_and_nat64_answers() {
    for answer in [
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "::ffff:127.0.0.1",
        "::169.254.169.254",
    ] {
        let dialer = RecordingDialer::new();
        let mut c = connector(
            UrlPolicy::default(),
            StubResolver::always(&[answer]),
            dialer.clone(),
        );
        let e = connect_err(&mut c, "https://hooks.example.com/").await;
        assert_eq!(e.kind, ErrorKind::BlockedDestination, "{answer}: {e:?}");
        assert!(dialer.dialed().is_empty(), "{answer}");
    }
}

#[tokio::test]
async fn connector_dials_the_url_port_not_the_answer_port() {
    let http_policy = UrlPolicy {
        allow_http: true,
        allow_targets: Vec::new(),
    };
    let cases = [
        ("https://hooks.example.com:8443/", "93.184.216.34:8443"),
        ("https://hooks.example.com/", "93.184.216.34:443"),
        ("http://hooks.example.com/", "93.184.216.34:80"),
        ("http://hooks.example.com:8080/", "93.184.216.34:8080"),
    ];
    for (uri, want) in cases {
        let dialer = RecordingDialer::new();
        let mut c = connector(
            http_policy.clone(),
            StubResolver::always(&["93.184.216.34:9999"]),
            dialer.clone(),
        );
        let e = connect_err(&mut c, uri).await;
        assert_eq!(e.kind, ErrorKind::Connect, "{uri}: {e:?}");
        assert_eq!(dialer.dialed(), [sa(want)], "{uri}");
    }
}

#[tokio::test]
async fn connector_ip_literals_skip_resolution_but_not_the_policy() {
    let resolver = StubResolver::always(&["93.184.216.34"]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver.clone(), dialer.clone());

    let e = connect_err(&mut c, "https://93.184.216.34/").await;
    assert_eq!(e.kind, ErrorKind::Connect, "{e:?}");
    assert_eq!(e.dns_ms, None);

    // Literals the URL check would have caught are refused by the connector as well.
    for uri in [
        "https://10.0.0.1/",
        "https://127.0.0.1:8080/",
        "https://[::1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[64:ff9b::a9fe:a9fe]/",
    ] {
        let e = connect_err(&mut c, uri).await;
        assert_eq!(e.kind, ErrorKind::BlockedDestination, "{uri}: {e:?}");
    }
    assert_eq!(resolver.calls(), 0);
    assert_eq!(dialer.dialed(), [sa("93.184.216.34:443")]);
}

#[tokio::test]
async fn connector_dns_failures_are_dns_errors() {
    for resolver in [
        StubResolver::new(vec![None]),
        StubResolver::new(vec![Some(vec![])]),
    ] {
        let dialer = RecordingDialer::new();
        let mut c = connector(UrlPolicy::default(), resolver.clone(), dialer.clone());
        let e = connect_err(&mut c, "https://nxdomain.example.com/").await;
        assert_eq!(e.kind, ErrorKind::Dns, "{e:?}");
        assert!(e.message.contains("nxdomain.example.com"), "{e:?}");
        assert_eq!(resolver.calls(), 1);
        assert!(dialer.dialed().is_empty());
    }
}

#[tokio::test]
async fn connector_refuses_plain_http_unless_allowed() {
    let resolver = StubResolver::always(&["93.184.216.34"]);
    let dialer = RecordingDialer::new();
    let mut c = connector(UrlPolicy::default(), resolver.clone(), dialer.clone());
    let e = connect_err(&mut c, "http://hooks.example.com/").await;
    assert_eq!(e.kind, ErrorKind::InvalidUrl, "{e:?}");
    assert_eq!(resolver.calls(), 0);
    assert!(dialer.dialed().is_empty());
}

#[tokio::test]
async fn dns_error_through_sender_is_reported_as_dns() {
    let dialer = RecordingDialer::new();
    let sender = Sender::with_parts(
        config(UrlPolicy::default()),
        StubResolver::new(vec![None]),
        dialer.clone(),
    )
    .unwrap();
    let r = sender
        .send(post("https://nxdomain.example.com/".into()))
        .await;
    assert_eq!(error_kind(&r), Some(ErrorKind::Dns), "{r:?}");
    assert!(r.timings.dns_ms.is_some());
    assert!(dialer.dialed().is_empty());
}

#[tokio::test]
async fn connector_gives_up_after_the_attempt_timeout() {
    let dialer = RecordingDialer::new();
    let mut c = connector_with_timeout(
        UrlPolicy::default(),
        StubResolver::hanging(),
        dialer.clone(),
        Duration::from_millis(100),
    );
    let started = Instant::now();
    let e = connect_err(&mut c, "https://slow-dns.example.com/").await;
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(dialer.dialed().is_empty());
}
