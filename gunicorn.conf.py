"""Gunicorn settings, read from the environment so the same file serves dev and the container."""

import os


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


_host = os.environ.get("HOST", "0.0.0.0")
_port = _int_env("PORT", 8080)
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"

# Two workers for the 2-core target machine; the work is CPU-bound rule evaluation, so more
# processes than cores only adds contention. Override with WEB_CONCURRENCY.
workers = _int_env("WEB_CONCURRENCY", 2)

# gevent workers (service/serving.py says why): a request still being sent costs a greenlet,
# not a thread, so slow senders cannot starve real requests or the probes; the headers must
# arrive within `keepalive` seconds and the body within REQUEST_BODY_TIMEOUT (20 s). Rule
# evaluation is CPU-bound and runs one request at a time per worker either way.
worker_class = "service.serving.Worker"
# The worker reads REQUEST_BODY_TIMEOUT; a bad value stops the server here, before any worker
# boots (a worker that exits at boot would only be replaced, again and again).
from service.serving import body_seconds  # noqa: E402

body_seconds()
# Connections one worker holds open at once (slow senders included); more wait in the backlog.
worker_connections = _int_env("GUNICORN_WORKER_CONNECTIONS", 1000)

# A request that takes longer than this is stuck, not slow: the worker is killed and replaced.
timeout = _int_env("GUNICORN_TIMEOUT", 30)
# On SIGTERM, in-flight requests get this long to finish before workers are killed.
graceful_timeout = 30
# Idle keep-alive connections close after 5 s, and a request's header fields must be complete
# within 5 s of connecting or of the previous answer (gunicorn's gevent worker times its header
# parser with this setting); both free connections held by clients that send nothing useful.
keepalive = 5

# Recycle each worker after ~10k requests (jittered so they do not all restart at once):
# bounds any slow memory growth in the native rules engine.
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = max_requests // 10

# The durable-rules engine keeps native (C) state that must not be shared across fork():
# the app, and with it the engine, is created in each worker after the fork.
preload_app = False

# Gunicorn's worker heartbeat file: use tmpfs when present, since /tmp in a container may be
# on a slow overlay filesystem and a blocked heartbeat write gets the worker killed.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Gunicorn >= 25.1 opens a control socket (for `gunicornc`) under $HOME/.gunicorn by default; in
# the image $HOME is the read-only-to-the-app /app, and a runtime management socket is not
# wanted in production anyway. Off unless GUNICORN_CONTROL_SOCKET names a writable path.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True

# The app writes its own structured logs. The access log is off by default (it would add a
# second, unstructured line per request); set GUNICORN_ACCESSLOG=- to turn it on. Its lines
# carry the path without the query (%(U)s, not %(r)s) and no referrer: either may carry data.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Prometheus metrics across worker processes: every worker writes its samples to files in
# one directory, and GET /metrics (in any worker) adds them up. The directory must exist
# and be empty before workers start, and a dead worker's live gauges must be dropped.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="msk-metrics-")


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    _archive_worker_metrics(worker.pid)


def _archive_worker_metrics(pid):
    """Fold a dead worker's counters and histograms into one archive file per kind.

    Each worker leaves files behind, and recycling would otherwise grow the directory (and
    the work of every scrape) without bound. The archive is replaced atomically before the
    dead worker's file is removed, so a scrape between the two counts it twice for an
    instant rather than losing it.
    """
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for kind in ("counter", "histogram"):
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = os.path.join(directory, f"{kind}_archive.db")
        sources = [dead] + ([archive] if os.path.exists(archive) else [])
        merged = MultiProcessCollector.merge(sources, accumulate=False)
        partial = archive + ".partial"
        values = MmapedDict(partial)
        try:
            for metric in merged:
                for sample in metric.samples:
                    key = mmap_key(metric.name, sample.name, list(sample.labels),
                                   list(sample.labels.values()), metric.documentation)
                    values.write_value(key, sample.value, sample.timestamp or 0.0)
        finally:
            values.close()
        os.replace(partial, archive)
        os.remove(dead)
