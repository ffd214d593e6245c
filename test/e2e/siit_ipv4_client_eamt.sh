#!/bin/bash
# An IPv4-only client reaches an IPv6-only server through an EAM entry (RFC 7757; SIIT-DC, RFC
# 7755) — ping, a UDP exchange and a TCP transfer with its content verified — and xlat64ctl stats
# counts the packets.
#
#   client (IPv4 only)             router (xlat64d)               server (IPv6 only)
#   203.0.113.2/24 ── veth ── 203.0.113.1   2001:db8:2::1 ── veth ── 2001:db8:2::2/64
#
# The server is published to IPv4 as 198.51.100.2 (EAM 198.51.100.0/24 <-> 2001:db8:2::/120); the
# server sees the client at pool6 + 203.0.113.2.
source "$(dirname "$0")/lib.sh"

lab_ipv4_client_ipv6_server

write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:2::/120
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 2001:db8:2::2 8080

SERVER_VIA_EAM=198.51.100.2
expect_traffic_flows 4 "$SERVER_VIA_EAM"

CLIENT_VIA_POOL6=2001:db8:64::cb00:7102 # 203.0.113.2 embedded in pool6
expect "the server saw the client as $CLIENT_VIA_POOL6" \
	grep -q "^tcp $CLIENT_VIA_POOL6 " "$E2E_TMP/peers-$SERVER.txt"

ctl stats
translated_4to6=$(stat_packets translated_4to6)
translated_6to4=$(stat_packets translated_6to4)
expect "stats count IPv4->IPv6 packets ($translated_4to6)" test "$translated_4to6" -ge 105
expect "stats count IPv6->IPv4 packets ($translated_6to4)" test "$translated_6to4" -ge 105
