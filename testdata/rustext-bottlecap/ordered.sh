#!/bin/bash
# ordered.sh: the `ordered` build of rustext-bottlecap — prod relinked with lld
# and an orderfile that `initprof orderfile` made from cold starts (needs root
# and BPF). ../rustext/ordered.sh's recipe, made precise enough to pay at this
# scale (README, "The `ordered` build"):
#
#   ordered.sh CARGO TRIPLE TARGET_DIR INITPROF OUT WORK ROUNDS
#
# Round 1 profiles an "aligned" build: prod with symbols (-C strip=none) and
# every function LTO code-generates starting on its own 4 KiB page
# (-C llvm-args=-align-all-functions=12; 62 MB, for profiling only). A page
# fault then names the one function that ran, not the ~18 that share a page in
# prod: a page-granular profile of prod's layout lists 9,600 functions (2.6 MB)
# for the 3,250 (1.05 MB) init runs, and an order of 2.6 MB spans 6 chunks of
# .text instead of 3. The C code (jemalloc, zstd, aws-lc) is not LTO'd and
# stays page-granular. Every round profiles with --readahead 4: no page is read
# around a fault, so fault-around (which maps cached neighbours without a
# fault) finds none, and every page init touches faults once and is seen.
# --min-runs 1 keeps functions only some runs reach (the async tasks'
# interleaving varies), so they do not land outside the ordered region.
# Rounds 2.. relink the normal layout with the file so far (symbols kept),
# profile it and extend the file (--extend) with what the real timing adds.
# The last file relinks prod (stripped). Each file is copied under its content
# hash, so cargo relinks exactly when the order changed.
#
# rustc >= 1.90 links x86_64-unknown-linux-gnu with its own rust-lld already
# (prod's .comment: "Linker: LLD"); -fuse-ld=lld keeps lld with older
# toolchains, which otherwise link with GNU ld (no --symbol-ordering-file).
set -euo pipefail
CARGO=$1 TRIPLE=$2 TARGET_DIR=$3 INITPROF=$4 OUT=$5 WORK=$6 ROUNDS=$7
BIN=rustext-bottlecap
mkdir -p "$WORK"
run() { # orderfile round: EXT ORDER [--extend PREV]
	local ext=$1 order=$2; shift 2
	local flags=(-n 10 --min-runs 1 --readahead 4 --name datadog-agent --runtime-init 15ms
		--checkpoint 'INIT \| phase=(\w+)' --out "$WORK/out" --force)
	"$INITPROF" orderfile "${flags[@]}" -o "$order" "$@" "$ext"
	"$INITPROF" orderfile "${flags[@]}" --format list -o "$order.list" "$@" "$ext" >/dev/null
}
cargo_link() { # DEST RUSTC_FLAGS...
	local dest=$1; shift
	local t0=$SECONDS
	flock "$TARGET_DIR/.lock" sh -c "'$CARGO' rustc --offline --release --locked --target $TRIPLE --target-dir '$TARGET_DIR' --bin $BIN -- $* \
		&& cp '$TARGET_DIR/$TRIPLE/release/$BIN' '$dest.tmp' && mv '$dest.tmp' '$dest'"
	echo "ordered: linked $dest in $((SECONDS - t0)) s"
}
link() { # ORDER DEST [extra rustc flags]
	local order=$1 dest=$2; shift 2
	local h; h=$(sha256sum "$order" | cut -c1-16)
	cp "$order" "$TARGET_DIR/order-$h.txt"
	cargo_link "$dest" -C link-arg=-fuse-ld=lld -C link-arg=-Wl,--symbol-ordering-file="'$TARGET_DIR/order-$h.txt'" "$@"
}
cargo_link "$WORK/$BIN-aligned" -C strip=none -C llvm-args=-align-all-functions=12
run "$WORK/$BIN-aligned" "$WORK/order-1.txt"
for ((i = 2; i <= ROUNDS; i++)); do
	link "$WORK/order-$((i - 1)).txt" "$WORK/$BIN-ordered-syms-$((i - 1))" -C strip=none
	run "$WORK/$BIN-ordered-syms-$((i - 1))" "$WORK/order-$i.txt" --extend "$WORK/order-$((i - 1)).txt"
done
cp "$WORK/order-$ROUNDS.txt" "$OUT.order.txt"
link "$WORK/order-$ROUNDS.txt" "$OUT"
echo "ordered: $OUT relinked with $OUT.order.txt ($(wc -l <"$OUT.order.txt") symbols, $ROUNDS rounds)"
