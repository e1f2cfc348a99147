#!/usr/bin/env python3
"""Runs the whole benchmark and prints a table: figure, ours, the tokio
limit, Node `ws`, and the ratios. See docs/benchmarks.md.

    python3 bench/run.py           # the full run (each scenario <= 60 s)
    python3 bench/run.py --quick   # a seconds-long smoke (what CI runs)

The servers are pinned to core 0 and the load generator to core 1
(`taskset`), so figures compare like with like on a 2-core machine. Everything
runs on loopback. PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are
used for the persistence and cross-node rows when they answer.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = "--quick" in sys.argv
SECRET = "bench-secret"
SERVER = os.path.join(ROOT, "target", "release", "realtime-server")
BENCH_DIR = os.path.join(ROOT, "bench")
GEN = os.path.join(BENCH_DIR, "target", "release", "realtime-bench")
TOKIO_REF = os.path.join(BENCH_DIR, "target", "release", "tokio-broadcast")
HAS_TASKSET = shutil.which("taskset") is not None


def pinned(core, cmd):
    return (["taskset", "-c", str(core)] if HAS_TASKSET else []) + cmd


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=BENCH_DIR, check=True)


def wait_listening(proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on" in line:
            return line.strip().split()[-1]
    raise RuntimeError("server did not start")


class Server:
    def __init__(self, kind, env_extra=None):
        self.tmp = tempfile.mkdtemp(prefix="rt-bench-")
        env = dict(os.environ)
        if kind == "ours":
            env.update({
                "REALTIME_CONFIG": os.path.join(BENCH_DIR, "bench.toml"),
                "REALTIME_JWT_SECRET": SECRET,
                "REALTIME_PORT": "0",
                "RUST_LOG": "warn",
                "DATABASE_URL": "sqlite://" + os.path.join(self.tmp, "bench.db"),
            })
            env.update(env_extra or {})
            cmd = [SERVER]
        elif kind == "tokio":
            cmd = [TOKIO_REF, "0"]
        else:
            cmd = ["node", os.path.join(BENCH_DIR, "node", "server.js"), "0"]
        self.proc = subprocess.Popen(pinned(0, cmd), env=env, cwd=self.tmp, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.addr = wait_listening(self.proc)
        self.url = f"ws://{self.addr}/ws"
        self.secret = SECRET if kind == "ours" else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def measure(kind, fn, env=None):
    """Starts a server of `kind`, runs `fn` on it, stops it."""
    server = Server(kind, env)
    try:
        return fn(server)
    finally:
        server.stop()


def gen(scenario, server, **opts):
    cmd = [GEN, scenario, "--url", server.url, "--pid", str(server.proc.pid)]
    if server.secret:
        cmd += ["--secret", server.secret]
    for k, v in opts.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    try:
        out = subprocess.run(pinned(1, cmd), capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": out.stderr[-300:]}


def median(values, lowest=False):
    """The median (or the lowest) of the runs that gave a number; None if none did."""
    nums = sorted(v for v in values if isinstance(v, (int, float)))
    if not nums:
        return None
    return nums[0] if lowest else nums[len(nums) // 2]


def service_up(cmd):
    return shutil.which(cmd[0]) is not None and subprocess.run(cmd, capture_output=True).returncode == 0


def pg_url():
    name = "rt_bench_" + uuid.uuid4().hex[:12]
    if not service_up(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f"CREATE DATABASE {name}"]):
        return None, None
    return f"postgres://postgres@127.0.0.1:5432/{name}", name


def drop_pg(name):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc",
                    f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def main():
    build()
    node_dir = os.path.join(BENCH_DIR, "node")
    if shutil.which("npm") and not os.path.isdir(os.path.join(node_dir, "node_modules", "ws")):
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=node_dir)
    have_node = shutil.which("node") and os.path.isdir(os.path.join(node_dir, "node_modules", "ws"))
    kinds = ["ours", "tokio"] + (["node"] if have_node else [])
    d = 3 if QUICK else 20
    idle_conns = 200 if QUICK else 19000
    rows = []  # (figure, {kind: value}, better)

    def over_kinds(fn):
        return {kind: measure(kind, fn) for kind in kinds}

    def per_kind(label, better, fn):
        rows.append((label, over_kinds(fn), better))

    per_kind("handshakes/s", "higher", lambda s: gen("handshake", s, duration=d).get("perSecond"))
    per_kind(f"idle RSS KiB/conn ({idle_conns} conns, after connect)", "lower",
             lambda s: gen("idle", s, conns=idle_conns, duration=1).get("rssKibPerConnAfterConnect"))
    if not QUICK:
        per_kind(f"idle RSS KiB/conn ({idle_conns} conns, after 60 s idle)", "lower",
                 lambda s: gen("idle", s, conns=idle_conns, duration=60).get("rssKibPerConnAfterIdle"))
    # A burst: every connection sends 16 x 8,000-character messages into a
    # room of its own and reads them back; do the buffers shrink back?
    burst_conns, burst_idle = (200, 3) if QUICK else (2000, 40)
    values = over_kinds(lambda s: gen("burst", s, conns=burst_conns, count=16, size=8000, duration=burst_idle))
    for key, label in [
        ("rssKibPerConnBefore", "before"),
        ("rssKibPerConnAfterBurst", "right after"),
        ("rssKibPerConnAfterIdle", f"{burst_idle} s after"),
    ]:
        rows.append((f"burst RSS KiB/conn ({burst_conns} conns x 125 KiB), {label}",
                     {k: v.get(key) for k, v in values.items()}, "lower"))
    fanouts = [(200, 100)] if QUICK else [(1000, 20), (1000, 200), (1000, 1000), (5000, 100)]
    for subs, rate in fanouts:
        values = over_kinds(lambda s, subs=subs, rate=rate: gen("fanout", s, subs=subs, rate=rate, duration=d))
        for key, label, better in [
            ("deliveriesPerSecond", f"fan-out 1 room x {subs} @ {rate} msg/s: deliveries/s", "higher"),
            ("deliveredPct", f"fan-out 1 room x {subs} @ {rate} msg/s: delivered %", "higher"),
            ("p50us", f"fan-out 1 room x {subs} @ {rate} msg/s: p50 us", "lower"),
            ("p99us", f"fan-out 1 room x {subs} @ {rate} msg/s: p99 us", "lower"),
            ("p999us", f"fan-out 1 room x {subs} @ {rate} msg/s: p999 us", "lower"),
            ("serverCpuUsPerDelivery", f"fan-out 1 room x {subs} @ {rate} msg/s: server CPU us/delivery", "lower"),
        ]:
            rows.append((label, {k: v.get(key) for k, v in values.items()}, better))

    # Persisted messages/s (ours only: the references store nothing).
    senders = 20 if QUICK else 100
    persist = lambda s: gen("persist", s, senders=senders, duration=d).get("ackedPerSecond")  # noqa: E731
    persisted = {"sqlite": measure("ours", persist)}
    url, name = pg_url()
    if url:
        try:
            persisted["postgres"] = measure("ours", persist, {"DATABASE_URL": url})
        finally:
            drop_pg(name)
    for db, v in persisted.items():
        rows.append((f"persisted message:send acks/s ({db})", {"ours": v}, "higher"))

    # Cross-node: publisher on node A, subscribers on node B, Redis between.
    url, name = pg_url()
    if url and service_up(["redis-cli", "-h", "127.0.0.1", "ping"]):
        prefix = "rt-bench-" + uuid.uuid4().hex[:8]
        env = {"DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:6379", "REALTIME__REDIS__PREFIX": prefix}
        a = Server("ours", dict(env, REALTIME_NODE_ID="bench-a"))
        b = Server("ours", dict(env, REALTIME_NODE_ID="bench-b"))
        try:
            time.sleep(1.5)
            subs = 200 if QUICK else 1000
            # A p99 over a few hundred messages rests on a handful of them,
            # so the two paths alternate several times and each row is the
            # median of its runs.
            pairs = 1 if QUICK else 3
            cross, local = [], []
            for _ in range(pairs):
                cross.append(gen("fanout", b, subs=subs, rate=20, duration=d, pub_url=a.url))
                local.append(gen("fanout", b, subs=subs, rate=20, duration=d))
            for key, what in [("p50us", "p50"), ("p99us", "p99")]:
                for runs, path in [(local, "same node"), (cross, "via Redis")]:
                    rows.append((f"cross-node {what} us ({subs} subs @ 20 msg/s), {path}, median of {pairs}",
                                 {"ours": median([r.get(key) for r in runs])}, "lower"))
            rows.append(("cross-node delivered %, lowest run",
                         {"ours": median([r.get("deliveredPct") for r in cross], lowest=True)}, "higher"))
        finally:
            a.stop()
            b.stop()
            drop_pg(name)

    print_table(rows, kinds)


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    if isinstance(v, dict):
        return "error"
    return f"{v:,}"


def ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return "-"
    return f"{a / b:.2f}x"


def print_table(rows, kinds):
    header = ["figure", "ours", "tokio limit", "node ws", "ours/tokio", "ours/node"]
    lines = [header]
    for label, values, _ in rows:
        ours, tok, nod = values.get("ours"), values.get("tokio"), values.get("node")
        lines.append([label, fmt(ours), fmt(tok), fmt(nod), ratio(ours, tok), ratio(ours, nod)])
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    print(f"\nrealtime-server benchmark ({'quick' if QUICK else 'full'}), {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} cores, servers on core 0, generator on core 1\n")
    for i, r in enumerate(lines):
        print("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
