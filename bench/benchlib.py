# SPDX-License-Identifier: MIT
"""What weft's benchmark drivers share, kept in one place.

compare.py (bench/), netbench.py (bench/net/) and proxybench.py
(bench/proxy/) all build helper programs, start and stop servers by PID,
reduce runs to median/min/max, check goals and print the same kind of
report; this module holds that common part so the three agree and a fix
lands once.  The two drivers in sub-directories put bench/ on sys.path to
import it.

Standard library only, like the drivers themselves.
"""

import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's latency units, in microseconds.
UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- host and environment ---------------------------------------------------

def add_common_args(ap, binary, cases):
    """--build-dir, --runs and --only on an argparse parser, as every
    driver spells them; `binary` is what the build dir must hold."""
    ap.add_argument("--build-dir", default="build",
                    help=f"meson build dir holding {binary} (default: build)")
    ap.add_argument("--runs", type=int, default=5,
                    help="runs per row; the median is reported (default 5)")
    ap.add_argument("--only", metavar="CASE[,CASE]",
                    help=f"some of {','.join(cases)} (default: all)")


def need_taskset(what):
    """True when taskset is there, else logs why `what` cannot be pinned."""
    if shutil.which("taskset") is None:
        log(f"error: taskset not found (util-linux); needed to pin {what}")
        return False
    return True


def can_pin_apart(what):
    """True when taskset is there and CPUs 0 and 1 are ours, else logs why
    `what` cannot be pinned apart."""
    if not need_taskset(what):
        return False
    if not {0, 1} <= os.sched_getaffinity(0):
        log(f"error: needs CPUs 0 and 1 to pin {what} apart")
        return False
    return True


def host_line():
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return f"{platform.node()} {platform.release()} {cpu} x{os.cpu_count()}"


def tool_version(cmd):
    """The first line a tool prints about its version, or None."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (res.stdout + res.stderr).strip().splitlines()
    return out[0].strip() if out else None


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def base_meta(date, runs, build_dir=None, nofile=None):
    """The first keys of every report: when, where and how many runs; with
    build_dir and nofile also those, and the clock tick /proc counts in."""
    meta = {
        "date": date.isoformat(timespec="seconds"),
        "host": host_line(),
        "runs": runs,
    }
    if build_dir is not None:
        meta.update({"build_dir": build_dir, "clk_tck": CLK_TCK,
                     "rlimit_nofile": nofile})
    return meta


# --- building ---------------------------------------------------------------

def run_build(cmd, env=None, cwd=None):
    """Runs one build command: None on success, else a one-line reason."""
    log("build: " + shlex.join(cmd))
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True,
                         text=True)
    if res.returncode != 0:
        lines = res.stderr.strip().splitlines() or ["no output"]
        first = next((ln for ln in lines if "error" in ln), lines[0])
        return f"build failed: {first.strip()}"
    return None


def gcc_build(src, out):
    """gcc -O2 of one C file into out: None on success, else a reason."""
    if shutil.which("gcc") is None:
        return "gcc not found"
    return run_build(["gcc", "-O2", "-std=gnu17", "-D_GNU_SOURCE", "-Wall",
                      "-o", out, src])


def go_build(out, out_dir, module_dir):
    """go build of the module in module_dir into out: None or a reason."""
    if shutil.which("go") is None:
        return "go not found (install golang-go)"
    env = os.environ.copy()
    # Caches inside the build dir: works as root with no HOME setup and never
    # touches the network (the modules have no dependencies).
    env.update({
        "GOFLAGS": "-mod=mod",
        "GOCACHE": os.path.join(out_dir, "go-cache"),
        "GOPATH": os.path.join(out_dir, "go-path"),
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    })
    # Inside the module rather than `go build -C`, which Go < 1.20 lacks.
    return run_build(["go", "build", "-o", out, "."], env, cwd=module_dir)


def meson_target(build_dir, target):
    """The executable `target` (a path such as tools/weft-bench/weft-bench)
    of the meson build dir, or None after saying how to build it."""
    path = os.path.join(os.path.abspath(build_dir), target)
    if os.access(path, os.X_OK):
        return path
    log(f"error: {os.path.basename(target)} not found: {path}\nbuild it "
        f"first (meson setup {build_dir} && ninja -C {build_dir} {target})")
    return None


def find_prog(name, *extra):
    """The first executable of PATH's `name` and the extra paths, or None."""
    for cand in (shutil.which(name),) + extra:
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


# --- processes --------------------------------------------------------------

_used_ports = set()


def free_port():
    """A loopback port nobody listens on now (never one this run used)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def cpu_ticks(pid):
    """utime+stime of pid and all its threads, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # The command name may hold spaces: fields restart after the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])   # fields 14 and 15 of stat


class Proc:
    """A started server listening on 127.0.0.1:port; stop() ends it by its
    own PID and no other.  cmd is the whole command line (taskset first)."""

    def __init__(self, name, cmd, tmpdir, env=None, port=None,
                 start_timeout=10, stop_timeout=10):
        self.name = name
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.errlog = os.path.join(tmpdir, f"{name}.stderr")
        self.cmd = cmd
        self.env = env or {}
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.cmdline = shlex.join(
            [f"{k}={v}" for k, v in sorted(self.env.items())] + self.cmd)
        full_env = os.environ.copy()
        full_env.update(self.env)
        with open(self.errlog, "w") as err:
            # taskset execs the server, so this PID is the server's.
            self.proc = subprocess.Popen(
                self.cmd, env=full_env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.proc.pid

    def stderr_tail(self):
        try:
            with open(self.errlog) as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            return lines[-1] if lines else "no output"
        except OSError:
            return "no output"

    def wait_listening(self):
        """None once a connect succeeds, else why not."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return (f"exited with {self.proc.returncode} at start: "
                        f"{self.stderr_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=0.5):
                    return None
            except OSError:
                time.sleep(0.05)
        return f"not accepting on {self.addr} after {self.start_timeout} s"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL if it ignores it: the exit status, or None
        when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def sigterm_note(rc):
    """A note for a server that did not exit cleanly on SIGTERM, or None."""
    if rc == 0:
        return None
    return ("did not exit on SIGTERM, killed" if rc is None else
            f"exit status {rc} after SIGTERM")


def output_tail(res):
    """The last line of a finished command's stderr, else of its stdout."""
    return (res.stderr.strip().splitlines() or
            res.stdout.strip().splitlines() or ["no output"])[-1]


# --- an nginx "hello" server -----------------------------------------------

# One nginx process answering every request with 200 "hello\n", all its
# files in the temp dir {tmp}.  {head} is the first line (a comment naming
# the driver), {limits} goes before "daemon off;" and {name} names the pid
# and error log files.
NGINX_HELLO_CONF = """\
{head}
worker_processes 1;
{limits}daemon off;
master_process off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
events {{
    worker_connections 20000;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 3600s;
    default_type text/plain;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {addr};
        location / {{
            return 200 "hello\\n";
        }}
    }}
}}
"""


# --- clients' output --------------------------------------------------------

def parse_kv(line):
    """{key: value} of the key=value tokens of one line."""
    out = {}
    for tok in line.split():
        k, sep, v = tok.partition("=")
        if sep:
            out[k] = v
    return out


def parse_wrk(out):
    """{rate, p50_us, p75_us, p90_us, p99_us} from wrk --latency's output."""
    r = {}
    m = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M)
    if m:
        r["rate"] = float(m.group(1))
    for pct, val, unit in re.findall(
            r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M):
        r[f"p{pct}_us"] = float(val) * UNIT_US[unit]
    return r


def check_hello(port, wrong=""):
    """None if GET / answers 200 "hello\\n", else what it answered (and
    `wrong` after that)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        resp = c.getresponse()
        body = resp.read()
        c.close()
    except (OSError, http.client.HTTPException) as e:
        return f"GET / failed: {e}"
    if resp.status != 200 or body != b"hello\n":
        return f"GET / answered {resp.status} {body[:40]!r}{wrong}"
    return None


# --- statistics -------------------------------------------------------------

def spread(values):
    """{median, min, max} of a non-empty list."""
    return {"median": statistics.median(values),
            "min": min(values), "max": max(values)}


def summarize(samples, keys):
    """{key: spread} over the samples (dicts) for each key that has values."""
    out = {}
    for key in keys:
        vals = [s[key] for s in samples if s.get(key) is not None]
        if vals:
            out[key] = spread(vals)
    return out


class Row:
    """One row of a report: what it runs (`subject`, whose `skipped` is None
    or why the row does not run), a sample (dict) per run, and the first
    error, after which later runs skip it.  summary() reduces `metrics`."""

    def __init__(self, subject, metrics):
        self.subject = subject
        self.metrics = metrics
        self.samples = []
        self.error = None
        self.warnings = []
        self.cmdline = None

    @property
    def skipped(self):
        return self.subject.skipped

    def summary(self):
        if not self.samples or self.error:
            return None
        return summarize(self.samples, self.metrics)

    def median(self, key):
        s = self.summary()
        return s[key]["median"] if s and key in s else None


def ratio(a, b):
    """a / b, or None when either is missing (or b is 0)."""
    return a / b if a is not None and b else None


# --- goals ------------------------------------------------------------------

def each_sample(runs, cases, label):
    """(case, row) for each run, case and row, skipping rows that are
    skipped or have failed, with progress on stderr; label(row) names it."""
    for run in range(1, runs + 1):
        log(f"run {run}/{runs}")
        for c in cases:
            for r in c.rows:
                if r.skipped or r.error:
                    continue
                log(f"  {c.name}: {label(r)}")
                yield c, r


class Goals(list):
    """Each goal: (text, value, target, passed or None when data is missing)."""

    def check(self, text, value, target, ok):
        self.append((text, value, target, None if value is None else ok(value)))


def print_goals(header, goal_list, num=lambda v: f"{v:.2f}"):
    print(header)
    for text, value, target, ok in goal_list:
        if ok is None:
            print(f"  SKIP  {text}: no data (not run, skipped or failed)")
        else:
            print(f"  {'PASS' if ok else 'FAIL'}  {text}: {num(value)} "
                  f"(target {num(target)})")


# --- reports ----------------------------------------------------------------

def fmt(v, unit=""):
    """A figure to about four significant digits; unit "%" for shares."""
    if v is None:
        return "-"
    if unit == "%":
        return f"{v * 100:.0f}%"
    if abs(v) >= 10000:
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"


def row_status(row):
    """A table cell for a row that has no figures, or None."""
    if row.skipped:
        return f"skipped ({row.skipped})"
    if row.error:
        return f"FAILED ({row.error})"
    return None


def status_word(row):
    return "skipped" if row.skipped else "failed" if row.error else "ok"


def row_json(row, label, command_key, command):
    """The JSON entry of a row of samples with summary() and warnings."""
    return {
        "label": label,
        "status": status_word(row),
        "reason": row.skipped or row.error,
        "warnings": sorted(set(row.warnings)),
        command_key: command,
        "samples": row.samples,
        "summary": row.summary(),
    }


def print_preamble(meta, runs_note):
    print(f"date: {meta['date']}")
    print(f"host: {meta['host']}")
    print(f"runs: {meta['runs']} ({runs_note})")


def print_commands(note, cases, name):
    """The command line of each row that ran, under "commands (note):";
    name(case, row) labels it."""
    print(f"commands ({note}):")
    for c in cases:
        for r in c.rows:
            if r.cmdline:
                print(f"  {name(c, r)}: {r.cmdline}")
    print()


def print_json(meta, cases, goal_list):
    """The report as one JSON object: meta's keys, cases, goals."""
    doc = dict(meta)
    doc["cases"] = cases
    doc["goals"] = [{"goal": t, "value": v, "target": g,
                     "status": "skip" if ok is None else
                     "pass" if ok else "fail"}
                    for t, v, g, ok in goal_list]
    print(json.dumps(doc, indent=2))
