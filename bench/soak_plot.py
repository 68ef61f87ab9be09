#!/usr/bin/python3
"""Draws a churn soak's samples (bench/soak.py's output directory) as DIR/soak.png.

    /usr/bin/python3 bench/soak_plot.py DIR [--output PNG]

Needs Debian's python3-matplotlib (scripts/install-deps.sh installs it). Panels, sharing the time
axis: the faults and reloads (one row per apiserver, one for reloads), requests per second
(complete, failed, excused), open descriptors and RSS of kube-api-lb (baseline and tolerance drawn,
the quiet-phase ends marked), threads and CPU. Quiet phases are shaded in every panel.
"""
import argparse
import csv
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FAULT_STYLE = {"kill": ("x", "tab:red"), "hang": ("s", "tab:orange"),
               "drain": ("v", "tab:purple"), "restart": ("o", "tab:blue")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--output")
    a = ap.parse_args()
    with open(os.path.join(a.dir, "samples.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(a.dir, "events.json")) as f:
        ev = json.load(f)
    with open(os.path.join(a.dir, "result.json")) as f:
        res = json.load(f)
    minutes = max(1.0, float(rows[-1]["t"]) / 60.0) if rows else 1.0
    scale, unit = (60.0, "min") if minutes > 5 else (1.0, "s")
    t = [float(r["t"]) / scale for r in rows]
    fig, axes = plt.subplots(6, 1, figsize=(12, 13), sharex=True,
                             gridspec_kw={"height_ratios": [1.1, 1, 1.2, 1.2, 0.7, 0.8]})
    ax_ev, ax_rq, ax_fd, ax_rss, ax_thr, ax_cpu = axes
    for kind, t0, t1 in ev["phases"]:
        if kind == "quiet":
            for ax in axes:
                ax.axvspan(t0 / scale, t1 / scale, color="tab:green", alpha=0.12, lw=0)
    # Faults and reloads.
    rowy = {"a": 3, "b": 2, "c": 1, "reload": 0}
    seen = set()
    for tt, kind, target, detail in ev["events"]:
        if kind in FAULT_STYLE:
            m, c = FAULT_STYLE[kind]
            label = None if kind in seen else kind
            seen.add(kind)
            ax_ev.scatter([tt / scale], [rowy[target]], marker=m, color=c, s=28, label=label)
        elif kind == "reload":
            label = None if "reload" in seen else "reload (endpoint set " + detail + " ...)"
            seen.add("reload")
            ax_ev.scatter([tt / scale], [0], marker="|", color="black", s=80,
                          label="config reload" if label else None)
    ax_ev.set_yticks([3, 2, 1, 0], ["apiserver a", "apiserver b", "apiserver c", "reload"])
    ax_ev.set_ylim(-0.7, 3.7)
    ax_ev.legend(loc="upper right", ncol=5, fontsize=8)
    verdict = "PASS" if res["pass"] else "FAIL"
    ax_ev.set_title(f"kube-api-lb churn soak, {res['seconds'] / 60:.0f} min: {verdict}; "
                    f"{res['ok']} requests complete, {res['failed']} failed while an apiserver "
                    f"was ready; faults {sum(res['faults'].values())}, reloads {res['reloads']} "
                    f"(quiet phases shaded)", fontsize=10)
    # Requests per second.
    ax_rq.plot(t, [int(r["ok"]) for r in rows], lw=0.7, color="tab:green", label="complete")
    ax_rq.plot(t, [int(r["excused"]) for r in rows], lw=0.7, color="tab:gray",
               label="excused (its apiserver faulted)")
    ax_rq.plot(t, [int(r["failed"]) for r in rows], lw=1.2, color="tab:red", label="failed")
    ax_rq.set_ylabel("requests/s")
    ax_rq.legend(loc="upper right", ncol=3, fontsize=8)
    # Descriptors and RSS with the baseline and tolerance.
    base = res.get("baseline") or {}
    qe = res.get("quiet_ends") or []
    ax_fd.plot(t, [int(r["fds"]) for r in rows], lw=0.7, color="tab:blue")
    ax_rss.plot(t, [int(r["rss_kib"]) / 1024 for r in rows], lw=0.7, color="tab:purple")
    if base:
        ax_fd.axhline(base["fds"], color="black", lw=0.6, ls="--", label="baseline")
        ax_fd.axhline(base["fds"] + res["fd_tolerance"], color="tab:red", lw=0.6, ls=":",
                      label="baseline + tolerance")
        rb = base["rss_kib"] / 1024
        ax_rss.axhline(rb, color="black", lw=0.6, ls="--", label="baseline")
        ax_rss.axhline(rb + res["rss_tolerance_kib"] / 1024, color="tab:red", lw=0.6, ls=":",
                       label="baseline + tolerance" + ("" if res["rss_judged"] else
                                                       " (not judged: ASan)"))
    ax_fd.scatter([q["t"] / scale for q in qe], [q["fds"] for q in qe], color="black", s=14,
                  zorder=3, label="quiet-phase end (median of its last 5 s)")
    ax_rss.scatter([q["t"] / scale for q in qe], [q["rss_kib"] / 1024 for q in qe],
                   color="black", s=14, zorder=3, label="quiet-phase end")
    ax_fd.set_ylabel("open descriptors")
    ax_rss.set_ylabel("RSS (MiB)")
    ax_fd.legend(loc="upper right", fontsize=8)
    ax_rss.legend(loc="upper right", fontsize=8)
    ax_thr.plot(t, [int(r["threads"]) for r in rows], lw=0.8, color="tab:brown")
    ax_thr.set_ylabel("threads")
    ax_thr.set_ylim(0, max(int(r["threads"]) for r in rows) + 1 if rows else 1)
    ax_cpu.plot(t, [float(r["cpu"]) for r in rows], lw=0.6, color="tab:olive")
    ax_cpu.set_ylabel("CPU (s/s)")
    ax_cpu.set_xlabel(f"time since start ({unit})")
    for ax in axes:
        ax.grid(True, lw=0.3, alpha=0.5)
    fig.tight_layout()
    out = a.output or os.path.join(a.dir, "soak.png")
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
