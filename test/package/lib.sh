# Shared by the package tests (sourced): builds the .deb with cpack from BUILD_DIR into a temporary
# directory and unpacks it. Sets DEB (the package file) and ROOT (its unpacked files, plus
# DEBIAN/ with the control files). Removes everything on exit.
set -euo pipefail

BUILD_DIR=${1:?usage: $0 BUILD_DIR}
PKG_TMP=$(mktemp -d /tmp/xlat64-package.XXXX)
trap 'rm -rf "$PKG_TMP"' EXIT
PKG_FAILED=0

pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; PKG_FAILED=1; }
# check DESCRIPTION COMMAND...: records a failure and goes on, so one run lists every problem.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what (command: $*)"; fi
}
finish() {
	((PKG_FAILED == 0)) || { echo "some checks failed" >&2; exit 1; }
	echo "all checks passed"
}

build_deb() {
	cpack --config "$BUILD_DIR/CPackConfig.cmake" -B "$PKG_TMP/out" >"$PKG_TMP/cpack.log" 2>&1 ||
		{ cat "$PKG_TMP/cpack.log" >&2; echo "FAIL: cpack" >&2; exit 1; }
	local debs=("$PKG_TMP"/out/xlat64_*.deb)
	[[ -f ${debs[0]} && ${#debs[@]} -eq 1 ]] || { echo "FAIL: cpack made no single xlat64 .deb" >&2; exit 1; }
	DEB=${debs[0]}
	ROOT=$PKG_TMP/root
	dpkg-deb -R "$DEB" "$ROOT"
	echo "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"
}
