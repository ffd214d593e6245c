#!/bin/bash
# Stateful NAT64 in dynamic mode: a subscriber's port block is handed out by the data path on its
# first packet and returned once it has been idle for nat64.idle_timeout with nothing left in
# conntrack. Lab as nat64_subscribers.sh (test/e2e/lib.sh, nat64_lab); 2 public addresses x 16
# blocks of 16 ports, idle_timeout 3 s.
#
# Checks: the first SYN of a brand-new subscriber is answered without a retransmission and its
# allocation is logged once; 20 parallel connections from a subscriber with 16 ports: 16 work,
# 4 are refused and counted, logged once, while another subscriber goes on; a TCP connection
# idle for longer than idle_timeout keeps its block and still works; a subscriber whose flows
# ended gets its block back (logged), and a new block on its next packet; hairpinning: a subscriber
# reaches another subscriber's public address and port through pool6 (RFC 6146 section 3.8).
source "$(dirname "$0")/lib.sh"

nat64_lab
# Short conntrack timeouts in the router namespace only, so that ended flows leave conntrack
# within seconds and the release can be seen. On a modular kernel (Debian's) conntrack and its
# sysctls exist only once something loaded it, and xlat64d's table comes after this.
modprobe nf_conntrack 2>/dev/null || true
in_ns "$E2E_ROUTER" sysctl -q -w net.netfilter.nf_conntrack_udp_timeout=2 \
	net.netfilter.nf_conntrack_udp_timeout_stream=2 net.netfilter.nf_conntrack_tcp_timeout_time_wait=1 \
	net.netfilter.nf_conntrack_icmp_timeout=2
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
  idle_timeout: 3
YAML
start_daemon "$E2E_TMP/xlat64.yaml"
start_server "$SERVER" 198.51.100.10 8080
SERVER6=2001:db8:64::c633:640a

count_syns "$SERVER"

# --- Allocation on the first packet --------------------------------------------------------------
expect "the first TCP flow of a brand-new subscriber 2001:db8:100::/64 goes through" \
	nat64_flow tcp 2001:db8:100::a 0 "$SERVER6"
syns=$(syn_count "$SERVER")
expect "the server saw exactly one SYN: no retransmission while a block was allocated ($syns)" \
	test "$syns" -eq 1
wait_for_log() { # PATTERN SECONDS
	local i
	for i in $(seq $(($2 * 10))); do
		grep -qE -- "$1" "$E2E_TMP/xlat64d.log" && return 0
		sleep 0.1
	done
	return 1
}
expect "the allocation was logged as one line" \
	wait_for_log 'nat64 allocate time=[0-9TZ:-]+ subscriber=2001:db8:100::/64 account=- public=203.0.113.0 ports=1024-1039 block=0 internal=100.64.0.0/30$' 5
expect "a second subscriber gets the first block of the other address" \
	nat64_flow udp 2001:db8:100:1::a 0 "$SERVER6"
expect "and that is logged too" \
	wait_for_log 'nat64 allocate time=[0-9TZ:-]+ subscriber=2001:db8:100:1::/64 account=- public=203.0.113.1 ports=1024-1039 block=16 ' 5
expect "the server saw 2001:db8:100:1::/64 as 203.0.113.1 in ports 1024-1039" \
	bash -c "awk '\$1 == \"udp\" && \$2 == \"203.0.113.1\" && \$3 >= 1024 && \$3 <= 1039' '$E2E_TMP/peers-$SERVER.txt' | grep -q ."

# --- Exhaustion: 16 ports, 20 parallel connections -------------------------------------------------
parallel_tcp() { # SRC COUNT: opens COUNT connections at once and holds them; prints how many echoed
	in_ns "$CLIENT" "$PYTHON" - "$@" <<'PY'
import socket, sys, time
src, count = sys.argv[1], int(sys.argv[2])
socks, ok = [], 0
for i in range(count):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    s.connect_ex(("2001:db8:64::c633:640a", 8080))
    socks.append(s)
time.sleep(1.5)
for i, s in enumerate(socks):
    try:
        s.setblocking(True)
        s.settimeout(1)
        s.sendall(b"x%d" % i)
        if s.recv(16) == b"x%d" % i:
            ok += 1
    except OSError:
        pass
print(ok)
PY
}
answered=$(parallel_tcp 2001:db8:100:2::a 20)
expect "20 parallel connections of a subscriber with 16 ports: 16 answered ($answered)" \
	test "$answered" -eq 16
expect "the refusal is logged once, naming the subscriber and protocol" \
	wait_for_log 'nat64: subscriber 2001:db8:100:2::/64 .* has used all 16 tcp ports' 5
refused_logs=$(grep -c 'nat64: subscriber 2001:db8:100:2::/64 .* has used all 16 tcp ports' "$E2E_TMP/xlat64d.log")
sleep 2
refused_logs_later=$(grep -c 'nat64: subscriber 2001:db8:100:2::/64 .* has used all 16 tcp ports' "$E2E_TMP/xlat64d.log")
expect "logged once only ($refused_logs, then $refused_logs_later)" test "$refused_logs" -eq 1 -a "$refused_logs_later" -eq 1
check_exhausted() {
	ctl pool --json | $PYTHON -c '
import json, sys
d = json.load(sys.stdin)
hit = [e for e in d["exhausted"] if e["protocol"] == "tcp" and e["refused"] >= 4]
sys.exit(0 if len(hit) == 1 else str(d["exhausted"]))'
}
expect "xlat64ctl pool counts the refused connections of that one subscriber" check_exhausted
expect "another subscriber still opens TCP connections meanwhile" \
	nat64_flow tcp 2001:db8:100:3::a 0 "$SERVER6"

# --- A TCP connection idle for longer than idle_timeout keeps its block ----------------------------
idle_flow=$E2E_TMP/idle-flow
ip netns exec "$CLIENT" "$PYTHON" - <<'PY' >"$idle_flow.log" 2>&1 &
import socket, time
s = socket.create_connection(("2001:db8:64::c633:640a", 8080), source_address=("2001:db8:100:4::a", 0), timeout=5)
s.sendall(b"before")
assert s.recv(16) == b"before"
print("connected", flush=True)
time.sleep(8)
s.sendall(b"after the idle time")
reply = s.recv(64)
print("after idle:", reply.decode(), flush=True)
assert reply == b"after the idle time"
PY
IDLE_PID=$!
E2E_PIDS+=("$IDLE_PID")

# --- Hairpinning -------------------------------------------------------------------------------------
# A long-lived UDP socket of subscriber 5 first talks to the server (so it has a public address
# and port), then echoes what arrives and records who sent it. It keeps talking to the server
# meanwhile, as a real application keeps its mapping alive: conntrack's UDP timeout is 2 s here.
ip netns exec "$CLIENT" "$PYTHON" - "$E2E_TMP/hairpin" <<'PY' >"$E2E_TMP/hairpin-listener.log" 2>&1 &
import socket, sys
base = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("2001:db8:100:5::a", 5000))
s.settimeout(3)
s.sendto(b"hello", ("2001:db8:64::c633:640a", 8080))
assert s.recv(64) == b"hello"
open(base + ".ready", "w").close()
s.settimeout(0.5)
server = ("2001:db8:64::c633:640a", 8080)
for _ in range(120):
    try:
        data, peer = s.recvfrom(1024)
    except socket.timeout:
        s.sendto(b"keepalive", server)
        continue
    if peer[:2] == server:
        continue
    open(base + ".peer", "w").write(peer[0] + " " + str(peer[1]) + "\n")
    s.sendto(data, peer)
    break
PY
E2E_PIDS+=("$!")
for i in $(seq 50); do [[ -e $E2E_TMP/hairpin.ready ]] && break; sleep 0.1; done
[[ -e $E2E_TMP/hairpin.ready ]] || fail "hairpin listener: $(cat "$E2E_TMP/hairpin-listener.log")"
read -r pub_addr pub_port < <(grep '^udp ' "$E2E_TMP/peers-$SERVER.txt" | tail -n 1 | cut -d' ' -f2-)
pub6=$($PYTHON -c 'import ipaddress,sys; print(ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8:64::")) + int(ipaddress.IPv4Address(sys.argv[1]))))' "$pub_addr")
log "subscriber 5's listener is public $pub_addr:$pub_port, i.e. [$pub6]:$pub_port through pool6"
hairpin() {
	in_ns "$CLIENT" "$PYTHON" - "$pub6" "$pub_port" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("2001:db8:100:6::a", 6000))
s.settimeout(3)
s.sendto(b"hairpin", (sys.argv[1], int(sys.argv[2])))
data, peer = s.recvfrom(64)
sys.exit(0 if data == b"hairpin" and peer[0] == sys.argv[1] and peer[1] == int(sys.argv[2]) else f"{data} from {peer}")
PY
}
expect "subscriber 6 reaches subscriber 5's public address and port through pool6 (hairpin)" hairpin
hairpin_peer=$(cat "$E2E_TMP/hairpin.peer")
check_hairpin_peer() {
	ctl subscriber show 2001:db8:100:6::/64 --json | $PYTHON -c '
import ipaddress, json, sys
d = json.load(sys.stdin)
addr, port = sys.argv[1].split()
v4 = ipaddress.IPv4Address(int(ipaddress.IPv6Address(addr)) & 0xffffffff)
first, last = map(int, d["ports"].split("-"))
ok = str(v4) == d["public_address"] and first <= int(port) <= last
sys.exit(0 if ok else f"listener saw {v4}:{port}, subscriber 6 has {d}")' "$hairpin_peer"
}
expect "subscriber 5 saw subscriber 6 as its public address and port ($hairpin_peer)" check_hairpin_peer

# --- Idle connection, release and reuse --------------------------------------------------------------
expect "the TCP connection idle for 8 s (idle_timeout 3 s) still works" wait "$IDLE_PID"
cat "$idle_flow.log"
expect "its block was never returned while conntrack held the flow" \
	fails grep -qE 'nat64 release time=[0-9TZ:-]+ subscriber=2001:db8:100:4::/64' "$E2E_TMP/xlat64d.log"
expect "subscriber 2001:db8:100::/64, whose flows ended, gets its block returned (logged)" \
	wait_for_log 'nat64 release time=[0-9TZ:-]+ subscriber=2001:db8:100::/64 account=- public=203.0.113.0 ports=1024-1039 block=0 .* held=[0-9]+s reason=idle' 20
check_released() {
	local subs pool
	subs=$(ctl subscriber list --json)
	pool=$(ctl pool --json)
	$PYTHON -c '
import json, sys
subs, pool = json.loads(sys.argv[1]), json.loads(sys.argv[2])
names = {s["subscriber"] for s in subs}
ok = "2001:db8:100::/64" not in names and pool["blocks"]["total"] == 32 \
    and pool["blocks"]["used"] == len(subs) and pool["blocks"]["free"] == 32 - len(subs)
sys.exit(0 if ok else str(sorted(names)) + " " + str(pool["blocks"]))' "$subs" "$pool"
}
expect "the returned block is free again: the subscriber is gone from the list, pool counts agree" \
	check_released
expect "the subscriber's next flow gets a block again, logged as a new allocation" \
	nat64_flow udp 2001:db8:100::b 0 "$SERVER6"
expect "(second allocate line for 2001:db8:100::/64)" \
	bash -c "sleep 1; test \$(grep -cE 'nat64 allocate time=[0-9TZ:-]+ subscriber=2001:db8:100::/64 ' '$E2E_TMP/xlat64d.log') -eq 2"
ctl pool
ctl subscriber list
ctl stats | grep -E 'nat64|translated'
