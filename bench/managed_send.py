#!/usr/bin/env python3
"""Does sending to a managed room cost more than to an ad hoc one? The
persist scenario of run.py (100 senders, 8 rooms, 32 sends in flight each,
SQLite) in rounds that alternate two servers of the same build: `adhoc`,
where the rooms exist only while joined, and `managed`, where the same
rooms were first created as public managed rooms through the admin API (so
every join makes its sender a member, and every `message:send` passes the
membership and role checks). Prints each run's acknowledged messages/s and
the server's CPU per message (from /proc, steadier than the rate on a
shared machine), then the medians and the ratio managed/adhoc:

    python3 bench/managed_send.py [--rounds 3] [--duration 10] [BINARY]

Build the server and the generator first (run.py does).
"""
import json
import sys
import urllib.request

import persist_cpu
import run

ADMIN_KEY = "bench-admin-key"
ROOMS = 8


def create_rooms(server):
    """The persist scenario's rooms, as public managed rooms."""
    for i in range(ROOMS):
        body = json.dumps({"room": f"public:persist{i}", "type": "channel",
                           "visibility": "public"}).encode()
        req = urllib.request.Request(f"http://{server.addr}/admin/rooms", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201, r.status


def main():
    opts, rest = run.options(sys.argv[1:], rounds=3, duration=10)
    rounds, duration, binary = opts["rounds"], opts["duration"], (rest or [run.SERVER])[0]
    run.machine_load("before")
    got = {"adhoc": [], "managed": []}
    for i in range(rounds):
        for kind in got:
            server = run.Server("ours", {"REALTIME_ADMIN_TOKEN": ADMIN_KEY}, binary)
            try:
                if kind == "managed":
                    create_rooms(server)
                before = persist_cpu.cpu_secs(server.proc.pid)
                r = run.gen("persist", server, f"{kind}, round {i + 1}", senders=100, rooms=ROOMS,
                            duration=duration)
                cpu = persist_cpu.cpu_secs(server.proc.pid) - before
            finally:
                server.stop()
            acked = r.get("acked") or 0
            problems = {k: r[k] for k in ("errors", "failed", "lost", "unanswered") if r.get(k)}
            us = cpu / acked * 1e6 if acked else float("nan")
            got[kind].append((r.get("ackedPerSecond", 0), us))
            print(f"{kind}, round {i + 1}: {r.get('ackedPerSecond', 0):,.0f} acked/s, "
                  f"server {us:.1f} us/message{'; problems: ' + str(problems) if problems else ''}",
                  flush=True)
    med = {k: (run.median([r for r, _ in v]), run.median([u for _, u in v])) for k, v in got.items()}
    for k, (rate, us) in med.items():
        print(f"median {k}: {rate:,.0f} acked/s, {us:.1f} us/message")
    print(f"managed/adhoc: rate {med['managed'][0] / med['adhoc'][0]:.2f}x, "
          f"CPU per message {med['managed'][1] / med['adhoc'][1]:.2f}x")
    run.machine_load("after")


if __name__ == "__main__":
    main()
