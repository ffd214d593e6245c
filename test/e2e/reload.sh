#!/bin/bash
# Reload (`xlat64ctl reload`, what `systemctl reload xlat64` runs) applies only the difference,
# while the translator keeps carrying traffic, and an invalid file changes nothing:
#  - an EAM entry is replaced (198.51.100.0/24 moves from 2001:db8:2::/120 to 2001:db8:2::300/120):
#    afterwards the new mapping carries traffic and the old one does not;
#  - a paced TCP flow through another EAM entry runs across the reload and completes with its
#    content verified;
#  - an invalid file: `xlat64ctl reload` exits 1 naming the key and line, the kernel state is
#    identical before and after, and traffic still flows;
#  - a change that needs a restart (device.name) is refused the same way.
# The stateful NAT64 public pool is reloaded in reload_nat64_pool.sh.
#
#   client (IPv4 only)             router (xlat64d)               server (IPv6 only)
#   203.0.113.2/24 ── veth ── 203.0.113.1   2001:db8:2::1 ── veth ── 2001:db8:2::2, ::102, ::302
#
#   192.0.2.2    -> 2001:db8:2::102 port 8082 (unrelated entry, the long flow), always
#   198.51.100.2 -> 2001:db8:2::2   port 8080 (old entry) before the reload
#   198.51.100.2 -> 2001:db8:2::302 port 8081 (new entry) after it
source "$(dirname "$0")/lib.sh"

lab_ipv4_client_ipv6_server
ip -n "$SERVER" addr add 2001:db8:2::102/64 dev eth0 nodad
ip -n "$SERVER" addr add 2001:db8:2::302/64 dev eth0 nodad

CONFIG=$E2E_TMP/xlat64.yaml
write_config "$CONFIG" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 192.0.2.0/24
    ipv6: 2001:db8:2::100/120
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:2::/120
YAML
start_daemon "$CONFIG"
start_server "$SERVER" 2001:db8:2::2 8080
start_server "$SERVER" 2001:db8:2::302 8081
start_server "$SERVER" 2001:db8:2::102 8082

# tcp_works DEST PORT: a short transfer with its content checked.
tcp_works() { in_ns "$CLIENT" $TRAFFIC tcp --to "$1" --port "$2" --bytes 200000 --timeout 10; }
tcp_fails() { ! in_ns "$CLIENT" $TRAFFIC tcp --to "$1" --port "$2" --bytes 1000 --timeout 3 2>/dev/null; }
# ctl_says COMMAND PATTERN: xlat64ctl COMMAND succeeds and its output matches PATTERN.
ctl_says() { ctl "$1" | tee "$E2E_TMP/ctl.out" && grep -qE -- "$2" "$E2E_TMP/ctl.out"; }

expect "before: 198.51.100.2 reaches 2001:db8:2::2 (old entry)" tcp_works 198.51.100.2 8080
expect "before: 198.51.100.2 does not reach 2001:db8:2::302" tcp_fails 198.51.100.2 8081

# About 12 s at 250 kB/s: it starts before the reload and ends well after it.
FLOW_BYTES=3000000
start_tcp_flow FLOW "$CLIENT" 192.0.2.2 8082 "$FLOW_BYTES" 250000
sleep 2
kill -0 "$FLOW" 2>/dev/null || fail "the long TCP flow ended before the reload"

# --- a valid change: the EAM entry of 198.51.100.0/24 moves ----------------------------------
write_config "$CONFIG" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 192.0.2.0/24
    ipv6: 2001:db8:2::100/120
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:2::300/120
YAML
expect "xlat64ctl reload succeeds and reports the changes" \
	ctl_says reload 'applied, 2 changes$'
expect "the daemon logged the reload" grep -q 'reload: done, 2 changes applied' "$E2E_TMP/xlat64d.log"
expect "the long flow was still running after the reload" kill -0 "$FLOW"
expect "after: 198.51.100.2 reaches 2001:db8:2::302 (new entry)" tcp_works 198.51.100.2 8081
expect "after: 198.51.100.2 no longer reaches 2001:db8:2::2 (old entry gone)" tcp_fails 198.51.100.2 8080
expect "the unrelated TCP flow ($FLOW_BYTES bytes, across the reload) completed, content verified" \
	wait_tcp_flow FLOW
expect "a reload with an unchanged file changes nothing" \
	ctl_says reload 'the kernel already matches it'

# --- an invalid file: refused with key and line, nothing changes -----------------------------
kernel_snapshot >"$E2E_TMP/kernel-before-invalid.txt"
cp "$CONFIG" "$E2E_TMP/good.yaml"
write_config "$CONFIG" <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 192.0.2.0/24
    ipv6: 2001:db8:2::100/120
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:2::/112
YAML
rc=0
ctl_reload "$E2E_TMP/reload-invalid.out" || rc=$?
expect "xlat64ctl reload of an invalid file exits 1" test "$rc" -eq 1
expect "the message names the file, line and key (eamt[1].ipv6 on line 6)" \
	grep -qE "xlat64.yaml:6:[0-9]+: eamt\[1\]\.ipv6:" "$E2E_TMP/reload-invalid.out"
expect "the message says the running configuration is kept" \
	grep -q 'running configuration is kept' "$E2E_TMP/reload-invalid.out"
daemon_logged() { grep -q 'reload failed: .* is invalid' "$E2E_TMP/xlat64d.log" &&
	grep -qE ':6:[0-9]+: eamt\[1\]\.ipv6:' "$E2E_TMP/xlat64d.log"; }
expect "the daemon's log (the journal under systemd) has the same error" daemon_logged
kernel_snapshot >"$E2E_TMP/kernel-after-invalid.txt"
expect "the kernel state is identical before and after the refused reload" \
	diff -u "$E2E_TMP/kernel-before-invalid.txt" "$E2E_TMP/kernel-after-invalid.txt"
expect "xlat64ctl status shows the failed reload" ctl_says status '^last reload +FAILED'
expect "traffic still flows on the running configuration" tcp_works 198.51.100.2 8081
expect "SIGHUP with the invalid file: the daemon keeps running" \
	bash -c "kill -HUP $E2E_DAEMON_PID && sleep 0.5 && kill -0 $E2E_DAEMON_PID"
kernel_snapshot >"$E2E_TMP/kernel-after-sighup.txt"
expect "... and changes nothing either" \
	diff -u "$E2E_TMP/kernel-before-invalid.txt" "$E2E_TMP/kernel-after-sighup.txt"

# --- a change that only a restart can make -------------------------------------------------------
{ echo "device:"; echo "  name: xlat64b"; cat "$E2E_TMP/good.yaml"; } >"$CONFIG"
rc=0
ctl_reload "$E2E_TMP/reload-restart.out" || rc=$?
expect "a device.name change is refused by reload (exit 1)" test "$rc" -eq 1
expect "... naming device.name" grep -q 'device.name changed' "$E2E_TMP/reload-restart.out"
kernel_snapshot >"$E2E_TMP/kernel-after-restart-only.txt"
expect "... and changes nothing" \
	diff -u "$E2E_TMP/kernel-before-invalid.txt" "$E2E_TMP/kernel-after-restart-only.txt"

# --- a good file again clears the error ------------------------------------------------------
cp "$E2E_TMP/good.yaml" "$CONFIG"
expect "reload of the good file succeeds" ctl reload
no_reload_error() { ctl status >"$E2E_TMP/status.out" && ! grep -q '^last reload' "$E2E_TMP/status.out"; }
expect "xlat64ctl status no longer reports a failed reload" no_reload_error
stop_daemon
