#!/bin/bash
# check-unit.sh BUILD_DIR: the packaged xlat64.service passes `systemd-analyze verify` (in a
# temporary root holding the package and this system's own units, so ExecStart= and
# ExecReload= resolve to the packaged binaries), keeps its hardening (`systemd-analyze security`
# exposure at most 2.5), and has the settings the service relies on. A deliberately broken copy
# must fail the same checks, so a verify that silently checks nothing cannot pass.
source "$(dirname "$0")/lib.sh"
build_deb

UNIT=lib/systemd/system/xlat64.service
# The systemd targets the unit refers to, from this system, then the package on top.
mkdir -p "$PKG_TMP/sysroot/lib/systemd"
cp -a /lib/systemd/system "$PKG_TMP/sysroot/lib/systemd/"
dpkg-deb -x "$DEB" "$PKG_TMP/sysroot"

# verify_quiet: no complaint at all (systemd-analyze verify exits 0 on many parse warnings).
verify_quiet() {
	systemd-analyze verify --man=no --root="$PKG_TMP/sysroot" xlat64.service >"$PKG_TMP/verify.out" 2>&1 &&
		! [[ -s $PKG_TMP/verify.out ]] || { cat "$PKG_TMP/verify.out"; return 1; }
}
check "systemd-analyze verify: no complaint about the packaged unit" verify_quiet

cp "$PKG_TMP/sysroot/$UNIT" "$PKG_TMP/good.service"
sed -i 's/^Type=notify$/Type=notfy/' "$PKG_TMP/sysroot/$UNIT"
complains() { ! verify_quiet >/dev/null; }
check "negative control: a misspelt Type= is reported" complains
cp "$PKG_TMP/good.service" "$PKG_TMP/sysroot/$UNIT"
mv "$PKG_TMP/sysroot/usr/sbin/xlat64d" "$PKG_TMP/xlat64d"
check "negative control: a missing ExecStart= binary is reported" complains
mv "$PKG_TMP/xlat64d" "$PKG_TMP/sysroot/usr/sbin/xlat64d"

systemd-analyze security --offline=true "$PKG_TMP/good.service" 2>&1 | tail -n 1
check "systemd-analyze security: exposure at most 2.5" \
	systemd-analyze security --offline=true --threshold=25 "$PKG_TMP/good.service" >/dev/null 2>&1

setting() { grep -qx "$1" "$PKG_TMP/good.service"; }
check "Type=notify" setting 'Type=notify'
check "ExecStart runs the packaged daemon on the conffile" setting 'ExecStart=/usr/sbin/xlat64d --config /etc/xlat64/xlat64.yaml'
check "ExecReload is the synchronous xlat64ctl reload" setting 'ExecReload=/usr/bin/xlat64ctl reload'
check "a watchdog" setting 'WatchdogSec=30s'
check "capabilities: only NET_ADMIN, BPF, PERFMON, SYS_ADMIN" setting 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_SYS_ADMIN'
check "ProtectSystem=strict with /sys/fs/bpf writable" bash -c "grep -qx ProtectSystem=strict '$PKG_TMP/good.service' && grep -qx ReadWritePaths=/sys/fs/bpf '$PKG_TMP/good.service'"
check "the tun device is the one device allowed" bash -c "grep -qx 'DeviceAllow=/dev/net/tun rw' '$PKG_TMP/good.service' && grep -qx PrivateDevices=yes '$PKG_TMP/good.service'"
for dir in RuntimeDirectory StateDirectory ConfigurationDirectory; do
	check "$dir=xlat64" setting "$dir=xlat64"
done
check "the host network namespace (PrivateNetwork=no)" setting 'PrivateNetwork=no'
finish
