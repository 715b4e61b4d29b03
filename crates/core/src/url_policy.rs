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
//! Addresses are classified by [`classify_ip`] / [`refusal`], pure functions
//! over one table, [`SPECIAL_PURPOSE`]: the whole IANA IPv4 and IPv6
//! special-purpose registries plus well-known cloud platform addresses, each
//! row with its reason. Two IPv6 forms that embed an IPv4 address (mapped
//! `::ffff:0:0/96`, NAT64 `64:ff9b::/96`) are unwrapped and the inner address
//! is judged, because the kernel or a NAT64 gateway delivers the packet to that
//! inner address; judging only the outer IPv6 form would let
//! `[::ffff:127.0.0.1]` through. The tunnelling forms (6to4, Teredo) and the
//! deprecated IPv4-compatible form are refused whatever they embed.
//!
//! A URL is refused, never repaired ([`WebhookUrl::parse`]): anything a
//! lenient (WHATWG) parser would silently fix — surrounding spaces, tabs or
//! newlines inside, backslashes, missing or extra slashes after the scheme,
//! IPv4 addresses in decimal, octal, hex or short form, percent-encoded hosts,
//! dot segments — is an error that says what to write instead, so the stored
//! URL is the one its author meant. Host names longer than 253 octets or with
//! a label longer than 63 are refused (RFC 1035).
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

/// The class of a refused address. `Display` gives a short lowercase phrase,
/// e.g. `"loopback address"`; [`Refusal`] adds the exact block and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// `0.0.0.0/8`, `::/128`.
    Unspecified,
    /// `127.0.0.0/8`, `::1/128`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    SharedAddressSpace,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`, deprecated site-local `fec0::/10` and IPv4-compatible
    /// `::/96`, and IPv6 outside `2000::/3` that no other row covers.
    Reserved,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// `fc00::/7`.
    UniqueLocal,
    /// NAT64 (`64:ff9b::/96`) address whose embedded IPv4 address is itself
    /// blocked.
    Ipv4Translated,
    /// The other entries of the IANA special-purpose registries: IETF
    /// protocol assignments, AS112, AMT, 6to4 (whatever it embeds), Teredo,
    /// ORCHID, discard-only, local-use NAT64, segment-routing SIDs, ...
    SpecialPurpose,
    /// A public address that is internal to a cloud platform (Azure's wire
    /// server) or a well-known metadata service inside one of the blocks
    /// above (listed on its own so the refusal names it).
    CloudPlatform,
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
            BlockReason::CloudPlatform => "cloud platform address",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a row of [`SPECIAL_PURPOSE`] does with an address inside its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Refused, for this reason.
    Refuse(BlockReason),
    /// IPv4-mapped IPv6 (`::ffff:a.b.c.d`): it *is* the IPv4 address on a
    /// dual-stack socket, so the IPv4 address is judged and its reason
    /// reported unchanged.
    Mapped,
    /// NAT64 well-known prefix (`64:ff9b::a.b.c.d`): the translator delivers
    /// to the IPv4 address in the last 32 bits, so that address is judged; a
    /// blocked one is reported as [`BlockReason::Ipv4Translated`].
    Nat64,
}

/// One row of the special-purpose table: a block, what happens to addresses
/// in it, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecialBlock {
    /// The block in CIDR notation.
    pub cidr: &'static str,
    pub rule: Rule,
    /// Why: the registry entry or platform, with its reference.
    pub why: &'static str,
}

const fn row(cidr: &'static str, reason: BlockReason, why: &'static str) -> SpecialBlock {
    SpecialBlock {
        cidr,
        rule: Rule::Refuse(reason),
        why,
    }
}

use BlockReason as R;

/// Every address block Hookline refuses to call, with its reason: the whole
/// IANA IPv4 and IPv6 special-purpose address registries (whether or not the
/// registry marks an entry "globally reachable": none is a plausible webhook
/// receiver), multicast, and well-known cloud platform addresses. The most
/// specific row that contains an address decides (so a metadata address
/// inside link-local space is reported as what it is). An IPv4 address no row
/// contains is permitted; an IPv6 address no row contains is permitted only
/// inside global unicast `2000::/3`. [`UrlPolicy::allow_targets`] is the only
/// exemption.
#[rustfmt::skip]
pub const SPECIAL_PURPOSE: &[SpecialBlock] = &[
    // ---- IPv4 special-purpose registry (RFC 6890 and updates) ----
    row("0.0.0.0/8", R::Unspecified, "\"this network\" (RFC 791); Linux dials 0.0.0.0 as if it were loopback"),
    row("10.0.0.0/8", R::Private, "private-use (RFC 1918)"),
    row("100.64.0.0/10", R::SharedAddressSpace, "shared address space for carrier-grade NAT (RFC 6598)"),
    row("127.0.0.0/8", R::Loopback, "loopback (RFC 1122)"),
    row("169.254.0.0/16", R::LinkLocal, "link-local (RFC 3927)"),
    row("172.16.0.0/12", R::Private, "private-use (RFC 1918)"),
    row("192.0.0.0/24", R::SpecialPurpose, "IETF protocol assignments (RFC 6890)"),
    row("192.0.0.0/29", R::SpecialPurpose, "IPv4 service continuity prefix, DS-Lite (RFC 7335)"),
    row("192.0.0.8/32", R::SpecialPurpose, "IPv4 dummy address (RFC 7600)"),
    row("192.0.0.9/32", R::SpecialPurpose, "port control protocol anycast (RFC 7723)"),
    row("192.0.0.10/32", R::SpecialPurpose, "traversal using relays around NAT anycast (RFC 8155)"),
    row("192.0.0.170/31", R::SpecialPurpose, "NAT64/DNS64 discovery (RFC 7050)"),
    row("192.0.2.0/24", R::Documentation, "documentation, TEST-NET-1 (RFC 5737)"),
    row("192.31.196.0/24", R::SpecialPurpose, "AS112-v4 anycast DNS sink (RFC 7535)"),
    row("192.52.193.0/24", R::SpecialPurpose, "automatic multicast tunneling relays (RFC 7450)"),
    row("192.88.99.0/24", R::SpecialPurpose, "deprecated 6to4 relay anycast (RFC 7526)"),
    row("192.168.0.0/16", R::Private, "private-use (RFC 1918)"),
    row("192.175.48.0/24", R::SpecialPurpose, "direct delegation AS112 service (RFC 7534)"),
    row("198.18.0.0/15", R::Benchmarking, "benchmarking (RFC 2544)"),
    row("198.51.100.0/24", R::Documentation, "documentation, TEST-NET-2 (RFC 5737)"),
    row("203.0.113.0/24", R::Documentation, "documentation, TEST-NET-3 (RFC 5737)"),
    row("224.0.0.0/4", R::Multicast, "multicast (RFC 5771)"),
    row("240.0.0.0/4", R::Reserved, "reserved for future use (RFC 1112)"),
    row("255.255.255.255/32", R::Broadcast, "limited broadcast (RFC 919)"),
    // ---- IPv6 special-purpose registry (RFC 6890 and updates) ----
    row("::/128", R::Unspecified, "unspecified address (RFC 4291)"),
    row("::1/128", R::Loopback, "loopback (RFC 4291)"),
    // Not in the registry any more, but a deprecated form no network routes.
    row("::/96", R::Reserved, "deprecated IPv4-compatible IPv6 address (RFC 4291)"),
    SpecialBlock { cidr: "::ffff:0.0.0.0/96", rule: Rule::Mapped, why: "IPv4-mapped address (RFC 4291): the embedded IPv4 address is judged" },
    SpecialBlock { cidr: "64:ff9b::/96", rule: Rule::Nat64, why: "NAT64 well-known prefix (RFC 6052): the embedded IPv4 address is judged" },
    // Operator-defined, any RFC 6052 prefix length (the IPv4 address is not
    // necessarily in the last 32 bits), and meant to reach *internal* space.
    row("64:ff9b:1::/48", R::SpecialPurpose, "local-use IPv4/IPv6 translation (RFC 8215)"),
    row("100::/64", R::SpecialPurpose, "discard-only (RFC 6666)"),
    row("100:0:0:1::/64", R::SpecialPurpose, "dummy IPv6 prefix (RFC 9780)"),
    row("2001::/23", R::SpecialPurpose, "IETF protocol assignments (RFC 2928)"),
    // Teredo tunnels to an IPv4 address we cannot vet, through a relay we do
    // not control.
    row("2001::/32", R::SpecialPurpose, "Teredo tunnelling (RFC 4380)"),
    row("2001:1::1/128", R::SpecialPurpose, "port control protocol anycast (RFC 7723)"),
    row("2001:1::2/128", R::SpecialPurpose, "traversal using relays around NAT anycast (RFC 8155)"),
    row("2001:1::3/128", R::SpecialPurpose, "DNS-SD service registration protocol anycast (RFC 9665)"),
    row("2001:2::/48", R::Benchmarking, "benchmarking (RFC 5180)"),
    row("2001:3::/32", R::SpecialPurpose, "automatic multicast tunneling (RFC 7450)"),
    row("2001:4:112::/48", R::SpecialPurpose, "AS112-v6 anycast DNS sink (RFC 7535)"),
    row("2001:10::/28", R::SpecialPurpose, "deprecated ORCHID (RFC 4843)"),
    row("2001:20::/28", R::SpecialPurpose, "ORCHIDv2 overlay identifiers (RFC 7343)"),
    row("2001:30::/28", R::SpecialPurpose, "drone remote ID entity tags (RFC 9374)"),
    row("2001:db8::/32", R::Documentation, "documentation (RFC 3849)"),
    // The relay delivers to the IPv4 address in bits 16..48 and anyone may run
    // one: refused whatever it embeds.
    row("2002::/16", R::SpecialPurpose, "6to4 (RFC 3056), refused whatever IPv4 address it embeds"),
    row("2620:4f:8000::/48", R::SpecialPurpose, "direct delegation AS112 service (RFC 7534)"),
    row("3fff::/20", R::Documentation, "documentation (RFC 9637)"),
    row("5f00::/16", R::SpecialPurpose, "segment routing (SRv6) SIDs (RFC 9602)"),
    row("fc00::/7", R::UniqueLocal, "unique local (RFC 4193)"),
    row("fe80::/10", R::LinkLocal, "link-scoped unicast (RFC 4291)"),
    row("fec0::/10", R::Reserved, "deprecated site-local (RFC 3879)"),
    row("ff00::/8", R::Multicast, "multicast (RFC 4291)"),
    // ---- cloud platforms: metadata and platform services ----
    row("168.63.129.16/32", R::CloudPlatform, "Azure wire server and platform DNS (public, but internal to Azure)"),
    row("169.254.169.254/32", R::CloudPlatform, "instance metadata service (AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, ...)"),
    row("169.254.169.253/32", R::CloudPlatform, "AWS VPC DNS resolver"),
    row("169.254.169.123/32", R::CloudPlatform, "AWS time sync service"),
    row("169.254.170.2/32", R::CloudPlatform, "AWS ECS task metadata and credentials"),
    row("169.254.0.23/32", R::CloudPlatform, "Tencent Cloud metadata service"),
    row("100.100.100.200/32", R::CloudPlatform, "Alibaba Cloud metadata service"),
    row("192.0.0.192/32", R::CloudPlatform, "Oracle Cloud metadata service"),
    row("fd00:ec2::254/128", R::CloudPlatform, "AWS instance metadata service (IPv6)"),
    row("fd00:ec2::253/128", R::CloudPlatform, "AWS VPC DNS resolver (IPv6)"),
    row("fd00:ec2::123/128", R::CloudPlatform, "AWS time sync service (IPv6)"),
    row("fd20:ce::254/128", R::CloudPlatform, "Google Cloud metadata service (IPv6)"),
];

/// The IPv6 space outside global unicast that no row names.
static OUTSIDE_GLOBAL_UNICAST: SpecialBlock = SpecialBlock {
    cidr: "outside 2000::/3",
    rule: Rule::Refuse(BlockReason::Reserved),
    why: "IPv6 space outside global unicast 2000::/3, unassigned or reserved (RFC 4291)",
};

/// [`SPECIAL_PURPOSE`] parsed once, most specific first.
fn table() -> &'static [(IpCidr, &'static SpecialBlock)] {
    static TABLE: std::sync::OnceLock<Vec<(IpCidr, &'static SpecialBlock)>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows: Vec<_> = SPECIAL_PURPOSE
            .iter()
            .map(|b| {
                let cidr = IpCidr::parse(b.cidr)
                    .unwrap_or_else(|e| panic!("SPECIAL_PURPOSE row {}: {e}", b.cidr));
                (cidr, b)
            })
            .collect();
        rows.sort_by_key(|(cidr, _)| std::cmp::Reverse(cidr.prefix_len()));
        rows
    })
}

/// Why an address is refused: its class and the table row that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: BlockReason,
    pub block: &'static SpecialBlock,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {}",
            self.reason, self.block.cidr, self.block.why
        )
    }
}

/// The most specific row containing `ip`, comparing families strictly (an
/// IPv4-mapped address is found through its `::ffff:0:0/96` row, not through
/// the IPv4 rows).
fn row_of(ip: IpAddr) -> Option<&'static SpecialBlock> {
    table()
        .iter()
        .find(|(cidr, _)| cidr.network().is_ipv4() == ip.is_ipv4() && cidr.contains(ip))
        .map(|&(_, b)| b)
}

/// Pure classification with its reason and table row, ignoring any
/// allowlist. `None` means permitted.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    let Some(block) = row_of(ip) else {
        return match ip {
            IpAddr::V6(v6) if v6.segments()[0] & 0xe000 != 0x2000 => Some(Refusal {
                reason: BlockReason::Reserved,
                block: &OUTSIDE_GLOBAL_UNICAST,
            }),
            _ => None,
        };
    };
    let inner = || match ip {
        IpAddr::V6(v6) => refusal(IpAddr::V4(Ipv4Addr::from(u128::from(v6) as u32))),
        IpAddr::V4(_) => None,
    };
    match block.rule {
        Rule::Refuse(reason) => Some(Refusal { reason, block }),
        Rule::Mapped => inner(),
        Rule::Nat64 => inner().map(|r| Refusal {
            reason: BlockReason::Ipv4Translated,
            block: r.block,
        }),
    }
}

/// Pure classification, ignoring any allowlist: the class of a refused
/// address, `None` for one that may be dialled. See [`SPECIAL_PURPOSE`].
pub fn classify_ip(ip: IpAddr) -> Option<BlockReason> {
    refusal(ip).map(|r| r.reason)
}

impl UrlPolicy {
    /// Policy decision for one address, with the table row that refused it:
    /// `Ok` if it is inside `allow_targets` (checked on the canonical form and
    /// the raw form) or no row refuses it.
    pub fn explain_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
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
        match refusal(ip) {
            None => Ok(()),
            Some(r) => Err(r),
        }
    }

    /// [`UrlPolicy::explain_ip`] reduced to the class of the refusal.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), BlockReason> {
        self.explain_ip(ip).map_err(|r| r.reason)
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

/// Longest host name accepted, in octets of its ASCII form without a final
/// dot (RFC 1035).
pub const MAX_HOST_LEN: usize = 253;
/// Longest label of a host name, in octets of its ASCII form (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// Errors at create/update time. `Display` gives a sentence suitable for an
/// API error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("webhook URL must not be empty")]
    Empty,
    #[error("webhook URL must be at most {max} bytes long")]
    TooLong { max: usize },
    #[error("webhook URL must not contain control characters; found {} at character {}", crate::text::describe(*.found), .at + 1)]
    ControlCharacter { at: usize, found: char },
    #[error("webhook URL must not contain spaces or other whitespace (found at character {}); percent-encode a space in the path or query as %20", .at + 1)]
    Whitespace { at: usize },
    /// Written in a way a lenient (WHATWG) parser would silently repair; the
    /// message says what to change.
    #[error("webhook URL {0}")]
    Malformed(String),
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
    #[error("webhook URL host `{written}` is an IPv4 address in a non-standard form; write it as {canonical}")]
    NonCanonicalIp {
        written: String,
        canonical: Ipv4Addr,
    },
    #[error("webhook URL host name must be at most {MAX_HOST_LEN} characters long (it has {len})")]
    HostTooLong { len: usize },
    #[error("webhook URL host name label `{label}` is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong { label: String },
    #[error("webhook URL host {ip} is not allowed ({refusal})")]
    BlockedAddress { ip: IpAddr, refusal: Refusal },
    #[error("webhook URL host `{host}` is not allowed ({reason})")]
    BlockedHostname { host: String, reason: &'static str },
    #[error("webhook URL port must be between 1 and 65535")]
    InvalidPort,
}

impl UrlError {
    /// The message without its leading "webhook URL", for URLs that are not
    /// a webhook's (a record's website): "must not contain ...".
    pub fn detail(&self) -> String {
        let m = self.to_string();
        m.strip_prefix("webhook URL ")
            .map(str::to_string)
            .unwrap_or(m)
    }

    /// The class of address refused, for a [`UrlError::BlockedAddress`].
    pub fn block_reason(&self) -> Option<BlockReason> {
        match self {
            UrlError::BlockedAddress { refusal, .. } => Some(refusal.reason),
            _ => None,
        }
    }
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

fn check_hostname(host: &str, policy: &UrlPolicy) -> Result<(), UrlError> {
    let blocked = |reason| UrlError::BlockedHostname {
        host: host.to_string(),
        reason,
    };
    // The url crate already lowercases special-scheme hosts; this keeps the
    // function correct on its own.
    let lower = host.to_ascii_lowercase();
    // "localhost." is the same DNS name as "localhost".
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    // The url crate keeps names like "127.0.0.1.." or "a..b" as domains. Some
    // resolvers treat them loosely (even as IP literals), so refuse them rather
    // than guess.
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(blocked(REASON_EMPTY_LABEL));
    }
    // RFC 1035 limits, on the ASCII (punycode) form that goes to DNS: a
    // longer name can't be resolved, so it can only be a mistake.
    if name.len() > MAX_HOST_LEN {
        return Err(UrlError::HostTooLong { len: name.len() });
    }
    if let Some(label) = name.split('.').find(|l| l.len() > MAX_LABEL_LEN) {
        return Err(UrlError::LabelTooLong {
            label: label.to_string(),
        });
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return if policy.allows_localhost_names() {
            Ok(())
        } else {
            Err(blocked(REASON_LOCALHOST))
        };
    }
    // Single labels are resolved through search domains, i.e. internally.
    if !name.contains('.') {
        return Err(blocked(REASON_SINGLE_LABEL));
    }
    for &(suffix, reason) in BLOCKED_SUFFIXES {
        if name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        {
            return Err(blocked(reason));
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
/// removed, any run of `/` or `\` skipped, authority ends at `/ \ ? #`. (The
/// written-form rules refuse tabs, newlines, backslashes and odd slashes
/// before this runs on new input; it stays exact for stored URLs.)
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

/// The ASCII characters a URL may hold as written (RFC 3986: unreserved,
/// reserved, and `%` starting a percent-encoding). `[` and `]` only delimit
/// an IPv6 host; everything else ASCII (`"` `<` `>` `\` `^` `` ` `` `{` `|`
/// `}`, space, controls) is what a lenient parser percent-encodes or rewrites
/// behind the writer's back.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

/// The rules about how a URL is *written*: it is refused, never repaired.
/// A WHATWG parser (the `url` crate, browsers) silently fixes missing or
/// extra slashes, backslashes, tabs and newlines anywhere, surrounding
/// spaces, percent-encoded hosts, IPv4 addresses in decimal, octal, hex or
/// short form, and `.`/`..` path segments; each of those is an error here,
/// so the stored URL is the one the user wrote (up to case, default ports and
/// the ASCII form of international names).
///
/// The first of the written-form rules: no control characters, whitespace or
/// invisible characters anywhere, and a well-formed scheme, which is returned
/// (as written) so that a scheme the policy refuses is reported as such
/// before the shape of the rest is judged.
fn written_scheme(input: &str) -> Result<&str, UrlError> {
    let malformed = |m: &str| Err(UrlError::Malformed(m.to_string()));
    if let Some((at, found)) = crate::text::find_control(input, false) {
        return Err(UrlError::ControlCharacter { at, found });
    }
    if let Some(at) = input.chars().position(char::is_whitespace) {
        return Err(UrlError::Whitespace { at });
    }
    if input.contains(is_invisible) {
        return malformed("must not contain invisible formatting characters (zero-width spaces, soft hyphens, direction marks)");
    }
    let absolute = "must be absolute: `https://` and a host, e.g. https://hooks.example.com/in";
    let Some((scheme, _)) = input.split_once(':') else {
        return malformed(absolute);
    };
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return malformed(absolute);
    }
    Ok(scheme)
}

/// The rest of the written-form rules (see [`WebhookUrl::parse`]), for an
/// input whose `scheme` passed [`written_scheme`].
fn check_written_form(input: &str, scheme: &str) -> Result<(), UrlError> {
    let malformed = |m: &str| Err(UrlError::Malformed(m.to_string()));
    let rest = &input[scheme.len() + 1..];
    if input.contains('\\') {
        return malformed(
            "must not contain a backslash (`\\`); use `/` between path segments, or %5C in a query",
        );
    }
    let Some(after) = rest.strip_prefix("//").filter(|a| !a.starts_with('/')) else {
        return Err(UrlError::Malformed(format!(
            "must have exactly two slashes after `{scheme}:`, then the host: {scheme}://host/path"
        )));
    };
    if let Some(c) = input.chars().find(|&c| c.is_ascii() && !is_uri_char(c)) {
        return Err(UrlError::Malformed(format!(
            "must not contain `{c}`; percent-encode it as %{:02X}",
            c as u32
        )));
    }
    let bytes = input.as_bytes();
    let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
    if input
        .match_indices('%')
        .any(|(i, _)| !(hex(i + 1) && hex(i + 2)))
    {
        return malformed(
            "has a `%` that doesn't start a percent-encoding like %20 (write a literal % as %25)",
        );
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, path_etc) = after.split_at(end);
    // Userinfo is refused as such later, with its own message.
    if !authority.contains('@') {
        match authority.strip_prefix('[') {
            Some(v6) => {
                let after_bracket = v6.split_once(']').map_or("", |(_, a)| a);
                if !(after_bracket.is_empty() || after_bracket.starts_with(':')) {
                    return malformed("has characters after the `]` of its IPv6 host");
                }
            }
            None if authority.contains(['[', ']']) => {
                return malformed("may use `[` and `]` only around an IPv6 host");
            }
            None => {}
        }
        if written_host(input).contains('%') {
            return malformed("host must not be percent-encoded; write it as it is");
        }
    }
    if path_etc.contains(['[', ']']) {
        return malformed(
            "may use `[` and `]` only around an IPv6 host; percent-encode them as %5B and %5D",
        );
    }
    let path = &path_etc[..path_etc.find(['?', '#']).unwrap_or(path_etc.len())];
    let dot_segment = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot_segment) {
        return malformed("path must not contain `.` or `..` segments");
    }
    Ok(())
}

/// Unicode formatting characters (category `Cf`) that render as nothing: an
/// IDNA mapping drops some of them from a host name silently, and in a path
/// they hide what the URL really is.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// The host exactly as written (between `//` and the port or path), for
/// comparing an IPv4 literal with its standard form.
fn written_host(input: &str) -> &str {
    let after = input.split_once("//").map_or(input, |(_, a)| a);
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    if authority.starts_with('[') {
        return authority;
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Only the written-form rules (nothing a lenient parser would repair), for
/// URLs that are stored as written but never called, such as a record's
/// website: the policy about where Hookline may connect doesn't apply to them.
pub fn check_written(input: &str) -> Result<(), UrlError> {
    let scheme = written_scheme(input)?;
    check_written_form(input, scheme)?;
    let url = Url::parse(input).map_err(|e| UrlError::Unparseable(e.to_string()))?;
    if let Some(Host::Ipv4(v4)) = url.host() {
        let written = written_host(input);
        if written != v4.to_string() {
            return Err(UrlError::NonCanonicalIp {
                written: written.to_string(),
                canonical: v4,
            });
        }
    }
    Ok(())
}

/// A validated webhook target URL. Construct through [`WebhookUrl::parse`]
/// (what a user wrote) or [`WebhookUrl::from_stored`] (what was saved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Validates `input` as a user wrote it against `policy`: the written-form
    /// rules (nothing a lenient parser would repair), then the policy. Does
    /// not resolve DNS (see the module docs for why); the sender must still
    /// apply [`UrlPolicy::filter_resolved`] at connect time.
    pub fn parse(input: &str, policy: &UrlPolicy) -> Result<WebhookUrl, UrlError> {
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong { max: MAX_URL_LEN });
        }
        let written = written_scheme(input)?;
        let scheme = written.to_ascii_lowercase();
        // The scheme decides first, so `mailto:` or `file:///` say so plainly.
        if !(scheme == "https" || (scheme == "http" && policy.allow_http)) {
            return Err(UrlError::SchemeNotAllowed {
                scheme,
                allow_http: policy.allow_http,
            });
        }
        check_written_form(input, written)?;
        let url = Self::checked(input, policy)?;
        let written = written_host(input);
        match url.0.host() {
            Some(Host::Ipv4(v4)) if written != v4.to_string() => {
                return Err(UrlError::NonCanonicalIp {
                    written: written.to_string(),
                    canonical: v4,
                })
            }
            // An international name is stored in its ASCII form; what was
            // written must be that name exactly (up to case), not something
            // IDNA mapping turned into it (full-width letters, ligatures).
            Some(Host::Domain(ascii)) if !written.is_ascii() => {
                let (unicode, _) = idna::domain_to_unicode(ascii);
                if written.to_lowercase() != unicode {
                    return Err(UrlError::Malformed(format!(
                        "host `{written}` is not written in its standard form; write it as `{unicode}`"
                    )));
                }
            }
            _ => {}
        }
        Ok(url)
    }

    /// Re-validates a URL that [`WebhookUrl::parse`] accepted when it was
    /// saved (its stored, normalised form): the policy applies again, since it
    /// may have tightened since, but not the written-form rules, which were
    /// the creator's business and may be newer than the row.
    pub fn from_stored(stored: &str, policy: &UrlPolicy) -> Result<WebhookUrl, UrlError> {
        if stored.trim().is_empty() {
            return Err(UrlError::Empty);
        }
        if stored.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong { max: MAX_URL_LEN });
        }
        Self::checked(stored, policy)
    }

    /// The policy: scheme, no userinfo or fragment, a port, a host that is
    /// neither a refused name nor a refused address.
    fn checked(input: &str, policy: &UrlPolicy) -> Result<WebhookUrl, UrlError> {
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
            Some(Host::Domain(d)) => check_hostname(d, policy)?,
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

    /// `Some(ip)` when the host is an IP literal (an IPv6 literal stays IPv6
    /// even when it is IPv4-mapped).
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
        .explain_ip(ip)
        .map_err(|refusal| UrlError::BlockedAddress { ip, refusal })
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
