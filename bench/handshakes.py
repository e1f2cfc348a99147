#!/usr/bin/env python3
"""Handshakes/s of several builds of our server against the tokio reference,
in one sitting: rounds in which every server runs once, in turn, so that
load from other work on the machine falls on all of them alike. Prints each
run's raw JSON, then per server the median handshakes/s and server CPU per
handshake, each with its ratio to the reference's median (on a machine
shared with other work the CPU figure moves far less than the rate). This is how the handshake bisect in docs/benchmarks.md was measured.

    python3 bench/handshakes.py [--rounds 5] [--duration 10] \\
        LABEL=BINARY[,CONFIG][,VAR=VALUE...] ...

CONFIG defaults to bench/bench.toml; give the bench.toml of the build's own
commit for old builds (its settings must be ones that build knows).
VAR=VALUE pairs are extra environment for that server, e.g.
REALTIME__SERVER__MALLOC_ARENAS=0. Build the generator first (run.py does).
"""
import sys
import time

import run


def parse(spec):
    label, rest = spec.split("=", 1)
    parts = rest.split(",")
    binary, config, env = parts[0], None, {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            env[k] = v
        else:
            config = p
    return label, binary, config, env


def main():
    args, rounds, duration = sys.argv[1:], 5, 10
    specs = []
    while args:
        a = args.pop(0)
        if a == "--rounds":
            rounds = int(args.pop(0))
        elif a == "--duration":
            duration = float(args.pop(0))
        else:
            specs.append(parse(a))
    print(f"handshakes: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {rounds} rounds x {duration} s, "
          f"servers on core 0, generator on core 1", flush=True)
    for label, binary, config, env in specs:
        print(f"server {label}: {binary} config={config or 'bench/bench.toml'} env={env}", flush=True)
    run.machine_load("before")
    figures = {"tokio": []}
    figures.update({label: [] for label, *_ in specs})
    cpu = {label: [] for label in figures}
    for i in range(rounds):
        for label, binary, config, env in [("tokio", None, None, {})] + specs:
            server = run.Server("tokio") if binary is None else run.Server("ours", env, binary, config)
            try:
                r = run.gen("handshake", server, f"{label}, round {i + 1}", duration=duration)
            finally:
                server.stop()
            figures[label].append(r.get("perSecond"))
            cpu[label].append(r.get("serverCpuUsPerHandshake"))
            if r.get("failed"):
                run.PROBLEMS.append((label, f"round {i + 1}", f"{r['failed']} handshakes failed"))
    run.machine_load("after")
    ref = run.median(figures["tokio"])
    print("\n| server | handshakes/s, each round | median | median / tokio median |")
    print("|---|---|---|---|")
    for label, values in figures.items():
        m = run.median(values)
        each = ", ".join(run.fmt(v) for v in values)
        print(f"| {label} | {each} | {run.fmt(m)} | {run.ratio(m, ref)} |")
    print("\n| server | server CPU us/handshake, each round | median | median / tokio median |")
    print("|---|---|---|---|")
    ref_cpu = run.median(cpu["tokio"])
    for label, values in cpu.items():
        m = run.median(values)
        print(f"| {label} | {', '.join(run.fmt(v) for v in values)} | {run.fmt(m)} | {run.ratio(m, ref_cpu)} |")
    print("\nper-round ratio to the tokio reference of the same round:")
    for label, values in figures.items():
        if label != "tokio":
            ratios = [run.ratio(v, t) for v, t in zip(values, figures["tokio"])]
            print(f"  {label}: {', '.join(ratios)}")
    if run.PROBLEMS:
        print("\nproblems:")
        for who, where, what in run.PROBLEMS:
            print(f"  {who}, {where}: {what}")
        sys.exit(1)


if __name__ == "__main__":
    main()
