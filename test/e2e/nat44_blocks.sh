#!/bin/bash
# The NAT44 half of stateful NAT64: xlat64's nftables table, programmed by the test driver (not
# the daemon, and no BPF), gives each subscriber's internal block its own public address and port
# block. The client namespace plays the translator's output: internal-pool sources 100.64.0.x.
#
#   client                         router (table ip xlat64)            server
#   192.0.2.2/24 ── veth ── 192.0.2.1      198.51.100.1 ── veth ── 198.51.100.10/24, .11/24
#   + 100.64.0.1, .2   subscriber A (100.64.0.0/30) -> 203.0.113.1 ports 1024-2047
#   + 100.64.0.5, .6   subscriber B (100.64.0.4/30) -> 203.0.113.2 ports 1024-2047
#   + 100.64.0.9, .10  subscriber C (100.64.0.8/30) -> 203.0.113.1 ports 2048-2051 (4 ports)
#   100.64.0.100: in the internal pool, no block -> dropped, never leaks
#
# Checks: every flow (UDP, TCP, ICMP echo) leaves from its own subscriber's address and block, as
# both the server and conntrack see it; the same internal address:port keeps its public port
# towards two destinations (endpoint-independent mapping); C's fifth concurrent flow to one
# destination fails when its 4-port block is full while A and B go on; counters per block; a
# pre-existing inet filter table is byte-identical before, during and after, and deleting ours
# leaves it.
source "$(dirname "$0")/lib.sh"

NAT44_DRIVER=${NAT44_DRIVER:-$(dirname "$XLAT64D")/../test/nat/nat44_driver}
[[ -x $NAT44_DRIVER ]] || fail "no nat44_driver at $NAT44_DRIVER (set NAT44_DRIVER)"

nat44_lab

# The operator's own table, which must never change.
in_ns "$E2E_ROUTER" nft -f - <<'NFT'
table inet filter {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ip daddr 192.0.2.99 drop
	}
}
NFT
filter_before=$(in_ns "$E2E_ROUTER" nft list table inet filter)

driver() { in_ns "$E2E_ROUTER" "$NAT44_DRIVER" "$@"; }

expect "the driver creates table ip xlat64" test "$(driver ensure)" = created
expect "a second ensure adopts it unchanged" test "$(driver ensure)" = adopted
driver replace 100.64.0.0/30=203.0.113.1:1024-2047 100.64.0.4/30=203.0.113.2:1024-2047 \
	100.64.0.8/30=203.0.113.1:2048-2051 || fail "replace blocks"
in_ns "$E2E_ROUTER" nft list table ip xlat64

start_server "$SERVER" 198.51.100.10 8080
# A second destination for the endpoint-independence check, with a peer log of its own.
ip netns exec "$SERVER" $TRAFFIC serve --bind 198.51.100.11 --port 8080 \
	--peer-log "$E2E_TMP/peers-second.txt" >"$E2E_TMP/server-second.log" 2>&1 &
E2E_PIDS+=("$!")
in_ns "$SERVER" $TRAFFIC wait-listening --bind 198.51.100.11 --port 8080 || fail "second server"

# Subscribers A and B: UDP and TCP flows from both hosts, from ephemeral ports.
for src in 100.64.0.1 100.64.0.2 100.64.0.5 100.64.0.6; do
	for i in 1 2 3; do
		expect "udp from $src (flow $i)" nat44_flow udp "$src" 0 198.51.100.10
		expect "tcp from $src (flow $i)" nat44_flow tcp "$src" 0 198.51.100.10
	done
	expect "ping from $src" in_ns "$CLIENT" ping -I "$src" -c 2 -i 0.2 -W 2 -q 198.51.100.10
done

# Endpoint-independent mapping: one internal address:port, two destinations, one public port.
for proto in udp tcp; do
	expect "$proto from 100.64.0.1:40000 to the first destination" \
		nat44_flow "$proto" 100.64.0.1 40000 198.51.100.10
	expect "$proto from 100.64.0.1:40000 to the second destination" \
		nat44_flow "$proto" 100.64.0.1 40000 198.51.100.11
	first=$(grep "^$proto 203.0.113.1 " "$E2E_TMP/peers-$SERVER.txt" | awk '$3 == 1024 + 40000 % 1024')
	second=$(grep "^$proto 203.0.113.1 " "$E2E_TMP/peers-second.txt")
	expect "$proto: both destinations saw 203.0.113.1 port $((1024 + 40000 % 1024)) ($first / $second)" \
		test -n "$first" -a "$first" = "$second"
done

# Subscriber C has 4 ports: 4 concurrent UDP flows to one destination fit, the fifth does not.
for sport in 41000 41001 41002 41003; do
	expect "udp from 100.64.0.9:$sport fits C's 4-port block" nat44_flow udp 100.64.0.9 "$sport" 198.51.100.10
done
expect "a fifth flow of C fails: its block is exhausted" \
	fails nat44_flow udp 100.64.0.10 41004 198.51.100.10
expect "A still opens new flows while C is exhausted" nat44_flow udp 100.64.0.2 0 198.51.100.10
expect "B still opens new flows while C is exhausted" nat44_flow tcp 100.64.0.6 0 198.51.100.10

# An internal source without a block is dropped, not sent out with its internal address.
in_ns "$CLIENT" ip addr add 100.64.0.100/32 dev eth0
expect "100.64.0.100 (no block) gets no answer" \
	fails nat44_flow udp 100.64.0.100 0 198.51.100.10
expect "the drop counter counted it ($(driver drops))" test "$(driver drops)" -ge 1
expect "the server never saw an internal address" \
	fails grep -h ' 100\.64\.' "$E2E_TMP/peers-$SERVER.txt" "$E2E_TMP/peers-second.txt"

# Every flow, as conntrack and the server see it, inside its own subscriber's block. Without the
# conntrack tool (a bare Debian 12 guest) only the server's view is checked.
if command -v conntrack >/dev/null; then
	in_ns "$E2E_ROUTER" conntrack -L >"$E2E_TMP/conntrack.txt" 2>/dev/null
	cat "$E2E_TMP/conntrack.txt"
	min_entries=30
else
	log "no conntrack tool: checking the server's view only"
	: >"$E2E_TMP/conntrack.txt"
	min_entries=0
fi
expect "every conntrack entry and server peer lies in its subscriber's block, none shared" \
	$PYTHON - "$min_entries" "$E2E_TMP/conntrack.txt" "$E2E_TMP/peers-$SERVER.txt" \
	"$E2E_TMP/peers-second.txt" <<'PY'
import ipaddress, sys
blocks = {  # internal block -> (public address, first port, last port)
    "100.64.0.0/30": ("203.0.113.1", 1024, 2047),
    "100.64.0.4/30": ("203.0.113.2", 1024, 2047),
    "100.64.0.8/30": ("203.0.113.1", 2048, 2051),
}
def owner(internal):
    for net, block in blocks.items():
        if ipaddress.ip_address(internal) in ipaddress.ip_network(net):
            return net
    return None
seen = {}  # (proto, public address, public port) -> internal block
ok = True
entries = 0
min_entries = int(sys.argv[1])
for line in open(sys.argv[2]):
    f = line.split()
    kv = [tuple(t.split("=", 1)) for t in f if "=" in t]
    src = [v for k, v in kv if k == "src"]
    dst = [v for k, v in kv if k == "dst"]
    port = [v for k, v in kv if k in ("dport", "id")]
    if len(src) < 2 or not src[0].startswith("100.64."):
        continue
    entries += 1
    net = owner(src[0])
    public, first, last = blocks[net]
    # reply direction: dst is the public address, dport (or the echo id) the public port
    pub_addr, pub_port = dst[1], int(port[-1])
    if pub_addr != public or not first <= pub_port <= last:
        print(f"{f[0]} from {src[0]} left as {pub_addr}:{pub_port}, outside {public} {first}-{last}")
        ok = False
    key = (f[0], pub_addr, pub_port, dst[0], port[0] if f[0] != "icmp" else "")
    if seen.setdefault(key, net) != net:
        print(f"{key} used by two subscribers")
        ok = False
for path in sys.argv[3:]:
    for line in open(path):
        proto, addr, port = line.split()
        port = int(port)
        if not any(addr == b[0] and b[1] <= port <= b[2] for b in blocks.values()):
            print(f"server saw {proto} from {addr}:{port}, in no block")
            ok = False
icmp = [l for l in open(sys.argv[2]) if l.startswith("icmp") and "src=100.64." in l]
print(f"{entries} NATed conntrack entries checked, {len(icmp)} of them ICMP echo")
sys.exit(0 if ok and entries >= min_entries and len(icmp) >= min(4, min_entries) else 1)
PY

driver list | tee "$E2E_TMP/blocks.txt"
sessions_of() { awk -v b="$1" '$1 == b { print $4 }' "$E2E_TMP/blocks.txt"; }
# A: 2 hosts x (3 udp + 3 tcp + 1 ping) + 4 EIM flows + 1 while C was full = 19; B: 14 + 1.
expect "block A counted its 19 sessions ($(sessions_of 100.64.0.0/30))" test "$(sessions_of 100.64.0.0/30)" -eq 19
expect "block B counted its 15 sessions ($(sessions_of 100.64.0.4/30))" test "$(sessions_of 100.64.0.4/30)" -eq 15
expect "block C counted its 5 attempts ($(sessions_of 100.64.0.8/30))" test "$(sessions_of 100.64.0.8/30)" -eq 5

expect "inet filter is unchanged while our table is loaded" \
	test "$(in_ns "$E2E_ROUTER" nft list table inet filter)" = "$filter_before"
expect "the driver deletes table ip xlat64" test "$(driver delete)" = deleted
expect "table ip xlat64 is gone" fails in_ns "$E2E_ROUTER" nft list table ip xlat64 2>/dev/null
expect "inet filter is unchanged after the delete" \
	test "$(in_ns "$E2E_ROUTER" nft list table inet filter)" = "$filter_before"
expect "a second delete finds nothing" test "$(driver delete)" = absent
