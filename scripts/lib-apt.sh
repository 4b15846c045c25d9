# lib-apt.sh: sourced by arm64-kernel.sh and arm64-sysroot.sh. It runs apt-get
# and apt-cache with a private state directory limited to arm64, so the host's
# dpkg architectures, package lists and locks are left alone and nothing is
# installed: the scripts only download .deb files and extract them.
#
#   apt_arm64_init DIR LABEL   prepare DIR (lists, archives, an empty dpkg
#                              status) and fetch the arm64 package lists;
#                              sets apt_opts, apt_dir and apt_debs (DIR/debs,
#                              emptied of .deb files)
#   apt_arm64_download PKG...  download each PKG:arm64 into $apt_debs
#
# The sources are the host's /etc/apt/sources.list* (bookworm on this project's
# machines), read with APT::Architecture=arm64.

# shellcheck shell=bash

apt_arm64_init() {
	apt_dir=$1
	local label=$2
	apt_debs=$apt_dir/debs
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_debs"
	: >"$apt_dir/status"
	apt_opts=(
		-o APT::Architecture=arm64
		-o APT::Architectures::=arm64
		-o Dir::State::Lists="$apt_dir/lists"
		-o Dir::State::status="$apt_dir/status"
		-o Dir::Cache="$apt_dir"
		-o Dir::Cache::archives="$apt_dir/archives"
		-o Debug::NoLocking=1
		-o APT::Sandbox::User=root
	)
	echo "$label: apt-get update (arm64 lists, private state in $apt_dir)"
	apt-get "${apt_opts[@]}" -qq update
	rm -f "$apt_debs"/*.deb
}

apt_arm64_download() {
	local p args=()
	for p in "$@"; do
		args+=("$p:arm64")
	done
	(cd "$apt_debs" && apt-get "${apt_opts[@]}" -qq download "${args[@]}")
}
