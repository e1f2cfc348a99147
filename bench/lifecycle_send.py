#!/usr/bin/env python3
"""Does `message:send` cost more since the message lifecycle (issue 17:
replies, kinds, edits and deletions, read positions, notifications and
announcements)? Two release builds, OLD (the commit before the lifecycle
merge) and NEW, in rounds that alternate them, each round the persist
scenario of run.py (100 senders, 8 rooms, 32 sends in flight each) on
SQLite and on PostgreSQL. Prints each run's acknowledged messages/s and the
server's CPU per message (from /proc, steadier than the rate on a shared
machine), then the medians and the ratios new/old:

    python3 bench/lifecycle_send.py [--rounds 3] [--duration 8] OLD_BINARY NEW_BINARY

Build both servers and the generator first.
"""
import sys

import persist_cpu
import run


def one(binary, backend, label, duration):
    """(acked/s, server CPU µs per acked message, problems) of one run."""
    name = None
    env = {}
    if backend == "postgres":
        url, name = run.pg_create()
        env["DATABASE_URL"] = url
    try:
        server = run.Server("ours", env, binary)
        try:
            before = persist_cpu.cpu_secs(server.proc.pid)
            r = run.gen("persist", server, label, senders=100, rooms=8, duration=duration)
            cpu = persist_cpu.cpu_secs(server.proc.pid) - before
        finally:
            server.stop()
    finally:
        if name:
            run.pg_drop(name)
    acked = r.get("acked") or 0
    problems = {k: r[k] for k in ("errors", "failed", "lost", "unanswered") if r.get(k)}
    return r.get("ackedPerSecond", 0), (cpu / acked * 1e6 if acked else float("nan")), problems


def main():
    opts, rest = run.options(sys.argv[1:], rounds=3, duration=8)
    rounds, duration = opts["rounds"], opts["duration"]
    if len(rest) != 2:
        sys.exit(__doc__)
    binaries = {"old": rest[0], "new": rest[1]}
    run.machine_load("before")
    got = {(b, v): [] for b in ("sqlite", "postgres") for v in binaries}
    for i in range(rounds):
        for backend in ("sqlite", "postgres"):
            # Alternate which goes first, so a drift in the machine's load
            # does not favour one build.
            order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
            for version in order:
                label = f"{version}, {backend}, round {i + 1}"
                rate, us, problems = one(binaries[version], backend, label, duration)
                got[(backend, version)].append((rate, us))
                print(f"{label}: {rate:,.0f} acked/s, server {us:.1f} us/message"
                      f"{'; problems: ' + str(problems) if problems else ''}", flush=True)
    for backend in ("sqlite", "postgres"):
        med = {}
        for version in binaries:
            runs = got[(backend, version)]
            med[version] = (run.median([r for r, _ in runs]), run.median([u for _, u in runs]))
            print(f"median {version}, {backend}: {med[version][0]:,.0f} acked/s, "
                  f"{med[version][1]:.1f} us/message")
        print(f"new/old, {backend}: rate {med['new'][0] / med['old'][0]:.2f}x, "
              f"CPU per message {med['new'][1] / med['old'][1]:.2f}x", flush=True)
    run.machine_load("after")


if __name__ == "__main__":
    main()
