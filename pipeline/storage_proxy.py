"""``python -m pipeline.storage_proxy URL``: Optuna's gRPC storage proxy in front of a database.

With very many workers, each holding its own connections to PostgreSQL, Optuna recommends one
proxy process that holds them instead (``run_grpc_proxy_server``); workers then reach the study
with ``study.storage=grpc://HOST:PORT``. The proxy keeps Optuna's trial cache, so a worker
asks it for the trials changed since its last call, not the whole study. It listens on
127.0.0.1 unless told otherwise (``--host 0.0.0.0`` for the nodes of a cluster: it has no
authentication, so only on a private network). Ends with Ctrl-C or SIGTERM.

The proxy has no heartbeats: see docs/cluster.md for how lost trials are found through it.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import UserInputError
from pipeline.redaction import redact

DEFAULT_PORT = 13000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.storage_proxy", description=__doc__)
    parser.add_argument("storage", help="the database URL, e.g. postgresql://user@DBHOST/optuna")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument("--threads", type=int, default=16, help="requests served at once")
    return parser.parse_args(argv)


def serve(storage_url: str, host: str, port: int, threads: int) -> None:
    """Run the proxy until interrupted; a URL that is not a database fails in one line."""
    from concurrent.futures import ThreadPoolExecutor

    import optuna
    from optuna.storages import RDBStorage, run_grpc_proxy_server

    from pipeline.search.storage import open_storage

    if "://" not in storage_url or storage_url.startswith("grpc://"):
        raise UserInputError(
            f"storage={redact(storage_url)}: give a database URL (postgresql://...); the proxy "
            "serves a database, not a journal file or another proxy"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url, heartbeat_interval=10)
    assert isinstance(storage, RDBStorage)
    print(f"Optuna storage proxy for {redact(storage_url)} on {host}:{port}", flush=True)
    run_grpc_proxy_server(
        optuna.storages.get_storage(storage),  # with Optuna's trial cache
        host=host,
        port=port,
        thread_pool=ThreadPoolExecutor(max_workers=threads),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        serve(args.storage, args.host, args.port, args.threads)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
