#!/bin/bash
# arm64-sysroot.sh [DIR]: fills DIR (default build/arm64-sysroot) with Debian's
# arm64 run-time libraries for the sample extensions, as a root filesystem the
# arm64 microVM copies closures from (container/vm) and the cross-linker links
# against:
#   - libc6 (ld-linux-aarch64.so.1, libc.so.6) and libc6-dbg, whose
#     /usr/lib/debug/.build-id files give ld.so's internal symbols
#     (_dl_start, _dl_relocate_object, ...) for the loader checkpoints;
#   - libcurl4 (OpenSSL flavour) and its whole Depends closure, for cext;
#   - libc6-dev, libcurl4-openssl-dev and libssl-dev, to cross-link cext with
#     aarch64-linux-gnu-gcc (testdata/samples/Makefile's arm64 target runs this
#     script), and so every arm64 sample can run under `qemu-aarch64 -L DIR`
#     (ld.so and libc from the same Debian build).
# It uses apt-get with a private state directory (DIR.apt) limited to arm64
# (lib-apt.sh): the host's dpkg architectures, package lists and locks are left
# alone, and nothing is installed. Idempotent: DIR/.initprof-sysroot lists what
# was extracted, and a second run with the same package set does nothing
# (FORCE=1 redoes it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/arm64-sysroot}
stamp=$out/.initprof-sysroot
want="libc6 libc6-dev libc6-dbg libcurl4 libcurl4-openssl-dev libssl-dev runc crun"

if [[ -s $stamp && ${FORCE:-0} != 1 ]] && [[ $(head -n1 "$stamp") == "want: $want" ]]; then
	echo "arm64 sysroot: up to date in $out ($(($(wc -l <"$stamp") - 1)) packages); FORCE=1 refetches"
	exit 0
fi

# shellcheck source=scripts/lib-apt.sh
source "$root/scripts/lib-apt.sh"
mkdir -p "$out"
apt_arm64_init "$out.apt" "arm64 sysroot"

# The requested packages plus everything they Depend/Pre-Depend on (what ld.so
# follows through DT_NEEDED at run time, and the linker through the dev
# packages): about 45 packages on bookworm.
# Virtual packages (<...>) drop out.
# shellcheck disable=SC2086
pkgs=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
	--no-conflicts --no-breaks --no-replaces --no-enhances $want |
	grep -v '^ ' | grep -v '^<' | sed 's/:arm64$//' | sort -u)

echo "arm64 sysroot: downloading $(echo $pkgs | wc -w) packages"
# shellcheck disable=SC2086
apt_arm64_download $pkgs
echo "want: $want" >"$stamp.tmp"
for d in "$apt_debs"/*.deb; do
	dpkg-deb -x "$d" "$out"
	dpkg-deb -f "$d" Package Version | paste -sd' ' >>"$stamp.tmp"
done
mv "$stamp.tmp" "$stamp"
rm -f "$apt_debs"/*.deb
echo "arm64 sysroot: $(($(wc -l <"$stamp") - 1)) packages extracted into $out ($(du -sh "$out" | cut -f1))"
