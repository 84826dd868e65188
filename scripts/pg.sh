#!/usr/bin/env bash
# Starts (creating on first use) a local PostgreSQL 15 cluster under a folder of the repo.
#   scripts/pg.sh start DATA_DIR PORT [--fast]   prints nothing; exits non-zero with the reason on failure
#   scripts/pg.sh stop DATA_DIR
# The superuser is "app" with the password in DATA_DIR/pg/pwfile. Runs as the invoking user, or as
# the "postgres" system user when invoked as root (initdb refuses to run as root).
set -euo pipefail
cmd=$1; data=$(realpath -m "$2"); port=${3:-55432}; fast=${4:-}
pgbin=/usr/lib/postgresql/15/bin
[ -x "$pgbin/initdb" ] || pgbin=$(dirname "$(command -v initdb || echo /usr/bin/initdb)")
if [ ! -x "$pgbin/initdb" ]; then
  echo "PostgreSQL 15 is not installed; installing postgresql-15 from Debian's packages" >&2
  apt-get install -y -q postgresql-15 >/dev/null || { echo "could not install postgresql-15" >&2; exit 1; }
  pgbin=/usr/lib/postgresql/15/bin
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgdir=$data/pg
case $cmd in
start)
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
  mkdir -p "$pgdir"
  if [ ! -f "$pgdir/cluster/PG_VERSION" ]; then
    [ -f "$pgdir/pwfile" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pgdir/pwfile")
    mkdir -p "$pgdir/cluster" "$pgdir/run"
    [ "$(id -u)" = 0 ] && chown -R postgres "$pgdir"
    as_pg "$pgbin/initdb" -D "$pgdir/cluster" -U app --pwfile="$pgdir/pwfile" --auth-host=scram-sha-256 --auth-local=trust -E UTF8 >/dev/null
  fi
  [ "$(id -u)" = 0 ] && chown -R postgres "$pgdir"
  if as_pg "$pgbin/pg_ctl" -D "$pgdir/cluster" status >/dev/null 2>&1; then exit 0; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken by another program; set LONGSEQ_PG_PORT to a free port" >&2; exit 1
  fi
  opts="-p $port -k $pgdir/run -c listen_addresses=127.0.0.1 -c max_connections=300"
  [ "$fast" = --fast ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  as_pg "$pgbin/pg_ctl" -D "$pgdir/cluster" -l "$pgdir/server.log" -w -t 30 -o "$opts" start >/dev/null \
    || { echo "PostgreSQL did not start; see $pgdir/server.log" >&2; tail -5 "$pgdir/server.log" >&2; exit 1; }
  ;;
stop)
  as_pg "$pgbin/pg_ctl" -D "$pgdir/cluster" -m fast stop >/dev/null 2>&1 || true
  ;;
conn)
  echo "Host=127.0.0.1;Port=$port;Username=app;Password=$(cat "$pgdir/pwfile")"
  ;;
*) echo "usage: pg.sh start|stop|conn DATA_DIR [PORT]" >&2; exit 2 ;;
esac
