// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * xlat64: stateless IP/ICMP translation (SIIT, RFC 7915) as a tc program.
 *
 * The daemon routes pool6 (RFC 6052), the EAMT prefixes (RFC 7757) and its internal pools into the
 * layer-3 device "xlat64" and attaches this program at that device's tc egress. Every packet seen
 * here was routed into the device to be translated: the program rewrites it in place into the
 * other IP version and redirects it to the ingress of the same device, where the kernel receives
 * it as if it had arrived there and routes, filters and NATs it like any other packet.
 *
 * The same code also runs as xlat64_ingress, at the tc ingress of interfaces the operator lists
 * (translation.ingress_interfaces): there it translates the common packets before the first
 * routing decision, saving the second pass through the stack, and leaves the rest unchanged for
 * the device path (see xlat_at_ingress).
 *
 * Scope: RFC 7915 sections 4 and 5 in both directions: TCP, UDP, ICMP echo, ICMP errors with the
 * packet they quote, fragments, IPv4 options (ignored; source routes refused), IPv6 extension
 * headers (hop-by-hop, destination options, routing without segments left, fragment), UDP
 * without checksum, RFC 6791 sources for untranslatable ICMP errors and EAMT hairpinning
 * (RFC 7757 section 4.2). Everything else is dropped and counted by reason (enum xlat_stat in
 * xlat64_abi.h); every packet lands in exactly one counter.
 *
 * What the kernel does for us (and this program therefore does not): Time Exceeded for a TTL or
 * hop limit that expires at the router (the kernel's first forwarding pass), Fragmentation Needed
 * and Packet Too Big for packets that do not fit the routes into the device (the daemon gives the
 * IPv4 routes MTU min(device mtu, lowest_ipv6_mtu) - 28), and the fragmentation of IPv4 packets
 * without DF to that MTU before they reach the translator, so that their translation, with a
 * Fragment header, still fits (RFC 7915 section 4). The program never has to emit two packets.
 *
 * Checksums of ordinary packets are only ever adjusted incrementally through the kernel's
 * helpers, never recomputed over the payload: on the real path the skbs are often
 * CHECKSUM_PARTIAL (locally generated TCP and UDP, veth, GSO super-packets) or CHECKSUM_COMPLETE
 * (forwarded from a NIC), and only the helpers know how to keep the checksum field and skb->csum
 * right for each of those. Two cases are summed over their bytes (xlat_csum_bytes): ICMP errors,
 * whose quoted packet changes size and content (the kernel always computes ICMP checksums in
 * software, so they are never CHECKSUM_PARTIAL), and IPv4 UDP without checksum.
 */
#include <stdbool.h>
#include <stddef.h>

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kmod-shim/xlat64_abi.h"

/*
 * Bytes in front of the IP header. 0 on the xlat64 tun device (IFF_TUN without packet info: the
 * skb starts at the IP header and skb->protocol says which one); 14 under BPF_PROG_TEST_RUN,
 * which always hands tc programs an Ethernet frame. Set by the loader before the verifier runs,
 * so the branch that does not apply is pruned.
 */
const volatile __u32 xlat_l2_hlen = 0;

/*
 * 1 in the instance attached to the tc ingress of an operator's interface
 * (translation.ingress_interfaces), 0 in the one on the xlat64 device. At an interface's ingress
 * nothing was routed yet: the program itself picks the packets the daemon would route into the
 * device (IPv6 to pool6, IPv4 to an EAM IPv4 prefix), translates those whose outcome it can be
 * sure of (unfragmented TCP, UDP and ICMP echo that will not expire, fit and need no hairpin) and
 * lets them go on into the stack as the protocol they now are, with one forwarding pass instead
 * of two. Everything else, its own drops included, continues unchanged (TC_ACT_UNSPEC) and takes
 * the device path, which alone decides and counts what happens to it. Set by the loader, like
 * xlat_l2_hlen.
 */
const volatile __u8 xlat_at_ingress = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlat_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLAT64_PARAMS_SLOTS);
	__type(key, __u32);
	__type(value, struct xlat_params);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_params SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_EAMT_MAX_ENTRIES);
	__type(key, struct xlat_lpm4_key);
	__type(value, struct xlat_eam4_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_eamt4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_EAMT_MAX_ENTRIES);
	__type(key, struct xlat_lpm6_key);
	__type(value, struct xlat_eam6_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_eamt6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLAT_STAT_MAX);
	__type(key, __u32);
	__type(value, struct xlat_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_stats SEC(".maps");

/* What the ingress instances did (enum xlat_ingress_stat); their packets are in xlat_stats too. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLAT_INGRESS_STAT_MAX);
	__type(key, __u32);
	__type(value, struct xlat_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_ingress_stats SEC(".maps");

/* Stateful NAT64 host mapping (xlat64_abi.h, "NAT64 host mapping"). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_N64_PREFIXES_MAX);
	__type(key, struct xlat_lpm6_key);
	__type(value, struct xlat_n64_prefix);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_n64_pfx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_N64_BLOCKS_MAX);
	__type(key, struct in6_addr);
	__type(value, struct xlat_n64_sub);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_n64_subs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_N64_BLOCKS_MAX);
	__type(key, __u32);
	__type(value, struct in6_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_n64_owner SEC(".maps");

/* Preallocated by the kernel (4 bytes per block): the price of an O(1) pop in the data path. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, XLAT64_N64_BLOCKS_MAX);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_n64_free SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_N64_HOSTS_MAX);
	__type(key, struct in6_addr);
	__type(value, struct xlat_n64_host);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_n64_host6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLAT64_N64_HOSTS_MAX);
	__type(key, __be32);
	__type(value, struct in6_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_n64_host4 SEC(".maps");

/* Not pinned: a daemon's scratch space for xlat64_n64_batch, nothing the data path reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLAT_N64_BATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct xlat_n64_batch);
} xlat_n64_batch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_events SEC(".maps");

/* Not in the uapi headers (they live in include/net/ip.h). */
#define XLAT_IP_MF 0x2000
#define XLAT_IP_DF 0x4000
#define XLAT_IP_OFFSET 0x1fff

/* RFC 7915 section 5.1: IPv4 packets up to this size leave with DF=0, bigger ones with DF=1. */
#define XLAT_DF_THRESHOLD 1260

/* RFC 4443 section 2.4 (c): an ICMPv6 error is at most the minimum IPv6 MTU long. Translated
 * errors of both versions are cut to this size, which also bounds the checksum loop. */
#define XLAT_ICMP_ERROR_MAX 1280
#define XLAT_IPV6_MIN_MTU 1280

/* Walked IPv6 extension headers at most; more are dropped as ipv6_extension_header. */
#define XLAT_MAX_EXT_HEADERS 6

/* Bytes summed per step by xlat_csum_bytes, and the longest range it sums (a UDP datagram). */
#define XLAT_CSUM_CHUNK 64
#define XLAT_CSUM_MAX_CHUNKS 1024

/*
 * ICMP types. <linux/icmp.h> is not included: it pulls in glibc's socket headers, which do not
 * build for -target bpf. The ICMPv6 ones come from <linux/icmpv6.h>.
 */
#define XLAT_ICMP_ECHO_REPLY 0
#define XLAT_ICMP_DEST_UNREACH 3
#define XLAT_ICMP_ECHO_REQUEST 8
#define XLAT_ICMP_TIME_EXCEEDED 11
#define XLAT_ICMP_PARAMETERPROB 12
#define XLAT_ICMP_FRAG_NEEDED 4 /* code of XLAT_ICMP_DEST_UNREACH */

/* IPv4 options that carry a source route (RFC 791). */
#define XLAT_IPOPT_END 0
#define XLAT_IPOPT_NOOP 1
#define XLAT_IPOPT_LSRR 131
#define XLAT_IPOPT_SSRR 137

/* Offsets of the checksum field in each transport header. */
#define XLAT_TCP_CSUM_OFF offsetof(struct tcphdr, check)
#define XLAT_UDP_CSUM_OFF offsetof(struct udphdr, check)
#define XLAT_ICMP_CSUM_OFF 2 /* the same in ICMP and ICMPv6 */

/* Every resize keeps gso_size: only headers change, never the payload of a segment. */
#define XLAT_ADJ_FLAGS BPF_F_ADJ_ROOM_FIXED_GSO

/* The IPv6 pseudo-header (RFC 8200 section 8.1) of an upper-layer packet. */
struct xlat_pseudo6 {
	struct in6_addr saddr;
	struct in6_addr daddr;
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

/* The IPv6 Fragment header (RFC 8200 section 4.5). */
struct xlat_frag6 {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3 | M */
	__be32 identification;
};

/* What walking the IPv6 extension headers found. */
struct xlat_ip6_info {
	__u32 l4_off;   /* absolute offset of the upper-layer header (or fragment data) */
	__u32 ext_len;  /* bytes of extension headers before it */
	__be32 frag_id;
	__u16 frag_offset; /* 8-byte units */
	__u8 proto;
	__u8 has_frag;
	__u8 more_frags;
};

/* What the transport header needs after the IP header was rewritten. */
struct xlat_l4 {
	__u32 csum_off;   /* offset of the checksum field from the transport header */
	__u16 old_type;   /* ICMP only: type and code words as on the wire */
	__u16 new_type;
	__u8 proto;       /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6 */
	__u8 udp_zero;    /* IPv4 UDP without checksum: compute one */
};

/* One packet of LEN bytes into slot KEY of a per-CPU array of struct xlat_counter. */
static __always_inline void count_in(void *counters, __u32 key, __u32 len)
{
	struct xlat_counter *c = bpf_map_lookup_elem(counters, &key);

	/* Per-CPU counters: no other CPU writes this slot, so no atomics. */
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline void count(enum xlat_stat what, __u32 len)
{
	count_in(&xlat_stats, what, len);
}

/*
 * At an interface's ingress a packet the program refuses is not dropped but handed on unchanged
 * to the device path, which drops and counts it (or handles what the ingress instance leaves
 * alone). Only a failed helper, which may have left the packet half rewritten, is a drop there.
 */
static __always_inline int drop(enum xlat_stat why, __u32 len)
{
	if (xlat_at_ingress && why != XLAT_STAT_HELPER_FAILED)
		return TC_ACT_UNSPEC;
	count(why, len);
	return TC_ACT_SHOT;
}

/*
 * A translated packet: on the xlat64 device it re-enters the stack through the device's ingress
 * and is routed as the new protocol; at an interface's ingress it simply goes on, the stack
 * reading skb->protocol only after tc.
 */
static __always_inline int deliver(struct __sk_buff *skb)
{
	if (xlat_at_ingress)
		return TC_ACT_OK;
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

/*
 * The live settings: xlat_settings says which slot of xlat_params the daemon finished writing
 * last (see xlat64_abi.h), so a reload reaches each packet whole.
 */
static __always_inline const struct xlat_params *params(void)
{
	__u32 key = 0;
	const struct xlat_settings *s = bpf_map_lookup_elem(&xlat_settings, &key);
	const struct xlat_params *p;

	/* abi_version 0: the maps exist (pinned) but no daemon ever configured them. */
	if (!s || s->abi_version == 0)
		return NULL;
	key = s->active_params & 1;
	p = bpf_map_lookup_elem(&xlat_params, &key);
	if (!p || !p->valid)
		return NULL;
	return p;
}

/*
 * The kernel decrements TTL / hop limit when it forwards a packet into this device and again when
 * it forwards the translated packet after the redirect. RFC 7915 makes the translator one router
 * hop, so a forwarded packet gets one of the two decrements back. A packet the router itself
 * originated (ingress_ifindex 0) was not decremented on its way in, so it keeps its value and the
 * pass after the redirect is its one hop. 255 stays 255: the counter cannot grow past its maximum.
 */
static __always_inline __u8 next_ttl(const struct __sk_buff *skb, __u8 ttl)
{
	/* At an interface's ingress the one forwarding pass comes after the translation. */
	if (xlat_at_ingress || skb->ingress_ifindex == 0)
		return ttl;
	return ttl == 255 ? 255 : ttl + 1;
}

/* RFC 7915 sections 4.1 and 5.1: the traffic class/TOS is copied unless a value is configured. */
static __always_inline __u8 xlat_tos(const struct xlat_params *p, __u8 tos)
{
	return (p->flags & XLAT_PARAM_TOS_SET) ? p->tos_value : tos;
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * What bpf_csum_diff(from, 4 * nfrom, to, 4 * nto, 0) returns, up to one's complement equivalence
 * (all that a checksum keeps): the sum of the 32-bit words at `to` and the complements of those at
 * `from`. The sizes are constants, so it unrolls into a few adds; the helper call cost more than
 * the sum on the per-packet path. The runs may span adjacent fields (both addresses of a header):
 * each word is copied out, never indexed past an array's end.
 */
static __always_inline __u32 csum_words_diff(const void *from, const int nfrom, const void *to,
					     const int nto)
{
	__u64 sum = 0;
	__be32 w;

#pragma unroll
	for (int i = 0; i < nfrom; i++) {
		__builtin_memcpy(&w, (const __u8 *)from + 4 * i, sizeof(w));
		sum += (__u32)~w;
	}
#pragma unroll
	for (int i = 0; i < nto; i++) {
		__builtin_memcpy(&w, (const __u8 *)to + 4 * i, sizeof(w));
		sum += w;
	}
	sum = (sum & 0xffffffffU) + (sum >> 32);
	sum = (sum & 0xffffffffU) + (sum >> 32);
	return (__u32)sum;
}

/* The header checksum of an IPv4 header without options whose check field is 0. */
static __always_inline __u16 ipv4_header_csum(const struct iphdr *ip4)
{
	return csum_fold(csum_words_diff(NULL, 0, ip4, sizeof(*ip4) / 4));
}

/*
 * A checksum field (as stored, in wire order) after the data it covers changed by `diff` (a
 * csum_words_diff result). RFC 1624: new = ~(~old + diff).
 */
static __always_inline __u16 csum_update(__u16 check, __u64 diff)
{
	return csum_fold((__u64)(__u16)~check + diff);
}

/* State of xlat_csum_bytes's bpf_loop: the skb, where to read next, the running sum. */
struct xlat_csum_ctx {
	struct __sk_buff *skb;
	__u32 off;
	__u32 end;
	__u32 sum;
	__u32 failed;
};

/*
 * One step of xlat_csum_bytes: up to XLAT_CSUM_CHUNK bytes; the last step of a range pads its
 * tail with zeros, as RFC 1071 says (every step but the last starts at an even distance from the
 * start, so the 16-bit words stay aligned). bpf_loop verifies this once, whatever the length.
 */
static long csum_step(__u32 index, void *data)
{
	struct xlat_csum_ctx *c = data;
	__u8 buf[XLAT_CSUM_CHUNK] = {};
	__u32 n, size;
	__s64 sum;

	if (c->off >= c->end)
		return 1;
	n = c->end - c->off;
	if (n > XLAT_CSUM_CHUNK)
		n = XLAT_CSUM_CHUNK;
	/* 1..64 in a form the 6.1 verifier can follow (it does not narrow on "n == 0"). */
	n = ((n - 1) & (XLAT_CSUM_CHUNK - 1)) + 1;
	if (bpf_skb_load_bytes(c->skb, c->off, buf, n)) {
		c->failed = 1;
		return 1;
	}
	size = (n + 3) & ~3U;
	if (size > XLAT_CSUM_CHUNK) {
		c->failed = 1;
		return 1;
	}
	sum = bpf_csum_diff(NULL, 0, (__be32 *)buf, size, c->sum);
	if (sum < 0) {
		c->failed = 1;
		return 1;
	}
	c->sum = (__u32)sum;
	c->off += n;
	return 0;
}

/* The 16-bit one's complement sum (not inverted) of `len` packet bytes from `off`, or -1. */
static __always_inline int xlat_csum_bytes(struct __sk_buff *skb, __u32 off, __u32 len)
{
	struct xlat_csum_ctx c = { .skb = skb, .off = off, .end = off + len };

	if (len > XLAT_CSUM_CHUNK * XLAT_CSUM_MAX_CHUNKS)
		return -1;
	bpf_loop((len + XLAT_CSUM_CHUNK - 1) / XLAT_CSUM_CHUNK, csum_step, &c, 0);
	if (c.failed || c.off != c.end)
		return -1;
	return (__u16)~csum_fold(c.sum);
}

/* n is a constant at every call, so the loop unrolls into straight compares. */
static __always_inline bool bytes_equal(const __u8 *a, const __u8 *b, const int n)
{
	__u8 diff = 0;

#pragma unroll
	for (int i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/*
 * Multicast (ff00::/8), link-local (fe80::/10), unspecified (::) and loopback (::1) addresses are
 * never translated. The kernel itself sends such packets into the device (neighbour discovery
 * and MLD when it comes up); they are counted apart from real translation failures.
 */
static __always_inline bool ipv6_global_unicast(const struct in6_addr *a)
{
	const __u8 *b = a->s6_addr;
	__u32 w0 = a->s6_addr32[0], w1 = a->s6_addr32[1], w2 = a->s6_addr32[2];

	if (b[0] == 0xff)
		return false;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return false;
	if ((w0 | w1 | w2) == 0 && bpf_ntohl(a->s6_addr32[3]) <= 1)
		return false;
	return true;
}

/*
 * RFC 6052 section 3.1: the Well-Known Prefix 64:ff9b::/96 must not carry non-global IPv4
 * addresses, and a translator must drop packets in which it would, unless the operator allowed
 * it (translation.allow_wkp_non_global). Non-global: the blocks of RFC 5735 section 3 and the
 * shared address space of RFC 6598.
 */
static __always_inline bool pool6_is_wkp(const struct xlat_params *s)
{
	const __u8 *p = s->pool6;

	return s->pool6_len == 96 && p[0] == 0x00 && p[1] == 0x64 && p[2] == 0xff && p[3] == 0x9b &&
	       (p[4] | p[5] | p[6] | p[7] | p[8] | p[9] | p[10] | p[11]) == 0 &&
	       !(s->flags & XLAT_PARAM_ALLOW_WKP_NON_GLOBAL);
}

static __always_inline bool in_prefix4(__u32 a, __u32 prefix, int len)
{
	return (a & (0xffffffffU << (32 - len))) == prefix;
}

static __always_inline bool ipv4_is_global(__be32 addr)
{
	__u32 a = bpf_ntohl(addr);

	return !(in_prefix4(a, 0x00000000, 8) ||    /* "this" network */
		 in_prefix4(a, 0x0a000000, 8) ||    /* RFC 1918 */
		 in_prefix4(a, 0x64400000, 10) ||   /* shared address space, RFC 6598 */
		 in_prefix4(a, 0x7f000000, 8) ||    /* loopback */
		 in_prefix4(a, 0xa9fe0000, 16) ||   /* link local */
		 in_prefix4(a, 0xac100000, 12) ||   /* RFC 1918 */
		 in_prefix4(a, 0xc0000000, 24) ||   /* IETF protocol assignments */
		 in_prefix4(a, 0xc0000200, 24) ||   /* TEST-NET-1 */
		 in_prefix4(a, 0xc0586300, 24) ||   /* 6to4 relay anycast */
		 in_prefix4(a, 0xc0a80000, 16) ||   /* RFC 1918 */
		 in_prefix4(a, 0xc6120000, 15) ||   /* benchmarking */
		 in_prefix4(a, 0xc6336400, 24) ||   /* TEST-NET-2 */
		 in_prefix4(a, 0xcb007100, 24) ||   /* TEST-NET-3 */
		 in_prefix4(a, 0xe0000000, 4) ||    /* multicast */
		 in_prefix4(a, 0xf0000000, 4));     /* reserved, limited broadcast */
}

/*
 * IPv4 addresses no translation may produce or accept through pool6, whatever the prefix: "this
 * network" (0/8), loopback (127/8), multicast and the reserved block with the limited broadcast
 * (224/3). A unicast IPv6 packet must not turn into one of them (found by the datapath fuzzer).
 */
static __always_inline bool ipv4_never_translated(__be32 addr)
{
	__u8 first = bpf_ntohl(addr) >> 24;

	return first == 0 || first == 127 || first >= 224;
}

/*
 * RFC 6052 section 2.2: for each pool6 length, how many bytes the prefix has and which four bytes
 * hold the IPv4 octets. They follow the prefix and skip bits 64..71 (the "u" octet, byte 8),
 * which stays zero, as does the suffix after them. Embedding and extracting both expand this one
 * table into switches with constant byte offsets, which the verifier checks cheaply.
 */
#define XLAT_POOL6_LAYOUTS(X)          \
	X(32, 4, 4, 5, 6, 7)           \
	X(40, 5, 5, 6, 7, 9)           \
	X(48, 6, 6, 7, 9, 10)          \
	X(56, 7, 7, 9, 10, 11)         \
	X(64, 8, 9, 10, 11, 12)        \
	X(96, 12, 12, 13, 14, 15)

static __always_inline int pool6_embed(const struct xlat_params *s, __be32 addr4,
				       struct in6_addr *out)
{
	const __u8 *v4 = (const __u8 *)&addr4;
	__u8 *o = out->s6_addr;

	__builtin_memset(out, 0, sizeof(*out));
	/* Copy the whole prefix side; below /96, bytes 8..11 are the u octet or the suffix. */
	__builtin_memcpy(o, s->pool6, 12);
	if (s->pool6_len != 96) {
		o[8] = 0; o[9] = 0; o[10] = 0; o[11] = 0;
	}

	switch (s->pool6_len) {
#define XLAT_POOL6_EMBED(len, prefix_bytes, i0, i1, i2, i3)                    \
	case len:                                                              \
		o[i0] = v4[0]; o[i1] = v4[1]; o[i2] = v4[2]; o[i3] = v4[3];    \
		return 0;
	XLAT_POOL6_LAYOUTS(XLAT_POOL6_EMBED)
#undef XLAT_POOL6_EMBED
	}
	return -1;
}

/*
 * The reverse of pool6_embed: the address must lie inside pool6, and the IPv4 address is read
 * from the same positions. The u octet and the suffix are ignored on receipt, as RFC 6052
 * section 2.2 allows, so a peer that sets them still reaches the right IPv4 host.
 */
static __always_inline int pool6_extract(const struct xlat_params *s, const struct in6_addr *a,
					 __be32 *addr4)
{
	const __u8 *in = a->s6_addr;
	__u8 *v4 = (__u8 *)addr4;

	switch (s->pool6_len) {
#define XLAT_POOL6_EXTRACT(len, prefix_bytes, i0, i1, i2, i3)                  \
	case len:                                                              \
		if (!bytes_equal(in, s->pool6, prefix_bytes))                  \
			return -1;                                             \
		v4[0] = in[i0]; v4[1] = in[i1]; v4[2] = in[i2]; v4[3] = in[i3]; \
		return 0;
	XLAT_POOL6_LAYOUTS(XLAT_POOL6_EXTRACT)
#undef XLAT_POOL6_EXTRACT
	}
	return -1;
}

/* Results of the address mappings. */
enum xlat_map_result {
	XLAT_MAP_OK = 0,
	XLAT_MAP_NONE = 1,       /* in neither the EAMT nor pool6 */
	XLAT_MAP_WKP = 2,        /* RFC 6052 section 3.1 forbids it */
	XLAT_MAP_OK_POOL6 = 3,   /* mapped through pool6 (not the EAMT) */
	XLAT_MAP_OK_NAT64 = 4,   /* a NAT64 host and its internal address */
	XLAT_MAP_NOT_ADMITTED = 5, /* NAT64 is on, and the source is in no admitted prefix */
	XLAT_MAP_NO_BLOCK = 6,   /* a new subscriber, and every block is leased */
	XLAT_MAP_NO_HOST_SLOT = 7, /* a new host, and its subscriber's addresses are all taken */
	XLAT_MAP_NO_HOST = 8,    /* an internal address no host holds */
};

/*
 * The address mappings are global functions, verified once: inlined, each of the six pool6
 * lengths would multiply the verifier's states at every one of the up to four mappings of an
 * ICMP error.
 */

static __always_inline bool n64_on(const struct xlat_params *s)
{
	return s->flags & XLAT_PARAM_NAT64;
}

static __always_inline bool n64_internal(const struct xlat_params *s, __be32 addr4)
{
	return n64_on(s) && in_prefix4(bpf_ntohl(addr4), bpf_ntohl(s->n64_internal),
				       s->n64_internal_len & 31);
}

/* The internal address of a known NAT64 host; an outgoing packet (REFRESH) marks it as used. */
static __always_inline int n64_host_lookup(const struct in6_addr *a, __be32 *addr4, bool refresh)
{
	/* A stack copy: the 6.1 verifier takes map keys only from the stack, the packet or a map,
	 * and A may be a global function's argument (plain memory to it). */
	struct in6_addr key = *a;
	struct xlat_n64_host *h = bpf_map_lookup_elem(&xlat_n64_host6, &key);
	__u64 now;

	if (!h)
		return XLAT_MAP_NONE;
	*addr4 = h->internal;
	if (refresh) {
		/* At most one write a second: a write per packet would bounce the line between CPUs. */
		now = bpf_ktime_get_coarse_ns();
		if (now - h->last_seen_ns > 1000000000ULL)
			h->last_seen_ns = now;
	}
	return XLAT_MAP_OK_NAT64;
}

/* IPv6 -> IPv4 address: the EAMT first (longest match, RFC 7757 section 3.2), then pool6, then the
 * NAT64 hosts. */
static __always_inline int map_6to4_inline(const struct xlat_params *s, const struct in6_addr *a,
					   __be32 *addr4, bool refresh)
{
	struct xlat_lpm6_key key = { .prefixlen = 128 };
	const struct xlat_eam6_value *eam;

	__builtin_memcpy(key.addr, a, sizeof(key.addr));
	eam = bpf_map_lookup_elem(&xlat_eamt6, &key);
	if (eam) {
		/* Equal suffix lengths on both sides: the suffix is in the last 32 bits. */
		*addr4 = eam->prefix4 | (a->s6_addr32[3] & eam->host_mask);
		return XLAT_MAP_OK;
	}
	if ((s->flags & XLAT_PARAM_POOL6) && !pool6_extract(s, a, addr4)) {
		/* The internal pool is reached only through the NAT44, never named directly: a
		 * subscriber must not address another subscriber's host by its internal address. */
		if (ipv4_never_translated(*addr4) || n64_internal(s, *addr4))
			return XLAT_MAP_NONE;
		if (pool6_is_wkp(s) && !ipv4_is_global(*addr4))
			return XLAT_MAP_WKP;
		return XLAT_MAP_OK_POOL6;
	}
	if (n64_on(s))
		return n64_host_lookup(a, addr4, refresh);
	return XLAT_MAP_NONE;
}

__attribute__((noinline)) int xlat_map_6to4(const struct in6_addr *a, __be32 *addr4)
{
	const struct xlat_params *s = params();

	if (!a || !addr4 || !s)
		return XLAT_MAP_NONE;
	return map_6to4_inline(s, a, addr4, false);
}

/* ---------------------------------------------------------------------------------------------
 * Stateful NAT64: admitting a new host (xlat64_abi.h, "NAT64 host mapping").
 */

/* Bits FROM..TO-1 (counted from the most significant) of an IPv6 address; TO - FROM <= 32. */
static __always_inline __u32 addr6_bits(const struct in6_addr *a, __u32 from, __u32 to)
{
	__u64 hi = (__u64)bpf_ntohl(a->s6_addr32[0]) << 32 | bpf_ntohl(a->s6_addr32[1]);
	__u64 lo = (__u64)bpf_ntohl(a->s6_addr32[2]) << 32 | bpf_ntohl(a->s6_addr32[3]);
	__u32 width = to - from;
	__u64 v;

	if (to == 0 || to > 128 || width == 0 || width > 32)
		return 0;
	if (to <= 64)
		v = hi >> (64 - to);
	else if (to == 128)
		v = lo;
	else
		v = lo >> (128 - to) | hi << (to - 64);
	return v & ((1ULL << width) - 1);
}

/* A subscriber's prefix: the address with the bits after LEN cleared. */
static __always_inline void addr6_prefix(const struct in6_addr *a, __u32 len, struct in6_addr *out)
{
	*out = *a;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int keep = (int)len - i * 32;

		if (keep <= 0)
			out->s6_addr32[i] = 0;
		else if (keep < 32)
			out->s6_addr32[i] &= bpf_htonl(0xffffffffU << (32 - keep));
	}
}

static __always_inline void n64_event(__u32 type, __u32 block, const struct in6_addr *who)
{
	struct xlat_event *e = bpf_ringbuf_reserve(&xlat_events, sizeof(*e), 0);

	/* A full ring only costs the daemon a log line; the maps stay the truth. */
	if (!e)
		return;
	e->type = type;
	e->block = block;
	__builtin_memcpy(e->subscriber, who, sizeof(e->subscriber));
	e->time_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
}

/* Dynamic mode: the subscriber's block, or on its first packet a free one from the queue. */
static __always_inline int n64_dynamic_block(const struct xlat_params *s,
					     const struct in6_addr *sub, __u32 *block)
{
	struct xlat_n64_sub fresh = {};
	struct xlat_n64_sub *have;
	__u32 k;

	have = bpf_map_lookup_elem(&xlat_n64_subs, sub);
	if (have) {
		*block = have->block;
		return 0;
	}
	/* A few tries: a popped block may be stale (beyond a shrunk pool) or already owned (the
	 * daemon may have queued it twice); the owner map, not the queue, decides. */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (bpf_map_pop_elem(&xlat_n64_free, &k))
			break;
		if (k >= s->n64_blocks)
			continue;
		if (bpf_map_update_elem(&xlat_n64_owner, &k, sub, BPF_NOEXIST))
			continue;
		fresh.block = k;
		fresh.allocated_ns = bpf_ktime_get_ns();
		if (bpf_map_update_elem(&xlat_n64_subs, sub, &fresh, BPF_NOEXIST)) {
			/* Another CPU gave this subscriber a block first: use it, return ours. */
			bpf_map_delete_elem(&xlat_n64_owner, &k);
			bpf_map_push_elem(&xlat_n64_free, &k, 0);
			have = bpf_map_lookup_elem(&xlat_n64_subs, sub);
			if (!have)
				return -1;
			*block = have->block;
			return 0;
		}
		count(XLAT_STAT_N64_BLOCK_ALLOCATED, 0);
		n64_event(XLAT_EVENT_BLOCK_ALLOCATED, k, sub);
		*block = k;
		return 0;
	}
	n64_event(XLAT_EVENT_NO_BLOCK, 0, sub);
	return -1;
}

struct n64_claim_ctx {
	struct in6_addr host;
	__u32 base;  /* host order: the block's first internal address */
	__u32 start; /* the first slot tried */
	__u32 mask;  /* slots - 1 */
	__be32 got;
};

static long n64_claim_step(__u32 i, void *data)
{
	struct n64_claim_ctx *c = data;
	__be32 addr = bpf_htonl(c->base + ((c->start + i) & c->mask));

	if (bpf_map_update_elem(&xlat_n64_host4, &addr, &c->host, BPF_NOEXIST))
		return 0;
	c->got = addr;
	return 1;
}

/*
 * A new host: a free internal address of its subscriber's block, claimed in xlat_n64_host4 (the
 * claim is atomic, so two CPUs never get one address), tried from a slot chosen by the host's
 * address so that a host that comes back usually gets its old address again.
 */
static __always_inline int n64_add_host(const struct xlat_params *s, const struct in6_addr *a,
					__u32 block, __be32 *addr4)
{
	struct n64_claim_ctx c = { .host = *a };
	struct xlat_n64_host h = {};
	__u32 slots = 1U << (s->n64_host_bits & 31);
	__u32 hash = (a->s6_addr32[0] ^ a->s6_addr32[1] ^ a->s6_addr32[2] ^ a->s6_addr32[3]) *
		     0x9e3779b1U;

	c.base = bpf_ntohl(s->n64_internal) + (block << (s->n64_host_bits & 31));
	c.mask = slots - 1;
	c.start = (hash ^ hash >> 16) & c.mask;
	bpf_loop(slots > 256 ? 256 : slots, n64_claim_step, &c, 0);
	if (!c.got) {
		n64_event(XLAT_EVENT_NO_HOST_SLOT, block, a);
		return XLAT_MAP_NO_HOST_SLOT;
	}
	h.internal = c.got;
	h.block = block;
	h.last_seen_ns = bpf_ktime_get_coarse_ns();
	if (bpf_map_update_elem(&xlat_n64_host6, &c.host, &h, BPF_NOEXIST)) {
		/* The same host's packet on another CPU won: keep its address, free ours. */
		bpf_map_delete_elem(&xlat_n64_host4, &c.got);
		return n64_host_lookup(a, addr4, false);
	}
	count(XLAT_STAT_N64_HOST_ADDED, 0);
	*addr4 = c.got;
	return XLAT_MAP_OK_NAT64;
}

/* The source of an outgoing packet: a known mapping, or a new NAT64 host of an admitted prefix. */
__attribute__((noinline)) int xlat_map_6to4_source(const struct in6_addr *a, __be32 *addr4)
{
	const struct xlat_params *s = params();
	struct xlat_lpm6_key key = { .prefixlen = 128 };
	const struct xlat_n64_prefix *pfx;
	struct in6_addr sub;
	__u32 block;
	int r;

	if (!a || !addr4 || !s)
		return XLAT_MAP_NONE;
	r = map_6to4_inline(s, a, addr4, true);
	if (r != XLAT_MAP_NONE || !n64_on(s))
		return r;
	__builtin_memcpy(key.addr, a, sizeof(key.addr));
	pfx = bpf_map_lookup_elem(&xlat_n64_pfx, &key);
	if (!pfx)
		return XLAT_MAP_NOT_ADMITTED;
	if (s->flags & XLAT_PARAM_NAT64_DYNAMIC) {
		addr6_prefix(a, s->n64_subscriber_len, &sub);
		if (n64_dynamic_block(s, &sub, &block))
			return XLAT_MAP_NO_BLOCK;
	} else {
		/* RFC 7422: the block is a function of the subscriber's prefix. */
		block = pfx->first_subscriber +
			addr6_bits(a, pfx->prefix_len, s->n64_subscriber_len);
		if (block >= s->n64_blocks)
			return XLAT_MAP_NOT_ADMITTED;
	}
	return n64_add_host(s, a, block, addr4);
}

/* The EAMT entry covering an IPv4 address, written into out. */
static __always_inline bool eam_4to6(__be32 addr4, struct in6_addr *out)
{
	struct xlat_lpm4_key key = { .prefixlen = 32 };
	const struct xlat_eam4_value *eam;

	__builtin_memcpy(key.addr, &addr4, sizeof(key.addr));
	eam = bpf_map_lookup_elem(&xlat_eamt4, &key);
	if (!eam)
		return false;
	__builtin_memcpy(out, eam->prefix6, sizeof(*out));
	out->s6_addr32[3] |= addr4 & eam->host_mask;
	return true;
}

/* IPv4 -> IPv6 address: the EAMT first (longest match), then pool6. */
__attribute__((noinline)) int xlat_map_4to6(__be32 addr4, struct in6_addr *out)
{
	const struct xlat_params *s = params();

	if (!out || !s)
		return XLAT_MAP_NONE;
	if (eam_4to6(addr4, out))
		return XLAT_MAP_OK;
	if (n64_internal(s, addr4)) {
		const struct in6_addr *host = bpf_map_lookup_elem(&xlat_n64_host4, &addr4);

		if (!host)
			return XLAT_MAP_NO_HOST;
		*out = *host;
		return XLAT_MAP_OK_NAT64;
	}
	if (!(s->flags & XLAT_PARAM_POOL6))
		return XLAT_MAP_NONE;
	if (ipv4_never_translated(addr4))
		return XLAT_MAP_NONE;
	if (pool6_is_wkp(s) && !ipv4_is_global(addr4))
		return XLAT_MAP_WKP;
	return pool6_embed(s, addr4, out) ? XLAT_MAP_NONE : XLAT_MAP_OK;
}

static __always_inline bool mapped(int r)
{
	return r == XLAT_MAP_OK || r == XLAT_MAP_OK_POOL6 || r == XLAT_MAP_OK_NAT64;
}

static __always_inline enum xlat_stat map_error(int r, enum xlat_stat none)
{
	switch (r) {
	case XLAT_MAP_WKP:
		return XLAT_STAT_WKP_NON_GLOBAL;
	case XLAT_MAP_NOT_ADMITTED:
		return XLAT_STAT_N64_NOT_ADMITTED;
	case XLAT_MAP_NO_BLOCK:
		return XLAT_STAT_N64_NO_BLOCK;
	case XLAT_MAP_NO_HOST_SLOT:
		return XLAT_STAT_N64_NO_HOST_SLOT;
	case XLAT_MAP_NO_HOST:
		return XLAT_STAT_N64_NO_HOST;
	}
	return none;
}

/*
 * RFC 6791: the IPv4 source of an ICMPv6 error from a router whose address cannot be translated.
 * The router's own errors (ingress_ifindex 0) come from translation.ipv4_address when it is set;
 * other routers' from the pool, the host bits taken from their address so that each router keeps
 * one IPv4 address (traceroute then tells them apart). -1 when neither is configured.
 */
static __always_inline int rfc6791_4(const struct __sk_buff *skb, const struct xlat_params *p,
				     const struct in6_addr *src, __be32 *out)
{
	__u32 host, mask;

	if (skb->ingress_ifindex == 0 && (p->flags & XLAT_PARAM_OWN_ADDR4)) {
		*out = p->own_addr4;
		return 0;
	}
	if (!(p->flags & XLAT_PARAM_RFC6791_V4))
		return -1;
	if (p->rfc6791_v4_len >= 32) {
		*out = p->rfc6791_v4;
		return 0;
	}
	host = bpf_ntohl(src->s6_addr32[0] ^ src->s6_addr32[1] ^ src->s6_addr32[2] ^
			 src->s6_addr32[3]);
	mask = 0xffffffffU >> (p->rfc6791_v4_len & 31);
	*out = p->rfc6791_v4 | bpf_htonl(host & mask);
	return 0;
}

/* The same the other way: the IPv6 source of an ICMPv4 error whose source cannot be translated. */
static __always_inline int rfc6791_6(const struct __sk_buff *skb, const struct xlat_params *p,
				     __be32 src, struct in6_addr *out)
{
	__u32 len = p->rfc6791_v6_len;

	if (skb->ingress_ifindex == 0 && (p->flags & XLAT_PARAM_OWN_ADDR6)) {
		__builtin_memcpy(out, p->own_addr6, sizeof(*out));
		return 0;
	}
	if (!(p->flags & XLAT_PARAM_RFC6791_V6))
		return -1;
	__builtin_memcpy(out, p->rfc6791_v6, sizeof(*out));
	/* The IPv4 address as the last 32 bits, as far as the pool's host bits reach. */
	if (len < 96)
		out->s6_addr32[3] = src;
	else if (len < 128)
		out->s6_addr32[3] |= src & bpf_htonl(0xffffffffU >> (len - 96));
	return 0;
}

/*
 * The link-layer header, when there is one (only under BPF_PROG_TEST_RUN), must announce the new
 * protocol too: bpf_skb_change_proto() changes skb->protocol but leaves the frame's bytes alone.
 */
static __always_inline int set_l2_proto(struct __sk_buff *skb, __u16 proto)
{
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = (void *)(long)skb->data;

	if (xlat_l2_hlen != ETH_HLEN)
		return 0;
	/* A direct write: the header is linear, and a helper call costs more than the write.
	 * skb->csum never covers the link-layer header, so it needs no update. */
	if ((void *)(eth + 1) > data_end)
		return -1;
	eth->h_proto = bpf_htons(proto);
	return 0;
}

/* Stores that keep skb->csum right for CHECKSUM_COMPLETE (a no-op otherwise). */
static __always_inline int store(struct __sk_buff *skb, __u32 off, const void *from, __u32 len)
{
	return bpf_skb_store_bytes(skb, off, from, len, BPF_F_RECOMPUTE_CSUM);
}

/*
 * Rewrites the ICMP type (RFC 7915 sections 4.2 and 5.2: echo 8 <-> 128, 0 <-> 129). The type
 * lies inside the data the checksum covers but outside any pseudo-header, so the checksum is
 * adjusted by a plain (not pseudo-header) replace: correct whatever skb->ip_summed is. The type
 * byte itself is stored without BPF_F_RECOMPUTE_CSUM, because for CHECKSUM_COMPLETE the change
 * of the type and the opposite change of the checksum field cancel out in skb->csum.
 */
static __always_inline int set_icmp_type(struct __sk_buff *skb, __u32 l4_off,
					 const struct xlat_l4 *l4)
{
	if (bpf_skb_store_bytes(skb, l4_off, &l4->new_type, sizeof(l4->new_type), 0))
		return -1;
	return bpf_l4_csum_replace(skb, l4_off + l4->csum_off, l4->old_type, l4->new_type,
				   sizeof(l4->new_type));
}

static __always_inline bool ipv6_ext_header(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT;
}

/*
 * Walks hop-by-hop, routing, destination options and fragment headers from `off` (the byte after
 * the IPv6 header) up to `end`. RFC 7915 section 5.1: they are not translated (IPv4 has no
 * equivalent), except that the Fragment header becomes the IPv4 fragment fields, and a routing
 * header with segments left means the packet is not for the translator to forward (unless
 * `first` lacks XLAT_WALK_ROUTING: a quoted packet, where that does not matter). `first` is the
 * IPv6 header's Next Header. AH, ESP and the rest end the
 * walk as the upper-layer protocol, which the caller refuses.
 */
#define XLAT_WALK_ROUTING 0x100 /* or-ed into `first`: refuse routing headers with segments left */

__attribute__((noinline)) int xlat_walk_ipv6_ext(struct __sk_buff *skb, __u32 off, __u32 end,
						   __u32 first, struct xlat_ip6_info *info)
{
	bool routing = first & XLAT_WALK_ROUTING;
	__u8 nexthdr = first & 0xff;
	__u8 h[8];

	if (!skb || !info)
		return XLAT_STAT_IPV6_MALFORMED;
	info->ext_len = 0;
	info->has_frag = 0;
	info->more_frags = 0;
	info->frag_offset = 0;
	info->frag_id = 0;
	for (int i = 0; i < XLAT_MAX_EXT_HEADERS; i++) {
		__u32 hlen;

		if (!ipv6_ext_header(nexthdr)) {
			info->proto = nexthdr;
			info->l4_off = off;
			return off > end ? XLAT_STAT_IPV6_MALFORMED : XLAT_STAT_MAX;
		}
		if (off + sizeof(h) > end || bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return XLAT_STAT_IPV6_MALFORMED;
		if (nexthdr == IPPROTO_FRAGMENT) {
			if (info->has_frag)
				return XLAT_STAT_IPV6_MALFORMED;
			hlen = sizeof(struct xlat_frag6);
			info->has_frag = 1;
			info->frag_offset = ((__u16)h[2] << 5) | (h[3] >> 3);
			info->more_frags = h[3] & 1;
			__builtin_memcpy(&info->frag_id, &h[4], sizeof(info->frag_id));
		} else {
			hlen = ((__u32)h[1] + 1) * 8;
			if (routing && nexthdr == IPPROTO_ROUTING && h[3] != 0)
				return XLAT_STAT_IPV6_ROUTING;
		}
		nexthdr = h[0];
		off += hlen;
		info->ext_len += hlen;
	}
	return XLAT_STAT_IPV6_EXTENSION;
}

/*
 * The transport header of a packet (or of the first fragment). Only the fixed part is touched
 * (the checksum field), so only that must be present; the endpoint validates the rest.
 */
static __always_inline enum xlat_stat parse_l4(struct __sk_buff *skb, __u32 l4_off, __u8 proto,
					       __u32 l4_len, bool v4, struct xlat_l4 *l4)
{
	__be16 check;

	l4->proto = proto;
	switch (proto) {
	case IPPROTO_TCP:
		if (l4_len < sizeof(struct tcphdr))
			return XLAT_STAT_L4_TRUNCATED;
		l4->csum_off = XLAT_TCP_CSUM_OFF;
		return XLAT_STAT_MAX;
	case IPPROTO_UDP:
		if (l4_len < sizeof(struct udphdr))
			return XLAT_STAT_L4_TRUNCATED;
		l4->csum_off = XLAT_UDP_CSUM_OFF;
		if (!v4)
			return XLAT_STAT_MAX;
		if (bpf_skb_load_bytes(skb, l4_off + XLAT_UDP_CSUM_OFF, &check, sizeof(check)))
			return XLAT_STAT_L4_TRUNCATED;
		/*
		 * IPv6 requires the UDP checksum (RFC 7915 section 4.5): computed over the
		 * datagram below, or dropped when so configured. A CHECKSUM_PARTIAL skb never
		 * holds 0 here: its field is the folded pseudo-header sum, which is never zero.
		 */
		l4->udp_zero = check == 0;
		return XLAT_STAT_MAX;
	default:
		return XLAT_STAT_L4_UNSUPPORTED;
	}
}

/* ---------------------------------------------------------------------------------------------
 * ICMP errors (RFC 7915 sections 4.2-4.4 and 5.2-5.4): the ICMP header is mapped, the packet it
 * quotes is translated as far as the quote carries it (addresses, header, ports, the quoted
 * transport checksum), and the ICMP checksum is summed anew over the result.
 */

/* The quoted transport header as far as it matters: the first 8 bytes and TCP's checksum. */
struct xlat_quoted_l4 {
	__u8 head[8];
	__be16 tcp_check;
	__u8 have_head;  /* the quote holds the first 8 bytes */
	__u8 have_tcp;   /* ... and TCP's checksum at 16 */
};

static __always_inline void load_quoted_l4(struct __sk_buff *skb, __u32 off, __u32 avail,
					   bool first, struct xlat_quoted_l4 *q)
{
	q->have_head = first && avail >= 8 && !bpf_skb_load_bytes(skb, off, q->head, 8);
	q->have_tcp = q->have_head && avail >= 18 &&
		      !bpf_skb_load_bytes(skb, off + XLAT_TCP_CSUM_OFF, &q->tcp_check, 2);
}

/*
 * Adjusts the quoted transport header for its new IP header: `diff` is the change of the
 * pseudo-header (addresses, or all of it for ICMP <-> ICMPv6). Quoted ICMP must be echo (RFC 7915
 * 4.4: a translator does not look further than one level of error).
 */
static __always_inline enum xlat_stat fix_quoted_l4(__u8 proto, __u32 diff, bool to6,
						    struct xlat_quoted_l4 *q)
{
	__u16 check;

	if (!q->have_head)
		return XLAT_STAT_MAX;
	switch (proto) {
	case IPPROTO_TCP:
		if (q->have_tcp)
			q->tcp_check = csum_update(q->tcp_check, diff);
		return XLAT_STAT_MAX;
	case IPPROTO_UDP:
		__builtin_memcpy(&check, &q->head[6], 2);
		if (check == 0)
			return XLAT_STAT_MAX; /* IPv4 without checksum: the quote stays without */
		check = csum_update(check, diff);
		if (check == 0)
			check = 0xffff;
		__builtin_memcpy(&q->head[6], &check, 2);
		return XLAT_STAT_MAX;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 from[4] = { q->head[0], q->head[1], 0, 0 };
		__u8 to[4] = { 0, q->head[1], 0, 0 };
		__u64 d;

		if (to6 && q->head[0] == XLAT_ICMP_ECHO_REQUEST)
			to[0] = ICMPV6_ECHO_REQUEST;
		else if (to6 && q->head[0] == XLAT_ICMP_ECHO_REPLY)
			to[0] = ICMPV6_ECHO_REPLY;
		else if (!to6 && q->head[0] == ICMPV6_ECHO_REQUEST)
			to[0] = XLAT_ICMP_ECHO_REQUEST;
		else if (!to6 && q->head[0] == ICMPV6_ECHO_REPLY)
			to[0] = XLAT_ICMP_ECHO_REPLY;
		else
			return XLAT_STAT_ICMP_INNER_MALFORMED;
		d = (__u64)diff + csum_words_diff(from, 1, to, 1);
		__builtin_memcpy(&check, &q->head[2], 2);
		check = csum_update(check, d);
		__builtin_memcpy(&q->head[2], &check, 2);
		q->head[0] = to[0];
		return XLAT_STAT_MAX;
	}
	default:
		return XLAT_STAT_MAX; /* other protocols are quoted unchanged */
	}
}

static __always_inline int store_quoted_l4(struct __sk_buff *skb, __u32 off,
					   const struct xlat_quoted_l4 *q)
{
	if (!q->have_head)
		return 0;
	if (store(skb, off, q->head, sizeof(q->head)))
		return -1;
	if (q->have_tcp && store(skb, off + XLAT_TCP_CSUM_OFF, &q->tcp_check, 2))
		return -1;
	return 0;
}

/* RFC 1191 section 7: the plateau below a packet of `len` bytes, for routers that sent MTU 0. */
static __always_inline __u32 mtu_plateau(__u32 len)
{
	if (len > 32000)
		return 32000;
	if (len > 17914)
		return 17914;
	if (len > 8166)
		return 8166;
	if (len > 4352)
		return 4352;
	if (len > 2002)
		return 2002;
	if (len > 1492)
		return 1492;
	return XLAT_IPV6_MIN_MTU; /* the result is raised to 1280 anyway */
}

/* The new ICMP header: type, code and the 4-byte word after the checksum. */
struct xlat_icmp_hdr {
	__u8 type;
	__u8 code;
	__be16 check;
	__be32 rest;
};

/*
 * RFC 7915 section 4.2: the ICMPv6 header for an ICMPv4 error. Returns XLAT_STAT_MAX, or the drop
 * reason. `in` is the ICMPv4 header; `inner_len` the quoted packet's total length (for MTU 0).
 */
static __always_inline enum xlat_stat icmp4_error_header(const struct xlat_params *p,
							 const __u8 *in, __u32 inner_len,
							 struct xlat_icmp_hdr *out)
{
	__u32 mtu, ptr;

	out->code = 0;
	out->rest = 0;
	switch (in[0]) {
	case XLAT_ICMP_DEST_UNREACH:
		out->type = ICMPV6_DEST_UNREACH;
		switch (in[1]) {
		case 0: case 1: case 5: case 6: case 7: case 8: case 11: case 12:
			out->code = ICMPV6_NOROUTE;
			return XLAT_STAT_MAX;
		case 9: case 10: case 13: case 15:
			out->code = ICMPV6_ADM_PROHIBITED;
			return XLAT_STAT_MAX;
		case 3:
			out->code = ICMPV6_PORT_UNREACH;
			return XLAT_STAT_MAX;
		case 2: /* protocol unreachable: Parameter Problem at the Next Header field */
			out->type = ICMPV6_PARAMPROB;
			out->code = ICMPV6_UNK_NEXTHDR;
			out->rest = bpf_htonl(6);
			return XLAT_STAT_MAX;
		case XLAT_ICMP_FRAG_NEEDED:
			/*
			 * max(1280, min(MTU + 20, IPv6 MTU)); MTU 0 (a router older than RFC 1191)
			 * is replaced by the plateau below the quoted packet's length.
			 */
			out->type = ICMPV6_PKT_TOOBIG;
			mtu = ((__u32)in[6] << 8) | in[7];
			if (mtu == 0)
				mtu = mtu_plateau(inner_len);
			mtu += 20;
			if (p->ipv6_mtu && mtu > p->ipv6_mtu)
				mtu = p->ipv6_mtu;
			if (mtu < XLAT_IPV6_MIN_MTU)
				mtu = XLAT_IPV6_MIN_MTU;
			out->rest = bpf_htonl(mtu);
			return XLAT_STAT_MAX;
		default: /* 4 handled above; 14 (precedence violation) and unknown: drop */
			return XLAT_STAT_ICMP_UNTRANSLATABLE;
		}
	case XLAT_ICMP_TIME_EXCEEDED:
		out->type = ICMPV6_TIME_EXCEED;
		out->code = in[1];
		return in[1] <= 1 ? XLAT_STAT_MAX : XLAT_STAT_ICMP_UNTRANSLATABLE;
	case XLAT_ICMP_PARAMETERPROB:
		/* Code 0 and 2 (bad length); 1 (missing option) has no IPv6 equivalent. */
		if (in[1] != 0 && in[1] != 2)
			return XLAT_STAT_ICMP_UNTRANSLATABLE;
		out->type = ICMPV6_PARAMPROB;
		out->code = ICMPV6_HDR_FIELD;
		/* RFC 7915 section 4.2, Figure 3: the pointer moves to the same field in IPv6. */
		switch (in[4]) {
		case 0: ptr = 0; break;   /* version/IHL */
		case 1: ptr = 1; break;   /* type of service */
		case 2: case 3: ptr = 4; break; /* total length */
		case 8: ptr = 7; break;   /* TTL */
		case 9: ptr = 6; break;   /* protocol */
		case 12: case 13: case 14: case 15: ptr = 8; break;  /* source address */
		case 16: case 17: case 18: case 19: ptr = 24; break; /* destination address */
		default: /* identification, flags, offset, checksum, options: no IPv6 field */
			return XLAT_STAT_ICMP_UNTRANSLATABLE;
		}
		out->rest = bpf_htonl(ptr);
		return XLAT_STAT_MAX;
	default:
		return XLAT_STAT_ICMP_UNTRANSLATABLE;
	}
}

/*
 * RFC 7915 section 5.2: the ICMPv4 header for an ICMPv6 error. `in_frag` says whether the quoted
 * packet has a Fragment header (its IPv4 form is then 28 bytes shorter, not 20).
 */
static __always_inline enum xlat_stat icmp6_error_header(const __u8 *in, bool in_frag,
							 struct xlat_icmp_hdr *out)
{
	__u32 mtu, ptr;

	out->code = 0;
	out->rest = 0;
	switch (in[0]) {
	case ICMPV6_DEST_UNREACH:
		out->type = XLAT_ICMP_DEST_UNREACH;
		switch (in[1]) {
		case ICMPV6_NOROUTE: case 2: case ICMPV6_ADDR_UNREACH:
			out->code = 1; /* host unreachable */
			return XLAT_STAT_MAX;
		case ICMPV6_ADM_PROHIBITED:
			out->code = 10; /* communication with host administratively prohibited */
			return XLAT_STAT_MAX;
		case ICMPV6_PORT_UNREACH:
			out->code = 3;
			return XLAT_STAT_MAX;
		default:
			return XLAT_STAT_ICMP_UNTRANSLATABLE;
		}
	case ICMPV6_PKT_TOOBIG: {
		__u8 w[4] = {};

		out->type = XLAT_ICMP_DEST_UNREACH;
		out->code = XLAT_ICMP_FRAG_NEEDED;
		mtu = ((__u32)in[4] << 24) | ((__u32)in[5] << 16) | ((__u32)in[6] << 8) | in[7];
		/* min(MTU - 20 (- 8 with a Fragment header), 65535); RFC 1191's minimum is 68. */
		if (mtu > 0xffff + 28)
			mtu = 0xffff + 28;
		mtu = mtu > (in_frag ? 28U : 20U) ? mtu - (in_frag ? 28 : 20) : 0;
		if (mtu > 0xffff)
			mtu = 0xffff;
		if (mtu < 68)
			mtu = 68;
		w[2] = mtu >> 8;
		w[3] = mtu & 0xff;
		__builtin_memcpy(&out->rest, w, 4);
		return XLAT_STAT_MAX;
	}
	case ICMPV6_TIME_EXCEED:
		out->type = XLAT_ICMP_TIME_EXCEEDED;
		out->code = in[1];
		return in[1] <= 1 ? XLAT_STAT_MAX : XLAT_STAT_ICMP_UNTRANSLATABLE;
	case ICMPV6_PARAMPROB:
		if (in[1] == ICMPV6_UNK_NEXTHDR) {
			out->type = XLAT_ICMP_DEST_UNREACH;
			out->code = 2; /* protocol unreachable */
			return XLAT_STAT_MAX;
		}
		if (in[1] != ICMPV6_HDR_FIELD)
			return XLAT_STAT_ICMP_UNTRANSLATABLE;
		out->type = XLAT_ICMP_PARAMETERPROB;
		if (in[4] | in[5] | in[6])
			return XLAT_STAT_ICMP_UNTRANSLATABLE;
		/* RFC 7915 section 5.2, Figure 6. */
		switch (in[7]) {
		case 0: ptr = 0; break;  /* version/traffic class */
		case 1: ptr = 1; break;  /* traffic class/flow label */
		case 4: case 5: ptr = 2; break; /* payload length */
		case 6: ptr = 9; break;  /* next header */
		case 7: ptr = 8; break;  /* hop limit */
		default:
			if (in[7] >= 8 && in[7] < 24) {
				ptr = 12; /* source address */
				break;
			}
			if (in[7] >= 24 && in[7] < 40) {
				ptr = 16; /* destination address */
				break;
			}
			return XLAT_STAT_ICMP_UNTRANSLATABLE; /* flow label, extension headers */
		}
		out->rest = bpf_htonl(ptr << 24);
		return XLAT_STAT_MAX;
	default:
		return XLAT_STAT_ICMP_UNTRANSLATABLE;
	}
}

/* The 4-byte words of an IPv6 pseudo-header, summed. */
static __always_inline __u32 pseudo6_sum(const struct in6_addr *s, const struct in6_addr *d,
					 __u32 len, __u8 nexthdr)
{
	struct xlat_pseudo6 ph = {};

	ph.saddr = *s;
	ph.daddr = *d;
	ph.len = bpf_htonl(len);
	ph.nexthdr = nexthdr;
	return csum_words_diff(NULL, 0, &ph, sizeof(ph) / 4);
}

/* Sums the new ICMP message (its checksum field must be 0) and stores the checksum. */
static __always_inline int finish_icmp_csum(struct __sk_buff *skb, __u32 icmp_off, __u32 icmp_len,
					    __u32 pseudo)
{
	int data = xlat_csum_bytes(skb, icmp_off, icmp_len);
	__u16 check;

	if (data < 0)
		return -1;
	check = csum_fold((__u64)pseudo + (__u32)data);
	return store(skb, icmp_off + XLAT_ICMP_CSUM_OFF, &check, sizeof(check));
}

/* RFC 7915 sections 4.2-4.4: an ICMPv4 error (outer header without options already parsed). */
__attribute__((noinline)) int xlat_icmp_error_4to6(struct __sk_buff *skb, __u32 len, __u32 ihl)
{
	const __u32 nh = xlat_l2_hlen;
	const struct xlat_params *p;
	struct iphdr outer, *ip4 = &outer;
	__u32 tot_len, icmp_off, quote, in_ihl, in_tot, avail, fh, new_icmp, room;
	struct xlat_quoted_l4 q = {};
	struct xlat_icmp_hdr h = {};
	struct xlat_frag6 frag = {};
	struct ipv6hdr out = {}, in6 = {};
	struct iphdr in4;
	__u8 icmp[8];
	enum xlat_stat err;
	bool in_frag, first, replaced = false;
	__be32 word0;
	__s64 diff;
	int r;

	if (!skb)
		return TC_ACT_SHOT;
	p = params();
	if (!p)
		return drop(XLAT_STAT_NO_SETTINGS, len);
	if (ihl < sizeof(outer) || ihl > 60 || bpf_skb_load_bytes(skb, nh, &outer, sizeof(outer)))
		return drop(XLAT_STAT_IPV4_MALFORMED, len);
	tot_len = bpf_ntohs(ip4->tot_len);
	icmp_off = nh + ihl;
	if (tot_len < ihl + 8 + sizeof(in4) ||
	    bpf_skb_load_bytes(skb, icmp_off, icmp, sizeof(icmp)) ||
	    bpf_skb_load_bytes(skb, icmp_off + 8, &in4, sizeof(in4)))
		return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
	quote = tot_len - ihl - 8;
	/* RFC 4884: a length attribute means extensions follow the quote; they are not translated
	 * (RFC 7915 section 4.4 lets a translator drop them) and the length goes back to 0. */
	if (icmp[5]) {
		if (icmp[5] * 4U > quote)
			return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
		quote = icmp[5] * 4U;
	}
	in_ihl = in4.ihl * 4U;
	in_tot = bpf_ntohs(in4.tot_len);
	if (in4.version != 4 || in_ihl < sizeof(in4) || in_ihl > quote || in_tot < in_ihl)
		return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
	err = icmp4_error_header(p, icmp, in_tot, &h);
	if (err != XLAT_STAT_MAX)
		return drop(err, len);

	in_frag = (in4.frag_off & bpf_htons(XLAT_IP_MF | XLAT_IP_OFFSET)) != 0;
	first = (in4.frag_off & bpf_htons(XLAT_IP_OFFSET)) == 0;
	avail = quote - in_ihl;
	load_quoted_l4(skb, icmp_off + 8 + in_ihl, avail, first, &q);

	/* Addresses: the outer source may come from RFC 6791; the quoted ones must map. An internal
	 * NAT64 address is never a source here (see xlat_4to6). */
	if (n64_internal(p, ip4->saddr))
		return drop(XLAT_STAT_NO_SRC_MAPPING, len);
	r = xlat_map_4to6(ip4->saddr, &out.saddr);
	if (!mapped(r)) {
		if (rfc6791_6(skb, p, ip4->saddr, &out.saddr))
			return drop(map_error(r, XLAT_STAT_NO_SRC_MAPPING), len);
		replaced = true;
	}
	r = xlat_map_4to6(ip4->daddr, &out.daddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_NO_DST_MAPPING), len);
	r = xlat_map_4to6(in4.saddr, &in6.saddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_ICMP_INNER_NO_MAPPING), len);
	r = xlat_map_4to6(in4.daddr, &in6.daddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_ICMP_INNER_NO_MAPPING), len);

	/* The quoted transport header follows its new IP header. */
	if (in4.protocol == IPPROTO_ICMP) {
		diff = pseudo6_sum(&in6.saddr, &in6.daddr, in_tot - in_ihl, IPPROTO_ICMPV6);
	} else {
		diff = csum_words_diff(&in4.saddr, 2, &in6.saddr, 8);
	}
	err = fix_quoted_l4(in4.protocol, (__u32)diff, true, &q);
	if (err != XLAT_STAT_MAX)
		return drop(err, len);

	/* The quoted header, with a Fragment header when it quotes a fragment. */
	fh = in_frag ? sizeof(frag) : 0;
	word0 = bpf_htonl(0x60000000U | ((__u32)xlat_tos(p, in4.tos) << 20));
	__builtin_memcpy(&in6, &word0, sizeof(word0));
	in6.payload_len = bpf_htons(in_tot - in_ihl + fh);
	in6.hop_limit = in4.ttl;
	in6.nexthdr = in4.protocol == IPPROTO_ICMP ? IPPROTO_ICMPV6 : in4.protocol;
	if (in_frag) {
		frag.nexthdr = in6.nexthdr;
		frag.frag_off = bpf_htons((bpf_ntohs(in4.frag_off) & XLAT_IP_OFFSET) << 3 |
					  ((in4.frag_off & bpf_htons(XLAT_IP_MF)) ? 1 : 0));
		frag.identification = bpf_htonl(bpf_ntohs(in4.id));
		in6.nexthdr = IPPROTO_FRAGMENT;
	}

	new_icmp = 8 + sizeof(in6) + fh + avail;
	if (new_icmp > XLAT_ICMP_ERROR_MAX - sizeof(out))
		new_icmp = XLAT_ICMP_ERROR_MAX - sizeof(out);

	word0 = bpf_htonl(0x60000000U | ((__u32)xlat_tos(p, ip4->tos) << 20));
	__builtin_memcpy(&out, &word0, sizeof(word0));
	out.payload_len = bpf_htons(new_icmp);
	out.nexthdr = IPPROTO_ICMPV6;
	out.hop_limit = next_ttl(skb, ip4->ttl);

	/*
	 * After bpf_skb_change_proto the new outer header has its 40 bytes; the room after it is
	 * resized so that the ICMP header and the quoted header fit exactly before the quoted
	 * transport header, whose bytes stay where they are relative to the end.
	 */
	room = 8 + sizeof(in6) + fh;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (room != ihl - 20 + 8 + in_ihl &&
	    bpf_skb_adjust_room(skb, (__s32)room - (__s32)(ihl - 20 + 8 + in_ihl), BPF_ADJ_ROOM_NET,
				XLAT_ADJ_FLAGS))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (bpf_skb_change_tail(skb, nh + sizeof(out) + new_icmp, 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (store(skb, nh, &out, sizeof(out)) || store(skb, nh + 40, &h, sizeof(h)) ||
	    store(skb, nh + 48, &in6, sizeof(in6)) ||
	    (in_frag && store(skb, nh + 88, &frag, sizeof(frag))) ||
	    store_quoted_l4(skb, nh + 88 + fh, &q) ||
	    set_l2_proto(skb, ETH_P_IPV6))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (finish_icmp_csum(skb, nh + 40, new_icmp,
			     pseudo6_sum(&out.saddr, &out.daddr, new_icmp, IPPROTO_ICMPV6)))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	count(replaced ? XLAT_STAT_ICMP_SRC_RFC6791 : XLAT_STAT_ICMP_ERR_4TO6, len);
	return deliver(skb);
}

/* RFC 7915 sections 5.2-5.4: an ICMPv6 error; `icmp_off` after the outer extension headers. */
__attribute__((noinline)) int xlat_icmp_error_6to4(struct __sk_buff *skb, __u32 len, __u32 ext_len)
{
	const __u32 nh = xlat_l2_hlen;
	const struct xlat_params *p;
	struct ipv6hdr outer, *ip6 = &outer;
	__u32 icmp_off, icmp_len;
	__u32 quote, quote_end, in_plen, in_l4len, avail, new_icmp, old_room;
	struct xlat_quoted_l4 q = {};
	struct xlat_icmp_hdr h = {};
	struct xlat_ip6_info info = {};
	struct iphdr out = {}, in4 = {};
	struct ipv6hdr in6;
	__u8 icmp[8];
	enum xlat_stat err;
	bool first, replaced = false;
	__s64 diff;
	int r;

	if (!skb)
		return TC_ACT_SHOT;
	p = params();
	if (!p)
		return drop(XLAT_STAT_NO_SETTINGS, len);
	if (bpf_skb_load_bytes(skb, nh, &outer, sizeof(outer)) ||
	    bpf_ntohs(outer.payload_len) < ext_len)
		return drop(XLAT_STAT_IPV6_MALFORMED, len);
	icmp_off = nh + sizeof(*ip6) + ext_len;
	icmp_len = bpf_ntohs(ip6->payload_len) - ext_len;
	if (icmp_len < 8 + sizeof(in6) ||
	    bpf_skb_load_bytes(skb, icmp_off, icmp, sizeof(icmp)) ||
	    bpf_skb_load_bytes(skb, icmp_off + 8, &in6, sizeof(in6)))
		return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
	quote = icmp_len - 8;
	/* RFC 4884 for ICMPv6: the length attribute counts 64-bit words. */
	if (icmp[4] && (icmp[0] == ICMPV6_DEST_UNREACH || icmp[0] == ICMPV6_TIME_EXCEED)) {
		if (icmp[4] * 8U > quote)
			return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
		quote = icmp[4] * 8U;
	}
	if (in6.version != 6 || quote < sizeof(in6))
		return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
	quote_end = icmp_off + 8 + quote;
	err = xlat_walk_ipv6_ext(skb, icmp_off + 8 + sizeof(in6), quote_end, in6.nexthdr, &info);
	if (err != XLAT_STAT_MAX)
		return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
	in_plen = bpf_ntohs(in6.payload_len);
	if (in_plen < info.ext_len)
		return drop(XLAT_STAT_ICMP_INNER_MALFORMED, len);
	in_l4len = in_plen - info.ext_len;
	avail = quote_end - info.l4_off;
	err = icmp6_error_header(icmp, info.has_frag, &h);
	if (err != XLAT_STAT_MAX)
		return drop(err, len);
	first = !info.has_frag || info.frag_offset == 0;
	load_quoted_l4(skb, info.l4_off, avail, first, &q);

	r = xlat_map_6to4(&ip6->saddr, &out.saddr);
	if (!mapped(r)) {
		if (rfc6791_4(skb, p, &ip6->saddr, &out.saddr))
			return drop(map_error(r, XLAT_STAT_NO_SRC_MAPPING), len);
		replaced = true;
	}
	r = xlat_map_6to4(&ip6->daddr, &out.daddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_NO_DST_MAPPING), len);
	r = xlat_map_6to4(&in6.saddr, &in4.saddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_ICMP_INNER_NO_MAPPING), len);
	r = xlat_map_6to4(&in6.daddr, &in4.daddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_ICMP_INNER_NO_MAPPING), len);

	if (info.proto == IPPROTO_ICMPV6) {
		/* ~x is x's one's complement negative: the pseudo-header goes out. */
		diff = (__u32)~pseudo6_sum(&in6.saddr, &in6.daddr, in_l4len, IPPROTO_ICMPV6);
	} else {
		diff = csum_words_diff(&in6.saddr, 8, &in4.saddr, 2);
	}
	err = fix_quoted_l4(info.proto, (__u32)diff, false, &q);
	if (err != XLAT_STAT_MAX)
		return drop(err, len);

	in4.version = 4;
	in4.ihl = 5;
	in4.tos = xlat_tos(p, (__u8)(bpf_ntohl(*(__be32 *)&in6) >> 20));
	in4.tot_len = bpf_htons(in_l4len + sizeof(in4));
	if (info.has_frag) {
		in4.id = (__be16)bpf_htons(bpf_ntohl(info.frag_id) & 0xffff);
		in4.frag_off = bpf_htons((info.frag_offset & XLAT_IP_OFFSET) |
					 (info.more_frags ? XLAT_IP_MF : 0));
	} else if (in_l4len + sizeof(in4) > XLAT_DF_THRESHOLD) {
		in4.frag_off = bpf_htons(XLAT_IP_DF);
	}
	in4.ttl = in6.hop_limit;
	in4.protocol = info.proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : info.proto;
	in4.check = ipv4_header_csum(&in4);

	new_icmp = 8 + sizeof(in4) + avail;
	if (new_icmp > XLAT_ICMP_ERROR_MAX - sizeof(out))
		new_icmp = XLAT_ICMP_ERROR_MAX - sizeof(out);

	out.version = 4;
	out.ihl = 5;
	out.tos = xlat_tos(p, (__u8)(bpf_ntohl(*(const __be32 *)ip6) >> 20));
	out.tot_len = bpf_htons(new_icmp + sizeof(out));
	out.id = (__be16)bpf_get_prandom_u32();
	out.ttl = next_ttl(skb, ip6->hop_limit);
	out.protocol = IPPROTO_ICMP;
	out.check = ipv4_header_csum(&out);

	/* After bpf_skb_change_proto 20 bytes of the old outer header remain before the rest. */
	old_room = ext_len + 8 + (info.l4_off - (icmp_off + 8));
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (bpf_skb_adjust_room(skb, (__s32)(8 + sizeof(in4)) - (__s32)old_room, BPF_ADJ_ROOM_NET,
				XLAT_ADJ_FLAGS))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (bpf_skb_change_tail(skb, nh + sizeof(out) + new_icmp, 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (store(skb, nh, &out, sizeof(out)) || store(skb, nh + 20, &h, sizeof(h)) ||
	    store(skb, nh + 28, &in4, sizeof(in4)) ||
	    store_quoted_l4(skb, nh + 48, &q) ||
	    set_l2_proto(skb, ETH_P_IP))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (finish_icmp_csum(skb, nh + 20, new_icmp, 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	count(replaced ? XLAT_STAT_ICMP_SRC_RFC6791 : XLAT_STAT_ICMP_ERR_6TO4, len);
	return deliver(skb);
}

/* ---------------------------------------------------------------------------------------------
 * Ordinary packets.
 */

/*
 * RFC 7757 section 4.2: an IPv6 packet to pool6 whose IPv4 destination is itself an EAM address
 * (one EAM host reaching another through its pool6 name) goes back to IPv6 with its source in
 * pool6 form, so that the reply, addressed to that pool6 address, comes back the same way. The
 * packet stays IPv6: only the addresses change, and the checksums with them.
 */
static __always_inline int hairpin(struct __sk_buff *skb, __u32 len, const struct xlat_params *p,
				   const struct ipv6hdr *ip6, __be32 src4,
				   const struct in6_addr *dst6, const struct xlat_ip6_info *info,
				   bool first)
{
	const __u32 nh = xlat_l2_hlen;
	struct in6_addr addrs[2];
	__u8 hop = next_ttl(skb, ip6->hop_limit);
	__u32 csum_off;
	__s64 diff;

	if (pool6_embed(p, src4, &addrs[0]))
		return drop(XLAT_STAT_NO_SRC_MAPPING, len);
	addrs[1] = *dst6;
	/* The helper, not csum_words_diff: 16 words summed inline would grow xlat_6to4's stack,
	 * into which this is inlined, past what the 6.1 verifier allows for the deepest call chain
	 * (512 bytes, each frame rounded up to 32); hairpins are rare. */
	diff = bpf_csum_diff((__be32 *)&ip6->saddr, 32, (__be32 *)addrs, 32, 0);
	if (store(skb, nh + offsetof(struct ipv6hdr, saddr), addrs, sizeof(addrs)) ||
	    store(skb, nh + offsetof(struct ipv6hdr, hop_limit), &hop, 1))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (first) {
		csum_off = info->proto == IPPROTO_TCP ? XLAT_TCP_CSUM_OFF
			   : info->proto == IPPROTO_UDP ? XLAT_UDP_CSUM_OFF
							: XLAT_ICMP_CSUM_OFF;
		if (bpf_l4_csum_replace(skb, info->l4_off + csum_off, 0, diff,
					BPF_F_PSEUDO_HDR |
						(info->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return drop(XLAT_STAT_HELPER_FAILED, len);
	}
	count(XLAT_STAT_HAIRPIN, len);
	return deliver(skb);
}

/*
 * What xlat_6to4 and xlat_4to6 return for an ICMP error, or-ed with the bytes in front of the
 * ICMP header (extension headers, IPv4 header length): the entry point then calls the error
 * translation itself, so that the two large stack frames are never on the stack together.
 */
#define XLAT_RET_ICMP_ERROR (1 << 16)

/* RFC 7915 section 5.1: IPv6 -> IPv4. */
__attribute__((noinline)) int xlat_6to4(struct __sk_buff *skb, __u32 len)
{
	const __u32 nh_off = xlat_l2_hlen;
	const __u32 l4_off_new = nh_off + sizeof(struct iphdr);
	const struct xlat_params *s;
	struct xlat_ip6_info info = {};
	struct in6_addr hairpin_dst;
	bool dst_pool6;
	struct iphdr ip4 = {};
	struct ipv6hdr ip6;
	struct xlat_l4 l4 = {};
	enum xlat_stat err;
	__u32 plen, tot_len, l4_len;
	__u8 type_code[2];
	bool first;
	__be32 word0;
	__s64 diff;
	int r;

	if (!skb)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, nh_off, &ip6, sizeof(ip6)) || ip6.version != 6)
		return drop(XLAT_STAT_IPV6_MALFORMED, len);
	/* Expiring here is the IPv6 forwarding pass's to report (Time Exceeded). */
	if (xlat_at_ingress && ip6.hop_limit <= 1)
		return TC_ACT_UNSPEC;
	/* Before anything else, so the kernel's own ND and MLD never look like failures. */
	if (!ipv6_global_unicast(&ip6.saddr) || !ipv6_global_unicast(&ip6.daddr))
		return drop(XLAT_STAT_IPV6_NOT_UNICAST, len);
	/*
	 * Payload length 0 is a jumbogram (RFC 2675), which IPv4 cannot carry. Trailing bytes past
	 * the payload are harmless: the receiving stack trims to the IPv4 total length.
	 */
	plen = bpf_ntohs(ip6.payload_len);
	if (plen == 0 || plen > skb->len - nh_off - sizeof(ip6))
		return drop(XLAT_STAT_IPV6_MALFORMED, len);
	/* Bytes past the payload (link-layer padding) would make the lengths disagree. */
	if (skb->len > nh_off + sizeof(ip6) + plen &&
	    bpf_skb_change_tail(skb, nh_off + sizeof(ip6) + plen, 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);

	if (ipv6_ext_header(ip6.nexthdr)) {
		err = xlat_walk_ipv6_ext(skb, nh_off + sizeof(ip6), nh_off + sizeof(ip6) + plen,
					 ip6.nexthdr | XLAT_WALK_ROUTING, &info);
		if (err != XLAT_STAT_MAX)
			return drop(err, len);
	} else {
		/* Most packets: the transport header follows, no walk needed. */
		info.proto = ip6.nexthdr;
		info.l4_off = nh_off + sizeof(ip6);
	}
	/* Fragments and extension headers are rare: the device path has them. */
	if (xlat_at_ingress && (info.ext_len || info.has_frag))
		return TC_ACT_UNSPEC;
	l4_len = plen - info.ext_len;
	tot_len = l4_len + sizeof(ip4);
	/* An IPv6 payload of more than 65515 bytes does not fit IPv4's 16-bit total length. */
	if (tot_len > 0xffff)
		return drop(XLAT_STAT_IPV6_MALFORMED, len);
	/* Only the first fragment (or an unfragmented packet) carries the transport header. */
	first = !info.has_frag || info.frag_offset == 0;

	l4.proto = info.proto;
	if (info.proto == IPPROTO_ICMPV6) {
		/* The ICMPv6 pseudo-header holds the whole message's length, unknown in a fragment. */
		if (info.has_frag)
			return drop(XLAT_STAT_ICMP_FRAGMENT, len);
		if (l4_len < 8)
			return drop(XLAT_STAT_L4_TRUNCATED, len);
		if (bpf_skb_load_bytes(skb, info.l4_off, type_code, sizeof(type_code)))
			return drop(XLAT_STAT_L4_TRUNCATED, len);
		l4.csum_off = XLAT_ICMP_CSUM_OFF;
		__builtin_memcpy(&l4.old_type, type_code, sizeof(l4.old_type));
		if (type_code[0] == ICMPV6_ECHO_REQUEST) {
			type_code[0] = XLAT_ICMP_ECHO_REQUEST;
		} else if (type_code[0] == ICMPV6_ECHO_REPLY) {
			type_code[0] = XLAT_ICMP_ECHO_REPLY;
		} else if (type_code[0] >= ICMPV6_DEST_UNREACH && type_code[0] <= ICMPV6_PARAMPROB) {
			return XLAT_RET_ICMP_ERROR | info.ext_len;
		} else {
			/* RFC 7915 section 5.2: MLD, ND and unknown informational types. */
			return drop(XLAT_STAT_ICMP_UNSUPPORTED, len);
		}
		__builtin_memcpy(&l4.new_type, type_code, sizeof(l4.new_type));
	} else if (first) {
		err = parse_l4(skb, info.l4_off, info.proto, l4_len, false, &l4);
		if (err != XLAT_STAT_MAX)
			return drop(err, len);
	} else if (info.proto != IPPROTO_TCP && info.proto != IPPROTO_UDP) {
		return drop(XLAT_STAT_L4_UNSUPPORTED, len);
	}

	s = params();
	if (!s)
		return drop(XLAT_STAT_NO_SETTINGS, len);
	r = xlat_map_6to4(&ip6.daddr, &ip4.daddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_NO_DST_MAPPING), len);
	dst_pool6 = r == XLAT_MAP_OK_POOL6;
	/* The source last: a NAT64 host is admitted (given an address) only for a packet that can go. */
	r = xlat_map_6to4_source(&ip6.saddr, &ip4.saddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_NO_SRC_MAPPING), len);
	/* A NAT64 host reaches EAM hosts through the NAT44 (with its public address), never with
	 * its internal one. */
	if (dst_pool6 && r != XLAT_MAP_OK_NAT64 && eam_4to6(ip4.daddr, &hairpin_dst)) {
		if (xlat_at_ingress)
			return TC_ACT_UNSPEC;
		return hairpin(skb, len, s, &ip6, ip4.saddr, &hairpin_dst, &info, first);
	}

	ip4.version = 4;
	ip4.ihl = 5;
	/* Traffic class: the 8 bits after the version. */
	__builtin_memcpy(&word0, &ip6, sizeof(word0));
	ip4.tos = xlat_tos(s, (__u8)(bpf_ntohl(word0) >> 20));
	ip4.tot_len = bpf_htons(tot_len);
	if (info.has_frag) {
		/*
		 * RFC 7915 section 5.1.1: the low 16 bits of the Identification, MF and the
		 * offset from the Fragment header, DF clear. An atomic fragment (offset 0, M 0,
		 * RFC 8021) becomes an ordinary packet with that Identification.
		 */
		ip4.id = (__be16)bpf_htons(bpf_ntohl(info.frag_id) & 0xffff);
		ip4.frag_off = bpf_htons((info.frag_offset & XLAT_IP_OFFSET) |
					 (info.more_frags ? XLAT_IP_MF : 0));
	} else {
		/* No fragment header, so no identification to copy: a fresh one (RFC 7915 5.1). */
		ip4.id = (__be16)bpf_get_prandom_u32();
		ip4.frag_off = tot_len > XLAT_DF_THRESHOLD ? bpf_htons(XLAT_IP_DF) : 0;
	}
	ip4.ttl = next_ttl(skb, ip6.hop_limit);
	ip4.protocol = l4.proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : l4.proto;
	ip4.check = ipv4_header_csum(&ip4);

	if (l4.proto == IPPROTO_ICMPV6) {
		/* ICMPv6 covers a pseudo-header and ICMP does not: take all of it out. */
		diff = (__u32)~pseudo6_sum(&ip6.saddr, &ip6.daddr, l4_len, IPPROTO_ICMPV6);
	} else {
		/*
		 * The TCP/UDP pseudo-headers differ only in the addresses: the length and
		 * protocol words of the IPv6 one sum to the same value as the IPv4 ones.
		 */
		diff = csum_words_diff(&ip6.saddr, 8, &ip4.saddr, 2);
	}

	/*
	 * Removes 20 bytes after the link-layer header and converts GSO packets (SKB_GSO_TCPV6 ->
	 * SKB_GSO_TCPV4); then the extension headers go. What remains of the old header in front
	 * of the transport header is overwritten whole below; BPF_F_RECOMPUTE_CSUM keeps skb->csum
	 * right for CHECKSUM_COMPLETE (no-op otherwise).
	 */
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (info.ext_len &&
	    bpf_skb_adjust_room(skb, -(__s32)info.ext_len, BPF_ADJ_ROOM_NET, XLAT_ADJ_FLAGS))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (store(skb, nh_off, &ip4, sizeof(ip4)))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (set_l2_proto(skb, ETH_P_IP))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (first) {
		/* UDP: a zero field stays zero (IPv4 "no checksum"), a computed 0 becomes 0xffff. */
		if (bpf_l4_csum_replace(skb, l4_off_new + l4.csum_off, 0, diff,
					BPF_F_PSEUDO_HDR |
						(l4.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return drop(XLAT_STAT_HELPER_FAILED, len);
		if (l4.proto == IPPROTO_ICMPV6 && set_icmp_type(skb, l4_off_new, &l4))
			return drop(XLAT_STAT_HELPER_FAILED, len);
	}

	count(info.has_frag ? XLAT_STAT_FRAGMENT_6TO4 : XLAT_STAT_XLAT_6TO4, len);
	return deliver(skb);
}

/*
 * RFC 7915 section 4.1: IPv4 options are ignored, except an unexpired source route (LSRR, SSRR),
 * which means the packet is not for the translator to deliver. `n` is 4..40.
 */
struct xlat_opt_ctx {
	__u8 opt[64];  /* 40 at most are used; 64 so the verifier's bound on the length fits */
	__u32 i;       /* the next option's offset */
	__u32 n;       /* bytes of options */
	__u32 result;  /* XLAT_STAT_MAX, or the drop reason */
};

/* One option per bpf_loop step (verified once). */
static long ipv4_option_step(__u32 index, void *data)
{
	struct xlat_opt_ctx *c = data;
	__u32 i = c->i;
	__u8 type, olen;

	if (i >= c->n || i >= sizeof(c->opt) - 1)
		return 1;
	type = c->opt[i];
	if (type == XLAT_IPOPT_END)
		return 1;
	if (type == XLAT_IPOPT_NOOP) {
		c->i = i + 1;
		return 0;
	}
	olen = c->opt[i + 1];
	if (olen < 2 || i + olen > c->n) {
		c->result = XLAT_STAT_IPV4_OPTIONS;
		return 1;
	}
	/* The pointer (third byte) is past the route once every hop was visited. */
	if ((type == XLAT_IPOPT_LSRR || type == XLAT_IPOPT_SSRR) && olen >= 3 &&
	    i + 2 < sizeof(c->opt) && c->opt[i + 2] <= olen) {
		c->result = XLAT_STAT_IPV4_SOURCE_ROUTE;
		return 1;
	}
	c->i = i + olen;
	return 0;
}

__attribute__((noinline)) int xlat_ipv4_options(struct __sk_buff *skb, __u32 off, __u32 n)
{
	struct xlat_opt_ctx c = {};

	if (!skb)
		return XLAT_STAT_IPV4_OPTIONS;
	if (n < 4 || n > 40)
		return XLAT_STAT_IPV4_OPTIONS;
	/* 1..64 in a form the 6.1 verifier can follow (clang folds the checks above into one). */
	n = ((n - 1) & 63) + 1;
	if (bpf_skb_load_bytes(skb, off, c.opt, n))
		return XLAT_STAT_IPV4_OPTIONS;
	c.n = n;
	c.result = XLAT_STAT_MAX;
	bpf_loop(40, ipv4_option_step, &c, 0);
	return c.result;
}

/*
 * On the device path the IPv4 routes into the device have MTU min(device MTU, lowest_ipv6_mtu) -
 * 28, so the kernel has fragmented a bigger packet without DF before it is translated (RFC 7915
 * section 4). At an interface's ingress nothing has: such a packet goes to the device path. With
 * DF set, an IPv6 router's Packet Too Big comes back translated, as the sender asked.
 */
static __always_inline bool ingress_fits_ipv6(const struct xlat_params *s, const struct iphdr *ip4,
					      __u32 tot_len)
{
	__u32 mtu = s->lowest_ipv6_mtu;

	if (s->ipv6_mtu && s->ipv6_mtu < mtu)
		mtu = s->ipv6_mtu;
	return (ip4->frag_off & bpf_htons(XLAT_IP_DF)) || tot_len + 28 <= mtu;
}

/* RFC 7915 section 4.1: IPv4 -> IPv6. */
__attribute__((noinline)) int xlat_4to6(struct __sk_buff *skb, __u32 len)
{
	const __u32 nh_off = xlat_l2_hlen;
	const struct xlat_params *s;
	struct xlat_frag6 frag = {};
	struct ipv6hdr ip6 = {};
	struct xlat_l4 l4 = {};
	enum xlat_stat err;
	__u32 tot_len, plen, ihl, fh, l4_off_new;
	__u8 type_code[2];
	bool is_frag, first;
	struct iphdr ip4;
	__be32 word0;
	__s64 diff;
	int r;

	if (!skb)
		return TC_ACT_SHOT;
	/* The header checksum is not verified: the kernel did that when it received the packet. */
	if (bpf_skb_load_bytes(skb, nh_off, &ip4, sizeof(ip4)) || ip4.version != 4 || ip4.ihl < 5)
		return drop(XLAT_STAT_IPV4_MALFORMED, len);
	ihl = ip4.ihl * 4U;
	tot_len = bpf_ntohs(ip4.tot_len);
	if (tot_len < ihl || tot_len > skb->len - nh_off)
		return drop(XLAT_STAT_IPV4_MALFORMED, len);
	if (skb->len > nh_off + tot_len && bpf_skb_change_tail(skb, nh_off + tot_len, 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (ihl > sizeof(ip4)) {
		err = xlat_ipv4_options(skb, nh_off + sizeof(ip4), ihl - sizeof(ip4));
		if (err != XLAT_STAT_MAX)
			return drop(err, len);
	}
	is_frag = (ip4.frag_off & bpf_htons(XLAT_IP_MF | XLAT_IP_OFFSET)) != 0;
	first = (ip4.frag_off & bpf_htons(XLAT_IP_OFFSET)) == 0;
	plen = tot_len - ihl;
	/* Expiry and fragments are the device path's (the IPv4 forwarding pass and the kernel's
	 * fragmentation to the route MTU come first there). */
	if (xlat_at_ingress && (ip4.ttl <= 1 || is_frag))
		return TC_ACT_UNSPEC;

	l4.proto = ip4.protocol;
	if (ip4.protocol == IPPROTO_ICMP) {
		if (is_frag)
			return drop(XLAT_STAT_ICMP_FRAGMENT, len);
		if (plen < 8)
			return drop(XLAT_STAT_L4_TRUNCATED, len);
		if (bpf_skb_load_bytes(skb, nh_off + ihl, type_code, sizeof(type_code)))
			return drop(XLAT_STAT_L4_TRUNCATED, len);
		l4.csum_off = XLAT_ICMP_CSUM_OFF;
		__builtin_memcpy(&l4.old_type, type_code, sizeof(l4.old_type));
		if (type_code[0] == XLAT_ICMP_ECHO_REQUEST) {
			type_code[0] = ICMPV6_ECHO_REQUEST;
		} else if (type_code[0] == XLAT_ICMP_ECHO_REPLY) {
			type_code[0] = ICMPV6_ECHO_REPLY;
		} else if (type_code[0] == XLAT_ICMP_DEST_UNREACH ||
			   type_code[0] == XLAT_ICMP_TIME_EXCEEDED ||
			   type_code[0] == XLAT_ICMP_PARAMETERPROB) {
			return XLAT_RET_ICMP_ERROR | ihl;
		} else {
			/* RFC 7915 section 4.2: timestamp, router, redirect, ... are dropped. */
			return drop(XLAT_STAT_ICMP_UNSUPPORTED, len);
		}
		__builtin_memcpy(&l4.new_type, type_code, sizeof(l4.new_type));
	} else if (first) {
		err = parse_l4(skb, nh_off + ihl, ip4.protocol, plen, true, &l4);
		if (err != XLAT_STAT_MAX)
			return drop(err, len);
	} else if (ip4.protocol != IPPROTO_TCP && ip4.protocol != IPPROTO_UDP) {
		return drop(XLAT_STAT_L4_UNSUPPORTED, len);
	}

	s = params();
	if (!s)
		return drop(XLAT_STAT_NO_SETTINGS, len);
	if (xlat_at_ingress && !ingress_fits_ipv6(s, &ip4, tot_len))
		return TC_ACT_UNSPEC;
	/* A fragment's UDP checksum cannot be computed: the rest of the datagram is elsewhere. */
	if (l4.udp_zero && (is_frag || (s->flags & XLAT_PARAM_UDP_ZERO_CSUM_DROP)))
		return drop(XLAT_STAT_UDP_ZERO_CSUM, len);
	/* Traffic to a subscriber comes from outside (a server, or a hairpin after its SNAT), never
	 * from the internal pool: such a packet would impersonate a subscriber's host. */
	if (n64_internal(s, ip4.saddr))
		return drop(XLAT_STAT_NO_SRC_MAPPING, len);
	r = xlat_map_4to6(ip4.saddr, &ip6.saddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_NO_SRC_MAPPING), len);
	r = xlat_map_4to6(ip4.daddr, &ip6.daddr);
	if (!mapped(r))
		return drop(map_error(r, XLAT_STAT_NO_DST_MAPPING), len);

	/*
	 * RFC 7915 section 4.1: a fragment gets a Fragment header carrying its offset, MF and the
	 * Identification. A whole packet never does, DF or not (no atomic fragments, RFC 8021):
	 * the daemon's route MTU already made DF-clear packets fit the lowest IPv6 MTU.
	 */
	fh = is_frag ? sizeof(frag) : 0;
	if (plen + fh > 0xffff)
		return drop(XLAT_STAT_TOO_BIG, len);
	word0 = bpf_htonl(0x60000000U | ((__u32)xlat_tos(s, ip4.tos) << 20));
	__builtin_memcpy(&ip6, &word0, sizeof(word0));
	ip6.payload_len = bpf_htons(plen + fh);
	ip6.nexthdr = l4.proto == IPPROTO_ICMP ? IPPROTO_ICMPV6 : l4.proto;
	ip6.hop_limit = next_ttl(skb, ip4.ttl);
	if (is_frag) {
		frag.nexthdr = ip6.nexthdr;
		frag.frag_off = bpf_htons((bpf_ntohs(ip4.frag_off) & XLAT_IP_OFFSET) << 3 |
					  ((ip4.frag_off & bpf_htons(XLAT_IP_MF)) ? 1 : 0));
		frag.identification = bpf_htonl(bpf_ntohs(ip4.id));
		ip6.nexthdr = IPPROTO_FRAGMENT;
	}
	l4_off_new = nh_off + sizeof(ip6) + fh;

	if (l4.proto == IPPROTO_ICMP) {
		/* ICMP has no pseudo-header and ICMPv6 has one: add all of it. */
		diff = pseudo6_sum(&ip6.saddr, &ip6.daddr, plen, IPPROTO_ICMPV6);
	} else {
		diff = csum_words_diff(&ip4.saddr, 2, &ip6.saddr, 8);
	}

	/*
	 * Inserts 20 zero bytes after the link-layer header (SKB_GSO_TCPV4 -> SKB_GSO_TCPV6); the
	 * new header then overwrites them and the old IPv4 header. The room after the new header
	 * is then resized to the Fragment header (8 or 0 bytes) in place of the IPv4 options.
	 */
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (fh != ihl - sizeof(ip4) &&
	    bpf_skb_adjust_room(skb, (__s32)fh - (__s32)(ihl - sizeof(ip4)), BPF_ADJ_ROOM_NET,
				XLAT_ADJ_FLAGS))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (store(skb, nh_off, &ip6, sizeof(ip6)))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (is_frag && store(skb, nh_off + sizeof(ip6), &frag, sizeof(frag)))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (set_l2_proto(skb, ETH_P_IPV6))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (l4.udp_zero) {
		/* RFC 7915 section 4.5: the checksum IPv4 left out, summed over the datagram. */
		int data = xlat_csum_bytes(skb, l4_off_new, plen);
		__u16 check;

		if (data < 0)
			return drop(XLAT_STAT_HELPER_FAILED, len);
		check = csum_fold((__u64)pseudo6_sum(&ip6.saddr, &ip6.daddr, plen, IPPROTO_UDP) +
				  (__u32)data);
		if (check == 0)
			check = 0xffff;
		if (store(skb, l4_off_new + XLAT_UDP_CSUM_OFF, &check, sizeof(check)))
			return drop(XLAT_STAT_HELPER_FAILED, len);
		count(XLAT_STAT_UDP_ZERO_CSUM_COMPUTED, len);
		return deliver(skb);
	}
	if (first) {
		/* UDP: a result of 0 is sent as 0xffff, since 0 means "no checksum" (RFC 768). */
		if (bpf_l4_csum_replace(skb, l4_off_new + l4.csum_off, 0, diff,
					BPF_F_PSEUDO_HDR |
						(l4.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return drop(XLAT_STAT_HELPER_FAILED, len);
		if (l4.proto == IPPROTO_ICMP && set_icmp_type(skb, l4_off_new, &l4))
			return drop(XLAT_STAT_HELPER_FAILED, len);
	}

	count(is_frag ? XLAT_STAT_FRAGMENT_4TO6 : XLAT_STAT_XLAT_4TO6, len);
	return deliver(skb);
}

SEC("tc")
int xlat64_egress(struct __sk_buff *skb)
{
	/* Counters record the packet as it reached the translator. */
	__u32 len = skb->len;
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		ret = xlat_6to4(skb, len);
		if (ret & XLAT_RET_ICMP_ERROR)
			return xlat_icmp_error_6to4(skb, len, ret & 0xffff);
		return ret;
	}
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		ret = xlat_4to6(skb, len);
		if (ret & XLAT_RET_ICMP_ERROR)
			return xlat_icmp_error_4to6(skb, len, ret & 0xffff);
		return ret;
	}
	return drop(XLAT_STAT_NOT_IP, len);
}

/* ---------------------------------------------------------------------------------------------
 * The ingress instance (xlat_at_ingress).
 */

#define XLAT_PACKET_HOST 0 /* skb->pkt_type of a frame addressed to this host (<linux/if_packet.h>) */

static __always_inline void count_ingress(enum xlat_ingress_stat what, __u32 len)
{
	count_in(&xlat_ingress_stats, what, len);
}

/*
 * Whether an IPv6 packet is addressed to the translator: to pool6, the only IPv6 prefix the daemon
 * routes into the device. An EAM IPv6 prefix is not: it names real IPv6 hosts, which IPv6 peers
 * (subscribers included) reach natively. Most packets on the interface are native IPv6, so this
 * is the cheapest test that decides: one array lookup and a prefix compare.
 */
static __always_inline bool ingress_mine6(struct __sk_buff *skb)
{
	const struct xlat_params *s = params();
	struct in6_addr dst;
	__be32 addr4;

	if (!s || !(s->flags & XLAT_PARAM_POOL6) ||
	    bpf_skb_load_bytes(skb, xlat_l2_hlen + offsetof(struct ipv6hdr, daddr), &dst,
			       sizeof(dst)))
		return false;
	return pool6_extract(s, &dst, &addr4) == 0;
}

/* An IPv4 packet to an EAM prefix: the IPv4 prefixes the daemon routes into the device, but for
 * the NAT64 internal pool, which is reached only after the NAT44's prerouting. */
static __always_inline bool ingress_mine4(__be32 dst)
{
	struct in6_addr unused;

	return eam_4to6(dst, &unused);
}

/*
 * Only the translator sends from the NAT64 internal pool. An IPv4 packet that arrives with such a
 * source impersonates a subscriber's host, and the NAT44 would give it that subscriber's public
 * address. xlat64's nftables table drops these unless they come from the xlat64 device or from an
 * interface with this instance: the packets translated here enter netfilter from that interface,
 * so the ones that arrived as IPv4 are refused here.
 */
static __always_inline bool ingress_internal_source(__be32 src)
{
	const struct xlat_params *s = params();

	return s && n64_internal(s, src);
}

/* A packet addressed to the translator: translated here, or left to the device path. */
static __always_inline int ingress_outcome(int ret, enum xlat_ingress_stat translated, __u32 len)
{
	if (ret == TC_ACT_OK) {
		count_ingress(translated, len);
		return TC_ACT_OK;
	}
	if (ret == TC_ACT_SHOT)
		return TC_ACT_SHOT;
	/* TC_ACT_UNSPEC, or an ICMP error (XLAT_RET_ICMP_ERROR) for the device path to translate. */
	count_ingress(XLAT_INGRESS_DEFERRED, len);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int xlat64_ingress(struct __sk_buff *skb)
{
	__u32 len = skb->len - xlat_l2_hlen;

	/* Frames for other hosts, and VLAN-tagged ones (the VLAN device is the interface to list),
	 * are not the translator's. */
	if (!xlat_at_ingress || skb->pkt_type != XLAT_PACKET_HOST || skb->vlan_present)
		return TC_ACT_UNSPEC;
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (!ingress_mine6(skb))
			return TC_ACT_UNSPEC;
		return ingress_outcome(xlat_6to4(skb, len), XLAT_INGRESS_6TO4, len);
	}
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__be32 addrs[2]; /* source, destination */

		if (bpf_skb_load_bytes(skb, xlat_l2_hlen + offsetof(struct iphdr, saddr), addrs,
				       sizeof(addrs)))
			return TC_ACT_UNSPEC;
		if (ingress_internal_source(addrs[0])) {
			count_ingress(XLAT_INGRESS_INTERNAL_SOURCE, len);
			return TC_ACT_SHOT;
		}
		if (!ingress_mine4(addrs[1]))
			return TC_ACT_UNSPEC;
		return ingress_outcome(xlat_4to6(skb, len), XLAT_INGRESS_4TO6, len);
	}
	return TC_ACT_UNSPEC;
}

/* ---- the daemon's bulk claims and leases (struct xlat_n64_batch) ---------------------------- */

/* <errno.h> is not for BPF programs. Compared as an int: 6.1's hash map ops return int, and
 * the verifier calls them directly, so the upper half of a 64-bit result is not sign-extended
 * there (a long compared with -17 fails on Debian 12's kernel). */
#define XLAT_EEXIST 17

/* The per-block steps of daemon/nat64_maps.cpp (lease, pop_free_block, claim_block), which are
 * also the data path's (n64_dynamic_block) minus its lease: the daemon leases only once the
 * claim is committed to its store. */
/* bpf_loop's context must live on the stack; the batch is a map value. */
struct n64_batch_ctx {
	struct xlat_n64_batch *b;
};

static long n64_batch_claim(__u32 i, struct n64_batch_ctx *c)
{
	struct xlat_n64_batch *b = c->b;
	struct xlat_n64_batch_entry *e;
	int err; /* see XLAT_EEXIST */
	__u32 k;

	if (i >= XLAT64_N64_BATCH_MAX)
		return 1;
	e = &b->entries[i];
	if (bpf_map_lookup_elem(&xlat_n64_subs, e->subscriber)) {
		e->result = XLAT_N64_BATCH_HAS_LEASE;
		return 0;
	}
	for (int attempt = 0; attempt < 4; attempt++) {
		if (bpf_map_pop_elem(&xlat_n64_free, &k)) {
			e->result = XLAT_N64_BATCH_POOL_EMPTY;
			return 1;
		}
		if (k >= b->block_count)
			continue; /* stale: dropped, as the data path drops it */
		err = bpf_map_update_elem(&xlat_n64_owner, &k, e->subscriber, BPF_NOEXIST);
		if (err == -XLAT_EEXIST)
			continue; /* queued twice; its owner keeps it */
		if (err) {
			bpf_map_push_elem(&xlat_n64_free, &k, 0);
			e->result = err;
			return 1;
		}
		e->block = k;
		e->result = XLAT_N64_BATCH_DONE;
		return 0;
	}
	e->result = XLAT_N64_BATCH_RETRY;
	return 0;
}

static long n64_batch_lease(__u32 i, struct n64_batch_ctx *c)
{
	struct xlat_n64_batch *b = c->b;
	struct xlat_n64_sub lease = {.allocated_ns = b->allocated_ns};
	struct xlat_n64_batch_entry *e;
	int err; /* see XLAT_EEXIST */

	if (i >= XLAT64_N64_BATCH_MAX)
		return 1;
	e = &b->entries[i];
	lease.block = e->block;
	err = bpf_map_update_elem(&xlat_n64_subs, e->subscriber, &lease, BPF_NOEXIST);
	if (err == -XLAT_EEXIST) {
		e->result = XLAT_N64_BATCH_HAS_LEASE; /* the data path gave it one meanwhile */
		return 0;
	}
	e->result = err ? err : XLAT_N64_BATCH_DONE;
	return err ? 1 : 0;
}

/* Run by the daemon with BPF_PROG_TEST_RUN, never attached; the packet is only its argument. */
SEC("xdp")
int xlat64_n64_batch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct n64_batch_ctx c;
	struct xlat_n64_batch *b;
	__u32 slot, count;

	if (data + 1 > end)
		return XDP_ABORTED;
	slot = *(__u8 *)data;
	b = bpf_map_lookup_elem(&xlat_n64_batch, &slot);
	if (!b)
		return XDP_ABORTED;
	c.b = b;
	count = b->count < XLAT64_N64_BATCH_MAX ? b->count : XLAT64_N64_BATCH_MAX;
	if (b->op == XLAT_N64_BATCH_CLAIM)
		bpf_loop(count, n64_batch_claim, &c, 0);
	else if (b->op == XLAT_N64_BATCH_LEASE)
		bpf_loop(count, n64_batch_lease, &c, 0);
	else
		return XDP_ABORTED;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
