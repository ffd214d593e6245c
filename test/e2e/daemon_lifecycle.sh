#!/bin/bash
# xlat64d's lifecycle on a router that already carries other configuration:
#  - an invalid configuration is refused with the key and line, and changes nothing in the kernel;
#  - a second daemon does not start beside a running one;
#  - SIGTERM leaves the translator running in the kernel (hitless restarts, DESIGN.md);
#  - a new daemon adopts what it finds without changing it;
#  - --teardown removes exactly what xlat64 created and nothing else.
source "$(dirname "$0")/lib.sh"

lab_ipv6_client_ipv4_server
# What the router had before xlat64: its own device, addresses and routes, which must survive.
ip -n "$E2E_ROUTER" link add keep0 type veth peer name keep1
ip -n "$E2E_ROUTER" link set keep0 up
ip -n "$E2E_ROUTER" link set keep1 up
ip -n "$E2E_ROUTER" addr add 203.0.113.1/24 dev keep0
ip -n "$E2E_ROUTER" addr add 2001:db8:3::1/64 dev keep0 nodad
ip -n "$E2E_ROUTER" route add 198.51.100.128/25 via 203.0.113.2 dev keep0 metric 200
ip -n "$E2E_ROUTER" -6 route add 2001:db8:64::/96 via 2001:db8:3::2 dev keep0 metric 2048
# Taken before the daemon starts and after its teardown, when no xlat64 device exists.
router_state() {
	ip -n "$E2E_ROUTER" -d link show
	ip -n "$E2E_ROUTER" addr show
	ip -n "$E2E_ROUTER" -4 route show table all
	ip -n "$E2E_ROUTER" -6 route show table all
}
router_state >"$E2E_TMP/router-before.txt"

write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
SERVER_VIA_POOL6=2001:db8:64::c000:202
ping_server() { in_ns "$CLIENT" ping -6 -c 3 -i 0.2 -W 2 -q "$SERVER_VIA_POOL6" >/dev/null; }
expect "translation works" ping_server
kernel_snapshot >"$E2E_TMP/kernel-running.txt"

# --- invalid configurations: refused with key and line, kernel untouched -----------------------
refused_with() { # FILE PATTERN...: xlat64d must exit non-zero and print every PATTERN
	local file=$1 rc=0
	shift
	in_router "$XLAT64D" --config "$file" >"$E2E_TMP/refused.out" 2>&1 || rc=$?
	cat "$E2E_TMP/refused.out"
	((rc != 0)) || return 1
	local pattern
	for pattern in "$@"; do
		grep -qE -- "$pattern" "$E2E_TMP/refused.out" || { echo "missing: $pattern"; return 1; }
	done
}
write_config "$E2E_TMP/bad-length.yaml" <<'YAML'
pool6: 2001:db8:64::/80
YAML
expect "pool6 /80 refused, naming pool6, its line and the lengths RFC 6052 allows" \
	refused_with "$E2E_TMP/bad-length.yaml" ':1:[0-9]+: pool6:' '/96'
write_config "$E2E_TMP/bad-address.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:zz::/120
YAML
expect "a bad address refused, naming eamt[0].ipv6 and its line" \
	refused_with "$E2E_TMP/bad-address.yaml" ':4:[0-9]+: eamt\[0\]\.ipv6:'
write_config "$E2E_TMP/overlap.yaml" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:5::/120
YAML
expect "overlapping EAMT entries refused, naming the second entry" \
	refused_with "$E2E_TMP/overlap.yaml" ':5:[0-9]+: eamt\[1\]\.ipv4:'
write_config "$E2E_TMP/unknown-key.yaml" <<'YAML'
pool6: 2001:db8:64::/96
pool4: 192.0.2.0/24
YAML
expect "an unknown key refused, listing the valid keys" \
	refused_with "$E2E_TMP/unknown-key.yaml" ':2:[0-9]+: pool4:' 'valid keys'
write_config "$E2E_TMP/wrong-type.yaml" <<'YAML'
device:
  mtu: large
YAML
expect "a wrong type refused, naming device.mtu" \
	refused_with "$E2E_TMP/wrong-type.yaml" ':2:[0-9]+: device\.mtu:'
write_config "$E2E_TMP/nat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:64::/56]
  subscriber_length: 64
  public_prefixes: [203.0.113.0/24]
YAML
expect "a nat64 prefix overlapping pool6 refused, naming nat64.prefixes[0]" \
	refused_with "$E2E_TMP/nat64.yaml" 'nat64\.prefixes\[0\]: 2001:db8:64::/56 overlaps pool6'
expect "a second daemon with a valid configuration refuses to start beside the first" \
	refused_with "$E2E_TMP/xlat64.yaml" 'already running'
kernel_snapshot >"$E2E_TMP/kernel-after-refusals.txt"
expect "the refused starts changed nothing in the kernel" \
	diff -u "$E2E_TMP/kernel-running.txt" "$E2E_TMP/kernel-after-refusals.txt"
expect "translation still works" ping_server

# --- SIGTERM keeps the translator; a new daemon adopts it unchanged ----------------------------
stop_daemon
expect "with no daemon running, translation goes on" ping_server
kernel_snapshot >"$E2E_TMP/kernel-stopped.txt"
expect "SIGTERM left device, routes, program and maps in place" \
	diff -u "$E2E_TMP/kernel-running.txt" "$E2E_TMP/kernel-stopped.txt"
start_daemon "$E2E_TMP/xlat64.yaml"
kernel_snapshot >"$E2E_TMP/kernel-adopted.txt"
expect "a restarted daemon adopts the kernel state without changing it (same program id too)" \
	diff -u "$E2E_TMP/kernel-running.txt" "$E2E_TMP/kernel-adopted.txt"
expect "the restarted daemon reports nothing to change" \
	grep -q 'reconcile: 0 changes' "$E2E_TMP/xlat64d.log"
expect "translation works after the restart" ping_server
stop_daemon

# --- teardown removes exactly what xlat64 created ----------------------------------------------
expect "xlat64d --teardown succeeds" in_router "$XLAT64D" --config "$E2E_TMP/xlat64.yaml" --teardown
expect "the xlat64 device is gone" bash -c "! ip -n $E2E_ROUTER link show dev xlat64 2>/dev/null"
expect "the pinned maps are gone" test ! -e "$E2E_PIN_DIR"
router_state >"$E2E_TMP/router-after.txt"
expect "the router's own devices, addresses and routes are exactly as before" \
	diff -u "$E2E_TMP/router-before.txt" "$E2E_TMP/router-after.txt"
expect "teardown is idempotent" in_router "$XLAT64D" --config "$E2E_TMP/xlat64.yaml" --teardown
