#!/bin/bash
# arm64-sysroot.sh DIR: fills DIR with Debian's arm64 libcurl (OpenSSL flavour),
# OpenSSL and their shared-library closure down to libc6, so cext can be
# cross-linked for arm64 with aarch64-linux-gnu-gcc and every arm64 sample can
# run under `qemu-aarch64 -L DIR` (ld.so and libc from the same Debian build).
# DIR may be shared with scripts/arm64-sysroot.sh (the microVM's sysroot),
# which extracts a superset of the same packages. It uses apt-get with a private state
# directory (DIR.apt): the host's dpkg architectures, package lists and locks
# are left alone, and nothing is installed.
set -euo pipefail

out=${1:?usage: arm64-sysroot.sh DIR}
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

apt-get "${opts[@]}" -qq update

# The dev packages plus their run-time closure (what the linker and ld.so
# follow through DT_NEEDED), libc6 included.
pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests \
	--no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends \
	libcurl4-openssl-dev libssl-dev |
	grep -v '^ ' | grep -v '^<' | sed 's/:arm64$//' | sort -u)

cd "$apt_dir/debs"
rm -f ./*.deb
# shellcheck disable=SC2086
apt-get "${opts[@]}" -qq download $(for p in $pkgs; do echo "$p:arm64"; done)
n=0
for d in ./*.deb; do
	dpkg-deb -x "$d" "$out"
	n=$((n + 1))
done
rm -f ./*.deb
echo "arm64 sysroot: $n packages extracted into $out"
