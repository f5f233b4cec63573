#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Side-by-side microbenchmarks: weft against Boost.Context, ucontext and Go.

`./dev bench` calls this. It builds the peer programs in bench/peers/ into
<build-dir>/bench-peers/ before any timing, then runs every case once per
run, interleaved (weft, then its peers, then the next case) so that drift
in machine state hits all rows alike, pinned with taskset to the CPUs that
match the worker count. It reports the median, min and max of the runs, the
peer/weft ratio, and PASS/FAIL for weft's performance goals.

Standard library only. Exit status: 0 when every measurement ran (goal
results do not change it), 1 when weft is missing or a measurement failed,
2 on bad usage.
"""

import argparse
import datetime
import os
import shlex
import shutil
import statistics
import subprocess
import sys

import benchlib
from benchlib import fmt, log, ratio, row_status, run_build

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_SRC = os.path.join(HERE, "peers")

# A single run should take well under a second; this only catches hangs.
RUN_TIMEOUT_S = 300

# Pinning: one-worker cases all use CPU 1, leaving CPU 0 to the rest of the
# system; two-worker cases get both CPUs of the 2-core target machine.
CPUS = {1: "1", 2: "0,1"}


class Row:
    """One line of a case: a program, its arguments and how to pin it."""

    def __init__(self, key, label, peer, argv, workers, unit, env=None,
                 extras=()):
        self.key = key          # stable JSON key
        self.label = label      # table text
        self.peer = peer        # None for weft, else "boost", "ucontext", "go"
        self.argv = argv        # argv after the binary path
        self.workers = workers
        self.unit = unit        # expected key of the last stdout line
        self.env = env or {}
        self.extras = extras    # more key=value figures to keep, per run
        self.samples = []
        self.steals = []
        self.extra = {k: [] for k in extras}
        self.error = None       # set once a run fails; later runs are skipped
        self.skipped = None     # reason a peer could not be built
        self.binary = None
        self.cmdline = None     # shell-quoted, for the record

    def command(self):
        return ["taskset", "-c", CPUS[self.workers], self.binary] + self.argv

    def set_binary(self, binary, skipped=None):
        self.binary, self.skipped = binary, skipped
        if not skipped:
            env = [f"{k}={v}" for k, v in sorted(self.env.items())]
            self.cmdline = shlex.join(env + self.command())


def weft(name, workers, n, unit="ns_per_op", args=(), extras=(), key="weft",
         label=""):
    return Row(key, f"weft -w{workers}{label}", None,
               [name, "-n", str(n), "-w", str(workers)] + list(args), workers,
               unit, extras=extras)


def gorow(name, procs, n, unit="ns_per_op", args=(), extras=()):
    return Row("go", f"go P={procs}", "go",
               [name, "-n", str(n)] + list(args), procs, unit,
               {"GOMAXPROCS": str(procs)}, extras)


# The timer cases (`--only timers` selects them all).  Lateness rows report
# p99 as their figure and p50, p99.9 and max beside it; --pending P parks P
# more sleepers (an hour long) first, so the heap holds P timers.  The rows
# with a million pending take ~20 s a run (a million task stacks to map and
# unmap), so they run only when named (--only, or --heavy).
LATENESS = ("p50_ns", "p999_ns", "max_ns")


def pending(p):
    return ["--pending", str(p)] if p else []


def go_pending(p):
    return ["-pending", str(p)] if p else []


TIMER_CASES = [
    ("timers-100k", "timer add + fire, 100,000 pending (io/timer.c alone)", [
        weft("timers", 1, 100_000, extras=("cpu_ns_per_op",)),
    ]),
    ("timers-1m", "timer add + fire, 1,000,000 pending (io/timer.c alone)", [
        weft("timers", 1, 1_000_000, extras=("cpu_ns_per_op",)),
    ]),
] + [
    (f"sleep-lateness{suffix}",
     f"10,000 tasks x 10 sleeps of 1-100 ms{title}: p99 ns late", [
         weft("sleep-lateness", 1, 10_000, "p99_ns", pending(p), LATENESS),
         gorow("sleep-lateness", 1, 10_000, "p99_ns", go_pending(p), LATENESS),
     ])
    for suffix, title, p in [("", "", 0),
                             ("-100k", ", 100,000 more pending", 100_000),
                             ("-1m", ", 1,000,000 more pending", 1_000_000)]
] + [
    ("scope", "deadline scope entered and left, nothing inside (Go: "
     "context.WithTimeout + cancel)", [
         weft("scope", 1, 20_000_000),
         gorow("scope", 1, 2_000_000),
     ]),
    ("pingpong-deadline", "channel handoff, 1 worker, each receive under a "
     "1 s timeout that does not expire, one-way", [
         weft("pingpong-deadline", 1, 2_000_000, extras=("max_round_trip_ns",)),
         # The baseline the timeouts add to: its ratio reads "without/with".
         weft("pingpong", 1, 2_000_000, key="weft-no-timeout",
              label=", no timeout"),
         gorow("pingpong-deadline", 1, 2_000_000),
     ]),
    ("pingpong-deadline-1m", "the same with 1,000,000 sleepers pending", [
        weft("pingpong-deadline", 1, 2_000_000, args=pending(1_000_000),
             extras=("max_round_trip_ns",)),
        gorow("pingpong-deadline", 1, 2_000_000, args=go_pending(1_000_000)),
    ]),
]
HEAVY = {"sleep-lateness-1m", "pingpong-deadline-1m"}


# N per program: chosen so one run takes about 0.2-1 s on the 2-core target.
# ns_per_op is per operation, so rows of a case may use different N: the
# swapcontext peer is ~40x slower than fcontext, and one fib(30) already
# takes about a second in Go.
CASES = [
    ("switch", "context switch, one-way", [
        weft("switch", 1, 50_000_000),
        Row("boost", "boost fcontext", "boost", ["-n", "50000000"], 1,
            "ns_per_op"),
        Row("ucontext", "glibc swapcontext", "ucontext", ["-n", "2000000"], 1,
            "ns_per_op"),
    ]),
    ("yield", "yield, 2 tasks on 1 worker, per yield", [
        weft("yield", 1, 10_000_000),
        gorow("yield", 1, 10_000_000),
    ]),
    ("spawn-w1", "spawn + join empty task, 1 worker", [
        weft("spawn", 1, 1_000_000),
        gorow("spawn", 1, 1_000_000),
    ]),
    ("spawn-w2", "spawn + join empty task, 2 workers", [
        weft("spawn", 2, 1_000_000),
        gorow("spawn", 2, 1_000_000),
    ]),
    ("pingpong", "channel handoff, same worker, one-way", [
        weft("pingpong", 1, 2_000_000),
        gorow("pingpong", 1, 2_000_000),
    ]),
    # Same conditions as Go's P=2: two workers, the runtime places the tasks.
    ("pingpong-w2", "channel handoff, 2 workers, free placement, one-way", [
        weft("pingpong", 2, 2_000_000),
        gorow("pingpong", 2, 2_000_000),
    ]),
    # Every receive a select over its channel and a quit channel that never
    # goes: the plain row beside it shows what the select adds.
    ("pingpong-select", "channel handoff, same worker, each receive a select of "
     "two, one-way", [
         weft("pingpong-select", 1, 2_000_000),
         weft("pingpong", 1, 2_000_000, key="weft-plain", label=", plain receive"),
         gorow("pingpong-select", 1, 2_000_000),
     ]),
    # Forced across workers (tasks pinned to workers 0 and 1): the receiver
    # is parked in its channel receive, its worker polling or asleep ...
    ("pingpong-cross", "channel handoff, pinned to 2 workers, receiver parked", [
        weft("pingpong-cross", 2, 500_000),
    ]),
    # ... or the receiver itself spins on try-receive, never parking.
    ("pingpong-cross-spin", "channel handoff, pinned to 2 workers, receiver spinning", [
        weft("pingpong-cross-spin", 2, 2_000_000),
    ]),
    ("forkjoin-w1", "fib(30), spawn+join per call, 1 worker, per fib(30)", [
        weft("forkjoin", 1, 3),
        gorow("forkjoin", 1, 1),
    ]),
    ("forkjoin-w2", "fib(30), spawn+join per call, 2 workers, per fib(30)", [
        weft("forkjoin", 2, 3),
        gorow("forkjoin", 2, 1),
    ]),
    ("parked", "100000 tasks blocked on a channel, RSS per task", [
        weft("parked", 1, 100_000, "bytes_per_task"),
        gorow("parked", 1, 100_000, "bytes_per_task"),
    ]),
] + TIMER_CASES


# --- building the peers -----------------------------------------------------

def build_cc(compiler, src, out, libs):
    if shutil.which(compiler) is None:
        return f"{compiler} not found"
    cmd = [compiler, "-O2", "-o", out, src] + libs
    return run_build(cmd, None)


def build_peers(build_dir, needed):
    """Returns {peer: (binary path, skip reason or None)}."""
    # Absolute: go build runs in the module dir and GOCACHE must be absolute.
    out_dir = os.path.abspath(os.path.join(build_dir, "bench-peers"))
    os.makedirs(out_dir, exist_ok=True)
    peers = {}
    if "boost" in needed:
        out = os.path.join(out_dir, "boost_switch")
        peers["boost"] = (out, build_cc(
            "g++", os.path.join(PEERS_SRC, "boost_switch.cc"), out,
            ["-lboost_context"]))
    if "ucontext" in needed:
        out = os.path.join(out_dir, "ucontext_switch")
        peers["ucontext"] = (out, build_cc(
            "gcc", os.path.join(PEERS_SRC, "ucontext_switch.c"), out, []))
    if "go" in needed:
        out = os.path.join(out_dir, "gobench")
        peers["go"] = (out, benchlib.go_build(
            out, out_dir, os.path.join(PEERS_SRC, "go")))
    return peers


# --- running ----------------------------------------------------------------

def run_once(row):
    """Runs one measurement; records a sample or the error."""
    env = os.environ.copy()
    env.update(row.env)
    try:
        res = subprocess.run(row.command(), env=env, capture_output=True,
                             text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        row.error = f"timed out after {RUN_TIMEOUT_S} s"
        return
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or lines or ["no output"])[-1]
        row.error = f"exit {res.returncode}: {tail}"
        return
    key, _, value = (lines[-1] if lines else "").partition("=")
    try:
        if key != row.unit:
            raise ValueError
        row.samples.append(float(value))
    except ValueError:
        row.error = f"last line is not {row.unit}=<float>: {lines[-1:]}"
        return
    # weft prints steals= (possibly inside a longer line, possibly twice);
    # the last one is this run's count.
    steals = [tok for ln in lines for tok in ln.split()
              if tok.startswith("steals=")]
    if steals:
        row.steals.append(int(steals[-1].partition("=")[2]))
    for key in row.extras:
        found = [tok.partition("=")[2] for ln in lines for tok in ln.split()
                 if tok.startswith(key + "=")]
        try:
            row.extra[key].append(float(found[-1]))
        except (IndexError, ValueError):
            row.error = f"no {key}=<float> in the output"
            return


def summary(row):
    if not row.samples or row.error:
        return None
    return benchlib.spread(row.samples)


def median_of(cases, case, key):
    for name, _, rows in cases:
        if name == case:
            for row in rows:
                if row.key == key and summary(row):
                    return summary(row)["median"]
    return None


# --- goals ------------------------------------------------------------------

def goals(cases):
    """Each goal: (text, value, target, passed or None when data is missing)."""
    def m(case, key):
        return median_of(cases, case, key)

    out = benchlib.Goals()
    check = out.check
    check("switch no slower than Boost fcontext (boost/weft >= 1.0)",
          ratio(m("switch", "boost"), m("switch", "weft")), 1.0,
          lambda v: v >= 1.0)
    check("spawn+join >= 8x faster than Go, 1 worker (go/weft)",
          ratio(m("spawn-w1", "go"), m("spawn-w1", "weft")), 8.0,
          lambda v: v >= 8.0)
    check("spawn+join >= 3x faster than Go, 2 workers (go/weft)",
          ratio(m("spawn-w2", "go"), m("spawn-w2", "weft")), 3.0,
          lambda v: v >= 3.0)
    check("same-worker handoff >= 5x faster than Go P=1 (go/weft)",
          ratio(m("pingpong", "go"), m("pingpong", "weft")), 5.0,
          lambda v: v >= 5.0)
    check("2-worker handoff faster than Go P=2 (go/weft > 1.0)",
          ratio(m("pingpong-w2", "go"), m("pingpong-w2", "weft")), 1.0,
          lambda v: v > 1.0)
    check("forkjoin speedup 1 -> 2 workers >= 1.8x (w1/w2)",
          ratio(m("forkjoin-w1", "weft"), m("forkjoin-w2", "weft")), 1.8,
          lambda v: v >= 1.8)
    check("parked task <= 8192 bytes",
          m("parked", "weft"), 8192.0, lambda v: v <= 8192.0)
    return out


# --- reporting --------------------------------------------------------------

def text_report(meta, cases, goal_list):
    benchlib.print_preamble(meta, "median, min, max over runs; interleaved")
    print("ratio = peer/weft median; lower is better for every unit, "
          "so ratio > 1 means weft wins")
    print()
    print("commands (one run of each row):")
    for _, _, rows in cases:
        for row in rows:
            if row.cmdline:
                print("  " + row.cmdline)
    print()
    head = ("case", "row", "unit", "median", "min", "max", "ratio")
    widths = (20, 18, 14, 12, 12, 12, 8)
    line = "  ".join(h.ljust(w) if i < 3 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(head, widths)))
    print(line)
    print("-" * len(line))
    for name, title, rows in cases:
        weft_s = summary(rows[0])
        for i, row in enumerate(rows):
            s = summary(row)
            cells = [name if i == 0 else "", row.label, row.unit]
            status = row_status(row)
            if status:
                print("  ".join(c.ljust(w) for c, w in
                                zip(cells, widths)) + "  " + status)
                continue
            r = ratio(s["median"], weft_s and weft_s["median"])
            cells += [fmt(s["median"]), fmt(s["min"]), fmt(s["max"]),
                      "-" if r is None else f"{r:.2f}x"]
            print("  ".join(c.ljust(w) if j < 3 else c.rjust(w)
                            for j, (c, w) in enumerate(zip(cells, widths))))
            if row.steals:
                print(f"{'':20}  {row.label}: steals per run, median "
                      f"{statistics.median(row.steals):.0f}")
            if row.extras:
                print(f"{'':20}  {row.label}: " + ", ".join(
                    f"{k} {fmt(statistics.median(v))}"
                    for k, v in row.extra.items() if v) + " (medians)")
        print(f"{'':20}  ({title})")
    for key, value in meta["derived"].items():
        print(f"{key} (forkjoin median w1/w2): {value:.2f}x")
    print()
    benchlib.print_goals("goals:", goal_list, fmt)


def json_report(meta, cases, goal_list):
    doc = {}
    for name, title, rows in cases:
        weft_s = summary(rows[0])
        out_rows = {}
        for row in rows:
            s = summary(row)
            entry = {
                "label": row.label,
                "workers": row.workers,
                "unit": row.unit,
                "status": benchlib.status_word(row),
                "reason": row.skipped or row.error,
                "command": row.cmdline,
                "samples": row.samples,
                "median": s and s["median"],
                "min": s and s["min"],
                "max": s and s["max"],
                "ratio": ratio(s and s["median"],
                               weft_s and weft_s["median"]),
            }
            if row.steals:
                entry["steals"] = row.steals
            for key, values in row.extra.items():
                entry[key] = values
            out_rows[row.key] = entry
        doc[name] = {"title": title, "rows": out_rows}
    benchlib.print_json(meta, doc, goal_list)


def main():
    names = [c[0] for c in CASES]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build",
                    help="meson build dir holding bench/weft-microbench")
    ap.add_argument("--runs", type=int, default=5,
                    help="runs per row; the median is reported (default 5)")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object instead of the table")
    ap.add_argument("--only", metavar="CASE[,CASE]",
                    help="cases to run: " + ", ".join(names) +
                    " (spawn and forkjoin select both worker counts; "
                    "timers selects every timer case)")
    ap.add_argument("--heavy", action="store_true",
                    help="also run the slow cases, left out unless named: " +
                    ", ".join(sorted(HEAVY)))
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    timer_names = {c[0] for c in TIMER_CASES}

    def selects(w, n):
        return (n == w or n.startswith(w + "-w") or
                (w == "timers" and n in timer_names))

    cases = [c for c in CASES if args.heavy or c[0] not in HEAVY]
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        for w in wanted:
            if not any(selects(w, n) for n in names):
                ap.error(f"unknown case {w!r}; known: {', '.join(names)}")
        # A heavy case named outright runs; "timers" alone leaves them out
        # unless --heavy.
        cases = [c for c in CASES
                 if any(selects(w, c[0]) for w in wanted) and
                 (c[0] not in HEAVY or args.heavy or c[0] in wanted)]

    weft_bin = os.path.join(args.build_dir, "bench", "weft-microbench")
    if not os.access(weft_bin, os.X_OK):
        log(f"error: weft benchmark binary not found: {weft_bin}\n"
            f"build it first (meson setup {args.build_dir} && "
            f"ninja -C {args.build_dir})")
        return 1
    if not benchlib.need_taskset("runs"):
        return 1

    needed = {row.peer for _, _, rows in cases for row in rows if row.peer}
    peers = build_peers(args.build_dir, needed)
    for name, (_, reason) in sorted(peers.items()):
        if reason:
            log(f"peer {name}: skipped ({reason})")

    for _, _, rows in cases:
        for row in rows:
            row.set_binary(*(peers[row.peer] if row.peer else (weft_bin,)))

    date = datetime.datetime.now(datetime.timezone.utc)
    for r in range(1, args.runs + 1):
        log(f"run {r}/{args.runs}")
        for name, _, rows in cases:
            for row in rows:
                if row.skipped or row.error:
                    continue
                log(f"  {name}: {row.label}")
                run_once(row)
                if row.error:
                    log(f"    failed: {row.error}")

    derived = {}
    for key in ("weft", "go"):
        w1 = median_of(cases, "forkjoin-w1", key)
        w2 = median_of(cases, "forkjoin-w2", key)
        if w1 and w2:
            derived[f"forkjoin_speedup_{key}"] = w1 / w2
    meta = benchlib.base_meta(date, args.runs)
    meta.update({"build_dir": args.build_dir, "derived": derived})
    goal_list = goals(cases)
    if args.json:
        json_report(meta, cases, goal_list)
    else:
        text_report(meta, cases, goal_list)

    failed = any(row.error for _, _, rows in cases for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
