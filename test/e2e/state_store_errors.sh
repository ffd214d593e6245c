#!/bin/bash
# Bad input to the state store: a corrupt store, a store from a newer schema, a state directory
# that cannot be created or written, and a full disk each give a clear error that names the file
# and touch neither the store nor the running translation. Lab: nat64_lab (test/e2e/lib.sh),
# dynamic NAT64 (2 public addresses x 16 blocks of 16 ports).
#
# A first daemon gets a subscriber's traffic through and provisions one subscriber (acct-1), then
# stops (SIGTERM: the translator stays in the kernel). The kernel state (device, routes, program,
# maps, nftables table) and the store's checksum are saved. Then, with no daemon running:
#   (a) corrupt: garbage over the store's first page (in place, a backup restored after), and
#       over an interior page of a copy: xlat64d exits non-zero saying the file is corrupt, the
#       file is unchanged, the kernel too, and NAT64 traffic still flows;
#   (b) newer schema: a copy with PRAGMA user_version = 99 is refused as written by a newer
#       xlat64, unchanged afterwards, the kernel unchanged;
#   (c) unwritable: a state directory under /proc (cannot be created, even by root), and a
#       read-only file system holding a store (a tmpfs mounted read-only in a private mount
#       namespace of that xlat64d only): clear errors naming them, the kernel unchanged;
#   (d) full disk: a daemon whose state directory is a 2 MB tmpfs in its own private mount
#       namespace; once it runs the tmpfs is filled; `xlat64ctl subscriber add` then fails saying
#       the disk is full, no block is leased to that subscriber, the earlier rows still answer,
#       the daemon keeps running and translating; an allocation the data path makes meanwhile is
#       recorded once space is freed, and the refused subscriber can then be added.
source "$(dirname "$0")/lib.sh"

nat64_lab
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  hosts_per_subscriber: 4
  public_prefixes: [203.0.113.0/31]
  ports: 1024-1279
  block_size: 16
  mode: dynamic
  idle_timeout: 600
YAML
SERVER6=2001:db8:64::c633:640a
STORE=$E2E_STATE_DIR/state.db

start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080
expect "a subscriber's first flow goes through (the data path leases it a block)" \
	nat64_flow udp 2001:db8:100::a 0 "$SERVER6"
expect "subscriber 2001:db8:100:1::/64 is provisioned as acct-1" \
	ctl subscriber add 2001:db8:100:1::/64 --id acct-1
ACCT1=$(ctl subscriber show 2001:db8:100:1::/64 --json | $PYTHON -c '
import json, sys; d = json.load(sys.stdin); print(d["public_address"] + ":" + d["ports"].split("-")[0])')
log "acct-1 holds $ACCT1"
# The data path's allocation is recorded from its event within milliseconds; wait for it, so the
# store is complete before the daemon stops.
for i in $(seq 50); do
	ctl trace 203.0.113.0:1024 >/dev/null 2>&1 && break
	sleep 0.1
done
# The hosts the checks below send from, once with the daemon running, so their addresses are
# taken before the kernel state is saved.
expect "the provisioned subscriber's host gets through too" nat64_flow tcp 2001:db8:100:1::a 0 "$SERVER6"
stop_daemon
log "xlat64d stopped; the translator stays in the kernel"

# Everything xlat64 put in the kernel, in a stable text form: what kernel_snapshot covers, the
# nftables table without its counters, and the NAT64 maps that only allocations change (not
# xlat_n64_host6, whose last-seen times move with every packet).
snapshot() {
	kernel_snapshot
	# Without the elements of the dynamic sets (conntrack limits, mappings), which every new flow
	# changes; the static ones (the blocks) stay.
	in_router nft -s list table ip xlat64 | $PYTHON -c '
import re, sys
text = sys.stdin.read()
def strip(m):
    body = m.group(0)
    return re.sub(r"\n\s*elements = \{[^}]*\}", "", body) if "flags dynamic" in body else body
print(re.sub(r"\n\t(set|map) \S+ \{.*?\n\t\}", strip, text, flags=re.S))'
	local m
	for m in xlat_n64_pfx xlat_n64_subs xlat_n64_owner xlat_n64_host4; do
		echo "== $m"
		bpftool map dump pinned "$E2E_PIN_DIR/$m"
	done
}
snapshot >"$E2E_TMP/kernel.before"
grep -q 'xlat64' "$E2E_TMP/kernel.before" || fail "the kernel snapshot is empty"
# store_sums DIR: the checksum of DIR/state.db and of any WAL left beside it. A refusal must leave
# these as they were; it may leave an EMPTY state.db-wal and a state.db-shm (SQLite's wal-index, a
# cache it rebuilds) beside a store in WAL mode, which change nothing (noted in the log).
store_sums() {
	sha256sum "$1/state.db"
	if [[ -s $1/state.db-wal ]]; then sha256sum "$1/state.db-wal"; fi
}
side_files() { # DIR: what a refusal left beside the store (logged)
	local f
	for f in "$1"/state.db-wal "$1"/state.db-shm "$1"/state.db-journal; do
		[[ -e $f ]] && log "note: left beside the store: $(basename "$f") ($(stat -c %s "$f") bytes)"
	done
	return 0
}
store_sums "$E2E_STATE_DIR" >"$E2E_TMP/store.before"
log "store after a clean stop: $(tr '\n' ' ' <"$E2E_TMP/store.before")"

kernel_unchanged() {
	snapshot >"$E2E_TMP/kernel.now"
	diff -u "$E2E_TMP/kernel.before" "$E2E_TMP/kernel.now"
}

# refused NAME CONFIG PATTERN...: xlat64d with CONFIG must exit non-zero within 20 s, its output
# (in $E2E_TMP/NAME.log) matching every PATTERN (grep -E).
refused() {
	local name=$1 config=$2 rc=0
	shift 2
	timeout 20 nsenter --net="/run/netns/$E2E_ROUTER" "$XLAT64D" --config "$config" \
		>"$E2E_TMP/$name.log" 2>&1 || rc=$?
	log "xlat64d ($name) exited with status $rc: $(cat "$E2E_TMP/$name.log" | tail -n 1)"
	((rc != 0 && rc != 124)) || { cat "$E2E_TMP/$name.log"; return 1; }
	local pattern
	for pattern in "$@"; do
		grep -qE -- "$pattern" "$E2E_TMP/$name.log" || {
			echo "no line matches: $pattern"
			cat "$E2E_TMP/$name.log"
			return 1
		}
	done
}
# config_with_state FILE DIRECTORY: the lab's configuration with another state directory.
config_with_state() {
	E2E_STATE_DIR=$2 write_config "$1" < <(sed '/^control:/,$d' "$E2E_TMP/xlat64.yaml")
}
traffic_flows() {
	expect "NAT64 traffic still flows ($1)" nat64_flow udp 2001:db8:100::a 0 "$SERVER6"
	expect "and for the provisioned subscriber acct-1 ($1)" nat64_flow tcp 2001:db8:100:1::a 0 "$SERVER6"
}
re() { sed 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"; } # a literal for grep -E

# --- (a) corrupt ---------------------------------------------------------------------------------
cp -a "$STORE" "$E2E_TMP/state.db.backup"
head -c 4096 /dev/urandom | dd of="$STORE" bs=4096 count=1 conv=notrunc status=none
store_sums "$E2E_STATE_DIR" >"$E2E_TMP/store.corrupt"
expect "a store with garbage over its first page is refused, naming the file and saying it is corrupt" \
	refused corrupt-header "$E2E_TMP/xlat64.yaml" "$(re "$STORE"): .*the store is corrupt"
expect "the corrupt store is left exactly as it was (checksum unchanged, no WAL written)" \
	diff -u "$E2E_TMP/store.corrupt" <(store_sums "$E2E_STATE_DIR")
expect "the kernel is unchanged after the refusal of the corrupt store" kernel_unchanged
traffic_flows "corrupt store"
cp -a "$E2E_TMP/state.db.backup" "$STORE"
expect "the backup restored, the store is the one the daemon left" \
	diff -u "$E2E_TMP/store.before" <(store_sums "$E2E_STATE_DIR")

# An interior page (the subscribers table's root, page 2) damaged in a copy: the header is fine,
# so only the integrity check can find it (its report may span lines: the path on the first, the
# hint on the last).
mkdir -p "$E2E_TMP/interior"
cp -a "$STORE" "$E2E_TMP/interior/state.db"
head -c 4096 /dev/urandom | dd of="$E2E_TMP/interior/state.db" bs=4096 seek=1 count=1 conv=notrunc status=none
config_with_state "$E2E_TMP/interior.yaml" "$E2E_TMP/interior"
store_sums "$E2E_TMP/interior" >"$E2E_TMP/store.interior"
expect "a store with a damaged interior page is refused as corrupt, naming the file" \
	refused corrupt-interior "$E2E_TMP/interior.yaml" "$(re "$E2E_TMP/interior/state.db"): " \
	"the store is corrupt"
expect "that file is unchanged too (checksum, no WAL written)" diff -u "$E2E_TMP/store.interior" <(store_sums "$E2E_TMP/interior")
side_files "$E2E_TMP/interior"
expect "the kernel is unchanged after the refusal of the damaged store" kernel_unchanged

# --- (b) newer schema ------------------------------------------------------------------------------
mkdir -p "$E2E_TMP/newer"
cp -a "$STORE" "$E2E_TMP/newer/state.db"
$PYTHON - "$E2E_TMP/newer/state.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA user_version = 99")
db.commit()
db.close()
PY
config_with_state "$E2E_TMP/newer.yaml" "$E2E_TMP/newer"
store_sums "$E2E_TMP/newer" >"$E2E_TMP/store.newer"
log "store of schema 99: $(tr '\n' ' ' <"$E2E_TMP/store.newer")"
expect "a store of schema 99 is refused as written by a newer xlat64, naming the file" \
	refused newer "$E2E_TMP/newer.yaml" \
	"$(re "$E2E_TMP/newer/state.db"): it was written by a newer xlat64 \(schema 99, this xlat64d knows up to [0-9]+\)"
expect "the store of schema 99 is unchanged (checksum, no WAL written)" \
	diff -u "$E2E_TMP/store.newer" <(store_sums "$E2E_TMP/newer")
side_files "$E2E_TMP/newer"
expect "its schema is still 99" \
	test "$($PYTHON -c 'import sqlite3,sys; print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("PRAGMA user_version").fetchone()[0])' "$E2E_TMP/newer/state.db")" = 99
expect "the kernel is unchanged after the refusal of the newer store" kernel_unchanged
traffic_flows "newer store"

# --- (c) unwritable ----------------------------------------------------------------------------------
config_with_state "$E2E_TMP/proc.yaml" /proc/xlat64-test/state
expect "a state directory that cannot be created (/proc/xlat64-test/state) is refused, naming it" \
	refused unwritable-proc "$E2E_TMP/proc.yaml" \
	'/proc/xlat64-test/state/state\.db: .*/proc/xlat64-test/state'
expect "nothing was created under /proc" test ! -e /proc/xlat64-test
expect "the kernel is unchanged after the refusal of the unwritable directory" kernel_unchanged

# A store on a read-only file system: a tmpfs holding a copy, remounted read-only, in a private
# mount namespace of that xlat64d only (nothing is mounted in this test's own mount namespace).
mkdir -p "$E2E_TMP/readonly"
config_with_state "$E2E_TMP/readonly.yaml" "$E2E_TMP/readonly"
readonly_rc=0
timeout 20 nsenter --net="/run/netns/$E2E_ROUTER" unshare --mount --propagation private bash -c '
	mount -t tmpfs -o size=4m tmpfs "$1" && cp "$2" "$1/state.db" && mount -o remount,ro "$1" &&
	sha256sum "$1/state.db" >"$4.before" && { "$3" --config "$5"; rc=$?; sha256sum "$1/state.db" >"$4.after"; exit $rc; }
' _ "$E2E_TMP/readonly" "$STORE" "$XLAT64D" "$E2E_TMP/readonly-sums" "$E2E_TMP/readonly.yaml" \
	>"$E2E_TMP/readonly.log" 2>&1 || readonly_rc=$?
log "xlat64d (read-only store) exited with status $readonly_rc: $(tail -n 1 "$E2E_TMP/readonly.log")"
expect "a store on a read-only file system is refused (status $readonly_rc)" \
	test "$readonly_rc" -ne 0 -a "$readonly_rc" -ne 124
expect "the error names the file and says it is not writable" \
	grep -qE "$(re "$E2E_TMP/readonly/state.db"): .*(readonly|read-only).*writable" "$E2E_TMP/readonly.log"
expect "the read-only store is unchanged" diff "$E2E_TMP/readonly-sums.before" "$E2E_TMP/readonly-sums.after"
expect "the kernel is unchanged after the refusal of the read-only store" kernel_unchanged
traffic_flows "unwritable state directory"
expect "the store itself was never touched by any refusal" \
	diff -u "$E2E_TMP/store.before" <(store_sums "$E2E_STATE_DIR")

# --- (d) full disk -------------------------------------------------------------------------------------
FULL=$E2E_TMP/full
mkdir -p "$FULL"
config_with_state "$E2E_TMP/full.yaml" "$FULL"
E2E_CONFIG=$E2E_TMP/full.yaml
# nsenter and unshare exec, and bash execs xlat64d: $! is the daemon's own PID.
nsenter --net="/run/netns/$E2E_ROUTER" unshare --mount --propagation private bash -c '
	mount -t tmpfs -o size=2m tmpfs "$1" && cp "$2" "$1/state.db" && exec "$3" --config "$4"
' _ "$FULL" "$STORE" "$XLAT64D" "$E2E_TMP/full.yaml" >>"$E2E_TMP/xlat64d.log" 2>&1 &
E2E_DAEMON_PID=$!
E2E_PIDS+=("$E2E_DAEMON_PID")
for i in $(seq 100); do
	ctl status >/dev/null 2>&1 && break
	kill -0 "$E2E_DAEMON_PID" 2>/dev/null || fail "xlat64d (full disk) exited: $(tail -n 20 "$E2E_TMP/xlat64d.log")"
	sleep 0.1
done
ctl status >/dev/null || fail "xlat64d (full disk) did not answer"
expect "the daemon on the small tmpfs runs as PID $E2E_DAEMON_PID, in a mount namespace of its own" \
	test "$(readlink "/proc/$E2E_DAEMON_PID/exe")" = "$(readlink -f "$XLAT64D")" -a \
	"$(readlink "/proc/$E2E_DAEMON_PID/ns/mnt")" != "$(readlink /proc/self/ns/mnt)"
in_daemon_mnt() { nsenter --mount="/proc/$E2E_DAEMON_PID/ns/mnt" "$@"; }
expect "its state directory is the tmpfs, holding the store" \
	in_daemon_mnt bash -c "mountpoint -q '$FULL' && test -s '$FULL/state.db'"
traces_to() { ctl trace "$1" | grep -q -- "$2"; } # ADDRESS:PORT PATTERN
expect "it knows acct-1 from the copied store" traces_to "$ACCT1" acct-1
# Fill the tmpfs: dd stops at ENOSPC.
in_daemon_mnt dd if=/dev/zero of="$FULL/fill" bs=64k status=none 2>/dev/null || true
in_daemon_mnt dd if=/dev/zero of="$FULL/fill2" bs=4k status=none 2>/dev/null || true
log "tmpfs filled: $(in_daemon_mnt df -h --output=size,used,avail "$FULL" | tail -n 1)"
expect "the tmpfs is full" test "$(in_daemon_mnt df --output=avail "$FULL" | tail -n 1 | tr -d ' ')" -eq 0

add_rc=0
ctl subscriber add 2001:db8:100:20::/64 --id acct-2 >"$E2E_TMP/add-full.out" 2>&1 || add_rc=$?
log "subscriber add on a full disk: status $add_rc: $(cat "$E2E_TMP/add-full.out")"
expect "xlat64ctl subscriber add fails on the full disk" test "$add_rc" -ne 0
expect "saying the database or disk is full and naming the store" \
	grep -qE "$(re "$FULL/state.db"): database or disk is full" "$E2E_TMP/add-full.out"
not_leased() { # PREFIX: neither a lease nor a block owner in the kernel
	ctl subscriber list --json | $PYTHON -c '
import json, sys
subs = [s for s in json.load(sys.stdin) if s["subscriber"] == sys.argv[1]]
sys.exit(f"leased: {subs}" if subs else 0)' "$1" || return 1
	bpftool -j map dump pinned "$E2E_PIN_DIR/xlat_n64_owner" | $PYTHON -c '
import ipaddress, json, sys
want = ipaddress.IPv6Network(sys.argv[1]).network_address.packed
for e in json.load(sys.stdin):
    raw = e.get("value")
    if isinstance(raw, list) and bytes(int(x, 16) for x in raw) == want:
        sys.exit(f"block {e['key']} owned by {sys.argv[1]}")' "$1"
}
expect "no block was leased or claimed for the refused subscriber" not_leased 2001:db8:100:20::/64
expect "the earlier rows are intact: acct-1's block still traces to it" traces_to "$ACCT1" acct-1
lists() { ctl subscriber list | grep -q -- "$1"; }
expect "the subscriber list still shows acct-1's prefix" lists '2001:db8:100:1::/64'
expect "the daemon still runs" kill -0 "$E2E_DAEMON_PID"
expect "and answers" ctl status
traffic_flows "full disk"
# A brand-new subscriber: the data path leases it a block at once; recording it fails while the
# disk is full and is retried.
expect "a brand-new subscriber's traffic is translated while the disk is full" \
	nat64_flow udp 2001:db8:100:3::a 0 "$SERVER6"
SUB3=$(ctl subscriber show 2001:db8:100:3::/64 --json | $PYTHON -c '
import json, sys; d = json.load(sys.stdin); print(d["public_address"] + ":" + d["ports"].split("-")[0])')
wait_for_log() { # PATTERN SECONDS
	local i
	for i in $(seq $(($2 * 10))); do
		grep -qE -- "$1" "$E2E_TMP/xlat64d.log" && return 0
		sleep 0.1
	done
	return 1
}
expect "its allocation could not be recorded (full) and is to be retried, logged" \
	wait_for_log 'nat64: cannot record an allocation, will retry: .*database or disk is full' 5
expect "the daemon still runs after that" kill -0 "$E2E_DAEMON_PID"
in_daemon_mnt rm -f "$FULL/fill" "$FULL/fill2"
log "space freed: $(in_daemon_mnt df -h --output=size,used,avail "$FULL" | tail -n 1)"
recorded() {
	local i
	for i in $(seq 50); do
		traces_to "$SUB3" '2001:db8:100:3::/64' 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
expect "once space is free, the data path's allocation ($SUB3) is recorded in the store" recorded
expect "and subscriber add for the refused subscriber now succeeds" \
	ctl subscriber add 2001:db8:100:20::/64 --id acct-2
expect "the daemon still runs" kill -0 "$E2E_DAEMON_PID"
ctl subscriber list
stop_daemon
grep -E 'error|warning|state store' "$E2E_TMP/xlat64d.log" | tail -n 10
