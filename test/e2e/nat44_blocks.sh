#!/bin/bash
# The NAT44 half of stateful NAT64: xlat64's nftables table, programmed by the test driver (not
# the daemon, and no BPF), gives each subscriber's internal block its own public address and port
# block. The client namespace plays the translator's output: internal-pool sources 100.64.0.x.
#
#   client                         router (table ip xlat64)            server
#   192.0.2.2/24 ── veth ── 192.0.2.1      198.51.100.1 ── veth ── 198.51.100.10/24, .11/24
#   + 100.64.0.1, .2   subscriber A (100.64.0.0/30) -> 203.0.113.1 ports 1024-1039
#   + 100.64.0.5, .6   subscriber B (100.64.0.4/30) -> 203.0.113.2 ports 1024-1039
#   + 100.64.0.9, .10  subscriber C (100.64.0.8/30) -> 203.0.113.1 ports 1040-1055
#   100.64.0.100: in the internal pool, no block -> dropped, never leaks
# Every block has 16 ports (the table's block_ports): at most 16 live connections per protocol.
#
# Checks: every flow (UDP, TCP, ICMP echo) leaves from its own subscriber's address and block, as
# both the server and conntrack see it; the same internal address:port keeps its public port
# towards two destinations (endpoint-independent mapping); exhaustion: of 20 parallel UDP flows
# of C (to two destinations, so ports alone would suffice) 16 pass and 4 are refused, C's TCP and
# A and B go on, and the exhausted set names C's block and UDP with 4 refused packets;
# hairpinning: A reaches B's socket through B's public address and port, and B sees A's public
# address and port; a packet from outside straight to an internal address is dropped and counted;
# counters per block; a pre-existing inet filter table is byte-identical before, during and
# after, and deleting ours leaves it.
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

# The client plays the translator: internal sources are accepted from to-client only.
driver() { in_ns "$E2E_ROUTER" "$NAT44_DRIVER" --block-len 30 --block-ports 16 --trusted to-client "$@"; }

expect "the driver creates table ip xlat64" test "$(driver ensure)" = created
expect "a second ensure adopts it unchanged" test "$(driver ensure)" = adopted
driver replace 100.64.0.0/30=203.0.113.1:1024-1039 100.64.0.4/30=203.0.113.2:1024-1039 \
	100.64.0.8/30=203.0.113.1:1040-1055 || fail "replace blocks"
in_ns "$E2E_ROUTER" nft list table ip xlat64

start_server "$SERVER" 198.51.100.10 8080
# A second destination for the endpoint-independence check, with a peer log of its own.
ip netns exec "$SERVER" $TRAFFIC serve --bind 198.51.100.11 --port 8080 \
	--peer-log "$E2E_TMP/peers-second.txt" >"$E2E_TMP/server-second.log" 2>&1 &
E2E_PIDS+=("$!")
in_ns "$SERVER" $TRAFFIC wait-listening --bind 198.51.100.11 --port 8080 || fail "second server"

# Endpoint-independent mapping: one internal address:port, two destinations, one public port
# (first, before other flows of A can hold that port towards a destination).
for proto in udp tcp; do
	expect "$proto from 100.64.0.1:40000 to the first destination" \
		nat44_flow "$proto" 100.64.0.1 40000 198.51.100.10
	expect "$proto from 100.64.0.1:40000 to the second destination" \
		nat44_flow "$proto" 100.64.0.1 40000 198.51.100.11
	first=$(grep "^$proto 203.0.113.1 " "$E2E_TMP/peers-$SERVER.txt" | awk '$3 == 1024 + 40000 % 16')
	second=$(grep "^$proto 203.0.113.1 " "$E2E_TMP/peers-second.txt")
	expect "$proto: both destinations saw 203.0.113.1 port $((1024 + 40000 % 16)) ($first / $second)" \
		test -n "$first" -a "$first" = "$second"
done

# Subscribers A and B: UDP and TCP flows from both hosts, from ephemeral ports.
for src in 100.64.0.1 100.64.0.2 100.64.0.5 100.64.0.6; do
	for i in 1 2 3; do
		expect "udp from $src (flow $i)" nat44_flow udp "$src" 0 198.51.100.10
		expect "tcp from $src (flow $i)" nat44_flow tcp "$src" 0 198.51.100.10
	done
	expect "ping from $src" in_ns "$CLIENT" ping -I "$src" -c 2 -i 0.2 -W 2 -q 198.51.100.10
done

# Exhaustion: C opens 20 UDP flows at once from both its hosts, half to each destination. Its 16
# ports would carry them all (a port can be reused towards another destination), so what refuses
# the last 4 is the block's limit of 16 live connections per protocol.
answered=$(nat44_parallel_udp 20 100.64.0.9,100.64.0.10 198.51.100.10,198.51.100.11)
expect "16 of C's 20 parallel UDP flows are answered, 4 refused ($answered)" test "$answered" -eq 16
expect "the exhausted set names C's block, UDP, 4 refused packets ($(driver exhausted | tr '\n' ' '))" \
	test "$(driver exhausted)" = "100.64.0.8/30 udp 4"
expect "C still opens TCP flows: each protocol has its own ports" nat44_flow tcp 100.64.0.9 0 198.51.100.10
expect "A still opens new flows while C is exhausted" nat44_flow udp 100.64.0.2 0 198.51.100.10
expect "B still opens new flows while C is exhausted" nat44_flow tcp 100.64.0.6 0 198.51.100.10

# Hairpinning: B's long-lived UDP socket 100.64.0.5:5000 talks to the server first, which logs
# the public address and port it got; A then sends to that public address and port.
server_peers_before=$(wc -l <"$E2E_TMP/peers-$SERVER.txt")
nat44_udp_listener 100.64.0.5 5000 198.51.100.10 "$E2E_TMP/b-peers.txt"
b_public=$(tail -n +"$((server_peers_before + 1))" "$E2E_TMP/peers-$SERVER.txt" | awk '$1 == "udp" { print $2 ":" $3 }')
expect "B's listener got a public address and port in its block ($b_public)" \
	$PYTHON -c 'import sys; a, p = sys.argv[1].split(":"); sys.exit(not (a == "203.0.113.2" and 1024 <= int(p) <= 1039))' "$b_public"
expect "the hairpin map knows B's listener ($(driver hairpins | grep -c .) entries)" \
	grep -qx "udp $b_public 100.64.0.5:5000" <(driver hairpins)
expect "A (100.64.0.1:6000) reaches B's socket through $b_public and gets its answer from there" \
	nat44_hairpin_flow 100.64.0.1 6000 "$b_public"
a_seen=$(awk '$1 == "udp" { print $2 ":" $3 }' "$E2E_TMP/b-peers.txt")
expect "B saw A's public address and a port of A's block ($a_seen)" \
	$PYTHON -c 'import sys; a, p = sys.argv[1].split(":"); sys.exit(not (a == "203.0.113.1" and 1024 <= int(p) <= 1039))' "$a_seen"

# Outside in: the server sends straight to B's internal address and port. The router routes the
# internal pool towards the client, but only replies and hairpin DNATs may pass.
expect "no forward drops yet ($(driver forward-drops))" test "$(driver forward-drops)" -eq 0
in_ns "$SERVER" $PYTHON -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3):
    s.sendto(b"from outside", ("100.64.0.5", 5000))'
sleep 0.5
expect "the forward drop counted the 3 datagrams ($(driver forward-drops))" test "$(driver forward-drops)" -eq 3
expect "B's socket never saw the server's datagrams" fails grep -q "198\.51\.100\." "$E2E_TMP/b-peers.txt"

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
    "100.64.0.0/30": ("203.0.113.1", 1024, 1039),
    "100.64.0.4/30": ("203.0.113.2", 1024, 1039),
    "100.64.0.8/30": ("203.0.113.1", 1040, 1055),
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
# A: 2 hosts x (3 udp + 3 tcp + 1 ping) + 4 EIM flows + 1 while C was full + 1 hairpin = 20;
# B: 14 + 1 while C was full + its listener = 16; C: 16 UDP + 1 TCP (refused flows are not NATed).
expect "block A counted its 20 sessions ($(sessions_of 100.64.0.0/30))" test "$(sessions_of 100.64.0.0/30)" -eq 20
expect "block B counted its 16 sessions ($(sessions_of 100.64.0.4/30))" test "$(sessions_of 100.64.0.4/30)" -eq 16
expect "block C counted its 17 sessions ($(sessions_of 100.64.0.8/30))" test "$(sessions_of 100.64.0.8/30)" -eq 17

expect "inet filter is unchanged while our table is loaded" \
	test "$(in_ns "$E2E_ROUTER" nft list table inet filter)" = "$filter_before"
expect "the driver deletes table ip xlat64" test "$(driver delete)" = deleted
expect "table ip xlat64 is gone" fails in_ns "$E2E_ROUTER" nft list table ip xlat64 2>/dev/null
expect "inet filter is unchanged after the delete" \
	test "$(in_ns "$E2E_ROUTER" nft list table inet filter)" = "$filter_before"
expect "a second delete finds nothing" test "$(driver delete)" = absent
