#!/usr/bin/env python3
"""Where the CPU of a persisted message goes: the persist scenario of run.py
(100 senders, 32 sends in flight each) in 8 rooms (as run.py: each message
is delivered to about 12 members) and in 100 (each sender alone in its
room: persistence without fan-out), against our server on PostgreSQL, with the CPU time of the server and of every PostgreSQL
process read from /proc before and after. CPU time per
message moves far less than a rate on a machine shared with other work, so
this says what one core can reach whatever the load:

    python3 bench/persist_cpu.py [--runs 3] [--duration 10] [BINARY]

Build the server and the generator first (run.py does).
"""
import os
import subprocess
import sys

import run

TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def postgres_cpu():
    """CPU seconds of every postgres process alive now, by pid."""
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return {int(p): cpu_secs(int(p)) for p in out.split()}


def main():
    opts, rest = run.options(sys.argv[1:], runs=3, duration=10)
    runs, duration, binary = opts["runs"], opts["duration"], (rest or [run.SERVER])[0]
    run.machine_load("before")
    for i, rooms in [(i, rooms) for i in range(runs) for rooms in (8, 100)]:
        url, name = run.pg_create()
        try:
            server = run.Server("ours", {"DATABASE_URL": url}, binary)
            try:
                pg_before, srv_before = postgres_cpu(), cpu_secs(server.proc.pid)
                r = run.gen("persist", server, f"persist cpu, {rooms} rooms, run {i + 1}",
                            senders=100, rooms=rooms, duration=duration)
                srv = cpu_secs(server.proc.pid) - srv_before
                pg_after = postgres_cpu()
                # Backends that ended during the run are not counted: the
                # pool keeps its connections, so none should.
                pg = sum(pg_after[p] - pg_before.get(p, 0.0) for p in pg_after)
            finally:
                server.stop()
        finally:
            run.pg_drop(name)
        acked = r.get("acked") or 0
        per = lambda secs: secs / acked * 1e6 if acked else float("nan")
        print(f"{rooms} rooms, run {i + 1}: {acked} acked, {r.get('ackedPerSecond', 0):,.0f}/s; CPU per message: "
              f"server {per(srv):.1f} us, postgres {per(pg):.1f} us", flush=True)
    run.machine_load("after")


if __name__ == "__main__":
    main()
