#!/bin/bash
# Stateful NAT64: an IPv4 packet whose source is a subscriber's internal address is the
# subscriber's only when it comes out of the translator. From any other interface it is spoofed;
# loose reverse-path filtering accepts it (the internal pool is routed into xlat64), and without
# the drop in xlat64's prerouting chain it would be SNATed to the subscriber's public address and
# port block: traffic traced to a subscriber who never sent it.
#
#   client (subscriber hosts) ── router (xlat64d) ── server 198.51.100.10
#                                   │ to-outside 192.0.2.1/24, rp_filter 2 (loose)
#                          outside 192.0.2.2/24, plus the subscriber's internal address
#
# Checks: genuine subscriber traffic is NATed; UDP from the outside namespace with the subscriber's
# internal address as source never reaches the server and each datagram is counted in
# nat64_spoofed_internal_source (xlat64ctl stats), not in the pool's inbound drops; the same
# datagrams from a source outside the pool are forwarded (the path itself works); a reload that
# adds an ingress fast path interface updates the table's trusted interfaces in place (same
# table, no rebuild), the fast path's own packets are NATed, and spoofing is still dropped.
# Lab: test/e2e/lib.sh, nat64_lab, plus the outside namespace.
source "$(dirname "$0")/lib.sh"

nat64_lab
new_ns OUTSIDE outside
link_ns "$E2E_ROUTER" to-outside "$OUTSIDE" eth0
ip -n "$E2E_ROUTER" addr add 192.0.2.1/24 dev to-outside
ip -n "$OUTSIDE" addr add 192.0.2.2/24 dev eth0
ip -n "$OUTSIDE" route add default via 192.0.2.1
# Loose filtering where packets arrive from IPv4 neighbours (Debian's default is 2 on all); off on
# the client side, which has no IPv4 address and later carries the ingress fast path.
in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.to-client.rp_filter=0 \
	net.ipv4.conf.to-outside.rp_filter=2 net.ipv4.conf.to-server.rp_filter=2

nat64_config() { write_fast_path_nat64_config "$E2E_TMP/xlat64.yaml" 1 "$1"; }
nat64_config ""
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080
SERVER6=2001:db8:64::c633:640a # 198.51.100.10 in pool6
SUBSCRIBER=2001:db8:100::a

count_udp_9000 "$SERVER"
server_count() { udp_9000_count "$SERVER"; }

expect "a subscriber's UDP goes through and is NATed" nat64_flow udp "$SUBSCRIBER" 0 "$SERVER6"
expect "the server saw it from the public pool" \
	grep -qE '^udp 203\.0\.113\.[01] ' "$E2E_TMP/peers-$SERVER.txt"
internal=$(subscriber_internal 2001:db8:100::/64)
log "the subscriber's internal address: $internal"

# send_from SOURCE COUNT: COUNT UDP datagrams from SOURCE in the outside namespace to the
# server's port 9000.
send_from() { send_udp_9000 "$OUTSIDE" "$1" "$2"; }

# expect_spoofing_dropped COUNT: COUNT datagrams with the subscriber's internal address from the
# outside: none reaches the server, each is counted.
expect_spoofing_dropped() {
	local count=$1 before received_before after received
	before=$(stat_packets nat64_spoofed_internal_source)
	received_before=$(server_count)
	send_from "$internal" "$count"
	sleep 0.5
	after=$(stat_packets nat64_spoofed_internal_source)
	received=$(server_count)
	expect "no datagram from the spoofed $internal reached the server ($received_before -> $received)" \
		test "$received" -eq "$received_before"
	expect "each was counted in nat64_spoofed_internal_source ($before -> $after)" \
		test "$((after - before))" -eq "$count"
}

ip -n "$OUTSIDE" addr add "$internal/32" dev eth0
expect_spoofing_dropped 5
inbound=$(ctl pool --json | $PYTHON -c 'import json, sys; print(json.load(sys.stdin)["inbound_drops"])')
expect "the pool's inbound drops counted none of them ($inbound)" test "$inbound" -eq 0
ctl pool | tee "$E2E_TMP/pool.txt"
expect "xlat64ctl pool shows them with the drops" \
	grep -qE 'spoofed internal source 5$' "$E2E_TMP/pool.txt"
ctl stats | tee "$E2E_TMP/stats.txt"
expect "xlat64ctl stats shows the drop by name" \
	grep -qE '^ *nat64_spoofed_internal_source +5 ' "$E2E_TMP/stats.txt"

# The control: the same datagrams from the outside namespace's own address are forwarded.
received_before=$(server_count)
send_from 192.0.2.2 5
sleep 0.5
received=$(server_count)
expect "the same datagrams from 192.0.2.2 reach the server ($received_before -> $received)" \
	test "$((received - received_before))" -eq 5
expect "the subscriber's UDP still goes through" nat64_flow udp "$SUBSCRIBER" 0 "$SERVER6"

# The ingress fast path on the client side: its packets arrive from to-client, whose index joins
# the trusted interfaces in place once the program is on it; the table stays (a rebuild would
# create one with a new handle). The device is trusted by name, in the rule itself.
table_handle() { in_ns "$E2E_ROUTER" nft -a list table ip xlat64 | sed -n '1s/.*# handle //p'; }
# nft prints the set's interface indexes by name.
trusted() {
	in_ns "$E2E_ROUTER" nft list set ip xlat64 trusted_ifaces | { grep -o '"[^"]*"' || true; } |
		tr -d '"' | sort | paste -sd,
}
expect "the rule trusts the device by name" \
	grep -q 'iifname != "xlat64" iif != @trusted_ifaces counter' \
	<(in_ns "$E2E_ROUTER" nft list chain ip xlat64 prerouting)
handle_before=$(table_handle)
trusted_before=$(trusted)
expect "no ingress interface is trusted ($trusted_before)" test -z "$trusted_before"
nat64_config to-client
expect "reload adding to-client to translation.ingress_interfaces" ctl_reload "$E2E_TMP/reload.txt"
trusted_after=$(trusted)
expect "to-client joined the trusted interfaces ($trusted_after)" test "$trusted_after" == to-client
trusted_after_attach() {
	grep -A1 'reconcile: attach the ingress fast path on to-client' "$E2E_TMP/xlat64d.log" |
		grep -q 'reconcile: trust internal sources in table ip xlat64 from ingress interfaces to-client (ifindex'
}
expect "the reload trusted it right after attaching its program" trusted_after_attach
handle_after=$(table_handle)
expect "the table was updated in place, not rebuilt (handle $handle_before -> $handle_after)" \
	test -n "$handle_before" -a "$handle_after" == "$handle_before"
fast_before=$(ctl stats --json | $PYTHON -c '
import json, sys
print(next(c["packets"] for c in json.load(sys.stdin)["ingress"] if c["name"] == "ingress_6to4"))')
expect "the subscriber's UDP, now translated at to-client's ingress, is NATed" \
	nat64_flow udp "$SUBSCRIBER" 0 "$SERVER6"
fast_after=$(ctl stats --json | $PYTHON -c '
import json, sys
print(next(c["packets"] for c in json.load(sys.stdin)["ingress"] if c["name"] == "ingress_6to4"))')
expect "the fast path translated it ($fast_before -> $fast_after)" test "$fast_after" -gt "$fast_before"
expect_spoofing_dropped 3
