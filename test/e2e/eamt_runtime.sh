#!/bin/bash
# EAM entries added at run time (xlat64ctl eamt add/del) are applied at once, kept in the store,
# adopted unchanged by a restarted daemon, re-created after a reboot (teardown: nothing left in
# the kernel), and refused with a reason when they conflict; the file's own entries can only be
# changed in the file.
#
#   client (IPv4 only)             router (xlat64d)               server (IPv6 only)
#   203.0.113.2/24 ── veth ── 203.0.113.1   2001:db8:2::1 ── veth ── 2001:db8:2::2/64
source "$(dirname "$0")/lib.sh"

lab_ipv4_client_ipv6_server
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 192.0.2.0/24
    ipv6: 2001:db8:2::100/120
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 2001:db8:2::2 8080
tcp_works() { in_ns "$CLIENT" $TRAFFIC tcp --to 198.51.100.2 --port 8080 --bytes 100000 --timeout 10; }
tcp_fails() { ! in_ns "$CLIENT" $TRAFFIC tcp --to 198.51.100.2 --port 8080 --bytes 1000 --timeout 3 2>/dev/null; }
listed_as() { ctl eamt list | tee "$E2E_TMP/eamt.txt" | grep -qE "^$1 +$2 +$3"; }

expect "without a mapping, 198.51.100.2 is unreachable" tcp_fails
expect "xlat64ctl eamt add 198.51.100.0/24 2001:db8:2::/120" ctl eamt add 198.51.100.0/24 2001:db8:2::/120
expect "the new mapping carries traffic at once (TCP, content verified)" tcp_works
expect "eamt list shows it as a runtime entry, beside the file's" \
	bash -c "$(declare -f ctl in_router listed_as); E2E_ROUTER=$E2E_ROUTER XLAT64CTL=$XLAT64CTL E2E_SOCKET=$E2E_SOCKET E2E_TMP=$E2E_TMP;
		listed_as 198.51.100.0/24 2001:db8:2::/120 runtime && listed_as 192.0.2.0/24 2001:db8:2::100/120 file"
refused() { # REASON ARGS...: xlat64ctl eamt ARGS fails and says REASON
	local reason=$1 rc=0
	shift
	ctl eamt "$@" >"$E2E_TMP/refused.txt" 2>&1 || rc=$?
	cat "$E2E_TMP/refused.txt"
	((rc == 1)) && grep -q -- "$reason" "$E2E_TMP/refused.txt"
}
expect "the same IPv4 prefix again is refused" refused "is already mapped" add 198.51.100.0/24 2001:db8:2::300/120
expect "an IPv6 prefix inside pool6 is refused" refused "overlaps pool6" add 198.51.100.128/32 2001:db8:64::5/128
expect "unequal suffix lengths are refused" refused "same number of host bits" add 198.51.100.128/25 2001:db8:2::/120
expect "the file's entry cannot be deleted at run time" refused "configuration file" del 192.0.2.0/24

kernel_snapshot >"$E2E_TMP/kernel-before.txt"
stop_daemon
start_daemon "$E2E_CONFIG"
expect "a restarted daemon adopts the runtime entry: 0 changes" \
	bash -c "test \$(grep -c '^reconcile: 0 changes' '$E2E_TMP/xlat64d.log') -eq 1"
kernel_snapshot >"$E2E_TMP/kernel-after.txt"
expect "... and the kernel state is identical" diff -u "$E2E_TMP/kernel-before.txt" "$E2E_TMP/kernel-after.txt"

# A reboot: nothing of xlat64 left in the kernel; the store brings the entry back.
stop_daemon
in_router "$XLAT64D" --config "$E2E_CONFIG" --teardown >/dev/null
expect "after the teardown the mapping is gone" tcp_fails
start_daemon "$E2E_CONFIG"
expect "after the 'reboot' the runtime entry is back from the store and carries traffic" tcp_works

expect "xlat64ctl eamt del 198.51.100.0/24" ctl eamt del 198.51.100.0/24
expect "the mapping is gone at once" tcp_fails
stop_daemon
start_daemon "$E2E_CONFIG"
expect "and stays gone after a restart" tcp_fails
expect "the file's entry is still listed" bash -c "$(declare -f ctl in_router); E2E_ROUTER=$E2E_ROUTER XLAT64CTL=$XLAT64CTL E2E_SOCKET=$E2E_SOCKET; ctl eamt list | grep -q '^192.0.2.0/24 .* file'"
