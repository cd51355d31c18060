#!/usr/bin/env bash
# memledger's overhead on TPC-H: every query run by a memledger build
# (counting mode, operator scopes, audited pool, report) and by a bare
# mimalloc build, interleaved (the order flips each round), on the same
# Parquet data. Prints per-query medians and ratios, and the total. Give an
# even number of rounds: whichever build runs first in a round can be
# slower, and the order-balanced figure cancels that out.
#
#   scripts/overhead.sh [--scale F] [--rounds N] [--partitions N] [--data DIR] [--queries "1 2 ..."]
#
# Builds both binaries with `cargo build --release` (only this crate is
# rebuilt between the two feature sets) and keeps them in $WORK (default: a
# temporary folder; delete them there to rebuild). Data: --data DIR, else $WORK/tpch-sf<F>, generated once.
set -euo pipefail

scale=1
rounds=3
partitions=4
data=""
queries="$(seq 1 22)"
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) scale="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --partitions) partitions="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --queries) queries="$2"; shift 2 ;;
        *) echo "usage: $0 [--scale F] [--rounds N] [--partitions N] [--data DIR] [--queries \"1 2 ...\"]" >&2; exit 2 ;;
    esac
done

crate="$(cd "$(dirname "$0")/.." && pwd)"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
target="${CARGO_TARGET_DIR:-$crate/target}"

build() { # feature, output name (kept in $WORK: a rerun reuses it)
    [ -x "$work/$2" ] && return
    (cd "$crate" && cargo build --release --quiet --features "$1")
    cp "$target/release/memledger-tpch" "$work/$2"
}
build counting memledger-tpch-counting
build bare-mimalloc memledger-tpch-bare

if [ -z "$data" ]; then
    data="$work/tpch-sf$scale"
    [ -e "$data" ] || "$work/memledger-tpch-counting" gen --scale "$scale" --dir "$data" --partitions "$partitions" >&2
fi

# Query time in ms as the binary prints it: `q3: 11620 rows in 812 ms`.
run_ms() { # binary, query
    "$work/$1" "$2" --data "$data" --partitions "$partitions" --pool unbounded \
        | sed -n "s/^q$2: [0-9]* rows in \([0-9]*\) ms$/\1/p"
}

results="$work/overhead.tsv"
: > "$results"
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order="counting bare"; else order="bare counting"; fi
    for q in $queries; do
        for variant in $order; do
            ms="$(run_ms "memledger-tpch-$variant" "$q")"
            [ -n "$ms" ] || { echo "q$q failed under $variant" >&2; exit 1; }
            printf '%s\t%s\t%s\t%s\n' "$round" "$q" "$variant" "$ms" >> "$results"
        done
    done
    echo "round $round of $rounds done" >&2
done

# Per query: the median of each build's times and their ratio; in total:
# the sum of the medians, and the median of the per-round total ratios.
awk -F'\t' '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ times[$2, $3] = times[$2, $3] " " $4; round_total[$1, $3] += $4; if (!($2 in seen)) { seen[$2] = 1; order[++nq] = $2 }; rounds[$1] = 1 }
END {
    print "| query | memledger ms | bare ms | ratio |"
    print "|---|---:|---:|---:|"
    for (i = 1; i <= nq; i++) {
        q = order[i]; m = median(times[q, "counting"]); b = median(times[q, "bare"])
        sm += m; sb += b
        printf "| q%s | %d | %d | %.3f |\n", q, m, b, (b > 0 ? m / b : 0)
    }
    printf "| **total** | %d | %d | %.3f |\n", sm, sb, sm / sb
    for (r in rounds) {
        ratio = round_total[r, "counting"] / round_total[r, "bare"]
        ratios = ratios " " ratio
        # Odd rounds run memledger first, even rounds bare mimalloc first.
        if (r % 2) { first_log += log(ratio); first_n++ } else { second_log += log(ratio); second_n++ }
    }
    printf "\nmedian of per-round total ratios: %.3f (rounds:%s)\n", median(ratios), ratios
    if (first_n && second_n) {
        a = exp(first_log / first_n); b = exp(second_log / second_n)
        printf "memledger run first: %.3f; bare run first: %.3f; order-balanced (geometric mean of the two): %.3f\n", a, b, sqrt(a * b)
    }
}' "$results"
