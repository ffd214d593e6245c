#!/bin/bash
# Stateful NAT64 end to end: IPv6-only subscribers reach an IPv4 server through xlat64d's BPF
# translator (hosts -> internal pool) and its nftables NAT44 (internal block -> public address and
# port block), in deterministic mode (RFC 7422).
#
#   client (the subscribers' hosts)   router (xlat64d)                      server (IPv4 only)
#   2001:db8:1::2/64 ── veth ── 2001:db8:1::1   198.51.100.1 ── veth ── 198.51.100.10/24, .11/24
#   subscribers 2001:db8:100:N::/64 (N = 0, 1, 2), hosts ::a and ::b in each
#   2001:db8:200::a: outside the admitted prefix
#
# Checks: every flow (TCP, UDP, ICMP echo) of each subscriber leaves from its own public address
# and port block, and no two subscribers share one; a host outside the admitted prefixes gets
# nothing through and is counted; endpoint-independent mapping (one host port, two servers, one
# public port); the first SYN of a brand-new subscriber is answered without a retransmission;
# xlat64ctl pool / subscriber list / subscriber show; a pre-existing inet filter table is
# byte-identical after the daemon's teardown, which removes table ip xlat64.
source "$(dirname "$0")/lib.sh"

nat64_lab
in_ns "$E2E_ROUTER" nft -f - <<'NFT'
table inet filter {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ip daddr 192.0.2.99 drop
		ip6 saddr 2001:db8:300::/48 drop
	}
}
NFT
filter_before=$(in_ns "$E2E_ROUTER" nft list table inet filter)

write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/58]
  subscriber_length: 64
  hosts_per_subscriber: 4
  public_prefixes: [203.0.113.0/30]
  block_size: 2048
  mode: deterministic
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080
ip netns exec "$SERVER" $TRAFFIC serve --bind 198.51.100.11 --port 8080 \
	--peer-log "$E2E_TMP/peers-second.txt" >"$E2E_TMP/server-second.log" 2>&1 &
E2E_PIDS+=("$!")
in_ns "$SERVER" $TRAFFIC wait-listening --bind 198.51.100.11 --port 8080 || fail "second server"

SERVER6=2001:db8:64::c633:640a # 198.51.100.10 in pool6
SECOND6=2001:db8:64::c633:640b # 198.51.100.11

# The first SYN of a brand-new subscriber: the server must see exactly one (a counter in the
# server's own namespace counts SYNs without ACK to the echo port).
count_syns "$SERVER"
expect "the first TCP flow of subscriber 2001:db8:100:2::/64 (host ::b) goes through" \
	nat64_flow tcp 2001:db8:100:2::b 40100 "$SERVER6"
syns=$(syn_count "$SERVER")
expect "the server saw exactly one SYN for it, no retransmission ($syns)" test "$syns" -eq 1

for n in 0 1 2; do
	for h in a b; do
		host=2001:db8:100:$n::$h
		for i in 1 2; do
			expect "tcp from $host (flow $i)" nat64_flow tcp "$host" 0 "$SERVER6"
			expect "udp from $host (flow $i)" nat64_flow udp "$host" 0 "$SERVER6"
		done
		expect "ping from $host" in_ns "$CLIENT" ping -6 -I "$host" -c 2 -i 0.2 -W 2 -q "$SERVER6"
	done
done

# Which public address and block each subscriber got, from the CLI, and what the server saw.
ctl subscriber list
check_blocks() {
	ctl subscriber list --json | $PYTHON -c '
import ipaddress, json, sys
subs = {s["subscriber"]: s for s in json.load(sys.stdin)}
peers = [l.split() for l in open(sys.argv[1]) if l.strip()]
want = {"2001:db8:100::/64", "2001:db8:100:1::/64", "2001:db8:100:2::/64"}
if set(subs) != want:
    sys.exit(f"subscribers {sorted(subs)}, expected {sorted(want)}")
blocks = {}
for s in subs.values():
    first, last = map(int, s["ports"].split("-"))
    blocks[s["subscriber"]] = (s["public_address"], first, last)
if len(set(blocks.values())) != 3:
    sys.exit(f"two subscribers share a block: {blocks}")
for proto, addr, port in peers:
    owners = [sub for sub, (a, f, l) in blocks.items() if a == addr and f <= int(port) <= l]
    if len(owners) != 1:
        sys.exit(f"{proto} {addr}:{port} is in no single subscriber block {blocks}")
counts = {}
for proto, addr, port in peers:
    counts[proto] = counts.get(proto, 0) + 1
print("server saw", counts, "all within their subscribers blocks", blocks)
if counts.get("tcp", 0) < 12 or counts.get("udp", 0) < 12:
    sys.exit("too few flows seen")
' "$E2E_TMP/peers-$SERVER.txt"
}
expect "each subscriber's flows all used its own public address and port block" check_blocks

# ICMP echo identifiers are ports too: each ping's public identifier (conntrack's reply tuple)
# lies in its subscriber's port block.
check_icmp_ids() {
	conntrack_list "$E2E_ROUTER" icmp | $PYTHON -c '
import ipaddress, json, re, sys
subs = json.load(open(sys.argv[1]))
pings = 0
for line in sys.stdin:
    m = re.search(r"src=(100\.64\.\S+) .*id=\d+ src=\S+ dst=(\S+) .*id=(\d+)", line)
    if not m:
        continue
    internal, public, ident = m.group(1), m.group(2), int(m.group(3))
    sub = next(s for s in subs if ipaddress.ip_address(internal) in ipaddress.ip_network(s["internal"]))
    first, last = map(int, sub["ports"].split("-"))
    if public != sub["public_address"] or not first <= ident <= last:
        sys.exit(f"ping from {internal} left as {public} id {ident}, outside {sub}")
    pings += 1
print(pings, "pings, each with an identifier in its subscriber block")
sys.exit(0 if pings >= 6 else "too few pings in conntrack")
' "$E2E_TMP/subscribers.json"
}
ctl subscriber list --json >"$E2E_TMP/subscribers.json"
# One more ping from every host just before the check: conntrack forgets ICMP after 30 s, which the
# loop above can take in the slow emulated VM of test/vm.
for n in 0 1 2; do
	for h in a b; do
		in_ns "$CLIENT" ping -6 -I "2001:db8:100:$n::$h" -c 1 -W 2 -q "$SERVER6" >/dev/null
	done
done
expect "ICMP echo identifiers were mapped into each subscriber's port block" check_icmp_ids

# Endpoint-independent mapping: one host port, two servers, one public address and port.
for proto in udp tcp; do
	expect "$proto from 2001:db8:100:1::a port 41000 to the first server" \
		nat64_flow "$proto" 2001:db8:100:1::a 41000 "$SERVER6"
	expect "$proto from 2001:db8:100:1::a port 41000 to the second server" \
		nat64_flow "$proto" 2001:db8:100:1::a 41000 "$SECOND6"
	first=$(grep "^$proto " "$E2E_TMP/peers-$SERVER.txt" | awk -v p=$((41000 % 2048)) '($3 - 1024) % 2048 == p' | tail -n 1)
	second=$(grep "^$proto " "$E2E_TMP/peers-second.txt" | tail -n 1)
	expect "$proto: both servers saw one public address and port ($first / $second)" \
		test -n "$first" -a "$first" = "$second"
done

# A host outside the admitted prefixes gets nothing through, and is counted.
before=$(stat_packets nat64_not_admitted)
expect "a host outside nat64.prefixes gets nothing through" \
	fails nat64_flow udp 2001:db8:200::a 0 "$SERVER6"
after=$(stat_packets nat64_not_admitted)
expect "and is counted as nat64_not_admitted ($before -> $after)" test "$after" -gt "$before"

ctl pool
ctl subscriber show 2001:db8:100:1::/64
check_show() {
	ctl subscriber show 2001:db8:100:1::5 --json | $PYTHON -c '
import json, sys
d = json.load(sys.stdin)
hosts = {h["address"] for h in d["hosts"]}
ok = hosts == {"2001:db8:100:1::a", "2001:db8:100:1::b"} and d["sessions"]["total"] > 0 \
    and d["subscriber"] == "2001:db8:100:1::/64" and d["sessions_created"] > 0
sys.exit(0 if ok else str(d))'
}
expect "subscriber show (by any address inside it) lists both hosts, sessions and counters" check_show
check_pool() {
	ctl pool --json | $PYTHON -c '
import json, sys
d = json.load(sys.stdin)
ok = d["blocks"]["used"] == 3 and d["blocks"]["total"] == 124 and d["hosts"] == 6 \
    and d["sessions"]["tcp"] > 0 and d["sessions"]["udp"] > 0
sys.exit(0 if ok else str(d))'
}
expect "pool: 124 blocks, 3 used, 6 hosts, sessions per protocol" check_pool

expect "the operator's inet filter table is unchanged while xlat64d runs" \
	test "$filter_before" = "$(in_ns "$E2E_ROUTER" nft list table inet filter)"

# A restart keeps everything: with no daemon the subscribers still get through, and a new daemon
# adopts the kernel state with no change at all.
ctl subscriber list --json >"$E2E_TMP/subscribers-before-restart.json"
stop_daemon
expect "with no daemon running, NAT64 flows go on" nat64_flow tcp 2001:db8:100:1::b 0 "$SERVER6"
start_daemon "$E2E_CONFIG"
expect "a restarted daemon adopts the NAT64 state with 0 changes" \
	bash -c "test \$(grep -c '^reconcile: 0 changes' '$E2E_TMP/xlat64d.log') -eq 1"
ctl subscriber list --json >"$E2E_TMP/subscribers-after-restart.json"
same_blocks() {
	$PYTHON -c '
import json, sys
strip = lambda f: sorted((s["subscriber"], s["public_address"], s["ports"], s["internal"]) for s in json.load(open(f)))
sys.exit(0 if strip(sys.argv[1]) == strip(sys.argv[2]) else "blocks changed")' "$@"
}
expect "every subscriber keeps its block and internal addresses across the restart" \
	same_blocks "$E2E_TMP/subscribers-before-restart.json" "$E2E_TMP/subscribers-after-restart.json"

stop_daemon
in_router "$XLAT64D" --config "$E2E_CONFIG" --teardown
expect "teardown removed table ip xlat64" fails in_ns "$E2E_ROUTER" nft list table ip xlat64
filter_after=$(in_ns "$E2E_ROUTER" nft list table inet filter)
expect "the operator's inet filter table is byte-identical after teardown" \
	test "$filter_before" = "$filter_after"
