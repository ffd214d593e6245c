#!/bin/bash
# Bulk provisioning (`xlat64ctl subscriber import FILE`) in dynamic NAT64. Lab: nat64_lab
# (test/e2e/lib.sh); 256 public addresses x 31 blocks of 2048 ports = 7936 blocks, one internal
# address per block.
#
# Checks: a file with mistakes (syntax found by xlat64ctl, prefixes the configuration does not
# admit found by the daemon) is refused naming each line, and nothing changes (store, kernel,
# log); a file needing more blocks than are free is refused before anything changes; a file of
# 3000 subscribers (comments, blank lines, tabs) is imported: the store holds 3000 subscribers and
# 3000 open allocations on distinct blocks, the kernel leases the same blocks, the log has one
# allocate line each, and a sample subscriber's traffic leaves from its block; importing it again
# changes nothing, and a changed account id is updated; xlat64d killed with SIGKILL at random
# moments of five imports, restarted: store and kernel agree, no block is held twice, and the
# imports run again complete.
source "$(dirname "$0")/lib.sh"

nat64_lab
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/48]
  subscriber_length: 64
  hosts_per_subscriber: 1
  public_prefixes: [203.0.113.0/24]
  ports: 1024-65535
  block_size: 2048
  mode: dynamic
  idle_timeout: 600
YAML
SERVER6=2001:db8:64::c633:640a
STORE=$E2E_STATE_DIR/state.db
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080

# subscribers FIRST COUNT [ACCOUNT-PREFIX]: lines "2001:db8:100:K::/64 ACCOUNT-PREFIX-K" (K hex).
subscribers() {
	"$PYTHON" -c '
import sys
first, count, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for k in range(first, first + count):
    print(f"2001:db8:100:{k:x}::/64 {name}-{k}")' "$1" "$2" "${3:-acct}"
}

# store_counts: "SUBSCRIBERS OPEN DISTINCT-OPEN-BLOCKS" from the store (read-only).
store_counts() {
	"$PYTHON" - "$STORE" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
subs = db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
open_, blocks = db.execute("SELECT count(*), count(DISTINCT block) FROM allocations "
                           "WHERE valid_until IS NULL").fetchone()
print(subs, open_, blocks)
PY
}

# agree: the store's open allocations and the kernel's leases are the same (subscriber, block)
# pairs, each block once, and the owner map names each lease's subscriber and nothing else.
agree() {
	bpftool -j map dump pinned "$E2E_PIN_DIR/xlat_n64_owner" >"$E2E_TMP/owner.json"
	bpftool -j map dump pinned "$E2E_PIN_DIR/xlat_n64_subs" >"$E2E_TMP/leases.json"
	"$PYTHON" - "$STORE" "$E2E_TMP/owner.json" "$E2E_TMP/leases.json" <<'PY'
import ipaddress, json, sqlite3, sys
def raw(v):
    return bytes(int(x, 16) for x in v)
def prefix(b):
    return str(ipaddress.IPv6Network((ipaddress.IPv6Address(b), 64), strict=False))
owners = {int.from_bytes(raw(e["key"]), "little"): prefix(raw(e["value"]))
          for e in json.load(open(sys.argv[2]))}
leases = {prefix(raw(e["key"])): int.from_bytes(raw(e["value"])[:4], "little")
          for e in json.load(open(sys.argv[3]))}
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
stored = dict(db.execute("SELECT subscriber, block FROM allocations WHERE valid_until IS NULL"))
problems = []
if stored != leases:
    only_store = set(stored.items()) - set(leases.items())
    only_kernel = set(leases.items()) - set(stored.items())
    problems.append(f"store and kernel differ: {len(only_store)} only in the store "
                    f"{sorted(only_store)[:3]}, {len(only_kernel)} only in the kernel "
                    f"{sorted(only_kernel)[:3]}")
if len(set(leases.values())) != len(leases):
    problems.append("a block is leased twice")
want_owners = {b: s for s, b in leases.items()}
if owners != want_owners:
    problems.append(f"owner map differs: {len(owners)} owners, {len(want_owners)} leases")
print(f"{len(stored)} open allocations, {len(leases)} leases, {len(owners)} owners")
if problems:
    sys.exit("; ".join(problems))
PY
}

allocate_lines() { grep -c '^nat64 allocate' "$E2E_TMP/xlat64d.log" || true; }

# --- A bad file changes nothing ------------------------------------------------------------------
cat >"$E2E_TMP/bad.txt" <<'EOF'
# a provisioning file with mistakes
2001:db8:100:1::/64 alice
2001:db8:100:2::/64
2001:db8:100:3::1/64 carol
not-a-prefix dave
2001:db8:100:1::/64 erin
2001:db8:100:4::/64 frank smith
2001:db8:100:5::/64 grace
EOF
expect "a file with syntax mistakes is refused" \
	bash -c "! '$XLAT64CTL' --socket '$E2E_SOCKET' subscriber import '$E2E_TMP/bad.txt' 2>'$E2E_TMP/bad.err'"
cat "$E2E_TMP/bad.err"
for want in "bad.txt:3: '2001:db8:100:2::/64' has no account id" \
	"bad.txt:4: '2001:db8:100:3::1/64' has host bits set; did you mean 2001:db8:100:3::/64?" \
	"bad.txt:5: 'not-a-prefix' has no prefix length" \
	"bad.txt:6: 2001:db8:100:1::/64 is already on line 2" \
	"bad.txt:7: 3 fields" "5 problems in $E2E_TMP/bad.txt; nothing was imported"; do
	expect "the refusal names: $want" grep -qF -- "$want" "$E2E_TMP/bad.err"
done
printf '2001:db8:100:1::/64 alice\n2001:db8:200::/64 bob\n2001:db8:100:200::/56 carol\n' >"$E2E_TMP/foreign.txt"
expect "a file with prefixes the configuration does not admit is refused" \
	bash -c "! '$XLAT64CTL' --socket '$E2E_SOCKET' subscriber import '$E2E_TMP/foreign.txt' 2>'$E2E_TMP/foreign.err'"
cat "$E2E_TMP/foreign.err"
expect "line 2 is outside the admitted prefixes" \
	grep -qF "foreign.txt:2: 2001:db8:200::/64 is in none of the admitted nat64.prefixes (2001:db8:100::/48)" "$E2E_TMP/foreign.err"
expect "line 3 has the wrong length" \
	grep -qF "foreign.txt:3: 2001:db8:100:200::/56 is a /56; subscribers are /64" "$E2E_TMP/foreign.err"
subscribers 0 8000 >"$E2E_TMP/too-many.txt"
expect "a file needing more blocks than are free is refused" \
	bash -c "! '$XLAT64CTL' --socket '$E2E_SOCKET' subscriber import '$E2E_TMP/too-many.txt' 2>'$E2E_TMP/too-many.err'"
cat "$E2E_TMP/too-many.err"
expect "the refusal counts the blocks" grep -qF "8000 of its subscribers need a port block, only 7936 are free" "$E2E_TMP/too-many.err"
read -r subs open blocks < <(store_counts)
expect "nothing was stored ($subs subscribers, $open open allocations)" test "$subs $open" = "0 0"
expect "nothing was leased in the kernel" agree
expect "nothing was logged" test "$(allocate_lines)" -eq 0

# --- The import ----------------------------------------------------------------------------------
{
	echo "# subscribers of the test, PREFIX ACCOUNT"
	echo
	subscribers 0 3 | sed 's/ /\t/'   # tab-separated
	echo "   # an indented comment"
	subscribers 3 2997 | sed '5s/$/   # a trailing comment/'
} >"$E2E_TMP/subscribers.txt"
out=$(ctl subscriber import "$E2E_TMP/subscribers.txt")
echo "$out"
expect "3000 subscribers imported, each with a block" \
	grep -qF "imported 3000 subscribers from $E2E_TMP/subscribers.txt: 3000 added, 0 with a new account id, 0 unchanged; 3000 port blocks leased" <<<"$out"
read -r subs open blocks < <(store_counts)
expect "the store holds 3000 subscribers, 3000 open allocations on 3000 blocks ($subs $open $blocks)" \
	test "$subs $open $blocks" = "3000 3000 3000"
expect "store and kernel agree" agree
expect "one allocate line per subscriber ($(allocate_lines))" test "$(allocate_lines)" -eq 3000
expect "the allocate line names the account" grep -qE '^nat64 allocate .* subscriber=2001:db8:100:3::/64 account=acct-3 ' "$E2E_TMP/xlat64d.log"

# A sample subscriber's traffic leaves from the block the store gives it.
read -r pub ports < <(ctl --json subscriber show 2001:db8:100:3::/64 |
	"$PYTHON" -c 'import json,sys; s=json.load(sys.stdin); print(s["public_address"], s["ports"])')
stored=$("$PYTHON" -c '
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(*db.execute("SELECT public_address, first_port || \"-\" || last_port FROM allocations "
                  "WHERE subscriber = ? AND valid_until IS NULL", ("2001:db8:100:3::/64",)).fetchone())' "$STORE")
expect "subscriber show and the store name the same block ($pub $ports / $stored)" test "$pub $ports" = "$stored"
expect "udp from 2001:db8:100:3::a goes through" nat64_flow udp 2001:db8:100:3::a 0 "$SERVER6"
expect "tcp from 2001:db8:100:3::a goes through" nat64_flow tcp 2001:db8:100:3::a 0 "$SERVER6"
first=${ports%-*} last=${ports#*-}
expect "the server saw them from $pub ports $ports" \
	bash -c "awk '\$2 == \"$pub\" && \$3 >= $first && \$3 <= $last' '$E2E_TMP/peers-$SERVER.txt' | grep -c . | grep -qx 2"

# --- Idempotence ---------------------------------------------------------------------------------
out=$(ctl subscriber import "$E2E_TMP/subscribers.txt")
echo "$out"
expect "importing the file again changes nothing" grep -qF ": 0 added, 0 with a new account id, 3000 unchanged; 0 port blocks leased" <<<"$out"
sed 's/ acct-8$/ renamed-8/' "$E2E_TMP/subscribers.txt" | ctl subscriber import - >"$E2E_TMP/rename.out"
cat "$E2E_TMP/rename.out"
expect "a changed account id is updated, from standard input" grep -qF "imported 3000 subscribers from <stdin>: 0 added, 1 with a new account id, 2999 unchanged; 0 port blocks leased" "$E2E_TMP/rename.out"
read -r subs open blocks < <(store_counts)
expect "still 3000 subscribers and allocations ($subs $open $blocks)" test "$subs $open $blocks" = "3000 3000 3000"
expect "no new allocate line" test "$(allocate_lines)" -eq 3000
expect "store and kernel agree" agree

# --- SIGKILL during an import --------------------------------------------------------------------
# Five rounds of 800 new subscribers each, killed 0-50 ms after the import started (before, during
# or after its commit, or while the leases are set), then restarted.
for round in 0 1 2 3 4; do
	subscribers $((3000 + round * 800)) 800 >"$E2E_TMP/round.txt"
	ctl subscriber import "$E2E_TMP/round.txt" >"$E2E_TMP/round.out" 2>&1 &
	importer=$!
	sleep "0.0$((RANDOM % 6))"
	kill -KILL "$E2E_DAEMON_PID"
	wait "$E2E_DAEMON_PID" 2>/dev/null || true
	wait "$importer" 2>/dev/null || true
	log "round $round: $(tail -n 1 "$E2E_TMP/round.out"); store: $(store_counts)"
	start_daemon "$E2E_TMP/xlat64.yaml"
	expect "round $round: after the kill and a restart, store and kernel agree" agree
done
subscribers 3000 4000 >"$E2E_TMP/more.txt"
out=$(ctl subscriber import "$E2E_TMP/more.txt")
echo "$out"
expect "the import run again completes" grep -qF "imported 4000 subscribers" <<<"$out"
read -r subs open blocks < <(store_counts)
expect "7000 subscribers, 7000 open allocations on 7000 blocks ($subs $open $blocks)" \
	test "$subs $open $blocks" = "7000 7000 7000"
expect "store and kernel agree" agree
"$PYTHON" - "$STORE" <<'PY' || fail "a block was held by two subscribers at once"
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = db.execute("SELECT a.block FROM allocations a JOIN allocations b ON a.block = b.block "
                  "AND a.id < b.id AND a.valid_from < coalesce(b.valid_until, 1 << 62) "
                  "AND b.valid_from < coalesce(a.valid_until, 1 << 62) LIMIT 1").fetchall()
sys.exit(1 if rows else 0)
PY
pass "no block was ever held by two subscribers at once"
stop_daemon
