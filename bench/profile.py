#!/usr/bin/env python3
"""Profile kube-api-lb under the benchmark's loads (stdlib only). Run it through bench/profile.sh.

    bench/profile.sh [syscalls|callgrind|perf] [keepalive|connclose|bulk|idle]...

Starts the benchmark backends and one kube-api-lb (KAL_BIN, KAL_BENCH_ARGS) under a profiler:
  syscalls   strace -c -f: syscall counts, divided by the requests/connections/bytes of the load
  callgrind  valgrind --tool=callgrind (slow: loads are scaled down); prints the top functions
  perf       perf record -e cpu-clock -g: kernel/user split and the top functions
PROFILE_BASELINES=nginx,haproxy also runs each load through those proxies (configured as in the
benchmark) with the same profiler attached, for a side-by-side comparison (syscalls and perf).
Results and raw profiler files go to PROFILE_OUT (default build-bench/profile/).
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

log = bench.log
LOADS = ["keepalive", "connclose", "bulk", "idle"]


def main():
    args = sys.argv[1:]
    tool = args[0] if args else "syscalls"
    loads = args[1:] or LOADS
    if tool not in ("syscalls", "callgrind", "perf"):
        sys.exit(f"profile: error: unknown profiler {tool!r} (syscalls|callgrind|perf)")
    for ld in loads:
        if ld not in LOADS:
            sys.exit(f"profile: error: unknown load {ld!r} ({'|'.join(LOADS)})")
    need = {"syscalls": ("strace", "strace"), "callgrind": ("valgrind", "valgrind"),
            "perf": ("perf", "linux-perf")}[tool]
    for prog, pkg in (need, ("nginx", "nginx"), ("wrk", "wrk"), ("curl", "curl")):
        if not shutil.which(prog):
            sys.exit(f"profile: error: {prog} not found (Debian package {pkg}; "
                     "scripts/install-deps.sh installs it)")
    kal_bin = os.path.abspath(os.environ.get("KAL_BIN") or
                              os.path.join(bench.REPO, "build", "kube-api-lb"))
    if not os.access(kal_bin, os.X_OK):
        sys.exit(f"profile: error: {kal_bin} not found (set KAL_BIN)")
    kal_args = shlex.split(os.environ.get("KAL_BENCH_ARGS", ""))
    baselines = [b.strip() for b in os.environ.get("PROFILE_BASELINES", "").split(",") if b.strip()]
    for b in baselines:
        if b not in ("nginx", "haproxy"):
            sys.exit(f"profile: error: unknown baseline {b!r} in PROFILE_BASELINES (nginx,haproxy)")
        if tool == "callgrind":
            sys.exit("profile: error: PROFILE_BASELINES works with syscalls and perf, not callgrind")
    out_dir = os.path.abspath(os.environ.get("PROFILE_OUT") or
                              os.path.join(bench.REPO, "build-bench", "profile"))
    os.makedirs(out_dir, exist_ok=True)
    slow = tool == "callgrind"
    duration = 5 if slow else bench.DURATION

    procs = bench.Procs()
    workdir = tempfile.mkdtemp(prefix="kal-profile-")
    os.chmod(workdir, 0o755)
    summary = []
    try:
        backend = start_backend(procs, workdir)
        for ld in loads:
            port, admin = bench.free_port(), bench.free_port()
            base = [kal_bin, "--endpoints=" + ",".join(bench.BACKENDS),
                    f"--listen=127.0.0.1:{port}", "--health-check=tcp",
                    f"--admin-listen=127.0.0.1:{admin}", *kal_args]
            raw = os.path.join(out_dir, f"{tool}-{ld}")
            if tool == "syscalls":
                argv = ["strace", "-c", "-f", "-o", raw + ".txt", *base]
            elif tool == "callgrind":
                argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={raw}.out", *base]
            else:
                argv = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o",
                        raw + ".data", "--", *base]
            p = procs.start(argv, os.path.join(workdir, f"{ld}.log"), cwd=workdir)
            bench.wait_http("127.0.0.1", admin, "/healthz", p, timeout=60 if slow else 15)
            bench.wait_http("127.0.0.1", port, "/", p, timeout=60 if slow else 15)
            units, what = run_load(ld, port, duration, slow, workdir, procs)
            # Stop the proxy itself (strace/perf run it as a child, valgrind in place) with SIGTERM;
            # the profiler writes its file when its child exits.
            members = bench.tree(p.pid)
            target = members[-1] if len(members) > 1 else p.pid
            try:
                os.kill(target, signal.SIGTERM)
                p.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            procs.stop(p, grace=10)
            summary.append(report(tool, ld, raw, units, what))
            for name in baselines:
                summary.append(profile_baseline(name, tool, ld, duration, workdir, procs, out_dir))
        procs.stop(backend)
    finally:
        procs.stop_all()
        subprocess.run(["rm", "-rf", workdir])
    text = "\n\n".join(summary)
    with open(os.path.join(out_dir, f"{tool}-summary.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"raw files in {out_dir}")


def profile_baseline(name, tool, ld, duration, workdir, procs, out_dir):
    """The same load through nginx or HAProxy (configured as in the benchmark), with the profiler
    attached to all of its processes, so the profiles compare side by side."""
    px = bench.Proxy(name, workdir, procs, None, {})
    px.start()
    try:
        pids = [str(p) for p in bench.tree(px.pid())]
        raw = os.path.join(out_dir, f"{tool}-{ld}-{name}")
        if tool == "syscalls":
            argv = ["strace", "-c", "-f", "-o", raw + ".txt"]
            for p in pids:
                argv += ["-p", p]
        else:
            argv = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", raw + ".data",
                    "-p", ",".join(pids)]
        prof = procs.start(argv, os.path.join(workdir, f"{ld}-{name}-profiler.log"), cwd=workdir)
        time.sleep(1.0)  # attached before the load starts
        units, what = run_load(ld, px.port, duration, False, workdir, procs)
        prof.send_signal(signal.SIGINT)  # both write their summary / data file on SIGINT
        try:
            prof.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        procs.stop(prof, grace=10)
    finally:
        px.stop()
    return report(tool, ld, raw, units, what).replace(f"== {tool} / {ld}:",
                                                      f"== {tool} / {ld} ({name}):", 1)


def start_backend(procs, workdir):
    for d in ("www/files", "tmp"):
        os.makedirs(os.path.join(workdir, d))
    with open(os.path.join(workdir, "www", "files", "big.bin"), "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(bench.BULK_MIB):
            f.write(chunk)
    conf = bench.render("backend-nginx.conf", {"PREFIX": workdir,
                                               "WORKERS": str(bench.BACKEND_WORKERS),
                                               "ADDR1": bench.BACKENDS[0],
                                               "ADDR2": bench.BACKENDS[1],
                                               "ADDR3": bench.BACKENDS[2]}, workdir)
    b = procs.start(["nginx", "-p", workdir, "-e", os.path.join(workdir, "backend-start.log"),
                     "-c", conf], os.path.join(workdir, "backend.log"), cwd=workdir)
    for addr in bench.BACKENDS:
        host, port = addr.rsplit(":", 1)
        bench.wait_http(host, int(port), "/", b)
    return b


def run_load(ld, port, duration, slow, workdir, procs):
    url = f"http://127.0.0.1:{port}/"
    saved = bench.DURATION
    bench.DURATION = duration
    try:
        if ld == "keepalive":
            r = bench.run_wrk(url, 10 if slow else bench.KA_CONNS, 2)
            return r["requests"], "requests"
        if ld == "connclose":
            r = bench.run_wrk(url, 10 if slow else bench.KA_CONNS, 2, ("-H", "Connection: close"))
            return r["requests"], "connections"
        if ld == "bulk":
            saved_count = bench.BULK_COUNT
            bench.BULK_COUNT = 2 if slow else bench.BULK_COUNT
            try:
                nbytes, _ = bench.run_bulk("127.0.0.1", port, workdir, procs)
            finally:
                bench.BULK_COUNT = saved_count
            return nbytes / 1e6, "MB"
        n = 1000 if slow else bench.IDLE_CONNS
        socks, _ = bench.hold_idle_conns("127.0.0.1", port, n)
        time.sleep(0.5)
        for s in socks:
            s.close()
        time.sleep(0.5)
        return len(socks), "connections"
    finally:
        bench.DURATION = saved


def report(tool, ld, raw, units, what):
    head = f"== {tool} / {ld}: {units:,.0f} {what}"
    if tool == "syscalls":
        lines = [head, f"{'syscall':20s} {'calls':>10s} {'per ' + what[:-1]:>14s}"]
        try:
            with open(raw + ".txt") as f:
                rows = f.read().splitlines()
        except OSError as e:
            return head + f"\n(no strace output: {e})"
        for row in rows:
            t = row.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(t) >= 5 and t[0].replace(".", "").isdigit() and t[-1] != "total":
                calls = int(t[3])
                lines.append(f"{t[-1]:20s} {calls:>10,d} {calls / max(units, 1):>14.3f}")
        return "\n".join(lines)
    if tool == "callgrind":
        r = subprocess.run(["callgrind_annotate", "--inclusive=no", raw + ".out"],
                           capture_output=True, text=True, timeout=120)
        body = [ln for ln in r.stdout.splitlines() if ln.strip()][:45]
        return head + "\n" + "\n".join(body)
    out = [head]
    for sort, n in (("dso", 6), ("symbol", 30)):
        r = subprocess.run(["perf", "report", "-i", raw + ".data", "--stdio", "--no-children",
                            "--sort", sort, "-g", "none"], capture_output=True, text=True,
                           timeout=120)
        body = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")][:n]
        if sort == "dso":
            # cpu-clock counts nanoseconds: the event count is the CPU time sampled.
            m = re.search(r"^# Event count \(approx\.\): (\d+)", r.stdout, re.M)
            if m:
                cpu_s = int(m.group(1)) / 1e9
                out.append(f"cpu-clock: {cpu_s:.2f} s CPU, "
                           f"{cpu_s / max(units, 1) * 1e6:.1f} µs per {what[:-1]}")
        out.append(f"-- by {sort}:")
        out.append("\n".join(body) or r.stderr.strip())
    return "\n".join(out)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, bench.on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("profile: interrupted")
