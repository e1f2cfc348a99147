#!/usr/bin/env python3
"""System calls and context switches of the server per delivery in one
fan-out run, counted by `perf stat` on the kernel's syscall tracepoints
(software events: they work on a VM without hardware counters; needs
root or kernel.perf_event_paranoid <= 1). Counts, unlike CPU time, hardly
move with the machine's load; they show the kernel's share that
bench/instructions.py does not count.

    python3 bench/syscalls.py LABEL BINARY SUBS RATE DURATION

Prints one JSON line: the generator's figures and each count per delivery.
"""
import json
import os
import signal
import subprocess
import sys

import run

CALLS = ["write", "writev", "sendto", "sendmsg", "read", "recvfrom", "epoll_wait", "epoll_pwait",
         "futex", "epoll_ctl"]


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    label, binary, subs, rate, duration = sys.argv[1:6]
    events = ",".join([f"syscalls:sys_enter_{c}" for c in CALLS] + ["context-switches"])
    server = run.Server("ours", binary=os.path.abspath(binary))
    try:
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p", str(server.proc.pid)],
                                stderr=subprocess.PIPE, text=True)
        r = run.gen("fanout", server, label, subs=subs, rate=rate, duration=duration)
        perf.send_signal(signal.SIGINT)
        out = perf.communicate()[1]
    finally:
        server.stop()
    deliveries = r.get("deliveries") or 1
    counts = {}
    for line in out.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[0].replace(".", "").isdigit():
            counts[f[2].replace("syscalls:sys_enter_", "")] = round(float(f[0]) / deliveries, 4)
    print(json.dumps({"label": label, "deliveries": deliveries, "deliveredPct": r.get("deliveredPct"),
                      "p50us": r.get("p50us"), "cpuUsPerDelivery": r.get("serverCpuUsPerDelivery"),
                      "perDelivery": counts}), flush=True)


if __name__ == "__main__":
    main()
