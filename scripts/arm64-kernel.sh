#!/bin/bash
# arm64-kernel.sh: fetches Debian's arm64 cloud kernel (a plain arm64 Image that
# qemu-system-aarch64 -kernel boots directly) and caches it where initprof looks
# for it: ${XDG_CACHE_HOME:-$HOME/.cache}/initprof/arm64/vmlinuz (the path
# `initprof doctor` checks, internal/doctor.ARM64KernelPath).
#
# It uses apt-get with a private state directory limited to arm64 (lib-apt.sh),
# so the host's dpkg architectures, package lists and locks are left alone and
# nothing is installed. It picks the newest 6.x linux-image-*-cloud-arm64-unsigned that
# bookworm (and its security/updates suites) offers: 6.12 when available, else
# 6.1. Idempotent: a cached kernel is kept unless FORCE=1.
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/initprof/arm64
dest=$cache/vmlinuz
if [[ -s $dest && ${FORCE:-0} != 1 ]]; then
	echo "arm64 kernel: already cached at $dest ($(cat "$dest.version" 2>/dev/null || echo 'unknown version')); FORCE=1 refetches"
	exit 0
fi

# shellcheck source=scripts/lib-apt.sh
source "$(dirname "$0")/lib-apt.sh"
apt_arm64_init "$cache/apt" "arm64 kernel"

# Newest 6.x unsigned cloud image first. pkgnames also lists names that are
# only referenced, so try the candidates newest-first until one downloads.
cands=$(apt-cache "${apt_opts[@]}" pkgnames linux-image-6. |
	grep -E '^linux-image-6\.[0-9]+\.[0-9]+.*-cloud-arm64-unsigned$' |
	sort -rV || true)
if [[ -z $cands ]]; then
	echo "arm64 kernel: no linux-image-6.*-cloud-arm64-unsigned package in the arm64 lists; check /etc/apt/sources.list* for bookworm" >&2
	exit 1
fi
pkg=
for c in $cands; do
	if apt_arm64_download "$c" 2>/dev/null; then
		pkg=$c
		break
	fi
done
if [[ -z $pkg ]]; then
	echo "arm64 kernel: none of $(echo $cands | wc -w) cloud-arm64 kernel packages could be downloaded" >&2
	exit 1
fi
echo "arm64 kernel: downloaded $pkg:arm64"

x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$apt_debs"/*.deb "$x"
img=$(ls "$x"/boot/vmlinuz-* | head -n1)
if [[ ! -s $img ]]; then
	echo "arm64 kernel: $pkg has no boot/vmlinuz-*" >&2
	exit 1
fi
# An arm64 Image carries the magic "ARM\x64" at offset 0x38.
if [[ $(dd if="$img" bs=1 skip=56 count=4 2>/dev/null | od -An -tx1 | tr -d ' ') != 41524d64 ]]; then
	echo "arm64 kernel: $img is not a plain arm64 Image (no ARM\\x64 magic at 0x38)" >&2
	exit 1
fi
install -m 0644 "$img" "$dest.tmp"
mv "$dest.tmp" "$dest"
basename "$img" | sed 's/^vmlinuz-//' >"$dest.version"
rm -f "$apt_debs"/*.deb
echo "arm64 kernel: installed $(cat "$dest.version") ($(stat -c %s "$dest") bytes) at $dest"
