#!/usr/bin/env python3
"""The Celery side of `voxfleet-bench --only e2e`: N no-op tasks submitted by a client and run
by one Celery worker (threads pool, concurrency C) on the same Redis, timed from the first
submission to the last result stored. Prints one JSON line on stdout:
{"peer": "celery 5.7.0", "jobs": N, "seconds": S, "jobs_per_s": R, "ok": N}.

Celery keeps each task's outcome only in its result backend (Redis here, as voxfleet keeps
its live state); it writes no database record, takes no lease and counts no attempt.

Needs `pip install 'celery[redis]==5.7.0'` (the bench's docs say where); the keys live under a
fresh prefix (kombu's `global_keyprefix`) on the given Redis and are deleted at the end.

Usage: celery_peer.py [--jobs N] [--concurrency C] [--redis URL]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import uuid

from celery import Celery, __version__

PREFIX = os.environ.get("VF_CELERY_PREFIX") or f"vf_celery_{uuid.uuid4().hex[:8]}_"
REDIS = os.environ.get("VF_CELERY_REDIS", "redis://127.0.0.1:6379/0")

app = Celery("celery_peer", broker=REDIS, backend=REDIS)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_serializer="json",
    result_serializer="json",
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop():
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--redis", default=REDIS)
    args = ap.parse_args()
    env = dict(os.environ, VF_CELERY_PREFIX=PREFIX, VF_CELERY_REDIS=args.redis)
    here = os.path.dirname(os.path.abspath(__file__))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--pool", "threads",
         "-c", str(args.concurrency), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the worker is ready once one task comes back (not timed)
        noop.apply_async().get(timeout=60)
        results = []
        started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for _ in range(args.jobs):
                results.append(noop.apply_async(producer=producer))
        ok = 0
        for r in results:
            r.get(timeout=600)
            ok += 1
        seconds = time.monotonic() - started
        print(json.dumps({"peer": f"celery {__version__}", "jobs": args.jobs,
                          "seconds": seconds, "jobs_per_s": args.jobs / seconds, "ok": ok}))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        cleanup(args.redis)


def cleanup(url):
    import redis
    r = redis.Redis.from_url(url)
    for key in r.scan_iter(match=f"{PREFIX}*", count=1000):
        r.delete(key)
    for key in r.scan_iter(match=f"*{PREFIX}*", count=1000):
        r.delete(key)


if __name__ == "__main__":
    main()
