#!/bin/bash
# check-deb.sh BUILD_DIR: the .deb cpack builds holds the binaries, the unit, the default
# configuration as a conffile, gzipped man pages and the maintainer scripts, and depends only on
# what a stock Debian 12 has (the vmlab image's package list, when it is there).
source "$(dirname "$0")/lib.sh"
build_deb

dpkg-deb -I "$DEB"
dpkg-deb -c "$DEB"
field() { dpkg-deb -f "$DEB" "$1"; }
check "Package: xlat64" test "$(field Package)" = xlat64
check "Architecture is the build's ($(dpkg --print-architecture))" test "$(field Architecture)" = "$(dpkg --print-architecture)"
check "Section net, Priority optional" test "$(field Section)/$(field Priority)" = net/optional

# --- files ---------------------------------------------------------------------------------------
dpkg-deb -c "$DEB" >"$PKG_TMP/listing"
awk '{print $6}' "$PKG_TMP/listing" | sed 's|^\./|/|' | sort >"$PKG_TMP/files"
for f in /usr/sbin/xlat64d /usr/bin/xlat64ctl /lib/systemd/system/xlat64.service \
	/etc/xlat64/xlat64.yaml /usr/share/man/man8/xlat64d.8.gz /usr/share/man/man8/xlat64ctl.8.gz \
	/usr/share/doc/xlat64/examples/ipv4-clients-to-ipv6-servers.yaml; do
	check "ships $f" grep -qx "$f" "$PKG_TMP/files"
done
unexpected() { ! grep -vE '^/(etc/xlat64|lib/systemd/system|usr/(s?bin|share/(man/man8|doc/xlat64))|etc|lib|lib/systemd|usr|usr/share|usr/share/man|usr/share/doc)(/|$)' "$PKG_TMP/files"; }
check "nothing else (no headers, libraries or test programs)" unexpected
check "xlat64d is executable, root-owned" grep -qE '^-rwxr-xr-x root/root .* \./usr/sbin/xlat64d$' "$PKG_TMP/listing"
check "binaries are stripped" bash -c "file '$ROOT/usr/sbin/xlat64d' '$ROOT/usr/bin/xlat64ctl' | grep -c ', stripped' | grep -qx 2"
check "xlat64d --version is the project's" bash -c "'$ROOT/usr/sbin/xlat64d' --version | grep -qx '$(field Version)'"
check "xlat64d --help documents --teardown" bash -c "'$ROOT/usr/sbin/xlat64d' --help | grep -q -- --teardown"
check "xlat64ctl --help lists reload" bash -c "'$ROOT/usr/bin/xlat64ctl' --help | grep -qE '^ +reload '"
check "the shipped configuration is valid" "$ROOT/usr/sbin/xlat64d" --check --config "$ROOT/etc/xlat64/xlat64.yaml"
# The default translator routes nothing: no pool6 and no EAM entry are active.
check "the shipped configuration enables no pool6 or EAM entry" \
	bash -c "! grep -qE '^(pool6|eamt):' '$ROOT/etc/xlat64/xlat64.yaml'"
for page in xlat64d xlat64ctl; do
	check "man page $page.8.gz is gzip with a .TH header" \
		bash -c "gzip -t '$ROOT/usr/share/man/man8/$page.8.gz' && zcat '$ROOT/usr/share/man/man8/$page.8.gz' | grep -q '^\.TH ${page^^} 8'"
done

# --- conffile and maintainer scripts -------------------------------------------------------------
check "conffiles is exactly /etc/xlat64/xlat64.yaml" test "$(cat "$ROOT/DEBIAN/conffiles")" = /etc/xlat64/xlat64.yaml
for script in postinst prerm postrm; do
	check "$script is there, executable and valid sh" bash -c "test -x '$ROOT/DEBIAN/$script' && sh -n '$ROOT/DEBIAN/$script'"
done
check "postinst creates the system group xlat64" grep -q 'addgroup --system --quiet xlat64' "$ROOT/DEBIAN/postinst"
check "postinst enables and starts the unit on a first install" \
	bash -c "grep -q 'deb-systemd-helper enable' '$ROOT/DEBIAN/postinst' && grep -q 'deb-systemd-invoke start' '$ROOT/DEBIAN/postinst'"
check "postinst restarts (hitless) on upgrade" grep -q 'deb-systemd-invoke try-restart' "$ROOT/DEBIAN/postinst"
check "prerm stops the service and tears down on remove" \
	bash -c "grep -q 'deb-systemd-invoke stop' '$ROOT/DEBIAN/prerm' && grep -q 'xlat64d --teardown' '$ROOT/DEBIAN/prerm'"
check "postrm purges /var/lib/xlat64 and /etc/xlat64" \
	bash -c "grep -q 'rm -rf /var/lib/xlat64' '$ROOT/DEBIAN/postrm' && grep -q 'rmdir /etc/xlat64' '$ROOT/DEBIAN/postrm'"

# --- dependencies --------------------------------------------------------------------------------
depends=$(field Depends)
echo "Depends: $depends"
depends_on() { tr ',' '\n' <<<"$depends" | sed -E 's/^ *//; s/[ (].*//' | grep -qxF "$1"; }
for lib in libbpf1 libnl-3-200 libnl-route-3-200 libsystemd0 libyaml-cpp0.7 libstdc++6 adduser init-system-helpers; do
	check "Depends names $lib" depends_on "$lib"
done
image_packages=${VMLAB_CACHE:-/var/cache/xlat64-vmlab}/packages.txt
if [[ -r $image_packages ]]; then
	missing=()
	for dep in $(tr ',' '\n' <<<"$depends" | sed -E 's/^ *//; s/[ (].*//'); do
		grep -q "^$dep " "$image_packages" || missing+=("$dep")
	done
	check "every dependency is in a stock Debian 12 (vmlab image), so it installs offline${missing:+ (missing: ${missing[*]})}" \
		test ${#missing[@]} -eq 0
else
	echo "SKIP: no vmlab package list at $image_packages"
fi
finish
