#!/bin/bash
# Stateful NAT64 with the ingress fast path (translation.ingress_interfaces): a subscriber's
# upstream packets are translated at the tc ingress of the router's client-facing interface (its
# host gets an internal address there, dynamic mode hands out the block on the first packet),
# then NATed by xlat64's nftables table like any IPv4 packet; the replies, addressed to the public
# pool, are de-NATed by conntrack after tc ingress and take the device path back.
# Lab as nat64_subscribers.sh (test/e2e/lib.sh, nat64_lab).
#
# Checks: the first SYN of a brand-new subscriber is answered without a retransmission; TCP
# (content verified), UDP and ping work; the server sees the subscriber's public address; the
# fast path counted the upstream packets and none of the replies, which the device path
# translated; none of them was dropped as a spoofed internal source.
source "$(dirname "$0")/lib.sh"

nat64_lab
# The client-facing interface has no IPv4 address: reverse-path filtering must be off there.
in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.to-client.rp_filter=0
write_fast_path_nat64_config "$E2E_TMP/xlat64.yaml" 4 "to-client, to-server"
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080
SERVER6=2001:db8:64::c633:640a # 198.51.100.10 in pool6

count_syns "$SERVER"
ingress_packets() {
	ctl stats --json | $PYTHON -c '
import json, sys
for c in json.load(sys.stdin).get("ingress", []):
    if c["name"] == sys.argv[1]:
        print(c["packets"]); break
else:
    sys.exit("no ingress counter " + sys.argv[1])' "$1"
}

expect "the first TCP flow of a brand-new subscriber goes through" \
	nat64_flow tcp 2001:db8:100::a 0 "$SERVER6"
syns=$(syn_count "$SERVER")
expect "the server saw exactly one SYN: the block was handed out at ingress, no retransmission ($syns)" \
	test "$syns" -eq 1
expect "UDP from the same subscriber" nat64_flow udp 2001:db8:100::a 0 "$SERVER6"
expect "ping from the subscriber's host" \
	in_ns "$CLIENT" ping -6 -c 3 -i 0.2 -W 2 -q -I 2001:db8:100::a "$SERVER6"
expect "a TCP transfer of 4 MB each way, content verified" \
	in_ns "$CLIENT" $TRAFFIC tcp --to "$SERVER6" --port 8080 --bytes 4000000 --source 2001:db8:100::a
expect "the server saw the subscriber from its public address" \
	grep -qE '^tcp 203\.0\.113\.[01] ' "$E2E_TMP/peers-$SERVER.txt"

ctl stats
ingress_6to4=$(ingress_packets ingress_6to4)
ingress_4to6=$(ingress_packets ingress_4to6)
expect "the fast path translated the upstream packets ($ingress_6to4)" test "$ingress_6to4" -ge 100
expect "the replies, to the public pool, were not the fast path's ($ingress_4to6)" \
	test "$ingress_4to6" -eq 0
expect "the device path translated the replies" test "$(stat_packets translated_4to6)" -ge 100
expect "nothing was dropped as not admitted" test "$(stat_packets nat64_not_admitted)" -eq 0
# The fast path's packets enter netfilter from to-client with internal sources: a trusted
# interface, so none of them was taken for a spoofed source.
expect "no fast path packet was dropped as a spoofed internal source" \
	test "$(stat_packets nat64_spoofed_internal_source)" -eq 0
