#!/usr/bin/env bash
# Stop the services that .ci/services.sh started (for developers; CI machines are thrown away).
#   bash .ci/stop-services.sh                       # mlflow, slurm (slurmd, slurmctld, munged), postgres
#   MLP_SWEEP_SERVICES="mlflow" bash .ci/stop-services.sh
# Uses the same MLP_SWEEP_SERVICES_STATE / MLP_SWEEP_SERVICES_ENV as .ci/services.sh, stops
# processes by the pid files in the state folder, and removes the env file. Data (PostgreSQL
# databases, SLURM state, MLflow artifacts) is kept, so .ci/services.sh brings them back as they were.
set -euo pipefail

CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVICES="${MLP_SWEEP_SERVICES-postgres slurm mlflow}"
ENV_FILE="${MLP_SWEEP_SERVICES_ENV:-$CI_DIR/services.env}"
STATE="${MLP_SWEEP_SERVICES_STATE:-/tmp/mlp-sweep-services}"
PG_CLUSTER=main

log() { printf '[stop-services %(%T)T] %s\n' -1 "$*" >&2; }
want() { [[ " $SERVICES " == *" $1 "* ]]; }

# stop_pid NAME PIDFILE [GROUP]: SIGTERM (to the process group if GROUP), wait 20 s, then SIGKILL
stop_pid() {
    local name=$1 file=$2 group=${3:-} pid target i
    if [[ ! -s "$file" ]] || ! kill -0 "$(cat "$file")" 2>/dev/null; then
        log "$name: not running"
        rm -f "$file"
        return 0
    fi
    pid="$(cat "$file")"
    target="$pid"
    [[ -z "$group" ]] || target="-$pid"
    log "$name: stopping pid $pid"
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still running after 20 s, SIGKILL"
        kill -KILL -- "$target" 2>/dev/null || true
    fi
    rm -f "$file"
}

rm -f "$ENV_FILE"

if want mlflow; then
    # started with setsid: pid = process group of the server, its uvicorn workers and job runners
    stop_pid mlflow "$STATE/mlflow/pid" group
fi

if want slurm; then
    stop_pid slurmd "$STATE/slurm/run/slurmd.pid"
    stop_pid slurmctld "$STATE/slurm/run/slurmctld.pid"
    stop_pid munged /run/munge/munged.pid
fi

if want postgres; then
    if command -v pg_lsclusters >/dev/null; then
        # every version's "main" cluster that is online (normally just 15)
        pg_lsclusters -h | awk -v c="$PG_CLUSTER" '$2 == c && $4 == "online" {print $1}' |
            while read -r ver; do
                log "postgres: stopping $ver/$PG_CLUSTER"
                pg_ctlcluster "$ver" "$PG_CLUSTER" stop # fast mode by default
            done
    fi
fi
log "stopped: $SERVICES"
