#!/bin/bash
# Control-plane benchmark (issue 7): how xlat64d's start-up, reload, reboot restore and
# provisioning grow with the size of the tables, from 10,000 to 1,000,000.
#
#   eam-start        start xlat64d with N EAMT entries (/32 <-> /128) in its eamt_file, until
#                    `xlat64ctl status` answers; then the kernel memory of its maps
#   eam-reload       `xlat64ctl reload` with 1% of the N entries changed (their IPv6 side)
#   eam-reload-100   `xlat64ctl reload` with 100 entries changed, whatever N: what a reload costs
#                    beyond the change itself (reading and checking the file)
#   eam-reload-noop  `xlat64ctl reload` once more, nothing changed (the fixed cost of a reload)
#   reboot           a store with N open allocations (dynamic NAT64), no kernel state: start
#                    until status answers; the log must say "restoring N leases from the store"
#   restart          SIGTERM and start again with the kernel state kept (adoption)
#   subscriber-add   N x `xlat64ctl subscriber add` (one CLI call, one commit each), N <= 10,000
#   import           `xlat64ctl subscriber import` of a file of N subscribers (each gets its block)
#   import-again     the same file once more (idempotent: nothing changes)
#
# Every step runs xlat64d in a throw-away network namespace (no traffic), with its own pin dir,
# control socket and state directory under a temporary directory. Peak RSS is the daemon's VmHWM
# (/proc/PID/status), reset (clear_refs 5) before each reload so a reload shows its own peak; map
# memory is the sum of bpftool's bytes_memlock over the xlat_* maps of the pin dir.
#
# Limits that make some sizes extrapolated (marked so in the table and the JSON):
# - eam-*: the IPv4 sides are /32s of 100.64.0.0/10 (4,194,304 of them); larger N is
#   extrapolated linearly from the largest measured size.
# - subscriber-add: measured only for N <= 10,000; larger N is the per-subscriber time of the
#   largest measured size times N.
# - reboot, restart, subscriber-add: dynamic NAT64, the public addresses the smallest
#   100.96.0.0/LEN (LEN >= 17: at most 1,015,808 blocks of 2048 ports, 31 per address) holding N
#   blocks. A size whose layout xlat64d refuses to start with is recorded as failed (exit 1).
#
# Usage (root): controlplane.sh [--sizes 10000,100000,1000000] [--smoke] [--output FILE]
#                               [--steps eam,reboot,subscriber-add,import] [--profile DIR]
#   --smoke    N=1000 for every step; only checks that each step worked (exit 1 otherwise).
#   --steps    only these steps (reboot includes restart, import includes import-again).
#   --profile  a system-wide `perf record -g` around each reboot and restart start-up and each
#              import, saved in DIR with a `perf report` summary.
# Environment: XLAT64D, XLAT64CTL (binaries, required), PYTHON (default /usr/bin/python3).
#
# Safety: no packet is sent; everything lives in a namespace created here, on documentation
# prefixes (2001:db8::/32 and 100.64.0.0/10: the EAMT, the internal pool 100.64.0.0/12, the
# public addresses from 100.96.0.0/17). Daemon (by PID), kernel state
# (xlat64d --teardown), namespace, pins and the temporary directory are removed on exit, whether
# the run succeeded or not.

set -euo pipefail

XLAT64D=${XLAT64D:?set XLAT64D to the xlat64d binary}
XLAT64CTL=${XLAT64CTL:?set XLAT64CTL to the xlat64ctl binary}
PYTHON=${PYTHON:-/usr/bin/python3}

SMOKE=0
SIZES=10000,100000,1000000
OUTPUT=
STEPS=eam,reboot,subscriber-add,import
PROFILE_DIR=
while (($#)); do
	case $1 in
	--smoke) SMOKE=1 ;;
	--sizes) SIZES=$2; shift ;;
	--output) OUTPUT=$2; shift ;;
	--steps) STEPS=$2; shift ;;
	--profile) PROFILE_DIR=$2; shift ;;
	-h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "controlplane.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
((SMOKE)) && SIZES=1000
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for n in "${SIZE_LIST[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "controlplane.sh: bad size '$n'" >&2; exit 2; }
done
mapfile -t SIZE_LIST < <(printf '%s\n' "${SIZE_LIST[@]}" | sort -n -u)

EAM_MAX=4194304        # /32s in 100.64.0.0/10
BLOCKS_MAX=1015808     # 100.96.0.0/17, 31 blocks of 2048 ports per address
SUBSCRIBER_ADD_MAX=10000

ID=$(printf '%04x' $((RANDOM)))
TMP=$(mktemp -d "/tmp/xlat64-cp-$ID.XXXX")
NS=xlcp-$ID
PIN_DIR=/sys/fs/bpf/xlat64-cp-$ID
SOCKET=$TMP/control.sock
STATE_DIR=$TMP/state
CONFIG=$TMP/xlat64.yaml   # the file xlat64d runs with (a reload re-reads it)
EAMT_FILE=$TMP/eamt.txt   # its eamt_file in the eam-* steps
RESULTS=$TMP/results.jsonl
DAEMON_PID=
DAEMON_LOG=
KERNEL_STATE=0            # 1 while xlat64d's kernel state may exist (teardown needed)
FAILED_CHECKS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'controlplane: %s\n' "$*" >&2; exit 1; }

cleanup() {
	local rc=$?
	set +e
	if [[ -n ${PERF_PID:-} ]]; then
		kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
	fi
	if [[ -n $DAEMON_PID ]]; then
		kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	fi
	if ((KERNEL_STATE)) && [[ -e /run/netns/$NS && -f $CONFIG ]]; then
		nsenter --net="/run/netns/$NS" "$XLAT64D" --config "$CONFIG" --teardown >/dev/null 2>&1
	fi
	[[ -e /run/netns/$NS ]] && ip netns del "$NS"
	if [[ -d $PIN_DIR ]]; then
		rm -f "$PIN_DIR"/xlat_* && rmdir "$PIN_DIR"
	fi
	if ((rc != 0)) && [[ -n $DAEMON_LOG && -f $DAEMON_LOG ]]; then
		echo "--- $DAEMON_LOG (last 30 lines)" >&2
		tail -n 30 "$DAEMON_LOG" >&2
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up

ctl() { "$XLAT64CTL" --socket "$SOCKET" "$@"; }
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { "$PYTHON" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }

# Configuration files: the common part (pin dir, socket, state), plus a body.
common_config() {
	cat <<-EOF
		control:
		  socket: $SOCKET
		bpf:
		  pin_dir: $PIN_DIR
		state:
		  directory: $STATE_DIR
	EOF
}

# eam_config N EVERY FIRST: the configuration, and in $EAMT_FILE N entries 100.64.0.0+i/32 <->
# 2001:db8:ee::i/128, except that the entries with i % EVERY == 0 (EVERY > 0) or i < FIRST map to
# 2001:db8:ef::i/128 instead. The EAMT is in an eamt_file, the format meant for tables this size
# (yaml-cpp takes about 18 s and 3 GB for a million entries in YAML; README "Large EAMTs").
eam_config() {
	common_config
	echo "eamt_file: $EAMT_FILE"
	"$PYTHON" - "$1" "$2" "${3:-0}" "$EAMT_FILE" <<-'EOF'
		import ipaddress, sys
		n, every, first, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
		v4 = int(ipaddress.IPv4Address("100.64.0.0"))
		a = int(ipaddress.IPv6Address("2001:db8:ee::"))
		b = int(ipaddress.IPv6Address("2001:db8:ef::"))
		with open(path, "w") as f:
		    for i in range(n):
		        six = (b if (every and i % every == 0) or i < first else a) + i
		        f.write(f"{ipaddress.IPv4Address(v4 + i)}/32 {ipaddress.IPv6Address(six)}/128\n")
	EOF
}

# nat64_config N: dynamic NAT64, /64 subscribers in 2001:db8:100::/40, one internal address per
# block, session_counters off as the README advises beyond 100,000 subscribers
# (NAT64_SESSION_COUNTERS=true measures them on); public addresses: the smallest prefix of 100.96.0.0/17.. with at least N blocks of 2048
# ports (31 per address), so the layout grows with N as an operator's would.
nat64_public_len() {
	local n=$1 len=32
	while ((len > 17 && (1 << (32 - len)) * 31 < n)); do len=$((len - 1)); done
	echo "$len"
}
nat64_blocks() { echo $(((1 << (32 - $(nat64_public_len "$1"))) * 31)); }
json_error() { "$PYTHON" -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' "$1"; }
nat64_config() {
	common_config
	cat <<-EOF
		nat64:
		  prefixes: [2001:db8:100::/40]
		  subscriber_length: 64
		  hosts_per_subscriber: 1
		  internal_pool: 100.64.0.0/12
		  public_prefixes: [100.96.0.0/$(nat64_public_len "$1")]
		  ports: 1024-65535
		  block_size: 2048
		  mode: dynamic
		  session_counters: ${NAT64_SESSION_COUNTERS:-false}
	EOF
}

# start_daemon LOGNAME: starts xlat64d with $CONFIG; sets DAEMON_PID and START_SECONDS (until
# `xlat64ctl status` answers). nsenter --net (not ip netns exec) keeps bpffs visible; nsenter
# execs the daemon, so $! is the daemon's PID.
start_daemon() {
	DAEMON_LOG=$TMP/$1.log
	local t0 t1
	t0=$(now)
	KERNEL_STATE=1
	nsenter --net="/run/netns/$NS" "$XLAT64D" --config "$CONFIG" >>"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	until ctl status >/dev/null 2>&1; do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID" 2>/dev/null || true
			DAEMON_PID=
			START_ERROR=$(grep -m1 -i 'failed\|error' "$DAEMON_LOG" || tail -n 1 "$DAEMON_LOG")
			((${ALLOW_START_FAILURE:-0})) && return 1
			die "xlat64d exited during start-up: $(tail -n 20 "$DAEMON_LOG")"
		fi
		sleep 0.02
	done
	t1=$(now)
	START_SECONDS=$(elapsed "$t0" "$t1")
}

# profile_begin NAME / profile_end NAME: a system-wide `perf record -g` between the two when
# --profile DIR was given (DIR/NAME.data and a `perf report` summary beside it); else nothing.
PERF_PID=
profile_begin() {
	[[ -n $PROFILE_DIR ]] || return 0
	mkdir -p "$PROFILE_DIR"
	perf record -a -g -o "$PROFILE_DIR/$1.data" >"$PROFILE_DIR/$1.record.log" 2>&1 &
	PERF_PID=$!
	sleep 0.5
}
profile_end() {
	[[ -n $PERF_PID ]] || return 0
	kill -INT "$PERF_PID" && wait "$PERF_PID" || true
	PERF_PID=
	perf report -i "$PROFILE_DIR/$1.data" --no-children --sort comm,dso,symbol --stdio \
		2>/dev/null | grep -v '^$' | head -n 120 >"$PROFILE_DIR/$1.report.txt" || true
}

# profiled_start LOGNAME: start_daemon inside profile_begin/profile_end.
profiled_start() {
	profile_begin "$1"
	start_daemon "$1"
	profile_end "$1"
}

# want STEP: the step was selected with --steps.
want() { [[ ,$STEPS, == *,$1,* ]]; }

stop_daemon() {
	[[ -n $DAEMON_PID ]] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
}

# Removes the daemon's kernel state and its store: the next start is a fresh one.
teardown() {
	stop_daemon
	if ((KERNEL_STATE)); then
		nsenter --net="/run/netns/$NS" "$XLAT64D" --config "$CONFIG" --teardown >>"$TMP/teardown.log" 2>&1 ||
			die "teardown failed: $(tail -n 5 "$TMP/teardown.log")"
		KERNEL_STATE=0
	fi
	rm -rf "$STATE_DIR"
}

hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status"; }
reset_hwm() { echo 5 >"/proc/$DAEMON_PID/clear_refs"; }

# The kernel memory of the maps of our pin dir: {"total": bytes, "maps": {name: bytes}}.
map_memory() {
	local f
	for f in "$PIN_DIR"/xlat_*; do
		[[ -e $f ]] || continue
		printf '%s ' "${f##*/}"
		bpftool -j map show pinned "$f"
		echo
	done | "$PYTHON" -c '
import json, sys
maps = {}
for line in sys.stdin:
    name, _, js = line.partition(" ")
    if js.strip():
        maps[name] = int(json.loads(js).get("bytes_memlock", 0))
print(json.dumps({"total": sum(maps.values()), "maps": maps}))'
}

# record STEP N SECONDS RSS_KIB MAPS_JSON EXTRA_JSON
record() {
	"$PYTHON" -c '
import json, sys
step, n, sec, rss, maps, extra = sys.argv[1:7]
row = {"step": step, "n": int(n), "seconds": float(sec) if sec else None,
       "peak_rss_kib": int(rss) if rss else None,
       "map_bytes": json.loads(maps)["total"] if maps else None,
       "maps": json.loads(maps)["maps"] if maps else None}
row.update(json.loads(extra or "{}"))
print(json.dumps(row))' "$@" >>"$RESULTS"
}

check() {
	local what=$1
	shift
	if "$@"; then
		log "ok: $what"
	else
		log "FAILED: $what"
		FAILED_CHECKS+=("$what")
	fi
}

# --- steps ---

# eam_reload STEP N WHAT: times `xlat64ctl reload` of the configuration as it is now, records it
# as STEP with the JSON note WHAT (the answer is added).
eam_reload() {
	local step=$1 n=$2 what=$3 t0 t1 out rss
	reset_hwm
	t0=$(now)
	out=$(ctl reload 2>&1) || die "reload failed: $out"
	t1=$(now)
	rss=$(hwm_kib)
	record "$step" "$n" "$(elapsed "$t0" "$t1")" "$rss" "" \
		"$("$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d["answer"]=sys.argv[2]; print(json.dumps(d))' "$what" "$out")"
	log "$step N=$n: $(elapsed "$t0" "$t1")s: $out"
	RELOAD_ANSWER=$out
}

# timed_import NAME: `xlat64ctl subscriber import $TMP/import.txt`, timed (profiled as NAME with
# --profile), peak RSS reset before; IMPORT_SECONDS and IMPORT_ANSWER hold the result.
timed_import() {
	local t0 t1
	reset_hwm
	profile_begin "$1"
	t0=$(now)
	IMPORT_ANSWER=$(ctl subscriber import "$TMP/import.txt" 2>&1) ||
		die "$1 failed: $IMPORT_ANSWER"
	t1=$(now)
	profile_end "$1"
	IMPORT_SECONDS=$(elapsed "$t0" "$t1")
}

# eam N: start with N entries, reload with 1% changed, with 100 changed, unchanged.
step_eam() {
	local n=$1
	teardown
	eam_config "$n" 0 >"$CONFIG"
	log "eam-start N=$n ($(du -h "$EAMT_FILE" | cut -f1) of eamt_file)"
	start_daemon "eam-$n"
	local rss maps
	rss=$(hwm_kib)
	maps=$(map_memory)
	local size
	size=$(ctl --json status | "$PYTHON" -c 'import json,sys; s=json.load(sys.stdin); print(s.get("eamt_entries", s.get("eamt", {}).get("entries", "?")) if isinstance(s, dict) else "?")' 2>/dev/null || echo "?")
	record eam-start "$n" "$START_SECONDS" "$rss" "$maps" "{\"status_eamt\": \"$size\"}"
	log "eam-start N=$n: ${START_SECONDS}s, VmHWM $rss KiB, EAMT in status: $size"
	check "eam-start N=$n: status counts $n EAMT entries" test "$size" = "$n"
	((SMOKE)) && check "eam-start N=$n: map memory > 0" test "$(jq_total "$maps")" -gt 0

	local changed=$(((n + 99) / 100))
	eam_config "$n" 100 >"$CONFIG"
	eam_reload eam-reload "$n" "{\"changed_entries\": $changed}"
	# Each changed entry is removed and added again: two changes.
	check "eam-reload N=$n: $changed entries changed" \
		grep -q "applied, $((2 * changed)) changes" <<<"$RELOAD_ANSWER"

	# Back to the start (not recorded), then 100 entries changed.
	eam_config "$n" 0 >"$CONFIG"
	ctl reload >/dev/null || die "reload back to the start failed"
	eam_config "$n" 0 100 >"$CONFIG"
	eam_reload eam-reload-100 "$n" "{\"changed_entries\": 100}"
	check "eam-reload-100 N=$n: 100 entries changed" grep -q "applied, 200 changes" <<<"$RELOAD_ANSWER"

	eam_reload eam-reload-noop "$n" "{}"
	check "eam-reload-noop N=$n: nothing to change" grep -q 'already matches' <<<"$RELOAD_ANSWER"
	teardown
}

jq_total() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["total"])' "$1"; }

# reboot N: a store with N open allocations, no kernel state; then a plain restart.
step_reboot() {
	local n=$1 t0 t1
	teardown
	nat64_config "$n" >"$CONFIG"
	# The first start creates the store and records the NAT64 configuration.
	if ! ALLOW_START_FAILURE=1 start_daemon "reboot-init-$n"; then
		record reboot "$n" "" "" "" "$(json_error "$START_ERROR")"
		log "reboot N=$n: xlat64d does not start with $(nat64_blocks "$n") blocks: $START_ERROR"
		check "reboot N=$n: xlat64d starts with the layout" false
		teardown
		return 0
	fi
	stop_daemon
	t0=$(now)
	"$PYTHON" - "$STATE_DIR/state.db" "$n" <<-'EOF'
		import ipaddress, sqlite3, sys, time
		path, n = sys.argv[1], int(sys.argv[2])
		# The layout of nat64_config: block k = public address k // 31 of 100.96.0.0/LEN, ports
		# 1024 + (k % 31) * 2048 .. +2047 (address-major, port_blocks.cpp), internal 100.64.0.0 + k
		# (/32, hosts_per_subscriber 1); subscriber k = 2001:db8:100::/40 + k, /64.
		pub = int(ipaddress.IPv4Address("100.96.0.0"))
		internal = int(ipaddress.IPv4Address("100.64.0.0"))
		sub = int(ipaddress.IPv6Address("2001:db8:100::"))
		now = int(time.time())
		def rows():
		    for k in range(n):
		        first = 1024 + (k % 31) * 2048
		        yield (f"{ipaddress.IPv6Address(sub + (k << 64))}/64", f"bench-{k}", k,
		               f"{ipaddress.IPv4Address(internal + k)}/32",
		               str(ipaddress.IPv4Address(pub + k // 31)), first, first + 2047, now)
		db = sqlite3.connect(path)
		with db:
		    db.executemany("INSERT INTO allocations (subscriber, account, block, internal, "
		                   "public_address, first_port, last_port, valid_from) "
		                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
		db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
		db.close()
	EOF
	t1=$(now)
	log "reboot N=$n: store filled in $(elapsed "$t0" "$t1")s ($(du -h "$STATE_DIR/state.db" | cut -f1))"
	# The reboot: the kernel state goes, the store stays.
	nsenter --net="/run/netns/$NS" "$XLAT64D" --config "$CONFIG" --teardown >>"$TMP/teardown.log" 2>&1 ||
		die "teardown failed"
	[[ ! -e $PIN_DIR/xlat_n64_owner ]] || die "teardown left the pins"
	profiled_start "reboot-$n"
	local rss maps restored
	rss=$(hwm_kib)
	maps=$(map_memory)
	restored=$(grep -o 'restoring [0-9]* leases from the store' "$DAEMON_LOG" | grep -o '[0-9]*' | tail -n 1)
	record reboot "$n" "$START_SECONDS" "$rss" "$maps" "{\"restored\": ${restored:-0}, \"blocks\": $(nat64_blocks "$n")}"
	log "reboot N=$n: ${START_SECONDS}s, VmHWM $rss KiB, restored ${restored:-0} leases"
	check "reboot N=$n: log says restoring $n leases" test "${restored:-0}" = "$n"

	stop_daemon
	profiled_start "restart-$n"
	rss=$(hwm_kib)
	record restart "$n" "$START_SECONDS" "$rss" "$(map_memory)" "{\"blocks\": $(nat64_blocks "$n")}"
	log "restart N=$n (kernel state kept): ${START_SECONDS}s, VmHWM $rss KiB"
	teardown
}

# subscriber_add N: N x xlat64ctl subscriber add (dynamic mode: each gets its block at once).
step_subscriber_add() {
	local n=$1 i t0 t1 failed=0
	teardown
	nat64_config "$n" >"$CONFIG"
	start_daemon "subscriber-$n"
	# The prefixes, generated before the clock starts.
	"$PYTHON" -c '
import ipaddress, sys
s = int(ipaddress.IPv6Address("2001:db8:100::"))
for k in range(int(sys.argv[1])):
    print(f"{ipaddress.IPv6Address(s + (k << 64))}/64")' "$n" >"$TMP/prefixes"
	reset_hwm
	t0=$(now)
	i=0
	while read -r prefix; do
		ctl subscriber add "$prefix" --id "bench-$i" >/dev/null 2>>"$TMP/subscriber-errors" || failed=$((failed + 1))
		i=$((i + 1))
	done <"$TMP/prefixes"
	t1=$(now)
	local sec rss maps
	sec=$(elapsed "$t0" "$t1")
	rss=$(hwm_kib)
	maps=$(map_memory)
	local leases
	leases=$("$PYTHON" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM allocations WHERE valid_until IS NULL").fetchone()[0])' "$STATE_DIR/state.db")
	record subscriber-add "$n" "$sec" "$rss" "$maps" "{\"failed\": $failed, \"open_allocations\": $leases}"
	log "subscriber-add N=$n: ${sec}s, $failed failed, $leases open allocations in the store"
	check "subscriber-add N=$n: all added" test "$failed" = 0
	check "subscriber-add N=$n: $n open allocations in the store" test "$leases" = "$n"
	teardown
}

# import N: `xlat64ctl subscriber import` of a file of N subscribers (dynamic mode: each gets its
# block), end to end (the CLI's check of the whole file, the daemon's check, the chunks); then the
# same file again (idempotent: nothing changes).
step_import() {
	local n=$1
	teardown
	nat64_config "$n" >"$CONFIG"
	start_daemon "import-$n"
	"$PYTHON" -c '
import ipaddress, sys
s = int(ipaddress.IPv6Address("2001:db8:100::"))
w = sys.stdout.write
for k in range(int(sys.argv[1])):
    w(f"{ipaddress.IPv6Address(s + (k << 64))}/64 bench-{k}\n")' "$n" >"$TMP/import.txt"
	timed_import "import-$n"
	local sec=$IMPORT_SECONDS out=$IMPORT_ANSWER rss maps leases
	rss=$(hwm_kib)
	maps=$(map_memory)
	leases=$("$PYTHON" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM allocations WHERE valid_until IS NULL").fetchone()[0])' "$STATE_DIR/state.db")
	record import "$n" "$sec" "$rss" "$maps" \
		"$("$PYTHON" -c 'import json,sys; print(json.dumps({"open_allocations": int(sys.argv[1]), "answer": sys.argv[2]}))' "$leases" "$out")"
	log "import N=$n: ${sec}s: $out; $leases open allocations in the store"
	check "import N=$n: $n open allocations in the store" test "$leases" = "$n"
	timed_import "import-again-$n"
	sec=$IMPORT_SECONDS out=$IMPORT_ANSWER
	record import-again "$n" "$sec" "$(hwm_kib)" "" \
		"$("$PYTHON" -c 'import json,sys; print(json.dumps({"answer": sys.argv[1]}))' "$out")"
	log "import-again N=$n: ${sec}s: $out"
	check "import-again N=$n: nothing changed" grep -q ": 0 added, 0 with a new account id, $n unchanged; 0 port blocks leased" <<<"$out"
	teardown
}

# --- the run ---

log "xlat64d $XLAT64D, sizes ${SIZE_LIST[*]}, temp $TMP, namespace $NS"
for n in "${SIZE_LIST[@]}"; do
	if ! want eam; then
		:
	elif ((n <= EAM_MAX)); then
		step_eam "$n"
	else
		log "eam N=$n: more than the $EAM_MAX /32s of 100.64.0.0/10: extrapolated"
	fi
	if ! want reboot; then
		:
	elif ((n <= BLOCKS_MAX)); then
		step_reboot "$n"
	else
		log "reboot N=$n: more than the $BLOCKS_MAX blocks of the layout: skipped"
	fi
done
sub_sizes=()
for n in "${SIZE_LIST[@]}"; do ((n <= SUBSCRIBER_ADD_MAX)) && sub_sizes+=("$n"); done
((${#sub_sizes[@]})) || sub_sizes=("$SUBSCRIBER_ADD_MAX")
if want subscriber-add; then
	for n in "${sub_sizes[@]}"; do step_subscriber_add "$n"; done
fi
if want import; then
	for n in "${SIZE_LIST[@]}"; do
		if ((n <= BLOCKS_MAX)); then
			step_import "$n"
		else
			log "import N=$n: more than the $BLOCKS_MAX blocks of the layout: skipped"
		fi
	done
fi

# Table and JSON (extrapolated rows added for the sizes that were not measured).
"$PYTHON" - "$RESULTS" "${OUTPUT:-}" "$SIZES" "$SMOKE" <<-'EOF' >&2
	import json, os, platform, subprocess, sys, time
	results, output, sizes, smoke = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
	rows = [json.loads(l) for l in open(results)]
	sizes = sorted({int(s) for s in sizes.split(",")})
	def measured(step):
	    return sorted((r for r in rows if r["step"] == step), key=lambda r: r["n"])
	for step in ("eam-start", "eam-reload", "eam-reload-100", "eam-reload-noop", "subscriber-add"):
	    m = measured(step)
	    if not m:
	        continue
	    base = m[-1]
	    for n in sizes:
	        if n > base["n"] and not any(r["n"] == n for r in m):
	            scale = n / base["n"]
	            rows.append({"step": step, "n": n, "extrapolated_from": base["n"],
	                         "seconds": base["seconds"] * scale if base["seconds"] else None,
	                         "peak_rss_kib": None,
	                         "map_bytes": None})
	    if step == "subscriber-add" and 1000000 not in sizes:
	        rows.append({"step": step, "n": 1000000, "extrapolated_from": base["n"],
	                     "seconds": base["seconds"] * 1000000 / base["n"], "peak_rss_kib": None,
	                     "map_bytes": None})
	order = ["eam-start", "eam-reload", "eam-reload-100", "eam-reload-noop", "reboot", "restart", "subscriber-add",
	         "import", "import-again"]
	rows.sort(key=lambda r: (order.index(r["step"]), r["n"]))
	fmt = "{:<17} {:>9} {:>12} {:>14} {:>14}  {}"
	print(fmt.format("step", "N", "seconds", "peak RSS MiB", "maps MiB", "note"))
	print("-" * 90)
	for r in rows:
	    note = ""
	    if "extrapolated_from" in r:
	        note = f"extrapolated (linear) from N={r['extrapolated_from']}"
	    elif r["step"] == "subscriber-add":
	        note = f"{r['seconds'] / r['n'] * 1000:.2f} ms per subscriber"
	    elif r["step"] in ("import", "import-again"):
	        note = f"{r['seconds'] / r['n'] * 1e6:.1f} us per subscriber"
	    elif r.get("error"):
	        note = "FAILED: " + r["error"].split(" failed: ")[-1][-70:]
	    elif r["step"] in ("reboot", "restart"):
	        note = f"restored {r.get('restored')}, " if r["step"] == "reboot" else ""
	        note += f"{r.get('blocks')} blocks in the layout"
	    elif r["step"] == "eam-reload":
	        note = f"{r.get('changed_entries')} entries changed"
	    sec = f"{r['seconds']:.3f}" if r["seconds"] is not None else "-"
	    if "extrapolated_from" in r:
	        sec = "~" + sec
	    rss = f"{r['peak_rss_kib'] / 1024:.1f}" if r.get("peak_rss_kib") else "-"
	    maps = f"{r['map_bytes'] / 2**20:.1f}" if r.get("map_bytes") else "-"
	    if "extrapolated_from" in r and maps != "-":
	        maps = "~" + maps
	    print(fmt.format(r["step"], r["n"], sec, rss, maps, note))
	if output:
	    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
	    def cmd(*a):
	        try:
	            return subprocess.run(a, capture_output=True, text=True).stdout.strip()
	        except OSError:
	            return None
	    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
	    doc = {"benchmark": "controlplane", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
	           "machine": {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
	                       "loadavg": open("/proc/loadavg").read().split()[:3]},
	           "sizes": sizes, "results": rows}
	    with open(output, "w") as f:
	        json.dump(doc, f, indent=1)
	    print(f"\nwritten: {output}")
EOF

if ((${#FAILED_CHECKS[@]})); then
	die "failed: ${FAILED_CHECKS[*]}"
fi
((SMOKE)) && log "smoke: every step worked"
exit 0
