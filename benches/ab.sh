#!/usr/bin/env bash
# Two builds of one criterion bench, run in turns, for a noisy VM: the same binary reads 20-50 %
# apart from one minute to the next there (README "Speed"), so "before" and "after" measured
# once each tell nothing. Each round runs A then B on the same benchmark; the middle estimates
# are printed sorted, with the minimum and the median of each side.
#   bash benches/ab.sh A_BIN B_BIN 'stem_192x192_1thread/SimdAvx512Zmm' [rounds=8]
# Make the binaries with `cargo bench --locked --bench NAME --no-run` at each commit and copy
# target/release/deps/NAME-<hash> away (the path is the same for both).
set -euo pipefail
a=${1:?usage: ${0##*/} A_BIN B_BIN FILTER [rounds]}
b=${2:?usage: ${0##*/} A_BIN B_BIN FILTER [rounds]}
filter=${3:?usage: ${0##*/} A_BIN B_BIN FILTER [rounds]}
rounds=${4:-8}
export NODEVICE_SELECT=1

# middle BIN: criterion's middle estimate (ms) of FILTER's one benchmark.
middle() {
  "$1" --bench "$filter" --warm-up-time 1 --measurement-time 2 2>&1 |
    awk '/time:/ { gsub(/\[/, ""); v = $4; u = $5; if (u == "µs") v /= 1000; if (u == "s") v *= 1000; print v; exit }'
}

declare -a ta tb
for ((i = 0; i < rounds; i++)); do
  ta+=("$(middle "$a")")
  tb+=("$(middle "$b")")
done
summary() {
  printf '%s\n' "${@:2}" | sort -g | awk -v name="$1" '
    { v[NR] = $1; line = line sprintf(" %.2f", $1) }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "%s: min %.2f ms, median %.2f ms; sorted:%s\n", name, v[1], m, line }'
}
summary A "${ta[@]}"
summary B "${tb[@]}"
