#!/bin/bash
# The dial-up integration examples in packaging/examples (pppd ipv6-up/ipv6-down hooks and the
# RADIUS accounting script) provision and remove subscribers in a running xlat64d, run exactly
# as pppd and FreeRADIUS would run them (their environment variables), against the real daemon.
source "$(dirname "$0")/lib.sh"

EXAMPLES=$(cd "$E2E_DIR/../../packaging/examples" && pwd)
nat64_lab
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  public_prefixes: [203.0.113.0/30]
  block_size: 2048
  mode: dynamic
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
hook() { # SCRIPT ENV...: runs an example in the router namespace with the test's socket
	local script=$1
	shift
	in_router env XLAT64CTL="$XLAT64CTL" XLAT64_SOCKET="$E2E_SOCKET" "$@" "$EXAMPLES/$script"
}
listed() { ctl subscriber list --json | $PYTHON -c '
import json, sys
subs = {s["subscriber"] for s in json.load(sys.stdin)}
sys.exit(0 if (sys.argv[1] in subs) == (sys.argv[2] == "yes") else f"{sorted(subs)}")' "$1" "$2"; }
traced_account() { # ACCOUNT: the subscriber's block traces to ACCOUNT
	local addr ports
	read -r addr ports < <(ctl subscriber show "$1" --json | $PYTHON -c '
import json, sys; d = json.load(sys.stdin); print(d["public_address"], d["ports"].split("-")[0])')
	ctl trace "$addr:$ports" --json | $PYTHON -c '
import json, sys; d = json.load(sys.stdin); sys.exit(0 if d["account"] == sys.argv[1] else str(d))' "$2"
}

start_server "$SERVER" 198.51.100.10 8080

# pppd: ipv6-up with IFNAME and PEERNAME, the delegated prefix in XLAT64_PREFIX.
expect "pppd ipv6-up provisions 2001:db8:100:1::/64 for peer alice" \
	hook ppp/ipv6-up IFNAME=ppp7 PEERNAME=alice XLAT64_PREFIX=2001:db8:100:1::/64
expect "... it holds a block" listed 2001:db8:100:1::/64 yes
expect "... and xlat64ctl trace names alice" traced_account 2001:db8:100:1::/64 alice
expect "its host's traffic goes through" nat64_flow tcp 2001:db8:100:1::a 0 2001:db8:64::c633:640a
expect "pppd ipv6-down removes it" hook ppp/ipv6-down IFNAME=ppp7 XLAT64_PREFIX=2001:db8:100:1::/64
expect "... its block is returned" listed 2001:db8:100:1::/64 no

# FreeRADIUS exec: attributes in the environment, values quoted as FreeRADIUS passes them.
expect "RADIUS Accounting Start provisions 2001:db8:100:2::/64 for bob" \
	hook radius/xlat64-accounting ACCT_STATUS_TYPE='"Start"' USER_NAME='"bob"' \
	DELEGATED_IPV6_PREFIX='"2001:db8:100:2::/64"'
expect "... it holds a block, traced to bob" traced_account 2001:db8:100:2::/64 bob
expect "RADIUS Interim-Update is idempotent" \
	hook radius/xlat64-accounting ACCT_STATUS_TYPE=Interim-Update USER_NAME=bob \
	DELEGATED_IPV6_PREFIX=2001:db8:100:2::/64
expect "RADIUS Accounting Stop removes it" \
	hook radius/xlat64-accounting ACCT_STATUS_TYPE=Stop DELEGATED_IPV6_PREFIX=2001:db8:100:2::/64
expect "... its block is returned" listed 2001:db8:100:2::/64 no
refused=0
ctl subscriber add 2001:db8:999::/64 --id mallory >"$E2E_TMP/refused.txt" 2>&1 || refused=$?
cat "$E2E_TMP/refused.txt"
expect "a prefix outside nat64.prefixes is refused (exit 1)" test "$refused" -eq 1
expect "... saying why" grep -q 'is in none of the admitted nat64.prefixes' "$E2E_TMP/refused.txt"
expect "the hook itself never fails the PPP session (exit 0, reason logged)" \
	hook ppp/ipv6-up IFNAME=ppp9 PEERNAME=mallory XLAT64_PREFIX=2001:db8:999::/64
