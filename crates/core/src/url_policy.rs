//! SSRF protection: which webhook URLs Hookline accepts, and which resolved
//! addresses it is willing to connect to.
//!
//! Hookline makes outbound HTTP requests to URLs chosen by its users. Without a
//! policy, anyone who can register an endpoint can make the sender talk to
//! things only the Hookline host can reach: cloud metadata services
//! (`169.254.169.254`, `fd00:ec2::254`), admin ports on loopback, databases on
//! the private network. This module is the single place that decides what is
//! reachable, so the API layer and the sender cannot drift apart.
//!
//! The check happens twice, on purpose:
//!
//! 1. **At create/update time** ([`WebhookUrl::parse`]): gives the user an
//!    immediate, explainable error for obviously internal targets (IP literals
//!    in blocked ranges, `localhost`, `.internal` names, credentials in the
//!    URL). It deliberately does *not* resolve DNS: an answer seen at creation
//!    proves nothing about the answer seen at delivery time, and resolving here
//!    would turn the API into a DNS oracle.
//! 2. **At connect time** ([`UrlPolicy::filter_resolved`]): the sender must run
//!    every DNS answer through this filter and dial only the addresses it
//!    returns (never re-resolve the name afterwards). This is the check that
//!    actually stops DNS rebinding and public names pointing at private
//!    addresses; step 1 is only a courtesy that catches the easy cases early.
//!
//! Addresses are classified by [`classify_ip`], a pure function over the IANA
//! special-purpose registries. IPv6 forms that embed an IPv4 address (mapped,
//! compatible, NAT64, 6to4) are unwrapped and the inner address is judged,
//! because the kernel, a NAT64 gateway or a 6to4 relay will deliver the packet
//! to that inner address; judging only the outer IPv6 form would let
//! `[::ffff:127.0.0.1]` through.
//!
//! [`UrlPolicy::allow_targets`] is the escape hatch for tests and local
//! development (e.g. `127.0.0.1/32` so integration tests can deliver to a local
//! receiver). It only overrides the *address* classification: it never enables
//! `http://`, which stays a separate, explicit switch.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use url::{Host, Url};

/// Longest webhook URL accepted, in bytes. Long enough for any real endpoint
/// with a token in the query string, short enough that a URL cannot be used to
/// bloat the database or request logs.
pub const MAX_URL_LEN: usize = 2048;

// ---------------------------------------------------------------------------
// IpCidr
// ---------------------------------------------------------------------------

/// A CIDR block, e.g. `"127.0.0.1/32"`, `"::1/128"`, `"10.0.0.0/8"`. A bare
/// address means `/32` or `/128`.
///
/// Host bits are masked off on construction (`10.1.2.3/8` becomes
/// `10.0.0.0/8`) rather than rejected: operators write allowlists by hand and
/// the intent of `10.1.2.3/8` is unambiguous, while equality and `Display`
/// should still see one canonical value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    network: IpAddr,
    prefix_len: u8,
}

impl IpCidr {
    /// Builds a block from an address and prefix length, masking host bits.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IpCidr, String> {
        let max = max_prefix(addr);
        if prefix_len > max {
            return Err(format!(
                "prefix length /{prefix_len} is too long for {addr} (maximum is /{max})"
            ));
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix_len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix_len))),
        };
        Ok(IpCidr {
            network,
            prefix_len,
        })
    }

    /// Parses `addr/len` or a bare address. Surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<IpCidr, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty CIDR block; expected an address like 10.0.0.0/8 or ::1/128".into());
        }
        let (addr_part, prefix_part) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        // std's parser is strict (no octal, no short forms, no zone ids), which
        // is what we want for configuration: an allowlist entry should mean
        // exactly what it looks like.
        let addr: IpAddr = addr_part
            .parse()
            .map_err(|_| format!("invalid IP address `{addr_part}` in CIDR block `{s}`"))?;
        let prefix_len = match prefix_part {
            None => max_prefix(addr),
            Some(p) => {
                // u8::from_str accepts a leading '+', which nobody means.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("invalid prefix length `/{p}` in CIDR block `{s}`"));
                }
                p.parse::<u8>()
                    .map_err(|_| format!("invalid prefix length `/{p}` in CIDR block `{s}`"))?
            }
        };
        IpCidr::new(addr, prefix_len).map_err(|e| format!("invalid CIDR block `{s}`: {e}"))
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` falls inside this block.
    ///
    /// An IPv4 block also matches the IPv4-mapped IPv6 form of its addresses
    /// (`::ffff:a.b.c.d`): on a dual-stack socket that *is* the IPv4 address,
    /// so an allowlist entry for `127.0.0.1/32` must not be defeated by which
    /// family the resolver happened to return. The reverse is not done: an
    /// IPv6 block such as `::/0` is not meant to cover the IPv4 internet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask_v4(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V4(net), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| u32::from(a) & mask_v4(self.prefix_len) == u32::from(net)),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask_v6(self.prefix_len) == u128::from(net)
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_v4(prefix_len: u8) -> u32 {
    // checked_shl because a shift by the full width is an overflow, not zero.
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for IpCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpCidr::parse(s)
    }
}

// Configuration files list allow_targets as strings, so (de)serialise through
// the same text form that Display/parse use.
impl serde::Serialize for IpCidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpCidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        IpCidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Policy and classification
// ---------------------------------------------------------------------------

/// Deployment-wide policy.
///
/// The default is the safe production setting: `https://` only, no
/// exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlPolicy {
    /// `http://` permitted besides `https://`.
    pub allow_http: bool,
    /// Explicit exceptions (tests, local development), e.g. `127.0.0.1/32`.
    /// An address inside any of these blocks is permitted whatever its class.
    pub allow_targets: Vec<IpCidr>,
}

/// Why an address is refused. `Display` gives a short lowercase phrase, e.g.
/// `"loopback address"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// `0.0.0.0/8`, `::/128`.
    Unspecified,
    /// `127.0.0.0/8`, `::1/128`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `169.254/16` (includes cloud metadata), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    SharedAddressSpace,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`, deprecated site-local `fec0::/10`, and IPv6 outside
    /// `2000::/3` that no other rule covers.
    Reserved,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// `fc00::/7` (includes AWS metadata `fd00:ec2::254`).
    UniqueLocal,
    /// IPv4-compatible (`::a.b.c.d`) or NAT64 (`64:ff9b::/96`) address whose
    /// embedded IPv4 address is itself blocked.
    Ipv4Translated,
    /// Other IANA special-purpose blocks: `192.0.0.0/24`, `192.88.99.0/24`,
    /// `2001::/23` (Teredo, ORCHID, ...), `100::/64` discard,
    /// `64:ff9b:1::/48` local-use NAT64, 6to4 (`2002::/16`) with a blocked
    /// embedded IPv4 address.
    SpecialPurpose,
}

impl BlockReason {
    /// The short lowercase phrase used by `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Unspecified => "unspecified address",
            BlockReason::Loopback => "loopback address",
            BlockReason::Private => "private network address",
            BlockReason::LinkLocal => "link-local address",
            BlockReason::SharedAddressSpace => "shared (carrier-grade nat) address",
            BlockReason::Multicast => "multicast address",
            BlockReason::Broadcast => "broadcast address",
            BlockReason::Reserved => "reserved address",
            BlockReason::Documentation => "documentation address",
            BlockReason::Benchmarking => "benchmarking address",
            BlockReason::UniqueLocal => "unique local address",
            BlockReason::Ipv4Translated => "ipv6 address embedding a blocked ipv4 address",
            BlockReason::SpecialPurpose => "special-purpose address",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPv4 blocks, most specific first (broadcast sits inside 240/4).
#[rustfmt::skip]
const V4_BLOCKS: &[([u8; 4], u8, BlockReason)] = &[
    ([255, 255, 255, 255], 32, BlockReason::Broadcast),
    // "This network"; Linux dials 0.0.0.0 as if it were loopback.
    ([0, 0, 0, 0], 8, BlockReason::Unspecified),
    ([10, 0, 0, 0], 8, BlockReason::Private),
    ([100, 64, 0, 0], 10, BlockReason::SharedAddressSpace),
    ([127, 0, 0, 0], 8, BlockReason::Loopback),
    ([169, 254, 0, 0], 16, BlockReason::LinkLocal),
    ([172, 16, 0, 0], 12, BlockReason::Private),
    // IETF protocol assignments; a few of these are technically global, but
    // none is a plausible webhook receiver.
    ([192, 0, 0, 0], 24, BlockReason::SpecialPurpose),
    ([192, 0, 2, 0], 24, BlockReason::Documentation),
    // Deprecated 6to4 relay anycast: whoever answers is not a webhook server.
    ([192, 88, 99, 0], 24, BlockReason::SpecialPurpose),
    ([192, 168, 0, 0], 16, BlockReason::Private),
    ([198, 18, 0, 0], 15, BlockReason::Benchmarking),
    ([198, 51, 100, 0], 24, BlockReason::Documentation),
    ([203, 0, 113, 0], 24, BlockReason::Documentation),
    ([224, 0, 0, 0], 4, BlockReason::Multicast),
    ([240, 0, 0, 0], 4, BlockReason::Reserved),
];

/// IPv6 blocks that are refused outright (embedded-IPv4 forms are handled in
/// code before this table). Most specific first where blocks nest.
#[rustfmt::skip]
const V6_BLOCKS: &[([u16; 8], u8, BlockReason)] = &[
    // Local-use NAT64 (RFC 8215) is refused entirely rather than unwrapped:
    // it is operator-defined, may use any RFC 6052 prefix length (so the IPv4
    // address is not necessarily in the last 32 bits), and exists precisely to
    // translate to *internal* IPv4 space.
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, BlockReason::SpecialPurpose),
    // Discard-only.
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, BlockReason::SpecialPurpose),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, BlockReason::Documentation),
    ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, BlockReason::Benchmarking),
    // IETF protocol assignments: Teredo (2001::/32) tunnels to an IPv4 address
    // we cannot vet through a relay we do not control; ORCHID is not routable.
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, BlockReason::SpecialPurpose),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, BlockReason::Documentation),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, BlockReason::UniqueLocal),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, BlockReason::LinkLocal),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, BlockReason::Reserved),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, BlockReason::Multicast),
];

/// Pure classification, ignoring any allowlist. `None` means globally
/// routable, OK to dial.
///
/// Embedded IPv4 forms are unwrapped and the inner address decides:
/// * IPv4-mapped `::ffff:a.b.c.d` reports the inner reason unchanged (it *is*
///   the IPv4 address as far as a dual-stack socket is concerned, so
///   "loopback address" is the honest answer);
/// * IPv4-compatible `::a.b.c.d` and NAT64 `64:ff9b::a.b.c.d` report
///   [`BlockReason::Ipv4Translated`];
/// * 6to4 `2002:aabb:ccdd::/48` reports [`BlockReason::SpecialPurpose`].
///
/// In each case a public inner address makes the whole address acceptable.
pub fn classify_ip(ip: IpAddr) -> Option<BlockReason> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<BlockReason> {
    let a = u32::from(ip);
    V4_BLOCKS
        .iter()
        .find(|(net, len, _)| a & mask_v4(*len) == u32::from_be_bytes(*net))
        .map(|&(_, _, reason)| reason)
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockReason> {
    // :: and ::1 sit inside ::/96 and must not be read as 0.0.0.0 / 0.0.0.1.
    if ip.is_unspecified() {
        return Some(BlockReason::Unspecified);
    }
    if ip.is_loopback() {
        return Some(BlockReason::Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let seg = ip.segments();
    let low32 = Ipv4Addr::from(u128::from(ip) as u32);
    // IPv4-compatible (deprecated, ::/96) and NAT64 well-known prefix.
    if seg[..6] == [0, 0, 0, 0, 0, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(low32).map(|_| BlockReason::Ipv4Translated);
    }
    // 6to4: the relay delivers to the IPv4 address in bits 16..48.
    if seg[0] == 0x2002 {
        let inner = Ipv4Addr::from((u32::from(seg[1]) << 16) | u32::from(seg[2]));
        return classify_v4(inner).map(|_| BlockReason::SpecialPurpose);
    }
    let a = u128::from(ip);
    if let Some(&(_, _, reason)) = V6_BLOCKS
        .iter()
        .find(|(net, len, _)| a & mask_v6(*len) == u128::from(Ipv6Addr::from(*net)))
    {
        return Some(reason);
    }
    // Only 2000::/3 is allocated as global unicast; anything else that got
    // this far is unassigned or reserved space.
    if seg[0] & 0xe000 == 0x2000 {
        None
    } else {
        Some(BlockReason::Reserved)
    }
}

impl UrlPolicy {
    /// Policy decision for one address: `Ok` if it is inside `allow_targets`
    /// (checked on the canonical form and the raw form) or [`classify_ip`]
    /// finds nothing wrong with it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), BlockReason> {
        // Both forms, so that a v6 allowlist entry written as ::ffff:... and a
        // v4 entry both match whichever form the resolver produced.
        let canonical = ip.to_canonical();
        if self
            .allow_targets
            .iter()
            .any(|c| c.contains(ip) || c.contains(canonical))
        {
            return Ok(());
        }
        match classify_ip(ip) {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }

    /// Connect-time filter used by the sender after DNS resolution: keeps only
    /// permitted addresses, in order (so happy-eyeballs preferences survive).
    ///
    /// `Err` carries the reason the first address was refused when none
    /// remain, or [`BlockReason::Unspecified`] for an empty answer, so the
    /// caller always has something to log.
    pub fn filter_resolved(&self, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, BlockReason> {
        let mut first_reason = None;
        let mut kept = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match self.check_ip(addr.ip()) {
                Ok(()) => kept.push(*addr),
                Err(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        if kept.is_empty() {
            Err(first_reason.unwrap_or(BlockReason::Unspecified))
        } else {
            Ok(kept)
        }
    }

    /// RFC 6761 pins `localhost` names to loopback, so they are exactly as
    /// acceptable as the loopback addresses the allowlist lets through.
    fn allows_localhost_names(&self) -> bool {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        self.allow_targets
            .iter()
            .any(|c| c.contains(v4) || c.contains(v6))
    }
}

// ---------------------------------------------------------------------------
// WebhookUrl
// ---------------------------------------------------------------------------

/// Errors at create/update time. `Display` gives a sentence suitable for an
/// API error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("webhook URL must not be empty")]
    Empty,
    #[error("webhook URL must be at most {max} bytes long")]
    TooLong { max: usize },
    #[error("webhook URL is not a valid absolute URL: {0}")]
    Unparseable(String),
    #[error("webhook URL scheme `{scheme}` is not allowed; use {}", allowed_schemes(*.allow_http))]
    SchemeNotAllowed { scheme: String, allow_http: bool },
    #[error("webhook URL must not contain a username or password (`user:password@`)")]
    UserinfoNotAllowed,
    #[error("webhook URL must not contain a fragment (`#...`)")]
    FragmentNotAllowed,
    #[error("webhook URL must have a host")]
    MissingHost,
    #[error("webhook URL host {ip} is not allowed ({reason})")]
    BlockedAddress { ip: IpAddr, reason: BlockReason },
    #[error("webhook URL host `{host}` is not allowed ({reason})")]
    BlockedHostname { host: String, reason: &'static str },
    #[error("webhook URL port must be between 1 and 65535")]
    InvalidPort,
}

fn allowed_schemes(allow_http: bool) -> &'static str {
    if allow_http {
        "https:// or http://"
    } else {
        "https://"
    }
}

/// Name suffixes that never belong to a public webhook receiver. Matched on
/// whole labels. `home.arpa` precedes `arpa` so the message is specific.
const BLOCKED_SUFFIXES: &[(&str, &str)] = &[
    ("local", "non-public domain suffix .local"),
    ("internal", "non-public domain suffix .internal"),
    ("home.arpa", "non-public domain suffix .home.arpa"),
    ("localdomain", "non-public domain suffix .localdomain"),
    ("lan", "non-public domain suffix .lan"),
    ("intranet", "non-public domain suffix .intranet"),
    ("corp", "non-public domain suffix .corp"),
    ("private", "non-public domain suffix .private"),
    ("arpa", "non-public domain suffix .arpa"),
    ("test", "non-public domain suffix .test"),
    ("invalid", "non-public domain suffix .invalid"),
    ("onion", "non-public domain suffix .onion"),
    ("example", "non-public domain suffix .example"),
];

/// Reason strings for [`UrlError::BlockedHostname`] that are not suffixes.
const REASON_LOCALHOST: &str = "localhost";
const REASON_SINGLE_LABEL: &str = "single-label hostname";
const REASON_EMPTY_LABEL: &str = "empty label in hostname";

fn check_hostname(host: &str, policy: &UrlPolicy) -> Result<(), &'static str> {
    // The url crate already lowercases special-scheme hosts; this keeps the
    // function correct on its own.
    let lower = host.to_ascii_lowercase();
    // "localhost." is the same DNS name as "localhost".
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    // The url crate keeps names like "127.0.0.1.." or "a..b" as domains. Some
    // resolvers treat them loosely (even as IP literals), so refuse them rather
    // than guess.
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(REASON_EMPTY_LABEL);
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return if policy.allows_localhost_names() {
            Ok(())
        } else {
            Err(REASON_LOCALHOST)
        };
    }
    // Single labels are resolved through search domains, i.e. internally.
    if !name.contains('.') {
        return Err(REASON_SINGLE_LABEL);
    }
    for &(suffix, reason) in BLOCKED_SUFFIXES {
        if name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        {
            return Err(reason);
        }
    }
    Ok(())
}

/// Whether the raw input has an `@` in its authority component.
///
/// The url crate silently drops an *empty* userinfo (`https://@host`,
/// `https://:@host` parse as plain `https://host/`), so looking at the parsed
/// username/password is not enough. An `@` there is refused anyway because it
/// is the classic `https://trusted.example@evil.example` confusion trick.
/// This mirrors WHATWG authority splitting for special schemes: tab/newline
/// removed, any run of `/` or `\` skipped, authority ends at `/ \ ? #`.
fn raw_authority_has_at(input: &str) -> bool {
    let cleaned: String = input
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let Some((_, after_scheme)) = cleaned.split_once(':') else {
        return false;
    };
    let rest = after_scheme.trim_start_matches(['/', '\\']);
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    rest[..end].contains('@')
}

/// A validated webhook target URL. Construct only through [`WebhookUrl::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Validates `input` against `policy`. Does not resolve DNS (see the
    /// module docs for why); the sender must still apply
    /// [`UrlPolicy::filter_resolved`] at connect time.
    pub fn parse(input: &str, policy: &UrlPolicy) -> Result<WebhookUrl, UrlError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong { max: MAX_URL_LEN });
        }
        let url = Url::parse(input).map_err(|e| UrlError::Unparseable(e.to_string()))?;

        let scheme = url.scheme();
        if !(scheme == "https" || (scheme == "http" && policy.allow_http)) {
            return Err(UrlError::SchemeNotAllowed {
                scheme: scheme.to_string(),
                allow_http: policy.allow_http,
            });
        }
        // Credentials in a URL end up in logs, the database and the API's own
        // responses; receivers authenticate Hookline through signatures.
        if !url.username().is_empty() || url.password().is_some() || raw_authority_has_at(input) {
            return Err(UrlError::UserinfoNotAllowed);
        }
        // Never sent on the wire, so it can only be a mistake or an attempt to
        // exploit a parser difference downstream.
        if url.fragment().is_some() {
            return Err(UrlError::FragmentNotAllowed);
        }
        if url.port() == Some(0) {
            return Err(UrlError::InvalidPort);
        }
        match url.host() {
            None => return Err(UrlError::MissingHost),
            Some(Host::Ipv4(v4)) => check_literal(IpAddr::V4(v4), policy)?,
            Some(Host::Ipv6(v6)) => check_literal(IpAddr::V6(v6), policy)?,
            Some(Host::Domain(d)) => {
                check_hostname(d, policy).map_err(|reason| UrlError::BlockedHostname {
                    host: d.to_string(),
                    reason,
                })?
            }
        }
        // Normalisation can grow the URL (percent-encoding, punycode); the
        // stored form is what the limit is really about.
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong { max: MAX_URL_LEN });
        }
        Ok(WebhookUrl(url))
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The underlying parsed URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The host as a connector wants it: IPv6 without brackets.
    pub fn host_str(&self) -> &str {
        let host = self.0.host_str().unwrap_or_default();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The explicit port, or the scheme default.
    pub fn port(&self) -> u16 {
        self.0
            .port_or_known_default()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// `Some(ip)` when the host is an IP literal, in the form the url crate
    /// normalised it to (`http://2130706433` gives `127.0.0.1`; an IPv6
    /// literal stays IPv6 even when it is IPv4-mapped).
    pub fn ip_literal(&self) -> Option<IpAddr> {
        match self.0.host()? {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            Host::Domain(_) => None,
        }
    }
}

fn check_literal(ip: IpAddr, policy: &UrlPolicy) -> Result<(), UrlError> {
    policy
        .check_ip(ip)
        .map_err(|reason| UrlError::BlockedAddress { ip, reason })
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for WebhookUrl {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests;
