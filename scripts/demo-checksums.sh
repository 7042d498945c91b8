#!/usr/bin/env bash
# Checksums of the demo tenant at a fixed seed and time: each crm table's Parquet file and
# each kpi table's rows (sorted CSV). A refactoring that keeps behaviour identical keeps
# this output identical: run it before and after and diff the two. Floating-point KPI columns
# are rounded to 10 significant digits first: DataFusion sums floats in parallel, so their
# last digits vary from run to run.
#   scripts/demo-checksums.sh [binary] > checksums.txt
set -euo pipefail
bin="${1:-target/debug/salespulse}"
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
"$bin" demo --seed 42 --as-of 2026-11-30T12:00:00Z --data "$data" --no-serve >/dev/null
round_floats() {
  python3 -c '
import csv, re, sys
number = re.compile(r"-?[0-9]+\.[0-9]*([eE][-+]?[0-9]+)?$")
out = csv.writer(sys.stdout, lineterminator="\n")
for row in csv.reader(sys.stdin):
    out.writerow(["%.10g" % float(f) if number.match(f) else f for f in row])
'
}
snapshot="$(dirname "$(find "$data/demo/snapshots" -name manifest.json)")"
(cd "$snapshot" && find . -name '*.parquet' | sort | xargs sha256sum | sed 's#  \./#  crm/#')
"$bin" query --data "$data" --tenant demo --format csv \
  "SELECT table_name FROM information_schema.tables WHERE table_schema = 'kpi' ORDER BY 1" |
  tail -n +2 | while read -r view; do
    printf '%s  kpi/%s\n' "$("$bin" query --data "$data" --tenant demo --format csv "SELECT * FROM kpi.$view" | round_floats | sort | sha256sum | cut -d' ' -f1)" "$view"
  done
