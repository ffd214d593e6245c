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

/* Upper bound of EAMT entries per direction. The tries are not preallocated, so the bound costs
 * nothing until it is used; it is fixed because a pinned map's max_entries cannot change. */
#define XLAT64_EAMT_MAX_ENTRIES (1U << 22)

/* xlat_settings: an array with one element, key 0. */
enum xlat_settings_flags {
	/* pool6 below is configured; without it only the EAMT maps addresses. */
	XLAT_SETTING_POOL6 = 1U << 0,
};

struct xlat_settings {
	__u8 pool6[16];   /* RFC 6052 prefix, host bits zero */
	__u8 pool6_len;   /* 32, 40, 48, 56, 64 or 96 */
	__u8 reserved0[3];
	__u32 flags;      /* enum xlat_settings_flags */
	__u32 abi_version;
	__u8 reserved[36]; /* room for later settings without a new map */
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

/* xlat_stats: a per-CPU array indexed by enum xlat_stat. Each X(name, label, is_drop, help) below
 * becomes an enum value, and the C++ side builds its table of names from the same list, so the
 * two can never disagree. Append only: the index is the ABI. */
#define XLAT64_STATS(X)                                                                            \
	X(XLAT_STAT_XLAT_6TO4, "translated_6to4", 0, "IPv6 packets translated to IPv4")             \
	X(XLAT_STAT_XLAT_4TO6, "translated_4to6", 0, "IPv4 packets translated to IPv6")             \
	X(XLAT_STAT_NOT_IP, "not_ip", 1, "neither IPv4 nor IPv6")                                   \
	X(XLAT_STAT_IPV4_MALFORMED, "ipv4_malformed", 1,                                             \
	  "IPv4 header truncated or inconsistent (version, IHL, total length)")                     \
	X(XLAT_STAT_IPV6_MALFORMED, "ipv6_malformed", 1,                                             \
	  "IPv6 header truncated or inconsistent (version, payload length)")                        \
	X(XLAT_STAT_IPV4_OPTIONS, "ipv4_options", 1, "IPv4 header with options (not yet translated)") \
	X(XLAT_STAT_IPV4_FRAGMENT, "ipv4_fragment", 1, "IPv4 fragment (not yet translated)")        \
	X(XLAT_STAT_IPV6_EXTENSION, "ipv6_extension_header", 1,                                      \
	  "IPv6 extension header or fragment (not yet translated)")                                 \
	X(XLAT_STAT_IPV6_NOT_UNICAST, "ipv6_not_global_unicast", 1,                                  \
	  "IPv6 multicast, link-local or unspecified address (never translated)")                   \
	X(XLAT_STAT_L4_UNSUPPORTED, "l4_unsupported", 1,                                             \
	  "transport protocol other than TCP, UDP, ICMP (not yet translated)")                      \
	X(XLAT_STAT_L4_TRUNCATED, "l4_truncated", 1, "TCP, UDP or ICMP header truncated")           \
	X(XLAT_STAT_ICMP_UNSUPPORTED, "icmp_unsupported", 1,                                         \
	  "ICMP type other than echo request/reply (not yet translated)")                           \
	X(XLAT_STAT_UDP_ZERO_CSUM, "udp_zero_checksum", 1,                                           \
	  "IPv4 UDP without checksum (IPv6 requires one)")                                          \
	X(XLAT_STAT_NO_SRC_MAPPING, "no_source_mapping", 1,                                          \
	  "source address in neither the EAMT nor pool6")                                           \
	X(XLAT_STAT_NO_DST_MAPPING, "no_destination_mapping", 1,                                     \
	  "destination address in neither the EAMT nor pool6")                                      \
	X(XLAT_STAT_NO_SETTINGS, "not_configured", 1, "settings map empty (daemon never ran)")      \
	X(XLAT_STAT_HELPER_FAILED, "kernel_helper_failed", 1,                                        \
	  "a BPF helper failed to resize or rewrite the packet (out of memory)")

#define XLAT64_STAT_ENUM_ENTRY(id, label, is_drop, help) id,
enum xlat_stat { XLAT64_STATS(XLAT64_STAT_ENUM_ENTRY) XLAT_STAT_MAX };
#undef XLAT64_STAT_ENUM_ENTRY

struct xlat_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* XLAT64_ABI_H */
