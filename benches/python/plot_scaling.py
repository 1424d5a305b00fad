#!/usr/bin/env python3
"""Draws the scaling section of a voxfleet-bench run (`--only scaling --json FIGURES.json`) as a
PNG: no-op jobs/s against the number of worker processes, one line per backend (one Redis
server, Redis Cluster), with the jobs/s per logical CPU on a second axis.

matplotlib is installed on first use into ~/.cache/voxfleet/venv-plot (pip, PyPI), and this
script runs itself again under that venv.

Usage: plot_scaling.py FIGURES.json OUT.png
"""

import json
import os
import subprocess
import sys

VENV = os.path.expanduser("~/.cache/voxfleet/venv-plot")
MATPLOTLIB = "matplotlib==3.11.2"


def in_venv():
    """Re-runs this script under the plotting venv (made once) unless already there."""
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", MATPLOTLIB], check=True)
    os.execv(python, [python, *sys.argv])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    in_venv()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(sys.argv[1]) as f:
        report = json.load(f)
    rows = report.get("scaling") or []
    if not rows:
        sys.exit(f"{sys.argv[1]} has no scaling figures (run voxfleet-bench --only scaling)")
    cpus = report["machine"]["nproc"]
    conc = report["settings"]["scale_concurrency"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    names = {"redis": "one Redis server", "cluster": "Redis Cluster (3 masters + 3 replicas)"}
    for backend in ("redis", "cluster"):
        pts = [
            (r["workers"], r["result"]["jobs_per_s"])
            for r in rows
            if r["backend"] == backend and r["result"].get("outcome") == "done"
        ]
        if pts:
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, marker="o", label=names.get(backend, backend))
            for x, y in pts:
                ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8)
    workers = sorted({r["workers"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(workers, [str(w) for w in workers])
    ax.set_xlabel(f"worker processes (concurrency {conc} each)")
    ax.set_ylabel("no-op jobs/s (first start to last finish)")
    ax.set_ylim(bottom=0)
    per_cpu = ax.secondary_yaxis("right", functions=(lambda y: y / cpus, lambda y: y * cpus))
    per_cpu.set_ylabel(f"jobs/s per logical CPU ({cpus} in all)")
    profile = report.get("profile", "unknown")
    ax.set_title(f"voxfleet no-op throughput, {report['settings']['jobs']} jobs per run, "
                 f"{profile} build, {report['started_at'][:10]}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
