#!/bin/bash
# Runs inside the vmlab guest (stock Debian 12: systemd 252, kernel 6.1, no network), started by
# run-package-job. The freshly built .deb is in /mnt/host/debs, traffic.py in /mnt/host/xlat64.
#
# The guest's root namespace is the router (the service's xlat64d runs there, as on a real
# router); two namespaces hang off it by veths:
#   v6client (IPv6 only) 2001:db8:1::2/64 ── 2001:db8:1::1   router   192.0.2.1 ── 192.0.2.2/24 v4server (IPv4 only)
# pool6 2001:db8:64::/96: the client reaches the server as 2001:db8:64::c000:202.
# EAM 198.51.100.0/24 <-> 2001:db8:1::/120: the server reaches the client as 198.51.100.2.
#
# Checks, in order: offline install; the service enabled, started, hardened, answering, with the
# default configuration (which routes nothing); read-only CLI access for group xlat64; the test
# configuration applied by `systemctl reload`; ping and TCP with content check both ways; a
# changed EAM entry applied by reload; an invalid file refused by `systemctl reload` with the
# running configuration kept; stop, start, restart and a package upgrade without losing a ping;
# the watchdog; remove (teardown, conffile kept) and purge (nothing of xlat64 left).
set -uo pipefail
failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
check() { # DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what (command: $*)"; fi
}
section() { echo; echo "== $*"; }

share=/mnt/host
TRAFFIC="python3 $share/xlat64/traffic.py"
deb=$(ls $share/debs/xlat64_*.deb)
CONFIG=/etc/xlat64/xlat64.yaml
SERVER_VIA_POOL6=2001:db8:64::c000:202
CLIENT_VIA_EAM=198.51.100.2

echo "guest kernel $(uname -r), $(systemctl --version | head -n 1)"
systemctl is-system-running --wait

section "lab: namespaces around the guest's root namespace (the router)"
ip netns add v6client
ip netns add v4server
for ns in v6client v4server; do ip -n $ns link set lo up; done
ip link add to-client type veth peer name eth0 netns v6client
ip link add to-server type veth peer name eth0 netns v4server
ip link set to-client up
ip link set to-server up
ip -n v6client link set eth0 up
ip -n v4server link set eth0 up
ip addr add 2001:db8:1::1/64 dev to-client nodad
ip addr add 192.0.2.1/24 dev to-server
ip -n v6client addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n v6client route add default via 2001:db8:1::1
ip -n v4server addr add 192.0.2.2/24 dev eth0
ip -n v4server route add default via 192.0.2.1
sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip netns exec v4server $TRAFFIC serve --bind 192.0.2.2 --port 8080 >/tmp/server4.log 2>&1 &
ip netns exec v6client $TRAFFIC serve --bind 2001:db8:1::2 --port 8080 >/tmp/server6.log 2>&1 &
ip netns exec v4server $TRAFFIC wait-listening --bind 192.0.2.2 --port 8080
ip netns exec v6client $TRAFFIC wait-listening --bind 2001:db8:1::2 --port 8080
# What the router holds without xlat64; compared after the purge.
router_state() {
	ip -d link show | grep -v '^ *link/' | sed -E 's/^[0-9]+: //'
	ip addr show | grep -E 'inet6? ' | sort
	ip -4 route show table all | sort
	ip -6 route show table all | sort
	nft list ruleset
	ls -A /sys/fs/bpf
	ls -A /etc/systemd/system/multi-user.target.wants
}
router_state >/tmp/router-before.txt

ping_server() { ip netns exec v6client ping -6 -c 3 -i 0.2 -W 2 -q $SERVER_VIA_POOL6 >/dev/null; }
ping_client() { ip netns exec v4server ping -4 -c 3 -i 0.2 -W 2 -q "${1:-$CLIENT_VIA_EAM}" >/dev/null; }
tcp_server() { ip netns exec v6client $TRAFFIC tcp --to $SERVER_VIA_POOL6 --port 8080 --bytes 500000 --timeout 60; }
tcp_client() { ip netns exec v4server $TRAFFIC tcp --to "${1:-$CLIENT_VIA_EAM}" --port 8080 --bytes 500000 --timeout 60; }
# A ping every 0.2 s in the background while something happens; no_loss checks it.
start_pings() { ip netns exec v6client ping -6 -i 0.2 -W 1 $SERVER_VIA_POOL6 >/tmp/pings.txt 2>&1 & PINGS=$!; sleep 1; }
no_loss() {
	kill -INT $PINGS; wait $PINGS
	tail -n 3 /tmp/pings.txt
	grep -qE ' 0% packet loss' /tmp/pings.txt
}
journal() { journalctl -u xlat64.service --no-pager -o cat; }
main_pid() { systemctl show -p MainPID --value xlat64.service; }

section "install the .deb offline"
check "apt-get install $(basename $deb) (no network: every dependency is in a stock Debian 12)" \
	apt-get install -y -q -o Dpkg::Use-Pty=0 "$deb"
check "the service is enabled" systemctl is-enabled -q xlat64.service
check "the service is active (postinst started it)" systemctl is-active -q xlat64.service
systemctl status --no-pager xlat64.service
check "group xlat64 exists (system group)" bash -c '[[ $(getent group xlat64 | cut -d: -f3) -lt 1000 ]]'
check "conffile registered" bash -c "dpkg-query -W -f='\${Conffiles}' xlat64 | grep -q $CONFIG"
check "man pages installed" test -f /usr/share/man/man8/xlat64d.8.gz -a -f /usr/share/man/man8/xlat64ctl.8.gz
check "STATUS= shown by systemd" bash -c "systemctl show -p StatusText --value xlat64 | grep -q 'translating via xlat64'"
check "READY=1 after the kernel was programmed (reconcile logged before ready)" \
	bash -c "journalctl -u xlat64 -o cat --no-pager | grep -n -e 'reconcile:' -e '^ready:' | tail -n 1 | grep -q ready"
xlat64ctl status
check "default configuration: the device exists, managed" bash -c "xlat64ctl status | grep -q 'xlat64: ifindex .* managed'"
check "default configuration: nothing routed into it" bash -c "[[ -z \$(ip route show proto 64; ip -6 route show proto 64) ]]"
pid=$(main_pid)
grep Cap /proc/$pid/status
check "capability bounding set is NET_ADMIN, BPF, PERFMON, SYS_ADMIN only" \
	bash -c "grep -q 'CapBnd:.*000000c000201000' /proc/$pid/status"
check "the daemon runs with group xlat64 as supplementary group" bash -c "grep -qE '^Groups:.*[[:space:]]$(getent group xlat64 | cut -d: -f3)([[:space:]]|$)' /proc/$pid/status"
check "socket is root:xlat64 0660" bash -c "[[ \$(stat -c '%U:%G %a' /run/xlat64/control.sock) == 'root:xlat64 660' ]]"
check "watchdog armed (30 s)" bash -c "[[ \$(systemctl show -p WatchdogUSec --value xlat64) == 30s ]]"
systemd-analyze security --no-pager xlat64.service | tail -n 1

section "read-only CLI access for group xlat64"
adduser --quiet --system --no-create-home --ingroup nogroup alice
adduser --quiet --system --no-create-home --ingroup nogroup bob
adduser --quiet alice xlat64
check "a member of xlat64 may read status" setpriv --reuid=alice --regid=nogroup --init-groups xlat64ctl status
setpriv --reuid=alice --regid=nogroup --init-groups xlat64ctl reload >/tmp/alice-reload.txt 2>&1; rc=$?
cat /tmp/alice-reload.txt
check "... but not reload (exit 1, permission denied)" bash -c "[[ $rc == 1 ]] && grep -q 'permission denied' /tmp/alice-reload.txt"
check "a non-member may not even connect" bash -c "! setpriv --reuid=bob --regid=nogroup --init-groups xlat64ctl status"

section "test configuration applied by systemctl reload"
cat >$CONFIG <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
YAML
check "systemctl reload xlat64" systemctl reload xlat64
journal | tail -n 8
check "the daemon reported the applied changes" bash -c "journalctl -u xlat64 -o cat --no-pager | grep -q 'reload: done, [1-9][0-9]* changes applied'"
check "same daemon (reload, not restart)" test "$(main_pid)" = "$pid"
ip route show proto 64
ip -6 route show proto 64
check "IPv6 client pings the IPv4 server via pool6" ping_server
check "IPv6 client: TCP to the IPv4 server, content verified" tcp_server
check "IPv4 server pings the IPv6 client via the EAM entry" ping_client
check "IPv4 server: TCP to the IPv6 client, content verified" tcp_client
xlat64ctl stats

section "a changed EAM entry, applied by reload"
cat >$CONFIG <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 203.0.113.0/24
    ipv6: 2001:db8:1::/120
YAML
start_pings
check "systemctl reload xlat64" systemctl reload xlat64
check "the client is now reachable as 203.0.113.2" ping_client 203.0.113.2
check "... with TCP, content verified" tcp_client 203.0.113.2
check "... and no longer as 198.51.100.2" bash -c "! ip netns exec v4server ping -4 -c 2 -i 0.2 -W 1 -q 198.51.100.2 >/dev/null 2>&1"
check "pool6 traffic did not lose a packet during the reload" no_loss

section "an invalid file: systemctl reload fails, the running configuration is kept"
cp $CONFIG /tmp/good.yaml
cat >$CONFIG <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 203.0.113.0/24
    ipv6: 2001:db8:1::/100
YAML
ip route show proto 64 >/tmp/routes-before.txt
check "systemctl reload xlat64 fails" bash -c "! systemctl reload xlat64"
journal | tail -n 4
check "the journal names the key and line, at priority err" \
	bash -c "journalctl -u xlat64 -p err -o cat --no-pager | grep -qE 'xlat64.yaml:4:[0-9]+: eamt\[0\]\.ipv6:'"
xlat64ctl reload >/tmp/reload.txt 2>&1; rc=$?
cat /tmp/reload.txt
check "xlat64ctl reload exits 1 and says why" \
	bash -c "[[ $rc == 1 ]] && grep -q 'running configuration is kept' /tmp/reload.txt && grep -qE ':4:[0-9]+: eamt\[0\]\.ipv6:' /tmp/reload.txt"
check "the service is still active, same daemon" bash -c "systemctl is-active -q xlat64 && [[ \$(systemctl show -p MainPID --value xlat64) == $pid ]]"
check "routes unchanged" bash -c "ip route show proto 64 | diff -u /tmp/routes-before.txt -"
check "translation still works" ping_client 203.0.113.2
cp /tmp/good.yaml $CONFIG
check "the good file reloads again" systemctl reload xlat64

section "stateful NAT64 under the hardened service: nftables, store, allocation log, trace"
ip -n v6client addr add 2001:db8:100:1::a/128 dev eth0 nodad
ip route add 2001:db8:100::/56 via 2001:db8:1::2
cat >$CONFIG <<'YAML'
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 203.0.113.0/24
    ipv6: 2001:db8:1::/120
nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  public_prefixes: [198.51.100.64/28]
  mode: dynamic
state:
  log_file: /var/log/xlat64/allocations.log
YAML
check "systemctl reload xlat64 (nat64 added)" systemctl reload xlat64
check "a subscriber's host reaches the IPv4 server (TCP, content verified)" \
	ip netns exec v6client $TRAFFIC tcp --to $SERVER_VIA_POOL6 --port 8080 --bytes 200000 --timeout 60 --source 2001:db8:100:1::a
check "xlat64ctl subscriber list shows its block" bash -c "xlat64ctl subscriber list | grep -q '^2001:db8:100:1::/64 .* 198.51.100.6'"
check "sudo xlat64ctl subscriber add --id" xlat64ctl subscriber add 2001:db8:100:2::/64 --id vm-account
first_port=$(xlat64ctl subscriber show 2001:db8:100:2::/64 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["public_address"] + ":" + d["ports"].split("-")[0])')
check "xlat64ctl trace $first_port names vm-account" bash -c "xlat64ctl trace $first_port | grep -q 'account *vm-account'"
check "the store is in the StateDirectory" test -s /var/lib/xlat64/state.db
check "allocations were logged to the journal and to /var/log/xlat64/allocations.log" \
	bash -c "journalctl -u xlat64 -o cat --no-pager | grep -q '^nat64 allocate ' && grep -q 'account=vm-account' /var/log/xlat64/allocations.log"
check "xlat64's nftables table exists" nft list table ip xlat64
xlat64ctl pool

section "stop, start, restart, upgrade: the translator stays in the kernel"
start_pings
check "systemctl stop xlat64" systemctl stop xlat64
check "no daemon runs" bash -c "! pgrep -x xlat64d"
check "the device, its routes and the pins stay" bash -c "ip link show xlat64 >/dev/null && [[ -n \$(ip -6 route show proto 64) ]] && [[ -d /sys/fs/bpf/xlat64 ]]"
check "with the service stopped, translation goes on (TCP, content verified)" tcp_server
check "systemctl start xlat64" systemctl start xlat64
check "the new daemon adopted the kernel state (0 changes)" \
	bash -c "journalctl -u xlat64 -o cat --no-pager | grep 'reconcile:' | tail -n 1 | grep -q 'reconcile: 0 changes'"
check "systemctl restart xlat64" systemctl restart xlat64
check "no ping lost across stop, start and restart" no_loss
start_pings
check "upgrade (dpkg -i of the package again): postinst restarts the service" dpkg -i "$deb"
check "the service is active after the upgrade" systemctl is-active -q xlat64
check "the modified conffile was kept" grep -q 203.0.113.0/24 $CONFIG
check "no ping lost across the upgrade" no_loss
check "the upgraded daemon adopted the kernel state (0 changes)" \
	bash -c "journalctl -u xlat64 -o cat --no-pager | grep 'reconcile:' | tail -n 1 | grep -q 'reconcile: 0 changes'"

section "watchdog: pings keep the service alive; a hung daemon is restarted, hitlessly"
mkdir -p /etc/systemd/system/xlat64.service.d
# SIGABRT (the watchdog's signal) stays pending on a stopped process; after TimeoutAbortSec
# systemd sends SIGKILL, which is what ends it here.
printf '[Service]\nWatchdogSec=4s\nTimeoutAbortSec=2s\n' >/etc/systemd/system/xlat64.service.d/watchdog.conf
systemctl daemon-reload
systemctl restart xlat64
sleep 9
check "alive after 9 s with WatchdogSec=4s (no restart)" test "$(systemctl show -p NRestarts --value xlat64)" = 0
start_pings
kill -STOP "$(main_pid)"
sleep 14
check "a stopped (hung) daemon was killed by the watchdog and restarted" \
	bash -c "(( \$(systemctl show -p NRestarts --value xlat64) >= 1 )) && systemctl is-active -q xlat64"
journalctl -u xlat64 --no-pager | grep -i watchdog | tail -n 2
check "no ping lost while the daemon hung and restarted" no_loss
rm -rf /etc/systemd/system/xlat64.service.d
systemctl daemon-reload
systemctl restart xlat64

section "remove: the translator is torn down, the conffile stays"
check "apt-get remove xlat64" apt-get remove -y -q -o Dpkg::Use-Pty=0 xlat64
check "no daemon runs" bash -c "! pgrep -x xlat64d"
check "no xlat64 device" bash -c "! ip link show xlat64 2>/dev/null"
check "no routes with proto 64" bash -c "[[ -z \$(ip route show proto 64 table all; ip -6 route show proto 64 table all) ]]"
check "no pins" test ! -e /sys/fs/bpf/xlat64
check "no nftables table ip xlat64" bash -c "! nft list table ip xlat64 2>/dev/null"
check "translation has stopped" bash -c "! ip netns exec v6client ping -6 -c 1 -W 1 -q $SERVER_VIA_POOL6 >/dev/null 2>&1"
check "the conffile is kept on remove" test -f $CONFIG

# The lab's own route to the NAT64 subscribers goes before the router is compared with its state
# before the install.
ip route del 2001:db8:100::/56 via 2001:db8:1::2

section "purge: nothing of xlat64 is left"
check "apt-get purge xlat64" apt-get purge -y -q -o Dpkg::Use-Pty=0 xlat64
for path in /etc/xlat64 /var/lib/xlat64 /var/log/xlat64 /run/xlat64 /sys/fs/bpf/xlat64 /lib/systemd/system/xlat64.service \
	/etc/systemd/system/multi-user.target.wants/xlat64.service /usr/sbin/xlat64d /usr/bin/xlat64ctl; do
	check "$path is gone" test ! -e $path
done
check "dpkg no longer knows xlat64" bash -c "! dpkg-query -W xlat64 2>/dev/null | grep -q ."
check "systemd no longer knows xlat64.service" bash -c "[[ \$(systemctl show -p LoadState --value xlat64.service) == not-found ]]"
router_state >/tmp/router-after.txt
check "the router's links, addresses, routes, nftables and bpffs are exactly as before the install" \
	diff -u /tmp/router-before.txt /tmp/router-after.txt
echo "group xlat64 after purge: $(getent group xlat64 || echo none) (kept by design, as Debian keeps system groups)"

section "result"
if ((failed)); then
	echo "vm: some checks FAILED"
	journalctl -u xlat64.service --no-pager | tail -n 60
	exit 1
fi
echo "vm: all package checks passed"
