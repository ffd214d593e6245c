#!/bin/bash
# Stateful NAT64 with the ingress fast path on an interface that is re-created while xlat64d runs
# (a PPP session that reconnects, a veth made again): the NAT64 table trusts internal sources
# from a fast path interface by index, and only while xlat64's program is on it; the daemon
# watches link events and reconciles, so the program is attached again without a reload.
#
#   client (subscriber hosts) ── to-client ── router (xlat64d) ── server 198.51.100.10
#          eth1 ── late0 (listed, created only once the daemon runs)
#
# Checks: with the daemon stopped (SIGSTOP: a deterministic window before the re-attach), a
# re-created to-client has a new index, no program and no trust: IPv4 from the subscriber's
# internal address sent on it never reaches the server and is counted by the table's spoofed-source
# drop. Once the daemon runs on, it logs why it reconciles and attaches the program within a few
# seconds; the trusted set then holds the new index and not the old; spoofing is now dropped by
# the program (ingress_internal_source) and still never delivered; the subscriber's traffic takes
# the fast path and is NATed. The same without the stop. A listed interface that did not exist at
# start gets the fast path and the trust when it appears. No reload anywhere. Last, more link
# events than the daemon's socket holds (hundreds of veth pairs made and deleted while it is
# stopped, to-client re-created among them): the overrun (ENOBUFS) alone makes it reconcile, and
# to-client is attached and trusted again.
# Lab: test/e2e/lib.sh, nat64_lab.
source "$(dirname "$0")/lib.sh"

nat64_lab
# The client side has no IPv4 address: reverse-path filtering off there, and on the interfaces
# created later (default), or the fast path could not be attached to them.
in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
	net.ipv4.conf.to-client.rp_filter=0
write_fast_path_nat64_config "$E2E_TMP/xlat64.yaml" 1 "to-client, late0"
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080
SERVER6=2001:db8:64::c633:640a # 198.51.100.10 in pool6
SUBSCRIBER=2001:db8:100::a
expect "late0 does not exist yet: a warning" \
	grep -q 'translation.ingress_interfaces: late0: no such interface' "$E2E_TMP/xlat64d.log"

count_udp_9000 "$SERVER"
server_count() { udp_9000_count "$SERVER"; }
router_ifindex() { in_router ip -j link show dev "$1" | $PYTHON -c 'import json, sys; print(json.load(sys.stdin)[0]["ifindex"])'; }
# The trusted_ifaces set as nft prints it, sorted: interface names, or numbers for indexes no
# interface has (a deleted interface's).
trusted() {
	in_ns "$E2E_ROUTER" nft -j list set ip xlat64 trusted_ifaces | $PYTHON -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "set" in o:
        print(",".join(sorted(str(e) for e in o["set"].get("elem", []))))'
}
# The raw indexes of trusted_ifaces, sorted (nft --debug=netlink prints each element as a
# hexadecimal word).
trusted_ifindexes() {
	in_ns "$E2E_ROUTER" nft --debug=netlink list set ip xlat64 trusted_ifaces 2>/dev/null |
		sed -n 's/^[[:space:]]*element \([0-9a-f]*\) .*/\1/p' | while read -r hex; do
		echo $((16#$hex))
	done | sort -n | paste -sd,
}
# The packets the table's spoofed-source rule dropped, read with nft (works while the daemon is
# stopped).
nft_spoofed_drops() {
	in_ns "$E2E_ROUTER" nft list chain ip xlat64 prerouting |
		sed -n 's/.*iif != @trusted_ifaces counter packets \([0-9]*\).*/\1/p'
}
ingress_packets() {
	ctl stats --json | $PYTHON -c '
import json, sys
print(next(c["packets"] for c in json.load(sys.stdin)["ingress"] if c["name"] == sys.argv[1]))' "$1"
}
# ingress_state NAME: "STATE IFINDEX TRUSTED" of a configured ingress interface in xlat64ctl
# status (TRUSTED: whether the NAT64 table accepts internal sources from it, "-" if not said).
ingress_state() {
	ctl status --json | $PYTHON -c '
import json, sys
for i in json.load(sys.stdin)["ingress_interfaces"]:
    if i["name"] == sys.argv[1]:
        print(i["state"], i.get("ifindex", 0), i.get("nat64_trusted", "-"))' "$1"
}
# wait_attached NAME IFINDEX: up to 5 s for the fast path on NAME at IFINDEX, and the NAT64
# table's trust in it, without a reload.
wait_attached() {
	local i
	for i in $(seq 50); do
		[[ $(ingress_state "$1") == "attached $2 True" ]] && return 0
		sleep 0.1
	done
	log "$1: $(ingress_state "$1") (wanted attached $2 True)"
	return 1
}
has_program() { in_router tc filter show dev "$1" ingress | grep -q 'xlat64_ingress'; }

# recreate_client_link: to-client and the client's eth0 deleted and made again (new indexes), with
# the addresses and routes of nat64_lab, and an IPv4 path from the client to the server through
# to-client for the spoofed datagrams (the router has no IPv4 address on that side).
recreate_client_link() {
	ip -n "$E2E_ROUTER" link del to-client
	link_ns "$CLIENT" eth0 "$E2E_ROUTER" to-client
	in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.to-client.rp_filter=0
	ip -n "$CLIENT" addr add 2001:db8:1::2/64 dev eth0 nodad
	ip -n "$CLIENT" addr add "$SUBSCRIBER/128" dev eth0 nodad
	ip -n "$CLIENT" route add default via 2001:db8:1::1
	ip -n "$E2E_ROUTER" addr add 2001:db8:1::1/64 dev to-client nodad
	ip -n "$E2E_ROUTER" route add 2001:db8:100::/56 via 2001:db8:1::2
	spoof_path
}
spoof_path() {
	local mac
	mac=$(ip -n "$E2E_ROUTER" -j link show dev to-client | $PYTHON -c 'import json, sys; print(json.load(sys.stdin)[0]["address"])')
	ip -n "$CLIENT" addr add "$internal/32" dev eth0
	ip -n "$CLIENT" route add 198.51.100.0/24 dev eth0 src "$internal"
	ip -n "$CLIENT" neigh replace 198.51.100.10 lladdr "$mac" dev eth0 nud permanent
}
# send_spoofed COUNT: COUNT UDP datagrams from the subscriber's internal address, each a new flow,
# from the client through to-client to the server's port 9000.
send_spoofed() {
	send_udp_9000 "$CLIENT" "$internal" "$1"
	sleep 0.5
}

expect "the subscriber's UDP goes through the fast path and is NATed" \
	nat64_flow udp "$SUBSCRIBER" 0 "$SERVER6"
internal=$(subscriber_internal 2001:db8:100::/64)
log "the subscriber's internal address: $internal"
spoof_path
old_index=$(router_ifindex to-client)
expect "to-client (ifindex $old_index) carries the fast path" wait_attached to-client "$old_index"
expect "the trusted set holds to-client's index ($(trusted_ifindexes))" \
	test "$(trusted_ifindexes)" == "$old_index"
expect "nft prints it by name ($(trusted))" test "$(trusted)" == to-client

# --- re-created while the daemon cannot react: untrusted, no program ---------------------------
kill -STOP "$E2E_DAEMON_PID"
recreate_client_link
new_index=$(router_ifindex to-client)
expect "to-client was re-created with a new index ($old_index -> $new_index)" \
	test "$new_index" != "$old_index"
expect "no program on the new to-client yet" fails has_program to-client
expect "its new index is not trusted ($(trusted_ifindexes))" test "$(trusted_ifindexes)" == "$old_index"
received_before=$(server_count)
drops_before=$(nft_spoofed_drops)
send_spoofed 5
received=$(server_count)
drops=$(nft_spoofed_drops)
expect "no spoofed datagram from the re-created to-client reached the server ($received_before -> $received)" \
	test "$received" -eq "$received_before"
expect "the table dropped each as a spoofed source ($drops_before -> $drops)" \
	test "$((drops - drops_before))" -eq 5
kill -CONT "$E2E_DAEMON_PID"

expect "the daemon attaches the fast path to the new to-client without a reload" \
	wait_attached to-client "$new_index"
expect "tc shows xlat64's program on to-client" has_program to-client
expect "the trusted set holds the new index, not the old ($(trusted_ifindexes))" \
	test "$(trusted_ifindexes)" == "$new_index"
expect "nft prints it by name ($(trusted))" test "$(trusted)" == to-client
expect "the daemon logged why it reconciled" \
	grep -qE 'link watch: reconciling the running configuration: .*to-client RTM_(DEL|NEW)LINK' \
	"$E2E_TMP/xlat64d.log"

# --- after the re-attach: the program drops the spoofing, the subscriber is NATed --------------
program_drops_before=$(ingress_packets ingress_internal_source)
received_before=$(server_count)
send_spoofed 3
program_drops=$(ingress_packets ingress_internal_source)
expect "no spoofed datagram reached the server after the re-attach ($received_before -> $(server_count))" \
	test "$(server_count)" -eq "$received_before"
expect "the program dropped them at ingress ($program_drops_before -> $program_drops)" \
	test "$((program_drops - program_drops_before))" -eq 3
fast_before=$(ingress_packets ingress_6to4)
spoofed_before=$(stat_packets nat64_spoofed_internal_source)
: >"$E2E_TMP/peers-$SERVER.txt"
expect "the subscriber's UDP goes through the re-created to-client" \
	nat64_flow udp "$SUBSCRIBER" 0 "$SERVER6"
expect "the server saw it from the public pool" \
	grep -qE '^udp 203\.0\.113\.[01] ' "$E2E_TMP/peers-$SERVER.txt"
expect "the fast path translated it ($fast_before -> $(ingress_packets ingress_6to4))" \
	test "$(ingress_packets ingress_6to4)" -gt "$fast_before"
expect "none of it was taken for a spoofed source" \
	test "$(stat_packets nat64_spoofed_internal_source)" -eq "$spoofed_before"

# --- re-created while the daemon runs --------------------------------------------------------
recreate_client_link
third_index=$(router_ifindex to-client)
expect "re-created again while running: attached within seconds (ifindex $third_index)" \
	wait_attached to-client "$third_index"
expect "the trusted set follows ($(trusted_ifindexes))" test "$(trusted_ifindexes)" == "$third_index"
received_before=$(server_count)
send_spoofed 3
expect "spoofing is still never delivered" test "$(server_count)" -eq "$received_before"
expect "the subscriber's UDP goes through" nat64_flow udp "$SUBSCRIBER" 0 "$SERVER6"

# --- a listed interface created after the start --------------------------------------------------
expect "late0 is missing" test "$(ingress_state late0)" == "missing 0 -"
link_ns "$E2E_ROUTER" late0 "$CLIENT" eth1
late_index=$(router_ifindex late0)
expect "late0 gets the fast path when it appears, without a reload" wait_attached late0 "$late_index"
expect "tc shows xlat64's program on late0" has_program late0
want=$(printf '%s\n' "$third_index" "$late_index" | sort -n | paste -sd,)
expect "late0 joined the trusted set ($(trusted_ifindexes))" test "$(trusted_ifindexes)" == "$want"
expect "no reload was ever run" fails grep -q 'reload (' "$E2E_TMP/xlat64d.log"

# --- more link events than the socket holds: the daemon reconciles all the same ----------------
# With the daemon stopped, hundreds of unlisted veth pairs come and go (several events each,
# more than the socket's receive buffer holds) and to-client is re-created among them: its events
# may be among those lost (ENOBUFS), so the daemon must reconcile on the overrun itself.
kill -STOP "$E2E_DAEMON_PID"
batch=$E2E_TMP/flood.batch
for i in $(seq 600); do echo "link add fl$i type veth peer name fp$i"; done >"$batch"
ip -n "$E2E_ROUTER" -batch "$batch"
recreate_client_link
for i in $(seq 600); do echo "link del fl$i"; done >"$batch"
ip -n "$E2E_ROUTER" -batch "$batch"
fourth_index=$(router_ifindex to-client)
kill -CONT "$E2E_DAEMON_PID"
expect "after the flood to-client is attached again (ifindex $fourth_index)" \
	wait_attached to-client "$fourth_index"
expect "and trusted by its new index ($(trusted_ifindexes))" \
	test "$(trusted_ifindexes)" == "$(printf '%s\n' "$fourth_index" "$late_index" | sort -n | paste -sd,)"
expect "the daemon logged the overrun as its reason" \
	grep -q 'link watch: reconciling the running configuration: .*link events lost (socket receive buffer overrun, ENOBUFS)' \
	"$E2E_TMP/xlat64d.log"
grep -E "link watch|reconcile: [0-9]+ change" "$E2E_TMP/xlat64d.log"
