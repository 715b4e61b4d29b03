use super::*;
use std::net::SocketAddrV6;
use BlockReason::*;

// ---- helpers ----------------------------------------------------------

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test IP {s:?}: {e}"))
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test IPv4 {s:?}: {e}"))
}

fn sock(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test socket address {s:?}: {e}"))
}

fn policy(allow_http: bool, targets: &[&str]) -> UrlPolicy {
    UrlPolicy {
        allow_http,
        allow_targets: targets
            .iter()
            .map(|t| IpCidr::parse(t).unwrap_or_else(|e| panic!("bad test CIDR {t:?}: {e}")))
            .collect(),
    }
}

/// Collects failures so one run reports every broken row, not just the
/// first; panics at the end with all of them.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} failing case(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

/// Compact, comparable description of a parse outcome.
fn outcome(r: &Result<WebhookUrl, UrlError>) -> String {
    match r {
        Ok(u) => format!("ok:{}", u.as_str()),
        Err(UrlError::Empty) => "empty".into(),
        Err(UrlError::TooLong { .. }) => "too-long".into(),
        Err(UrlError::Unparseable(_)) => "unparseable".into(),
        Err(UrlError::SchemeNotAllowed { scheme, .. }) => format!("scheme:{scheme}"),
        Err(UrlError::UserinfoNotAllowed) => "userinfo".into(),
        Err(UrlError::FragmentNotAllowed) => "fragment".into(),
        Err(UrlError::MissingHost) => "no-host".into(),
        Err(UrlError::BlockedAddress { refusal, .. }) => format!("addr:{:?}", refusal.reason),
        Err(UrlError::ControlCharacter { .. }) => "control".into(),
        Err(UrlError::Whitespace { .. }) => "whitespace".into(),
        Err(UrlError::Malformed(_)) => "malformed".into(),
        Err(UrlError::NonCanonicalIp { .. }) => "noncanonical".into(),
        Err(UrlError::HostTooLong { .. }) => "host-too-long".into(),
        Err(UrlError::LabelTooLong { .. }) => "label-too-long".into(),
        Err(UrlError::BlockedHostname { reason, .. }) => format!("host:{reason}"),
        Err(UrlError::InvalidPort) => "port".into(),
    }
}

fn want_for(reason: Option<BlockReason>) -> String {
    match reason {
        None => "ok".into(),
        Some(r) => format!("addr:{r:?}"),
    }
}

/// `want` is either an exact outcome string, or `"ok"` meaning any success.
fn check_url(f: &mut Failures, name: &str, p: &UrlPolicy, input: &str, want: &str) {
    let got = outcome(&WebhookUrl::parse(input, p));
    let ok = if want == "ok" {
        got.starts_with("ok:")
    } else {
        got == want
    };
    f.check(ok, || format!("[{name}] {input:?}: want {want}, got {got}"));
}

fn run_urls(name: &str, p: &UrlPolicy, table: &[(&str, &str)]) {
    let mut f = Failures::default();
    for (input, want) in table {
        check_url(&mut f, name, p, input, want);
    }
    f.finish();
}

// Suffix reasons, spelled out once for the tables.
const H_LOCALHOST: &str = "host:localhost";
const H_SINGLE: &str = "host:single-label hostname";
const H_EMPTY: &str = "host:empty label in hostname";

// ---- classification tables -------------------------------------------

/// Every IPv4 deny range at first, middle and last address, plus the
/// neighbours just outside, plus well-known public addresses.
#[rustfmt::skip]
const V4_CASES: &[(&str, Option<BlockReason>)] = &[
    // 0.0.0.0/8
    ("0.0.0.0", Some(Unspecified)),
    ("0.0.0.1", Some(Unspecified)),
    ("0.128.0.0", Some(Unspecified)),
    ("0.255.255.255", Some(Unspecified)),
    ("1.0.0.0", None),
    // 10/8
    ("9.255.255.255", None),
    ("10.0.0.0", Some(Private)),
    ("10.0.0.1", Some(Private)),
    ("10.128.0.0", Some(Private)),
    ("10.255.255.255", Some(Private)),
    ("11.0.0.0", None),
    // 100.64/10
    ("100.63.255.255", None),
    ("100.64.0.0", Some(SharedAddressSpace)),
    ("100.100.100.100", Some(SharedAddressSpace)),
    ("100.127.255.255", Some(SharedAddressSpace)),
    ("100.128.0.0", None),
    // 127/8
    ("126.255.255.255", None),
    ("127.0.0.0", Some(Loopback)),
    ("127.0.0.1", Some(Loopback)),
    ("127.0.0.2", Some(Loopback)),
    ("127.127.127.127", Some(Loopback)),
    ("127.255.255.255", Some(Loopback)),
    ("128.0.0.0", None),
    // 169.254/16
    ("169.253.255.255", None),
    ("169.254.0.0", Some(LinkLocal)),
    ("169.254.169.254", Some(CloudPlatform)),
    ("169.254.169.252", Some(LinkLocal)),
    ("169.254.169.253", Some(CloudPlatform)),
    ("169.254.169.123", Some(CloudPlatform)),
    ("169.254.170.2", Some(CloudPlatform)),
    ("169.254.0.23", Some(CloudPlatform)),
    ("169.254.255.255", Some(LinkLocal)),
    ("169.255.0.0", None),
    // 172.16/12
    ("172.15.255.255", None),
    ("172.16.0.0", Some(Private)),
    ("172.24.0.1", Some(Private)),
    ("172.31.255.255", Some(Private)),
    ("172.32.0.0", None),
    // 192.0.0/24
    ("191.255.255.255", None),
    ("192.0.0.0", Some(SpecialPurpose)),
    ("192.0.0.7", Some(SpecialPurpose)),
    ("192.0.0.8", Some(SpecialPurpose)),
    ("192.0.0.9", Some(SpecialPurpose)),
    ("192.0.0.10", Some(SpecialPurpose)),
    ("192.0.0.170", Some(SpecialPurpose)),
    ("192.0.0.171", Some(SpecialPurpose)),
    ("192.0.0.192", Some(CloudPlatform)),
    ("192.0.0.255", Some(SpecialPurpose)),
    ("192.0.1.0", None),
    // 192.0.2/24
    ("192.0.1.255", None),
    ("192.0.2.0", Some(Documentation)),
    ("192.0.2.128", Some(Documentation)),
    ("192.0.2.255", Some(Documentation)),
    ("192.0.3.0", None),
    // 192.31.196/24 (AS112-v4)
    ("192.31.195.255", None),
    ("192.31.196.0", Some(SpecialPurpose)),
    ("192.31.196.1", Some(SpecialPurpose)),
    ("192.31.196.255", Some(SpecialPurpose)),
    ("192.31.197.0", None),
    // 192.52.193/24 (AMT)
    ("192.52.192.255", None),
    ("192.52.193.0", Some(SpecialPurpose)),
    ("192.52.193.1", Some(SpecialPurpose)),
    ("192.52.193.255", Some(SpecialPurpose)),
    ("192.52.194.0", None),
    // 192.175.48/24 (direct delegation AS112)
    ("192.175.47.255", None),
    ("192.175.48.0", Some(SpecialPurpose)),
    ("192.175.48.6", Some(SpecialPurpose)),
    ("192.175.48.255", Some(SpecialPurpose)),
    ("192.175.49.0", None),
    // cloud platforms: public, but internal to the platform
    ("168.63.129.15", None),
    ("168.63.129.16", Some(CloudPlatform)),
    ("168.63.129.17", None),
    ("100.100.100.200", Some(CloudPlatform)),
    ("100.100.100.201", Some(SharedAddressSpace)),
    // 192.88.99/24
    ("192.88.98.255", None),
    ("192.88.99.0", Some(SpecialPurpose)),
    ("192.88.99.1", Some(SpecialPurpose)),
    ("192.88.99.255", Some(SpecialPurpose)),
    ("192.88.100.0", None),
    // 192.168/16
    ("192.167.255.255", None),
    ("192.168.0.0", Some(Private)),
    ("192.168.1.1", Some(Private)),
    ("192.168.255.255", Some(Private)),
    ("192.169.0.0", None),
    // 198.18/15
    ("198.17.255.255", None),
    ("198.18.0.0", Some(Benchmarking)),
    ("198.18.255.255", Some(Benchmarking)),
    ("198.19.0.0", Some(Benchmarking)),
    ("198.19.255.255", Some(Benchmarking)),
    ("198.20.0.0", None),
    // 198.51.100/24
    ("198.51.99.255", None),
    ("198.51.100.0", Some(Documentation)),
    ("198.51.100.50", Some(Documentation)),
    ("198.51.100.255", Some(Documentation)),
    ("198.51.101.0", None),
    // 203.0.113/24
    ("203.0.112.255", None),
    ("203.0.113.0", Some(Documentation)),
    ("203.0.113.7", Some(Documentation)),
    ("203.0.113.255", Some(Documentation)),
    ("203.0.114.0", None),
    // 224/4
    ("223.255.255.255", None),
    ("224.0.0.0", Some(Multicast)),
    ("224.0.0.251", Some(Multicast)),
    ("232.1.2.3", Some(Multicast)),
    ("239.255.255.255", Some(Multicast)),
    // 240/4 and broadcast
    ("240.0.0.0", Some(Reserved)),
    ("250.1.2.3", Some(Reserved)),
    ("255.255.255.254", Some(Reserved)),
    ("255.255.255.255", Some(Broadcast)),
    // public
    ("1.1.1.1", None),
    ("8.8.8.8", None),
    ("8.8.4.4", None),
    ("9.9.9.9", None),
    ("93.184.216.34", None),
    ("100.0.0.1", None),
    ("104.16.0.1", None),
    ("151.101.1.1", None),
    ("169.0.0.1", None),
    ("172.217.0.1", None),
    ("185.199.108.153", None),
    ("192.0.32.10", None),
    ("223.5.5.5", None),
];

#[rustfmt::skip]
const V6_CASES: &[(&str, Option<BlockReason>)] = &[
    ("::", Some(Unspecified)),
    ("0:0:0:0:0:0:0:0", Some(Unspecified)),
    ("::1", Some(Loopback)),
    ("0:0:0:0:0:0:0:1", Some(Loopback)),
    // IPv4-mapped: inner reason
    ("::ffff:0:0", Some(Unspecified)),
    ("::ffff:127.0.0.1", Some(Loopback)),
    ("::ffff:7f00:1", Some(Loopback)),
    ("::ffff:10.0.0.1", Some(Private)),
    ("::ffff:169.254.169.254", Some(CloudPlatform)),
    ("::ffff:169.254.1.1", Some(LinkLocal)),
    ("::ffff:168.63.129.16", Some(CloudPlatform)),
    ("::ffff:192.31.196.1", Some(SpecialPurpose)),
    ("::ffff:100.64.0.1", Some(SharedAddressSpace)),
    ("::ffff:ffff:ffff", Some(Broadcast)),
    ("::ffff:8.8.8.8", None),
    ("::ffff:1.1.1.1", None),
    // IPv4-compatible (deprecated): refused whatever it embeds
    ("::2", Some(Reserved)),
    ("::127.0.0.1", Some(Reserved)),
    ("::10.0.0.1", Some(Reserved)),
    ("::255.255.255.255", Some(Reserved)),
    ("::8.8.8.8", Some(Reserved)),
    ("::1.1.1.1", Some(Reserved)),
    // NAT64 well-known prefix
    ("64:ff9b::", Some(Ipv4Translated)),
    ("64:ff9b::7f00:1", Some(Ipv4Translated)),
    ("64:ff9b::a9fe:a9fe", Some(Ipv4Translated)),
    ("64:ff9b::a00:1", Some(Ipv4Translated)),
    ("64:ff9b::ffff:ffff", Some(Ipv4Translated)),
    ("64:ff9b::a83f:8110", Some(Ipv4Translated)),
    ("64:ff9b::c01f:c401", Some(Ipv4Translated)),
    ("64:ff9b::808:808", None),
    ("64:ff9b::1.1.1.1", None),
    // local-use NAT64: refused outright
    ("64:ff9b:1::", Some(SpecialPurpose)),
    ("64:ff9b:1::808:808", Some(SpecialPurpose)),
    ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Some(SpecialPurpose)),
    ("64:ff9b:2::", Some(Reserved)),
    ("64:ff9b:0:0:0:1::", Some(Reserved)),
    // discard
    ("100::", Some(SpecialPurpose)),
    ("100::ffff:ffff:ffff:ffff", Some(SpecialPurpose)),
    ("100:0:0:1::", Some(SpecialPurpose)),
    ("100:0:0:1:ffff:ffff:ffff:ffff", Some(SpecialPurpose)),
    ("100:0:0:2::", Some(Reserved)),
    // 2001::/23
    ("2001::", Some(SpecialPurpose)),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(SpecialPurpose)),
    ("2001:1::1", Some(SpecialPurpose)),
    ("2001:2::", Some(Benchmarking)),
    ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Some(Benchmarking)),
    ("2001:2:1::", Some(SpecialPurpose)),
    ("2001:3::", Some(SpecialPurpose)),
    ("2001:1::2", Some(SpecialPurpose)),
    ("2001:1::3", Some(SpecialPurpose)),
    ("2001:4:112::", Some(SpecialPurpose)),
    ("2001:4:112:ffff::1", Some(SpecialPurpose)),
    ("2001:30::1", Some(SpecialPurpose)),
    ("2001:10::1", Some(SpecialPurpose)),
    ("2001:20::1", Some(SpecialPurpose)),
    ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SpecialPurpose)),
    ("2001:200::", None),
    // 2001:db8::/32
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:db8::", Some(Documentation)),
    ("2001:db8:85a3::8a2e:370:7334", Some(Documentation)),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some(Documentation)),
    ("2001:db9::", None),
    // 6to4
    ("2002::", Some(SpecialPurpose)),
    ("2002:7f00:1::", Some(SpecialPurpose)),
    ("2002:a9fe:a9fe::1", Some(SpecialPurpose)),
    ("2002:a00:1::", Some(SpecialPurpose)),
    ("2002:c0a8:101::", Some(SpecialPurpose)),
    ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SpecialPurpose)),
    // 6to4 is refused whatever it embeds: anyone may run a relay
    ("2002:808:808::", Some(SpecialPurpose)),
    ("2002:101:101::1", Some(SpecialPurpose)),
    ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2003::", None),
    // 3fff::/20
    ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("3fff::", Some(Documentation)),
    ("3fff:800::1", Some(Documentation)),
    ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Documentation)),
    ("3fff:1000::", None),
    ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    // ULA
    ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("fc00::", Some(UniqueLocal)),
    ("fd00:ec2::254", Some(CloudPlatform)),
    ("fd00:ec2::253", Some(CloudPlatform)),
    ("fd00:ec2::123", Some(CloudPlatform)),
    ("fd00:ec2::255", Some(UniqueLocal)),
    ("fd20:ce::254", Some(CloudPlatform)),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(UniqueLocal)),
    ("fe00::", Some(Reserved)),
    // link-local, site-local
    ("fe80::", Some(LinkLocal)),
    ("fe80::1", Some(LinkLocal)),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
    ("fec0::", Some(Reserved)),
    ("fec0::1", Some(Reserved)),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    // multicast
    ("ff00::", Some(Multicast)),
    ("ff02::1", Some(Multicast)),
    ("ff05::2", Some(Multicast)),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
    // 2000::/3 boundaries and outside
    ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("2000::", None),
    ("4000::", Some(Reserved)),
    ("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("5f00::1", Some(SpecialPurpose)),
    ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SpecialPurpose)),
    ("5f01::", Some(Reserved)),
    // direct delegation AS112 (2620:4f:8000::/48) inside global unicast
    ("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", None),
    ("2620:4f:8000::", Some(SpecialPurpose)),
    ("2620:4f:8000::42", Some(SpecialPurpose)),
    ("2620:4f:8001::", None),
    ("8000::", Some(Reserved)),
    ("e000::", Some(Reserved)),
    ("::ffff:0:0:0", Some(Reserved)),
    ("::1:0:0:0", Some(Reserved)),
    ("0:0:0:1::", Some(Reserved)),
    // public
    ("2606:4700::1111", None),
    ("2606:4700:4700::1111", None),
    ("2001:4860:4860::8888", None),
    ("2a00:1450:4001:81a::200e", None),
    ("2620:fe::fe", None),
];

#[test]
fn classify_ipv4_table() {
    let mut f = Failures::default();
    for &(addr, want) in V4_CASES {
        let got = classify_ip(ip(addr));
        f.check(got == want, || {
            format!("{addr}: want {want:?}, got {got:?}")
        });
    }
    f.finish();
}

#[test]
fn classify_ipv6_table() {
    let mut f = Failures::default();
    for &(addr, want) in V6_CASES {
        let got = classify_ip(ip(addr));
        f.check(got == want, || {
            format!("{addr}: want {want:?}, got {got:?}")
        });
    }
    f.finish();
}

/// Every IPv4 row, re-checked through each embedding form, so that a new
/// IPv4 row automatically tests the IPv6 unwrapping too: mapped and NAT64
/// forms follow the inner address; IPv4-compatible, 6to4 and Teredo forms are
/// refused whatever they embed.
#[test]
fn embedded_ipv4_forms_follow_the_inner_address() {
    let mut f = Failures::default();
    for &(addr, inner) in V4_CASES {
        let o = v4(addr).octets();
        let hi = u16::from_be_bytes([o[0], o[1]]);
        let lo = u16::from_be_bytes([o[2], o[3]]);
        let translated = inner.map(|_| Ipv4Translated);
        let compat_want = match addr {
            "0.0.0.0" => Some(Unspecified),
            "0.0.0.1" => Some(Loopback),
            _ => Some(Reserved),
        };
        let forms = [
            (format!("::ffff:{addr}"), inner),
            (format!("::ffff:{hi:x}:{lo:x}"), inner),
            (format!("64:ff9b::{addr}"), translated),
            (format!("::{addr}"), compat_want),
            (format!("2002:{hi:x}:{lo:x}::1"), Some(SpecialPurpose)),
            (format!("2002:{hi:x}:{lo:x}:ffff::"), Some(SpecialPurpose)),
            // Teredo: the client's IPv4 address, inverted, in the last 32 bits.
            (
                format!("2001:0:4136:e378:8000:63bf:{:x}:{:x}", !hi, !lo),
                Some(SpecialPurpose),
            ),
        ];
        for (form, want) in forms {
            let got = classify_ip(ip(&form));
            f.check(got == want, || {
                format!("{form} (inner {addr}): want {want:?}, got {got:?}")
            });
        }
    }
    f.finish();
}

/// The table itself: every row parses, is written as its network address,
/// appears once, and its address is classified by that row (so no row is
/// shadowed by a more specific one by mistake).
#[test]
fn special_purpose_table_rows_are_canonical_unique_and_reachable() {
    let mut f = Failures::default();
    let mut seen = std::collections::HashSet::new();
    for row in SPECIAL_PURPOSE {
        let cidr = match IpCidr::parse(row.cidr) {
            Ok(c) => c,
            Err(e) => {
                f.check(false, || format!("{}: {e}", row.cidr));
                continue;
            }
        };
        f.check(cidr.to_string() == row.cidr, || {
            format!("{} is not written canonically ({cidr})", row.cidr)
        });
        f.check(seen.insert(cidr), || format!("{} appears twice", row.cidr));
        f.check(!row.why.is_empty(), || {
            format!("{} has no reason", row.cidr)
        });
        // The first and last address of the block are decided by this row
        // (or by a more specific row inside it).
        let (first, last) = match cidr.network() {
            IpAddr::V4(n) => {
                let host = u32::MAX
                    .checked_shr(u32::from(cidr.prefix_len()))
                    .unwrap_or(0);
                (
                    IpAddr::V4(n),
                    IpAddr::V4(Ipv4Addr::from(u32::from(n) | host)),
                )
            }
            IpAddr::V6(n) => {
                let host = u128::MAX
                    .checked_shr(u32::from(cidr.prefix_len()))
                    .unwrap_or(0);
                (
                    IpAddr::V6(n),
                    IpAddr::V6(Ipv6Addr::from(u128::from(n) | host)),
                )
            }
        };
        for a in [first, last] {
            let r = refusal(a);
            let decided_inside = r.is_some_and(|r| {
                let by = IpCidr::parse(r.block.cidr).unwrap();
                by == cidr || (by.prefix_len() >= cidr.prefix_len() && cidr.contains(by.network()))
            });
            let unwrapped = matches!(row.rule, Rule::Mapped | Rule::Nat64);
            f.check(decided_inside || unwrapped, || {
                format!("{a} (in {}) is decided by {r:?}", row.cidr)
            });
        }
    }
    f.finish();
}

#[test]
fn refusals_name_the_block_and_why() {
    #[rustfmt::skip]
    let table: &[(&str, &str)] = &[
        ("127.0.0.1", "loopback address: 127.0.0.0/8, loopback (RFC 1122)"),
        ("::ffff:10.1.2.3", "private network address: 10.0.0.0/8, private-use (RFC 1918)"),
        ("64:ff9b::a9fe:a9fe", "ipv6 address embedding a blocked ipv4 address: 169.254.169.254/32, instance metadata service (AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, ...)"),
        ("192.31.196.1", "special-purpose address: 192.31.196.0/24, AS112-v4 anycast DNS sink (RFC 7535)"),
        ("2002:808:808::1", "special-purpose address: 2002::/16, 6to4 (RFC 3056), refused whatever IPv4 address it embeds"),
        ("4000::1", "reserved address: outside 2000::/3, IPv6 space outside global unicast 2000::/3, unassigned or reserved (RFC 4291)"),
        ("168.63.129.16", "cloud platform address: 168.63.129.16/32, Azure wire server and platform DNS (public, but internal to Azure)"),
    ];
    for (addr, want) in table {
        assert_eq!(refusal(ip(addr)).unwrap().to_string(), *want, "{addr}");
        assert_eq!(
            UrlPolicy::default()
                .explain_ip(ip(addr))
                .unwrap_err()
                .to_string(),
            *want,
            "{addr}"
        );
    }
    assert_eq!(refusal(ip("8.8.8.8")), None);
    assert_eq!(refusal(ip("2606:4700::1111")), None);
}

#[test]
fn check_ip_without_allowlist_matches_classify() {
    let p = UrlPolicy::default();
    let mut f = Failures::default();
    for &(addr, want) in V4_CASES.iter().chain(V6_CASES) {
        let got = p.check_ip(ip(addr));
        let want = want.map_or(Ok(()), Err);
        f.check(got == want, || {
            format!("{addr}: want {want:?}, got {got:?}")
        });
    }
    f.finish();
}

#[test]
fn allow_everything_allowlist_permits_every_address() {
    let p = policy(false, &["0.0.0.0/0", "::/0"]);
    let mut f = Failures::default();
    for &(addr, _) in V4_CASES.iter().chain(V6_CASES) {
        let got = p.check_ip(ip(addr));
        f.check(got.is_ok(), || format!("{addr}: want Ok, got {got:?}"));
    }
    f.finish();
}

#[test]
fn check_ip_with_allowlists() {
    #[rustfmt::skip]
    let table: &[(&[&str], &str, Result<(), BlockReason>)] = &[
        (&["127.0.0.1/32"], "127.0.0.1", Ok(())),
        (&["127.0.0.1/32"], "127.0.0.2", Err(Loopback)),
        (&["127.0.0.1/32"], "::ffff:127.0.0.1", Ok(())),
        (&["127.0.0.1/32"], "::ffff:127.0.0.2", Err(Loopback)),
        (&["127.0.0.1/32"], "::127.0.0.1", Err(Reserved)),
        (&["127.0.0.1/32"], "64:ff9b::7f00:1", Err(Ipv4Translated)),
        (&["127.0.0.1/32"], "2002:7f00:1::", Err(SpecialPurpose)),
        (&["127.0.0.1/32"], "::1", Err(Loopback)),
        (&["127.0.0.1/32"], "10.0.0.1", Err(Private)),
        (&["127.0.0.1/32"], "8.8.8.8", Ok(())),
        (&["127.0.0.0/8"], "127.0.0.1", Ok(())),
        (&["127.0.0.0/8"], "127.0.0.2", Ok(())),
        (&["127.0.0.0/8"], "127.255.255.255", Ok(())),
        (&["127.0.0.0/8"], "::ffff:127.9.9.9", Ok(())),
        (&["127.0.0.0/8"], "::1", Err(Loopback)),
        (&["::1/128"], "::1", Ok(())),
        (&["::1/128"], "127.0.0.1", Err(Loopback)),
        (&["::1/128"], "::2", Err(Reserved)),
        (&["::ffff:127.0.0.1/128"], "::ffff:127.0.0.1", Ok(())),
        (&["10.0.0.0/8"], "10.1.2.3", Ok(())),
        (&["10.0.0.0/8"], "::ffff:10.1.2.3", Ok(())),
        (&["10.0.0.0/8"], "172.16.0.1", Err(Private)),
        (&["10.0.0.0/8", "fd00::/8"], "fd00:ec2::254", Ok(())),
        (&["10.0.0.0/8", "fd00::/8"], "fc00::1", Err(UniqueLocal)),
        (&["169.254.169.254/32"], "169.254.169.254", Ok(())),
        (&["169.254.169.254/32"], "169.254.169.253", Err(CloudPlatform)),
        (&["169.254.169.254/32"], "169.254.169.252", Err(LinkLocal)),
        (&["168.63.129.16/32"], "168.63.129.16", Ok(())),
        (&["2002::/16"], "2002:7f00:1::", Ok(())),
        (&["fe80::/10"], "fe80::1", Ok(())),
        (&["fe80::/10"], "fec0::1", Err(Reserved)),
        (&[], "127.0.0.1", Err(Loopback)),
        (&[], "1.1.1.1", Ok(())),
    ];
    let mut f = Failures::default();
    for (targets, addr, want) in table {
        let got = policy(false, targets).check_ip(ip(addr));
        f.check(got == *want, || {
            format!("{targets:?} / {addr}: want {want:?}, got {got:?}")
        });
    }
    f.finish();
}

// ---- IpCidr -------------------------------------------------------------

#[test]
fn cidr_parse_table() {
    #[rustfmt::skip]
    let table: &[(&str, Option<&str>)] = &[
        ("127.0.0.1/32", Some("127.0.0.1/32")),
        ("127.0.0.1", Some("127.0.0.1/32")),
        ("::1", Some("::1/128")),
        ("::1/128", Some("::1/128")),
        ("10.0.0.0/8", Some("10.0.0.0/8")),
        ("10.1.2.3/8", Some("10.0.0.0/8")),
        ("192.168.1.77/24", Some("192.168.1.0/24")),
        ("172.31.5.6/12", Some("172.16.0.0/12")),
        ("127.0.0.1/31", Some("127.0.0.0/31")),
        ("0.0.0.0/0", Some("0.0.0.0/0")),
        ("1.2.3.4/0", Some("0.0.0.0/0")),
        ("255.255.255.255/32", Some("255.255.255.255/32")),
        ("255.255.255.255/1", Some("128.0.0.0/1")),
        ("10.0.0.0/08", Some("10.0.0.0/8")),
        (" 10.0.0.0/8 ", Some("10.0.0.0/8")),
        ("2001:db8::1/32", Some("2001:db8::/32")),
        ("2001:db8:1:2:3:4:5:6/64", Some("2001:db8:1:2::/64")),
        ("fe80::1234/10", Some("fe80::/10")),
        ("fd00::/7", Some("fc00::/7")),
        ("::/0", Some("::/0")),
        ("ffff::1/1", Some("8000::/1")),
        ("2001:db8::/128", Some("2001:db8::/128")),
        ("::ffff:127.0.0.1/128", Some("::ffff:127.0.0.1/128")),
        ("300.1.1.1/8", None),
        ("10.0.0.0/33", None),
        ("::1/129", None),
        ("abc", None),
        ("", None),
        ("   ", None),
        ("10.0.0.0/", None),
        ("/8", None),
        ("10.0.0.0/8/8", None),
        ("10.0.0.0/-1", None),
        ("10.0.0.0/+8", None),
        ("10.0.0.0/ 8", None),
        ("10.0.0.0 /8", None),
        ("10.0.0.0/abc", None),
        ("10.0.0.0/256", None),
        ("10.0.0.0/1000", None),
        ("0177.0.0.1/32", None),
        ("127.1/32", None),
        ("1.2.3/24", None),
        ("[::1]/128", None),
        ("fe80::1%eth0/64", None),
        ("example.com/32", None),
    ];
    let mut f = Failures::default();
    for &(input, want) in table {
        let got = IpCidr::parse(input);
        match (want, &got) {
            (Some(w), Ok(c)) => {
                let shown = c.to_string();
                f.check(shown == w, || format!("{input:?}: want {w}, got {shown}"));
                // Display output must parse back to the same value.
                let again = IpCidr::parse(&shown);
                f.check(again.as_ref() == Ok(c), || {
                    format!("{input:?}: round trip via {shown} gave {again:?}")
                });
                let via_from_str = input.parse::<IpCidr>();
                f.check(via_from_str.as_ref() == Ok(c), || {
                    format!("{input:?}: FromStr gave {via_from_str:?}")
                });
            }
            (None, Err(msg)) => {
                f.check(!msg.is_empty(), || {
                    format!("{input:?}: empty error message")
                });
            }
            _ => f.check(false, || format!("{input:?}: want {want:?}, got {got:?}")),
        }
    }
    f.finish();
}

#[test]
fn cidr_errors_are_human_readable() {
    let cases = [
        ("300.1.1.1/8", "invalid IP address `300.1.1.1`"),
        ("10.0.0.0/33", "maximum is /32"),
        ("::1/129", "maximum is /128"),
        ("abc", "invalid IP address `abc`"),
        ("", "empty CIDR block"),
        ("10.0.0.0/x", "invalid prefix length `/x`"),
    ];
    for (input, needle) in cases {
        let err = IpCidr::parse(input).expect_err(input);
        assert!(
            err.contains(needle),
            "{input:?}: error {err:?} lacks {needle:?}"
        );
    }
}

#[test]
fn cidr_new_and_accessors() {
    let c = IpCidr::new(ip("10.9.8.7"), 16).unwrap();
    assert_eq!(c.network(), ip("10.9.0.0"));
    assert_eq!(c.prefix_len(), 16);
    assert!(IpCidr::new(ip("10.0.0.0"), 33).is_err());
    assert!(IpCidr::new(ip("::"), 129).is_err());
    assert_eq!(IpCidr::new(ip("::"), 128).unwrap().to_string(), "::/128");
    assert_eq!(
        IpCidr::parse("10.1.2.3/8").unwrap(),
        IpCidr::parse("10.0.0.0/8").unwrap(),
        "host bits are masked, so these are the same block"
    );
}

#[test]
fn cidr_contains_table() {
    #[rustfmt::skip]
    let table: &[(&str, &str, bool)] = &[
        ("127.0.0.1/32", "127.0.0.1", true),
        ("127.0.0.1/32", "127.0.0.2", false),
        ("127.0.0.1/32", "::ffff:127.0.0.1", true),
        ("127.0.0.1/32", "::ffff:127.0.0.2", false),
        ("127.0.0.1/32", "::127.0.0.1", false),
        ("127.0.0.1/32", "64:ff9b::7f00:1", false),
        ("127.0.0.1/32", "::1", false),
        ("127.0.0.0/8", "127.0.0.1", true),
        ("127.0.0.0/8", "127.0.0.2", true),
        ("127.0.0.0/8", "127.255.255.255", true),
        ("127.0.0.0/8", "126.255.255.255", false),
        ("127.0.0.0/8", "128.0.0.0", false),
        ("127.0.0.0/8", "::ffff:127.1.2.3", true),
        ("127.0.0.1/31", "127.0.0.0", true),
        ("127.0.0.1/31", "127.0.0.1", true),
        ("127.0.0.1/31", "127.0.0.2", false),
        ("10.0.0.0/8", "10.255.255.255", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("10.0.0.0/8", "9.255.255.255", false),
        ("192.168.1.0/24", "192.168.1.255", true),
        ("192.168.1.0/24", "192.168.2.0", false),
        ("255.255.255.255/32", "255.255.255.255", true),
        ("0.0.0.0/0", "8.8.8.8", true),
        ("0.0.0.0/0", "0.0.0.0", true),
        ("0.0.0.0/0", "::ffff:8.8.8.8", true),
        ("0.0.0.0/0", "::1", false),
        ("0.0.0.0/0", "2606:4700::1111", false),
        ("::1/128", "::1", true),
        ("::1/128", "::2", false),
        ("::1/128", "::", false),
        ("::1/128", "127.0.0.1", false),
        ("::/0", "::1", true),
        ("::/0", "2001:db8::1", true),
        ("::/0", "::ffff:127.0.0.1", true),
        ("::/0", "127.0.0.1", false),
        ("::ffff:0:0/96", "::ffff:127.0.0.1", true),
        ("::ffff:0:0/96", "127.0.0.1", false),
        ("fc00::/7", "fd00:ec2::254", true),
        ("fc00::/7", "fbff::", false),
        ("fc00::/7", "fe00::", false),
        ("2001:db8::/32", "2001:db8:ffff::", true),
        ("2001:db8::/32", "2001:db9::", false),
        ("fe80::/10", "febf::1", true),
        ("fe80::/10", "fec0::", false),
        ("2001:db8::1/128", "2001:db8::1", true),
        ("2001:db8::1/128", "2001:db8::2", false),
    ];
    let mut f = Failures::default();
    for &(c, addr, want) in table {
        let got = IpCidr::parse(c).unwrap().contains(ip(addr));
        f.check(got == want, || {
            format!("{c} contains {addr}: want {want}, got {got}")
        });
    }
    f.finish();
}

#[test]
fn cidr_serde_uses_the_text_form() {
    let c: IpCidr = serde_json::from_str("\"10.1.2.3/8\"").unwrap();
    assert_eq!(c.to_string(), "10.0.0.0/8");
    assert_eq!(serde_json::to_string(&c).unwrap(), "\"10.0.0.0/8\"");
    assert!(serde_json::from_str::<IpCidr>("\"10.0.0.0/33\"").is_err());
    assert!(serde_json::from_str::<IpCidr>("42").is_err());

    let p: UrlPolicy =
        serde_json::from_str(r#"{"allow_http": true, "allow_targets": ["127.0.0.1/32", "::1"]}"#)
            .unwrap();
    assert_eq!(p, policy(true, &["127.0.0.1/32", "::1/128"]));
    let d: UrlPolicy = serde_json::from_str("{}").unwrap();
    assert_eq!(d, UrlPolicy::default());
    assert!(serde_json::from_str::<UrlPolicy>(r#"{"allow_htp": true}"#).is_err());
}

// ---- filter_resolved --------------------------------------------------

#[test]
fn filter_resolved_table() {
    /// (allow_targets, resolver answer, expected result)
    type Row<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        Result<&'a [&'a str], BlockReason>,
    );
    #[rustfmt::skip]
    let table: &[Row] = &[
        (&[], &["1.1.1.1:443"], Ok(&["1.1.1.1:443"])),
        (&[], &["1.1.1.1:443", "[2606:4700::1111]:443"], Ok(&["1.1.1.1:443", "[2606:4700::1111]:443"])),
        (&[], &["8.8.8.8:1", "8.8.8.8:1"], Ok(&["8.8.8.8:1", "8.8.8.8:1"])),
        (&[], &["127.0.0.1:443"], Err(Loopback)),
        (&[], &["127.0.0.1:443", "10.0.0.1:443"], Err(Loopback)),
        (&[], &["10.0.0.1:443", "127.0.0.1:443"], Err(Private)),
        (&[], &["0.0.0.0:80", "127.0.0.1:80"], Err(Unspecified)),
        (&[], &["[::1]:443", "[fe80::1]:443", "[fd00:ec2::254]:80"], Err(Loopback)),
        (&[], &["[::ffff:169.254.169.254]:80"], Err(CloudPlatform)),
        (&[], &["[::ffff:169.254.1.1]:80"], Err(LinkLocal)),
        (&[], &["[2002:808:808::1]:443", "8.8.8.8:443"], Ok(&["8.8.8.8:443"])),
        (&[], &["[64:ff9b::a9fe:a9fe]:80"], Err(Ipv4Translated)),
        (&[], &["[2002:a9fe:a9fe::]:80"], Err(SpecialPurpose)),
        (&[], &[], Err(Unspecified)),
        (
            &[],
            &["10.0.0.1:443", "8.8.8.8:443", "[::1]:443", "[2001:4860::8888]:8443", "169.254.169.254:80", "1.1.1.1:80"],
            Ok(&["8.8.8.8:443", "[2001:4860::8888]:8443", "1.1.1.1:80"]),
        ),
        (&[], &["192.168.0.10:443", "[2606:4700::1111]:443"], Ok(&["[2606:4700::1111]:443"])),
        (&[], &["[::ffff:8.8.8.8]:443", "[::ffff:10.0.0.1]:443"], Ok(&["[::ffff:8.8.8.8]:443"])),
        (&["127.0.0.1/32"], &["127.0.0.1:8080", "[::1]:8080"], Ok(&["127.0.0.1:8080"])),
        (&["127.0.0.1/32"], &["[::ffff:127.0.0.1]:8080"], Ok(&["[::ffff:127.0.0.1]:8080"])),
        (&["127.0.0.1/32"], &["127.0.0.2:8080"], Err(Loopback)),
        (&["::1/128"], &["127.0.0.1:8080", "[::1]:8080"], Ok(&["[::1]:8080"])),
        (&["10.0.0.0/8"], &["10.0.0.1:1", "10.0.0.2:2", "172.16.0.1:3"], Ok(&["10.0.0.1:1", "10.0.0.2:2"])),
    ];
    let mut f = Failures::default();
    for (targets, input, want) in table {
        let addrs: Vec<SocketAddr> = input.iter().map(|s| sock(s)).collect();
        let got = policy(false, targets).filter_resolved(&addrs);
        let want: Result<Vec<SocketAddr>, BlockReason> =
            want.map(|w| w.iter().map(|s| sock(s)).collect());
        f.check(got == want, || {
            format!("{targets:?} / {input:?}: want {want:?}, got {got:?}")
        });
    }
    f.finish();
}

#[test]
fn filter_resolved_keeps_scope_ids_and_judges_the_ip() {
    let p = UrlPolicy::default();
    let scoped = SocketAddr::V6(SocketAddrV6::new(ip6("fe80::1"), 443, 0, 2));
    assert_eq!(p.filter_resolved(&[scoped]), Err(LinkLocal));
    let public = SocketAddr::V6(SocketAddrV6::new(ip6("2606:4700::1111"), 443, 7, 0));
    assert_eq!(p.filter_resolved(&[scoped, public]), Ok(vec![public]));
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

// ---- WebhookUrl: general ---------------------------------------------

#[test]
fn urls_basic_https_only() {
    #[rustfmt::skip]
    let table: &[(&str, &str)] = &[
        ("https://example.com/hook", "ok:https://example.com/hook"),
        ("https://example.com", "ok:https://example.com/"),
        ("  https://example.com/  ", "whitespace"),
        ("\thttps://example.com/\n", "control"),
        ("https://exam\tple.com/", "control"),
        ("HTTPS://EXAMPLE.COM/Hook", "ok:https://example.com/Hook"),
        ("HtTpS://ExAmPlE.CoM/", "ok:https://example.com/"),
        ("https://example.com:443/", "ok:https://example.com/"),
        ("https://example.com:8443/x", "ok:https://example.com:8443/x"),
        ("https://example.com:08443/", "ok:https://example.com:8443/"),
        ("https://example.com:1/", "ok:https://example.com:1/"),
        ("https://example.com:65535/", "ok:https://example.com:65535/"),
        ("https://example.com:/", "ok:https://example.com/"),
        ("https://example.com:0/", "port"),
        ("https://example.com:00/", "port"),
        ("https://example.com:65536/", "unparseable"),
        ("https://example.com:-1/", "unparseable"),
        ("https://example.com:+80/", "unparseable"),
        ("https://example.com:443:443/", "unparseable"),
        ("https://example.com:https/", "unparseable"),
        ("https://example.com/path?query=1&b=2", "ok:https://example.com/path?query=1&b=2"),
        ("https://example.com?q", "ok:https://example.com/?q"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com/a%20b", "ok:https://example.com/a%20b"),
        ("https://example.com/\u{e9}", "ok:https://example.com/%C3%A9"),
        ("https://example.com/%23notfragment", "ok:https://example.com/%23notfragment"),
        ("https://\u{394}\u{394}.com/", "ok:https://xn--pxaa.com/"),
        ("https://b\u{fc}cher.de/", "ok:https://xn--bcher-kva.de/"),
        ("https://sub.domain.example.com/", "ok:https://sub.domain.example.com/"),
        ("https://example.co.uk/", "ok:https://example.co.uk/"),
        ("https://example.com./", "ok:https://example.com./"),
        ("https://EXAMPLE.COM./", "ok:https://example.com./"),
        ("https://my-service.herokuapp.com/webhooks", "ok"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "ok"),
        ("https://_acme.example.com/", "ok:https://_acme.example.com/"),
        ("https:example.com", "malformed"),
        ("https:/example.com", "malformed"),
        ("https:\\\\example.com", "malformed"),
        ("https:///example.com", "malformed"),
        ("https://1.1.1.1/", "ok:https://1.1.1.1/"),
        ("https://8.8.8.8:8443/", "ok:https://8.8.8.8:8443/"),
        ("https://16843009/", "noncanonical"),
        ("https://[2606:4700::1111]/", "ok:https://[2606:4700::1111]/"),
        ("https://[2606:4700::1111]:8443/x?y", "ok:https://[2606:4700::1111]:8443/x?y"),
        ("https://[2606:4700:0:0:0:0:0:1111]/", "ok:https://[2606:4700::1111]/"),
        ("https://[2001:4860:4860::8888]/", "ok"),
        ("https://[::ffff:8.8.8.8]/", "ok:https://[::ffff:808:808]/"),
        ("https://[64:ff9b::8.8.8.8]/", "ok:https://[64:ff9b::808:808]/"),
        ("https://[2002:808:808::1]/", "addr:SpecialPurpose"),
        ("https://[::8.8.8.8]/", "addr:Reserved"),
        // Creation does not resolve DNS: these point at loopback or
        // metadata in real DNS, and are caught by filter_resolved.
        ("https://localtest.me/", "ok"),
        ("https://127.0.0.1.nip.io/", "ok:https://127.0.0.1.nip.io/"),
        ("https://169.254.169.254.nip.io/", "ok"),
        ("https://7f000001.rbndr.us/", "ok"),
        // empty / unparseable
        ("", "empty"),
        ("   ", "whitespace"),
        ("\t\n", "control"),
        ("example.com", "malformed"),
        ("example.com/hook", "malformed"),
        ("/relative/path", "malformed"),
        ("://example.com", "malformed"),
        ("https://", "unparseable"),
        ("https:// ", "whitespace"),
        ("https://exa mple.com/", "whitespace"),
        ("https://[::1", "unparseable"),
        ("https://[::1]x/", "malformed"),
        ("https://[fe80::1%25eth0]/", "malformed"),
        ("https://[v1.fe]/", "unparseable"),
        ("https://[::ffff:7f00:1]./", "malformed"),
        ("https://1.2.3.4.5/", "unparseable"),
        ("https://256.0.0.1/", "unparseable"),
        ("https://4294967296/", "unparseable"),
        ("https://999999999999/", "unparseable"),
        ("https://08.1.2.3/", "unparseable"),
        ("https://1.2.3.08/", "unparseable"),
        ("https://foo.127/", "unparseable"),
        ("https://foo.0x7f/", "unparseable"),
        ("https://foo%40bar.com/", "malformed"),
        ("https://exa%00mple.com/", "malformed"),
        ("https://127.0.0.1%2f/", "malformed"),
        ("https://xn--localhost-/", "unparseable"),
    ];
    run_urls("https-only", &UrlPolicy::default(), table);
}

#[test]
fn urls_schemes() {
    #[rustfmt::skip]
    let https_only: &[(&str, &str)] = &[
        ("http://example.com/", "scheme:http"),
        ("HTTP://example.com/", "scheme:http"),
        ("http://127.0.0.1/", "scheme:http"),
        ("http://user@example.com/", "scheme:http"),
        ("ftp://example.com/", "scheme:ftp"),
        ("file:///etc/passwd", "scheme:file"),
        ("file://localhost/etc/passwd", "scheme:file"),
        ("javascript:alert(1)", "scheme:javascript"),
        ("JavaScript:alert(1)", "scheme:javascript"),
        ("data:text/plain,hi", "scheme:data"),
        ("gopher://example.com/", "scheme:gopher"),
        ("ws://example.com/", "scheme:ws"),
        ("wss://example.com/", "scheme:wss"),
        ("dict://127.0.0.1:11211/", "scheme:dict"),
        ("ldap://example.com/", "scheme:ldap"),
        ("mailto:a@example.com", "scheme:mailto"),
        ("httpss://example.com/", "scheme:httpss"),
        ("https+unix://foo/", "scheme:https+unix"),
        ("jar:https://example.com/", "scheme:jar"),
        ("blob:https://example.com/uuid", "scheme:blob"),
        ("view-source:https://example.com", "scheme:view-source"),
        ("sftp://example.com/", "scheme:sftp"),
        ("tel:+15555555555", "scheme:tel"),
    ];
    run_urls("https-only", &UrlPolicy::default(), https_only);

    #[rustfmt::skip]
    let with_http: &[(&str, &str)] = &[
        ("http://example.com/", "ok:http://example.com/"),
        ("http://example.com:80/", "ok:http://example.com/"),
        ("http://example.com:8080/x", "ok:http://example.com:8080/x"),
        ("http://example.com:443/", "ok:http://example.com:443/"),
        ("HTTP://EXAMPLE.COM", "ok:http://example.com/"),
        ("https://example.com/", "ok:https://example.com/"),
        ("https://example.com:80/", "ok:https://example.com:80/"),
        ("http://8.8.8.8/", "ok:http://8.8.8.8/"),
        ("http://[2606:4700::1111]/", "ok:http://[2606:4700::1111]/"),
        ("ftp://example.com/", "scheme:ftp"),
        ("ws://example.com/", "scheme:ws"),
        ("file:///etc/passwd", "scheme:file"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme:gopher"),
        ("http://2130706433/", "addr:Loopback"),
        ("http://localhost/", H_LOCALHOST),
        ("http://localhost:8080/", H_LOCALHOST),
        ("http://169.254.169.254/latest/meta-data/", "addr:CloudPlatform"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "addr:CloudPlatform"),
        ("http://metadata.google.internal/computeMetadata/v1/", "host:non-public domain suffix .internal"),
        ("http://user@example.com/", "userinfo"),
        ("http://@example.com/", "userinfo"),
        ("http://example.com/#x", "fragment"),
        ("http://example.com:0/", "port"),
        ("http://user@", "unparseable"),
    ];
    run_urls("allow_http", &policy(true, &[]), with_http);
}

#[test]
fn scheme_error_reports_the_policy() {
    let e = WebhookUrl::parse("ftp://example.com/", &policy(true, &[])).unwrap_err();
    assert_eq!(
        e,
        UrlError::SchemeNotAllowed {
            scheme: "ftp".into(),
            allow_http: true
        }
    );
    let e = WebhookUrl::parse("http://example.com/", &UrlPolicy::default()).unwrap_err();
    assert_eq!(
        e,
        UrlError::SchemeNotAllowed {
            scheme: "http".into(),
            allow_http: false
        }
    );
}

#[test]
fn urls_userinfo_and_fragments() {
    // The url crate parses "https://@host" and "https://:@host" as if
    // there were no userinfo at all; we still refuse them (raw scan).
    #[rustfmt::skip]
    let table: &[(&str, &str)] = &[
        ("https://user@example.com/", "userinfo"),
        ("https://user:pw@example.com/", "userinfo"),
        ("https://:pw@example.com/", "userinfo"),
        ("https://user:@example.com/", "userinfo"),
        ("https://:@example.com/", "userinfo"),
        ("https://@example.com/", "userinfo"),
        ("https://@@example.com/", "userinfo"),
        ("https://a@b@example.com/", "userinfo"),
        ("https://%40@example.com/", "userinfo"),
        ("https://example.com@evil.com/", "userinfo"),
        ("https://example.com%40evil.com@attacker.com/", "userinfo"),
        ("https://example.com:443@evil.com/", "userinfo"),
        ("https:/\\@example.com/", "malformed"),
        ("https:@example.com/", "malformed"),
        ("https:\\\\@example.com/", "malformed"),
        ("https://\t@example.com/", "control"),
        ("https://@\nexample.com/", "control"),
        ("https://user@127.0.0.1/", "userinfo"),
        ("https://user@localhost/", "userinfo"),
        ("https://[::1]@example.com/", "userinfo"),
        ("HTTPS://USER@EXAMPLE.COM/", "userinfo"),
        // '@' outside the authority is fine
        ("https://example.com/@user", "ok:https://example.com/@user"),
        ("https://example.com/a/@b/c", "ok:https://example.com/a/@b/c"),
        ("https://example.com?email=a@b.com", "ok:https://example.com/?email=a@b.com"),
        ("https://example.com/?x=@", "ok:https://example.com/?x=@"),
        ("https://example.com\\@evil.com/", "malformed"),
        ("https://example.com/%40", "ok:https://example.com/%40"),
        // fragments
        ("https://example.com/#", "fragment"),
        ("https://example.com#", "fragment"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com/?a=1#b", "fragment"),
        ("https://example.com/?a#", "fragment"),
        ("https://example.com/path#@evil", "fragment"),
        ("https://8.8.8.8/#x", "fragment"),
        ("https://example.com/?q=%23", "ok:https://example.com/?q=%23"),
    ];
    run_urls("https-only", &UrlPolicy::default(), table);
}

// ---- WebhookUrl: hostnames --------------------------------------------

#[rustfmt::skip]
const SUFFIXES: &[&str] = &[
    "local",
    "internal",
    "home.arpa",
    "localdomain",
    "lan",
    "intranet",
    "corp",
    "private",
    "arpa",
    "test",
    "invalid",
    "onion",
    "example",
];

#[test]
fn urls_blocked_suffixes_in_every_spelling() {
    let p = UrlPolicy::default();
    let mut f = Failures::default();
    for s in SUFFIXES {
        let want = format!("host:non-public domain suffix .{s}");
        let upper = s.to_ascii_uppercase();
        for input in [
            format!("https://foo.{s}/"),
            format!("https://foo.{s}./"),
            format!("https://FOO.{upper}/"),
            format!("https://Foo.{upper}./"),
            format!("https://a.b.{s}:8443/x"),
            format!("https://foo.{s}/?q=1"),
        ] {
            check_url(&mut f, "https-only", &p, &input, &want);
        }
        // The suffix as a leading label, or glued to another word, is
        // just part of a public name.
        for input in [
            format!("https://{s}.com/"),
            format!("https://{s}.example.com/"),
            format!("https://x{s}.com/"),
            format!("https://{s}x.com/"),
        ] {
            check_url(&mut f, "https-only", &p, &input, "ok");
        }
    }
    f.finish();
}

#[test]
fn urls_hostnames() {
    let sfx = |s: &str| format!("host:non-public domain suffix .{s}");
    let owned: Vec<(&str, String)> = vec![
        ("https://localhost/", H_LOCALHOST.into()),
        ("https://localhost./", H_LOCALHOST.into()),
        ("https://LOCALHOST/", H_LOCALHOST.into()),
        ("https://LocalHost./", H_LOCALHOST.into()),
        ("https://localhost:8443/", H_LOCALHOST.into()),
        ("https://foo.localhost/", H_LOCALHOST.into()),
        ("https://a.b.localhost./", H_LOCALHOST.into()),
        ("https://FOO.LOCALHOST/", H_LOCALHOST.into()),
        (
            "https://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/",
            H_LOCALHOST.into(),
        ),
        ("https://LOCALHOST%2E/", "malformed".into()),
        ("https://loc%61lhost/", "malformed".into()),
        ("https://localhost.com/", "ok:https://localhost.com/".into()),
        ("https://mylocalhost.com/", "ok".into()),
        ("https://localhost.example.com/", "ok".into()),
        ("https://notlocalhost/", H_SINGLE.into()),
        ("https://localhost.localdomain/", sfx("localdomain")),
        // single label
        ("https://intranet/", H_SINGLE.into()),
        ("https://router./", H_SINGLE.into()),
        ("https://com/", H_SINGLE.into()),
        ("https://metadata/", H_SINGLE.into()),
        ("https://instance-data/", H_SINGLE.into()),
        ("https://kubernetes/", H_SINGLE.into()),
        ("https://FOO/", H_SINGLE.into()),
        ("https://xn--pxaa/", H_SINGLE.into()),
        ("https://local/", H_SINGLE.into()),
        ("https://internal./", H_SINGLE.into()),
        ("https://example/", H_SINGLE.into()),
        // empty labels
        ("https://127.0.0.1../", H_EMPTY.into()),
        ("https://127.0.0.1.../", H_EMPTY.into()),
        ("https://a..b/", H_EMPTY.into()),
        ("https://.example.com/", H_EMPTY.into()),
        ("https://example.com../", H_EMPTY.into()),
        ("https://example.com.../", H_EMPTY.into()),
        // suffixes, named examples
        ("https://example.com/", "ok:https://example.com/".into()),
        ("https://example.org/", "ok".into()),
        ("https://example.net/", "ok".into()),
        ("https://www.example.com/", "ok".into()),
        ("https://test.com/", "ok".into()),
        ("https://foo.example/", sfx("example")),
        ("https://api.test/", sfx("test")),
        ("https://foo.invalid/", sfx("invalid")),
        ("https://facebookcorewwwi.onion/", sfx("onion")),
        ("https://printer.local/", sfx("local")),
        ("https://metadata.google.internal/", sfx("internal")),
        ("https://instance-data.ec2.internal/", sfx("internal")),
        ("https://router.home.arpa/", sfx("home.arpa")),
        ("https://1.0.0.127.in-addr.arpa/", sfx("arpa")),
        ("https://1.0.ip6.arpa/", sfx("arpa")),
        ("https://nas.lan/", sfx("lan")),
        ("https://wiki.intranet/", sfx("intranet")),
        ("https://dc1.corp/", sfx("corp")),
        ("https://db.private/", sfx("private")),
        ("https://foo.localdomain/", sfx("localdomain")),
        ("https://local.example.com/", "ok".into()),
        ("https://internal.example.com/", "ok".into()),
        ("https://lan.party/", "ok".into()),
        ("https://corp.com/", "ok".into()),
        ("https://foo.corporate/", "ok".into()),
        ("https://foo.testing/", "ok".into()),
        ("https://foo.lane/", "ok".into()),
        ("https://foo.locals/", "ok".into()),
        ("https://arpa.net/", "ok".into()),
    ];
    let table: Vec<(&str, &str)> = owned.iter().map(|(i, w)| (*i, w.as_str())).collect();
    run_urls("https-only", &UrlPolicy::default(), &table);
}

// ---- WebhookUrl: IP literal encodings ---------------------------------

/// Hosts (the part between `https://` and `/`) and their expected outcome.
#[rustfmt::skip]
const ENCODINGS: &[(&str, &str)] = &[
    // 127.0.0.1
    ("2130706433", "addr:Loopback"),
    ("0177.0.0.1", "addr:Loopback"),
    ("0177.0.0.01", "addr:Loopback"),
    ("0x7f000001", "addr:Loopback"),
    ("0x7F000001", "addr:Loopback"),
    ("0x7f.0.0.1", "addr:Loopback"),
    ("0x7f.0.1", "addr:Loopback"),
    ("0x7f.1", "addr:Loopback"),
    ("127.1", "addr:Loopback"),
    ("127.0.1", "addr:Loopback"),
    ("%31%32%37.0.0.1", "malformed"),
    ("127%2e0%2e0%2e1", "malformed"),
    ("%30x7f.1", "malformed"),
    ("127.0.0.1.", "addr:Loopback"),
    ("017700000001", "addr:Loopback"),
    ("0x7F.0X0.0.1", "addr:Loopback"),
    ("127.0.0.0x1", "addr:Loopback"),
    ("00000000000000000177.0.0.1", "addr:Loopback"),
    ("0x00000000007f.0.0.1", "addr:Loopback"),
    ("\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}", "addr:Loopback"),
    ("127\u{3002}0\u{3002}0\u{3002}1", "addr:Loopback"),
    ("127.0.0.1:8443", "addr:Loopback"),
    ("127.0.0.2", "addr:Loopback"),
    ("127.1.2.3", "addr:Loopback"),
    ("127.255.255.255", "addr:Loopback"),
    ("[::ffff:127.0.0.1]", "addr:Loopback"),
    ("[::ffff:7f00:1]", "addr:Loopback"),
    ("[::FFFF:127.0.0.1]", "addr:Loopback"),
    ("[0:0:0:0:0:ffff:7f00:1]", "addr:Loopback"),
    ("[0000:0000:0000:0000:0000:FFFF:7F00:0001]", "addr:Loopback"),
    ("[::127.0.0.1]", "addr:Reserved"),
    ("[::7f00:1]", "addr:Reserved"),
    ("[64:ff9b::7f00:1]", "addr:Ipv4Translated"),
    ("[64:ff9b::127.0.0.1]", "addr:Ipv4Translated"),
    ("[2002:7f00:1::]", "addr:SpecialPurpose"),
    ("[2002:7f00:1::1]", "addr:SpecialPurpose"),
    ("[2002:7f00:0001:0:0:0:0:0]", "addr:SpecialPurpose"),
    ("[::1]", "addr:Loopback"),
    ("[0:0:0:0:0:0:0:1]", "addr:Loopback"),
    ("[::1]:8443", "addr:Loopback"),
    // unspecified
    ("0", "addr:Unspecified"),
    ("0x0", "addr:Unspecified"),
    ("0x", "addr:Unspecified"),
    ("0.0.0.0", "addr:Unspecified"),
    ("0.1.2.3", "addr:Unspecified"),
    ("[::]", "addr:Unspecified"),
    ("[0:0:0:0:0:0:0:0]", "addr:Unspecified"),
    ("[::ffff:0.0.0.0]", "addr:Unspecified"),
    // 169.254.169.254
    ("169.254.169.254", "addr:CloudPlatform"),
    ("2852039166", "addr:CloudPlatform"),
    ("0251.0376.0251.0376", "addr:CloudPlatform"),
    ("0xa9fea9fe", "addr:CloudPlatform"),
    ("0xA9FEA9FE", "addr:CloudPlatform"),
    ("0xa9.0xfe.0xa9.0xfe", "addr:CloudPlatform"),
    ("0xa9.254.43518", "addr:CloudPlatform"),
    ("169.254.43518", "addr:CloudPlatform"),
    ("169.16689662", "addr:CloudPlatform"),
    ("%31%36%39.254.169.254", "malformed"),
    ("169.254.169.254.", "addr:CloudPlatform"),
    ("[::ffff:169.254.169.254]", "addr:CloudPlatform"),
    ("[::ffff:a9fe:a9fe]", "addr:CloudPlatform"),
    ("[::169.254.169.254]", "addr:Reserved"),
    ("[::a9fe:a9fe]", "addr:Reserved"),
    ("[64:ff9b::a9fe:a9fe]", "addr:Ipv4Translated"),
    ("[64:ff9b::169.254.169.254]", "addr:Ipv4Translated"),
    ("[2002:a9fe:a9fe::1]", "addr:SpecialPurpose"),
    ("[2002:a9fe:a9fe::]", "addr:SpecialPurpose"),
    ("[fd00:ec2::254]", "addr:CloudPlatform"),
    ("[fe80::a9fe:a9fe]", "addr:LinkLocal"),
    // 10.0.0.1
    ("10.0.0.1", "addr:Private"),
    ("167772161", "addr:Private"),
    ("012.0.0.1", "addr:Private"),
    ("012.0.0.01", "addr:Private"),
    ("0xa000001", "addr:Private"),
    ("0xa.0.0.1", "addr:Private"),
    ("10.1", "addr:Private"),
    ("10.0.1", "addr:Private"),
    ("0xa.0.1", "addr:Private"),
    ("%31%30.0.0.1", "malformed"),
    ("10.0.0.1.", "addr:Private"),
    ("[::ffff:10.0.0.1]", "addr:Private"),
    ("[::ffff:a00:1]", "addr:Private"),
    ("[::10.0.0.1]", "addr:Reserved"),
    ("[::a00:1]", "addr:Reserved"),
    ("[64:ff9b::a00:1]", "addr:Ipv4Translated"),
    ("[2002:a00:1::]", "addr:SpecialPurpose"),
    // other IPv6 classes
    ("[fe80::1]", "addr:LinkLocal"),
    ("[fc00::1]", "addr:UniqueLocal"),
    ("[ff02::1]", "addr:Multicast"),
    ("[2001:db8::1]", "addr:Documentation"),
    ("[3fff::1]", "addr:Documentation"),
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "addr:SpecialPurpose"),
    ("[2001:2::1]", "addr:Benchmarking"),
    ("[100::1]", "addr:SpecialPurpose"),
    ("[64:ff9b:1::a00:1]", "addr:SpecialPurpose"),
    ("[fec0::1]", "addr:Reserved"),
    ("[4000::1]", "addr:Reserved"),
    // public, for contrast
    ("8.8.8.8", "ok"),
    ("134744072", "noncanonical"),
    ("0x08080808", "noncanonical"),
    ("[2606:4700::1111]", "ok"),
    ("[::ffff:8.8.8.8]", "ok"),
];

#[test]
fn urls_ip_literal_encodings() {
    let https_only = UrlPolicy::default();
    let with_http = policy(true, &[]);
    let mut f = Failures::default();
    for &(host, want) in ENCODINGS {
        check_url(
            &mut f,
            "https-only",
            &https_only,
            &format!("https://{host}/"),
            want,
        );
        check_url(
            &mut f,
            "https-only",
            &https_only,
            &format!("https://{host}/hook?x=1"),
            want,
        );
        check_url(
            &mut f,
            "allow_http",
            &with_http,
            &format!("http://{host}/"),
            want,
        );
        check_url(
            &mut f,
            "https-only",
            &https_only,
            &format!("HTTPS://{host}"),
            want,
        );
    }
    f.finish();
}

/// Every classification row as a URL literal.
#[test]
fn urls_for_every_classified_address() {
    let p = UrlPolicy::default();
    let mut f = Failures::default();
    for &(addr, reason) in V4_CASES {
        check_url(
            &mut f,
            "https-only",
            &p,
            &format!("https://{addr}/"),
            &want_for(reason),
        );
    }
    for &(addr, reason) in V6_CASES {
        check_url(
            &mut f,
            "https-only",
            &p,
            &format!("https://[{addr}]/"),
            &want_for(reason),
        );
    }
    f.finish();
}

#[test]
fn blocked_address_error_carries_the_address() {
    let e = WebhookUrl::parse("https://2130706433/", &UrlPolicy::default()).unwrap_err();
    assert_eq!(
        e,
        UrlError::BlockedAddress {
            ip: ip("127.0.0.1"),
            refusal: refusal(ip("127.0.0.1")).unwrap()
        }
    );
    assert_eq!(
        e.to_string(),
        "webhook URL host 127.0.0.1 is not allowed (loopback address: 127.0.0.0/8, loopback (RFC 1122))"
    );
    assert_eq!(e.block_reason(), Some(Loopback));
    let e = WebhookUrl::parse("https://[::ffff:7f00:1]/", &UrlPolicy::default()).unwrap_err();
    assert_eq!(
        e,
        UrlError::BlockedAddress {
            ip: ip("::ffff:127.0.0.1"),
            refusal: refusal(ip("127.0.0.1")).unwrap()
        }
    );
    let e = WebhookUrl::parse("https://168.63.129.16/", &UrlPolicy::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "webhook URL host 168.63.129.16 is not allowed (cloud platform address: 168.63.129.16/32, Azure wire server and platform DNS (public, but internal to Azure))"
    );
    let e = WebhookUrl::parse("https://Printer.Local./", &UrlPolicy::default()).unwrap_err();
    assert_eq!(
        e,
        UrlError::BlockedHostname {
            host: "printer.local.".into(),
            reason: "non-public domain suffix .local"
        }
    );
}

// ---- WebhookUrl: allowlists -------------------------------------------

#[test]
fn urls_with_allowlists() {
    #[rustfmt::skip]
    let table: &[(&str, bool, &[&str], &str, &str)] = &[
        // (name, allow_http, allow_targets, input, want)
        ("127/32", false, &["127.0.0.1/32"], "https://127.0.0.1/", "ok:https://127.0.0.1/"),
        ("127/32", false, &["127.0.0.1/32"], "https://127.0.0.1:8443/hook", "ok:https://127.0.0.1:8443/hook"),
        ("127/32", false, &["127.0.0.1/32"], "https://2130706433/", "noncanonical"),
        ("127/32", false, &["127.0.0.1/32"], "https://127.1/", "noncanonical"),
        ("127/32", false, &["127.0.0.1/32"], "https://0x7f.1/", "noncanonical"),
        ("127/32", false, &["127.0.0.1/32"], "https://[::ffff:127.0.0.1]/", "ok:https://[::ffff:7f00:1]/"),
        ("127/32", false, &["127.0.0.1/32"], "https://127.0.0.2/", "addr:Loopback"),
        ("127/32", false, &["127.0.0.1/32"], "https://[::1]/", "addr:Loopback"),
        ("127/32", false, &["127.0.0.1/32"], "https://[::127.0.0.1]/", "addr:Reserved"),
        ("127/32", false, &["127.0.0.1/32"], "https://[64:ff9b::7f00:1]/", "addr:Ipv4Translated"),
        ("127/32", false, &["127.0.0.1/32"], "https://[2002:7f00:1::]/", "addr:SpecialPurpose"),
        ("127/32", false, &["127.0.0.1/32"], "https://10.0.0.1/", "addr:Private"),
        ("127/32", false, &["127.0.0.1/32"], "https://localhost/", "ok:https://localhost/"),
        ("127/32", false, &["127.0.0.1/32"], "https://localhost./", "ok:https://localhost./"),
        ("127/32", false, &["127.0.0.1/32"], "https://LOCALHOST:3000/x", "ok:https://localhost:3000/x"),
        ("127/32", false, &["127.0.0.1/32"], "https://foo.localhost/", "ok:https://foo.localhost/"),
        ("127/32", false, &["127.0.0.1/32"], "http://127.0.0.1/", "scheme:http"),
        ("127/32", false, &["127.0.0.1/32"], "http://localhost/", "scheme:http"),
        ("127/32", false, &["127.0.0.1/32"], "https://intranet/", H_SINGLE),
        ("127/32", false, &["127.0.0.1/32"], "https://printer.local/", "host:non-public domain suffix .local"),
        ("127/32", false, &["127.0.0.1/32"], "https://example.com/", "ok:https://example.com/"),
        ("127/32", false, &["127.0.0.1/32"], "https://user@127.0.0.1/", "userinfo"),
        ("127/32", false, &["127.0.0.1/32"], "https://@localhost/", "userinfo"),
        ("127/32", false, &["127.0.0.1/32"], "https://127.0.0.1/#x", "fragment"),
        ("127/32", false, &["127.0.0.1/32"], "https://127.0.0.1:0/", "port"),
        ("127/8", false, &["127.0.0.0/8"], "https://127.0.0.1/", "ok"),
        ("127/8", false, &["127.0.0.0/8"], "https://127.0.0.2/", "ok:https://127.0.0.2/"),
        ("127/8", false, &["127.0.0.0/8"], "https://127.255.255.255/", "ok"),
        ("127/8", false, &["127.0.0.0/8"], "https://[::1]/", "addr:Loopback"),
        ("127/8", false, &["127.0.0.0/8"], "https://localhost/", "ok"),
        ("127/8", false, &["127.0.0.0/8"], "https://10.0.0.1/", "addr:Private"),
        ("::1", false, &["::1/128"], "https://[::1]/", "ok:https://[::1]/"),
        ("::1", false, &["::1/128"], "https://[0:0:0:0:0:0:0:1]:9000/", "ok:https://[::1]:9000/"),
        ("::1", false, &["::1/128"], "https://127.0.0.1/", "addr:Loopback"),
        ("::1", false, &["::1/128"], "https://[::2]/", "addr:Reserved"),
        ("::1", false, &["::1/128"], "https://localhost/", "ok"),
        ("mapped", false, &["::ffff:127.0.0.1/128"], "https://[::ffff:127.0.0.1]/", "ok"),
        ("mapped", false, &["::ffff:127.0.0.1/128"], "https://localhost/", H_LOCALHOST),
        ("127.0.0.2", false, &["127.0.0.2/32"], "https://localhost/", H_LOCALHOST),
        ("127.0.0.2", false, &["127.0.0.2/32"], "https://127.0.0.2/", "ok"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://10.0.0.1/", "ok"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://10.255.255.255/", "ok"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://167772161/", "noncanonical"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://[::ffff:10.0.0.1]/", "ok"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://[fd00:ec2::254]/", "ok"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://[fc00::1]/", "addr:UniqueLocal"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://172.16.0.1/", "addr:Private"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://127.0.0.1/", "addr:Loopback"),
        ("private", false, &["10.0.0.0/8", "fd00::/8"], "https://localhost/", H_LOCALHOST),
        ("http+127", true, &["127.0.0.1/32"], "http://127.0.0.1:8080/hook", "ok:http://127.0.0.1:8080/hook"),
        ("http+127", true, &["127.0.0.1/32"], "http://localhost:8080/", "ok:http://localhost:8080/"),
        ("http+127", true, &["127.0.0.1/32"], "http://127.0.0.2/", "addr:Loopback"),
        ("http+127", true, &["127.0.0.1/32"], "https://127.0.0.1/", "ok"),
        ("http+127", true, &["127.0.0.1/32"], "ftp://127.0.0.1/", "scheme:ftp"),
        ("all", false, &["0.0.0.0/0", "::/0"], "https://10.0.0.1/", "ok"),
        ("all", false, &["0.0.0.0/0", "::/0"], "https://[fe80::1]/", "ok"),
        ("all", false, &["0.0.0.0/0", "::/0"], "https://localhost/", "ok"),
        ("all", false, &["0.0.0.0/0", "::/0"], "https://intranet/", H_SINGLE),
        ("all", false, &["0.0.0.0/0", "::/0"], "https://foo.internal/", "host:non-public domain suffix .internal"),
        ("all", false, &["0.0.0.0/0", "::/0"], "http://10.0.0.1/", "scheme:http"),
    ];
    let mut f = Failures::default();
    for (name, allow_http, targets, input, want) in table {
        check_url(&mut f, name, &policy(*allow_http, targets), input, want);
    }
    f.finish();
}

// ---- WebhookUrl: length -----------------------------------------------

fn url_of_len(len: usize) -> String {
    let base = "https://example.com/";
    format!("{base}{}", "a".repeat(len - base.len()))
}

#[test]
fn url_length_limits() {
    let p = UrlPolicy::default();
    let exact = url_of_len(2048);
    assert_eq!(exact.len(), 2048);
    assert_eq!(WebhookUrl::parse(&exact, &p).unwrap().as_str(), exact);
    assert!(WebhookUrl::parse(&url_of_len(2047), &p).is_ok());
    assert_eq!(
        WebhookUrl::parse(&url_of_len(2049), &p),
        Err(UrlError::TooLong { max: 2048 })
    );
    assert_eq!(
        WebhookUrl::parse(&url_of_len(10_000), &p),
        Err(UrlError::TooLong { max: MAX_URL_LEN })
    );
    // Whitespace around the URL is refused, not trimmed (and counts).
    assert_eq!(
        WebhookUrl::parse(&format!(" {}", url_of_len(2047)), &p),
        Err(UrlError::Whitespace { at: 0 })
    );
    assert_eq!(
        WebhookUrl::parse(&format!("{exact} "), &p),
        Err(UrlError::TooLong { max: 2048 })
    );
    // The limit applies before anything else is looked at.
    let long_http = format!("http://{}", "a".repeat(2048));
    assert_eq!(
        WebhookUrl::parse(&long_http, &p),
        Err(UrlError::TooLong { max: 2048 })
    );
    // Short input that normalisation blows up past the limit.
    let expands = format!("https://example.com/{}", "\u{e9}".repeat(1000));
    assert!(expands.len() <= 2048);
    assert_eq!(
        WebhookUrl::parse(&expands, &p),
        Err(UrlError::TooLong { max: 2048 })
    );
}

// ---- WebhookUrl: accessors --------------------------------------------

#[test]
fn accessors() {
    /// (input, as_str, host_str, port, is_https, ip_literal)
    type Row<'a> = (&'a str, &'a str, &'a str, u16, bool, Option<&'a str>);
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("https://example.com/", "https://example.com/", "example.com", 443, true, None),
        ("https://example.com:443/", "https://example.com/", "example.com", 443, true, None),
        ("https://example.com:8443/x", "https://example.com:8443/x", "example.com", 8443, true, None),
        ("https://example.com./", "https://example.com./", "example.com.", 443, true, None),
        ("http://example.com/", "http://example.com/", "example.com", 80, false, None),
        ("http://example.com:8080/", "http://example.com:8080/", "example.com", 8080, false, None),
        ("http://example.com:443/", "http://example.com:443/", "example.com", 443, false, None),
        ("https://1.1.1.1/", "https://1.1.1.1/", "1.1.1.1", 443, true, Some("1.1.1.1")),
        
        ("https://[2606:4700::1111]/", "https://[2606:4700::1111]/", "2606:4700::1111", 443, true, Some("2606:4700::1111")),
        ("https://[2606:4700::1111]:8443/", "https://[2606:4700::1111]:8443/", "2606:4700::1111", 8443, true, Some("2606:4700::1111")),
        ("https://[::ffff:8.8.8.8]/", "https://[::ffff:808:808]/", "::ffff:808:808", 443, true, Some("::ffff:8.8.8.8")),
        ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook", "127.0.0.1", 9000, false, Some("127.0.0.1")),
        ("https://[::1]/", "https://[::1]/", "::1", 443, true, Some("::1")),
    ];
    let p = policy(true, &["127.0.0.1/32", "::1/128"]);
    let mut f = Failures::default();
    for &(input, as_str, host, port, https, lit) in table {
        let u = match WebhookUrl::parse(input, &p) {
            Ok(u) => u,
            Err(e) => {
                f.check(false, || format!("{input:?}: unexpected error {e:?}"));
                continue;
            }
        };
        f.check(u.as_str() == as_str, || {
            format!("{input:?}: as_str {}", u.as_str())
        });
        f.check(u.to_string() == as_str, || {
            format!("{input:?}: Display {u}")
        });
        f.check(u.url().as_str() == as_str, || {
            format!("{input:?}: url() {}", u.url())
        });
        f.check(AsRef::<str>::as_ref(&u) == as_str, || {
            format!("{input:?}: as_ref")
        });
        f.check(u.host_str() == host, || {
            format!("{input:?}: host_str {}", u.host_str())
        });
        f.check(u.port() == port, || format!("{input:?}: port {}", u.port()));
        f.check(u.is_https() == https, || {
            format!("{input:?}: is_https {}", u.is_https())
        });
        let want_lit = lit.map(ip);
        f.check(u.ip_literal() == want_lit, || {
            format!(
                "{input:?}: ip_literal {:?}, want {want_lit:?}",
                u.ip_literal()
            )
        });
    }
    f.finish();
}

#[test]
fn parsed_urls_compare_by_normalised_form() {
    let p = UrlPolicy::default();
    let a = WebhookUrl::parse("HTTPS://Example.COM:443", &p).unwrap();
    let b = WebhookUrl::parse("https://example.com/", &p).unwrap();
    assert_eq!(a, b);
}

// ---- Display texts ------------------------------------------------------

#[test]
fn block_reason_display() {
    let all = [
        (Unspecified, "unspecified address"),
        (Loopback, "loopback address"),
        (Private, "private network address"),
        (LinkLocal, "link-local address"),
        (SharedAddressSpace, "shared (carrier-grade nat) address"),
        (Multicast, "multicast address"),
        (Broadcast, "broadcast address"),
        (Reserved, "reserved address"),
        (Documentation, "documentation address"),
        (Benchmarking, "benchmarking address"),
        (UniqueLocal, "unique local address"),
        (
            Ipv4Translated,
            "ipv6 address embedding a blocked ipv4 address",
        ),
        (SpecialPurpose, "special-purpose address"),
        (CloudPlatform, "cloud platform address"),
    ];
    let mut seen = std::collections::HashSet::new();
    for (reason, text) in all {
        assert_eq!(reason.to_string(), text, "{reason:?}");
        assert_eq!(reason.as_str(), text, "{reason:?}");
        assert_eq!(text, text.to_lowercase(), "{reason:?} must be lowercase");
        assert!(seen.insert(text), "{reason:?} text is not unique");
    }
}

#[test]
fn url_error_display() {
    let cases = [
        (UrlError::Empty, "webhook URL must not be empty"),
        (
            UrlError::TooLong { max: 2048 },
            "webhook URL must be at most 2048 bytes long",
        ),
        (
            UrlError::Unparseable("empty host".into()),
            "webhook URL is not a valid absolute URL: empty host",
        ),
        (
            UrlError::SchemeNotAllowed {
                scheme: "ftp".into(),
                allow_http: false,
            },
            "webhook URL scheme `ftp` is not allowed; use https://",
        ),
        (
            UrlError::SchemeNotAllowed {
                scheme: "ftp".into(),
                allow_http: true,
            },
            "webhook URL scheme `ftp` is not allowed; use https:// or http://",
        ),
        (
            UrlError::UserinfoNotAllowed,
            "webhook URL must not contain a username or password (`user:password@`)",
        ),
        (
            UrlError::FragmentNotAllowed,
            "webhook URL must not contain a fragment (`#...`)",
        ),
        (UrlError::MissingHost, "webhook URL must have a host"),
        (
            UrlError::BlockedAddress {
                ip: ip("127.0.0.1"),
                refusal: refusal(ip("127.0.0.1")).unwrap(),
            },
            "webhook URL host 127.0.0.1 is not allowed (loopback address: 127.0.0.0/8, loopback (RFC 1122))",
        ),
        (
            UrlError::BlockedAddress {
                ip: ip("fd00:ec2::254"),
                refusal: refusal(ip("fd00:ec2::254")).unwrap(),
            },
            "webhook URL host fd00:ec2::254 is not allowed (cloud platform address: fd00:ec2::254/128, AWS instance metadata service (IPv6))",
        ),
        (
            UrlError::BlockedAddress {
                ip: ip("fd12::1"),
                refusal: refusal(ip("fd12::1")).unwrap(),
            },
            "webhook URL host fd12::1 is not allowed (unique local address: fc00::/7, unique local (RFC 4193))",
        ),
        (
            UrlError::ControlCharacter { at: 5, found: '\t' },
            "webhook URL must not contain control characters; found U+0009 (tab) at character 6",
        ),
        (
            UrlError::Whitespace { at: 0 },
            "webhook URL must not contain spaces or other whitespace (found at character 1); percent-encode a space in the path or query as %20",
        ),
        (
            UrlError::NonCanonicalIp { written: "16843009".into(), canonical: v4("1.1.1.1") },
            "webhook URL host `16843009` is an IPv4 address in a non-standard form; write it as 1.1.1.1",
        ),
        (
            UrlError::HostTooLong { len: 254 },
            "webhook URL host name must be at most 253 characters long (it has 254)",
        ),
        (
            UrlError::LabelTooLong { label: "x".repeat(64) },
            &format!("webhook URL host name label `{}` is longer than 63 characters", "x".repeat(64)),
        ),
        (
            UrlError::BlockedHostname {
                host: "localhost".into(),
                reason: "localhost",
            },
            "webhook URL host `localhost` is not allowed (localhost)",
        ),
        (
            UrlError::InvalidPort,
            "webhook URL port must be between 1 and 65535",
        ),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), text, "{err:?}");
    }
    // The unparseable message carries the url crate's reason.
    let e = WebhookUrl::parse("https://", &UrlPolicy::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "webhook URL is not a valid absolute URL: empty host"
    );
}

#[test]
fn raw_authority_scan() {
    let table: &[(&str, bool)] = &[
        ("https://@example.com/", true),
        ("https://user@example.com", true),
        ("https:\\\\@x", true),
        ("https:@x", true),
        ("https://ex\tample.com/@x", false),
        ("https://example.com/@x", false),
        ("https://example.com?@", false),
        ("https://example.com#@", false),
        ("https://example.com\\@x", false),
        ("no-colon-here@", false),
    ];
    for &(input, want) in table {
        assert_eq!(raw_authority_has_at(input), want, "{input:?}");
    }
}

// ---- WebhookUrl: written form (refused, never repaired) ------------------

/// Every control character (C0, DEL, C1).
fn control_chars() -> impl Iterator<Item = char> {
    (0u32..=0x1f)
        .chain([0x7f])
        .chain(0x80..=0x9f)
        .map(|u| char::from_u32(u).unwrap())
}

/// A control character anywhere — before the scheme, in the host, the path,
/// the query, at the end — is refused, never stripped (65 characters × 6
/// places).
#[test]
fn urls_with_a_control_character_anywhere_are_refused() {
    let p = UrlPolicy::default();
    let mut f = Failures::default();
    let mut rows = 0;
    for c in control_chars() {
        for input in [
            format!("{c}https://example.com/"),
            format!("https{c}://example.com/"),
            format!("https://exa{c}mple.com/"),
            format!("https://example.com/a{c}b"),
            format!("https://example.com/?q={c}"),
            format!("https://example.com/{c}"),
        ] {
            rows += 1;
            check_url(&mut f, "https-only", &p, &input, "control");
        }
        // The message names the character and where it is.
        if let Err(e) = WebhookUrl::parse(&format!("https://example.com/{c}"), &p) {
            let want = format!("found {} at character 21", crate::text::describe(c));
            f.check(e.to_string().contains(&want), || format!("{e}"));
        }
    }
    assert_eq!(rows, 390);
    f.finish();
}

/// What a WHATWG parser would repair, each in the places it could appear.
#[test]
fn urls_a_lenient_parser_would_repair_are_refused() {
    let p = UrlPolicy::default();
    let mut f = Failures::default();
    // Whitespace, ASCII and Unicode: never trimmed, never percent-encoded for us.
    for w in [
        ' ', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2007}', '\u{200a}', '\u{2028}', '\u{2029}',
        '\u{202f}', '\u{205f}', '\u{3000}',
    ] {
        for input in [
            format!("{w}https://example.com/"),
            format!("https://example.com/{w}"),
            format!("https://exa{w}mple.com/"),
            format!("https://example.com/a{w}b"),
            format!("https://example.com/?q=a{w}b"),
        ] {
            check_url(&mut f, "https-only", &p, &input, "whitespace");
        }
    }
    // Invisible formatting characters.
    for c in [
        '\u{ad}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{202e}', '\u{2060}',
        '\u{feff}',
    ] {
        for input in [
            format!("https://exa{c}mple.com/"),
            format!("https://example.com/a{c}b"),
            format!("https://example.com/?{c}"),
        ] {
            check_url(&mut f, "https-only", &p, &input, "malformed");
        }
    }
    // ASCII characters outside RFC 3986, in the path and in the query.
    for c in ['"', '<', '>', '\\', '^', '`', '{', '|', '}'] {
        for input in [
            format!("https://example.com/a{c}b"),
            format!("https://example.com/?q={c}"),
            format!("https://example.com/?{c}"),
        ] {
            check_url(&mut f, "https-only", &p, &input, "malformed");
        }
    }
    #[rustfmt::skip]
    let table: &[(&str, &str)] = &[
        // slashes after the scheme
        ("https:example.com/", "malformed"),
        ("https:/example.com/", "malformed"),
        ("https:///example.com/", "malformed"),
        ("https:////example.com/", "malformed"),
        ("https:\\\\example.com/", "malformed"),
        ("https:/\\example.com/", "malformed"),
        ("https:\\/example.com/", "malformed"),
        ("https://example.com\\hook", "malformed"),
        ("https://example.com/a\\b", "malformed"),
        ("HTTPS:example.com", "malformed"),
        // dot segments (the parser would resolve them)
        ("https://example.com/./hook", "malformed"),
        ("https://example.com/../hook", "malformed"),
        ("https://example.com/a/..", "malformed"),
        ("https://example.com/a/.", "malformed"),
        ("https://example.com/a/%2e/b", "malformed"),
        ("https://example.com/a/%2E%2E/b", "malformed"),
        ("https://example.com/a/.%2e/b", "malformed"),
        ("https://example.com/a/%2e./b", "malformed"),
        ("https://example.com/.well-known/hook", "ok:https://example.com/.well-known/hook"),
        ("https://example.com/a..b/c.d", "ok:https://example.com/a..b/c.d"),
        ("https://example.com/...", "ok:https://example.com/..."),
        ("https://example.com/?x=/../", "ok:https://example.com/?x=/../"),
        // percent-encoding
        ("https://example.com/%", "malformed"),
        ("https://example.com/%2", "malformed"),
        ("https://example.com/%zz", "malformed"),
        ("https://example.com/?q=100%", "malformed"),
        ("https://example.com/%%41", "malformed"),
        ("https://example.com/%25", "ok:https://example.com/%25"),
        ("https://example.com/%e2%9c%93", "ok:https://example.com/%e2%9c%93"),
        ("https://ex%61mple.com/", "malformed"),
        ("https://example.com%2f@evil.com/", "userinfo"),
        // brackets only around an IPv6 host
        ("https://example.com/[x]", "malformed"),
        ("https://example.com/?a[]=1", "malformed"),
        ("https://example.com/?a%5B%5D=1", "ok:https://example.com/?a%5B%5D=1"),
        ("https://exa[mple.com/", "malformed"),
        ("https://[2606:4700::1111]x/", "malformed"),
        ("https://[2606:4700::1111]:8443/", "ok:https://[2606:4700::1111]:8443/"),
        // IPv4 addresses in any form but a.b.c.d (the parser would rewrite them)
        ("https://1.1.1.1/", "ok:https://1.1.1.1/"),
        ("https://1.1.1.1./", "noncanonical"),
        ("https://01.1.1.1/", "noncanonical"),
        ("https://1.1.1.01/", "noncanonical"),
        ("https://0x1.1.1.1/", "noncanonical"),
        ("https://1.65793/", "noncanonical"),
        ("https://1.1.257/", "noncanonical"),
        ("https://16843009/", "noncanonical"),
        ("https://0x01010101/", "noncanonical"),
        ("https://001.001.001.001/", "noncanonical"),
        // international names: their own standard form only
        ("https://b\u{fc}cher.de/", "ok:https://xn--bcher-kva.de/"),
        ("https://B\u{dc}CHER.de/", "ok:https://xn--bcher-kva.de/"),
        ("https://\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com/", "malformed"),
        ("https://example\u{3002}com/", "malformed"),
        ("https://\u{fb01}le.com/", "malformed"),
        ("https://xn--bcher-kva.de/", "ok:https://xn--bcher-kva.de/"),
        // what is accepted as written
        ("https://example.com", "ok:https://example.com/"),
        ("https://example.com?q", "ok:https://example.com/?q"),
        ("HTTPS://EXAMPLE.COM/Path", "ok:https://example.com/Path"),
        ("https://example.com:443/", "ok:https://example.com/"),
        ("https://example.com:/", "ok:https://example.com/"),
        ("https://example.com/~user/a-b_c.d!$&'()*+,;=:@", "ok:https://example.com/~user/a-b_c.d!$&'()*+,;=:@"),
        ("https://example.com/?a=1&b=%20&c=d/e?f", "ok:https://example.com/?a=1&b=%20&c=d/e?f"),
        ("https://example.com/caf\u{e9}", "ok:https://example.com/caf%C3%A9"),
    ];
    for (input, want) in table {
        check_url(&mut f, "https-only", &p, input, want);
    }
    f.finish();
}

fn host_of(labels: &[usize]) -> String {
    labels
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let c = (b'a' + (i % 26) as u8) as char;
            c.to_string().repeat(n)
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[test]
fn host_names_are_within_dns_limits() {
    let p = UrlPolicy::default();
    let mut f = Failures::default();
    // Labels: 63 octets is the most.
    for (labels, want) in [
        (vec![63, 3], "ok"),
        (vec![64, 3], "label-too-long"),
        (vec![3, 64, 3], "label-too-long"),
        (vec![3, 200], "label-too-long"),
        (vec![1, 63, 63, 63, 59], "ok"),
    ] {
        let host = host_of(&labels);
        check_url(&mut f, "labels", &p, &format!("https://{host}/"), want);
        check_url(&mut f, "labels", &p, &format!("https://{host}./"), want);
    }
    // The whole name: 253 octets is the most (a final dot doesn't count).
    let h253 = host_of(&[63, 63, 63, 61]);
    assert_eq!(h253.len(), 253);
    let h254 = host_of(&[63, 63, 63, 62]);
    check_url(&mut f, "host", &p, &format!("https://{h253}/"), "ok");
    check_url(&mut f, "host", &p, &format!("https://{h253}./"), "ok");
    check_url(
        &mut f,
        "host",
        &p,
        &format!("https://{h254}/"),
        "host-too-long",
    );
    // International labels count in their ASCII form: 59 characters as
    // written, more than 63 octets as punycode.
    let idn = format!("https://{}\u{fc}.de/", "a".repeat(58));
    check_url(&mut f, "idn", &p, &idn, "label-too-long");
    f.finish();
    assert_eq!(
        WebhookUrl::parse(&format!("https://{h254}/"), &p).unwrap_err(),
        UrlError::HostTooLong { len: 254 }
    );
}

/// What `parse` accepts, it accepts again in its stored form, unchanged:
/// normalising never produces something the written-form rules refuse.
#[test]
fn accepted_urls_round_trip_through_their_stored_form() {
    let p = policy(true, &["127.0.0.1/32", "::1/128"]);
    for input in [
        "https://example.com",
        "HTTPS://Example.COM:443/a/b?c=d&e",
        "https://b\u{fc}cher.de/caf\u{e9}?q=\u{e9}",
        "https://example.com/?q='x'",
        "https://[2606:4700:0:0:0:0:0:1111]:8443/",
        "https://[::ffff:8.8.8.8]/",
        "http://127.0.0.1:8080/hook",
        "https://localhost./x",
        "https://example.com/%7e/%41",
    ] {
        let first = WebhookUrl::parse(input, &p).unwrap_or_else(|e| panic!("{input}: {e}"));
        let again = WebhookUrl::parse(first.as_str(), &p)
            .unwrap_or_else(|e| panic!("{input} → {}: {e}", first.as_str()));
        assert_eq!(first, again, "{input}");
        assert_eq!(WebhookUrl::from_stored(first.as_str(), &p), Ok(first));
    }
}

/// Stored rows are re-checked against the policy (which may have tightened)
/// but not the written-form rules (which may be newer than the row).
#[test]
fn stored_urls_get_the_policy_again_but_not_the_written_form_rules() {
    let p = UrlPolicy::default();
    #[rustfmt::skip]
    let table: &[(&str, &str)] = &[
        // written before the written-form rules: still delivered to
        ("https://example.com/a|b", "ok:https://example.com/a|b"),
        ("https://example.com/?q={x}^`\\", "ok:https://example.com/?q={x}^`\\"),
        ("https://example.com/a[1]", "ok:https://example.com/a[1]"),
        // the policy applies to every row, whenever it was saved
        ("https://[2002:808:808::1]/", "addr:SpecialPurpose"),
        ("https://168.63.129.16/", "addr:CloudPlatform"),
        ("https://127.0.0.1/", "addr:Loopback"),
        ("https://localhost/", H_LOCALHOST),
        ("http://example.com/", "scheme:http"),
        ("https://user@example.com/", "userinfo"),
        ("", "empty"),
    ];
    let mut f = Failures::default();
    for (stored, want) in table {
        let got = outcome(&WebhookUrl::from_stored(stored, &p));
        let ok = if *want == "ok" {
            got.starts_with("ok:")
        } else {
            got == *want
        };
        f.check(ok, || format!("stored {stored:?}: want {want}, got {got}"));
    }
    f.finish();
}
