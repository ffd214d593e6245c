# Shared harness of the end-to-end tests (sourced, not run).
#
# Each test builds its own lab of network namespaces (client — router — server) with veth pairs,
# runs the real xlat64d in the router namespace from a YAML file, sends real traffic, and checks
# what arrived. Traffic stays inside the namespaces the test created, on documentation prefixes.
# Everything the test created (namespaces, daemon, pins, sockets, files) is removed on exit,
# whether the test passed or failed.
#
# Environment: XLAT64D, XLAT64CTL (binaries; default: the build tree), E2E_TCP_BYTES.

set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XLAT64D=${XLAT64D:?set XLAT64D to the xlat64d binary}
XLAT64CTL=${XLAT64CTL:?set XLAT64CTL to the xlat64ctl binary}
# Debian's python3 (the tests need nothing beyond its standard library).
PYTHON=${PYTHON:-/usr/bin/python3}
TRAFFIC="$PYTHON $E2E_DIR/traffic.py"

# A short random id keeps names unique (and under IFNAMSIZ) across concurrent runs.
E2E_ID=$(printf '%04x' $((RANDOM)))
E2E_TMP=$(mktemp -d "/tmp/xlat64-e2e-$E2E_ID.XXXX")
E2E_NAMESPACES=()
E2E_PIDS=()
E2E_PIN_DIR=/sys/fs/bpf/xlat64-e2e-$E2E_ID
E2E_SOCKET=$E2E_TMP/control.sock
E2E_STATE_DIR=$E2E_TMP/state
E2E_FAILED=0

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	E2E_FAILED=1
	exit 1
}

pass() { printf 'PASS: %s\n' "$*"; }

# expect DESCRIPTION COMMAND...: the command must succeed.
expect() {
	local what=$1
	shift
	if "$@"; then
		pass "$what"
	else
		fail "$what (command: $*)"
	fi
}

e2e_cleanup() {
	local rc=$?
	set +e
	# Stop what this test started, by PID, and only that.
	for pid in "${E2E_PIDS[@]}"; do
		if kill "$pid" 2>/dev/null; then
			kill -CONT "$pid" 2>/dev/null # a test may have stopped it (SIGSTOP): let it exit
			wait "$pid" 2>/dev/null
		fi
	done
	# Teardown removes the device, routes and pins the daemon created; the namespaces go after.
	if [[ -n ${E2E_ROUTER:-} && -e /run/netns/$E2E_ROUTER && -n ${E2E_CONFIG:-} ]]; then
		in_router "$XLAT64D" --config "$E2E_CONFIG" --teardown >/dev/null 2>&1
	fi
	for ns in "${E2E_NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	# The pins live in the shared bpffs, not in a namespace: remove what is left of ours.
	if [[ -d $E2E_PIN_DIR ]]; then
		rm -f "$E2E_PIN_DIR"/xlat_* && rmdir "$E2E_PIN_DIR"
	fi
	if ((rc != 0)) && [[ -d $E2E_TMP ]]; then
		for f in "$E2E_TMP"/*.log; do
			[[ -f $f ]] && { echo "--- $f"; tail -n 40 "$f"; }
		done
	fi
	rm -rf "$E2E_TMP"
	exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM

# new_ns VAR ROLE: creates namespace xl-ID-ROLE with loopback up and stores its name in VAR (not
# printed: the namespace must be registered for cleanup in this shell, not in a subshell).
# Duplicate address detection is off, so addresses are final at once and state comparisons are
# stable.
new_ns() {
	local ns=xl-$E2E_ID-$2
	ip netns add "$ns"
	E2E_NAMESPACES+=("$ns")
	printf -v "$1" '%s' "$ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# link_ns NS_A DEV_A NS_B DEV_B: a veth pair created directly inside the two namespaces, so the
# root namespace never sees it.
link_ns() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# count_syns NS: from now on NS counts the TCP SYNs without ACK it receives for the echo port
# 8080 (a table in NS's own namespace), so a test can tell a first SYN that got through from a
# retransmitted one; syn_count NS prints the count.
count_syns() {
	in_ns "$1" nft -f - <<-'NFT'
		table inet syncount {
			chain input {
				type filter hook input priority filter; policy accept;
				tcp dport 8080 tcp flags & (syn | ack) == syn counter
			}
		}
	NFT
}
syn_count() { in_ns "$1" nft list chain inet syncount input | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }

# count_udp_9000 NS: from now on NS counts the UDP datagrams to port 9000 that reach it, whatever
# their source (the spoofing tests' target); udp_9000_count NS prints the count.
count_udp_9000() {
	in_ns "$1" nft -f - <<-'NFT'
		table inet spoofcount {
			chain prerouting {
				type filter hook prerouting priority raw; policy accept;
				udp dport 9000 counter
			}
		}
	NFT
}
udp_9000_count() {
	in_ns "$1" nft list chain inet spoofcount prerouting |
		sed -n 's/.*counter packets \([0-9]*\).*/\1/p'
}

# send_udp_9000 NS SOURCE COUNT: COUNT UDP datagrams from SOURCE in NS to 198.51.100.10:9000, each
# from its own source port (a new flow each), SOURCE's ports counting up from 40000.
send_udp_9000() {
	in_ns "$1" "$PYTHON" - "$2" "$3" <<-'PY'
		import socket, sys
		source, count = sys.argv[1], int(sys.argv[2])
		for i in range(count):
		    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		    s.bind((source, 40000 + i))
		    s.sendto(b"not from the subscriber", ("198.51.100.10", 9000))
		    s.close()
	PY
}

# subscriber_internal PREFIX: the internal IPv4 address of PREFIX's leased block (xlat64ctl).
subscriber_internal() {
	ctl subscriber list --json | $PYTHON -c '
import json, sys
subs = [s for s in json.load(sys.stdin) if s["subscriber"] == sys.argv[1]]
if len(subs) != 1:
    sys.exit("no leased block for " + sys.argv[1])
print(subs[0]["internal"].split("/")[0])' "$1"
}

# The daemon runs with nsenter --net rather than ip netns exec: ip netns exec remounts /sys in a
# private mount namespace, which would hide the bpffs where the maps are pinned.
in_router() { nsenter --net="/run/netns/$E2E_ROUTER" "$@"; }

enable_forwarding() {
	in_ns "$1" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

# write_config FILE <<EOF ... : the YAML body; the pin dir, control socket and state directory of
# this test are appended so tests cannot collide.
write_config() {
	local file=$1
	cat >"$file"
	cat >>"$file" <<-EOF
		control:
		  socket: $E2E_SOCKET
		bpf:
		  pin_dir: $E2E_PIN_DIR
		state:
		  directory: $E2E_STATE_DIR
	EOF
}

# write_fast_path_nat64_config FILE HOSTS INTERFACES: the small dynamic NAT64 of the ingress fast
# path and spoofing tests (subscribers /64 of 2001:db8:100::/56 with HOSTS addresses each, the two
# public addresses of 203.0.113.0/31, blocks of 256 ports), translation.ingress_interfaces
# [INTERFACES] (a YAML flow list's contents: "to-client, late0", or "" for none).
write_fast_path_nat64_config() {
	write_config "$1" <<-YAML
		pool6: 2001:db8:64::/96
		nat64:
		  prefixes: [2001:db8:100::/56]
		  subscriber_length: 64
		  hosts_per_subscriber: $2
		  public_prefixes: [203.0.113.0/31]
		  ports: 1024-2047
		  block_size: 256
		  mode: dynamic
		translation:
		  ingress_interfaces: [$3]
	YAML
}

ctl() { in_router "$XLAT64CTL" --socket "$E2E_SOCKET" "$@"; }

# start_daemon CONFIG: runs xlat64d in the router namespace and waits until it answers. nsenter is
# started directly (not through a shell function) so that $! is the daemon's own PID.
start_daemon() {
	E2E_CONFIG=$1
	nsenter --net="/run/netns/$E2E_ROUTER" "$XLAT64D" --config "$E2E_CONFIG" >>"$E2E_TMP/xlat64d.log" 2>&1 &
	E2E_DAEMON_PID=$!
	E2E_PIDS+=("$E2E_DAEMON_PID")
	local i
	for i in $(seq 100); do
		if ctl status >/dev/null 2>&1; then
			log "xlat64d running (pid $E2E_DAEMON_PID)"
			return 0
		fi
		kill -0 "$E2E_DAEMON_PID" 2>/dev/null || fail "xlat64d exited during start-up: $(tail -n 20 "$E2E_TMP/xlat64d.log")"
		sleep 0.1
	done
	fail "xlat64d did not answer on $E2E_SOCKET within 10 s"
}

# stop_daemon: SIGTERM, and the daemon must exit 0 within 10 s.
stop_daemon() {
	kill -TERM "$E2E_DAEMON_PID"
	local rc=0
	wait "$E2E_DAEMON_PID" || rc=$?
	((rc == 0)) || fail "xlat64d exited with status $rc on SIGTERM"
}

# start_server NS ADDRESS PORT: the traffic tool's TCP+UDP echo server; its log records peers.
start_server() {
	local log=$E2E_TMP/server-$1.log
	# ip netns exec directly (not the in_ns function), so that $! is the server's own PID.
	ip netns exec "$1" $TRAFFIC serve --bind "$2" --port "$3" --peer-log "$E2E_TMP/peers-$1.txt" >"$log" 2>&1 &
	E2E_PIDS+=("$!")
	in_ns "$1" $TRAFFIC wait-listening --bind "$2" --port "$3" ||
		fail "echo server on $2 port $3 did not start: $(cat "$log")"
}

# stat_packets NAME: packets of one counter, from xlat64ctl stats --json.
stat_packets() {
	ctl stats --json | $PYTHON -c '
import json, sys
name = sys.argv[1]
for c in json.load(sys.stdin)["counters"]:
    if c["name"] == name:
        print(c["packets"]); break
else:
    sys.exit("no counter " + name)' "$1"
}

# kernel_snapshot: everything xlat64 programs in the router namespace, in a stable text form
# (device, routes, tc filter with program id, map contents), to prove a command changed nothing.
kernel_snapshot() {
	in_router ip -d link show dev xlat64 | sed -E 's/ (qlen|numtxqueues|numrxqueues|gso_max|gro_max|tso_max)[^ ]* [0-9]+//g'
	in_router ip -4 route show table all dev xlat64
	in_router ip -6 route show table all dev xlat64
	in_router tc filter show dev xlat64 egress
	local map
	for map in "$E2E_PIN_DIR"/xlat_settings "$E2E_PIN_DIR"/xlat_eamt4 "$E2E_PIN_DIR"/xlat_eamt6; do
		echo "== $map"
		bpftool map dump pinned "$map"
	done
}

# lab_namespaces: client — router — server, joined by veth pairs (client eth0 <-> router
# to-client, router to-server <-> server eth0), the router forwarding. Sets CLIENT, E2E_ROUTER,
# SERVER; the lab_* functions below give them addresses.
lab_namespaces() {
	new_ns CLIENT client
	new_ns E2E_ROUTER router
	new_ns SERVER server
	link_ns "$CLIENT" eth0 "$E2E_ROUTER" to-client
	link_ns "$E2E_ROUTER" to-server "$SERVER" eth0
	enable_forwarding "$E2E_ROUTER"
}

# lab_ipv6_client_ipv4_server: sets CLIENT, E2E_ROUTER, SERVER.
#   client (IPv6 only)          router                          server (IPv4 only)
#   2001:db8:1::2/64 ── veth ── 2001:db8:1::1   192.0.2.1 ── veth ── 192.0.2.2/24
lab_ipv6_client_ipv4_server() {
	lab_namespaces
	ip -n "$CLIENT" addr add 2001:db8:1::2/64 dev eth0 nodad
	ip -n "$CLIENT" route add default via 2001:db8:1::1
	ip -n "$E2E_ROUTER" addr add 2001:db8:1::1/64 dev to-client nodad
	ip -n "$E2E_ROUTER" addr add 192.0.2.1/24 dev to-server
	ip -n "$SERVER" addr add 192.0.2.2/24 dev eth0
	ip -n "$SERVER" route add default via 192.0.2.1
}

# lab_ipv4_client_ipv6_server: sets CLIENT, E2E_ROUTER, SERVER.
#   client (IPv4 only)             router                         server (IPv6 only)
#   203.0.113.2/24 ── veth ── 203.0.113.1   2001:db8:2::1 ── veth ── 2001:db8:2::2/64
lab_ipv4_client_ipv6_server() {
	lab_namespaces
	ip -n "$CLIENT" addr add 203.0.113.2/24 dev eth0
	ip -n "$CLIENT" route add default via 203.0.113.1
	ip -n "$E2E_ROUTER" addr add 203.0.113.1/24 dev to-client
	ip -n "$E2E_ROUTER" addr add 2001:db8:2::1/64 dev to-server nodad
	ip -n "$SERVER" addr add 2001:db8:2::2/64 dev eth0 nodad
	ip -n "$SERVER" route add default via 2001:db8:2::1
}

# expect_traffic_flows FAMILY DESTINATION: ping, a UDP exchange and a TCP transfer of
# E2E_TCP_BYTES (default 16 MB) from the client to the echo server on DESTINATION port 8080, each
# with its content verified.
expect_traffic_flows() {
	local family=$1 dest=$2 bytes=${E2E_TCP_BYTES:-16000000}
	expect "ping from the client to $dest" \
		in_ns "$CLIENT" ping "-$family" -c 5 -i 0.2 -W 2 -q "$dest"
	expect "UDP exchange with $dest (100 datagrams echoed intact)" \
		in_ns "$CLIENT" $TRAFFIC udp --to "$dest" --port 8080 --count 100
	expect "TCP transfer of $bytes bytes each way with $dest, content verified" \
		in_ns "$CLIENT" $TRAFFIC tcp --to "$dest" --port 8080 --bytes "$bytes"
}

# --- Reload helpers (test/e2e/reload.sh) --------------------------------------------------------

# start_tcp_flow VAR NS DEST PORT BYTES RATE [SOURCE]: a paced TCP transfer with content check in
# the background; its PID goes into VAR (and into the cleanup list), its output into
# $E2E_TMP/flow-VAR.log.
start_tcp_flow() {
	local var=$1 ns=$2 dest=$3 port=$4 bytes=$5 rate=$6
	ip netns exec "$ns" $TRAFFIC tcp --to "$dest" --port "$port" --bytes "$bytes" --rate "$rate" \
		${7:+--source "$7"} >"$E2E_TMP/flow-$var.log" 2>&1 &
	E2E_PIDS+=("$!")
	printf -v "$var" '%s' "$!"
}

# wait_tcp_flow VAR: waits for the flow started as VAR, prints its output, returns its status.
wait_tcp_flow() {
	local rc=0
	wait "${!1}" || rc=$?
	cat "$E2E_TMP/flow-$1.log"
	return "$rc"
}

# ctl_reload OUTFILE: `xlat64ctl reload`, its stdout and stderr in OUTFILE (also printed); returns
# its exit status.
ctl_reload() {
	local rc=0
	ctl reload >"$1" 2>&1 || rc=$?
	cat "$1"
	return "$rc"
}

# fails COMMAND...: succeeds when the command fails (for expect).
fails() { ! "$@"; }

# nat44_lab: client — router — server for the NAT44 tests; sets CLIENT, E2E_ROUTER, SERVER.
#   client 192.0.2.2/24 + internal-pool hosts 100.64.0.{1,2,5,6,9,10}/32 ── veth ── router
#   192.0.2.1/24 (route 100.64.0.0/24 via the client)   198.51.100.1/24 ── veth ── server
#   198.51.100.10/24 and .11/24 (default via the router, which the public pool 203.0.113.0/24
#   reaches: the router de-NATs it in prerouting, so it needs no address from it).
nat44_lab() {
	lab_namespaces
	ip -n "$CLIENT" addr add 192.0.2.2/24 dev eth0
	local host
	for host in 1 2 5 6 9 10; do
		ip -n "$CLIENT" addr add "100.64.0.$host/32" dev eth0
	done
	ip -n "$CLIENT" route add default via 192.0.2.1
	ip -n "$E2E_ROUTER" addr add 192.0.2.1/24 dev to-client
	ip -n "$E2E_ROUTER" route add 100.64.0.0/24 via 192.0.2.2
	ip -n "$E2E_ROUTER" addr add 198.51.100.1/24 dev to-server
	ip -n "$SERVER" addr add 198.51.100.10/24 dev eth0
	ip -n "$SERVER" addr add 198.51.100.11/24 dev eth0
	ip -n "$SERVER" route add default via 198.51.100.1
}

# client_flow TIMEOUT PROTO SRC SPORT DST: one UDP datagram or one TCP exchange from SRC:SPORT
# (0: any port; IPv4 or IPv6, told by SRC) in the client namespace to the echo server on DST port
# 8080, waiting at most TIMEOUT seconds; fails unless it is echoed.
client_flow() {
	in_ns "$CLIENT" "$PYTHON" - "$@" <<'PY'
import socket, sys
timeout, proto, src, sport, dst = float(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
family = socket.AF_INET6 if ":" in src else socket.AF_INET
kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
s = socket.socket(family, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(timeout)
s.bind((src, sport))
payload = f"{src}:{sport} -> {dst}".encode()
try:
    if proto == "udp":
        s.sendto(payload, (dst, 8080))
        reply = s.recv(1024)
    else:
        s.connect((dst, 8080))
        s.sendall(payload)
        reply = s.recv(1024)
except OSError as e:
    where = f"[{src}]" if family == socket.AF_INET6 else src
    print(f"{proto} {where}:{sport} -> {dst}: {e}", file=sys.stderr)
    sys.exit(1)
sys.exit(0 if reply == payload else 1)
PY
}

# nat44_flow PROTO SRC SPORT DST: client_flow from an internal-pool address.
nat44_flow() { client_flow 2 "$@"; }

# nat44_parallel_udp COUNT SRC[,SRC...] DST[,DST...]: COUNT UDP flows at once from the client
# namespace, from ephemeral ports of the sources in turn to the echo servers (port 8080) in turn;
# every socket sends one datagram before any answer is awaited. Prints how many were echoed
# within 2 s.
nat44_parallel_udp() {
	in_ns "$CLIENT" "$PYTHON" - "$@" <<'PY'
import selectors, socket, sys, time
count, srcs, dsts = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3].split(",")
sel = selectors.DefaultSelector()
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((srcs[i % len(srcs)], 0))
    payload = f"parallel {i}".encode()
    s.sendto(payload, (dsts[i % len(dsts)], 8080))
    sel.register(s, selectors.EVENT_READ, payload)
answered = 0
deadline = time.monotonic() + 2
while answered < count and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=max(0, deadline - time.monotonic())):
        if key.fileobj.recv(1024) == key.data:
            answered += 1
        sel.unregister(key.fileobj)
print(answered)
PY
}

# nat44_udp_listener SRC PORT SERVER LOG: a long-lived UDP socket on SRC:PORT in the client
# namespace (a subscriber's application). It first exchanges one datagram with the echo server on
# SERVER port 8080 (so it gets a public address and port), then echoes whatever arrives and
# appends "udp ADDRESS PORT" of each new sender to LOG. Returns once the first exchange is done.
nat44_udp_listener() {
	local ready=$E2E_TMP/listener-$1-$2.ready
	ip netns exec "$CLIENT" "$PYTHON" -c '
import socket, sys
src, port, server, log, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, port))
s.settimeout(2)
for attempt in range(3):
    s.sendto(b"hello", (server, 8080))
    try:
        if s.recvfrom(1024)[0] == b"hello":
            break
    except socket.timeout:
        pass
else:
    sys.exit("no answer from the echo server")
open(ready, "w").close()
s.settimeout(None)
seen = set()
while True:
    data, peer = s.recvfrom(65536)
    if peer not in seen:
        seen.add(peer)
        with open(log, "a") as f:
            f.write(f"udp {peer[0]} {peer[1]}\n")
    s.sendto(data, peer)
' "$1" "$2" "$3" "$4" "$ready" >"$E2E_TMP/listener-$1-$2.log" 2>&1 &
	E2E_PIDS+=("$!")
	local i
	for i in $(seq 50); do
		[[ -e $ready ]] && return 0
		sleep 0.1
	done
	fail "the UDP listener on $1:$2 did not get an answer from $3: $(cat "$E2E_TMP/listener-$1-$2.log")"
}

# nat44_hairpin_flow SRC SPORT PUBLIC:PORT: one UDP datagram from SRC:SPORT in the client
# namespace to a public address and port; fails unless it is echoed from exactly that address
# and port.
nat44_hairpin_flow() {
	in_ns "$CLIENT" "$PYTHON" - "$@" <<'PY'
import socket, sys
src, sport = sys.argv[1], int(sys.argv[2])
address, port = sys.argv[3].split(":")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
s.settimeout(2)
payload = f"hairpin from {src}:{sport}".encode()
s.sendto(payload, (address, int(port)))
try:
    data, peer = s.recvfrom(1024)
except OSError as e:
    sys.exit(f"no answer from {address}:{port}: {e}")
if data != payload or peer != (address, int(port)):
    sys.exit(f"answer {data!r} from {peer}, expected the payload from {address}:{port}")
PY
}

# --- Stateful NAT64 (test/e2e/nat64_*.sh) -------------------------------------------------------

# nat64_lab: client — router — server; sets CLIENT, E2E_ROUTER, SERVER.
#   client 2001:db8:1::2/64 + subscriber hosts 2001:db8:100:N::{a,b}/128 (N = 0..6) and
#   2001:db8:200::a (not admitted) ── veth ── router 2001:db8:1::1/64 (routes to them via the
#   client)   198.51.100.1/24 ── veth ── server 198.51.100.10/24 and .11/24 (default via the
#   router, which the public pool 203.0.113.0/24 reaches: conntrack de-NATs it in prerouting).
nat64_lab() {
	lab_namespaces
	ip -n "$CLIENT" addr add 2001:db8:1::2/64 dev eth0 nodad
	local n h
	for n in 0 1 2 3 4 5 6; do
		for h in a b; do
			ip -n "$CLIENT" addr add "2001:db8:100:$n::$h/128" dev eth0 nodad
		done
	done
	ip -n "$CLIENT" addr add 2001:db8:200::a/128 dev eth0 nodad
	ip -n "$CLIENT" route add default via 2001:db8:1::1
	ip -n "$E2E_ROUTER" addr add 2001:db8:1::1/64 dev to-client nodad
	ip -n "$E2E_ROUTER" route add 2001:db8:100::/56 via 2001:db8:1::2
	ip -n "$E2E_ROUTER" route add 2001:db8:200::/64 via 2001:db8:1::2
	ip -n "$E2E_ROUTER" addr add 198.51.100.1/24 dev to-server
	ip -n "$SERVER" addr add 198.51.100.10/24 dev eth0
	ip -n "$SERVER" addr add 198.51.100.11/24 dev eth0
	ip -n "$SERVER" route add default via 198.51.100.1
}

# nat64_flow PROTO SRC SPORT DST: client_flow from an IPv6 host, with time for the translator's
# first packet.
nat64_flow() { client_flow 3 "$@"; }

# conntrack_list NS PROTO: the namespace's conntrack entries of one protocol, one per line, with the
# conntrack tool when it is installed and from /proc/net/nf_conntrack otherwise (the vmlab image has
# no conntrack tool); both print the src= dst= sport= id= fields the tests read.
conntrack_list() {
	if command -v conntrack >/dev/null; then
		in_ns "$1" conntrack -L -p "$2" 2>/dev/null
	else
		in_ns "$1" cat /proc/net/nf_conntrack | awk -v p="$2" '$3 == p'
	fi
}
