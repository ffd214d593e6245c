#!/bin/bash
# Stateful NAT64 (dynamic mode) across a daemon crash and across a simulated reboot (issue 5).
# Lab: test/e2e/lib.sh, nat64_lab.
#
#   prefixes [2001:db8:100::/48], /64 subscribers (65536), one host each;
#   public 203.0.113.0/28 ports 1024-65535 in blocks of 512: 16 x 126 = 2016 blocks;
#   idle_timeout 600 s (no block is returned while the test runs).
#
# Restart: a paced TCP transfer from subscriber 2001:db8:100::/64 and a ping (every 50 ms) from
# subscriber 2001:db8:100:1000::/64 run across `kill -9` of xlat64d and its restart with the same
# configuration. Checks: the transfer completes with its content verified, the ping loses no
# packet, the new daemon plans no change ("reconcile: 0 changes" logged once more) and the kernel
# state (device, routes, program, settings/EAMT maps, nftables blocks map and postrouting chain,
# NAT64 leases and block owners) is byte for byte what it was before the kill.
#
# Reboot: 1000 subscribers 2001:db8:100:<hex n>::/64 are provisioned with account acct-<n>
# (timed); then the daemon is stopped, `xlat64d --teardown` removes device, routes, pins and
# nftables table, every lab namespace is deleted and the lab is built again under new names; only
# the state directory is kept. Checks: the new daemon restores the leases from the store (logged),
# every subscriber has exactly its previous block, public address, ports and internal block, traces
# at a time before the reboot and now name the right subscriber and account, and a provisioned
# subscriber's host is translated through its restored block.
source "$(dirname "$0")/lib.sh"

CONFIG=$E2E_TMP/xlat64.yaml
SERVER6=2001:db8:64::c633:640a
PING_HOST=2001:db8:100:1000::a # subscriber 0x1000 = 4096: outside the 1000 provisioned below
SUBSCRIBERS=1000

# The lab of nat64_lab plus the ping host (not among nat64_lab's 2001:db8:100::/56).
build_lab() {
	nat64_lab
	ip -n "$CLIENT" addr add "$PING_HOST/128" dev eth0 nodad
	ip -n "$E2E_ROUTER" route add 2001:db8:100:1000::/64 via 2001:db8:1::2
	start_server "$SERVER" 198.51.100.10 8080
	SERVER_PID=${E2E_PIDS[-1]}
}

build_lab
write_config "$CONFIG" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/48]
  subscriber_length: 64
  hosts_per_subscriber: 1
  public_prefixes: [203.0.113.0/28]
  ports: 1024-65535
  block_size: 512
  mode: dynamic
  idle_timeout: 600
YAML
start_daemon "$CONFIG"
DAEMON_LOG=$E2E_TMP/xlat64d.log

# state_snapshot: the kernel state xlat64 owns, hosts excluded (their last_seen moves with
# traffic).
state_snapshot() {
	kernel_snapshot
	in_ns "$E2E_ROUTER" nft -s list map ip xlat64 blocks
	in_ns "$E2E_ROUTER" nft -s list chain ip xlat64 postrouting
	local map
	for map in "$E2E_PIN_DIR"/xlat_n64_subs "$E2E_PIN_DIR"/xlat_n64_owner; do
		echo "== $map"
		bpftool map dump pinned "$map"
	done
}
zero_change_lines() { grep -c 'reconcile: 0 changes$' "$DAEMON_LOG" || true; }

# ===== 1. Restart without loss ======================================================================
log "restart: TCP transfer and ping across kill -9 and restart"
# 15 s of traffic: the kill must come while both still run, and under the VM job's emulation the
# snapshot before it alone takes several seconds (6 s were once not enough there).
PING_COUNT=300 # 15 s at 50 ms
start_tcp_flow FLOW "$CLIENT" "$SERVER6" 8080 7500000 500000 2001:db8:100::a
ip netns exec "$CLIENT" ping -6 -I "$PING_HOST" -i 0.05 -c "$PING_COUNT" -W 2 -q "$SERVER6" \
	>"$E2E_TMP/ping.out" 2>&1 &
PING_PID=$!
E2E_PIDS+=("$PING_PID")
# Both subscribers hold their block before the snapshot.
for i in $(seq 50); do
	(($(ctl subscriber list --json | $PYTHON -c 'import json,sys; print(len(json.load(sys.stdin)))') >= 2)) && break
	sleep 0.1
done
sleep 0.5
state_snapshot >"$E2E_TMP/state-before.txt"
lease_count() { bpftool -j map dump pinned "$E2E_PIN_DIR/xlat_n64_subs" | $PYTHON -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
leases=$(lease_count)
expect "the snapshot holds the leases of both subscribers ($leases entries in xlat_n64_subs)" \
	test "$leases" -eq 2
zero_before=$(zero_change_lines)

kill -9 "$E2E_DAEMON_PID"
wait "$E2E_DAEMON_PID" 2>/dev/null || true
log "xlat64d killed (SIGKILL)"
sleep 0.5
expect "the flow and the ping are still running while no daemon runs" \
	kill -0 "$FLOW" "$PING_PID"
t0=$(date +%s.%N)
start_daemon "$CONFIG"
t1=$(date +%s.%N)
RESTART_TIME=$($PYTHON -c "print(f'{$t1 - $t0:.2f}')")
log "restart took ${RESTART_TIME} s (until the control socket answers)"
state_snapshot >"$E2E_TMP/state-after.txt"
zero_after=$(zero_change_lines)
expect "the restarted daemon logged exactly one more 'reconcile: 0 changes' ($zero_before -> $zero_after)" \
	test "$zero_after" -eq $((zero_before + 1))
expect "kernel state before the kill and after the restart is identical (checksums $(md5sum <"$E2E_TMP/state-before.txt" | cut -c1-8) / $(md5sum <"$E2E_TMP/state-after.txt" | cut -c1-8))" \
	diff -u "$E2E_TMP/state-before.txt" "$E2E_TMP/state-after.txt"
expect "the TCP transfer across the restart completed, content verified" wait_tcp_flow FLOW
ping_rc=0
wait "$PING_PID" || ping_rc=$?
cat "$E2E_TMP/ping.out"
expect "the ping across the restart lost no packet ($PING_COUNT transmitted, $PING_COUNT received)" \
	grep -qE "^$PING_COUNT packets transmitted, $PING_COUNT received," "$E2E_TMP/ping.out"
expect "ping exit status 0" test "$ping_rc" -eq 0

# ===== 2. Reboot =====================================================================================
T_PRE=$(date +%s)
sleep 1 # every provisioned allocation starts strictly after T_PRE
log "reboot: provisioning $SUBSCRIBERS subscribers"
t0=$(date +%s.%N)
# One nsenter for the whole loop; the ledger records every allocation in the store.
in_router bash -c '
	for n in $(seq "$1"); do
		"$2" --socket "$3" subscriber add "$(printf "2001:db8:100:%x::/64" "$n")" --id "acct-$n" >/dev/null ||
			{ echo "subscriber add $n failed" >&2; exit 1; }
	done' provision "$SUBSCRIBERS" "$XLAT64CTL" "$E2E_SOCKET" || fail "provisioning failed"
t1=$(date +%s.%N)
PROVISION_TIME=$($PYTHON -c "print(f'{$t1 - $t0:.2f}')")
log "provisioning $SUBSCRIBERS subscribers took ${PROVISION_TIME} s"

ctl subscriber list --json >"$E2E_TMP/subscribers-before.json"
# The provisioned subscribers, each with a distinct block (part 1's two dynamic leases besides).
check_provisioned() {
	$PYTHON - "$1" "$SUBSCRIBERS" <<'PY'
import ipaddress, json, sys
subs = json.load(open(sys.argv[1]))
count = int(sys.argv[2])
names = {s["subscriber"] for s in subs}
want = {f"2001:db8:100:{n:x}::/64" for n in range(1, count + 1)}
missing = want - names
blocks = [s["block"] for s in subs]
if missing or len(set(blocks)) != len(blocks) or len(subs) != count + 2:
    sys.exit(f"{len(subs)} listed, {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
             f"{len(blocks) - len(set(blocks))} duplicate blocks")
PY
}
expect "subscriber list shows all $SUBSCRIBERS provisioned subscribers (plus the 2 of part 1), each its own block" \
	check_provisioned "$E2E_TMP/subscribers-before.json"
# Samples: PUBLIC PORT SUBSCRIBER ACCOUNT, for subscribers 1, 2, 255, 500 and 1000 (a port inside
# each one's block, not always the first).
$PYTHON - "$E2E_TMP/subscribers-before.json" >"$E2E_TMP/samples.txt" <<'PY'
import json, sys
subs = {s["subscriber"]: s for s in json.load(open(sys.argv[1]))}
for i, n in enumerate([1, 2, 255, 500, 1000]):
    s = subs[f"2001:db8:100:{n:x}::/64"]
    first, last = map(int, s["ports"].split("-"))
    print(s["public_address"], first + (i * 97) % (last - first + 1), s["subscriber"], f"acct-{n}")
PY
cat "$E2E_TMP/samples.txt"
sleep 1 # T_before strictly after the last allocation's second
T_BEFORE=$(date +%s)
sleep 1

# --- the reboot ---------------------------------------------------------------------------------
log "reboot: stop, teardown, delete every namespace, build the lab again"
stop_daemon
in_router "$XLAT64D" --config "$CONFIG" --teardown >>"$E2E_TMP/teardown.log" 2>&1 ||
	fail "teardown failed: $(cat "$E2E_TMP/teardown.log")"
expect "teardown removed the pins" \
	test -z "$(ls -A "$E2E_PIN_DIR" 2>/dev/null)"
nft_table_exists() { in_ns "$E2E_ROUTER" nft list table ip xlat64 >/dev/null 2>&1; }
expect "teardown removed the nftables table" fails nft_table_exists
expect "the store stays" test -n "$(ls -A "$E2E_STATE_DIR")"
OLD_ROUTER=$E2E_ROUTER
kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true # nothing keeps a namespace alive
for ns in "$CLIENT" "$E2E_ROUTER" "$SERVER"; do
	ip netns del "$ns"
done
# The echo server of the old lab ends with its namespace's interfaces gone; it is still in
# E2E_PIDS and is killed on exit. New namespace names: the lab is built under a new id.
E2E_ID=$(printf '%04x' $(((0x$E2E_ID + 1) % 65536)))
build_lab
log "new lab: router $E2E_ROUTER (was $OLD_ROUTER)"
expect "the new router namespace has another name and none of the old state" \
	bash -c "[[ $E2E_ROUTER != $OLD_ROUTER ]] && ! ip -n $E2E_ROUTER link show dev xlat64 >/dev/null 2>&1"

restored_before=$(grep -c 'restoring [0-9]* leases from the store' "$DAEMON_LOG" || true)
t0=$(date +%s.%N)
start_daemon "$CONFIG"
t1=$(date +%s.%N)
RESTORE_TIME=$($PYTHON -c "print(f'{$t1 - $t0:.2f}')")
log "start after the reboot, restoring the leases, took ${RESTORE_TIME} s"
LEASES=$((SUBSCRIBERS + 2))
expect "the log shows the $LEASES leases restored from the store" \
	test "$(grep -c "reset NAT64 hosts and blocks (new or changed pool layout), restoring $LEASES leases from the store" "$DAEMON_LOG")" -eq $((restored_before + 1))
grep 'restoring .* leases\|re-created the lease\|block-taken-while-down\|configuration-changed' "$DAEMON_LOG" | tail -n 3

ctl subscriber list --json >"$E2E_TMP/subscribers-after.json"
compare_subscribers() {
	$PYTHON - "$E2E_TMP/subscribers-before.json" "$E2E_TMP/subscribers-after.json" <<'PY'
import json, sys
keys = ("block", "public_address", "ports", "internal")
before = {s["subscriber"]: tuple(s[k] for k in keys) for s in json.load(open(sys.argv[1]))}
after = {s["subscriber"]: tuple(s[k] for k in keys) for s in json.load(open(sys.argv[2]))}
diff = [(k, before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
if diff or len(before) < 1000:
    sys.exit(f"{len(diff)} subscribers differ, e.g. {diff[:3]}; {len(before)} before, {len(after)} after")
PY
}
expect "every subscriber has exactly its previous block, public address, ports and internal block" \
	compare_subscribers

check_trace() { # PUBLIC PORT SUBSCRIBER ACCOUNT [--at TIME]
	local out
	out=$(ctl trace "$1:$2" "${@:5}" --json) || return 1
	$PYTHON -c '
import json, sys
d = json.loads(sys.argv[1])
ok = d["subscriber"] == sys.argv[2] and d["account"] == sys.argv[3] and d["until"] is None
sys.exit(0 if ok else f"trace answered {d}")' "$out" "$3" "$4"
}
while read -r pub port sub acct; do
	expect "trace $pub:$port at T_before ($(date -u -d "@$T_BEFORE" +%FT%TZ)) -> $sub $acct" \
		check_trace "$pub" "$port" "$sub" "$acct" --at "$T_BEFORE"
	expect "trace $pub:$port now -> $sub $acct" check_trace "$pub" "$port" "$sub" "$acct"
done <"$E2E_TMP/samples.txt"
read -r pub port sub acct <"$E2E_TMP/samples.txt"
trace_rc=0
trace_pre=$(ctl trace "$pub:$port" --at "$T_PRE" 2>&1) || trace_rc=$?
echo "$trace_pre"
expect "a trace of $pub:$port at a time before it was provisioned names nobody (exit $trace_rc)" \
	bash -c '[[ $1 -ne 0 ]] && grep -q "no subscriber held" <<<"$2"' _ "$trace_rc" "$trace_pre"

# Translation through a restored block: subscriber 1 (host 2001:db8:100:1::a in nat64_lab).
expect "a provisioned subscriber's host (2001:db8:100:1::a) is translated after the reboot" \
	nat64_flow tcp 2001:db8:100:1::a 0 "$SERVER6"
check_peer() {
	$PYTHON - "$E2E_TMP/peers-$SERVER.txt" "$E2E_TMP/subscribers-before.json" <<'PY'
import json, sys
sub = next(s for s in json.load(open(sys.argv[2])) if s["subscriber"] == "2001:db8:100:1::/64")
first, last = map(int, sub["ports"].split("-"))
peers = [l.split() for l in open(sys.argv[1]) if l.startswith("tcp ")]
ok = peers and peers[-1][1] == sub["public_address"] and first <= int(peers[-1][2]) <= last
sys.exit(0 if ok else f"server saw {peers}, subscriber 1 held {sub}")
PY
}
expect "... the server saw it from its restored public address and port block" check_peer

allocations=$(grep -c ' nat64 allocate \|^nat64 allocate ' "$DAEMON_LOG" || true)
releases=$(grep -c ' nat64 release \|^nat64 release ' "$DAEMON_LOG" || true)
expect "across the restart and the reboot no block was allocated twice or returned ($allocations allocations logged, $LEASES leases; $releases releases)" \
	test "$allocations" -eq "$LEASES" -a "$releases" -eq 0

log "timings: provisioning $SUBSCRIBERS subscribers ${PROVISION_TIME} s, restart ${RESTART_TIME} s, start after reboot (restore) ${RESTORE_TIME} s"
