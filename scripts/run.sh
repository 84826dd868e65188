#!/usr/bin/env bash
# Starts LongSeqService on this machine: a local PostgreSQL 15 cluster under the data folder, the
# migrations, the API (with the scheduler) and one trainer host with CPU slots. Ctrl-C stops all of it.
# Settings (environment):
#   LONGSEQ_HTTP_PORT          API port (default 5080)
#   LONGSEQ_PG_PORT            PostgreSQL port (default 55432)
#   LONGSEQ_DATA_DIR           data folder: database, datasets, job outputs (default .data)
#   LONGSEQ_TRAINER_SLOTS      CPU slots of the local trainer host (default 4)
#   LONGSEQ_BOOTSTRAP_API_KEY  the first admin key (generated on first run and kept in DATA/admin.key when unset)
#   LONGSEQ_NO_BUILD=1         skip `dotnet build`
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
port=${LONGSEQ_HTTP_PORT:-5080}
pgport=${LONGSEQ_PG_PORT:-55432}
data=$(realpath -m "${LONGSEQ_DATA_DIR:-.data}")
slots=${LONGSEQ_TRAINER_SLOTS:-4}
mkdir -p "$data" "$data/logs"

if [ "${LONGSEQ_NO_BUILD:-}" != 1 ]; then
  echo "building the API and the trainer (Release)…"
  dotnet build src/Api -c Release -nologo -v q >"$data/logs/build.log" 2>&1 \
    && dotnet build src/Trainer -c Release -nologo -v q >>"$data/logs/build.log" 2>&1 \
    || { echo "build failed; see $data/logs/build.log"; tail -20 "$data/logs/build.log"; exit 1; }
fi
api_dir=$root/src/Api/bin/Release/net10.0/linux-x64
trainer_dll=$root/src/Trainer/bin/Release/net10.0/linux-x64/trainer.dll

# Keys: the admin key (given, or generated once and kept) and the local host's key.
new_key() { echo "lsk_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; }
first_run_key=
if [ -z "${LONGSEQ_BOOTSTRAP_API_KEY:-}" ]; then
  if [ ! -f "$data/admin.key" ]; then (umask 077; new_key > "$data/admin.key"); first_run_key=1; fi
  LONGSEQ_BOOTSTRAP_API_KEY=$(cat "$data/admin.key")
fi
[ -f "$data/host.key" ] || (umask 077; new_key > "$data/host.key")   # the local host's key: one key, one host
host_key=$(cat "$data/host.key")

# MPICH for jobs with launch: processes (one process per rank under mpiexec; Debian's package).
if ! command -v mpiexec >/dev/null 2>&1; then
  echo "installing mpich (Debian package) for launch: processes"
  (apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q mpich >/dev/null 2>&1) \
    || echo "warning: could not install mpich; jobs with launch: processes will fail"
fi

scripts/pg.sh start "$data" "$pgport"
db="$(scripts/pg.sh conn "$data" "$pgport");Database=longseq"

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done   # the host stops its trainers first
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/pg.sh stop "$data"
  echo "stopped."
  exit 0
}
trap stop INT TERM EXIT

export LONGSEQ_DB="$db" LONGSEQ_DATA_DIR="$data" LONGSEQ_BOOTSTRAP_API_KEY LONGSEQ_BOOTSTRAP_HOST_KEY="$host_key"
export ASPNETCORE_URLS="http://127.0.0.1:$port" ASPNETCORE_CONTENTROOT="$api_dir" DOTNET_NOLOGO=1
echo "applying migrations…"
dotnet "$api_dir/LongSeqService.Api.dll" --migrate-only >"$data/logs/migrate.log" 2>&1 || { echo "migrations failed; see $data/logs/migrate.log"; exit 1; }

dotnet "$api_dir/LongSeqService.Api.dll" >"$data/logs/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "the API exited; see $data/logs/api.log"; tail -20 "$data/logs/api.log"; exit 1; }
  sleep 0.5
done

# The host gets no database connection and no admin key (runs are leased to it over HTTP), and its key
# from a file, never the command line (which every user can read in ps).
env -u LONGSEQ_DB -u LONGSEQ_BOOTSTRAP_API_KEY -u LONGSEQ_BOOTSTRAP_HOST_KEY \
  dotnet "$trainer_dll" host --api "http://127.0.0.1:$port" --token-file "$data/host.key" --slots "$slots" --name "$(hostname)-local" \
  --state-dir "$data/host-state" >"$data/logs/trainer-host.log" 2>&1 &
pids+=($!)
sleep 2
kill -0 "${pids[1]}" 2>/dev/null || { echo "the trainer host exited; see $data/logs/trainer-host.log"; tail -20 "$data/logs/trainer-host.log"; }

cat <<INFO

LongSeqService is running.
  Dashboard   http://127.0.0.1:$port/
  Swagger UI  http://127.0.0.1:$port/swagger        (Authorize with the admin key)
  OpenAPI     http://127.0.0.1:$port/openapi/v1.json
  Health      http://127.0.0.1:$port/health
  Hangfire    http://127.0.0.1:$port/hangfire       (admin only)
  Trainer host: $slots CPU slot(s); logs in $data/logs/
INFO
if [ -n "$first_run_key" ]; then
  echo "  Admin key (shown once; kept in $data/admin.key): $LONGSEQ_BOOTSTRAP_API_KEY"
elif [ -f "$data/admin.key" ] && [ "$(cat "$data/admin.key")" = "$LONGSEQ_BOOTSTRAP_API_KEY" ]; then
  echo "  Admin key: in $data/admin.key"
else
  echo "  Admin key: LONGSEQ_BOOTSTRAP_API_KEY"
fi
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
echo "a process exited; see $data/logs/"
