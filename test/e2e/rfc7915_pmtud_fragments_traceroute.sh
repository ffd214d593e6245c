#!/bin/bash
# RFC 7915 in full, end to end: ICMP errors, fragments and path MTU discovery across the translator.
#
#   client (IPv6 only)        router (xlat64d)              mid (IPv4 router)          server (IPv4)
#   2001:db8:1::2 ── veth ── 2001:db8:1::1  192.0.2.1 ── veth ── 192.0.2.2  203.0.113.1 ── veth (mtu 1400) ── 203.0.113.2
#
# The client is 198.51.100.2 by an EAM entry; it reaches the server at pool6 + 203.0.113.2.
# - traceroute (UDP and ICMP) from the client shows the router as hop 1, the mid router's IPv4
#   address (in pool6 form) as hop 2 and the server as hop 3: the translator is exactly one hop,
#   and ICMPv4 Time Exceeded / Port Unreachable come back as ICMPv6 with the probe they quote.
# - UDP datagrams of 4000 and 60000 bytes (fragmented on both sides, translated fragment by
#   fragment) are echoed whole.
# - a 50 MB TCP transfer each way completes with its content verified, although the mid router's
#   link to the server has MTU 1400 while the server advertises MSS 1460: the client's first full
#   segments only get through once the mid router's Fragmentation Needed came back translated into
#   Packet Too Big (path MTU discovery across the translator).
source "$(dirname "$0")/lib.sh"

new_ns CLIENT client
new_ns E2E_ROUTER router
new_ns MID mid
new_ns SERVER server
link_ns "$CLIENT" eth0 "$E2E_ROUTER" to-client
link_ns "$E2E_ROUTER" to-mid "$MID" eth0
link_ns "$MID" to-server "$SERVER" eth0
enable_forwarding "$E2E_ROUTER"
enable_forwarding "$MID"
ip -n "$MID" link set to-server mtu 1400
ip -n "$SERVER" link set eth0 mtu 1400

ip -n "$CLIENT" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$CLIENT" route add default via 2001:db8:1::1
ip -n "$E2E_ROUTER" addr add 2001:db8:1::1/64 dev to-client nodad
ip -n "$E2E_ROUTER" addr add 192.0.2.1/24 dev to-mid
ip -n "$E2E_ROUTER" route add 203.0.113.0/24 via 192.0.2.2
ip -n "$MID" addr add 192.0.2.2/24 dev eth0
ip -n "$MID" addr add 203.0.113.1/24 dev to-server
ip -n "$MID" route add 198.51.100.0/24 via 192.0.2.1
ip -n "$SERVER" addr add 203.0.113.2/24 dev eth0
# The server advertises MSS 1460 although its link has MTU 1400, so the client's full-size
# segments must be cut down by path MTU discovery, not by the MSS.
ip -n "$SERVER" route add default via 203.0.113.1 advmss 1460

write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 203.0.113.2 8080
SERVER6=2001:db8:64::cb00:7102 # 203.0.113.2 in pool6
MID6=2001:db8:64::c000:202     # 192.0.2.2 in pool6

# traceroute_hops ARGS...: the hop addresses, one per line ("*" for no answer).
traceroute_hops() {
	in_ns "$CLIENT" traceroute -6 -n -q 1 -w 2 -m 5 "$@" "$SERVER6" | tail -n +2 | awk '{print $2}'
}
expect_hops() {
	local what=$1 hops
	shift
	hops=$(traceroute_hops "$@" | paste -sd' ')
	log "traceroute $*: $hops"
	expect "$what: hops are router, mid router (as pool6 + 192.0.2.2), server" \
		test "$hops" = "2001:db8:1::1 $MID6 $SERVER6"
}
# The ICMPv4 errors this test makes the IPv4 side send: Fragmentation Needed from the mid router,
# and with traceroute also Time Exceeded and Port Unreachable.
expected_icmp_errors=1
if command -v traceroute >/dev/null; then
	expect_hops "UDP traceroute"
	expect_hops "ICMP traceroute" -I
	expected_icmp_errors=4
else
	# scripts/deps installs it; only the bare vmlab guest lacks it.
	log "SKIP: traceroute is not installed (the translation of its errors is not checked here)"
fi

expect "UDP datagrams of 4000 bytes, fragmented both ways, echoed whole" \
	in_ns "$CLIENT" $TRAFFIC udp --to "$SERVER6" --port 8080 --count 5 --size 4000
expect "UDP datagrams of 60000 bytes, fragmented both ways, echoed whole" \
	in_ns "$CLIENT" $TRAFFIC udp --to "$SERVER6" --port 8080 --count 3 --size 60000

expect "TCP transfer of 50 MB each way through the MTU-1400 hop, content verified" \
	in_ns "$CLIENT" $TRAFFIC tcp --to "$SERVER6" --port 8080 --bytes 50000000
route=$(in_ns "$CLIENT" ip -6 route get "$SERVER6")
log "client: $route"
expect "the client learned path MTU 1420 from the translated Fragmentation Needed" \
	grep -q 'mtu 1420' <<<"$route"

ctl stats
expect "ICMPv4 errors were translated (at least $expected_icmp_errors)" \
	test "$(stat_packets icmp_error_translated_4to6)" -ge "$expected_icmp_errors"
expect "IPv4 fragments were translated" test "$(stat_packets fragment_translated_4to6)" -ge 10
expect "IPv6 fragments were translated" test "$(stat_packets fragment_translated_6to4)" -ge 10
