#!/usr/bin/env python3
"""What one small video file costs the kernel on this machine, without runner.

    python3 bench/fs_floor.py            # 20,000 files of 1 KiB, in a temp folder
    python3 bench/fs_floor.py --files 5000

Each mode writes the files one after another, the way a download ends:
create + write; then also rename from `.part`; then also fsync each file
before its rename (what runner does for every video, so a crash cannot leave
a renamed but empty file). Prints system CPU and wall time per file: the
floor under runner's own "system µs per job" in BENCHMARKS.md.
"""

import argparse
import os
import tempfile
import time


def run(files, mode, root):
    d = tempfile.mkdtemp(dir=root)
    data = b"\0" * 1024
    t0, c0 = time.monotonic(), os.times()
    for i in range(files):
        final = os.path.join(d, f"v{i}.mp4")
        path = final + ".part" if mode != "create+write" else final
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        os.write(fd, data)
        if mode == "+ fsync each, rename":
            os.fsync(fd)
        os.close(fd)
        if mode != "create+write":
            os.rename(path, final)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    c1, t1 = os.times(), time.monotonic()
    return (c1.system - c0.system) / files * 1e6, (c1.user - c0.user) / files * 1e6, t1 - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=20000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as root:
        print(f"{'mode':<22} | system µs/file | user µs/file | wall for {a.files} files")
        for mode in ["create+write", "+ rename", "+ fsync each, rename"]:
            sys_us, user_us, wall = run(a.files, mode, root)
            print(f"{mode:<22} | {sys_us:14.0f} | {user_us:12.0f} | {wall:.2f} s")


if __name__ == "__main__":
    main()
