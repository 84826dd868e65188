#!/usr/bin/env bash
# Load benchmark of the API for docs/benchmarks.md ("Service: API latency and placement"):
# p50/p99 latency and throughput of GET /v1/jobs/{id} and POST /v1/jobs at 50 concurrent clients (wrk).
#
# Starts what scripts/run.sh starts — its own PostgreSQL 15 cluster (same settings: fsync on) and the
# API with the scheduler's Hangfire server — but no trainer host. Instead one host with 8 slots
# registers through the API (so submissions pass the capacity check) and never heartbeats: the
# liveness check marks it lost after 20 s, so placement has nowhere to put the jobs and nothing runs
# them. Submissions still trigger placement passes (each finds no free slot), as in a busy cluster.
#
# Settings (environment): LONGSEQ_HTTP_PORT (5190), LONGSEQ_PG_PORT (55490), LONGSEQ_DATA_DIR
# (/tmp/lb-data; created fresh, removed at the end unless LB_KEEP=1), LB_DURATION (20s), LB_CONNECTIONS
# (50), LB_THREADS (2), LB_ROUNDS (2), LB_SCENARIOS ("post get": the wrk scripts to run, in order),
# LB_DB_EXTRA (appended to the connection string, e.g. "Maximum Pool Size=16"),
# LONGSEQ_NO_BUILD=1 to skip the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bench=$root/tools/LoadBench
port=${LONGSEQ_HTTP_PORT:-5190}
pgport=${LONGSEQ_PG_PORT:-55490}
data=$(realpath -m "${LONGSEQ_DATA_DIR:-/tmp/lb-data}")
duration=${LB_DURATION:-20s}; conns=${LB_CONNECTIONS:-50}; threads=${LB_THREADS:-2}; rounds=${LB_ROUNDS:-2}; scenarios=${LB_SCENARIOS:-post get}
url=http://127.0.0.1:$port

command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
if [ -e "$data" ] && [ ! -f "$data/.loadbench" ]; then echo "$data exists and is not a load-benchmark folder; set LONGSEQ_DATA_DIR" >&2; exit 1; fi
rm -rf "$data"; mkdir -p "$data/logs"; touch "$data/.loadbench"

if [ "${LONGSEQ_NO_BUILD:-}" != 1 ]; then
  dotnet build src/Api -c Release -nologo -v q >"$data/logs/build.log" 2>&1 || { tail -20 "$data/logs/build.log"; exit 1; }
fi
api_dll=$root/src/Api/bin/Release/net10.0/linux-x64/LongSeqService.Api.dll

new_key() { echo "lsk_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }
admin_key=$(new_key); host_key=$(new_key)
scripts/pg.sh start "$data" "$pgport"
api_pid=
stop() {
  trap - INT TERM EXIT
  [ -n "$api_pid" ] && { kill -TERM "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; }
  scripts/pg.sh stop "$data"
  [ "${LB_KEEP:-}" = 1 ] || rm -rf "$data"
}
trap stop INT TERM EXIT

export LONGSEQ_DB="$(scripts/pg.sh conn "$data" "$pgport");Database=longseq${LB_DB_EXTRA:+;$LB_DB_EXTRA}" LONGSEQ_DATA_DIR="$data"
export LONGSEQ_BOOTSTRAP_API_KEY=$admin_key LONGSEQ_BOOTSTRAP_HOST_KEY=$host_key
export ASPNETCORE_URLS=$url ASPNETCORE_CONTENTROOT=$(dirname "$api_dll") DOTNET_NOLOGO=1
dotnet "$api_dll" --migrate-only >"$data/logs/migrate.log" 2>&1 || { tail -20 "$data/logs/migrate.log"; exit 1; }
dotnet "$api_dll" >"$data/logs/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 240); do curl -fs "$url/health" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fs "$url/health" >/dev/null || { echo "the API did not come up"; tail -20 "$data/logs/api.log"; exit 1; }

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -fs -H "Authorization: Bearer $host_key" -H 'Content-Type: application/json' \
  -d '{"name":"loadbench-host","slots":[{"device":"cpu"},{"device":"cpu"},{"device":"cpu"},{"device":"cpu"},{"device":"cpu"},{"device":"cpu"},{"device":"cpu"},{"device":"cpu"}]}' \
  "$url/v1/hosts/register" >/dev/null
key=$(curl -fs -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' -d '{"tenant":"loadbench"}' "$url/v1/keys" | json '["key"]')
dataset=$(curl -fs -H "Authorization: Bearer $key" -F "file=@data/identity.json" "$url/v1/datasets" | json '["id"]')
ids=()
for i in $(seq 1 100); do
  ids+=("$(curl -fs -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"model_name_or_path\":\"builtin:tiny-llama\",\"dataset\":\"$dataset\",\"sequence_parallel_size\":2}" "$url/v1/jobs" | json '["id"]')")
done
export LB_DIR=$bench LB_KEY=$key LB_DATASET=$dataset LB_JOB_IDS=$(IFS=,; echo "${ids[*]}")

# CPU seconds used so far by a process and its reaped children (utime+stime+cutime+cstime), and by
# the PostgreSQL cluster (the postmaster, its children, and those already reaped). On a shared machine
# latency depends on everyone's load; CPU time per request does not, so it is printed too.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15 + $16 + $17) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_cpu() {
  local pm; pm=$(head -1 "$data/pg/cluster/postmaster.pid")
  { cpu_of "$pm"; for c in $(ps -o pid= --ppid "$pm"); do awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$c/stat" 2>/dev/null || true; done; } | awk '{ s += $1 } END { print s }'
}
wrk_run() { # name script run-tag duration
  local api0 pg0 api1 pg1 n
  api0=$(cpu_of "$api_pid"); pg0=$(pg_cpu)
  LB_RUN=$3 wrk -t"$threads" -c"$conns" -d"$4" --latency -s "$bench/$2" "$url" >"$data/logs/wrk-$1.log" 2>&1 || { cat "$data/logs/wrk-$1.log"; exit 1; }
  api1=$(cpu_of "$api_pid"); pg1=$(pg_cpu)
  n=$(grep '^RESULT' "$data/logs/wrk-$1.log" | sed 's/.*requests=\([0-9]*\).*/\1/')
  grep '^RESULT' "$data/logs/wrk-$1.log" | sed "s/^RESULT /RESULT $1 /" | tr -d '\n'
  awk -v a0="$api0" -v a1="$api1" -v p0="$pg0" -v p1="$pg1" -v n="$n" 'BEGIN { printf " api_cpu_us_per_req=%.0f pg_cpu_us_per_req=%.0f\n", (a1 - a0) * 1e6 / n, (p1 - p0) * 1e6 / n }'
}
echo "machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "warm-up (not recorded): 5 s of each"
for s in $scenarios; do wrk_run "warmup-$s" "$s.lua" warmup 5s >/dev/null; done
for r in $(seq 1 "$rounds"); do
  for s in $scenarios; do
    echo "round $r: before $s: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    wrk_run "$s-$r" "$s.lua" "r$r-$RANDOM" "$duration"
  done
done
echo "after: load average $(cut -d' ' -f1-3 /proc/loadavg); jobs in the database: $(curl -fs -H "Authorization: Bearer $key" "$url/v1/jobs?limit=1" | json '["total"]')"
grep -c "placement" "$data/logs/api.log" >/dev/null && echo "placement log lines: $(grep -c placement "$data/logs/api.log")" || true
