#!/usr/bin/env python3
"""The fan-out rows of run.py for several builds of our server and the
tokio reference, in one sitting: rounds in which every server runs once, in
turn (the order given, the reference first unless --reference-last), so
load from other work on the machine falls on all of them alike. Prints each
run's raw JSON, then per row and figure the median over the rounds (the
lowest for delivered %). This is how the redesign's before/after check in
docs/benchmarks.md was measured.

    python3 bench/fanout_builds.py [--rounds 3] [--duration 10] \\
        [--rows 1000x20,5000x100] [--reference-last] LABEL=BINARY ...

Build the generator and the reference first (run.py does).
"""
import sys

import run


def main():
    args, rounds, duration = sys.argv[1:], 3, 10
    rows, reference_last, builds = [(1000, 20), (5000, 100)], False, {}
    while args:
        a = args.pop(0)
        if a == "--rounds":
            rounds = int(args.pop(0))
        elif a == "--duration":
            duration = int(args.pop(0))
        elif a == "--rows":
            rows = [tuple(int(n) for n in r.split("x")) for r in args.pop(0).split(",")]
        elif a == "--reference-last":
            reference_last = True
        else:
            label, binary = a.split("=", 1)
            builds[label] = binary
    order = list(builds) + ["tokio"] if reference_last else ["tokio"] + list(builds)
    for subs, rate in rows:
        got = {k: [] for k in order}
        for i in range(rounds):
            for label in got:
                where = f"fan-out {subs} x {rate} msg/s, run {i + 1}, {label}"
                if label == "tokio":
                    server = run.Server("tokio")
                else:
                    server = run.Server("ours", binary=builds[label])
                try:
                    r = run.gen("fanout", server, where, subs=subs, rate=rate, duration=duration)
                    run.check_counters(server, where)
                finally:
                    server.stop()
                got[label].append(r)
        for key in ["deliveredPct", "p50us", "p99us", "p999us", "serverCpuUsPerDelivery", "drainMs"]:
            line = {k: run.median([r.get(key) for r in v], key == "deliveredPct")
                    for k, v in got.items()}
            print(f"fan-out {subs} x {rate}, {key}: "
                  + ", ".join(f"{k} {run.fmt(v)}" for k, v in line.items()), flush=True)
    if run.PROBLEMS:
        print("problems:")
        for who, where, what in run.PROBLEMS:
            print(f"  {who}, {where}: {what}")
        sys.exit(1)


if __name__ == "__main__":
    main()
