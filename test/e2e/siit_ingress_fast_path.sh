#!/bin/bash
# The ingress fast path (translation.ingress_interfaces): xlat64d attaches the translator to the
# tc ingress of the router's client- and server-facing interfaces, where common packets are
# translated before the first forwarding pass instead of through the xlat64 device.
#  - ping (both ways), UDP and a TCP transfer work, and xlat_ingress_stats show that the fast
#    path carried them in both directions;
#  - what it must leave alone takes the device path and still works: hop limit 1 (the kernel's
#    Time Exceeded comes back) and UDP fragmented by the sender; both are counted as deferred;
#  - a configured interface that does not exist is a warning and shows as missing in the status;
#  - an operator's own filter on the same ingress hook keeps working and survives everything,
#    teardown included; the clsact qdisc stays;
#  - taking an interface out of the list and reloading detaches it there (traffic goes on through
#    the device path); strict rp_filter on an interface to attach makes the reload fail with the
#    fix and keeps the running state; a restart adopts the attachments without a change.
#
#   client (IPv6 only)          router (xlat64d)                server (IPv4 only)
#   2001:db8:1::2/64 ── veth ── 2001:db8:1::1   192.0.2.1 ── veth ── 192.0.2.2/24
#                      to-client (fast path)    to-server (fast path, + the operator's filter)
#
# The client is 198.51.100.2 to IPv4 (EAM 2001:db8:1::/120 <-> 198.51.100.0/24); it reaches the
# server at pool6 + 192.0.2.2.
source "$(dirname "$0")/lib.sh"

lab_ipv6_client_ipv4_server
# Reverse-path filtering the fast path works with: off on to-client (IPv6 only: with no IPv4
# address, even loose filtering would drop the translated packets), loose on to-server.
in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.to-client.rp_filter=0 \
	net.ipv4.conf.to-server.rp_filter=2
# The operator's own filter at priority 5 of to-server ingress (u32: this kernel may lack
# cls_matchall and the gact action). It matches everything and lets it pass.
in_ns "$E2E_ROUTER" tc qdisc add dev to-server clsact
in_ns "$E2E_ROUTER" tc filter add dev to-server ingress prio 5 u32 match u32 0 0 flowid 1:1

SERVER_VIA_POOL6=2001:db8:64::c000:202 # 192.0.2.2 embedded in pool6 (RFC 6052 /96)
CLIENT_VIA_EAM=198.51.100.2
XLAT_HANDLE=0x786c6174

CONFIG=$E2E_TMP/xlat64.yaml
# write_siit_config INTERFACE...: the lab's SIIT configuration with these ingress interfaces.
write_siit_config() {
	local list
	list=$(
		IFS=,
		echo "$*"
	)
	write_config "$CONFIG" <<-YAML
		pool6: 2001:db8:64::/96
		eamt:
		  - ipv4: 198.51.100.0/24
		    ipv6: 2001:db8:1::/120
		translation:
		  ingress_interfaces: [$list]
	YAML
}

# ingress_packets NAME: packets of one ingress counter (ingress_6to4, ingress_4to6,
# ingress_deferred) from xlat64ctl stats --json.
ingress_packets() {
	ctl stats --json | $PYTHON -c '
import json, sys
name = sys.argv[1]
for c in json.load(sys.stdin).get("ingress", []):
    if c["name"] == name:
        print(c["packets"]); break
else:
    sys.exit("no ingress counter " + name)' "$1"
}

# ingress_state NAME: the state xlat64ctl status --json gives a configured ingress interface.
ingress_state() {
	ctl status --json | $PYTHON -c '
import json, sys
for i in json.load(sys.stdin).get("ingress_interfaces", []):
    if i["name"] == sys.argv[1]:
        print(i["state"]); break
else:
    print("unlisted")' "$1"
}

# ours_on DEV: the filter at xlat64's handle and priority 1 of DEV's ingress runs xlat64_ingress.
ours_on() {
	in_ns "$E2E_ROUTER" tc filter show dev "$1" ingress >"$E2E_TMP/tc-$1.txt"
	grep -q "pref 1 bpf .*handle $XLAT_HANDLE .*xlat64_ingress" "$E2E_TMP/tc-$1.txt"
}
not_ours_on() { ! ours_on "$1"; }
# ingress_prog_id DEV: the id of the program at xlat64's ingress handle on DEV.
ingress_prog_id() {
	in_ns "$E2E_ROUTER" tc filter show dev "$1" ingress | grep "handle $XLAT_HANDLE" | sed -nE 's/.* id ([0-9]+).*/\1/p'
}
# (grep reads everything: with -q it could stop early, and pipefail would see tc's SIGPIPE.)
operator_filter_on_to_server() {
	in_ns "$E2E_ROUTER" tc filter show dev to-server ingress | grep -c "pref 5 u32" >/dev/null
}
clsact_on() { in_ns "$E2E_ROUTER" tc qdisc show dev "$1" | grep -c clsact >/dev/null; }
ctl_says() { ctl "$1" | tee "$E2E_TMP/ctl.out" && grep -qE -- "$2" "$E2E_TMP/ctl.out"; }

# --- start: both interfaces, and one that does not exist ---------------------------------------
write_siit_config to-client to-server nosuch0
start_daemon "$CONFIG"
start_server "$SERVER" 192.0.2.2 8080

expect "xlat64_ingress is attached at handle $XLAT_HANDLE, priority 1 of to-client ingress" ours_on to-client
expect "and of to-server ingress" ours_on to-server
expect "the operator's u32 filter on to-server is still there" operator_filter_on_to_server
expect "the missing interface is logged as a warning" \
	grep -q 'translation.ingress_interfaces: nosuch0: no such interface' "$E2E_TMP/xlat64d.log"
ctl status
expect "status: to-client attached" test "$(ingress_state to-client)" = attached
expect "status: to-server attached" test "$(ingress_state to-server)" = attached
expect "status: nosuch0 missing" test "$(ingress_state nosuch0)" = missing
expect "xlat64ctl status shows the ingress lines" \
	ctl_says status 'nosuch0: missing'

# --- traffic through the fast path ---------------------------------------------------------------
expect_traffic_flows 6 "$SERVER_VIA_POOL6"
expect "ping from the IPv4 server to the client's EAM address $CLIENT_VIA_EAM" \
	in_ns "$SERVER" ping -4 -c 5 -i 0.2 -W 2 -q "$CLIENT_VIA_EAM"
expect "the server saw the client as $CLIENT_VIA_EAM" \
	grep -q "^tcp $CLIENT_VIA_EAM " "$E2E_TMP/peers-$SERVER.txt"

ctl stats
ingress_6to4=$(ingress_packets ingress_6to4)
ingress_4to6=$(ingress_packets ingress_4to6)
# 5 echo requests + 100 datagrams + the TCP stream (+ the server's 5 echo replies) at least.
expect "the fast path translated IPv6->IPv4 at to-client ingress ($ingress_6to4 packets)" \
	test "$ingress_6to4" -ge 110
expect "the fast path translated IPv4->IPv6 at to-server ingress ($ingress_4to6 packets)" \
	test "$ingress_4to6" -ge 110
expect "translated_6to4 includes the fast path's packets" \
	test "$(stat_packets translated_6to4)" -ge "$ingress_6to4"

# --- what the fast path leaves to the device path --------------------------------------------------
deferred_before=$(ingress_packets ingress_deferred)
# Hop limit 1: the router may not forward it; the device path lets the kernel answer Time
# Exceeded (from the router's own address, translated by nothing: it is IPv6 to the client).
in_ns "$CLIENT" ping -6 -c 1 -t 1 -W 2 "$SERVER_VIA_POOL6" >"$E2E_TMP/ping-hl1.txt" 2>&1 || true
cat "$E2E_TMP/ping-hl1.txt"
expect "hop limit 1: the client gets Time Exceeded from the router" \
	grep -qiE 'time exceeded|Hop limit' "$E2E_TMP/ping-hl1.txt"
expect "UDP datagrams of 4000 bytes, fragmented by the sender, echoed whole (device path)" \
	in_ns "$CLIENT" $TRAFFIC udp --to "$SERVER_VIA_POOL6" --port 8080 --count 5 --size 4000
deferred_after=$(ingress_packets ingress_deferred)
# The hop-limit-1 packet and the client's 5 x 3 IPv6 fragments at least (the server's IPv4
# fragments, 5 x 3 more with its MTU of 1500, are deferred too).
expect "the fast path deferred them to the device path ($deferred_before -> $deferred_after)" \
	test "$((deferred_after - deferred_before))" -ge 16
expect "the device path translated the fragments" \
	test "$(stat_packets fragment_translated_6to4)" -ge 10

# --- restart: the attachments are adopted, nothing changes --------------------------------------
id_client=$(ingress_prog_id to-client)
stop_daemon
expect "SIGTERM leaves the fast path attached on to-client" ours_on to-client
expect "SIGTERM leaves the fast path attached on to-server" ours_on to-server
expect "translation goes on through the fast path with no daemon" \
	in_ns "$CLIENT" ping -6 -c 2 -i 0.2 -W 2 -q "$SERVER_VIA_POOL6"
: >"$E2E_TMP/xlat64d.log"
start_daemon "$CONFIG"
expect "the new daemon adopts everything: reconcile: 0 changes" \
	grep -q 'reconcile: 0 changes' "$E2E_TMP/xlat64d.log"
expect "the same program is still attached on to-client" test "$(ingress_prog_id to-client)" = "$id_client"

# --- reload without to-server: detached there, only there ------------------------------------------
write_siit_config to-client
expect "a reload without to-server succeeds" ctl_says reload 'applied, 1 change$'
expect "our filter is gone from to-server" not_ours_on to-server
expect "the operator's filter on to-server stays" operator_filter_on_to_server
expect "the clsact qdisc on to-server stays" clsact_on to-server
expect "to-client keeps the same program" test "$(ingress_prog_id to-client)" = "$id_client"
ingress_4to6=$(ingress_packets ingress_4to6)
expect_traffic_flows 6 "$SERVER_VIA_POOL6"
expect "replies now take the device path: ingress_4to6 unchanged" \
	test "$(ingress_packets ingress_4to6)" -eq "$ingress_4to6"

# --- strict rp_filter: the reload fails, naming the fix, and the running state stays ------------
in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.to-server.rp_filter=1
write_siit_config to-client to-server
expect "the reload fails" fails ctl_reload "$E2E_TMP/reload-strict.out"
expect "it names the interface, rp_filter and the fix" \
	grep -qE 'to-server: strict reverse-path filtering.*set rp_filter to 2 \(loose\) or 0' "$E2E_TMP/reload-strict.out"
expect "it says the running configuration is kept" grep -q 'running configuration is kept' "$E2E_TMP/reload-strict.out"
expect "to-server still has no filter of ours" not_ours_on to-server
expect "to-client keeps its program" test "$(ingress_prog_id to-client)" = "$id_client"
expect "status shows the failed reload" ctl_says status 'last reload +FAILED'
expect "status lists the running configuration's interfaces: to-client only" \
	test "$(ingress_state to-client) $(ingress_state to-server)" = "attached unlisted"
expect "traffic still flows" in_ns "$CLIENT" ping -6 -c 2 -i 0.2 -W 2 -q "$SERVER_VIA_POOL6"
in_ns "$E2E_ROUTER" sysctl -q -w net.ipv4.conf.to-server.rp_filter=2
expect "with loose rp_filter the same reload succeeds" ctl_says reload 'applied, 1 change$'
expect "to-server has the fast path again" ours_on to-server

# --- teardown: our filters go, the operator's stays --------------------------------------------------
stop_daemon
expect "xlat64d --teardown succeeds" in_router "$XLAT64D" --config "$CONFIG" --teardown
expect "our filter is gone from to-client" not_ours_on to-client
expect "our filter is gone from to-server" not_ours_on to-server
expect "the operator's filter on to-server survives the teardown" operator_filter_on_to_server
expect "the clsact qdisc on to-server stays" clsact_on to-server
expect "no xlat64 filter is left on any interface of the router" \
	fails in_ns "$E2E_ROUTER" sh -c "for d in \$(ls /sys/class/net); do tc filter show dev \$d ingress; done | grep -q $XLAT_HANDLE"
