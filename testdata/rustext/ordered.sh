#!/bin/bash
# ordered.sh: the `ordered` build of rustext — prod relinked with lld and an
# orderfile made by `initprof orderfile` from cold starts (needs root and BPF).
#
#   ordered.sh CARGO TRIPLE TARGET_DIR INITPROF SYMS_BIN OUT WORK ROUNDS
#
# Round 1 profiles SYMS_BIN (prod with -C strip=none: the same code, so the
# same symbol names). One profile sees the pages init faulted on, and
# fault-around maps up to 16 cached pages around each fault without more
# faults, so functions on those pages go unseen; each further round relinks
# with the file so far (symbols kept), profiles that build, and extends the
# file with what it adds (--extend). The last file relinks prod (stripped).
# Each file is copied under its content hash, so cargo relinks exactly when
# the order changed.
set -euo pipefail
CARGO=$1 TRIPLE=$2 TARGET_DIR=$3 INITPROF=$4 SYMS=$5 OUT=$6 WORK=$7 ROUNDS=$8
mkdir -p "$WORK"
run() { # orderfile round: EXT ORDER [--extend PREV]
	local ext=$1 order=$2; shift 2
	"$INITPROF" orderfile -n 5 --name datadog-agent --runtime-init 15ms --out "$WORK/out" --force -o "$order" "$@" "$ext"
	"$INITPROF" orderfile -n 5 --name datadog-agent --runtime-init 15ms --out "$WORK/out" --force --format list -o "$order.list" "$@" "$ext" >/dev/null
}
link() { # ORDER DEST [extra rustc flags]
	local order=$1 dest=$2; shift 2
	local h; h=$(sha256sum "$order" | cut -c1-16)
	cp "$order" "$TARGET_DIR/order-$h.txt"
	flock "$TARGET_DIR/.lock" sh -c "'$CARGO' rustc --release --target $TRIPLE --target-dir '$TARGET_DIR' --bin rustext -- \
		-C link-arg=-fuse-ld=lld -C link-arg=-Wl,--symbol-ordering-file='$TARGET_DIR/order-$h.txt' $* && cp '$TARGET_DIR/$TRIPLE/release/rustext' '$dest.tmp' && mv '$dest.tmp' '$dest'"
}
run "$SYMS" "$WORK/order-1.txt"
for ((i = 2; i <= ROUNDS; i++)); do
	link "$WORK/order-$((i - 1)).txt" "$WORK/rustext-ordered-syms-$((i - 1))" -C strip=none
	run "$WORK/rustext-ordered-syms-$((i - 1))" "$WORK/order-$i.txt" --extend "$WORK/order-$((i - 1)).txt"
done
cp "$WORK/order-$ROUNDS.txt" "$OUT.order.txt"
link "$WORK/order-$ROUNDS.txt" "$OUT"
echo "ordered: $OUT relinked with $OUT.order.txt ($(wc -l <"$OUT.order.txt") symbols, $ROUNDS rounds)"
