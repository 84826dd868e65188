#!/usr/bin/env bash
# Fault injection (issue 9): several short SP=2 jobs with the real trainer while the API, the database,
# the host and the trainer are killed at random points; asserts every job succeeds, each logged step
# appears once, the model loads and no two trainers ever held one job at once. CI runs it among the slow
# tests (FaultInjectionTests); this runs only it.
#   tools/faults/run.sh [--jobs N] [--seed S] [--rounds R]   (R runs, each with its own seed unless --seed)
# The counts of each run are printed and kept in .data/faults/last.json (all runs: .data/faults/runs.jsonl).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=1
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) export LONGSEQ_FAULTS_JOBS=$2; shift 2 ;;
    --seed) export LONGSEQ_FAULTS_SEED=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "tools/faults/run.sh: unknown option '$1' (use --jobs N, --seed S, --rounds R)" >&2; exit 2 ;;
  esac
done
mkdir -p .data/faults
for ((r = 1; r <= rounds; r++)); do
  rm -f .data/faults/last.json
  scripts/test.sh -- --filter "FullyQualifiedName~FaultInjectionTests" | tail -30
  [ -f .data/faults/last.json ] || { echo "round $r failed (no report; the fault schedule is in the output above)"; exit 1; }
  cat .data/faults/last.json; echo
  tr -d '\n ' < .data/faults/last.json >> .data/faults/runs.jsonl; echo >> .data/faults/runs.jsonl
done
