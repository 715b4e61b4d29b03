//! A complete Hookline webhook receiver on the standard library alone: it listens with
//! `std::net::TcpListener`, reads one HTTP/1.1 request per connection, verifies it with
//! `hookline-verify` (the Standard Webhooks signature and its timestamp; a request carrying only
//! `X-Webhook-Signature` is refused, as it could be a replay), prints one line per delivery and
//! answers 200, or 401 when the signature doesn't verify.
//!
//! ```sh
//! cargo run -p hookline-verify --example receiver -- 127.0.0.1:9000 "$SECRET"
//! # or: WEBHOOK_SECRET=whsec_… cargo run -p hookline-verify --example receiver -- 127.0.0.1:9000
//! ```
//!
//! In a real service use your HTTP framework; the part that matters is `handle`: verify the raw
//! body bytes before anything else, answer 401 to a bad signature, and deduplicate on the delivery
//! id, since delivery is at least once.

use hookline_verify::{unix_now, verify_request, Scheme};
use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Largest body accepted (Hookline bodies are far smaller).
const MAX_BODY: usize = 1 << 20;

struct Request {
    method: String,
    path: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads one request: request line, headers up to the blank line, `Content-Length` bytes of body.
fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream.take(64 * 1024 + MAX_BODY as u64));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid("bad request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed in the headers"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (name, value) = l
            .split_once(':')
            .ok_or_else(|| invalid("bad header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        if headers.len() > 100 {
            return Err(invalid("too many headers"));
        }
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let length: usize = req
        .header("content-length")
        .ok_or_else(|| invalid("no Content-Length"))?
        .parse()
        .map_err(|_| invalid("bad Content-Length"))?;
    if length > MAX_BODY {
        return Err(invalid("body too large"));
    }
    req.body = vec![0; length];
    reader.read_exact(&mut req.body)?;
    Ok(req)
}

/// The receiver's logic: verify, deduplicate, process. Returns the status to answer.
fn handle(secret: &str, seen: &mut HashSet<String>, req: &Request) -> (u16, &'static str) {
    if req.method != "POST" {
        return (405, "POST only");
    }
    let scheme = match verify_request(secret, |name| req.header(name), &req.body, unix_now()) {
        Ok(scheme) => scheme,
        Err(e) => {
            println!("REJECTED {} {}: {e}", req.method, req.path);
            return (401, "invalid signature");
        }
    };
    // The delivery id: `webhook-id`, or `X-{Brand}-Delivery-ID` (the same value).
    let delivery_id = req
        .header("webhook-id")
        .or_else(|| {
            req.headers
                .iter()
                .find(|(k, _)| k.starts_with("x-") && k.ends_with("-delivery-id"))
                .map(|(_, v)| v.as_str())
        })
        .unwrap_or("-")
        .to_string();
    let event = req.header("x-webhook-event").unwrap_or("?");
    let scheme = match scheme {
        Scheme::StandardWebhooks => "standard-webhooks",
        Scheme::Hex => "x-webhook-signature",
    };
    if delivery_id != "-" && !seen.insert(delivery_id.clone()) {
        println!("duplicate {event} delivery={delivery_id} (already processed)");
        return (200, "duplicate");
    }
    println!(
        "{event} delivery={delivery_id} verified-by={scheme} bytes={} body={}",
        req.body.len(),
        String::from_utf8_lossy(&req.body)
    );
    (200, "ok")
}

fn serve(stream: TcpStream, secret: &str, seen: &mut HashSet<String>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (status, text) = match read_request(&stream) {
        Ok(req) => handle(secret, seen, &req),
        Err(e) => {
            eprintln!("bad request: {e}");
            (400, "bad request")
        }
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let secret = args
        .next()
        .or_else(|| std::env::var("WEBHOOK_SECRET").ok())
        .unwrap_or_else(|| {
            eprintln!("usage: receiver [ADDR] SECRET   (or set WEBHOOK_SECRET)");
            std::process::exit(2);
        });
    let listener = TcpListener::bind(&addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut seen = HashSet::new();
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(e) = serve(s, &secret, &mut seen) {
                    eprintln!("connection error: {e}");
                }
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
    Ok(())
}
