#!/usr/bin/env python3
"""What one job costs the kernel on this machine, without runner.

    python3 bench/floor.py               # 20,000 jobs' worth of each step
    python3 bench/floor.py --jobs 5000

Every job needs, whatever program runs it, three HTTP exchanges with the API
(submit, one poll that sees it finished, the download) and one video file on
disk that survives a power loss (created as `.part`, written, fsynced,
renamed). This script does exactly that much with the least a program can:
one keep-alive connection to `runner simulate`, one send and one receive per
exchange, and plain file calls. It prints the system CPU time per job of each
step: the floor under runner's own "system µs per job" in BENCHMARKS.md.
User time is left out (it is Python's, not a floor).

The file steps write one after another, the way a download ends. Delete
nothing just before: ext4 without a journal (this VM's root) skips inodes
freed in the last minutes, which makes the next creates several times dearer.
"""

import argparse
import json
import os
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "target", "release", "runner")
BODY = json.dumps({"model": "gemini_omni_flash", "prompt": "floor", "duration": 6,
                   "aspect_ratio": "16:9", "resolution": "720P"}).encode()


def system_time():
    return os.times().system


class Conn:
    """One keep-alive HTTP/1.1 connection: one send and one receive per exchange."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, method, path, body=b""):
        head = (f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer floor\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode()
        self.sock.sendall(head + body)
        data = b""
        while True:
            data += self.recv()
            end = data.find(b"\r\n\r\n")
            if end < 0:
                continue
            length = 0
            for line in data[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(data) < end + 4 + length:
                data += self.recv()
            return data[end + 4:end + 4 + length]

    def recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the simulator closed the connection")
        return chunk


def network(jobs, port):
    """Submit, poll, download for each job; returns the system CPU seconds they took."""
    conn = Conn(port)
    t0 = system_time()
    for _ in range(jobs):
        task = json.loads(conn.exchange("POST", "/v1/videos/generations", BODY))
        done = json.loads(conn.exchange("GET", f"/v1/videos/generations/{task['id']}"))
        url = done["result"]["data"][0]["url"] if "result" in done else done.get("video_url")
        conn.exchange("GET", "/" + url.split("/", 3)[3])
    return system_time() - t0


def files(jobs, root, fsync):
    d = tempfile.mkdtemp(dir=root)
    data = b"\0" * 1024
    t0 = system_time()
    for i in range(jobs):
        final = os.path.join(d, f"j{i}.mp4")
        fd = os.open(final + ".part", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
        os.close(fd)
        os.rename(final + ".part", final)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return system_time() - t0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=20000)
    a = p.parse_args()
    port = free_port()
    sim = subprocess.Popen([RUNNER, "simulate", "--port", str(port), "--queue-time", "0",
                            "--generation-time", "0", "--video-size", "1024"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        rows = [("3 HTTP exchanges (submit, poll, download)", network(a.jobs, port))]
    finally:
        sim.terminate()
        sim.wait()
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as root:
        rows.append(("video file: create, write, fsync, rename", files(a.jobs, root, True)))
        rows.append(("video file without the fsync", files(a.jobs, root, False)))
    print(f"{'step, per job':<42} | system µs")
    for name, secs in rows:
        print(f"{name:<42} | {secs / a.jobs * 1e6:9.0f}")
    floor = rows[0][1] + rows[1][1]
    print(f"{'a whole job (exchanges + durable file)':<42} | {floor / a.jobs * 1e6:9.0f}")


if __name__ == "__main__":
    main()
