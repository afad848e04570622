#!/usr/bin/env python3
"""Whole-campaign benchmarks of `runner` against its own simulator; prints one table.

    python3 bench/campaigns.py                 # all scenarios, default sizes
    python3 bench/campaigns.py --jobs 100000   # the flat-overhead scenario at 100k jobs
    python3 bench/campaigns.py --only rate,makespan,bounds
    python3 bench/campaigns.py --only budgets  # no rate keys against the provider's default tier
    python3 bench/campaigns.py --only makespan,queue   # issue 15: part of the 2 s queued

Each scenario starts `runner simulate` on a free local port, writes a manifest
into a temp folder, runs `runner run` under /usr/bin/time (CPU and peak RSS of
the runner alone) and reads the simulator's own records (GET /_sim/stats).
Figures, not pass/fail: see BENCHMARKS.md for what they should be.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "target", "release", "runner")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    def __init__(self, *flags, metering=False):
        """A simulator; the provider's submit and query buckets only with `metering`
        (the other scenarios measure the runner's own pacing, not the provider's)."""
        self.port = free_port()
        if not metering:
            flags = (*flags, "--no-metering")
        self.proc = subprocess.Popen(
            [RUNNER, "simulate", "--port", str(self.port), *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("simulator did not start")

    def stats(self):
        with urllib.request.urlopen(self.url + "/_sim/stats", timeout=30) as r:
            return json.load(r)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run_runner(args, cwd):
    """Runs the runner; returns (wall s, (user, sys) CPU s, peak RSS KiB, exit code)."""
    out = os.path.join(cwd, "time.txt")
    t0 = time.monotonic()
    code = subprocess.call(
        ["/usr/bin/time", "-f", "%U %S %M", "-o", out, RUNNER, "-q", *args],
        cwd=cwd, env={**os.environ, "TOAPIS_API_KEY": "bench"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    user, sys_, rss = open(out).read().split()[-3:]
    return wall, (float(user), float(sys_)), int(rss), code


def manifest(dir, name, jobs, rps, in_flight, extra=""):
    """A CSV source of `jobs` gemini jobs behind a TOML with the given limits:
    `rps` every call together, the submit and query budgets out of its way
    (`rps` None: no rate keys at all, the provider's default tier)."""
    with open(os.path.join(dir, "jobs.csv"), "w") as f:
        f.write("id,prompt\n")
        for i in range(jobs):
            f.write(f"j{i},benchmark prompt {i}\n")
    rates = ("" if rps is None else
             f"requests_per_second = {rps}\nsubmit_per_second = 1000000\nquery_per_second = 1000000\n")
    with open(os.path.join(dir, f"{name}.toml"), "w") as f:
        f.write(f'name = "{name}"\n[limits]\n{rates}'
                f'max_in_flight = {in_flight}\n{extra}\n'
                f'[defaults]\nmodel = "gemini_omni_flash"\n[[source]]\ncsv = "jobs.csv"\n')
    return f"{name}.toml"


def window_max(times_ms, width=1000):
    """The most requests in any window [t, t + width) ms."""
    best, lo = 0, 0
    for hi, t in enumerate(times_ms):
        while times_ms[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def rate(rows, _):
    """300 instant jobs at 50 requests/s: every 1 s window ≤ 52, average ≥ 45 (97% = 48.5)."""
    sim = Sim("--queue-time", "0", "--generation-time", "0", "--video-size", "4096")
    with tempfile.TemporaryDirectory() as d:
        m = manifest(d, "rate", 300, 50, 50)
        wall, cpu, rss, code = run_runner(["run", m, "--base-url", sim.url, "--yes"], d)
        s = sim.stats()
    sim.stop()
    t = sorted(s["request_times_ms"])
    span = (t[-1] - t[0]) / 1000
    avg = (len(t) - 1) / span if span > 0 else float("nan")
    rows.append(("rate: 300 instant jobs @ 50/s", f"max in any 1 s window {window_max(t)} (limit 52); "
                 f"average {avg:.1f}/s = {avg / 50:.1%} of the limit; exit {code}"))


def makespan(rows, _):
    """120 jobs of 2 s at 20/s and 20 in flight: floor max(2N/R, N·G/C) = 12 s (the acceptance case)."""
    timed_case(rows, "makespan", 120, 20, 20, 2)


def bounds(rows, _):
    """The same floor with one side far from it: generation-bound (100/s), then rate-bound (50 in flight, 1 s)."""
    timed_case(rows, "generation-bound", 120, 100, 20, 2)
    timed_case(rows, "rate-bound", 200, 20, 50, 1)


def queue(rows, _):
    """The acceptance case with part of its 2 s queued before progress starts (issue 15)."""
    for q in (0.5, 1.0, 1.5):
        timed_case(rows, f"queue {q} s", 120, 20, 20, 2 - q, queue=q)


def timed_case(rows, name, jobs, rps, in_flight, generation, queue=0):
    """N jobs of Q + G seconds at R requests/s and C in flight, against the floor max(2N/R, N·(Q+G)/C)."""
    sim = Sim("--queue-time", str(queue), "--generation-time", str(generation), "--video-size", "65536")
    with tempfile.TemporaryDirectory() as d:
        m = manifest(d, name, jobs, rps, in_flight)
        wall, cpu, rss, code = run_runner(["run", m, "--base-url", sim.url, "--yes"], d)
        s = sim.stats()
    sim.stop()
    floor = max(2 * jobs / rps, jobs * (queue + generation) / in_flight)
    rows.append((f"{name}: {jobs} × {queue + generation:g} s @ {rps}/s, {in_flight} in flight",
                 f"{wall:.1f} s = {wall / floor:.2f} × floor ({floor:.0f} s); "
                 f"{s['polls'] / jobs:.2f} polls/job; max 1 s window {window_max(sorted(s['request_times_ms']))}; exit {code}"))


def scale(rows, jobs):
    """N instant jobs, no rate limit to speak of: runner CPU per job, peak RSS, resume time."""
    sim = Sim("--queue-time", "0", "--generation-time", "0", "--video-size", "1024")
    with tempfile.TemporaryDirectory() as d:
        m = manifest(d, "scale", jobs, 100000, 500, 'submit_concurrency = 32\nburst = 100\ndownloads = 16\n'
                     'poll_queued = "50ms"\npoll_in_progress = "50ms"')
        wall, cpu, rss, code = run_runner(["run", m, "--base-url", sim.url, "--yes"], d)
        state = os.path.join(d, "out", "scale", "state.jsonl")
        state_mb = os.path.getsize(state) / 1e6
        first = sim.stats()
        # Resume: the same command again, with nothing left to do (load, replay, report).
        rwall, rcpu, rrss, rcode = run_runner(["run", m, "--base-url", sim.url, "--yes"], d)
        s = sim.stats()
    sim.stop()
    rows.append((f"scale: {jobs} instant jobs",
                 f"{wall:.1f} s wall; runner CPU {cpu[0] / jobs * 1e6:.0f} µs/job user + "
                 f"{cpu[1] / jobs * 1e6:.0f} µs/job system; peak RSS {rss / 1024:.0f} MiB; "
                 f"{first['polls'] / jobs:.2f} polls/job; state file {state_mb:.1f} MB; exit {code}"))
    rows.append((f"resume: {jobs}-job state, nothing to do",
                 f"{rwall:.2f} s wall, {rcpu[0]:.2f} s user + {rcpu[1]:.2f} s system, peak RSS {rrss / 1024:.0f} MiB, "
                 f"{len(s['request_times_ms']) - len(first['request_times_ms'])} API requests; exit {rcode}"))


def download(rows, _):
    """One 1 GiB video: runner vs `curl -o` from the same simulator, side by side."""
    size = 1 << 30
    sim = Sim("--queue-time", "0", "--generation-time", "0", "--video-size", str(size))
    with tempfile.TemporaryDirectory() as d:
        m = manifest(d, "dl", 1, 10, 1, 'poll_queued = "10ms"\npoll_in_progress = "10ms"')
        wall, cpu, rss, code = run_runner(["run", m, "--base-url", sim.url, "--yes"], d)
        journal = [json.loads(l) for l in open(os.path.join(d, "out", "dl", "state.jsonl"))]
        task = next(e["task_id"] for e in journal if e["event"] == "submitted")
        t0 = time.monotonic()
        subprocess.check_call(["curl", "-s", "-o", os.path.join(d, "curl.mp4"), f"{sim.url}/files/{task}.mp4"])
        curl = time.monotonic() - t0
    sim.stop()
    rows.append(("download: 1 GiB",
                 f"runner {size / wall / 1e6:.0f} MB/s (whole run {wall:.2f} s, peak RSS {rss / 1024:.0f} MiB) "
                 f"vs curl {size / curl / 1e6:.0f} MB/s ({curl:.2f} s): {curl / wall:.0%} of curl; exit {code}"))


def budgets(rows, _):
    """150 jobs of 3 s, no rate keys, against the simulator metering the provider's default
    tier (submits 5/s, burst 50; queries 50/s, burst 500): the least time the buckets allow
    is the last submit at (N - 50) / 5 s plus the task time. Target ≤ 1.3× that, 429s < 2%."""
    jobs, generation, submit_rate, submit_burst = 150, 3, 5, 50
    sim = Sim("--queue-time", "0", "--generation-time", str(generation), "--video-size", "65536",
              metering=True)
    with tempfile.TemporaryDirectory() as d:
        m = manifest(d, "budgets", jobs, None, 200, "downloads = 8")
        wall, cpu, rss, code = run_runner(["run", m, "--base-url", sim.url, "--yes"], d)
        s = sim.stats()
    sim.stop()
    least = (jobs - submit_burst) / submit_rate + generation
    requests = len(s["request_times_ms"])
    limited = s["rate_limited_429"]
    by = ", ".join(f"{k} {v}" for k, v in sorted(s["rate_limited_by_category"].items())) or "none"
    rows.append((f"budgets: {jobs} × {generation} s, no rate keys, default tier",
                 f"{wall:.1f} s = {wall / least:.2f} × the least the buckets allow ({least:.0f} s); "
                 f"429s {limited} of {requests} requests = {limited / max(requests, 1):.2%} ({by}); "
                 f"{s['polls'] / jobs:.2f} polls/job; exit {code}"))


SCENARIOS = {"rate": rate, "makespan": makespan, "bounds": bounds, "scale": scale, "download": download, "budgets": budgets, "queue": queue}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=20000, help="jobs in the scale scenario")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--no-build", action="store_true", help="use target/release/runner as it is")
    a = p.parse_args()
    if not a.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    rows = []
    for name in a.only.split(","):
        SCENARIOS[name](rows, a.jobs)
        print(f"  {rows[-1][0]}: {rows[-1][1]}", file=sys.stderr)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'scenario'.ljust(width)} | result")
    print(f"{'-' * width}-|-{'-' * 60}")
    for name, result in rows:
        print(f"{name.ljust(width)} | {result}")


if __name__ == "__main__":
    main()
