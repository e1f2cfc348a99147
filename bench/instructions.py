#!/usr/bin/env python3
"""Instructions the server executes in one generator run, counted by
valgrind's callgrind: a figure that does not depend on the machine's load,
for comparing two builds on a shared machine (user space only: the
kernel's part of a write is not counted, see bench/syscalls.py).

    python3 bench/instructions.py LABEL BINARY SCENARIO DURATION OUTDIR [generator options]

e.g. `... old ./old-server fanout 20 /tmp/cg --subs 100 --rate 2 --drain 20`.
Prints (and appends to OUTDIR/results.jsonl) the total instruction count
with the generator's JSON. Per delivery or per message is the difference
of two runs that differ only in the load (rate or duration) divided by the
difference of what they delivered, so start-up and connecting cancel out.
Under callgrind the server runs ~50x slower: keep the load far below
saturation (fan-out: ~1,000 deliveries/s), or batching changes what is
counted. Build the generator first (run.py does); the binary should be a
release build, `CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` for
callgrind_annotate to name functions.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import run


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    label, binary, scenario, duration, outdir = sys.argv[1:6]
    extra = sys.argv[6:]
    binary, outdir = os.path.abspath(binary), os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, f"callgrind.{label}.{scenario}.{duration}.{int(time.time())}")
    tmp = tempfile.mkdtemp(prefix="rt-cg-")
    env = dict(os.environ, REALTIME_CONFIG=os.path.join(run.BENCH_DIR, "bench.toml"),
               REALTIME_JWT_SECRET=run.SECRET, REALTIME_PORT="0", RUST_LOG="warn",
               DATABASE_URL="sqlite://" + os.path.join(tmp, "bench.db"))
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary],
                            env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = run.wait_listening(proc)
        r = subprocess.run([run.GEN, scenario, "--url", f"ws://{addr}/ws", "--pid", str(proc.pid),
                            "--secret", run.SECRET, "--duration", duration] + extra,
                           capture_output=True, text=True, timeout=1800)
        result = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
    total = next(int(line.split()[1]) for line in open(out)
                 if line.startswith(("summary:", "totals:")))
    line = json.dumps({"label": label, "scenario": scenario, "duration": int(duration),
                       "options": extra, "instructions": total, "raw": result})
    print(line, flush=True)
    with open(os.path.join(outdir, "results.jsonl"), "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
