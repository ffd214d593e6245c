#!/bin/bash
# A large EAMT kept in an eamt_file (issue 7): the daemon loads it, routes it with the fewest
# prefixes covering exactly its addresses, and a reload applies only what changed in it:
#  - 1024 /32 entries 100.64.0.0/22 <-> 2001:db8:2::/118, one per line, plus one in the YAML:
#    status counts 1025, and the device has one IPv4 route for the 1024 (100.64.0.0/22);
#  - a changed line moves 100.64.0.2 to 2001:db8:2::1302: the reload reports 2 changes and the
#    new mapping carries traffic;
#  - a removed line (100.64.0.7) splits the /22 into ten routes while a paced TCP flow through
#    100.64.0.2 continues across the reload and completes, content verified; 100.64.0.7 is no
#    longer routed into the device;
#  - an invalid line: the reload exits 1 naming the eamt_file, the line and the problem, and the
#    kernel state is identical before and after;
#  - a restart adopts the kernel state with 0 changes.
#
#   client (IPv4 only)             router (xlat64d)               server (IPv6 only)
#   203.0.113.2/24 ── veth ── 203.0.113.1   2001:db8:2::1 ── veth ── 2001:db8:2::2, ::1302
source "$(dirname "$0")/lib.sh"

lab_ipv4_client_ipv6_server
ip -n "$SERVER" addr add 2001:db8:2::1302/64 dev eth0 nodad

EAMT=$E2E_TMP/eamt.txt
# eamt_lines [SKIP_HOST]: 100.64.0.0/22 host i <-> 2001:db8:2::i, host 2 at ::1302 when MOVED=1.
eamt_lines() {
	/usr/bin/python3 - "${MOVED:-0}" "${1:--1}" <<-'PY'
		import ipaddress, sys
		moved, skip = sys.argv[1] == "1", int(sys.argv[2])
		v4 = int(ipaddress.IPv4Address("100.64.0.0"))
		v6 = int(ipaddress.IPv6Address("2001:db8:2::"))
		print("# generated: 100.64.0.0/22 <-> 2001:db8:2::/118, one host per line")
		for i in range(1024):
		    if i == skip:
		        continue
		    six = v6 + (0x1302 if moved and i == 2 else i)
		    print(f"{ipaddress.IPv4Address(v4 + i)}/32\t{ipaddress.IPv6Address(six)}/128")
	PY
}
eamt_lines >"$EAMT"

CONFIG=$E2E_TMP/xlat64.yaml
write_config "$CONFIG" <<YAML
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 192.0.2.0/24
    ipv6: 2001:db8:3::/120
eamt_file: $EAMT
YAML
start_daemon "$CONFIG"
start_server "$SERVER" 2001:db8:2::2 8080
start_server "$SERVER" 2001:db8:2::1302 8081

tcp_works() { in_ns "$CLIENT" $TRAFFIC tcp --to "$1" --port "$2" --bytes 200000 --timeout 10; }
tcp_fails() { ! in_ns "$CLIENT" $TRAFFIC tcp --to "$1" --port "$2" --bytes 1000 --timeout 3 2>/dev/null; }
eamt_entries() { ctl --json status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["eamt_entries"])'; }
ipv4_routes() { in_router ip -4 route show dev xlat64 proto 64 | awk '{print $1}' | sort; }
routed_into_device() { in_router ip -4 route get "$1" | grep -q ' dev xlat64 '; }
# reload_says PATTERN: xlat64ctl reload succeeds and its answer matches PATTERN.
reload_says() { ctl reload | tee "$E2E_TMP/reload.out" && grep -qE -- "$1" "$E2E_TMP/reload.out"; }

expect "status counts the 1024 lines and the YAML entry" test "$(eamt_entries)" = 1025
expect "the 1024 /32s have one route, 100.64.0.0/22, next to 192.0.2.0/24" \
	test "$(ipv4_routes | tr "\n" " ")" = "100.64.0.0/22 192.0.2.0/24 "
expect "100.64.0.2 reaches 2001:db8:2::2" tcp_works 100.64.0.2 8080

# --- a changed line -------------------------------------------------------------------------------
MOVED=1 eamt_lines >"$EAMT"
expect "the reload applies the changed line only (remove + add)" reload_says 'applied, 2 changes$'
expect "100.64.0.2 now reaches 2001:db8:2::1302" tcp_works 100.64.0.2 8081
expect "... and no longer 2001:db8:2::2" tcp_fails 100.64.0.2 8080

# --- a removed line splits the aggregate, traffic through it continues ---------------------------
FLOW_BYTES=2000000  # about 8 s at 250 kB/s: across the reload
start_tcp_flow FLOW "$CLIENT" 100.64.0.2 8081 "$FLOW_BYTES" 250000
sleep 2
MOVED=1 eamt_lines 7 >"$EAMT"
expect "the reload removes one entry and replaces the route" reload_says 'applied, [0-9]+ changes$'
expect "100.64.0.7 is no longer routed into xlat64" fails routed_into_device 100.64.0.7
expect "100.64.0.6 still is" routed_into_device 100.64.0.6
expect "100.64.0.8 still is" routed_into_device 100.64.0.8
expect "the /22 without one /32 takes ten routes (plus 192.0.2.0/24)" test "$(ipv4_routes | wc -l)" = 11
expect "the TCP flow through 100.64.0.2 ($FLOW_BYTES bytes, across the split) completed" \
	wait_tcp_flow FLOW
expect "status counts 1024 entries" test "$(eamt_entries)" = 1024

# --- an invalid line: refused, nothing changes -------------------------------------------------
kernel_snapshot >"$E2E_TMP/kernel-before-invalid.txt"
cp "$EAMT" "$E2E_TMP/good-eamt.txt"
sed -i '5s|/32\t.*|/32 2001:db8:2::/120|' "$EAMT"
rc=0
ctl_reload "$E2E_TMP/reload-invalid.out" || rc=$?
expect "xlat64ctl reload with a bad eamt_file line exits 1" test "$rc" -eq 1
expect "the message names the eamt_file, line 5 and the problem" \
	grep -qE "$EAMT:5: eamt_file: 100.64.0.3/32 has 0 host bits but 2001:db8:2::/120 has 8" \
	"$E2E_TMP/reload-invalid.out"
kernel_snapshot >"$E2E_TMP/kernel-after-invalid.txt"
expect "the kernel state is identical before and after the refused reload" \
	diff -u "$E2E_TMP/kernel-before-invalid.txt" "$E2E_TMP/kernel-after-invalid.txt"
cp "$E2E_TMP/good-eamt.txt" "$EAMT"

# --- a restart adopts -----------------------------------------------------------------------------
stop_daemon
: >"$E2E_TMP/xlat64d.log"
start_daemon "$CONFIG"
expect "a restart adopts the kernel state with 0 changes" \
	grep -q 'reconcile: 0 changes' "$E2E_TMP/xlat64d.log"
expect "100.64.0.2 still reaches 2001:db8:2::1302" tcp_works 100.64.0.2 8081
stop_daemon
