#!/usr/bin/python3
"""Generates the datapath fixtures of xlat64 (test/datapath/fixtures/*.txt) with scapy.

Run with Debian's python3 (it has python3-scapy):

    /usr/bin/python3 test/datapath/gen_fixtures.py          # rewrite fixtures/*.txt
    /usr/bin/python3 test/datapath/gen_fixtures.py --check  # fail if they are out of date

Each fixture is an input frame, the map setup it needs, the verdict and counter the translator
must produce and, for translated packets, the expected output frame. Expected packets are built
by scapy from their own description (scapy computes every checksum and length itself), never by
running xlat64 code, so the fixtures are an independent statement of RFC 7915 / RFC 6052 /
RFC 7757. The same files are meant to drive every implementation of the translation (the BPF
program through BPF_PROG_TEST_RUN today, the userspace slow path later).

File format (line based, UTF-8; one file holds several fixtures):

    # ...                    comment; ignored by readers. Inside a fixture the generator writes
                             "# in:  EXPR" and "# out: EXPR", the scapy expressions (evaluated
                             after "from scapy.all import *") that built the frames, so anyone
                             can rebuild or change a fixture by hand.
    fixture NAME             starts a fixture. NAME is unique over all files and starts with
                             the RFC section it checks, e.g. rfc7915-4.1-udp-pool6-96.
    pool6 PREFIX|none|unset  exactly one: set pool6 to PREFIX; "none": configured without
                             pool6 (EAMT only); "unset": the settings map is never written
                             (the daemon never ran).
    eam IPV4PREFIX IPV6PREFIX
                             zero or more: add this EAMT entry (RFC 7757) in both directions.
    translation KEY VALUE    zero or more: an option of the config's `translation:` section
                             (lowest_ipv6_mtu, udp_zero_checksum, traffic_class,
                             allow_wkp_non_global, ipv4_address, ipv6_address, rfc6791_pool4,
                             rfc6791_pool6), written to the maps with pool6.
    local                    optional: the router itself originated the packet (the test runs it
                             with ingress_ifindex 0); without it, the packet was forwarded into
                             the device (ingress_ifindex 1).
    nat64 KEY VALUE          zero or more: turns stateful NAT64 on (xlat64_abi.h, "NAT64 host
                             mapping") with a `nat64:` section of the config; keys as there:
                             prefixes P[,P...], subscriber_length N, hosts_per_subscriber N,
                             internal_pool P, public_prefixes P[,P...], ports FIRST-LAST,
                             block_size N, mode deterministic|dynamic; unset keys keep the
                             config's defaults. Readers write the settings' NAT64 part
                             (nat64_params), the admitted prefixes (nat64_prefix_entries) and,
                             in dynamic mode, the free-block queue. One more key belongs to the
                             test, not the config: free_queue all|none|K[,K...]: what the queue
                             holds (default "all": every block in nat64_free_order; only
                             meaningful in dynamic mode, where the daemon fills it).
    n64host IPV6 INTERNAL4   zero or more, with nat64: a host the data path handed an address
                             earlier (xlat_n64_host6 and xlat_n64_host4; its block is
                             (INTERNAL4 - internal_pool) >> log2(hosts_per_subscriber)).
    n64lease PREFIX BLOCK    zero or more, with nat64 in dynamic mode: subscriber PREFIX (its
                             subscriber_length) already holds BLOCK (xlat_n64_subs and
                             xlat_n64_owner).
    in HEX                   the input frame, Ethernet header included (BPF_PROG_TEST_RUN hands
                             tc programs an Ethernet frame).
    verdict ACTION           TC_ACT_REDIRECT (7: translated) or TC_ACT_SHOT (2: dropped).
    counter LABEL            the one counter (a label of XLAT64_STATS in kmod-shim/xlat64_abi.h)
                             that must count this packet: +1 packet and +len(in) bytes; every
                             other counter must stay unchanged, except:
    also_counter LABEL       zero or more: a counter that counts the packet's side effect
                             besides its fate: +1 packet and 0 bytes (nat64_hosts_added when
                             the packet gave a new NAT64 host an address,
                             nat64_blocks_allocated when it leased a dynamic block).
    out HEX                  only with TC_ACT_REDIRECT: the expected output frame. An IPv4
                             output is written with Identification 0: the translator draws it
                             at random (RFC 7915 section 5.1), so readers copy the actual value
                             into the expected frame and recompute the header checksum before
                             comparing.
    expect_host IPV6 INTERNAL4
    expect_lease PREFIX BLOCK
                             zero or more, with nat64: after the packet, the NAT64 hosts (as
                             Nat64Maps::hosts() reads them, block included) must be exactly the
                             n64host lines plus the expect_host lines, and the dynamic leases
                             (Nat64Maps::leases(), each block's owner agreeing) exactly the
                             n64lease lines plus the expect_lease lines.
    ingress ACTION [WHY]     what the program's instance at an interface's ingress
                             (translation.ingress_interfaces, xlat_at_ingress) does with the same
                             packet, run with the same maps and settings; absent for "local"
                             fixtures (an interface never receives the router's own packets).
                             TC_ACT_OK: translated there, into ingress_out, counted in the same
                             counter(s) as above (with the IP length, the Ethernet header not
                             included) and in the ingress counter of its direction.
                             TC_ACT_UNSPEC deferred: addressed to the translator (IPv6 to
                             pool6, IPv4 to an EAM IPv4 prefix) but left unchanged to the device path (fragments, extension
                             headers, ICMP errors, hairpins, expiring, too big without DF, and
                             every packet the device path drops): only the ingress "deferred"
                             counter moves. TC_ACT_UNSPEC not_mine: not addressed to the
                             translator; unchanged, nothing counted. TC_ACT_SHOT
                             internal_source: with nat64, IPv4 from the internal pool, which
                             only the translator sends from; only the ingress
                             "internal source" counter moves.
    ingress_out HEX          with "ingress TC_ACT_OK": the expected frame. It is the device
                             path's output with the input's TTL / hop limit: there the one
                             forwarding pass comes after the translation, so the translator does
                             not give back the decrement of a first one.
    end                      ends the fixture.

Only documentation prefixes are used: 2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24 (and the Well-Known Prefix 64:ff9b::/96 to show it refuses them), and for the
NAT64 internal pool, which never leaves the router, shared address space (100.64.0.0/10, RFC
6598) as the config requires.
"""

import argparse
import ipaddress
import os
import sys
import textwrap

from scapy.all import *  # noqa: F401,F403  (the expressions below are evaluated in this scope)

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

HEADER = """\
# Generated by test/datapath/gen_fixtures.py; do not edit by hand: change the generator and run
#     /usr/bin/python3 test/datapath/gen_fixtures.py
# The file format is described at the top of the generator.
"""

# --------------------------------------------------------------------------------------------
# RFC 6052 section 2.2, written independently of the translator (which the fixtures check).


def rfc6052_embed(prefix: str, v4: str) -> str:
    net = ipaddress.IPv6Network(prefix)
    plen = net.prefixlen
    p = net.network_address.packed
    a = ipaddress.IPv4Address(v4).packed
    out = bytearray(16)
    out[: plen // 8] = p[: plen // 8]
    # the v4 bytes go after the prefix, skipping byte 8 (bits 64..71, the "u" octet)
    pos = plen // 8
    for b in a:
        if pos == 8:
            pos += 1
        out[pos] = b
        pos += 1
    return str(ipaddress.IPv6Address(bytes(out)))


# RFC 6052 section 2.4, Table 2: 192.0.2.33 under each prefix length.
RFC6052_TABLE = {
    "2001:db8::/32": "2001:db8:c000:221::",
    "2001:db8:100::/40": "2001:db8:1c0:2:21::",
    "2001:db8:122::/48": "2001:db8:122:c000:2:2100::",
    "2001:db8:122:300::/56": "2001:db8:122:3c0:0:221::",
    "2001:db8:122:344::/64": "2001:db8:122:344:c0:2:2100:0",
    "2001:db8:122:344::/96": "2001:db8:122:344::c000:221",
}
for _prefix, _addr in RFC6052_TABLE.items():
    assert rfc6052_embed(_prefix, "192.0.2.33") == _addr, (_prefix, rfc6052_embed(_prefix, "192.0.2.33"))

# --------------------------------------------------------------------------------------------
# Building blocks. Each is a scapy expression (a string), so it can be both evaluated and
# written next to the bytes it produced.

ETH = "Ether(dst='02:00:00:00:00:02', src='02:00:00:00:00:01')"
ETH_TYPE_IPV4 = "Ether(dst='02:00:00:00:00:02', src='02:00:00:00:00:01', type=0x0800)"

POOL6 = "2001:db8:64::/96"


def p6(v4):
    """v4 inside the test pool6 2001:db8:64::/96."""
    return "2001:db8:64::" + v4


# The SIIT-DC picture: IPv4 clients on the Internet (seen through pool6) reach IPv6 servers
# that have EAMT entries.
CLIENT4 = "198.51.100.10"
SERVER4 = "192.0.2.1"          # a pool6-only peer in the pool6 fixtures
EAM_SERVER4 = "192.0.2.10"     # covered by EAM_WIDE
EAM_SERVER6 = "2001:db8:1::a"

EAM_WIDE = ("192.0.2.0/24", "2001:db8:1::/120")
EAM_V4_NESTED = ("192.0.2.128/25", "2001:db8:2::/121")    # inside EAM_WIDE's IPv4 prefix
EAM_V6_NESTED = ("203.0.113.0/25", "2001:db8:1::80/121")  # inside EAM_WIDE's IPv6 prefix
EAMS_ALL = [EAM_WIDE, EAM_V4_NESTED, EAM_V6_NESTED]

PAYLOAD = "b'xlat64 datapath fixture payload'"

L4 = {
    # name: (IPv4 transport expression, IPv6 transport expression)
    "tcp": ("TCP(sport=40000, dport=80, flags='S', seq=1000, window=64240, "
            "options=[('MSS', 1460), ('SAckOK', b''), ('WScale', 7)])",) * 2,
    "tcp-data": ("TCP(sport=80, dport=40000, flags='PA', seq=5001, ack=1001, window=502)"
                 "/Raw(b'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n')",) * 2,
    "udp": (f"UDP(sport=53000, dport=53)/Raw({PAYLOAD})",) * 2,
    "icmp-echo-request": (f"ICMP(type=8, code=0, id=0x4242, seq=7)/Raw({PAYLOAD})",
                          f"ICMPv6EchoRequest(id=0x4242, seq=7, data={PAYLOAD})"),
    "icmp-echo-reply": (f"ICMP(type=0, code=0, id=0x4242, seq=7)/Raw({PAYLOAD})",
                        f"ICMPv6EchoReply(id=0x4242, seq=7, data={PAYLOAD})"),
}


def ip4(src, dst, ttl=64, tos=0, flags="DF", id_=0x1234, extra=""):
    return f"IP(src='{src}', dst='{dst}', tos={tos:#04x}, ttl={ttl}, id={id_:#06x}, flags='{flags}'{extra})"


def ip6(src, dst, hlim=64, tc=0, fl=0, extra=""):
    return f"IPv6(src='{src}', dst='{dst}', tc={tc:#04x}, fl={fl:#07x}, hlim={hlim}{extra})"


def ip4_out(src, dst, ttl, tos=0, df=False):
    """What the translator makes of an IPv6 packet: Identification 0 stands for the random one."""
    return f"IP(src='{src}', dst='{dst}', tos={tos:#04x}, ttl={ttl}, id=0, flags='{'DF' if df else ''}')"


class Fixture:
    def __init__(self, name, desc, pool6, inp, counter, out=None, eams=(), translation=(),
                 local=False, nat64=(), n64hosts=(), n64leases=(), also=(), expect_hosts=(),
                 expect_leases=()):
        self.nat64 = list(nat64)
        self.n64hosts = list(n64hosts)
        self.n64leases = list(n64leases)
        self.also = list(also)
        self.expect_hosts = list(expect_hosts)
        self.expect_leases = list(expect_leases)
        self.translation = list(translation)
        self.local = local
        self.name = name
        self.desc = desc
        self.pool6 = pool6
        self.inp = inp
        self.counter = counter
        self.out = out
        self.eams = list(eams)

    @property
    def verdict(self):
        return "TC_ACT_REDIRECT" if self.out else "TC_ACT_SHOT"


def translate_4to6(name, desc, l4, src4, dst4, src6, dst6, pool6=POOL6, eams=(), ttl=64, tos=0,
                   flags="DF"):
    l4_4, l4_6 = L4[l4]
    return Fixture(
        name, desc, pool6,
        f"{ETH}/{ip4(src4, dst4, ttl=ttl, tos=tos, flags=flags)}/{l4_4}",
        "translated_4to6",
        f"{ETH}/{ip6(src6, dst6, hlim=min(ttl + 1, 255), tc=tos)}/{l4_6}",
        eams)


def translate_6to4(name, desc, l4, src6, dst6, src4, dst4, pool6=POOL6, eams=(), hlim=64, tc=0,
                   fl=0x12345, payload=None, df=False):
    l4_4, l4_6 = L4[l4]
    if payload is not None:
        l4_4 = l4_6 = f"UDP(sport=53000, dport=53)/Raw(b'x' * {payload})"
    return Fixture(
        name, desc, pool6,
        f"{ETH}/{ip6(src6, dst6, hlim=hlim, tc=tc, fl=fl)}/{l4_6}",
        "translated_6to4",
        f"{ETH}/{ip4_out(src4, dst4, ttl=min(hlim + 1, 255), tos=tc, df=df)}/{l4_4}",
        eams)


def dropped(name, desc, inp, counter, pool6=POOL6, eams=()):
    return Fixture(name, desc, pool6, inp, counter, None, eams)


# --------------------------------------------------------------------------------------------
# The fixtures, grouped into files.

def fixtures_4to6():
    out = []
    for l4 in ("tcp", "tcp-data", "udp", "icmp-echo-request", "icmp-echo-reply"):
        out.append(translate_4to6(
            f"rfc7915-4.1-{l4}-pool6-96",
            f"IPv4 -> IPv6, {l4}; both addresses through pool6 {POOL6} (RFC 6052). TTL 64 "
            "becomes hop limit 65: the kernel decrements once before and once after the "
            "translator, which must count as one hop. Flow label 0, DF dropped.",
            l4, CLIENT4, SERVER4, p6(CLIENT4), p6(SERVER4)))
        out.append(translate_4to6(
            f"rfc7915-4.1-{l4}-eamt",
            "IPv4 -> IPv6, {}; destination through the EAMT entry {} -> {} (RFC 7757), "
            "source through pool6.".format(l4, *EAM_WIDE),
            l4, CLIENT4, EAM_SERVER4, p6(CLIENT4), EAM_SERVER6, eams=[EAM_WIDE]))
    out.append(translate_4to6(
        "rfc7915-4.1-tos-to-traffic-class",
        "IPv4 -> IPv6: the TOS octet (DSCP EF + ECN ECT(0)) is copied into the traffic class.",
        "udp", CLIENT4, SERVER4, p6(CLIENT4), p6(SERVER4), tos=0xba, flags=""))
    out.append(translate_4to6(
        "rfc7915-4.1-ttl-255-saturates",
        "IPv4 -> IPv6: TTL 255 stays hop limit 255 (the +1 for the kernel's second decrement "
        "cannot go past the maximum).",
        "icmp-echo-request", CLIENT4, SERVER4, p6(CLIENT4), p6(SERVER4), ttl=255))
    out.append(translate_4to6(
        "rfc7915-4.1-ttl-1",
        "IPv4 -> IPv6: TTL 1 (the kernel already decremented it on the way in) becomes hop "
        "limit 2.",
        "tcp", CLIENT4, SERVER4, p6(CLIENT4), p6(SERVER4), ttl=1))
    return out


def fixtures_6to4():
    out = []
    for l4 in ("tcp", "tcp-data", "udp", "icmp-echo-request", "icmp-echo-reply"):
        out.append(translate_6to4(
            f"rfc7915-5.1-{l4}-pool6-96",
            f"IPv6 -> IPv4, {l4}; both addresses through pool6 {POOL6}. Hop limit 64 becomes TTL "
            "65 (one hop for the translator, see rfc7915-4.1), the flow label is dropped, "
            "Identification is random, DF=0 (at most 1260 bytes).",
            l4, p6(CLIENT4), p6(SERVER4), CLIENT4, SERVER4))
        out.append(translate_6to4(
            f"rfc7915-5.1-{l4}-eamt",
            "IPv6 -> IPv4, {}; source through the EAMT entry {} -> {}, destination through "
            "pool6.".format(l4, *EAM_WIDE),
            l4, EAM_SERVER6, p6(CLIENT4), EAM_SERVER4, CLIENT4, eams=[EAM_WIDE]))
    out.append(translate_6to4(
        "rfc7915-5.1-traffic-class-to-tos",
        "IPv6 -> IPv4: the traffic class is copied into the TOS octet.",
        "tcp", p6(CLIENT4), p6(SERVER4), CLIENT4, SERVER4, tc=0x2a))
    out.append(translate_6to4(
        "rfc7915-5.1-hop-limit-255-saturates",
        "IPv6 -> IPv4: hop limit 255 stays TTL 255.",
        "udp", p6(CLIENT4), p6(SERVER4), CLIENT4, SERVER4, hlim=255))
    out.append(translate_6to4(
        "rfc7915-5.1-df-0-at-1260-bytes",
        "IPv6 -> IPv4: a translated packet of exactly 1260 bytes gets DF=0, so IPv4 routers "
        "with a smaller MTU may fragment it.",
        "udp", p6(CLIENT4), p6(SERVER4), CLIENT4, SERVER4, payload=1260 - 28, df=False))
    out.append(translate_6to4(
        "rfc7915-5.1-df-1-above-1260-bytes",
        "IPv6 -> IPv4: a translated packet of 1261 bytes gets DF=1 (path MTU discovery).",
        "udp", p6(CLIENT4), p6(SERVER4), CLIENT4, SERVER4, payload=1261 - 28, df=True))
    return out


POOL6_LENGTHS = {
    32: "2001:db8::/32",
    40: "2001:db8:100::/40",
    48: "2001:db8:122::/48",
    56: "2001:db8:122:300::/56",
    64: "2001:db8:122:344::/64",
    96: "2001:db8:122:344::/96",
}


def fixtures_pool6():
    out = []
    for plen, prefix in POOL6_LENGTHS.items():
        server6 = RFC6052_TABLE[prefix]  # 192.0.2.33, straight from RFC 6052's table
        client6 = rfc6052_embed(prefix, CLIENT4)
        l4 = "udp" if plen % 16 else "icmp-echo-request"
        out.append(translate_4to6(
            f"rfc6052-2.2-pool6-{plen}-4to6",
            f"RFC 6052 section 2.4 example: 192.0.2.33 under {prefix} is {server6} "
            "(byte 8, the u octet, stays zero).",
            l4, CLIENT4, "192.0.2.33", client6, server6, pool6=prefix))
        out.append(translate_6to4(
            f"rfc6052-2.2-pool6-{plen}-6to4",
            f"RFC 6052 section 2.4 example: {server6} under {prefix} is 192.0.2.33.",
            l4, client6, server6, CLIENT4, "192.0.2.33", pool6=prefix))
    # u octet and suffix set by the sender: ignored on receipt (RFC 6052 section 2.2).
    out.append(translate_6to4(
        "rfc6052-2.2-u-octet-and-suffix-ignored",
        "IPv6 -> IPv4 with pool6 2001:db8:122:344::/64: the destination has the u octet (byte "
        "8) and the suffix set; the translator ignores both and still finds 192.0.2.33.",
        "udp", rfc6052_embed("2001:db8:122:344::/64", CLIENT4), "2001:db8:122:344:ffc0:2:21ff:ffff",
        CLIENT4, "192.0.2.33", pool6="2001:db8:122:344::/64"))
    out.append(dropped(
        "rfc6052-2.2-outside-pool6-6to4",
        "IPv6 -> IPv4 with pool6 2001:db8:122::/48: the destination 2001:db8:123:c000:2:2100:: "
        "is outside the prefix and in no EAM entry.",
        f"{ETH}/{ip6(rfc6052_embed('2001:db8:122::/48', CLIENT4), '2001:db8:123:c000:2:2100::')}"
        f"/{L4['udp'][1]}",
        "no_destination_mapping", pool6="2001:db8:122::/48"))
    out.append(dropped(
        "rfc6052-3.1-wkp-non-global-dst-6to4",
        "The Well-Known Prefix 64:ff9b::/96 must not carry non-global IPv4 addresses and "
        "translators must drop such packets (RFC 6052 section 3.1), counted apart: 64:ff9b::198.51.100.10 "
        "(TEST-NET-2) as destination.",
        f"{ETH}/{ip6(EAM_SERVER6, '64:ff9b::' + CLIENT4)}/{L4['udp'][1]}",
        "wkp_non_global", pool6="64:ff9b::/96", eams=[EAM_WIDE]))
    out.append(dropped(
        "rfc6052-3.1-wkp-non-global-src-4to6",
        "RFC 6052 section 3.1 the other way: IPv4 source 198.51.100.10 would be represented as "
        "64:ff9b::198.51.100.10, which the Well-Known Prefix must not carry.",
        f"{ETH}/{ip4(CLIENT4, EAM_SERVER4)}/{L4['udp'][0]}",
        "wkp_non_global", pool6="64:ff9b::/96", eams=[EAM_WIDE]))
    return out


def fixtures_eamt():
    out = []
    out.append(translate_4to6(
        "rfc7757-3.2-longest-match-4to6-nested",
        "EAMT longest match, IPv4 side: 192.0.2.200 is in both {} and {}; the /25 wins: "
        "2001:db8:2:: plus the 7 suffix bits (72 = 0x48).".format(EAM_WIDE[0], EAM_V4_NESTED[0]),
        "udp", CLIENT4, "192.0.2.200", p6(CLIENT4), "2001:db8:2::48", eams=EAMS_ALL))
    out.append(translate_4to6(
        "rfc7757-3.2-longest-match-4to6-outer",
        "EAMT longest match, IPv4 side: 192.0.2.100 is only in {}: 2001:db8:1::64.".format(
            EAM_WIDE[0]),
        "udp", CLIENT4, "192.0.2.100", p6(CLIENT4), "2001:db8:1::64", eams=EAMS_ALL))
    out.append(translate_6to4(
        "rfc7757-3.2-longest-match-6to4-nested",
        "EAMT longest match, IPv6 side: 2001:db8:1::81 is in both {} and {}; the /121 wins: "
        "203.0.113.0 plus the 7 suffix bits = 203.0.113.1.".format(EAM_WIDE[1], EAM_V6_NESTED[1]),
        "tcp", "2001:db8:1::81", p6(CLIENT4), "203.0.113.1", CLIENT4, eams=EAMS_ALL))
    out.append(translate_6to4(
        "rfc7757-3.2-longest-match-6to4-outer",
        "EAMT longest match, IPv6 side: 2001:db8:1::5 is only in {}: 192.0.2.5.".format(
            EAM_WIDE[1]),
        "tcp", "2001:db8:1::5", p6(CLIENT4), "192.0.2.5", CLIENT4, eams=EAMS_ALL))
    out.append(translate_4to6(
        "rfc7757-3.2-eamt-both-addresses-no-pool6",
        "EAMT only (no pool6): both addresses through EAM entries, IPv4 -> IPv6.",
        "icmp-echo-reply", "203.0.113.5", "192.0.2.10", "2001:db8:1::85", "2001:db8:1::a",
        pool6="none", eams=EAMS_ALL))
    out.append(translate_6to4(
        "rfc7757-3.2-eamt-both-addresses-no-pool6-6to4",
        "EAMT only (no pool6): both addresses through EAM entries, IPv6 -> IPv4.",
        "icmp-echo-request", "2001:db8:1::a", "2001:db8:1::85", "192.0.2.10", "203.0.113.5",
        pool6="none", eams=EAMS_ALL))
    out.append(translate_6to4(
        "rfc7757-3.2-eamt-before-pool6",
        "An EAM entry whose IPv6 prefix lies inside pool6 takes precedence over pool6 "
        "(RFC 7757 section 3.2): 2001:db8:64::c000:207 maps through the EAM entry "
        "192.0.2.128/25 -> 2001:db8:64::c000:200/121 to 192.0.2.135, not to 192.0.2.7.",
        "udp", "2001:db8:64::c000:207", p6(CLIENT4), "192.0.2.135", CLIENT4,
        eams=[("192.0.2.128/25", "2001:db8:64::c000:200/121")]))
    return out


def fixtures_drops():
    u4, u6 = L4["udp"]
    pkt4 = f"{ETH}/{ip4(CLIENT4, SERVER4)}"
    pkt6 = f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}"
    out = [
        dropped("rfc7915-4.1-no-source-mapping",
                "IPv4 -> IPv6 without pool6: the source 198.51.100.10 is in no EAM entry.",
                f"{ETH}/{ip4(CLIENT4, EAM_SERVER4)}/{u4}", "no_source_mapping",
                pool6="none", eams=EAMS_ALL),
        dropped("rfc7915-4.1-no-destination-mapping",
                "IPv4 -> IPv6 without pool6: the destination 203.0.113.200 is in no EAM entry "
                "(203.0.113.0/25 ends at .127).",
                f"{ETH}/{ip4(EAM_SERVER4, '203.0.113.200')}/{u4}", "no_destination_mapping",
                pool6="none", eams=EAMS_ALL),
        dropped("rfc7915-5.1-no-source-mapping",
                "IPv6 -> IPv4: the source 2001:db8:ffff::1 is neither in pool6 nor in an EAM "
                "entry.",
                f"{ETH}/{ip6('2001:db8:ffff::1', p6(SERVER4))}/{u6}", "no_source_mapping",
                eams=EAMS_ALL),
        dropped("rfc7915-5.1-no-destination-mapping",
                "IPv6 -> IPv4: the destination 2001:db8:fffe::1 is neither in pool6 nor in an "
                "EAM entry.",
                f"{ETH}/{ip6(p6(CLIENT4), '2001:db8:fffe::1')}/{u6}", "no_destination_mapping",
                eams=EAMS_ALL),
        dropped("xlat64-not-configured",
                "The settings map was never written (no daemon ever configured the maps): "
                "nothing is translated.",
                f"{pkt4}/{u4}", "not_configured", pool6="unset"),
        dropped("rfc7915-5.1-mld-to-multicast",
                "MLDv2 report to ff02::16, as the kernel sends it into the device when it comes "
                "up: multicast is never translated and is counted apart from failures.",
                f"{ETH}/IPv6(src='fe80::1', dst='ff02::16', hlim=1)"
                "/IPv6ExtHdrHopByHop(options=[RouterAlert()])/ICMPv6MLReport2()",
                "ipv6_not_global_unicast"),
        dropped("rfc7915-5.1-multicast-destination",
                "IPv6 UDP from a pool6 address to ff0e::1 (global-scope multicast).",
                f"{ETH}/{ip6(p6(CLIENT4), 'ff0e::1')}/{u6}", "ipv6_not_global_unicast"),
        dropped("rfc7915-5.1-router-solicitation",
                "Router solicitation from the unspecified address to ff02::2.",
                f"{ETH}/IPv6(src='::', dst='ff02::2', hlim=255)/ICMPv6ND_RS()",
                "ipv6_not_global_unicast"),
        dropped("rfc7915-5.1-link-local-source",
                "IPv6 UDP from fe80::1 to a pool6 address.",
                f"{ETH}/{ip6('fe80::1', p6(SERVER4))}/{u6}", "ipv6_not_global_unicast"),
        dropped("rfc7915-4.2-icmp-timestamp-unsupported",
                "ICMPv4 timestamp request: RFC 7915 section 4.2 drops it (only echo is "
                "translated so far, and timestamp never will be).",
                f"{pkt4}/ICMP(type=13, id=1, seq=1, ts_ori=1000, ts_rx=0, ts_tx=0)", "icmp_unsupported"),
        dropped("rfc7915-4.1-tcp-truncated",
                "IPv4 packet announcing TCP with only 12 bytes of transport header.",
                f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', proto=6')}/Raw(bytes(TCP(sport=40000, "
                "dport=80))[:12])", "l4_truncated"),
        dropped("rfc7915-5.1-udp-truncated",
                "IPv6 packet announcing UDP with only 6 bytes of transport header.",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), extra=', nh=17')}/Raw(b'\\xcf\\x08\\x00\\x35\\x00\\x0e')",
                "l4_truncated"),
        dropped("rfc7915-5.1-icmpv6-truncated",
                "IPv6 packet announcing ICMPv6 with 4 bytes.",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), extra=', nh=58')}/Raw(b'\\x80\\x00\\x00\\x00')",
                "l4_truncated"),
        dropped("rfc7915-4.1-ipv4-total-length-beyond-packet",
                "IPv4 total length 200 in a 59-byte packet.",
                f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', len=200')}/{u4}", "ipv4_malformed"),
        dropped("rfc7915-4.1-ipv4-total-length-below-header",
                "IPv4 total length 16, less than the 20-byte header.",
                f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', len=16')}/{u4}", "ipv4_malformed"),
        dropped("rfc7915-4.1-ipv4-ihl-below-5",
                "IPv4 header length 4 words.",
                f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', ihl=4')}/{u4}", "ipv4_malformed"),
        # (A frame shorter than Ethernet + 20 bytes of IPv4 is refused by BPF_PROG_TEST_RUN
        # itself, so a truncated IPv4 header cannot be a fixture; the IP stack never routes one.)
        dropped("rfc7915-4.1-ipv4-bad-version",
                "Ethertype IPv4, but the header says version 6.",
                f"{ETH_TYPE_IPV4}/{ip4(CLIENT4, SERVER4, extra=', version=6')}/{u4}",
                "ipv4_malformed"),
        dropped("rfc7915-5.1-ipv6-bad-version",
                "Ethertype IPv6, but the header says version 4.",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), extra=', version=4')}/{u6}",
                "ipv6_malformed"),
        dropped("rfc7915-5.1-ipv6-payload-length-beyond-packet",
                "IPv6 payload length 400 in a packet with 39 bytes of payload.",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), extra=', plen=400')}/{u6}",
                "ipv6_malformed"),
        dropped("rfc7915-5.1-ipv6-jumbogram",
                "IPv6 payload length 0 (a jumbogram, RFC 2675): IPv4 cannot carry it.",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), extra=', plen=0')}/{u6}",
                "ipv6_malformed"),
        dropped("rfc7915-4.1-ipv4-unsupported-protocol",
                "IPv4 SCTP: transport protocols other than TCP, UDP and ICMP are not translated "
                "yet.",
                f"{pkt4}/SCTP(sport=5000, dport=5000)", "l4_unsupported"),
        dropped("rfc7915-5.1-ipv6-unsupported-protocol",
                "IPv6 SCTP: not translated yet.",
                f"{pkt6}/SCTP(sport=5000, dport=5000)", "l4_unsupported"),
        dropped("xlat64-arp-not-ip",
                "An ARP frame: neither IPv4 nor IPv6.",
                f"{ETH}/ARP(op=1, hwsrc='02:00:00:00:00:01', psrc='{CLIENT4}', pdst='{SERVER4}')",
                "not_ip"),
    ]
    return out


# --------------------------------------------------------------------------------------------
# Issue 3: ICMP errors, fragments, options, extension headers, settings (RFC 7915 in full).

ROUTER4 = "203.0.113.254"        # an IPv4 router on the path, reached through pool6
ROUTER6_FOREIGN = "2001:db8:ffff::1"  # an IPv6 router outside pool6 and the EAMT
UDP_TR = "UDP(sport=53000, dport=33434)/Raw(b'traceroute probe 0123456789')"
TCP_Q = "TCP(sport=40000, dport=80, flags='S', seq=1000, window=64240)"
ECHO4 = "ICMP(type=8, id=0x4242, seq=3)/Raw(b'ping payload')"
ECHO6 = "ICMPv6EchoRequest(id=0x4242, seq=3, data=b'ping payload')"


def rfc6791_v4(pool, src6):
    """The RFC 6791 address xlat64 picks: pool + (xor of the four 32-bit words & host bits)."""
    net = ipaddress.IPv4Network(pool)
    words = ipaddress.IPv6Address(src6).packed
    x = 0
    for i in range(0, 16, 4):
        x ^= int.from_bytes(words[i:i + 4], "big")
    host = x & ((1 << (32 - net.prefixlen)) - 1)
    return str(ipaddress.IPv4Address(int(net.network_address) | host))


def err4to6(name, desc, icmp4, icmp6, inner4, inner6, counter="icmp_error_translated_4to6",
            src4=ROUTER4, src6=None, **kw):
    """An ICMPv4 error from src4 to CLIENT4 about CLIENT4 -> SERVER4, and its translation."""
    return Fixture(
        name, desc, kw.pop("pool6", POOL6),
        f"{ETH}/{ip4(src4, CLIENT4, flags='')}/{icmp4}/{inner4}",
        counter,
        f"{ETH}/{ip6(src6 or p6(src4), p6(CLIENT4), hlim=65)}/{icmp6}/{inner6}", **kw)


def err6to4(name, desc, icmp6, icmp4, inner6, inner4, counter="icmp_error_translated_6to4",
            src6=None, src4=ROUTER4, **kw):
    """An ICMPv6 error from src6 to p6(CLIENT4) about p6(CLIENT4) -> p6(SERVER4)."""
    return Fixture(
        name, desc, kw.pop("pool6", POOL6),
        f"{ETH}/{ip6(src6 or p6(ROUTER4), p6(CLIENT4))}/{icmp6}/{inner6}",
        counter,
        f"{ETH}/{ip4_out(src4, CLIENT4, ttl=65)}/{icmp4}/{inner4}", **kw)


IN4_UDP = f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=1, id=0x1111, flags='DF')/{UDP_TR}"
IN6_UDP = f"IPv6(src='{p6(CLIENT4)}', dst='{p6(SERVER4)}', hlim=1)/{UDP_TR}"
IN4_UDP_BACK = f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=1, id=0, flags='')/{UDP_TR}"
IN4_TCP = f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=63, id=0x2222, flags='DF')/{TCP_Q}"
IN6_TCP = f"IPv6(src='{p6(CLIENT4)}', dst='{p6(SERVER4)}', hlim=63)/{TCP_Q}"
IN4_TCP_BACK = f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=63, id=0, flags='')/{TCP_Q}"
IN4_ECHO = f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=1, id=0x3333, flags='')/{ECHO4}"
IN6_ECHO = f"IPv6(src='{p6(CLIENT4)}', dst='{p6(SERVER4)}', hlim=1)/{ECHO6}"
IN4_ECHO_BACK = f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=1, id=0, flags='')/{ECHO4}"


def fixtures_icmp_errors():
    out = [
        err4to6("rfc7915-4.2-time-exceeded-udp",
                "ICMPv4 Time Exceeded (11/0) from a router about a UDP probe becomes ICMPv6 Time "
                "Exceeded (3/0); the quoted IPv4 header becomes IPv6 (addresses through pool6, "
                "TTL kept), the quoted UDP checksum follows the new addresses (RFC 7915 4.4).",
                "ICMP(type=11, code=0)", "ICMPv6TimeExceeded(code=0)", IN4_UDP, IN6_UDP),
        err4to6("rfc7915-4.2-time-exceeded-echo",
                "Time Exceeded about an echo request: the quoted ICMP echo becomes ICMPv6 echo "
                "(type 128, its checksum now with the pseudo-header).",
                "ICMP(type=11, code=0)", "ICMPv6TimeExceeded(code=0)", IN4_ECHO, IN6_ECHO),
        err4to6("rfc7915-4.2-port-unreachable",
                "Destination Unreachable, port (3/3) becomes Destination Unreachable, port "
                "(1/4).",
                "ICMP(type=3, code=3)", "ICMPv6DestUnreach(code=4)", IN4_UDP, IN6_UDP),
        err4to6("rfc7915-4.2-host-unreachable",
                "Destination Unreachable, host (3/1) becomes no route (1/0).",
                "ICMP(type=3, code=1)", "ICMPv6DestUnreach(code=0)", IN4_TCP, IN6_TCP),
        err4to6("rfc7915-4.2-admin-prohibited",
                "Destination Unreachable, communication administratively prohibited (3/13) "
                "becomes 1/1.",
                "ICMP(type=3, code=13)", "ICMPv6DestUnreach(code=1)", IN4_TCP, IN6_TCP),
        err4to6("rfc7915-4.2-protocol-unreachable",
                "Destination Unreachable, protocol (3/2) becomes Parameter Problem, unrecognized "
                "Next Header (4/1) pointing at the Next Header field (6).",
                "ICMP(type=3, code=2)", "ICMPv6ParamProblem(code=1, ptr=6)", IN4_TCP, IN6_TCP),
        err4to6("rfc7915-4.2-frag-needed-mtu",
                "Fragmentation Needed (3/4) with MTU 1400 becomes Packet Too Big with MTU 1420 "
                "(the IPv6 header is 20 bytes longer).",
                "ICMP(type=3, code=4, nexthopmtu=1400)", "ICMPv6PacketTooBig(mtu=1420)",
                IN4_TCP, IN6_TCP),
        err4to6("rfc7915-4.2-frag-needed-mtu-floor-1280",
                "Fragmentation Needed with MTU 1000: the Packet Too Big MTU is never below the "
                "IPv6 minimum, 1280.",
                "ICMP(type=3, code=4, nexthopmtu=1000)", "ICMPv6PacketTooBig(mtu=1280)",
                IN4_TCP, IN6_TCP),
        err4to6("rfc7915-4.2-frag-needed-mtu-zero-plateau",
                "Fragmentation Needed with MTU 0 (a router older than RFC 1191) about a 2000-byte "
                "packet: the RFC 1191 plateau below it (1492) plus 20 = 1512. (The quoted UDP has "
                "no checksum, which stays so.)",
                "ICMP(type=3, code=4, nexthopmtu=0)", "ICMPv6PacketTooBig(mtu=1512)",
                f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=63, id=0x2222, flags='DF', len=2000)"
                "/UDP(sport=53000, dport=53, len=1980, chksum=0)",
                f"IPv6(src='{p6(CLIENT4)}', dst='{p6(SERVER4)}', hlim=63, plen=1980)"
                "/UDP(sport=53000, dport=53, len=1980, chksum=0)"),
        err4to6("rfc7915-4.2-param-problem-pointer-protocol",
                "Parameter Problem (12/0) pointing at the Protocol field (9) becomes 4/0 pointing "
                "at Next Header (6) (RFC 7915 section 4.2, Figure 3).",
                "ICMP(type=12, code=0, ptr=9)", "ICMPv6ParamProblem(code=0, ptr=6)",
                IN4_TCP, IN6_TCP),
        err4to6("rfc7915-4.2-param-problem-pointer-destination",
                "Parameter Problem pointing into the destination address (18) points at the "
                "IPv6 destination address (24).",
                "ICMP(type=12, code=0, ptr=18)", "ICMPv6ParamProblem(code=0, ptr=24)",
                IN4_TCP, IN6_TCP),
        err4to6("rfc4884-extension-removed-4to6",
                "An ICMPv4 Time Exceeded with RFC 4884 extensions (length 32 words: the quote is "
                "padded to 128 bytes, an extension structure follows): the quote is translated, "
                "the extensions are removed and the length goes back to 0 (RFC 7915 section 4.4 "
                "lets a translator drop them).",
                "ICMP(type=11, code=0, length=32)", "ICMPv6TimeExceeded(code=0)",
                f"Raw(bytes({IN4_UDP}).ljust(128, b'\\x00') + b'\\x20\\x00\\x00\\x00\\x00\\x08\\x01\\x01\\xc0\\x00\\x02\\x01')",
                f"Raw(bytes({IN6_UDP}).ljust(148, b'\\x00'))"),
        dropped("rfc7915-4.2-param-problem-pointer-identification",
                "Parameter Problem pointing at the Identification (4): no IPv6 field, dropped.",
                f"{ETH}/{ip4(ROUTER4, CLIENT4)}/ICMP(type=12, code=0, ptr=4)/{IN4_TCP}",
                "icmp_untranslatable"),
        dropped("rfc7915-4.2-precedence-cutoff-dropped",
                "Destination Unreachable, precedence cutoff (3/14): silently dropped.",
                f"{ETH}/{ip4(ROUTER4, CLIENT4)}/ICMP(type=3, code=14)/{IN4_TCP}",
                "icmp_untranslatable"),
        dropped("rfc7915-4.2-source-quench-dropped",
                "Source Quench (4): obsolete, dropped.",
                f"{ETH}/{ip4(ROUTER4, CLIENT4)}/ICMP(type=4, code=0)/{IN4_TCP}",
                "icmp_unsupported"),
        dropped("rfc7915-4.4-nested-error-dropped",
                "An ICMPv4 error quoting an ICMPv4 error: translation stops at the first level "
                "(RFC 7915 section 4.4).",
                f"{ETH}/{ip4(ROUTER4, CLIENT4)}/ICMP(type=11, code=0)/IP(src='{CLIENT4}', "
                f"dst='{SERVER4}')/ICMP(type=3, code=3)/{IN4_UDP}",
                "icmp_inner_malformed"),
        dropped("rfc7915-4.4-inner-unmapped",
                "An ICMPv4 error whose quoted destination maps by neither the EAMT nor pool6.",
                f"{ETH}/{ip4(ROUTER4, EAM_SERVER4)}/ICMP(type=11, code=0)/IP(src='{EAM_SERVER4}', "
                f"dst='{CLIENT4}')/{UDP_TR}",
                "icmp_inner_no_mapping", pool6="none", eams=[EAM_WIDE, ('203.0.113.0/24', '2001:db8:5::/120')]),
        err6to4("rfc7915-5.2-time-exceeded-udp",
                "ICMPv6 Time Exceeded (3/0) from a router in pool6 becomes ICMPv4 Time Exceeded "
                "(11/0); the quoted IPv6 header becomes IPv4 (Identification 0, header checksum "
                "computed), the quoted UDP checksum follows (RFC 7915 section 5.4).",
                "ICMPv6TimeExceeded(code=0)", "ICMP(type=11, code=0)", IN6_UDP, IN4_UDP_BACK),
        err6to4("rfc7915-5.2-time-exceeded-echo",
                "Time Exceeded about an echo request: the quoted ICMPv6 echo becomes ICMP echo "
                "(type 8, its checksum without the pseudo-header).",
                "ICMPv6TimeExceeded(code=0)", "ICMP(type=11, code=0)", IN6_ECHO, IN4_ECHO_BACK),
        err6to4("rfc7915-5.2-port-unreachable",
                "Destination Unreachable, port (1/4) becomes 3/3.",
                "ICMPv6DestUnreach(code=4)", "ICMP(type=3, code=3)", IN6_UDP, IN4_UDP_BACK),
        err6to4("rfc7915-5.2-no-route",
                "Destination Unreachable, no route (1/0) becomes host unreachable (3/1).",
                "ICMPv6DestUnreach(code=0)", "ICMP(type=3, code=1)", IN6_TCP, IN4_TCP_BACK),
        err6to4("rfc7915-5.2-admin-prohibited",
                "Destination Unreachable, administratively prohibited (1/1) becomes 3/10.",
                "ICMPv6DestUnreach(code=1)", "ICMP(type=3, code=10)", IN6_TCP, IN4_TCP_BACK),
        err6to4("rfc7915-5.2-packet-too-big",
                "Packet Too Big with MTU 1400 becomes Fragmentation Needed (3/4) with MTU 1380.",
                "ICMPv6PacketTooBig(mtu=1400)", "ICMP(type=3, code=4, nexthopmtu=1380)",
                IN6_TCP, IN4_TCP_BACK),
        err6to4("rfc7915-5.2-packet-too-big-fragment",
                "Packet Too Big about a packet with a Fragment header: its IPv4 form was 28 bytes "
                "shorter, so MTU 1400 becomes 1372; the quoted Fragment header becomes the IPv4 "
                "fragment fields.",
                "ICMPv6PacketTooBig(mtu=1400)", "ICMP(type=3, code=4, nexthopmtu=1372)",
                f"IPv6(src='{p6(CLIENT4)}', dst='{p6(SERVER4)}', hlim=63)"
                f"/IPv6ExtHdrFragment(id=0xabcd1234, m=1, offset=0)/{UDP_TR}",
                f"IP(src='{CLIENT4}', dst='{SERVER4}', ttl=63, id=0x1234, flags='MF', proto=17)"
                f"/{UDP_TR}"),
        err6to4("rfc7915-5.2-unrecognized-next-header",
                "Parameter Problem, unrecognized Next Header (4/1) becomes protocol unreachable "
                "(3/2).",
                "ICMPv6ParamProblem(code=1, ptr=6)", "ICMP(type=3, code=2)", IN6_TCP, IN4_TCP_BACK),
        err6to4("rfc7915-5.2-param-problem-pointer-hop-limit",
                "Parameter Problem (4/0) pointing at the Hop Limit (7) becomes 12/0 pointing at "
                "the TTL (8) (RFC 7915 section 5.2, Figure 6).",
                "ICMPv6ParamProblem(code=0, ptr=7)", "ICMP(type=12, code=0, ptr=8)",
                IN6_TCP, IN4_TCP_BACK),
        err6to4("rfc7915-5.2-param-problem-pointer-source",
                "Parameter Problem pointing into the source address (13) points at the IPv4 "
                "source address (12).",
                "ICMPv6ParamProblem(code=0, ptr=13)", "ICMP(type=12, code=0, ptr=12)",
                IN6_TCP, IN4_TCP_BACK),
        err6to4("rfc4884-extension-removed-6to4",
                "An ICMPv6 Time Exceeded with RFC 4884 extensions (length 16 words of 8 bytes): "
                "the extensions are removed, the quote translated.",
                "ICMPv6TimeExceeded(code=0, length=16)", "ICMP(type=11, code=0)",
                f"Raw(bytes({IN6_UDP}).ljust(128, b'\\x00') + b'\\x20\\x00\\x00\\x00\\x00\\x08\\x01\\x01\\xc0\\x00\\x02\\x01')",
                f"Raw(bytes({IN4_UDP_BACK}).ljust(108, b'\\x00'))"),
        dropped("rfc7915-5.2-param-problem-pointer-flow-label",
                "Parameter Problem pointing at the flow label (2): no IPv4 field, dropped.",
                f"{ETH}/{ip6(p6(ROUTER4), p6(CLIENT4))}/ICMPv6ParamProblem(code=0, ptr=2)/{IN6_TCP}",
                "icmp_untranslatable"),
        dropped("rfc7915-5.2-unrecognized-option-dropped",
                "Parameter Problem, unrecognized IPv6 option (4/2): no IPv4 equivalent, dropped.",
                f"{ETH}/{ip6(p6(ROUTER4), p6(CLIENT4))}/ICMPv6ParamProblem(code=2, ptr=40)/{IN6_TCP}",
                "icmp_untranslatable"),
        dropped("rfc7915-5.2-neighbor-solicitation-dropped",
                "A neighbour solicitation between global addresses: ND is never translated.",
                f"{ETH}/{ip6(p6(ROUTER4), p6(CLIENT4))}/ICMPv6ND_NS(tgt='{p6(CLIENT4)}')",
                "icmp_unsupported"),
        dropped("rfc6791-untranslatable-source-no-pool",
                "An ICMPv6 error from an IPv6 router outside pool6 and the EAMT, without an "
                "RFC 6791 pool: dropped as no_source_mapping.",
                f"{ETH}/{ip6(ROUTER6_FOREIGN, p6(CLIENT4))}/ICMPv6TimeExceeded(code=0)/{IN6_UDP}",
                "no_source_mapping"),
        err6to4("rfc6791-untranslatable-source-pool",
                "RFC 6791: the same error with rfc6791_pool4 203.0.113.0/24 gets a source from "
                "the pool (the host bits from the router's address, so each router keeps one).",
                "ICMPv6TimeExceeded(code=0)", "ICMP(type=11, code=0)", IN6_UDP, IN4_UDP_BACK,
                counter="icmp_source_rfc6791", src6=ROUTER6_FOREIGN,
                src4=rfc6791_v4("203.0.113.0/24", ROUTER6_FOREIGN),
                translation=[("rfc6791_pool4", "203.0.113.0/24")]),
        Fixture("rfc7915-own-address-for-local-errors",
                "An ICMPv6 error the router itself originated (ingress_ifindex 0) from an address "
                "outside pool6 comes from translation.ipv4_address; not forwarded, so the hop "
                "limit is kept (64 -> TTL 64).",
                POOL6,
                f"{ETH}/{ip6(ROUTER6_FOREIGN, p6(CLIENT4))}/ICMPv6DestUnreach(code=4)/{IN6_UDP}",
                "icmp_source_rfc6791",
                f"{ETH}/{ip4_out('192.0.2.99', CLIENT4, ttl=64)}/ICMP(type=3, code=3)/{IN4_UDP_BACK}",
                translation=[("ipv4_address", "192.0.2.99"), ("rfc6791_pool4", "203.0.113.0/24")],
                local=True),
        Fixture("rfc6791-untranslatable-source-pool6",
                "RFC 6791 the other way: an ICMPv4 error from an IPv4 router in no EAM entry, with "
                "no pool6, gets its IPv6 source from rfc6791_pool6 (the IPv4 address as the last "
                "32 bits).",
                "none",
                f"{ETH}/{ip4(ROUTER4, EAM_SERVER4, flags='')}/ICMP(type=11, code=0)"
                f"/IP(src='{EAM_SERVER4}', dst='192.0.2.20', ttl=1, id=0x1111, flags='DF')/{UDP_TR}",
                "icmp_source_rfc6791",
                f"{ETH}/{ip6('2001:db8:6791::cb00:71fe', EAM_SERVER6, hlim=65)}"
                f"/ICMPv6TimeExceeded(code=0)/IPv6(src='{EAM_SERVER6}', dst='2001:db8:1::14', hlim=1)"
                f"/{UDP_TR}",
                eams=[EAM_WIDE], translation=[("rfc6791_pool6", "2001:db8:6791::/96")]),
    ]
    return out


def fixtures_fragments():
    payload = "Raw(b'f' * 64)"
    return [
        Fixture("rfc7915-4.1-fragment-first",
                "IPv4 first fragment (MF=1, offset 0) of UDP: a Fragment header carries MF, the "
                "offset and the Identification (zero-extended to 32 bits); the UDP checksum "
                "follows the addresses (it covers the whole datagram).",
                POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4, flags='MF', id_=0x1234)}/UDP(sport=53000, "
                f"dport=53, len=4008)/{payload}",
                "fragment_translated_4to6",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/IPv6ExtHdrFragment(nh=17, "
                f"id=0x1234, m=1, offset=0)/UDP(sport=53000, dport=53, len=4008)/{payload}"),
        Fixture("rfc7915-4.1-fragment-middle",
                "IPv4 middle fragment (MF=1, offset 185 * 8): no transport header, bytes copied.",
                POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4, flags='MF', id_=0x1234, extra=', frag=185, proto=17')}"
                f"/{payload}",
                "fragment_translated_4to6",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/IPv6ExtHdrFragment(nh=17, "
                f"id=0x1234, m=1, offset=185)/{payload}"),
        Fixture("rfc7915-4.1-fragment-last",
                "IPv4 last fragment (MF=0, offset 370 * 8).",
                POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4, flags='', id_=0xfedc, extra=', frag=370, proto=6')}"
                f"/{payload}",
                "fragment_translated_4to6",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/IPv6ExtHdrFragment(nh=6, "
                f"id=0xfedc, m=0, offset=370)/{payload}"),
        Fixture("rfc7915-4.1-df-clear-no-fragment-header",
                "An unfragmented IPv4 packet with DF clear gets no Fragment header (RFC 8021: no "
                "atomic fragments); the daemon's route MTU makes it fit the lowest IPv6 MTU.",
                POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4, flags='')}/{L4['udp'][0]}",
                "translated_4to6",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/{L4['udp'][1]}"),
        dropped("rfc7915-4.1-icmp-fragment",
                "A fragmented ICMPv4 echo: the ICMPv6 checksum's pseudo-header needs the length "
                "of the whole message, which a fragment does not know.",
                f"{ETH}/{ip4(CLIENT4, SERVER4, flags='MF')}/{ECHO4}", "icmp_fragment"),
        dropped("rfc7915-4.5-udp-zero-checksum-fragment",
                "The first fragment of IPv4 UDP without checksum: the checksum cannot be computed "
                "from one fragment.",
                f"{ETH}/{ip4(CLIENT4, SERVER4, flags='MF')}/UDP(sport=53000, dport=53, len=4008, "
                f"chksum=0)/{payload}", "udp_zero_checksum"),
        Fixture("rfc7915-5.1-fragment-first",
                "IPv6 first fragment: the low 16 bits of the Identification, MF and the offset "
                "go into the IPv4 header, DF clear (RFC 7915 5.1.1); the Fragment header goes.",
                POOL6,
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrFragment(id=0x89abcdef, m=1, "
                f"offset=0)/UDP(sport=53000, dport=53, len=4008)/{payload}",
                "fragment_translated_6to4",
                f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=65)}/UDP(sport=53000, dport=53, len=4008)"
                f"/{payload}".replace("flags='')", "flags='MF')")),
        Fixture("rfc7915-5.1-fragment-last",
                "IPv6 last fragment (M=0, offset 185).",
                POOL6,
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrFragment(nh=17, id=0x89abcdef, "
                f"m=0, offset=185)/{payload}",
                "fragment_translated_6to4",
                f"{ETH}/IP(src='{CLIENT4}', dst='{SERVER4}', ttl=65, id=0, frag=185, proto=17)"
                f"/{payload}"),
        Fixture("rfc8021-atomic-fragment",
                "An IPv6 atomic fragment (offset 0, M=0, RFC 8021): translated as an ordinary "
                "packet with DF clear.",
                POOL6,
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrFragment(id=0x5555, m=0, "
                f"offset=0)/{L4['udp'][1]}",
                "fragment_translated_6to4",
                f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=65)}/{L4['udp'][0]}"),
        dropped("rfc7915-5.1-icmpv6-fragment",
                "A fragmented ICMPv6 echo: dropped (see rfc7915-4.1-icmp-fragment).",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrFragment(id=1, m=1)/{ECHO6}",
                "icmp_fragment"),
    ]


def fixtures_options():
    u4, u6 = L4["udp"]
    return [
        translate_4to6("rfc7915-4.1-ipv4-options-ignored",
                       "IPv4 options (Router Alert) are ignored and the packet translated (RFC "
                       "7915 section 4.1).", "udp", CLIENT4, SERVER4, p6(CLIENT4), p6(SERVER4),
                       flags="DF") if False else Fixture(
            "rfc7915-4.1-ipv4-options-ignored",
            "IPv4 options (Router Alert, NOP) are ignored and the packet translated (RFC 7915 "
            "section 4.1).", POOL6,
            f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', options=[IPOption_Router_Alert(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP()]')}/{u4}",
            "translated_4to6", f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/{u6}"),
        Fixture("rfc7915-4.1-record-route-ignored",
                "A Record Route option is ignored like any option (only an unexpired source "
                "route stops the translation).", POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', options=[IPOption_RR(routers=[' + repr(ROUTER4) + '], pointer=8)]')}/{u4}",
                "translated_4to6", f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/{u6}"),
        dropped("rfc7915-4.1-unexpired-source-route",
                "An unexpired loose source route: the packet is not translated (RFC 7915 section "
                "4.1).",
                f"{ETH}/{ip4(CLIENT4, SERVER4, extra=', options=[IPOption_LSRR(routers=[' + repr(ROUTER4) + '], pointer=4)]')}/{u4}",
                "ipv4_source_route"),
        Fixture("rfc7915-5.1-hop-by-hop-removed",
                "IPv6 hop-by-hop options are not translated: the header goes.", POOL6,
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrHopByHop(options=[RouterAlert()])/{u6}",
                "translated_6to4", f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=65)}/{u4}"),
        Fixture("rfc7915-5.1-destination-options-removed",
                "IPv6 destination options: the header goes.", POOL6,
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\\x00' * 4)])/{u6}",
                "translated_6to4", f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=65)}/{u4}"),
        Fixture("rfc7915-5.1-routing-segments-left-0",
                "A routing header with segments left 0 is ignored and removed.", POOL6,
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrRouting(addresses=['2001:db8::5'], segleft=0)/{u6}",
                "translated_6to4", f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=65)}/{u4}"),
        dropped("rfc7915-5.1-routing-segments-left",
                "A routing header with segments left: not translated (RFC 7915 section 5.1).",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/IPv6ExtHdrRouting(addresses=['2001:db8::5'], segleft=1)/{u6}",
                "ipv6_routing_segments_left"),
        Fixture("rfc7915-4.5-udp-zero-checksum-computed",
                "IPv4 UDP without checksum: the translator computes it over the datagram (RFC "
                "7915 section 4.5, udp_zero_checksum: compute, the default).", POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4)}/UDP(sport=53000, dport=53, chksum=0)/Raw(b'odd' * 101)",
                "udp_zero_checksum_computed",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65)}/UDP(sport=53000, dport=53)/Raw(b'odd' * 101)"),
        Fixture("rfc7915-4.5-udp-zero-checksum-dropped",
                "udp_zero_checksum: drop.", POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4)}/UDP(sport=53000, dport=53, chksum=0)/Raw({PAYLOAD})",
                "udp_zero_checksum", translation=[("udp_zero_checksum", "drop")]),
        Fixture("rfc7915-4.1-traffic-class-configured",
                "translation.traffic_class 32: the TOS (0xb8) is not copied, 32 is written.",
                POOL6, f"{ETH}/{ip4(CLIENT4, SERVER4, tos=0xb8)}/{u4}", "translated_4to6",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=65, tc=0x20)}/{u6}",
                translation=[("traffic_class", "32")]),
        Fixture("rfc7915-5.1-tos-configured",
                "translation.traffic_class 0: the traffic class is not copied.",
                POOL6, f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), tc=0xb8)}/{u6}", "translated_6to4",
                f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=65)}/{u4}",
                translation=[("traffic_class", "0")]),
        Fixture("rfc7915-5.1-local-hop-limit-kept",
                "A packet the router originated itself (ingress_ifindex 0) was not decremented on "
                "its way in: hop limit 64 stays TTL 64; the pass after the translator is its one "
                "hop.", POOL6, f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4))}/{u6}", "translated_6to4",
                f"{ETH}/{ip4_out(CLIENT4, SERVER4, ttl=64)}/{u4}", local=True),
        Fixture("rfc7915-4.1-local-ttl-kept",
                "The same IPv4 -> IPv6: TTL 64 of a local packet stays hop limit 64.", POOL6,
                f"{ETH}/{ip4(CLIENT4, SERVER4)}/{u4}", "translated_4to6",
                f"{ETH}/{ip6(p6(CLIENT4), p6(SERVER4), hlim=64)}/{u6}", local=True),
        Fixture("rfc6052-3.1-wkp-non-global-allowed",
                "translation.allow_wkp_non_global true: 64:ff9b::198.51.100.10 is translated.",
                "64:ff9b::/96",
                f"{ETH}/{ip6(EAM_SERVER6, '64:ff9b::' + CLIENT4)}/{u6}", "translated_6to4",
                f"{ETH}/{ip4_out(EAM_SERVER4, CLIENT4, ttl=65)}/{u4}", eams=[EAM_WIDE],
                translation=[("allow_wkp_non_global", "true")]),
        Fixture("rfc7757-4.2-hairpinning",
                "EAM host 2001:db8:1::a (192.0.2.10) reaches EAM host 192.0.2.11 through pool6: "
                "the packet goes back to IPv6 with the source in pool6 form "
                "(2001:db8:64::c000:20a) and the destination the EAM address 2001:db8:1::b, so "
                "the reply comes back through the translator (RFC 7757 section 4.2).",
                POOL6, f"{ETH}/{ip6(EAM_SERVER6, p6('192.0.2.11'))}/{L4['tcp'][1]}", "hairpinned",
                f"{ETH}/{ip6(p6('192.0.2.10'), '2001:db8:1::b', hlim=65)}/{L4['tcp'][1]}",
                eams=[EAM_WIDE]),
    ]


# --------------------------------------------------------------------------------------------
# Issue 4: stateful NAT64 (xlat64_abi.h, "NAT64 host mapping"): IPv6 hosts of admitted prefixes
# get an internal IPv4 address, which the kernel's NAT44 (not tested here) makes public.

N64_PREFIXES = ["2001:db8:a00::/48", "2001:db8:b00::/48"]  # subscribers 0-255 and 256-511
N64_SUB_LEN = 56
N64_HOSTS = 4
N64_INTERNAL = "100.64.0.0/16"
N64_BASE = [("prefixes", ",".join(N64_PREFIXES)), ("subscriber_length", str(N64_SUB_LEN)),
            ("internal_pool", N64_INTERNAL), ("public_prefixes", "203.0.113.0/27"),
            ("ports", "1024-65535"), ("block_size", "2048")]
# 32 public addresses x 31 blocks of 2048 ports = 992 blocks, enough for the 512 subscribers.
N64_BLOCKS = 32 * 31
N64_DET = N64_BASE + [("hosts_per_subscriber", str(N64_HOSTS)), ("mode", "deterministic")]
N64_DYN = N64_BASE + [("hosts_per_subscriber", str(N64_HOSTS)), ("mode", "dynamic")]


def n64_subscriber(host6):
    """RFC 7422: the deterministic index of host6's subscriber (its prefix's first subscriber
    plus the subscriber bits after the admitted prefix)."""
    a = ipaddress.IPv6Address(host6)
    first = 0
    for p in N64_PREFIXES:
        net = ipaddress.IPv6Network(p)
        if a in net:
            bits = N64_SUB_LEN - net.prefixlen
            return first + ((int(a) >> (128 - N64_SUB_LEN)) & ((1 << bits) - 1))
        first += 1 << (N64_SUB_LEN - net.prefixlen)
    raise ValueError(f"{host6} is not admitted")


def n64_slot(host6, slots=N64_HOSTS):
    """The first internal address slot a new host tries, as n64_add_host in xlat64.bpf.c
    computes it: the four 32-bit words of the address XORed as the program loads them (native
    byte order; BPF on x86-64 and arm64 is little-endian), times 0x9e3779b1 modulo 2^32, then
    (h ^ h >> 16) & (slots - 1)."""
    b = ipaddress.IPv6Address(host6).packed
    w = 0
    for i in range(0, 16, 4):
        w ^= int.from_bytes(b[i:i + 4], "little")
    h = (w * 0x9e3779b1) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & (slots - 1)


def n64_internal(block, slot, hosts=N64_HOSTS):
    """Internal address SLOT of internal block BLOCK."""
    base = ipaddress.IPv4Network(N64_INTERNAL).network_address
    return str(base + block * hosts + slot)


def n64_sub_prefix(host6):
    return str(ipaddress.IPv6Network(f"{host6}/{N64_SUB_LEN}", strict=False))


def nat64(f, config, hosts=(), leases=(), also=(), expect_hosts=(), expect_leases=()):
    f.nat64 = list(config)
    f.n64hosts = list(hosts)
    f.n64leases = list(leases)
    f.also = list(also)
    f.expect_hosts = list(expect_hosts)
    f.expect_leases = list(expect_leases)
    return f


# Hosts. NEW_* are admitted by the fixtures; their hash slot is not 0, so a program that ignored
# the hash would be caught.
N64_NEW_B = "2001:db8:b00:ff00::1"    # subscriber 256 + 0xff = 511, the last one
N64_NEW_A = "2001:db8:a00:500::2"     # subscriber 5
N64_KNOWN = "2001:db8:a00:2a00::3"    # subscriber 42 (hash slot 0; seeded at slot 3)
N64_KNOWN4 = n64_internal(42, 3)
N64_OTHER = "2001:db8:a00:500::99"    # subscriber 5 too
N64_OUTSIDE = "2001:db8:c00::1"       # in no admitted prefix
for _h in (N64_NEW_B, N64_NEW_A):
    assert n64_slot(_h) != 0, _h
assert n64_slot(N64_KNOWN) != 3
assert n64_subscriber(N64_NEW_B) == 511 and n64_subscriber(N64_NEW_A) == 5
assert n64_subscriber(N64_KNOWN) == 42


def fixtures_nat64():
    u4, u6 = L4["udp"]
    t4, t6 = L4["tcp"]
    new_b4 = n64_internal(511, n64_slot(N64_NEW_B))
    new_a4 = n64_internal(5, n64_slot(N64_NEW_A))
    taken = n64_internal(5, n64_slot(N64_NEW_A))
    next_free = n64_internal(5, (n64_slot(N64_NEW_A) + 1) % N64_HOSTS)
    known = [(N64_KNOWN, N64_KNOWN4)]
    out = [
        nat64(translate_6to4(
            "rfc7422-new-host-tcp-syn",
            f"Deterministic NAT64: the first packet of {N64_NEW_B}, subscriber 511 (the second "
            f"admitted prefix {N64_PREFIXES[1]} starts at subscriber 256, plus 0xff from bits "
            f"48-55), gives it an internal address of block 511 ({n64_internal(511, 0)}/30): "
            f"slot {n64_slot(N64_NEW_B)} from the hash of its address, {new_b4}. The destination "
            "comes from pool6; the host is recorded.",
            "tcp", N64_NEW_B, p6(SERVER4), new_b4, SERVER4),
            N64_DET, also=["nat64_hosts_added"], expect_hosts=[(N64_NEW_B, new_b4)]),
        nat64(translate_6to4(
            "rfc7422-new-host-first-prefix-udp",
            f"Deterministic NAT64: {N64_NEW_A} is subscriber 5 of {N64_PREFIXES[0]}: block 5 "
            f"({n64_internal(5, 0)}/30), slot {n64_slot(N64_NEW_A)}: {new_a4}.",
            "udp", N64_NEW_A, p6(SERVER4), new_a4, SERVER4),
            N64_DET, also=["nat64_hosts_added"], expect_hosts=[(N64_NEW_A, new_a4)]),
        nat64(translate_6to4(
            "rfc6146-new-host-hash-slot-taken",
            f"The slot {N64_NEW_A}'s hash points at ({taken}) is held by {N64_OTHER}, another "
            f"host of the same subscriber: the next slot, {next_free}, is claimed instead.",
            "udp", N64_NEW_A, p6(SERVER4), next_free, SERVER4),
            N64_DET, hosts=[(N64_OTHER, taken)], also=["nat64_hosts_added"],
            expect_hosts=[(N64_NEW_A, next_free)]),
        nat64(translate_6to4(
            "rfc6146-known-host-keeps-address",
            f"A host with an address ({N64_KNOWN} -> {N64_KNOWN4}, seeded; its hash would say "
            f"slot {n64_slot(N64_KNOWN)}) keeps it: the later packets of a host all leave from "
            "one internal address, and no host is added.",
            "tcp-data", N64_KNOWN, p6(SERVER4), N64_KNOWN4, SERVER4),
            N64_DET, hosts=known),
        nat64(dropped(
            "rfc6146-source-not-admitted",
            f"NAT64 on: the source {N64_OUTSIDE} is in no admitted prefix (nor the EAMT): "
            "dropped, and no host is recorded.",
            f"{ETH}/{ip6(N64_OUTSIDE, p6(SERVER4))}/{t6}", "nat64_not_admitted"),
            N64_DET),
        nat64(translate_4to6(
            "rfc6146-4to6-to-known-host",
            f"IPv4 -> IPv6: a server's reply to the internal address {N64_KNOWN4} (after the "
            f"NAT44) goes to the host holding it, {N64_KNOWN}; the source through pool6.",
            "tcp-data", SERVER4, N64_KNOWN4, p6(SERVER4), N64_KNOWN),
            N64_DET, hosts=known),
        nat64(dropped(
            "rfc6146-4to6-unknown-internal",
            f"IPv4 -> IPv6 to the internal address {n64_internal(42, 2)}, which no host holds "
            "(expired, or never handed out): dropped, never sent through pool6.",
            f"{ETH}/{ip4(SERVER4, n64_internal(42, 2))}/{u4}", "nat64_unknown_internal"),
            N64_DET, hosts=known),
        nat64(dropped(
            "rfc6146-4to6-internal-source",
            f"IPv4 -> IPv6 from the internal address {N64_KNOWN4} (held by {N64_KNOWN}) to "
            f"{taken}: legitimate traffic to a subscriber comes from outside (a server, or a "
            "hairpin after its SNAT), never from the internal pool, so such a packet would "
            "impersonate a subscriber's host. Dropped.",
            f"{ETH}/{ip4(N64_KNOWN4, taken)}/{u4}", "no_source_mapping"),
            N64_DET, hosts=known + [(N64_OTHER, taken)]),
        nat64(dropped(
            "rfc6146-4to6-internal-source-to-eam-host",
            f"IPv4 from the internal address {N64_KNOWN4} to the EAM host {EAM_SERVER4}: "
            "dropped by the device path as above; at an interface's ingress it is refused "
            "before anything else (the NAT44 would otherwise give it the subscriber's public "
            "address), though its destination is one the translator serves.",
            f"{ETH}/{ip4(N64_KNOWN4, EAM_SERVER4)}/{u4}", "no_source_mapping", eams=[EAM_WIDE]),
            N64_DET, hosts=known),
        nat64(dropped(
            "rfc6146-internal-pool-not-through-pool6",
            f"A subscriber names another subscriber's host by its internal address through "
            f"pool6 ({p6(taken)}, held by {N64_OTHER}): the internal pool is reached only "
            "through the NAT44, so the destination does not map.",
            f"{ETH}/{ip6(N64_KNOWN, p6(taken))}/{u6}", "no_destination_mapping"),
            N64_DET, hosts=known + [(N64_OTHER, taken)]),
        nat64(dropped(
            "rfc6146-no-host-address",
            "hosts_per_subscriber 1: subscriber 7's only internal address (100.64.0.7) is held "
            "by 2001:db8:a00:700::7, so its second host 2001:db8:a00:700::8 gets none.",
            f"{ETH}/{ip6('2001:db8:a00:700::8', p6(SERVER4))}/{u6}", "nat64_no_host_address"),
            N64_BASE + [("hosts_per_subscriber", "1"), ("mode", "deterministic")],
            hosts=[("2001:db8:a00:700::7", "100.64.0.7")]),
        nat64(translate_6to4(
            "rfc6146-dynamic-first-packet-leases-block",
            f"Dynamic NAT64: the first packet of subscriber {n64_sub_prefix(N64_NEW_A)} pops "
            "the head of the free queue (filled in nat64_free_order: block 0, the first block "
            "of the first public address), leases it and gives the host slot "
            f"{n64_slot(N64_NEW_A)} of internal block 0: {n64_internal(0, n64_slot(N64_NEW_A))}.",
            "tcp", N64_NEW_A, p6(SERVER4), n64_internal(0, n64_slot(N64_NEW_A)), SERVER4),
            N64_DYN, also=["nat64_blocks_allocated", "nat64_hosts_added"],
            expect_hosts=[(N64_NEW_A, n64_internal(0, n64_slot(N64_NEW_A)))],
            expect_leases=[(n64_sub_prefix(N64_NEW_A), 0)]),
        nat64(translate_6to4(
            "rfc6146-dynamic-stale-block-skipped",
            f"Dynamic NAT64 with the free queue 5000, 45: block 5000 is beyond the pool's "
            f"{N64_BLOCKS} blocks (a pool that shrank) and is skipped; block 45 is leased: "
            f"{n64_internal(45, n64_slot(N64_NEW_A))}.",
            "udp", N64_NEW_A, p6(SERVER4), n64_internal(45, n64_slot(N64_NEW_A)), SERVER4),
            N64_DYN + [("free_queue", "5000,45")],
            also=["nat64_blocks_allocated", "nat64_hosts_added"],
            expect_hosts=[(N64_NEW_A, n64_internal(45, n64_slot(N64_NEW_A)))],
            expect_leases=[(n64_sub_prefix(N64_NEW_A), 45)]),
        nat64(dropped(
            "rfc6146-dynamic-no-free-block",
            "Dynamic NAT64 with an empty free queue (every block leased): a new subscriber's "
            "packet is dropped; nothing is leased or recorded.",
            f"{ETH}/{ip6(N64_NEW_A, p6(SERVER4))}/{t6}", "nat64_no_free_block"),
            N64_DYN + [("free_queue", "none")]),
        nat64(translate_6to4(
            "rfc6146-dynamic-leased-subscriber-new-host",
            f"Dynamic NAT64: subscriber {n64_sub_prefix(N64_NEW_A)} already leases block 77; "
            "its new host gets an address of that block "
            f"({n64_internal(77, n64_slot(N64_NEW_A))}) and no block is popped.",
            "udp", N64_NEW_A, p6(SERVER4), n64_internal(77, n64_slot(N64_NEW_A)), SERVER4),
            N64_DYN, leases=[(n64_sub_prefix(N64_NEW_A), 77)], also=["nat64_hosts_added"],
            expect_hosts=[(N64_NEW_A, n64_internal(77, n64_slot(N64_NEW_A)))]),
        nat64(Fixture(
            "rfc6146-icmp-frag-needed-to-host",
            f"ICMPv4 Fragmentation Needed (MTU 1400) from router {ROUTER4} to the internal "
            f"address {N64_KNOWN4} about the host's TCP SYN to {SERVER4} becomes Packet Too "
            f"Big (MTU 1420) to {N64_KNOWN}; the quoted packet's addresses map back to the "
            "host and pool6.", POOL6,
            f"{ETH}/{ip4(ROUTER4, N64_KNOWN4, flags='')}/ICMP(type=3, code=4, nexthopmtu=1400)"
            f"/IP(src='{N64_KNOWN4}', dst='{SERVER4}', ttl=63, id=0x2222, flags='DF')/{TCP_Q}",
            "icmp_error_translated_4to6",
            f"{ETH}/{ip6(p6(ROUTER4), N64_KNOWN, hlim=65)}/ICMPv6PacketTooBig(mtu=1420)"
            f"/IPv6(src='{N64_KNOWN}', dst='{p6(SERVER4)}', hlim=63)/{TCP_Q}"),
            N64_DET, hosts=known),
        nat64(Fixture(
            "rfc6146-icmpv6-error-from-known-host",
            f"ICMPv6 port unreachable from the host {N64_KNOWN} about a server's UDP datagram "
            f"becomes ICMPv4 3/3 from its internal address {N64_KNOWN4}, the quoted packet "
            "mapped the same way.", POOL6,
            f"{ETH}/{ip6(N64_KNOWN, p6(SERVER4))}/ICMPv6DestUnreach(code=4)"
            f"/IPv6(src='{p6(SERVER4)}', dst='{N64_KNOWN}', hlim=60)/{UDP_TR}",
            "icmp_error_translated_6to4",
            f"{ETH}/{ip4_out(N64_KNOWN4, SERVER4, ttl=65)}/ICMP(type=3, code=3)"
            f"/IP(src='{SERVER4}', dst='{N64_KNOWN4}', ttl=60, id=0, flags='')/{UDP_TR}"),
            N64_DET, hosts=known),
        nat64(dropped(
            "rfc6146-icmpv6-error-from-unknown-host",
            f"An ICMPv6 error from {N64_NEW_A}, admitted but holding no address: an error never "
            "admits a host (it answers a packet that needed the host's mapping), so there is "
            "no source mapping.",
            f"{ETH}/{ip6(N64_NEW_A, p6(SERVER4))}/ICMPv6DestUnreach(code=4)"
            f"/IPv6(src='{p6(SERVER4)}', dst='{N64_NEW_A}', hlim=60)/{UDP_TR}",
            "no_source_mapping"),
            N64_DET),
        nat64(translate_6to4(
            "rfc7757-3.2-eamt-before-nat64",
            f"NAT64 on: an EAM host ({EAM_SERVER6}, outside the admitted prefixes) still maps "
            f"through the EAMT ({EAM_SERVER4}); NAT64 admits only what the EAMT does not map.",
            "udp", EAM_SERVER6, p6(CLIENT4), EAM_SERVER4, CLIENT4, eams=[EAM_WIDE]),
            N64_DET),
        nat64(translate_6to4(
            "rfc7757-4.2-nat64-host-not-hairpinned",
            f"A NAT64 host ({N64_KNOWN}) reaching an EAM host through pool6 "
            f"({p6(EAM_SERVER4)}) is not hairpinned back to IPv6: it goes to IPv4 from its "
            "internal address, so that the NAT44 gives it its public one.",
            "udp", N64_KNOWN, p6(EAM_SERVER4), N64_KNOWN4, EAM_SERVER4, eams=[EAM_WIDE]),
            N64_DET, hosts=known),
    ]
    return out


FILES = {
    "rfc7915-4-ipv4-to-ipv6.txt": fixtures_4to6,
    "rfc7915-5-ipv6-to-ipv4.txt": fixtures_6to4,
    "rfc6052-pool6.txt": fixtures_pool6,
    "rfc7757-eamt.txt": fixtures_eamt,
    "drops.txt": fixtures_drops,
    "rfc7915-icmp-errors.txt": fixtures_icmp_errors,
    "rfc7915-fragments.txt": fixtures_fragments,
    "rfc7915-options-settings.txt": fixtures_options,
    "nat64.txt": fixtures_nat64,
}

# --------------------------------------------------------------------------------------------


def build(expr):
    return bytes(eval(expr))  # noqa: S307  (our own expressions)


def setting(f, key, default):
    return dict(f.translation).get(key, default)


def addressed_to_translator(f, pkt):
    """The ingress instance's choice, stated from the settings: what the daemon routes into the
    device, an IPv6 destination in pool6 or an IPv4 destination in an EAM IPv4 prefix (an EAM IPv6
    prefix names real IPv6 hosts, reached natively). Without settings, nothing."""
    if f.pool6 == "unset" or pkt.type not in (0x0800, 0x86DD):
        return False
    if pkt.type == 0x86DD:
        dst = ipaddress.IPv6Address(pkt[IPv6].dst)
        return f.pool6 != "none" and dst in ipaddress.IPv6Network(f.pool6, strict=False)
    dst = ipaddress.IPv4Address(pkt[IP].dst)
    return any(dst in ipaddress.IPv4Network(v4, strict=False) for v4, _ in f.eams)


def from_internal_pool(f, pkt):
    """An IPv4 packet whose source is in the NAT64 internal pool (with nat64 on)."""
    pool = dict(f.nat64).get("internal_pool")
    return (pool is not None and pkt.type == 0x0800 and
            ipaddress.IPv4Address(pkt[IP].src) in ipaddress.IPv4Network(pool, strict=False))


def translated_at_ingress(f, pkt):
    """Whether a packet the device path translates is translated at ingress too: only plain TCP,
    UDP and ICMP echo that will not expire and (IPv4 without DF) fit lowest_ipv6_mtu."""
    if not f.out or f.counter not in ("translated_6to4", "translated_4to6",
                                      "udp_zero_checksum_computed"):
        return False
    if pkt.type == 0x86DD:
        return pkt[IPv6].nh in (6, 17, 58) and pkt[IPv6].hlim > 1
    ip = pkt[IP]
    fragment = ip.flags.MF or ip.frag != 0
    fits = "DF" in str(ip.flags) or ip.len + 28 <= int(setting(f, "lowest_ipv6_mtu", 1280))
    return ip.ttl > 1 and not fragment and fits


def ingress_expectation(f):
    """(verdict, why, expected frame) of the ingress instance, or None for local fixtures."""
    if f.local:
        return None
    pkt = Ether(build(f.inp))
    if from_internal_pool(f, pkt):
        return ("TC_ACT_SHOT", "internal_source", None)
    if not addressed_to_translator(f, pkt):
        return ("TC_ACT_UNSPEC", "not_mine", None)
    if not translated_at_ingress(f, pkt):
        return ("TC_ACT_UNSPEC", "deferred", None)
    out = eval(f.out)  # noqa: S307
    if out.type == 0x0800:
        out[IP].ttl = pkt[IPv6].hlim
    else:
        out[IPv6].hlim = pkt[IP].ttl
    return ("TC_ACT_OK", None, bytes(out))


def render(fixtures):
    lines = [HEADER]
    for f in fixtures:
        inp = build(f.inp)
        lines.append(f"fixture {f.name}")
        for line in textwrap.wrap(f.desc, 96):
            lines.append(f"# {line}")
        lines.append(f"# in:  {f.inp}")
        if f.out:
            lines.append(f"# out: {f.out}")
        lines.append(f"pool6 {f.pool6}")
        for v4, v6 in f.eams:
            lines.append(f"eam {v4} {v6}")
        for key, value in f.translation:
            lines.append(f"translation {key} {value}")
        for key, value in f.nat64:
            lines.append(f"nat64 {key} {value}")
        for host, internal in f.n64hosts:
            lines.append(f"n64host {host} {internal}")
        for prefix, block in f.n64leases:
            lines.append(f"n64lease {prefix} {block}")
        if f.local:
            lines.append("local")
        lines.append(f"in {inp.hex()}")
        lines.append(f"verdict {f.verdict}")
        lines.append(f"counter {f.counter}")
        for label in f.also:
            lines.append(f"also_counter {label}")
        if f.out:
            lines.append(f"out {build(f.out).hex()}")
        for host, internal in f.expect_hosts:
            lines.append(f"expect_host {host} {internal}")
        for prefix, block in f.expect_leases:
            lines.append(f"expect_lease {prefix} {block}")
        ingress = ingress_expectation(f)
        if ingress:
            verdict, why, out = ingress
            lines.append(f"ingress {verdict}" + (f" {why}" if why else ""))
            if out:
                lines.append(f"ingress_out {out.hex()}")
        lines.append("end")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the files instead of writing them")
    parser.add_argument("--dir", default=FIXTURE_DIR)
    args = parser.parse_args()

    names = set()
    stale = []
    for filename, make in FILES.items():
        fixtures = make()
        for f in fixtures:
            assert f.name not in names, f"duplicate fixture name {f.name}"
            names.add(f.name)
        text = render(fixtures)
        path = os.path.join(args.dir, filename)
        if args.check:
            try:
                with open(path, encoding="utf-8") as fh:
                    if fh.read() != text:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
        else:
            os.makedirs(args.dir, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
    if args.check:
        extra = sorted(set(n for n in os.listdir(args.dir) if n.endswith(".txt")) - set(FILES))
        stale += [os.path.join(args.dir, n) for n in extra]
        if stale:
            print("out of date (run /usr/bin/python3 test/datapath/gen_fixtures.py):",
                  *stale, sep="\n  ", file=sys.stderr)
            return 1
        print(f"{len(names)} fixtures up to date")
    else:
        print(f"wrote {len(names)} fixtures to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
