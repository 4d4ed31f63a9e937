"""Where the kernel runs a process that another one wakes, and whether the two then run at
once: the question behind every "move this work to a helper process" change to supd.

A waker sends one byte on a SOCK_SEQPACKET socketpair (as supd sends START to an infra) and
goes on working for W µs; the woken process, in epoll_wait, works W µs too and answers. On
two idle CPUs the round trip is about W (both run at once); if the wakee is queued on the
waker's CPU it is about 2W (it runs only once the waker stops). `--gap` is the quiet time
before each round (supd at concurrency 1 waits for its client between pods).

    .venv/bin/python benchmarks/wake_placement.py [-n 500] [--work 300] [--gap 0 2000]

Prints, for each gap, how often the wakee ran on the waker's CPU, and the round trip's
median against W; and the VM's vCPU packing setting where the kernel has one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PING_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void work(double us) {
    double end = now_us() + us;
    while (now_us() < end) {}
}

int main(int argc, char **argv) {
    int n = atoi(argv[1]), gap = atoi(argv[3]);
    double w = atof(argv[2]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0) return 1;
    if (fork() == 0) {
        close(sv[0]);
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN};
        epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
        for (;;) {
            char b[8];
            epoll_wait(ep, &ev, 1, -1);
            if (recv(sv[1], b, sizeof b, 0) <= 0) _exit(0);
            int cpu = sched_getcpu();
            work(w);
            send(sv[1], &cpu, sizeof cpu, 0);
        }
    }
    close(sv[1]);
    for (int i = 0; i < n; i++) {
        int cpu;
        if (gap) usleep(gap);
        int mine = sched_getcpu();
        double t0 = now_us();
        send(sv[0], "x", 1, 0);
        work(w);
        if (recv(sv[0], &cpu, sizeof cpu, 0) != sizeof cpu) return 1;
        printf("%d %.1f\n", cpu == mine, now_us() - t0);
    }
    close(sv[0]);
    wait(NULL);
    return 0;
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=500, help="rounds per gap")
    ap.add_argument("--work", type=float, default=300, help="µs each side works (W)")
    ap.add_argument("--gap", type=int, nargs="+", default=[0, 2000], help="µs quiet before each")
    args = ap.parse_args()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("wake_placement: needs a C compiler (cc or gcc)")
    pack = Path("/proc/sys/kernel/sched_vcpu_pack")
    if pack.exists():
        print(f"kernel.sched_vcpu_pack = {pack.read_text().strip()} (this VM's kernel)")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "ping.c", Path(tmp) / "ping"
        src.write_text(PING_C)
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
        print(
            f"W = {args.work:g} µs: a round trip of ~W means both ran at once, "
            "~2W one after the other"
        )
        print(
            f"{'gap µs':>7}  {'wakee on the waker CPU':>23}  {'round trip p50 µs':>18}  {'/ W':>5}"
        )
        for gap in args.gap:
            out = subprocess.run(
                [str(exe), str(args.n), str(args.work), str(gap)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split("\n")
            rows = [line.split() for line in out if line]
            same = sum(int(r[0]) for r in rows)
            p50 = statistics.median(float(r[1]) for r in rows)
            print(f"{gap:>7}  {f'{same}/{len(rows)}':>23}  {p50:>18.0f}  {p50 / args.work:>5.2f}")


if __name__ == "__main__":
    main()
