#!/bin/bash
# An IPv6-only client reaches an IPv4-only server through pool6 (RFC 6052) — ping, a UDP exchange
# and a TCP transfer with its content verified — and xlat64ctl stats counts the packets.
#
#   client (IPv6 only)          router (xlat64d)                server (IPv4 only)
#   2001:db8:1::2/64 ── veth ── 2001:db8:1::1   192.0.2.1 ── veth ── 192.0.2.2/24
#
# The client is mapped to IPv4 by an EAM entry (2001:db8:1::/120 <-> 198.51.100.0/24), so the
# server sees it as 198.51.100.2; the client reaches the server at pool6 + 192.0.2.2.
source "$(dirname "$0")/lib.sh"

lab_ipv6_client_ipv4_server

write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 192.0.2.2 8080

SERVER_VIA_POOL6=2001:db8:64::c000:202 # 192.0.2.2 embedded in pool6 (RFC 6052 /96)
expect_traffic_flows 6 "$SERVER_VIA_POOL6"

expect "the server saw the client as its EAM address 198.51.100.2" \
	grep -q '^tcp 198.51.100.2 ' "$E2E_TMP/peers-$SERVER.txt"
expect "the server saw UDP from 198.51.100.2 too" \
	grep -q '^udp 198.51.100.2 ' "$E2E_TMP/peers-$SERVER.txt"

ctl stats
translated_6to4=$(stat_packets translated_6to4)
translated_4to6=$(stat_packets translated_4to6)
# 5 echo requests + 100 datagrams + the TCP stream at the very least.
expect "stats count IPv6->IPv4 packets ($translated_6to4)" test "$translated_6to4" -ge 105
expect "stats count IPv4->IPv6 packets ($translated_4to6)" test "$translated_4to6" -ge 105
ctl status
