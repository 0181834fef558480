#!/usr/bin/env bash
# Install and start the services the "services" tests need, on a Debian 12 machine, as root:
#   postgres  PostgreSQL (Debian `postgresql`) on 127.0.0.1, a password role, databases optuna + mlflow
#   slurm     a one-node SLURM cluster (munged, slurmctld, slurmd), checked with `srun hostname`
#   mlflow    `mlflow server` from the project venv, PostgreSQL `mlflow` database as backend store
# then write an env file (export lines) for the services that came up.
#
# Usage:
#   bash .ci/services.sh && source .ci/services.env
#   source .ci/services.sh          # same, and the env file is sourced into the calling shell
#
# Idempotent: running services are detected and kept; a changed configuration restarts only the
# service concerned. Stop everything with .ci/stop-services.sh.
#
# The env file holds MLP_SWEEP_TEST_POSTGRES_URL as a SQLAlchemy URL (Optuna storage):
# postgresql+psycopg2://USER:PASSWORD@127.0.0.1:5432/optuna. The driver is explicit because
# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, which the venv does not install.
# For psycopg2/libpq, drop "+psycopg2".
#
# Environment (all optional):
#   MLP_SWEEP_SERVICES        services to start (default "postgres slurm mlflow")
#   MLP_SWEEP_SERVICES_ENV    env file to write (default .ci/services.env; keep it git-ignored)
#   MLP_SWEEP_SERVICES_STATE  state folder: logs, pids, SLURM state, MLflow artifacts
#                             (default /tmp/mlp-sweep-services)
#   MLP_SWEEP_SERVICES_OPTIONAL=1  exit 0 even if a requested service failed
#   MLP_SWEEP_PG_PORT (5432) MLP_SWEEP_PG_USER (mlpsweep) MLP_SWEEP_PG_PASSWORD (random, kept in
#                             the state folder)
#   MLP_SWEEP_SLURM_PARTITION (debug) MLP_SWEEP_SLURM_FORCE=1 (overwrite a foreign slurm.conf)
#   MLP_SWEEP_VENV (.venv) MLP_SWEEP_MLFLOW_PORT (5000) MLP_SWEEP_MLFLOW_WORKERS (1)
#   MLP_SWEEP_MLFLOW_BACKEND_URI  backend store (default: the PostgreSQL mlflow database)
#   MLP_SWEEP_MLFLOW_JOBS (false)  MLFLOW_SERVER_ENABLE_JOB_EXECUTION of the server
#   MLP_SWEEP_SERVICES_TIMEOUT  seconds to wait for each service to answer (default 60)

# --- sourced: run in a child bash (set -e / exit must not hit the caller), then load the env file
if [[ "${BASH_SOURCE[0]}" != "${0}" ]]; then
    _mlp_services_source() {
        local rc=0 env
        bash "${BASH_SOURCE[0]}" "$@" || rc=$?
        env="${MLP_SWEEP_SERVICES_ENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services.env}"
        # shellcheck disable=SC1090
        [[ ! -f "$env" ]] || . "$env"
        unset -f _mlp_services_source
        return "$rc"
    }
    _mlp_services_source "$@"
    return
fi

set -euo pipefail

CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$CI_DIR/.." && pwd)"

SERVICES="${MLP_SWEEP_SERVICES-postgres slurm mlflow}"
ENV_FILE="${MLP_SWEEP_SERVICES_ENV:-$CI_DIR/services.env}"
STATE="${MLP_SWEEP_SERVICES_STATE:-/tmp/mlp-sweep-services}"
TIMEOUT="${MLP_SWEEP_SERVICES_TIMEOUT:-60}"

PG_PORT="${MLP_SWEEP_PG_PORT:-5432}"
PG_USER="${MLP_SWEEP_PG_USER:-mlpsweep}"
PG_CLUSTER=main

SLURM_CONF=/etc/slurm/slurm.conf
SLURM_PARTITION="${MLP_SWEEP_SLURM_PARTITION:-debug}"
MARKER="# managed by mlp-sweep .ci/services.sh"

VENV="${MLP_SWEEP_VENV:-.venv}"
[[ "$VENV" = /* ]] || VENV="$REPO_DIR/$VENV"
MLFLOW_PORT="${MLP_SWEEP_MLFLOW_PORT:-5000}"
MLFLOW_WORKERS="${MLP_SWEEP_MLFLOW_WORKERS:-1}" # each worker re-imports MLflow: slow, ~250 MB
# MLflow 3.17's server starts a job runner + 7 huey consumers (GenAI jobs) by default: ~1 GB RAM
# and most of the start-up time on 2 cores. The tests do not need them.
MLFLOW_JOBS="${MLP_SWEEP_MLFLOW_JOBS:-false}"

log() { printf '[services %(%T)T] %s\n' -1 "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}
now() { date +%s.%N; }

# wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds or SECONDS pass
wait_for() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

[[ $EUID -eq 0 ]] || die "run as root (installs Debian packages and starts system daemons)"

mkdir -p "$STATE"
chmod 755 "$STATE"
# fd 9 holds the lock: every daemon below is started with 9>&- so that it does not inherit it
exec 9>"$STATE/lock"
flock -w 120 9 || die "another .ci/services.sh holds $STATE/lock"

# --- apt ---------------------------------------------------------------------------------------
APT_STAMP="$STATE/apt-updated.$$" # one apt-get update per run (services run in subshells)
trap 'rm -f "$APT_STAMP"' EXIT
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local aptlog="$STATE/apt.log"
    if [[ ! -e "$APT_STAMP" ]]; then
        apt-get update -qq >>"$aptlog" 2>&1 || {
            tail -20 "$aptlog" >&2
            die "apt-get update failed (log: $aptlog)"
        }
        touch "$APT_STAMP"
    fi
    # keep the packages' init scripts from starting daemons: this script starts them, configured
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >>"$aptlog" 2>&1 || rc=$?
    ((made_policy == 0)) || rm -f "$policy"
    if ((rc != 0)); then
        tail -20 "$aptlog" >&2
        die "apt-get install ${missing[*]} failed (log: $aptlog)"
    fi
}

# --- PostgreSQL --------------------------------------------------------------------------------
pg_password() {
    local f="$STATE/pg-password"
    if [[ -n "${MLP_SWEEP_PG_PASSWORD:-}" ]]; then
        printf '%s' "$MLP_SWEEP_PG_PASSWORD"
    else
        if [[ ! -s "$f" ]]; then
            (
                umask 077
                openssl rand -hex 16 >"$f"
            )
        fi
        tr -d '\n' <"$f"
    fi
}

# SQLAlchemy URL. The driver is explicit: SQLAlchemy 2.1 maps plain postgresql:// to psycopg (3),
# which the venv does not have; psycopg2-binary is what pyproject.toml installs.
pg_url() {
    printf 'postgresql+psycopg2://%s:%s@127.0.0.1:%s/%s' "$PG_USER" "$(pg_password)" "$PG_PORT" "$1"
}

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"; }

start_postgres() {
    apt_install postgresql
    local ver
    ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -1)"
    [[ -n "$ver" ]] || die "no PostgreSQL server under /usr/lib/postgresql"
    if ! pg_lsclusters -h | awk -v v="$ver" -v c="$PG_CLUSTER" '$1 == v && $2 == c {f = 1} END {exit !f}'; then
        log "postgres: creating cluster $ver/$PG_CLUSTER"
        pg_createcluster "$ver" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
    fi
    local conf="/etc/postgresql/$ver/$PG_CLUSTER/conf.d/mlp-sweep.conf"
    local want
    want="$(printf "%s\nlisten_addresses = '127.0.0.1'\nport = %s\n" "$MARKER" "$PG_PORT")"
    local restart=0
    if [[ "$(cat "$conf" 2>/dev/null)" != "$want" ]]; then
        printf '%s\n' "$want" >"$conf"
        restart=1
    fi
    # TCP password auth: Debian's default pg_hba.conf has "host all all 127.0.0.1/32 scram-sha-256"
    local hba="/etc/postgresql/$ver/$PG_CLUSTER/pg_hba.conf"
    grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+(scram-sha-256|md5)' "$hba" ||
        die "postgres: $hba has no 'host all all 127.0.0.1/32 scram-sha-256' line"
    mkdir -p /run/postgresql /var/log/postgresql
    chown postgres:postgres /run/postgresql
    chmod 2775 /run/postgresql
    if pg_ctlcluster "$ver" "$PG_CLUSTER" status >/dev/null 2>&1; then
        if ((restart)); then
            log "postgres: configuration changed, restarting $ver/$PG_CLUSTER"
            pg_ctlcluster "$ver" "$PG_CLUSTER" restart 9>&-
        else
            log "postgres: $ver/$PG_CLUSTER already running"
        fi
    else
        log "postgres: starting $ver/$PG_CLUSTER"
        pg_ctlcluster "$ver" "$PG_CLUSTER" start 9>&- ||
            die "postgres: pg_ctlcluster $ver $PG_CLUSTER start failed (log: /var/log/postgresql/postgresql-$ver-$PG_CLUSTER.log)"
    fi
    wait_for "$TIMEOUT" pg_isready -q -h 127.0.0.1 -p "$PG_PORT" ||
        die "postgres: 127.0.0.1:$PG_PORT not ready after ${TIMEOUT}s"

    local pw
    pw="$(pg_password)"
    [[ "$pw" =~ ^[A-Za-z0-9._~-]+$ ]] || die "postgres: password must be URL-safe ([A-Za-z0-9._~-])"
    if [[ -z "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" ]]; then
        log "postgres: creating role $PG_USER"
        psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$pw'"
    elif ! PGPASSWORD="$pw" psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres \
        -tAc 'SELECT 1' >/dev/null 2>&1; then
        log "postgres: setting the password of role $PG_USER"
        psql_admin -c "ALTER ROLE \"$PG_USER\" LOGIN PASSWORD '$pw'"
    fi
    local db
    for db in optuna mlflow; do
        if [[ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
            log "postgres: creating database $db"
            psql_admin -c "CREATE DATABASE \"$db\" OWNER \"$PG_USER\""
        fi
    done
    PGPASSWORD="$pw" psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d optuna -tAc 'SELECT 1' \
        >/dev/null || die "postgres: password login as $PG_USER over TCP failed"
}

# --- SLURM -------------------------------------------------------------------------------------
slurm_conf_text() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    # 80 % of the machine: slurmd drains a node whose RealMemory is above what it finds
    mem_mb="$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)"
    local s="$STATE/slurm"
    cat <<EOF
$MARKER (one-node test cluster)
ClusterName=mlpsweep
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd.log
SlurmctldPidFile=$s/run/slurmctld.pid
SlurmdPidFile=$s/run/slurmd.pid
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$SLURM_PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
    local f=$1 pid
    pid_alive "$f" || return 0
    pid="$(cat "$f")"
    kill "$pid"
    wait_for 15 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_slurm() {
    apt_install munge slurmctld slurmd slurm-client
    # munge: key, runtime folder, daemon as user munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "slurm: creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --force --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    if munge_ok; then
        log "slurm: munged already running"
    else
        log "slurm: starting munged"
        runuser -u munge -- /usr/sbin/munged 9>&-
        wait_for 10 munge_ok || die "slurm: munged does not answer (log: /var/log/munge/munged.log)"
    fi

    # slurm.conf (never overwrite one that this script did not write)
    local s="$STATE/slurm" new
    mkdir -p "$s/state" "$s/spool" "$s/log" "$s/run"
    new="$(slurm_conf_text)"
    local changed=0 started=0
    if [[ -f "$SLURM_CONF" ]] && ! grep -qF "$MARKER" "$SLURM_CONF"; then
        [[ "${MLP_SWEEP_SLURM_FORCE:-0}" = 1 ]] ||
            die "slurm: $SLURM_CONF exists and was not written by this script; set MLP_SWEEP_SLURM_FORCE=1 to replace it (a copy is kept as $SLURM_CONF.mlp-sweep-bak)"
        cp -p "$SLURM_CONF" "$SLURM_CONF.mlp-sweep-bak"
    fi
    if [[ "$(cat "$SLURM_CONF" 2>/dev/null)" != "$new" ]]; then
        mkdir -p "$(dirname "$SLURM_CONF")"
        printf '%s\n' "$new" >"$SLURM_CONF"
        changed=1
    fi
    if ((changed)) && { pid_alive "$s/run/slurmctld.pid" || pid_alive "$s/run/slurmd.pid"; }; then
        log "slurm: slurm.conf changed, restarting slurmctld and slurmd"
        stop_pidfile "$s/run/slurmd.pid"
        stop_pidfile "$s/run/slurmctld.pid"
    fi
    if pid_alive "$s/run/slurmctld.pid"; then
        log "slurm: slurmctld already running"
    else
        log "slurm: starting slurmctld"
        slurmctld 9>&- || die "slurm: slurmctld failed to start (log: $s/log/slurmctld.log)"
        started=1
    fi
    wait_for "$TIMEOUT" bash -c 'scontrol ping | grep -q UP' ||
        die "slurm: slurmctld does not answer 'scontrol ping' (log: $s/log/slurmctld.log)"
    if pid_alive "$s/run/slurmd.pid"; then
        log "slurm: slurmd already running"
    else
        log "slurm: starting slurmd"
        slurmd 9>&- || die "slurm: slurmd failed to start (log: $s/log/slurmd.log)"
        started=1
    fi

    local host state
    host="$(hostname -s)"
    node_ready() {
        state="$(sinfo -h -N -n "$host" -o '%t' 2>/dev/null | head -1)"
        case "$state" in
        idle | mix | alloc | comp) return 0 ;;
        down* | drain* | drng*)
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
            return 1
            ;;
        *) return 1 ;;
        esac
    }
    local end=$((SECONDS + TIMEOUT))
    until node_ready; do
        ((SECONDS < end)) || die "slurm: node $host not idle after ${TIMEOUT}s (state '${state:-?}'; logs: $s/log/)"
        sleep 0.2
    done
    if ((started == 0)) && [[ "$state" != idle ]]; then
        # already up and busy with someone's jobs: a check job would only queue behind them
        log "slurm: node $host $state (jobs running), check job skipped"
        return 0
    fi
    local out
    out="$(cd "$s" && timeout "$TIMEOUT" srun -N1 -n1 -t 1 -J mlp-sweep-check hostname 2>&1)" ||
        die "slurm: 'srun hostname' failed: $out"
    [[ "$out" == "$host"* ]] || die "slurm: 'srun hostname' printed '$out', expected '$host'"
    log "slurm: node $host $state, srun hostname -> $out"
}

# --- MLflow server -----------------------------------------------------------------------------
mlflow_health() {
    "$VENV/bin/python" - "http://127.0.0.1:$MLFLOW_PORT/health" 2>/dev/null <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        sys.exit(0 if r.status == 200 else 1)
except OSError:
    sys.exit(1)
EOF
}

start_mlflow() {
    [[ -x "$VENV/bin/mlflow" ]] || die "mlflow: $VENV/bin/mlflow not found (set MLP_SWEEP_VENV)"
    "$VENV/bin/python" -c 'import psycopg2' 2>/dev/null ||
        die "mlflow: psycopg2 missing in $VENV (pip install psycopg2-binary)"
    local m="$STATE/mlflow"
    mkdir -p "$m/artifacts"
    local backend="${MLP_SWEEP_MLFLOW_BACKEND_URI:-}" pgpassword=""
    if [[ -z "$backend" ]]; then
        pg_isready -q -h 127.0.0.1 -p "$PG_PORT" ||
            die "mlflow: PostgreSQL on 127.0.0.1:$PG_PORT is not running (start 'postgres' too, or set MLP_SWEEP_MLFLOW_BACKEND_URI)"
        # the password goes to libpq through PGPASSWORD, not on the command line (ps shows that)
        backend="postgresql+psycopg2://$PG_USER@127.0.0.1:$PG_PORT/mlflow"
        pgpassword="$(pg_password)"
    fi
    local args=(server --backend-store-uri "$backend" --artifacts-destination "$m/artifacts"
        --host 127.0.0.1 --port "$MLFLOW_PORT" --workers "$MLFLOW_WORKERS")
    local want
    want="$(printf '%q ' "${args[@]}")jobs:$MLFLOW_JOBS pw-sha256:$(printf '%s' "$pgpassword" | sha256sum | cut -c1-16)"
    if pid_alive "$m/pid"; then
        if [[ "$(cat "$m/cmd" 2>/dev/null)" == "$want" ]] && wait_for 10 mlflow_health; then
            log "mlflow: server already running (pid $(cat "$m/pid"))"
            return 0
        fi
        log "mlflow: configuration changed or server unhealthy, restarting"
        kill -TERM -- "-$(cat "$m/pid")" 2>/dev/null || true
        wait_for 20 bash -c "! kill -0 $(cat "$m/pid")" || kill -KILL -- "-$(cat "$m/pid")" 2>/dev/null || true
        rm -f "$m/pid"
    fi
    if mlflow_health; then
        die "mlflow: something not started by this script already answers on 127.0.0.1:$MLFLOW_PORT; stop it or set MLP_SWEEP_MLFLOW_PORT"
    fi
    log "mlflow: starting server on 127.0.0.1:$MLFLOW_PORT (log: $m/server.log)"
    printf '%s' "$want" >"$m/cmd"
    : >"$m/server.log"
    # own session/process group (pid = pgid), so stop-services.sh can end it and its workers;
    # the venv's bin first on PATH: the server execs uvicorn from PATH
    (
        cd "$m"
        [[ -z "$pgpassword" ]] || export PGPASSWORD="$pgpassword"
        export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="$MLFLOW_JOBS"
        # shellcheck disable=SC2016 # $$ and "$@" belong to the inner bash
        PATH="$VENV/bin:$PATH" setsid bash -c 'echo $$ >"$0"; exec "$@"' "$m/pid" \
            "$VENV/bin/mlflow" "${args[@]}" </dev/null >>"$m/server.log" 2>&1 9>&- &
    )
    wait_for 10 test -s "$m/pid" || die "mlflow: server process did not start"
    local end=$((SECONDS + TIMEOUT))
    until mlflow_health >/dev/null 2>&1; do
        if ! pid_alive "$m/pid"; then
            tail -20 "$m/server.log" >&2
            die "mlflow: server exited (log: $m/server.log)"
        fi
        ((SECONDS < end)) || {
            tail -20 "$m/server.log" >&2
            die "mlflow: /health did not answer within ${TIMEOUT}s (log: $m/server.log)"
        }
        sleep 0.3
    done
}

# --- main --------------------------------------------------------------------------------------
declare -A STATUS=() TIME=()
rm -f "$ENV_FILE"
failed=0
for svc in $SERVICES; do
    case "$svc" in
    postgres | slurm | mlflow) ;;
    *) die "unknown service '$svc' in MLP_SWEEP_SERVICES (known: postgres slurm mlflow)" ;;
    esac
    t0="$(now)"
    set +e
    (
        set -eE
        trap 'printf "[services] ERROR: %s: command failed (line %s): %s\n" "$svc" "$LINENO" "$BASH_COMMAND" >&2' ERR
        "start_$svc"
    )
    rc=$?
    set -e
    TIME[$svc]="$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')"
    if ((rc == 0)); then
        STATUS[$svc]=up
    else
        STATUS[$svc]=FAILED
        failed=1
    fi
done

{
    echo "# written by .ci/services.sh on $(date -Is); services that came up"
    if [[ "${STATUS[postgres]:-}" == up ]]; then
        echo "export MLP_SWEEP_TEST_POSTGRES_URL=$(pg_url optuna)"
    fi
    if [[ "${STATUS[slurm]:-}" == up ]]; then
        echo "export MLP_SWEEP_TEST_SLURM=1"
        echo "export MLP_SWEEP_TEST_SLURM_PARTITION=$SLURM_PARTITION"
    fi
    if [[ "${STATUS[mlflow]:-}" == up ]]; then
        echo "export MLP_SWEEP_TEST_MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT"
    fi
} >"$ENV_FILE.tmp"
chmod 600 "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"

for svc in $SERVICES; do
    log "$(printf '%-9s %-6s %5ss' "$svc" "${STATUS[$svc]}" "${TIME[$svc]}")"
done
log "env file: $ENV_FILE"
if ((failed)); then
    if [[ "${MLP_SWEEP_SERVICES_OPTIONAL:-0}" == 1 ]]; then
        log "some services failed (MLP_SWEEP_SERVICES_OPTIONAL=1: not an error)"
        exit 0
    fi
    exit 1
fi
