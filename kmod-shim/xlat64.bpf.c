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
 * Scope so far: TCP, UDP and ICMP echo request/reply in both directions (RFC 7915 sections 4 and
 * 5, without ICMP errors, fragments, IPv4 options or IPv6 extension headers). Everything else is
 * dropped and counted by reason (enum xlat_stat in xlat64_abi.h).
 *
 * Checksums are only ever adjusted incrementally through the kernel's helpers, never recomputed
 * over the payload: on the real path the skbs are often CHECKSUM_PARTIAL (locally generated TCP
 * and UDP, veth, GSO super-packets) or CHECKSUM_COMPLETE (forwarded from a NIC), and only the
 * helpers know how to keep the checksum field and skb->csum right for each of those.
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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlat_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlat_settings SEC(".maps");

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

/* Not in the uapi headers (they live in include/net/ip.h). */
#define XLAT_IP_MF 0x2000
#define XLAT_IP_DF 0x4000
#define XLAT_IP_OFFSET 0x1fff

/* RFC 7915 section 5.1: IPv4 packets up to this size leave with DF=0, bigger ones with DF=1. */
#define XLAT_DF_THRESHOLD 1260

/*
 * ICMP types. <linux/icmp.h> is not included: it pulls in glibc's socket headers, which do not
 * build for -target bpf. The ICMPv6 ones come from <linux/icmpv6.h>.
 */
#define XLAT_ICMP_ECHO_REPLY 0
#define XLAT_ICMP_ECHO_REQUEST 8

/* Offsets of the checksum field in each transport header. */
#define XLAT_TCP_CSUM_OFF offsetof(struct tcphdr, check)
#define XLAT_UDP_CSUM_OFF offsetof(struct udphdr, check)
#define XLAT_ICMP_CSUM_OFF 2 /* the same in ICMP and ICMPv6 */

/* The IPv6 pseudo-header (RFC 8200 section 8.1) of an upper-layer packet. */
struct xlat_pseudo6 {
	struct in6_addr saddr;
	struct in6_addr daddr;
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

/* What the transport header needs after the IP header was rewritten. */
struct xlat_l4 {
	__u32 csum_off;   /* offset of the checksum field from the transport header */
	__u16 old_type;   /* ICMP only: type and code words as on the wire */
	__u16 new_type;
	__u8 proto;       /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6 */
};

static __always_inline void count(enum xlat_stat what, __u32 len)
{
	__u32 key = what;
	struct xlat_counter *c = bpf_map_lookup_elem(&xlat_stats, &key);

	/* Per-CPU counters: no other CPU writes this slot, so no atomics. */
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline int drop(enum xlat_stat why, __u32 len)
{
	count(why, len);
	return TC_ACT_SHOT;
}

static __always_inline const struct xlat_settings *settings(void)
{
	__u32 key = 0;
	const struct xlat_settings *s = bpf_map_lookup_elem(&xlat_settings, &key);

	/* abi_version 0: the maps exist (pinned) but no daemon ever configured them. */
	if (!s || s->abi_version == 0)
		return NULL;
	return s;
}

/*
 * The kernel forwards a packet once into this device, decrementing TTL / hop limit, and once more
 * after the redirect to ingress, decrementing it again. RFC 7915 makes the translator one router
 * hop, so one of the two decrements is undone here. 255 stays 255: the counter cannot grow past
 * its maximum, and such a packet simply loses one hop. (Packets the router originates itself are
 * not decremented on the way in, so they come out one higher than behind a separate translator.)
 */
static __always_inline __u8 ttl_plus_one(__u8 ttl)
{
	return ttl == 255 ? 255 : ttl + 1;
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
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
 * addresses, and a translator must drop packets in which it would. Non-global: the blocks of
 * RFC 5735 section 3 and the shared address space of RFC 6598.
 */
static __always_inline bool pool6_is_wkp(const struct xlat_settings *s)
{
	const __u8 *p = s->pool6;

	return s->pool6_len == 96 && p[0] == 0x00 && p[1] == 0x64 && p[2] == 0xff && p[3] == 0x9b &&
	       (p[4] | p[5] | p[6] | p[7] | p[8] | p[9] | p[10] | p[11]) == 0;
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
 * RFC 6052 section 2.2: the IPv4 address is embedded right after the prefix, skipping bits 64..71
 * (the "u" octet, byte 8), which must stay zero; the bytes after it (the suffix) are zero as well.
 * Every length is a multiple of 8, so a switch with constant byte offsets does it.
 */
static __always_inline int pool6_embed(const struct xlat_settings *s, __be32 addr4,
				       struct in6_addr *out)
{
	const __u8 *v4 = (const __u8 *)&addr4;
	const __u8 *p = s->pool6;
	__u8 *o = out->s6_addr;

	__builtin_memset(out, 0, sizeof(*out));
	/* Copy the whole prefix side; the bytes past it are overwritten or cleared below. */
	__builtin_memcpy(o, p, 12);

	switch (s->pool6_len) {
	case 32:
		o[4] = v4[0]; o[5] = v4[1]; o[6] = v4[2]; o[7] = v4[3];
		o[8] = 0; o[9] = 0; o[10] = 0; o[11] = 0;
		break;
	case 40:
		o[5] = v4[0]; o[6] = v4[1]; o[7] = v4[2]; o[8] = 0; o[9] = v4[3];
		o[10] = 0; o[11] = 0;
		break;
	case 48:
		o[6] = v4[0]; o[7] = v4[1]; o[8] = 0; o[9] = v4[2]; o[10] = v4[3];
		o[11] = 0;
		break;
	case 56:
		o[7] = v4[0]; o[8] = 0; o[9] = v4[1]; o[10] = v4[2]; o[11] = v4[3];
		break;
	case 64:
		o[8] = 0; o[9] = v4[0]; o[10] = v4[1]; o[11] = v4[2]; o[12] = v4[3];
		break;
	case 96:
		o[12] = v4[0]; o[13] = v4[1]; o[14] = v4[2]; o[15] = v4[3];
		break;
	default:
		return -1;
	}
	return 0;
}

/*
 * The reverse of pool6_embed: the address must lie inside pool6, and the IPv4 address is read
 * from the same positions. The u octet and the suffix are ignored on receipt, as RFC 6052
 * section 2.2 allows, so a peer that sets them still reaches the right IPv4 host.
 */
static __always_inline int pool6_extract(const struct xlat_settings *s, const struct in6_addr *a,
					 __be32 *addr4)
{
	const __u8 *b = a->s6_addr;
	const __u8 *p = s->pool6;
	__u8 *v4 = (__u8 *)addr4;

	switch (s->pool6_len) {
	case 32:
		if (!bytes_equal(b, p, 4))
			return -1;
		v4[0] = b[4]; v4[1] = b[5]; v4[2] = b[6]; v4[3] = b[7];
		break;
	case 40:
		if (!bytes_equal(b, p, 5))
			return -1;
		v4[0] = b[5]; v4[1] = b[6]; v4[2] = b[7]; v4[3] = b[9];
		break;
	case 48:
		if (!bytes_equal(b, p, 6))
			return -1;
		v4[0] = b[6]; v4[1] = b[7]; v4[2] = b[9]; v4[3] = b[10];
		break;
	case 56:
		if (!bytes_equal(b, p, 7))
			return -1;
		v4[0] = b[7]; v4[1] = b[9]; v4[2] = b[10]; v4[3] = b[11];
		break;
	case 64:
		if (!bytes_equal(b, p, 8))
			return -1;
		v4[0] = b[9]; v4[1] = b[10]; v4[2] = b[11]; v4[3] = b[12];
		break;
	case 96:
		if (!bytes_equal(b, p, 12))
			return -1;
		v4[0] = b[12]; v4[1] = b[13]; v4[2] = b[14]; v4[3] = b[15];
		break;
	default:
		return -1;
	}
	return 0;
}

/* IPv6 -> IPv4 address: the EAMT first (longest match, RFC 7757 section 3.2), then pool6. */
static __always_inline int map_6to4(const struct xlat_settings *s, const struct in6_addr *a,
				    __be32 *addr4)
{
	struct xlat_lpm6_key key = { .prefixlen = 128 };
	const struct xlat_eam6_value *eam;

	__builtin_memcpy(key.addr, a, sizeof(key.addr));
	eam = bpf_map_lookup_elem(&xlat_eamt6, &key);
	if (eam) {
		/* Equal suffix lengths on both sides: the suffix is in the last 32 bits. */
		*addr4 = eam->prefix4 | (a->s6_addr32[3] & eam->host_mask);
		return 0;
	}
	if (!(s->flags & XLAT_SETTING_POOL6))
		return -1;
	if (pool6_extract(s, a, addr4))
		return -1;
	if (pool6_is_wkp(s) && !ipv4_is_global(*addr4))
		return -1;
	return 0;
}

/* IPv4 -> IPv6 address: the EAMT first (longest match), then pool6. */
static __always_inline int map_4to6(const struct xlat_settings *s, __be32 addr4,
				    struct in6_addr *out)
{
	struct xlat_lpm4_key key = { .prefixlen = 32 };
	const struct xlat_eam4_value *eam;

	__builtin_memcpy(key.addr, &addr4, sizeof(key.addr));
	eam = bpf_map_lookup_elem(&xlat_eamt4, &key);
	if (eam) {
		__builtin_memcpy(out, eam->prefix6, sizeof(*out));
		out->s6_addr32[3] |= addr4 & eam->host_mask;
		return 0;
	}
	if (!(s->flags & XLAT_SETTING_POOL6))
		return -1;
	if (pool6_is_wkp(s) && !ipv4_is_global(addr4))
		return -1;
	return pool6_embed(s, addr4, out);
}

/*
 * The link-layer header, when there is one (only under BPF_PROG_TEST_RUN), must announce the new
 * protocol too: bpf_skb_change_proto() changes skb->protocol but leaves the frame's bytes alone.
 */
static __always_inline int set_l2_proto(struct __sk_buff *skb, __u16 proto)
{
	__be16 p = bpf_htons(proto);

	if (xlat_l2_hlen != ETH_HLEN)
		return 0;
	return bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &p, sizeof(p), 0);
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

/*
 * The transport header of an IPv6 packet. Only the fixed part is touched (the checksum field and
 * for ICMP the type), so only that must be present; the endpoint validates the rest.
 */
static __always_inline enum xlat_stat parse_l4_6(struct __sk_buff *skb, __u32 l4_off, __u8 nexthdr,
						 __u32 l4_len, struct xlat_l4 *l4)
{
	__u8 type_code[2];

	l4->proto = nexthdr;
	switch (nexthdr) {
	case IPPROTO_TCP:
		if (l4_len < sizeof(struct tcphdr))
			return XLAT_STAT_L4_TRUNCATED;
		l4->csum_off = XLAT_TCP_CSUM_OFF;
		return XLAT_STAT_MAX;
	case IPPROTO_UDP:
		if (l4_len < sizeof(struct udphdr))
			return XLAT_STAT_L4_TRUNCATED;
		l4->csum_off = XLAT_UDP_CSUM_OFF;
		return XLAT_STAT_MAX;
	case IPPROTO_ICMPV6:
		/* Echo messages: type, code, checksum, identifier, sequence number. */
		if (l4_len < 8)
			return XLAT_STAT_L4_TRUNCATED;
		if (bpf_skb_load_bytes(skb, l4_off, type_code, sizeof(type_code)))
			return XLAT_STAT_L4_TRUNCATED;
		l4->csum_off = XLAT_ICMP_CSUM_OFF;
		__builtin_memcpy(&l4->old_type, type_code, sizeof(l4->old_type));
		if (type_code[0] == ICMPV6_ECHO_REQUEST)
			type_code[0] = XLAT_ICMP_ECHO_REQUEST;
		else if (type_code[0] == ICMPV6_ECHO_REPLY)
			type_code[0] = XLAT_ICMP_ECHO_REPLY;
		else
			return XLAT_STAT_ICMP_UNSUPPORTED;
		__builtin_memcpy(&l4->new_type, type_code, sizeof(l4->new_type));
		return XLAT_STAT_MAX;
	/* The IPv6 extension headers (IANA registry "IPv6 Extension Header Types"). */
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* HIP */
	case 140: /* Shim6 */
	case 253: /* experimentation and testing, RFC 3692 */
	case 254:
		return XLAT_STAT_IPV6_EXTENSION;
	default:
		return XLAT_STAT_L4_UNSUPPORTED;
	}
}

/* The transport header of an IPv4 packet without options. */
static __always_inline enum xlat_stat parse_l4_4(struct __sk_buff *skb, __u32 l4_off, __u8 proto,
						 __u32 l4_len, struct xlat_l4 *l4)
{
	__u8 type_code[2];
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
		if (bpf_skb_load_bytes(skb, l4_off + XLAT_UDP_CSUM_OFF, &check, sizeof(check)))
			return XLAT_STAT_L4_TRUNCATED;
		/*
		 * IPv6 requires the UDP checksum; computing one over the payload is a later
		 * issue (RFC 7915 section 4.5). Even a CHECKSUM_PARTIAL skb never holds 0 here:
		 * its field is the folded pseudo-header sum, which is never zero.
		 */
		if (check == 0)
			return XLAT_STAT_UDP_ZERO_CSUM;
		return XLAT_STAT_MAX;
	case IPPROTO_ICMP:
		if (l4_len < 8)
			return XLAT_STAT_L4_TRUNCATED;
		if (bpf_skb_load_bytes(skb, l4_off, type_code, sizeof(type_code)))
			return XLAT_STAT_L4_TRUNCATED;
		l4->csum_off = XLAT_ICMP_CSUM_OFF;
		__builtin_memcpy(&l4->old_type, type_code, sizeof(l4->old_type));
		if (type_code[0] == XLAT_ICMP_ECHO_REQUEST)
			type_code[0] = ICMPV6_ECHO_REQUEST;
		else if (type_code[0] == XLAT_ICMP_ECHO_REPLY)
			type_code[0] = ICMPV6_ECHO_REPLY;
		else
			return XLAT_STAT_ICMP_UNSUPPORTED;
		__builtin_memcpy(&l4->new_type, type_code, sizeof(l4->new_type));
		return XLAT_STAT_MAX;
	default:
		return XLAT_STAT_L4_UNSUPPORTED;
	}
}

/* RFC 7915 section 5.1: IPv6 -> IPv4. */
static __always_inline int xlat_6to4(struct __sk_buff *skb, __u32 len)
{
	const __u32 nh_off = xlat_l2_hlen;
	const __u32 l4_off_new = nh_off + sizeof(struct iphdr);
	const struct xlat_settings *s;
	struct xlat_pseudo6 ph = {};
	struct iphdr ip4 = {};
	struct ipv6hdr ip6;
	struct xlat_l4 l4 = {};
	enum xlat_stat err;
	__u32 plen, tot_len;
	__be32 word0;
	__s64 diff;

	if (bpf_skb_load_bytes(skb, nh_off, &ip6, sizeof(ip6)) || ip6.version != 6)
		return drop(XLAT_STAT_IPV6_MALFORMED, len);
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
	tot_len = plen + sizeof(ip4);
	/* An IPv6 payload of more than 65515 bytes does not fit IPv4's 16-bit total length. */
	if (tot_len > 0xffff)
		return drop(XLAT_STAT_IPV6_MALFORMED, len);

	err = parse_l4_6(skb, nh_off + sizeof(ip6), ip6.nexthdr, plen, &l4);
	if (err != XLAT_STAT_MAX)
		return drop(err, len);

	s = settings();
	if (!s)
		return drop(XLAT_STAT_NO_SETTINGS, len);
	if (map_6to4(s, &ip6.saddr, &ip4.saddr))
		return drop(XLAT_STAT_NO_SRC_MAPPING, len);
	if (map_6to4(s, &ip6.daddr, &ip4.daddr))
		return drop(XLAT_STAT_NO_DST_MAPPING, len);

	ip4.version = 4;
	ip4.ihl = 5;
	/* Traffic class: the 8 bits after the version. */
	__builtin_memcpy(&word0, &ip6, sizeof(word0));
	ip4.tos = (__u8)(bpf_ntohl(word0) >> 20);
	ip4.tot_len = bpf_htons(tot_len);
	/* No fragment header, so no identification to copy: a fresh one (RFC 7915 section 5.1). */
	ip4.id = (__be16)bpf_get_prandom_u32();
	/* RFC 7915 section 5.1; MF and the offset are 0. */
	ip4.frag_off = tot_len > XLAT_DF_THRESHOLD ? bpf_htons(XLAT_IP_DF) : 0;
	ip4.ttl = ttl_plus_one(ip6.hop_limit);
	ip4.protocol = l4.proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : l4.proto;
	ip4.check = csum_fold((__u32)bpf_csum_diff(NULL, 0, (__be32 *)&ip4, sizeof(ip4), 0));

	if (l4.proto == IPPROTO_ICMPV6) {
		/* ICMPv6 covers a pseudo-header and ICMP does not: take all of it out. */
		ph.saddr = ip6.saddr;
		ph.daddr = ip6.daddr;
		ph.len = bpf_htonl(plen);
		ph.nexthdr = IPPROTO_ICMPV6;
		diff = bpf_csum_diff((__be32 *)&ph, sizeof(ph), NULL, 0, 0);
	} else {
		/*
		 * The TCP/UDP pseudo-headers differ only in the addresses: the length and
		 * protocol words of the IPv6 one sum to the same value as the IPv4 ones.
		 */
		diff = bpf_csum_diff((__be32 *)&ip6.saddr, 2 * sizeof(struct in6_addr),
				     (__be32 *)&ip4.saddr, 2 * sizeof(__be32), 0);
	}

	/*
	 * Removes 20 bytes after the link-layer header and converts GSO packets (SKB_GSO_TCPV6 ->
	 * SKB_GSO_TCPV4). What remains of the old header in front of the transport header is
	 * overwritten whole below; BPF_F_RECOMPUTE_CSUM keeps skb->csum right for
	 * CHECKSUM_COMPLETE (no-op otherwise).
	 */
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (bpf_skb_store_bytes(skb, nh_off, &ip4, sizeof(ip4), BPF_F_RECOMPUTE_CSUM))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (set_l2_proto(skb, ETH_P_IP))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	/* UDP: a zero checksum field stays zero (IPv4 "no checksum") and a computed 0 becomes 0xffff. */
	if (bpf_l4_csum_replace(skb, l4_off_new + l4.csum_off, 0, diff,
				BPF_F_PSEUDO_HDR |
					(l4.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (l4.proto == IPPROTO_ICMPV6 && set_icmp_type(skb, l4_off_new, &l4))
		return drop(XLAT_STAT_HELPER_FAILED, len);

	count(XLAT_STAT_XLAT_6TO4, len);
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

/* RFC 7915 section 4.1: IPv4 -> IPv6. */
static __always_inline int xlat_4to6(struct __sk_buff *skb, __u32 len)
{
	const __u32 nh_off = xlat_l2_hlen;
	const __u32 l4_off_new = nh_off + sizeof(struct ipv6hdr);
	const struct xlat_settings *s;
	struct xlat_pseudo6 ph = {};
	struct ipv6hdr ip6 = {};
	struct xlat_l4 l4 = {};
	enum xlat_stat err;
	__u32 tot_len, plen;
	struct iphdr ip4;
	__be32 word0;
	__s64 diff;

	/* The header checksum is not verified: the kernel did that when it received the packet. */
	if (bpf_skb_load_bytes(skb, nh_off, &ip4, sizeof(ip4)) || ip4.version != 4 || ip4.ihl < 5)
		return drop(XLAT_STAT_IPV4_MALFORMED, len);
	tot_len = bpf_ntohs(ip4.tot_len);
	if (tot_len < ip4.ihl * 4U || tot_len > skb->len - nh_off)
		return drop(XLAT_STAT_IPV4_MALFORMED, len);
	if (ip4.ihl > 5)
		return drop(XLAT_STAT_IPV4_OPTIONS, len);
	if (ip4.frag_off & bpf_htons(XLAT_IP_MF | XLAT_IP_OFFSET))
		return drop(XLAT_STAT_IPV4_FRAGMENT, len);
	plen = tot_len - sizeof(ip4);

	err = parse_l4_4(skb, nh_off + sizeof(ip4), ip4.protocol, plen, &l4);
	if (err != XLAT_STAT_MAX)
		return drop(err, len);

	s = settings();
	if (!s)
		return drop(XLAT_STAT_NO_SETTINGS, len);
	if (map_4to6(s, ip4.saddr, &ip6.saddr))
		return drop(XLAT_STAT_NO_SRC_MAPPING, len);
	if (map_4to6(s, ip4.daddr, &ip6.daddr))
		return drop(XLAT_STAT_NO_DST_MAPPING, len);

	/* Version 6, traffic class = TOS, flow label 0. */
	word0 = bpf_htonl(0x60000000U | ((__u32)ip4.tos << 20));
	__builtin_memcpy(&ip6, &word0, sizeof(word0));
	ip6.payload_len = bpf_htons(plen);
	ip6.nexthdr = l4.proto == IPPROTO_ICMP ? IPPROTO_ICMPV6 : l4.proto;
	ip6.hop_limit = ttl_plus_one(ip4.ttl);

	if (l4.proto == IPPROTO_ICMP) {
		/* ICMP has no pseudo-header and ICMPv6 has one: add all of it. */
		ph.saddr = ip6.saddr;
		ph.daddr = ip6.daddr;
		ph.len = bpf_htonl(plen);
		ph.nexthdr = IPPROTO_ICMPV6;
		diff = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	} else {
		diff = bpf_csum_diff((__be32 *)&ip4.saddr, 2 * sizeof(__be32),
				     (__be32 *)&ip6.saddr, 2 * sizeof(struct in6_addr), 0);
	}

	/*
	 * Inserts 20 zero bytes after the link-layer header (SKB_GSO_TCPV4 -> SKB_GSO_TCPV6); the
	 * new header then overwrites them and the old IPv4 header.
	 */
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (bpf_skb_store_bytes(skb, nh_off, &ip6, sizeof(ip6), BPF_F_RECOMPUTE_CSUM))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (set_l2_proto(skb, ETH_P_IPV6))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	/* UDP: a result of 0 is sent as 0xffff, since 0 means "no checksum" (RFC 768). */
	if (bpf_l4_csum_replace(skb, l4_off_new + l4.csum_off, 0, diff,
				BPF_F_PSEUDO_HDR |
					(l4.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
		return drop(XLAT_STAT_HELPER_FAILED, len);
	if (l4.proto == IPPROTO_ICMP && set_icmp_type(skb, l4_off_new, &l4))
		return drop(XLAT_STAT_HELPER_FAILED, len);

	count(XLAT_STAT_XLAT_4TO6, len);
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

SEC("tc")
int xlat64_egress(struct __sk_buff *skb)
{
	/* Counters record the packet as it reached the translator. */
	__u32 len = skb->len;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return xlat_6to4(skb, len);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return xlat_4to6(skb, len);
	return drop(XLAT_STAT_NOT_IP, len);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
