/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The map ABI between the xlat64 tc program and xlat64d.
 *
 * This header is included by the BPF C (kmod-shim/xlat64.bpf.c) and by the C++ daemon, so it uses
 * only fixed-width kernel types and no C++ or BPF-only constructs. The maps are pinned under bpffs
 * and outlive the daemon (hitless restarts), so a layout change here is an ABI change: a new daemon
 * must be able to reuse the maps an older one pinned. Add fields only in reserved space, or bump
 * XLAT64_ABI_VERSION and teach the daemon to migrate.
 *
 * All addresses and prefixes are stored in network byte order, exactly as they appear on the wire,
 * so the data path never swaps bytes.
 */
#ifndef XLAT64_ABI_H
#define XLAT64_ABI_H

#include <linux/types.h>

#define XLAT64_ABI_VERSION 1

/* Map names as libbpf pins them (LIBBPF_PIN_BY_NAME) under the pin directory. */
#define XLAT64_MAP_SETTINGS "xlat_settings"
#define XLAT64_MAP_EAMT4 "xlat_eamt4"
#define XLAT64_MAP_EAMT6 "xlat_eamt6"
#define XLAT64_MAP_STATS "xlat_stats"
#define XLAT64_MAP_PARAMS "xlat_params"
/* Stateful NAT64 (issue 4): see "NAT64 host mapping" below. */
#define XLAT64_MAP_N64_PREFIXES "xlat_n64_pfx"
#define XLAT64_MAP_N64_SUBS "xlat_n64_subs"
#define XLAT64_MAP_N64_OWNERS "xlat_n64_owner"
#define XLAT64_MAP_N64_FREE "xlat_n64_free"
#define XLAT64_MAP_N64_HOSTS6 "xlat_n64_host6"
#define XLAT64_MAP_N64_HOSTS4 "xlat_n64_host4"
#define XLAT64_MAP_EVENTS "xlat_events"
#define XLAT64_MAP_INGRESS_STATS "xlat_ingress_stats"

/* Upper bound of EAMT entries per direction. The tries are not preallocated, so the bound costs
 * nothing until it is used; it is fixed because a pinned map's max_entries cannot change. */
#define XLAT64_EAMT_MAX_ENTRIES (1U << 22)

/* xlat_settings: an array with one element, key 0. */
enum xlat_settings_flags {
	/* pool6 below is configured; without it only the EAMT maps addresses. */
	XLAT_SETTING_POOL6 = 1U << 0,
};

/*
 * Since issue 3 the program reads every setting from one of the two slots of xlat_params; this
 * element only says which slot is live (active_params). A reload writes the slot that is not live
 * and then flips active_params (one aligned 32-bit store), so a packet sees either the old or the
 * new settings as a whole, never a mix. pool6, pool6_len and flags are still written as a mirror
 * of the live slot, for a program of the previous ABI that stays attached until the new one
 * replaces it (and for people reading the map with bpftool).
 */
struct xlat_settings {
	__u8 pool6[16];   /* RFC 6052 prefix, host bits zero (mirror of the live slot) */
	__u8 pool6_len;   /* 32, 40, 48, 56, 64 or 96 */
	__u8 reserved0[3];
	__u32 flags;      /* enum xlat_settings_flags */
	__u32 abi_version;
	__u32 active_params; /* 0 or 1: the live slot of xlat_params (appended in issue 3) */
	__u8 reserved[32]; /* room for later settings without a new map */
};

/* xlat_params: an array of two slots (struct xlat_params); see xlat_settings.active_params. */
#define XLAT64_PARAMS_SLOTS 2

enum xlat_param_flags {
	XLAT_PARAM_POOL6 = 1U << 0,                 /* pool6 is configured */
	XLAT_PARAM_UDP_ZERO_CSUM_DROP = 1U << 1,    /* drop IPv4 UDP without checksum (else compute) */
	XLAT_PARAM_TOS_SET = 1U << 2,               /* TOS/traffic class = tos_value, else copied */
	XLAT_PARAM_ALLOW_WKP_NON_GLOBAL = 1U << 3,  /* RFC 6052 3.1 check off for 64:ff9b::/96 */
	XLAT_PARAM_OWN_ADDR4 = 1U << 4,             /* own_addr4 is set */
	XLAT_PARAM_OWN_ADDR6 = 1U << 5,             /* own_addr6 is set */
	XLAT_PARAM_RFC6791_V4 = 1U << 6,            /* rfc6791_v4 pool is set */
	XLAT_PARAM_RFC6791_V6 = 1U << 7,            /* rfc6791_v6 pool is set */
	XLAT_PARAM_NAT64 = 1U << 8,                 /* stateful NAT64 host mapping is on */
	XLAT_PARAM_NAT64_DYNAMIC = 1U << 9,         /* blocks from xlat_n64_free, else deterministic */
};

struct xlat_params {
	__u8 pool6[16];        /* RFC 6052 prefix, host bits zero */
	__u8 pool6_len;        /* 32, 40, 48, 56, 64 or 96 */
	__u8 tos_value;        /* with XLAT_PARAM_TOS_SET */
	__u16 lowest_ipv6_mtu; /* host order; RFC 7915 "lowest-ipv6-mtu" (1280..65535) */
	__u32 flags;           /* enum xlat_param_flags */
	__u32 valid;           /* 0: never written (the program drops as not_configured) */
	__u16 ipv6_mtu;        /* host order; the device MTU: the MTU of the IPv6 side */
	__u16 reserved0;
	/*
	 * The translator's own addresses: the source of ICMP errors that the router itself
	 * originated (skb->ingress_ifindex 0) and whose source address cannot be translated.
	 */
	__u8 own_addr6[16];
	__be32 own_addr4;
	/* RFC 6791 pools: the source of ICMP errors from routers whose address cannot be translated. */
	__be32 rfc6791_v4;     /* IPv4 pool, host bits zero */
	__u8 rfc6791_v4_len;
	__u8 rfc6791_v6_len;
	__u8 reserved1[2];
	__u8 rfc6791_v6[16];   /* IPv6 pool, host bits zero */
	/* Stateful NAT64 (appended in issue 4, in what was reserved space). */
	__be32 n64_internal;   /* internal pool, host bits zero */
	__u8 n64_internal_len;
	__u8 n64_subscriber_len; /* subscriber prefix length (1..128) */
	__u8 n64_host_bits;    /* log2(hosts_per_subscriber): internal addresses per block */
	__u8 reserved2;
	__u32 n64_blocks;      /* port blocks; block k owns internal block n64_internal + k << host_bits */
	/* For the daemon only: fingerprints of what the blocks mean (prefixes, ports, block size,
	 * mode...) and of the public prefixes, so that a restarted daemon can tell an unchanged or
	 * merely grown pool (hosts and blocks kept) from a changed one (mappings reset). */
	__u32 n64_layout_hash;
	__u32 n64_public_hash;
	__u32 n64_public_count; /* public prefixes covered by n64_public_hash */
	__u8 reserved[40];     /* room for later settings */
};

/* xlat_eamt4: LPM trie keyed by IPv4 prefix; the value is the IPv6 side of the entry.
 * RFC 7757 section 3.2 copies the suffix bits; xlat64 requires equal suffix lengths on both sides,
 * so the suffix always lies in the last 32 bits of the IPv6 address and host_mask describes it. */
struct xlat_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct xlat_eam4_value {
	__u8 prefix6[16];  /* IPv6 prefix of the entry, host bits zero */
	__be32 host_mask;  /* suffix bits of the IPv4 address (network order) */
	__u8 prefix4_len;
	__u8 prefix6_len;
	__u8 reserved[2];
};

/* xlat_eamt6: LPM trie keyed by IPv6 prefix; the value is the IPv4 side of the entry. */
struct xlat_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct xlat_eam6_value {
	__be32 prefix4;    /* IPv4 prefix of the entry, host bits zero */
	__be32 host_mask;  /* suffix bits, applied to the last 32 bits of the IPv6 address */
	__u8 prefix4_len;
	__u8 prefix6_len;
	__u8 reserved[2];
};

/*
 * NAT64 host mapping (stateful NAT64 = this translation + kernel NAT44, DESIGN.md).
 *
 * Port block k (numbered as daemon/port_blocks.h does) owns internal block k: the addresses
 * n64_internal + (k << n64_host_bits) .. + (1 << n64_host_bits) - 1. xlat64's nftables table
 * maps internal block k to public block k statically, so choosing a block is entirely the
 * program's business and the first packet of a new subscriber or host never waits for userspace:
 * - deterministic (RFC 7422): k = first_subscriber of the admitted prefix + the subscriber bits
 *   of the source address;
 * - dynamic: k comes from xlat_n64_subs, or on a subscriber's first packet is popped from the
 *   xlat_n64_free queue (filled by the daemon) and claimed in xlat_n64_owner with BPF_NOEXIST,
 *   so a block in the queue twice is still handed out once. The daemon learns of it from an
 *   xlat_events record.
 * Each IPv6 host of the subscriber then claims a free internal address of the block in
 * xlat_n64_host4 (BPF_NOEXIST) and records it in xlat_n64_host6. The daemon expires idle hosts
 * and blocks (daemon/nat64_expiry.cpp).
 */
#define XLAT64_N64_PREFIXES_MAX 1024
#define XLAT64_N64_BLOCKS_MAX (1U << 20)
#define XLAT64_N64_HOSTS_MAX (1U << 22)

/* xlat_n64_pfx: LPM trie keyed by xlat_lpm6_key: the admitted prefixes. */
struct xlat_n64_prefix {
	__u64 first_subscriber; /* deterministic index of the prefix's first subscriber */
	__u8 prefix_len;
	__u8 reserved[7];
};

/* xlat_n64_subs (dynamic mode): hash, key = subscriber prefix (16 bytes, host bits zero). */
struct xlat_n64_sub {
	__u32 block;
	__u32 reserved;
	__u64 allocated_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
};

/* xlat_n64_owner (dynamic mode): hash, key = __u32 block, value = subscriber prefix (16 bytes). */

/* xlat_n64_host6: hash, key = IPv6 host address (16 bytes). */
struct xlat_n64_host {
	__be32 internal;    /* its internal IPv4 address */
	__u32 block;
	__u64 last_seen_ns; /* CLOCK_MONOTONIC, refreshed by outgoing packets at most once a second */
};

/* xlat_n64_host4: hash, key = __be32 internal address, value = IPv6 host address (16 bytes). */

/* xlat_n64_free (dynamic mode): a queue of __u32 block numbers. */

/* xlat_n64_batch: the daemon's side of a bulk import, not pinned (each daemon creates its own).
 * One bpf() call per block costs about a microsecond on its own, and an import of a million
 * subscribers needs four per subscriber: a lookup of its lease, a pop of the free queue, a claim
 * in xlat_n64_owner and, once committed to the store, its lease. The program xlat64_n64_batch,
 * run with BPF_PROG_TEST_RUN, does the same map operations for up to XLAT64_N64_BATCH_MAX
 * subscribers at a time in one call: with the same BPF_NOEXIST tests, so it decides against the
 * data path exactly as the per-block calls do. Its packet's first byte names the slot; a slot
 * belongs to one daemon thread (see enum xlat_n64_batch_slot). */
#define XLAT64_N64_BATCH_MAX 1024

enum xlat_n64_batch_slot {
	XLAT_N64_BATCH_SLOT_CLAIM = 0, /* the import's claimer thread */
	XLAT_N64_BATCH_SLOT_LEASE = 1, /* the import's lease thread */
	XLAT_N64_BATCH_SLOTS = 2,
};

enum xlat_n64_batch_op {
	/* For each subscriber without a lease: pop free blocks until one below block_count is
	 * claimed for it in xlat_n64_owner (BPF_NOEXIST). */
	XLAT_N64_BATCH_CLAIM = 1,
	/* For each (subscriber, block): the lease, BPF_NOEXIST, stamped allocated_ns. */
	XLAT_N64_BATCH_LEASE = 2,
};

/* What became of one entry; a negative value is the -errno of the map operation that failed,
 * and the batch stops there. */
enum xlat_n64_batch_result {
	XLAT_N64_BATCH_DONE = 0,         /* claimed (block set), or leased */
	XLAT_N64_BATCH_HAS_LEASE = 1,    /* the subscriber holds a lease already: nothing changed */
	XLAT_N64_BATCH_POOL_EMPTY = 2,   /* claim: the free queue ran dry; the batch stops here */
	XLAT_N64_BATCH_RETRY = 3,        /* claim: four popped blocks were stale or owned */
	XLAT_N64_BATCH_NOT_RUN = 4,      /* set by the daemon; the batch stopped before this entry */
};

struct xlat_n64_batch_entry {
	__u8 subscriber[16]; /* prefix, host bits zero */
	__u32 block;                /* claim: out; lease: in */
	__s32 result;               /* enum xlat_n64_batch_result or -errno */
};

struct xlat_n64_batch {
	__u32 op;          /* enum xlat_n64_batch_op */
	__u32 count;       /* entries used, at most XLAT64_N64_BATCH_MAX */
	__u32 block_count; /* claim: blocks at or above it are stale (a shrunk pool) */
	__u32 reserved;
	__u64 allocated_ns; /* lease: the leases' time stamp (CLOCK_MONOTONIC) */
	struct xlat_n64_batch_entry entries[XLAT64_N64_BATCH_MAX];
};

/* xlat_events: a ring buffer of struct xlat_event. */
enum xlat_event_type {
	XLAT_EVENT_BLOCK_ALLOCATED = 1, /* a dynamic block was handed to a subscriber */
	XLAT_EVENT_NO_BLOCK = 2,        /* a new subscriber found every block leased */
	XLAT_EVENT_NO_HOST_SLOT = 3,    /* a new host found its subscriber's addresses all used */
};

struct xlat_event {
	__u32 type;          /* enum xlat_event_type */
	__u32 block;
	__u8 subscriber[16]; /* subscriber prefix (or the host address for NO_HOST_SLOT) */
	__u64 time_ns;       /* CLOCK_MONOTONIC */
};

/* xlat_stats: a per-CPU array indexed by enum xlat_stat. Each X(name, label, kind, help) below
 * becomes an enum value, and the C++ side builds its table of names from the same list, so the
 * two can never disagree. Append only: the index is the ABI. kind: 0 a packet translated, 1 a
 * packet dropped (every packet lands in exactly one of these), 2 an event that is not a packet
 * (a host or block handed out, counted with 0 bytes besides its packet's own counter). */
#define XLAT64_STATS(X)                                                                            \
	X(XLAT_STAT_XLAT_6TO4, "translated_6to4", 0, "IPv6 packets translated to IPv4")             \
	X(XLAT_STAT_XLAT_4TO6, "translated_4to6", 0, "IPv4 packets translated to IPv6")             \
	X(XLAT_STAT_NOT_IP, "not_ip", 1, "neither IPv4 nor IPv6")                                   \
	X(XLAT_STAT_IPV4_MALFORMED, "ipv4_malformed", 1,                                             \
	  "IPv4 header truncated or inconsistent (version, IHL, total length)")                     \
	X(XLAT_STAT_IPV6_MALFORMED, "ipv6_malformed", 1,                                             \
	  "IPv6 header truncated or inconsistent (version, payload length)")                        \
	X(XLAT_STAT_IPV4_OPTIONS, "ipv4_options", 1, "IPv4 options malformed (valid ones are ignored, RFC 7915 4.1)") \
	X(XLAT_STAT_IPV4_FRAGMENT, "ipv4_fragment", 1, "IPv4 fragment that cannot be translated (unused since issue 3)")        \
	X(XLAT_STAT_IPV6_EXTENSION, "ipv6_extension_header", 1,                                      \
	  "IPv6 extension header that cannot be walked (AH, ESP, unknown, too many)")                                 \
	X(XLAT_STAT_IPV6_NOT_UNICAST, "ipv6_not_global_unicast", 1,                                  \
	  "IPv6 multicast, link-local or unspecified address (never translated)")                   \
	X(XLAT_STAT_L4_UNSUPPORTED, "l4_unsupported", 1,                                             \
	  "transport protocol other than TCP, UDP, ICMP (not yet translated)")                      \
	X(XLAT_STAT_L4_TRUNCATED, "l4_truncated", 1, "TCP, UDP or ICMP header truncated")           \
	X(XLAT_STAT_ICMP_UNSUPPORTED, "icmp_unsupported", 1,                                         \
	  "ICMP informational type RFC 7915 drops (timestamp, ND, MLD, ...)")                           \
	X(XLAT_STAT_UDP_ZERO_CSUM, "udp_zero_checksum", 1,                                           \
	  "IPv4 UDP without checksum dropped (udp_zero_checksum: drop, or a fragment of one)")                                          \
	X(XLAT_STAT_NO_SRC_MAPPING, "no_source_mapping", 1,                                          \
	  "source address in neither the EAMT nor pool6")                                           \
	X(XLAT_STAT_NO_DST_MAPPING, "no_destination_mapping", 1,                                     \
	  "destination address in neither the EAMT nor pool6")                                      \
	X(XLAT_STAT_NO_SETTINGS, "not_configured", 1, "settings map empty (daemon never ran)")      \
	X(XLAT_STAT_HELPER_FAILED, "kernel_helper_failed", 1,                                        \
	  "a BPF helper failed to resize or rewrite the packet (out of memory)")                   \
	/* Appended in issue 3 (RFC 7915 in full). */                                              \
	X(XLAT_STAT_ICMP_ERR_4TO6, "icmp_error_translated_4to6", 0,                                  \
	  "ICMPv4 errors translated into ICMPv6, quoted packet included (also in translated_4to6)") \
	X(XLAT_STAT_ICMP_ERR_6TO4, "icmp_error_translated_6to4", 0,                                  \
	  "ICMPv6 errors translated into ICMPv4, quoted packet included (also in translated_6to4)") \
	X(XLAT_STAT_ICMP_UNTRANSLATABLE, "icmp_untranslatable", 1,                                   \
	  "ICMP type/code or Parameter Problem pointer RFC 7915 4.2/5.2 says to drop")              \
	X(XLAT_STAT_ICMP_INNER_MALFORMED, "icmp_inner_malformed", 1,                                 \
	  "ICMP error whose quoted packet is truncated, inconsistent or itself an ICMP error")      \
	X(XLAT_STAT_ICMP_INNER_NO_MAPPING, "icmp_inner_no_mapping", 1,                               \
	  "ICMP error whose quoted packet has an address in neither the EAMT nor pool6")            \
	X(XLAT_STAT_ICMP_SRC_RFC6791, "icmp_source_rfc6791", 0,                                      \
	  "ICMP errors whose untranslatable source was replaced (RFC 6791 pool or own address)")   \
	X(XLAT_STAT_FRAGMENT_4TO6, "fragment_translated_4to6", 0,                                    \
	  "IPv4 fragments translated (IPv6 Fragment header added; also in translated_4to6)")        \
	X(XLAT_STAT_FRAGMENT_6TO4, "fragment_translated_6to4", 0,                                    \
	  "IPv6 fragments translated (also in translated_6to4)")                                    \
	X(XLAT_STAT_ICMP_FRAGMENT, "icmp_fragment", 1,                                               \
	  "fragmented ICMP: the checksum's pseudo-header needs the length of the whole message")    \
	X(XLAT_STAT_IPV4_SOURCE_ROUTE, "ipv4_source_route", 1,                                       \
	  "IPv4 with an unexpired source route option (RFC 7915 4.1)")                              \
	X(XLAT_STAT_IPV6_ROUTING, "ipv6_routing_segments_left", 1,                                   \
	  "IPv6 routing header with segments left (RFC 7915 5.1)")                                  \
	X(XLAT_STAT_WKP_NON_GLOBAL, "wkp_non_global", 1,                                             \
	  "64:ff9b::/96 with a non-global IPv4 address (RFC 6052 3.1; translation.allow_wkp_non_global)") \
	X(XLAT_STAT_UDP_ZERO_CSUM_COMPUTED, "udp_zero_checksum_computed", 0,                         \
	  "IPv4 UDP without checksum given one (RFC 7915 4.5; also in translated_4to6)")           \
	X(XLAT_STAT_HAIRPIN, "hairpinned", 0,                                                        \
	  "IPv6 packets to an EAM host through pool6, translated back to IPv6 (RFC 7757 4.2)")     \
	X(XLAT_STAT_TOO_BIG, "too_big", 1,                                                           \
	  "translated packet longer than IPv4/IPv6 can carry (65535) or than lowest_ipv6_mtu allows") \
	/* Appended in issue 4 (stateful NAT64). */                                                \
	X(XLAT_STAT_N64_NOT_ADMITTED, "nat64_not_admitted", 1,                                       \
	  "IPv6 source in neither the EAMT nor an admitted NAT64 prefix (nat64.prefixes)")          \
	X(XLAT_STAT_N64_NO_BLOCK, "nat64_no_free_block", 1,                                          \
	  "new subscriber while every port block is leased (dynamic mode)")                         \
	X(XLAT_STAT_N64_NO_HOST_SLOT, "nat64_no_host_address", 1,                                    \
	  "new host while its subscriber's internal addresses are all in use (hosts_per_subscriber)") \
	X(XLAT_STAT_N64_NO_HOST, "nat64_unknown_internal", 1,                                        \
	  "IPv4 packet to an internal address that no host holds (expired, or never handed out)")   \
	X(XLAT_STAT_N64_BLOCK_ALLOCATED, "nat64_blocks_allocated", 2,                                \
	  "port blocks handed to subscribers by the data path (dynamic mode)")                      \
	X(XLAT_STAT_N64_HOST_ADDED, "nat64_hosts_added", 2,                                          \
	  "IPv6 hosts given an internal address by the data path")

/* xlat_ingress_stats: a per-CPU array of struct xlat_counter. What the instances at interfaces'
 * ingress (translation.ingress_interfaces) did with packets addressed to the translator; the
 * translated ones are also in xlat_stats, the deferred ones there once the device path has them. */
enum xlat_ingress_stat {
	XLAT_INGRESS_6TO4 = 0,     /* translated to IPv4 at an interface's ingress */
	XLAT_INGRESS_4TO6 = 1,     /* translated to IPv6 at an interface's ingress */
	XLAT_INGRESS_DEFERRED = 2, /* left to the device path: fragments, ICMP errors, expiring... */
	XLAT_INGRESS_INTERNAL_SOURCE = 3, /* dropped: IPv4 from the NAT64 internal pool */
	XLAT_INGRESS_STAT_MAX
};

#define XLAT64_STAT_ENUM_ENTRY(id, label, kind, help) id,
enum xlat_stat { XLAT64_STATS(XLAT64_STAT_ENUM_ENTRY) XLAT_STAT_MAX };
#undef XLAT64_STAT_ENUM_ENTRY

struct xlat_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* XLAT64_ABI_H */
