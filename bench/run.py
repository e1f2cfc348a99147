#!/usr/bin/env python3
"""Runs the whole benchmark and prints every generator run's raw JSON, a
table of figures and ratios (ours, the tokio limit, Node `ws`) and the
integrity figures. See docs/benchmarks.md.

    python3 bench/run.py           # the full run (about 20 minutes)
    python3 bench/run.py --quick   # a seconds-long smoke (what CI runs)
    python3 bench/run.py --only storms   # only the storm rows (with --quick too)
    python3 bench/run.py --only graphql  # only fan-out over /graphql beside /ws
    python3 bench/run.py --only persist  # only persisted messages/s (median of 3)

The exit status is non-zero when our server had a problem: a connection
that failed or was closed, a delivery or echo missing where every one is
expected, a persist error, a non-zero error counter in its /metrics, or a
generator run that failed for any server. PostgreSQL (127.0.0.1:5432) and
Redis (127.0.0.1:6379) are required for the persistence and cross-node rows:
the run stops at once, saying so, when they do not answer.

The servers are pinned to core 0 and the load generator to core 1
(`taskset`), so figures compare like with like on a 2-core machine. Everything
runs on loopback. The server is built in $CARGO_TARGET_DIR (default
`target/`), the generator in `bench/target/`.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = "--quick" in sys.argv
# `--only storms`: only the connection and join storm rows; `--only
# graphql`: only the /graphql fan-out beside the same over /ws; `--only
# persist`: only the persisted-messages rows, the median of 3 runs each.
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv[:-1] else None
SECRET = "bench-secret"
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))
SERVER = os.path.join(TARGET, "release", "realtime-server")
BENCH_DIR = os.path.join(ROOT, "bench")
GEN = os.path.join(BENCH_DIR, "target", "release", "realtime-bench")
TOKIO_REF = os.path.join(BENCH_DIR, "target", "release", "tokio-broadcast")
HAS_TASKSET = shutil.which("taskset") is not None
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"]
# Counters in our /metrics that must stay at 0 in a healthy run.
ERROR_COUNTERS = ["records_dropped", "db_errors", "slow_consumer_closes", "heartbeat_closes",
                  "handshakes_refused", "redis_publish_errors", "flood_closes", "rate_limited"]

# What went wrong, as (who, where, what); printed at the end, and the exit
# status when any of it is ours or a generator failure.
PROBLEMS = []
# Integrity figures: (label, {kind: text}).
INTEGRITY = []


def pinned(core, cmd):
    return (["taskset", "-c", str(core)] if HAS_TASKSET else []) + cmd


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    # The generator has its own target directory, whatever the server's is.
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=BENCH_DIR, check=True, env=env)


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
    """A server of `kind` ("ours", "tokio" or "node"); `binary` and `config`
    choose another build of ours (the handshake bisect)."""

    def __init__(self, kind, env_extra=None, binary=SERVER, config=None):
        self.kind = kind
        self.tmp = tempfile.mkdtemp(prefix="rt-bench-")
        env = dict(os.environ)
        if kind == "ours":
            env.update({
                "REALTIME_CONFIG": config or os.path.join(BENCH_DIR, "bench.toml"),
                "REALTIME_JWT_SECRET": SECRET,
                "REALTIME_PORT": "0",
                "RUST_LOG": "warn",
                "DATABASE_URL": "sqlite://" + os.path.join(self.tmp, "bench.db"),
            })
            env.update(env_extra or {})
            cmd = [binary]
        elif kind == "tokio":
            cmd = [TOKIO_REF, "0"]
        else:
            cmd = ["node", os.path.join(BENCH_DIR, "node", "server.js"), "0"]
        self.proc = subprocess.Popen(pinned(0, cmd), env=env, cwd=self.tmp, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.addr = wait_listening(self.proc)
        self.url = f"ws://{self.addr}/ws"
        self.secret = SECRET if kind == "ours" else None

    def counters(self):
        """Our error counters from /metrics ({} for the references)."""
        if self.kind != "ours":
            return {}
        with urllib.request.urlopen(f"http://{self.addr}/metrics", timeout=10) as r:
            text = r.read().decode()
        found = {}
        for line in text.splitlines():
            for name in ERROR_COUNTERS:
                if line.startswith(f"realtime_{name}_total{{"):
                    # A labelled family (handshakes refused, by reason)
                    # has a line per label: add them up.
                    found[name] = found.get(name, 0) + int(float(line.split()[-1]))
        return found

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def check_counters(server, where, overloaded=False):
    """Reads our /metrics after a scenario: an integrity row, a problem if
    any error counter moved (`overloaded`: slow-consumer closes are how an
    overloaded server is meant to cope, so they are printed, not problems)."""
    try:
        found = server.counters()
    except OSError as e:
        PROBLEMS.append((server.kind, where, f"/metrics unreadable: {e}"))
        return
    if server.kind != "ours":
        return
    INTEGRITY.append((f"{where}: /metrics error counters", {"ours": ", ".join(
        f"{k} {v}" for k, v in found.items() if v) or "all 0"}))
    for name in ERROR_COUNTERS:
        if name not in found:
            PROBLEMS.append(("ours", where, f"realtime_{name}_total missing from /metrics"))
        elif found[name] and not (overloaded and name == "slow_consumer_closes"):
            PROBLEMS.append(("ours", where, f"realtime_{name}_total = {found[name]}"))


def measure(kind, fn, where, env=None):
    """Starts a server of `kind`, runs `fn` on it, reads our error counters,
    stops it."""
    server = Server(kind, env)
    try:
        result = fn(server)
        check_counters(server, where)
        return result
    finally:
        server.stop()


def gen(scenario, server, where, **opts):
    """One generator run: prints its raw JSON line and returns it as a dict."""
    cmd = [GEN, scenario, "--url", server.url, "--pid", str(server.proc.pid)]
    if server.secret:
        cmd += ["--secret", server.secret]
    for k, v in opts.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    try:
        out = subprocess.run(pinned(1, cmd), capture_output=True, text=True, timeout=300)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        result = {"error": "timed out"}
    except (IndexError, json.JSONDecodeError):
        result = {"error": out.stderr[-300:]}
    print("raw " + json.dumps({"server": server.kind, "row": where, **result}), flush=True)
    if "error" in result:
        PROBLEMS.append((server.kind, where, f"generator: {result['error']}"))
    return result


def integrity(kind, where, r, complete=True):
    """Notes what a run says went wrong. `complete`: every delivery and echo
    is expected, and no connection may be closed (not so on a saturation
    step, where an overloaded server closes slow consumers)."""
    notes = [f"error: {r['error']}"] if "error" in r else []
    for key, what in [("failed", "connections failed"), ("lost", "connections closed by the server"),
                      ("errors", "error replies"), ("unanswered", "sends unanswered")]:
        if r.get(key):
            notes.append(f"{r[key]} {what}")
    for key, what in [("deliveredPct", "delivered"), ("echoedPct", "echoed")]:
        if key in r and complete and r[key] < 100:
            notes.append(f"{r[key]:.3f} % {what}")
    if notes and kind == "ours":
        # A generator error is already a problem (gen() noted it).
        PROBLEMS.extend(("ours", where, n) for n in notes
                        if not n.startswith("error") and (complete or "closed by the server" not in n))
    return "; ".join(notes) or "ok"


def options(args, **defaults):
    """The helper scripts' `--name value` options: `defaults` (each value's
    type is the option's), overridden from `args`; and the other arguments."""
    got, rest, args = dict(defaults), [], list(args)
    while args:
        a = args.pop(0)
        name = a[2:].replace("-", "_") if a.startswith("--") else None
        if name in got:
            got[name] = type(defaults[name])(args.pop(0))
        else:
            rest.append(a)
    return got, rest


def median(values, lowest=False):
    """The median (or the lowest) of the runs that gave a number; None if none did."""
    nums = sorted(v for v in values if isinstance(v, (int, float)))
    if not nums:
        return None
    return nums[0] if lowest else nums[len(nums) // 2]


def require(what, cmd, hint):
    if shutil.which(cmd[0]) is None or subprocess.run(cmd, capture_output=True).returncode != 0:
        sys.exit(f"bench/run.py: {what} does not answer ({' '.join(cmd)}); {hint}. "
                 "The persistence and cross-node rows need it; nothing was run.")


def pg_create():
    name = "rt_bench_" + uuid.uuid4().hex[:12]
    subprocess.run(PG_ADMIN + [f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f"postgres://postgres@127.0.0.1:5432/{name}", name


def pg_drop(name):
    subprocess.run(PG_ADMIN + [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def machine_load(when):
    """The machine's load, for the record: other work shares these cores."""
    print(f"load {when}: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    ps = subprocess.run(["ps", "-eo", "pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True)
    for line in ps.stdout.splitlines()[:6]:
        print(f"load {when}:   {line}")
    sys.stdout.flush()


def main():
    require("PostgreSQL at 127.0.0.1:5432 (user postgres, database test)", PG_ADMIN + ["SELECT 1"],
            "start it (.ci/run shows how)")
    require("Redis at 127.0.0.1:6379", ["redis-cli", "-h", "127.0.0.1", "ping"], "start redis-server")
    build()
    node_dir = os.path.join(BENCH_DIR, "node")
    if shutil.which("npm") and not os.path.isdir(os.path.join(node_dir, "node_modules", "ws")):
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=node_dir)
    have_node = shutil.which("node") and os.path.isdir(os.path.join(node_dir, "node_modules", "ws"))
    if not have_node:
        print("note: no node or no `ws` package: the Node column is empty", flush=True)
    kinds = ["ours", "tokio"] + (["node"] if have_node else [])
    print(f"realtime-server benchmark ({'quick' if QUICK else 'full'}), {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
          f"commit {git_head()}, {os.cpu_count()} cores, servers on core 0, generator on core 1", flush=True)
    machine_load("before")
    started = time.time()
    rows = []  # (figure, {kind: value})
    run_all(rows, kinds)
    machine_load("after")
    print(f"\nwall time {time.time() - started:.0f} s")
    print_table(rows, kinds)
    print_integrity(kinds)
    ours = [p for p in PROBLEMS if p[0] == "ours" or p[2].startswith("generator")]
    if PROBLEMS:
        print("\nproblems:")
        for who, where, what in PROBLEMS:
            print(f"  {who}, {where}: {what}")
    if ours:
        print(f"\nFAILED: {len(ours)} problem(s) with our server or the generator")
        sys.exit(1)
    print("\nno problems with our server")


def persist(rows, d, runs=1):
    """Persisted messages/s (ours only: the references store nothing), on
    SQLite and on PostgreSQL; with `runs` > 1, the median of the runs."""
    senders = 20 if QUICK else 100
    for db in ["sqlite", "postgres"]:
        where = f"persist {senders} senders ({db})"
        rates = []
        for i in range(runs):
            env, name = ({}, None)
            if db == "postgres":
                url, name = pg_create()
                env = {"DATABASE_URL": url}
            run_where = where if runs == 1 else f"{where}, run {i + 1}"
            try:
                r = measure("ours", lambda s: gen("persist", s, run_where, senders=senders, duration=d), run_where, env)
            finally:
                if name:
                    pg_drop(name)
            INTEGRITY.append((run_where, {"ours": integrity("ours", run_where, r)}))
            rates.append(r.get("ackedPerSecond"))
        rows.append((f"persisted message:send acks/s ({db}, {senders} senders)", {"ours": median(rates)}))


def run_all(rows, kinds):
    """Every scenario; appends (figure, {kind: value}) to `rows`."""
    d = 3 if QUICK else 10
    runs = 1 if QUICK else 3  # a p99 (or any rate) compared on one run says little
    if ONLY == "storms":
        storms(rows)
        return
    if ONLY == "graphql":
        graphql_fanout(rows, d, runs)
        return
    if ONLY == "persist":
        persist(rows, d, runs)
        return
    if ONLY:
        sys.exit(f"bench/run.py: --only {ONLY}: only `storms`, `graphql` and `persist` are known")

    # Handshakes: alternating servers, median of the runs.
    hs = {k: [] for k in kinds}
    for i in range(runs):
        for kind in kinds:
            where = f"handshakes, run {i + 1}"
            r = measure(kind, lambda s: gen("handshake", s, where, duration=d), where)
            INTEGRITY.append((where, {kind: integrity(kind, where, r)}))
            hs[kind].append(r)
    rows.append((f"handshakes/s, median of {runs} x {d} s",
                 {k: median([r.get("perSecond") for r in v]) for k, v in hs.items()}))
    rows.append((f"handshakes: server CPU us/handshake, median of {runs}",
                 {k: median([r.get("serverCpuUsPerHandshake") for r in v]) for k, v in hs.items()}))

    idle_conns, idle_secs = (200, 1) if QUICK else (19000, 60)
    where = f"idle {idle_conns} conns"
    values = {k: measure(k, lambda s: gen("idle", s, where, conns=idle_conns, duration=idle_secs), where)
              for k in kinds}
    INTEGRITY.append((where, {k: integrity(k, where, r) for k, r in values.items()}))
    rows.append((f"idle RSS KiB/conn ({idle_conns} conns, after connect)",
                 {k: r.get("rssKibPerConnAfterConnect") for k, r in values.items()}))
    rows.append((f"idle RSS KiB/conn ({idle_conns} conns, after {idle_secs} s idle)",
                 {k: r.get("rssKibPerConnAfterIdle") for k, r in values.items()}))

    # A burst: every connection sends 16 x 8,000-character messages into a
    # room of its own and reads them back; do the buffers shrink back?
    burst_conns, burst_idle = (200, 3) if QUICK else (2000, 40)
    where = f"burst {burst_conns} conns"
    values = {k: measure(k, lambda s: gen("burst", s, where, conns=burst_conns, count=16, size=8000,
                                          duration=burst_idle), where) for k in kinds}
    INTEGRITY.append((where, {k: integrity(k, where, r) for k, r in values.items()}))
    for key, label in [("rssKibPerConnBefore", "before"), ("rssKibPerConnAfterBurst", "right after"),
                       ("rssKibPerConnAfterIdle", f"{burst_idle} s after")]:
        rows.append((f"burst RSS KiB/conn ({burst_conns} conns x 125 KiB), {label}",
                     {k: r.get(key) for k, r in values.items()}))

    # Fan-out at fixed rates every server should keep up with: latency
    # (stamped at the due time) and CPU, over alternating runs.
    fanouts = [(200, 100)] if QUICK else [(1000, 20), (5000, 100)]
    for subs, rate in fanouts:
        got = {k: [] for k in kinds}
        for i in range(runs):
            for kind in kinds:
                where = f"fan-out {subs} x {rate} msg/s, run {i + 1}"
                r = measure(kind, lambda s: gen("fanout", s, where, subs=subs, rate=rate, duration=d), where)
                INTEGRITY.append((where, {kind: integrity(kind, where, r)}))
                got[kind].append(r)
        name = f"fan-out 1 room x {subs} @ {rate} msg/s"
        med = f"median of {runs}" if runs > 1 else "1 run"

        def col(key, lowest=False):
            return {k: median([r.get(key) for r in rs], lowest) for k, rs in got.items()}
        rows.append((f"{name}: offered deliveries/s", col("offeredPerSecond")))
        rows.append((f"{name}: delivered %, lowest of {runs}", col("deliveredPct", lowest=True)))
        rows.append((f"{name}: drain ms after the last send, {med}", col("drainMs")))
        for key, what in [("p50us", "p50"), ("p99us", "p99"), ("p999us", "p999")]:
            rows.append((f"{name}: {what} us from due time, {med}", col(key)))
        rows.append((f"{name}: server CPU us/delivery, {med}", col("serverCpuUsPerDelivery")))

    graphql_fanout(rows, d, runs)

    if not QUICK:
        saturation(rows, kinds)

    persist(rows, d)
    storms(rows)
    cross_node(rows, d)


# The records a connection leaves: a row in `connections` (closed: with
# disconnected_at) and the audit events `connect` and `disconnect`.
RECORDS_SQL = ("SELECT (SELECT count(*) FROM connections), "
               "(SELECT count(*) FROM connections WHERE disconnected_at IS NOT NULL), "
               "(SELECT count(*) FROM audit_events WHERE kind = 'connect'), "
               "(SELECT count(*) FROM audit_events WHERE kind = 'disconnect')")


def records(server, pg_name):
    """What a stopped server of ours wrote: (connections, closed, connect,
    disconnect), from its SQLite file or its PostgreSQL database."""
    if pg_name:
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", pg_name, "-tAc", RECORDS_SQL],
                             capture_output=True, text=True, check=True).stdout
        return tuple(int(x) for x in out.strip().split("|"))
    db = sqlite3.connect(os.path.join(server.tmp, "bench.db"))
    try:
        return db.execute(RECORDS_SQL).fetchone()
    finally:
        db.close()


def storms(rows):
    """Connection storms (ours only: the references store nothing). Per
    database: a storm in and out, then a storm kept open while the server
    gets SIGTERM (1001 for every connection); then, the server gone, every
    connection's records must be in the database. Then a join storm into
    one room on a fresh server, its time next to the plain storm's."""
    conns = 200 if QUICK else 19000
    plain_secs = None
    for db in ["sqlite", "postgres"]:
        where = f"storm {conns} conns ({db})"
        env, name = ({}, None)
        if db == "postgres":
            url, name = pg_create()
            env = {"DATABASE_URL": url}
        server = None
        try:
            server = Server("ours", env)
            r = gen("storm", server, f"{where}, in and out", conns=conns)
            notes = integrity("ours", f"{where}, in and out", r)
            if r.get("closeFailed"):
                notes = f"{r['closeFailed']} closes not clean" if notes == "ok" else notes
                PROBLEMS.append(("ours", where, f"{r['closeFailed']} close handshakes not clean within 10 s"))
            INTEGRITY.append((f"{where}, in and out", {"ours": notes}))
            check_counters(server, where)
            t = gen("storm", server, f"{where}, SIGTERM", conns=conns, sigterm_after_open=1)
            integrity("ours", f"{where}, SIGTERM", t)
            codes = t.get("closeCodes", {})
            opened = t.get("connections", 0)
            INTEGRITY.append((f"{where}, SIGTERM: close codes", {"ours": ", ".join(
                f"{c}: {n}" for c, n in codes.items()) + f" (of {opened} open)"}))
            if codes.get("1001", 0) != opened:
                PROBLEMS.append(("ours", where, f"SIGTERM: close codes {codes}, expected 1001 x {opened}"))
            try:
                exit_code = server.proc.wait(timeout=60)
                if exit_code:
                    PROBLEMS.append(("ours", where, f"exit status {exit_code} after SIGTERM"))
            except subprocess.TimeoutExpired:
                PROBLEMS.append(("ours", where, "still running 60 s after SIGTERM"))
            expected = r.get("connections", 0) + opened
            got = records(server, name)
            INTEGRITY.append((f"{where}: records written vs expected", {"ours": (
                f"connections {got[0]}/{expected}, closed {got[1]}/{expected}, "
                f"audit connect {got[2]}/{expected}, disconnect {got[3]}/{expected}")}))
            for n, what in zip(got, ["connections rows", "connections closed", "audit connect", "audit disconnect"]):
                if n != expected:
                    PROBLEMS.append(("ours", where, f"{what}: {n} written, {expected} expected"))
            rows.append((f"storm {conns} conns ({db}): connections/s in", {"ours": r.get("openedPerSecond")}))
            rows.append((f"storm {conns} conns ({db}): connections/s out (clean close)",
                         {"ours": r.get("closedPerSecond")}))
            rows.append((f"storm {conns} conns ({db}): SIGTERM, ms until the last 1001",
                         {"ours": t["closeSecs"] * 1e3 if "closeSecs" in t else None}))
            rows.append((f"storm {conns} conns ({db}): records lost",
                         {"ours": sum(max(0, expected - n) for n in got)}))
            if db == "sqlite":
                plain_secs = r.get("openSecs")
        finally:
            if server:
                server.stop()
            if name:
                pg_drop(name)

    where = f"join storm {conns} conns, 1 room"
    j = measure("ours", lambda s: gen("joinstorm", s, where, conns=conns), where)
    notes = integrity("ours", where, j)
    if j.get("joinFailed"):
        PROBLEMS.append(("ours", where, f"{j['joinFailed']} joins failed"))
        notes = f"{j['joinFailed']} joins failed" + ("" if notes == "ok" else "; " + notes)
    # room:join lists at most limits.join_members_max (100 by default) members.
    if j.get("membersListedMax", 0) > 100:
        PROBLEMS.append(("ours", where, f"a join reply listed {j['membersListedMax']} members (max 100)"))
    INTEGRITY.append((where, {"ours": notes}))
    join_secs = j.get("openSecs")
    ms = lambda secs: secs * 1e3 if isinstance(secs, (int, float)) else None
    rows.append((f"join storm {conns} conns (sqlite): ms to open and join all", {"ours": ms(join_secs)}))
    rows.append((f"plain storm {conns} conns (sqlite): ms to open all", {"ours": ms(plain_secs)}))
    rows.append(("join storm time / plain storm time (target <= 2x)", {"ours": ratio(join_secs, plain_secs)}))
    rows.append((f"join storm: largest join reply bytes (members listed <= 100 of {j.get('memberCountMax')})",
                 {"ours": j.get("replyBytesMax")}))
    rows.append(("join storm: mean join reply bytes",
                 {"ours": j["replyBytesTotal"] / max(1, j.get("connections", 0)) if "replyBytesTotal" in j else None}))


def saturation(rows, kinds):
    """Raises the offered rate into one room of 1,000 until fewer than
    99.9 % of the deliveries arrive within a second of the last send."""
    subs, step_secs, rates = 1000, 5, [100, 200, 500, 1000, 1500, 2000, 3000]
    best, first_fail, steps = {}, {}, {k: {} for k in kinds}
    for kind in kinds:
        server = Server(kind)
        try:
            for rate in rates:
                where = f"saturation {subs} x {rate} msg/s"
                r = gen("fanout", server, where, subs=subs, rate=rate, duration=step_secs)
                steps[kind][rate] = r
                INTEGRITY.append((where, {kind: integrity(kind, where, r, complete=False)}))
                if r.get("deliveredPct", 0) >= 99.9:
                    best[kind] = r.get("offeredPerSecond")
                else:
                    first_fail[kind] = r
                    break
            check_counters(server, f"saturation {subs} subs", overloaded=True)
        finally:
            server.stop()
    for rate in rates:
        rows.append((f"saturation 1 room x {subs} @ {rate} msg/s ({step_secs} s): delivered %",
                     {k: steps[k][rate].get("deliveredPct") for k in kinds if rate in steps[k]}))
    for kind in kinds:
        if kind not in best and rates[0] in steps[kind]:
            best[kind] = f"< {fmt(steps[kind][rates[0]].get('offeredPerSecond'))}"
    rows.append(("saturation: highest offered deliveries/s with >= 99.9 % delivered", best))
    rows.append(("saturation: at the first step below 99.9 %, generator CPU %",
                 {k: r.get("generatorCpuPct") for k, r in first_fail.items()}))


def graphql_fanout(rows, d, runs):
    """Subscription fan-out through /graphql (graphql-transport-ws,
    messageAdded) beside the same through /ws: ours only, the same size,
    alternating runs on fresh servers; the ratios are graphql / ws."""
    subs, rate = (200, 100) if QUICK else (1000, 100)
    got = {"ws": [], "graphql": []}
    for i in range(runs):
        for path, scenario in [("ws", "fanout"), ("graphql", "gqlfanout")]:
            where = f"fan-out over /{path} {subs} x {rate} msg/s, run {i + 1}"
            r = measure("ours", lambda s: gen(scenario, s, where, subs=subs, rate=rate, duration=d), where)
            INTEGRITY.append((where, {"ours": integrity("ours", where, r)}))
            got[path].append(r)
    med = f"median of {runs}" if runs > 1 else "1 run"
    name = f"fan-out 1 room x {subs} @ {rate} msg/s"
    for key, what, lowest in [("deliveredPct", f"delivered %, lowest of {runs}", True),
                              ("p50us", f"p50 us from due time, {med}", False),
                              ("p99us", f"p99 us from due time, {med}", False),
                              ("serverCpuUsPerDelivery", f"server CPU us/delivery, {med}", False)]:
        ws = median([r.get(key) for r in got["ws"]], lowest)
        gql = median([r.get(key) for r in got["graphql"]], lowest)
        rows.append((f"{name} over /ws: {what}", {"ours": ws}))
        rows.append((f"{name} over /graphql: {what}", {"ours": gql}))
        if key != "deliveredPct":
            rows.append((f"{name}: {what.split(',')[0]}, /graphql / /ws", {"ours": ratio_num(gql, ws)}))


def ratio_num(a, b):
    """a / b as a number, or None."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return a / b
    return None


def cross_node(rows, d):
    """Publisher on node A, subscribers on node B, Redis between; the two
    paths alternate and each row is the median of its runs."""
    url, name = pg_create()
    prefix = "rt-bench-" + uuid.uuid4().hex[:8]
    env = {"DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:6379", "REALTIME__REDIS__PREFIX": prefix}
    a = b = None
    try:
        a = Server("ours", dict(env, REALTIME_NODE_ID="bench-a"))
        b = Server("ours", dict(env, REALTIME_NODE_ID="bench-b"))
        time.sleep(1.5)
        subs = 200 if QUICK else 1000
        pairs = 1 if QUICK else 3
        cross, local = [], []
        for i in range(pairs):
            for runs, path, pub in [(cross, "via Redis", a.url), (local, "same node", b.url)]:
                where = f"cross-node {path}, run {i + 1}"
                r = gen("fanout", b, where, subs=subs, rate=20, duration=d, pub_url=pub)
                INTEGRITY.append((where, {"ours": integrity("ours", where, r)}))
                runs.append(r)
        check_counters(a, "cross-node, node A")
        check_counters(b, "cross-node, node B")
        for key, what in [("p50us", "p50"), ("p99us", "p99")]:
            for runs, path in [(local, "same node"), (cross, "via Redis")]:
                rows.append((f"cross-node {what} us ({subs} subs @ 20 msg/s), {path}, median of {pairs}",
                             {"ours": median([r.get(key) for r in runs])}))
        rows.append(("cross-node delivered %, lowest run",
                     {"ours": median([r.get("deliveredPct") for r in cross + local], lowest=True)}))
    finally:
        for server in (a, b):
            if server:
                server.stop()
        pg_drop(name)


def git_head():
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    return f"{v:,}"


def fmt_pct(v):
    """A delivered %: 99.96 must not print as 100."""
    return f"{v:.3f}" if isinstance(v, float) else fmt(v)


def ratio(a, b):
    """a / b for the table, or "-"."""
    r = ratio_num(a, b)
    return "-" if r is None else f"{r:.2f}x"


def table(header, lines):
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    for i, r in enumerate([header] + lines):
        print("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def print_table(rows, kinds):
    print("\nfigures (ratios: ours / reference, same run)\n")
    lines = []
    for label, values in rows:
        ours, tok, nod = values.get("ours"), values.get("tokio"), values.get("node")
        cells = [fmt_pct(v) if "delivered %" in label else fmt(v) for v in (ours, tok, nod)]
        lines.append([label] + cells + [ratio(ours, tok), ratio(ours, nod)])
    table(["figure", "ours", "tokio limit", "node ws", "ours/tokio", "ours/node"], lines)


def print_integrity(kinds):
    print("\nintegrity (per scenario and server; '-': not run)\n")
    merged = {}
    for label, values in INTEGRITY:
        merged.setdefault(label, {}).update(values)
    table(["scenario", "ours", "tokio limit", "node ws"],
          [[label] + [values.get(k, "-") for k in ("ours", "tokio", "node")] for label, values in merged.items()])


if __name__ == "__main__":
    main()
