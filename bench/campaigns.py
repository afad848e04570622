#!/usr/bin/env python3
"""Whole-campaign benchmarks of `runner` against its own simulator; prints one table.

    python3 bench/campaigns.py                 # all scenarios, default sizes
    python3 bench/campaigns.py --jobs 100000   # the flat-overhead scenario at 100k jobs
    python3 bench/campaigns.py --only rate,makespan,bounds
    python3 bench/campaigns.py --only budgets  # no rate keys against the provider's default tier
    python3 bench/campaigns.py --only makespan,queue   # issue 15: part of the 2 s queued
    python3 bench/campaigns.py --only regimes          # issue 15: the virtual-time regimes in real time
    python3 bench/campaigns.py --only regimes --regimes spread --time-scale 0.5

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


# Issue 15's regimes (tests/vt/mod.rs `regimes()`), as simulator flags:
# (name, jobs, queue s, generation s, σ, progress mode, queue drift (× over the run),
#  (submit rate, burst), (query rate, burst), one shared bucket, max in flight).
# "two models (2 s and 6 s)" is left out: the simulator's times are per run, not per model.
# The "progress in steps of 25%" rows are left out: the simulator has no such progress mode.
B4 = ((20, 2), (20, 2))
RATE = ((10, 2), (100, 20))
REGIMES = [
    ("issue 4: 2 s, no queue", 120, 0.0, 2.0, 0, "linear", 0, *B4, False, 20),
    ("issue 4: 0.5 s queue + 1.5 s", 120, 0.5, 1.5, 0, "linear", 0, *B4, False, 20),
    ("issue 4: 1 s queue + 1 s", 120, 1.0, 1.0, 0, "linear", 0, *B4, False, 20),
    ("issue 4: 1.5 s queue + 0.5 s", 120, 1.5, 0.5, 0, "linear", 0, *B4, False, 20),
    ("issue 4, one shared 20/s budget", 120, 0.5, 1.5, 0, "linear", 0, *B4, True, 20),
    ("queue 3× generation (3 + 1 s)", 120, 3.0, 1.0, 0, "linear", 0, *B4, False, 20),
    ("queue 5× generation, slot-bound", 400, 3.33, 0.67, 0, "linear", 0, *B4, False, 20),
    ("progress absent", 120, 0.5, 1.5, 0, "absent", 0, *B4, False, 20),
    ("progress stuck at 0", 120, 0.5, 1.5, 0, "stuck", 0, *B4, False, 20),
    ("progress runs ahead", 120, 0.5, 1.5, 0, "ahead", 0, *B4, False, 20),
    ("progress counts the queue", 120, 0.5, 1.5, 0, "counts-queue", 0, *B4, False, 20),
    ("spread σ 0.1", 120, 0.5, 1.5, 0.1, "linear", 0, *B4, False, 20),
    ("spread σ 0.25", 120, 0.5, 1.5, 0.25, "linear", 0, *B4, False, 20),
    ("spread σ 0.5", 120, 0.5, 1.5, 0.5, "linear", 0, *B4, False, 20),
    ("spread σ 0.5, rate-bound", 600, 0.5, 1.5, 0.5, "linear", 0, *RATE, False, 200),
    ("spread σ 0.5, no progress, rate-bound", 600, 0.5, 1.5, 0.5, "absent", 0, *RATE, False, 200),
    ("spread σ 0.1, slot-bound", 400, 1.0, 3.0, 0.1, "linear", 0, *B4, False, 20),
    ("queue drifts 0.5 → 1.5 s", 400, 0.5, 1.5, 0, "linear", 2.0, *B4, False, 20),
    ("rate-bound", 600, 0.5, 1.5, 0, "linear", 0, *RATE, False, 200),
    ("slot-bound", 400, 1.0, 3.0, 0, "linear", 0, *B4, False, 20),
    ("1,000 jobs, balanced", 1000, 0.5, 1.5, 0, "linear", 0, *B4, False, 20),
]


class Bucket:
    """A token bucket as tests/vt/mod.rs has it: `rate` a second, at most `burst`, full at 0."""
    def __init__(self, rate, burst):
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, 0.0

    def take(self, now):
        self.tokens = min(self.tokens + (now - self.at) * self.rate, self.burst)
        self.at = now
        if self.tokens >= 1 - 1e-9:
            self.tokens -= 1
            return True
        return False

    def ready_at(self):
        return self.at + max((1 - self.tokens) / self.rate, 0) + 1e-9


def oracle(totals, submit, query, shared, cap):
    """The makespan of a runner that knows each task's time and polls it once, at its
    finish, under the same budgets and cap (tests/vt/mod.rs `Oracle` in its `drive` loop):
    submits in order first, then due polls in order; a slot frees when its poll is sent."""
    import heapq
    sb = Bucket(*submit)
    qb = sb if shared else Bucket(*query)
    due, waiting = [], []  # (finish, job) not yet due; due polls in order
    now, nxt, in_flight, done, end = 0.0, 0, 0, 0, 0.0
    while done < len(totals):
        while due and due[0][0] <= now + 1e-9:
            waiting.append(heapq.heappop(due))
        while True:
            if nxt < len(totals) and in_flight < cap and sb.take(now):
                heapq.heappush(due, (now + totals[nxt], nxt))
                nxt, in_flight = nxt + 1, in_flight + 1
                continue
            if waiting and qb.take(now):
                waiting.pop(0)
                in_flight, done, end = in_flight - 1, done + 1, now
                continue
            break
        if done == len(totals):
            break
        t = [due[0][0]] if due else []
        if waiting:
            t.append(qb.ready_at())
        if nxt < len(totals) and in_flight < cap:
            t.append(sb.ready_at())
        now = max(now, min(t))
    return end


def regimes(rows, _, which="", scale=0.5):
    """Issue 15's regimes against the simulator in real time, time-scaled by `scale`:
    makespan (first submit to last poll, as the simulator saw them, in simulated seconds)
    over the oracle's on the very task times the simulator drew (its `task_times`)."""
    for (name, jobs, q, g, sigma, mode, drift, submit, query, shared, cap) in REGIMES:
        if which and which not in name:
            continue
        flags = ["--time-scale", str(scale), "--queue-time", str(q), "--generation-time", str(g),
                 "--spread", str(sigma), "--progress-mode", mode,
                 "--queue-drift", str(q * drift / jobs), "--video-size", "4096"]
        if shared:
            # The runner's one limiter is what paces; the simulator does not meter.
            sim = Sim(*flags)
        else:
            sim = Sim(*flags, "--submit-rate", str(submit[0]), "--submit-burst", str(submit[1]),
                      "--query-rate", str(query[0]), "--query-burst", str(query[1]), metering=True)
        # `requests_per_second` is the user's own budget: the runner does not scale it.
        limits = (f"requests_per_second = {submit[0] / scale}\nburst = {submit[1]}\n"
                  f"submit_per_second = 1000000\nquery_per_second = 1000000\n" if shared else
                  f"submit_per_second = {submit[0]}\nsubmit_burst = {submit[1]}\n"
                  f"query_per_second = {query[0]}\nquery_burst = {query[1]}\n")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "jobs.csv"), "w") as f:
                f.write("id,prompt\n" + "".join(f"j{i},regime prompt {i}\n" for i in range(jobs)))
            with open(os.path.join(d, "r.toml"), "w") as f:
                f.write(f'name = "r"\n[limits]\n{limits}max_in_flight = {cap}\n'
                        f'submit_concurrency = {cap}\npoll_queued = "5s"\npoll_in_progress = "10s"\n'
                        f'[defaults]\nmodel = "gemini_omni_flash"\n[[source]]\ncsv = "jobs.csv"\n')
            wall, cpu, rss, code = run_runner(
                ["run", "r.toml", "--base-url", sim.url, "--sim-time-scale", str(scale), "--yes"], d)
            s = sim.stats()
        sim.stop()
        totals = [a + b for a, b in s["task_times"]]
        best = oracle(totals, submit, query, shared, cap)
        span = (max(s["request_times_ms"]) - min(s["submit_times_ms"])) / 1000 / scale
        rows.append((f"regime: {name}",
                     f"{span:.2f} s / oracle {best:.2f} s = {span / best:.3f}; "
                     f"{s['polls'] / jobs:.2f} polls/job; 429s {s['rate_limited_429']}; "
                     f"wall {wall:.1f} s at time scale {scale}; exit {code}"))


SCENARIOS = {"regimes": regimes, "rate": rate, "makespan": makespan, "bounds": bounds, "scale": scale, "download": download, "budgets": budgets, "queue": queue}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=20000, help="jobs in the scale scenario")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--no-build", action="store_true", help="use target/release/runner as it is")
    p.add_argument("--regimes", default="", help="only the regimes whose name contains this")
    p.add_argument("--time-scale", type=float, default=0.5, help="the regimes' simulated time scale")
    a = p.parse_args()
    if not a.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    rows = []
    for name in a.only.split(","):
        if name == "regimes":
            before = len(rows)
            regimes(rows, a.jobs, a.regimes, a.time_scale)
            for r in rows[before:]:
                print(f"  {r[0]}: {r[1]}", file=sys.stderr)
            continue
        SCENARIOS[name](rows, a.jobs)
        print(f"  {rows[-1][0]}: {rows[-1][1]}", file=sys.stderr)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'scenario'.ljust(width)} | result")
    print(f"{'-' * width}-|-{'-' * 60}")
    for name, result in rows:
        print(f"{name.ljust(width)} | {result}")


if __name__ == "__main__":
    main()
