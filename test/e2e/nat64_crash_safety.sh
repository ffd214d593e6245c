#!/bin/bash
# Crash safety of dynamic NAT64 allocations: xlat64d is killed with SIGKILL at random moments
# during a burst of allocations, restarted, and the store and the kernel agree, with no block ever
# held by two subscribers. Lab: nat64_lab (test/e2e/lib.sh) plus, in the client namespace, eight
# more subscriber hosts per round (2001:db8:100:R0..R7::a); 16 public addresses x 126 blocks of
# 512 ports = 2016 blocks.
#
# Each of 10 rounds ($E2E_CRASH_ROUNDS): start xlat64d; in the background, four loops of
# `xlat64ctl subscriber add` for new prefixes (each acknowledged answer names the block, which
# must survive) and UDP flows from new subscriber hosts (the data path leases their blocks in the
# kernel; the daemon records them from events); after 0.2-1.5 s (random) SIGKILL. After each
# kill, the store (read-only) and the kernel maps are compared to see where the kill landed: a
# committed allocation whose lease was not yet set or whose answer never went out, a claimed block
# not yet committed ("mid-commit"), a data-path lease not yet recorded. After the last round xlat64d starts once more (sync_with_store) and:
#   - the store's open allocations equal the kernel's leases (xlat64ctl subscriber list), as
#     (subscriber, block) pairs;
#   - no block appears twice in either, no subscriber has two open allocations;
#   - xlat_n64_owner names each leased block's subscriber, and owns no block nobody leases;
#   - every acknowledged `subscriber add` and every answered data-path flow holds its block;
#   - in the store's whole history no block was held by two subscribers at once.
source "$(dirname "$0")/lib.sh"

ROUNDS=${E2E_CRASH_ROUNDS:-10}
ADDERS=4
nat64_lab
# Eight more subscriber hosts per round, 2001:db8:100:R0..R7::a (hex), inside the /56 the router
# routes to the client.
for r in $(seq "$ROUNDS"); do
	for j in $(seq 0 7); do
		ip -n "$CLIENT" addr add "2001:db8:100:$(printf %x $((r * 16 + j)))::a/128" dev eth0 nodad
	done
done
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/48]
  subscriber_length: 64
  hosts_per_subscriber: 4
  public_prefixes: [203.0.113.0/28]
  ports: 1024-65535
  block_size: 512
  mode: dynamic
  idle_timeout: 600
YAML
SERVER6=2001:db8:64::c633:640a
STORE=$E2E_STATE_DIR/state.db
start_server "$SERVER" 198.51.100.10 8080

# analyse MODE: compares the store (read-only), the kernel maps and what clients were told.
# MODE round: after a kill, classify where it landed (one summary line, key=value).
# MODE final: after the restart, every consistency check; exits non-zero listing what failed.
analyse() {
	local subs_json=$E2E_TMP/subs.json
	if [[ $1 == final ]]; then
		ctl subscriber list --json >"$subs_json"
	else
		echo null >"$subs_json"
	fi
	bpftool -j map dump pinned "$E2E_PIN_DIR/xlat_n64_owner" >"$E2E_TMP/owner.json"
	bpftool -j map dump pinned "$E2E_PIN_DIR/xlat_n64_subs" >"$E2E_TMP/leases.json"
	$PYTHON - "$1" "$STORE" "$E2E_TMP/owner.json" "$E2E_TMP/leases.json" "$subs_json" \
		"$E2E_TMP/acked" "$E2E_TMP/flows-ok" "$E2E_TMP/requested-${2:-0}" <<'PY'
import collections, ipaddress, json, os, sqlite3, sys

mode, store, owner_path, leases_path, subs_path, acked_path, flows_path, requested_path = sys.argv[1:]

def raw(v):
    return bytes(int(x, 16) for x in v)

def prefix(b):
    return str(ipaddress.IPv6Network((ipaddress.IPv6Address(b), 64), strict=False))

owners = {}
for e in json.load(open(owner_path)):
    owners[int.from_bytes(raw(e["key"]), "little")] = prefix(raw(e["value"]))
leases = []
for e in json.load(open(leases_path)):
    v = raw(e["value"])
    leases.append((prefix(raw(e["key"])), int.from_bytes(v[:4], "little")))

db = sqlite3.connect("file:" + store + "?mode=ro", uri=True)
rows = db.execute("SELECT subscriber, block, valid_from, valid_until, id FROM allocations").fetchall()
db.close()
open_rows = [(s, b) for s, b, f, u, i in rows if u is None]

def lines(path):
    return [l.split() for l in open(path).read().splitlines()] if os.path.exists(path) else []
acked = {p: int(b) for p, b in lines(acked_path)}
requested = {l[0] for l in lines(requested_path)}
flows_ok = {prefix(ipaddress.IPv6Address(l[0]).packed) for l in lines(flows_path)}

S, L = set(open_rows), set(leases)
leased_blocks = {b for _, b in L}
store_by_sub = dict(open_rows)
if mode == "round":
    committed_not_leased = sorted(S - L)
    claimed_not_committed = sorted(
        (s, b) for b, s in owners.items() if b not in leased_blocks and (s, b) not in S)
    leased_not_recorded = sorted(L - S)
    unacked_committed = sorted(p for p in requested if p not in acked and p in store_by_sub)
    print(f"store_open={len(S)} kernel_leases={len(L)} owners={len(owners)}"
          f" committed_not_leased={committed_not_leased or 0}"
          f" claimed_not_committed={claimed_not_committed or 0}"
          f" leased_not_recorded={len(leased_not_recorded)}"
          f" answered_never={unacked_committed or 0}")
    mid = bool(committed_not_leased or claimed_not_committed or unacked_committed)
    sys.exit(10 if mid else 0)

problems = []
subs = json.load(open(subs_path))
K = [(s["subscriber"], s["block"]) for s in subs]
if set(K) != L or len(K) != len(L):
    problems.append(f"xlat64ctl subscriber list ({len(K)}) and xlat_n64_subs ({len(L)}) differ")
if S != set(K):
    problems.append(f"store and kernel differ: only in the store {sorted(S - set(K))[:10]}, "
                    f"only in the kernel {sorted(set(K) - S)[:10]}")
for name, pairs in (("store", open_rows), ("kernel", K)):
    for what, idx in (("block", 1), ("subscriber", 0)):
        dup = [k for k, n in collections.Counter(p[idx] for p in pairs).items() if n > 1]
        if dup:
            problems.append(f"{name}: {what}s held twice: {dup[:10]}")
for s, b in K:
    if owners.get(b) != s:
        problems.append(f"block {b} leased to {s} but xlat_n64_owner says {owners.get(b)}")
orphans = sorted((b, s) for b, s in owners.items() if b not in leased_blocks)
if orphans:
    problems.append(f"{len(orphans)} blocks owned in xlat_n64_owner but leased to nobody "
                    f"(neither leased nor free: lost): {orphans[:10]}")
kernel = dict(K)
# A subscriber a `subscriber del` was sent for may or may not hold its block (the kill may have
# come before or after the release); one whose delete was acknowledged must hold none.
deleted = {l[0] for l in lines(os.path.join(os.path.dirname(acked_path), "del-requested"))}
deleted_acked = {l[0] for l in lines(os.path.join(os.path.dirname(acked_path), "del-acked"))}
lost = {p: b for p, b in acked.items() if p not in deleted and kernel.get(p) != b}
still = sorted(p for p in deleted_acked if p in kernel and kernel[p] == acked.get(p))
if still:
    problems.append(f"{len(still)} acknowledged deletes still hold their block: {still[:10]}")
if lost:
    problems.append(f"{len(lost)} acknowledged subscriber adds lost or moved: "
                    f"{[(p, b, kernel.get(p)) for p, b in list(lost.items())[:10]]}")
missing = sorted(p for p in flows_ok if p not in kernel)
if missing:
    problems.append(f"data-path subscribers whose flow was answered hold no block: {missing[:10]}")
# History: no two subscribers' intervals of one block overlap.
INF = float("inf")
by_block = collections.defaultdict(list)
for s, b, f, u, i in rows:
    by_block[b].append((f, INF if u is None else u, s, i))
for b, iv in by_block.items():
    iv.sort()
    for (f1, u1, s1, i1), (f2, u2, s2, i2) in zip(iv, iv[1:]):
        if s1 != s2 and f2 < u1 and f2 < u2:
            problems.append(f"block {b} held by {s1} (row {i1}) and {s2} (row {i2}) at once")
closed = sum(1 for r in rows if r[3] is not None)
print(f"final: {len(S)} open allocations in the store, {len(K)} leases in the kernel, "
      f"{len(owners)} owned blocks, {closed} closed allocations, {len(acked)} acknowledged adds, "
      f"{len(flows_ok)} data-path subscribers")
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
PY
}

# adder LOOP ROUND: subscriber adds for 2001:db8:100:RLnn::/64 until one fails (the daemon is
# gone) or 200 are done; each request is noted first, each acknowledged answer after.
adder() {
	local loop=$1 round=$2 i p out
	for i in $(seq 0 199); do
		p=2001:db8:100:$(printf '%x%x%02x' "$round" "$loop" "$i")::/64
		echo "$p" >>"$E2E_TMP/requested-$round"
		out=$(ctl --json subscriber add "$p" --id "acct-$round-$loop-$i" 2>&1) || {
			echo "$p $out" >>"$E2E_TMP/refused-$round"
			break
		}
		# The answer names the block: {"block": N, ..., "subscriber": "P", ...} (no Python per
		# request, which would slow the burst down).
		[[ $out =~ \"block\":\ ([0-9]+) ]] || { echo "$p unreadable answer: $out" >>"$E2E_TMP/refused-$round"; break; }
		echo "$p ${BASH_REMATCH[1]}" >>"$E2E_TMP/acked"
	done
}
# deleter ROUND: `subscriber del` for subscribers acknowledged in earlier rounds, so that kills
# also land between a release's two steps (the lease forgotten, the block not yet freed).
deleter() {
	local p block out
	while read -r p block; do
		echo "$p" >>"$E2E_TMP/del-requested"
		out=$(ctl subscriber del "$p" 2>&1) || break
		echo "$p" >>"$E2E_TMP/del-acked"
	done < <(grep -v "^$(printf '2001:db8:100:%x' "$1")" "$E2E_TMP/acked" | shuf -n 40 --random-source=<(yes "$1"))
}
flow() { # HOST: one UDP exchange through NAT64; noted when answered
	nat64_flow udp "$1" 0 "$SERVER6" 2>/dev/null && echo "$1" >>"$E2E_TMP/flows-ok"
	return 0
}
forget_pid() { # PID: off the cleanup list once reaped, so it is never signalled again
	local keep=() p
	for p in "${E2E_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	E2E_PIDS=("${keep[@]}")
}

touch "$E2E_TMP/acked" "$E2E_TMP/flows-ok"
mid_rounds=0
summary=()
for r in $(seq "$ROUNDS"); do
	start_daemon "$E2E_TMP/xlat64.yaml"
	acked_before=$(wc -l <"$E2E_TMP/acked")
	flows_before=$(wc -l <"$E2E_TMP/flows-ok")
	workers=()
	for l in $(seq 1 "$ADDERS"); do
		adder "$l" "$r" &
		workers+=("$!")
	done
	if ((r > 1)); then
		deleter "$r" &
		workers+=("$!")
	fi
	for j in $(seq 0 7); do
		# Data-path allocations, spread over the first second of the round.
		(sleep "0.$((RANDOM % 10))" && flow "2001:db8:100:$(printf %x $((r * 16 + j)))::a") &
		workers+=("$!")
	done
	E2E_PIDS+=("${workers[@]}")
	delay_ms=$((200 + RANDOM % 1301))
	sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
	kill -KILL "$E2E_DAEMON_PID"
	wait "$E2E_DAEMON_PID" 2>/dev/null || true
	forget_pid "$E2E_DAEMON_PID"
	for w in "${workers[@]}"; do
		wait "$w" || true
		forget_pid "$w"
	done
	acked_now=$(($(wc -l <"$E2E_TMP/acked") - acked_before))
	flows_now=$(($(wc -l <"$E2E_TMP/flows-ok") - flows_before))
	rc=0
	where=$(analyse round "$r") || rc=$?
	((rc == 0 || rc == 10)) || fail "round $r: cannot read the store or the maps: $where"
	tag=
	if ((rc == 10)); then
		mid_rounds=$((mid_rounds + 1))
		tag=" [mid-commit]"
	fi
	line="round $r: SIGKILL after ${delay_ms} ms: $acked_now subscriber adds acknowledged, $flows_now data-path flows answered; $where$tag"
	log "$line"
	summary+=("$line")
done

start_daemon "$E2E_TMP/xlat64.yaml"
# sync_with_store ran before the daemon answered; the log says what it had to repair.
grep -E 're-created the lease|block-taken-while-down|cannot record' "$E2E_TMP/xlat64d.log" | tail -n 20 || true
expect "after $ROUNDS SIGKILLs and a restart the store and the kernel agree, no block held twice" \
	analyse final
expect "the daemon still provisions after all that" \
	ctl subscriber add 2001:db8:100:ffff::/64 --id acct-final
expect "and the data path still allocates" nat64_flow udp 2001:db8:100:1::b 0 "$SERVER6"
expect "a data-path subscriber from round 1 still translates" \
	nat64_flow tcp 2001:db8:100:10::a 0 "$SERVER6"
ctl pool | head -n 8
stop_daemon
printf '%s\n' "${summary[@]}"
log "$mid_rounds of $ROUNDS rounds were killed mid-commit"
