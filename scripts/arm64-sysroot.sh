#!/bin/bash
# arm64-sysroot.sh [DIR]: fills DIR (default build/arm64-sysroot) with Debian's
# arm64 run-time libraries for the sample extensions, as a root filesystem the
# arm64 microVM copies closures from (container/vm) and the cross-linker links
# against:
#   - libc6 (ld-linux-aarch64.so.1, libc.so.6) and libc6-dbg, whose
#     /usr/lib/debug/.build-id files give ld.so's internal symbols
#     (_dl_start, _dl_relocate_object, ...) for the loader checkpoints;
#   - libcurl4 (OpenSSL flavour) and its whole Depends closure, for cext;
#   - libcurl4-openssl-dev and libssl-dev, to cross-link cext with
#     aarch64-linux-gnu-gcc.
# It uses apt-get with a private state directory (DIR.apt) limited to arm64: the
# host's dpkg architectures, package lists and locks are left alone, and nothing
# is installed. Idempotent: DIR/.initprof-sysroot lists what was extracted, and a
# second run with the same package set does nothing (FORCE=1 redoes it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/arm64-sysroot}
stamp=$out/.initprof-sysroot
want="libc6 libc6-dbg libcurl4 libcurl4-openssl-dev libssl-dev"

if [[ -s $stamp && ${FORCE:-0} != 1 ]] && [[ $(head -n1 "$stamp") == "want: $want" ]]; then
	echo "arm64 sysroot: up to date in $out ($(($(wc -l <"$stamp") - 1)) packages); FORCE=1 refetches"
	exit 0
fi

apt_dir=$out.apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs" "$out"
: >"$apt_dir/status"
opts=(
	-o APT::Architecture=arm64
	-o APT::Architectures::=arm64
	-o Dir::State::Lists="$apt_dir/lists"
	-o Dir::State::status="$apt_dir/status"
	-o Dir::Cache="$apt_dir"
	-o Dir::Cache::archives="$apt_dir/archives"
	-o Debug::NoLocking=1
	-o APT::Sandbox::User=root
)

echo "arm64 sysroot: apt-get update (arm64 lists, private state in $apt_dir)"
apt-get "${opts[@]}" -qq update

# The requested packages plus everything they Depend/Pre-Depend on (what ld.so
# follows through DT_NEEDED at run time): about 35 library packages on bookworm.
# Virtual packages (<...>) drop out.
# shellcheck disable=SC2086
pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests \
	--no-conflicts --no-breaks --no-replaces --no-enhances $want |
	grep -v '^ ' | grep -v '^<' | sed 's/:arm64$//' | sort -u)

rm -f "$apt_dir/debs"/*.deb
echo "arm64 sysroot: downloading $(echo $pkgs | wc -w) packages"
# shellcheck disable=SC2046
(cd "$apt_dir/debs" && apt-get "${opts[@]}" -qq download $(for p in $pkgs; do echo "$p:arm64"; done))
echo "want: $want" >"$stamp.tmp"
for d in "$apt_dir/debs"/*.deb; do
	dpkg-deb -x "$d" "$out"
	dpkg-deb -f "$d" Package Version | paste -sd' ' >>"$stamp.tmp"
done
mv "$stamp.tmp" "$stamp"
rm -f "$apt_dir/debs"/*.deb
echo "arm64 sysroot: $(($(wc -l <"$stamp") - 1)) packages extracted into $out ($(du -sh "$out" | cut -f1))"
