#!/usr/bin/env python3
"""End-to-end benchmark of the exporter against a real, private Docker engine.

Starts Docker 20.10 with tests/engines/engine.sh under its own state directory, fills it with
containers in the `created` state over images committed from them, and at each size measures:

- the bare list calls a scan needs (curl over the engine's socket), time and CPU;
- the exporter's scans (their logged durations) and their CPU, the engine's CPU included;
- the exporter's resident memory between scans and at its peak;
- scrape latency and CPU per scrape under concurrent scrapers (wrk, on loopback);
- through a counting proxy, that every scan makes exactly two list calls and that scans never
  overlap, however many scrapers there are.

It prints a markdown report (and writes it with --out), then removes what it created and
stops the engine. Needs root, curl, wrk and the engine's packages (tests/engines/install-deps.sh).

    scripts/bench/e2e.py --sizes 1000,5000,10000 --out /tmp/e2e.md
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENGINE_SH = os.path.join(REPO, "tests", "engines", "engine.sh")
TEST_IMAGE_SH = os.path.join(REPO, "tests", "engines", "test-image.sh")
ENGINE = "docker20"
API = "/v1.41"
BASE_IMAGE = "die-test/busybox:base"
LABEL = "die.bench"
IMAGE_REPO = "die-bench/img"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def note(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


# --- the engine's API over its unix socket ---------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket, for the engine's API."""

    def __init__(self, path, timeout=300):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class Api:
    """One connection per thread to the engine."""

    def __init__(self, sock):
        self.sock = sock
        self.local = threading.local()

    def call(self, method, path, body=None, ok=(200, 201, 204, 304)):
        if getattr(self.local, "conn", None) is None:
            self.local.conn = UnixConnection(self.sock)
        conn = self.local.conn
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, API + path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.local.conn = None
            raise
        if response.status not in ok:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None


def in_parallel(function, items, workers):
    """Runs function over items on a thread pool; raises the first error."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(function, items):
            pass


# --- processes -------------------------------------------------------------------------------


def cpu_seconds(pid):
    """User plus system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    """A kB field of /proc/PID/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def engine_pids(state_dir):
    """The pids of the private engine's dockerd and containerd, as engine.sh recorded them."""
    pids = []
    for name in ("dockerd", "containerd"):
        path = os.path.join(state_dir, "engines", ENGINE, "pids", name)
        with open(path) as f:
            pids.append(int(f.read().strip()))
    return pids


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    """The exporter binary, started by this script and stopped by its recorded pid."""

    def __init__(self, binary, host, interval):
        self.port = free_port()
        self.lines = []
        self.scans = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--docker.host={host}",
                f"--scan.interval={interval}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.format=json",
                "--log.level=debug",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"},
        )
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self):
        for line in self.proc.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                if event.get("message") == "scan finished":
                    self.scans.append((time.monotonic(), float(event["duration_seconds"])))
                elif event.get("level") in ("WARN", "ERROR"):
                    self.lines.append(line.strip())

    @property
    def pid(self):
        return self.proc.pid

    def scan_count(self):
        with self.lock:
            return len(self.scans)

    def wait_scans(self, count, timeout):
        deadline = time.monotonic() + timeout
        while self.scan_count() < count:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the exporter exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} scans in {timeout}s: {self.lines[-3:]}")
            time.sleep(0.01)

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)


# --- filling the engine ----------------------------------------------------------------------


def count_objects(api):
    containers = api.call("GET", f"/containers/json?all=1&filters={label_filter()}")
    images = api.call("GET", f"/images/json?filters={label_filter()}")
    tagged = [i for i in images if any(t.startswith(IMAGE_REPO + ":") for t in i["RepoTags"] or [])]
    return len(containers), len(tagged)


def label_filter():
    return urllib.parse.quote(json.dumps({"label": [f"{LABEL}=1"]}))


def create_container(api, image, name=None):
    query = f"?name={name}" if name else ""
    body = {
        "Image": image,
        "Cmd": ["/bin/true"],
        "Labels": {LABEL: "1"},
        "HostConfig": {"NetworkMode": "none"},
        "NetworkDisabled": True,
    }
    return api.call("POST", f"/containers/create{query}", body)["Id"]


def add_images(api, have, want, workers):
    """Commits images die-bench/img:N, each of a created container with a distinct label."""

    def one(n):
        helper = create_container(api, BASE_IMAGE)
        query = f"?container={helper}&repo={IMAGE_REPO}&tag={n}"
        api.call("POST", f"/commit{query}", {"Labels": {LABEL: "1", f"{LABEL}.n": str(n)}})
        api.call("DELETE", f"/containers/{helper}?force=1")

    in_parallel(one, range(have, want), workers)


def add_containers(api, have, want, images, workers):
    """Creates containers (state `created`) spread round-robin over the images."""
    in_parallel(lambda n: create_container(api, f"{IMAGE_REPO}:{n % images}"), range(have, want),
                workers)


def remove_everything(api, workers):
    """Removes every container and image this script made, the base image last."""
    containers = api.call("GET", f"/containers/json?all=1&filters={label_filter()}")
    note(f"removing {len(containers)} containers")
    in_parallel(lambda c: api.call("DELETE", f"/containers/{c['Id']}?force=1", ok=(204, 404)),
                containers, workers)
    images = api.call("GET", f"/images/json?all=1&filters={label_filter()}")
    note(f"removing {len(images)} images")
    in_parallel(lambda i: api.call("DELETE", f"/images/{i['Id']}?force=1", ok=(200, 404, 409)),
                images, workers)
    api.call("DELETE", f"/images/{BASE_IMAGE}", ok=(200, 404, 409))


def finish(api, env, workers, purge):
    """Removes what the script made and stops the engine; purge deletes its state too."""
    remove_everything(api, workers)
    subprocess.run([ENGINE_SH, ENGINE, "purge" if purge else "stop"], env=env, check=False)


# --- measurements ----------------------------------------------------------------------------


def bare_pair(sock):
    """The two list calls of a scan, made by curl on one connection: seconds and body sizes."""
    urls = [f"http://localhost{API}/containers/json?all=1",
            f"http://localhost{API}/images/json?all=1"]
    out = subprocess.run(
        ["curl", "-fsS", "--unix-socket", sock, "-o", "/dev/null", "-o", "/dev/null",
         "-w", "%{time_total} %{size_download}\n", *urls],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return float(out[0]) + float(out[2]), [int(out[1]), int(out[3])]


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compare(binary, sock, interval, scans, pids):
    """Scans `scans` times and, halfway between each two scans, makes the bare calls once.

    Interleaving puts both under the same load and the same engine warmth. The engine's CPU
    is read right before and after each bare pair; what it spent outside them went to scans.
    The exporter's memory is sampled all along.
    """
    exporter = Exporter(binary, f"unix://{sock}", f"{interval}s")
    rss = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                rss.append(status_kib(exporter.pid, "VmRSS"))
            except (OSError, KeyError):
                return
            time.sleep(0.01)

    bare_times, bare_engine, bare_client, sizes = [], 0.0, 0.0, []
    try:
        time.sleep(0.3)
        start_rss = status_kib(exporter.pid, "VmRSS")
        exporter.wait_scans(2, 600)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        first = exporter.scan_count()
        own_before, engine_before = cpu_seconds(exporter.pid), sum(cpu_seconds(p) for p in pids)
        for n in range(first, first + scans):
            exporter.wait_scans(n + 1, 600)
            time.sleep(interval / 2)
            engine_at, client_at = sum(cpu_seconds(p) for p in pids), children_cpu()
            seconds, sizes = bare_pair(sock)
            bare_engine += sum(cpu_seconds(p) for p in pids) - engine_at
            bare_client += children_cpu() - client_at
            bare_times.append(seconds)
        exporter.wait_scans(first + scans, 600)
        own = (cpu_seconds(exporter.pid) - own_before) / scans
        engine = (sum(cpu_seconds(p) for p in pids) - engine_before - bare_engine) / scans
        stop.set()
        sampler.join()
        _, body = exporter.get("/metrics")
        return {
            "bare": {"times": bare_times, "engine_cpu": bare_engine / scans,
                     "client_cpu": bare_client / scans, "sizes": sizes},
            "loop": {
                "durations": [d for _, d in exporter.scans[first:first + scans]],
                "exporter_cpu": own,
                "engine_cpu": engine,
                "start_rss": start_rss,
                "rss_between": statistics.median(rss),
                "rss_low": min(rss),
                "hwm": status_kib(exporter.pid, "VmHWM"),
                "exposition": len(body),
                "warnings": exporter.lines[:3],
            },
        }
    finally:
        stop.set()
        exporter.stop()


def scrapes(binary, host, seconds, connections):
    """wrk against /metrics of an exporter that has scanned once and then waits an hour.

    One run per number of concurrent scrapers; latency percentiles are wrk's.
    """
    exporter = Exporter(binary, host, "1h")
    runs = {}
    try:
        exporter.wait_scans(1, 600)
        for count in connections:
            cpu_before = cpu_seconds(exporter.pid)
            out = subprocess.run(
                ["wrk", f"-t{min(2, count)}", f"-c{count}", f"-d{seconds}s", "--latency",
                 f"http://127.0.0.1:{exporter.port}/metrics"],
                check=True, capture_output=True, text=True,
            ).stdout
            cpu = cpu_seconds(exporter.pid) - cpu_before
            requests = int(re.search(r"(\d+) requests in", out).group(1))
            latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M))
            runs[count] = {"requests": requests, "rps": requests / seconds,
                           "cpu": cpu / max(requests, 1), **latency}
    finally:
        exporter.stop()
    return runs


class CountingProxy:
    """A unix-socket proxy in front of the engine that records every request line it passes."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.dir = tempfile.mkdtemp(prefix="die-proxy-")
        self.path = os.path.join(self.dir, "proxy.sock")
        self.requests = []
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, sink, requests):
        pending = b""
        try:
            while data := source.recv(65536):
                if requests:
                    pending += data
                    for match in re.finditer(rb"(GET|HEAD|POST|PUT|DELETE) (\S+) HTTP/1", pending):
                        with self.lock:
                            self.requests.append((time.monotonic(), match.group(2).decode()))
                    pending = pending[-64:] if b"\r\n\r\n" not in pending[-4:] else b""
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def call_count(binary, sock, seconds, connections):
    """Scans every 100 ms through the counting proxy while wrk scrapes with many connections."""
    proxy = CountingProxy(sock)
    exporter = Exporter(binary, f"unix://{proxy.path}", "100ms")
    try:
        exporter.wait_scans(1, 600)
        subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s",
             f"http://127.0.0.1:{exporter.port}/metrics"],
            check=True, capture_output=True, text=True,
        )
        exporter.stop()
        scans = exporter.scan_count()
    finally:
        exporter.stop()
        proxy.close()
    paths = [p.split("?")[0].removeprefix(API) for _, p in proxy.requests]
    lists = [p for p in paths if p in ("/containers/json", "/images/json")]
    # Two scans overlapping would interleave their calls; one at a time alternates strictly.
    alternating = all(p == ("/containers/json", "/images/json")[i % 2] for i, p in enumerate(lists))
    return {
        "scans": scans,
        "containers_calls": lists.count("/containers/json"),
        "images_calls": lists.count("/images/json"),
        "other_calls": sorted({p for p in paths if p not in ("/containers/json", "/images/json")}),
        "alternating": alternating,
        # The exporter may be stopped during a scan: its list calls are then one ahead.
        "two_per_scan": lists.count("/containers/json") - scans in (0, 1)
        and lists.count("/images/json") - scans in (0, 1),
        "connections": connections,
    }


# --- report ----------------------------------------------------------------------------------


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def mib(kib):
    return f"{kib / 1024:.1f}"


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1])
    return f"{os.cpu_count()} CPUs, {model}, {total / 1024 / 1024:.1f} GiB, " \
           f"Linux {platform.release()}"


def report(results, calls):
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}; "
        f"engine: Docker 20.10 ({ENGINE}), overlay2; all containers `created`.",
        "",
        "| containers / images | bodies KiB (containers + images) | bare calls ms p50 / p90 "
        "| scan ms p50 / p90 | time ratio p50 | CPU ms bare (engine + curl) "
        "| CPU ms scan (engine + exporter) | CPU ratio | load average |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        bare, loop = r["bare"], r["loop"]
        bare_cpu = bare["engine_cpu"] + bare["client_cpu"]
        scan_cpu = loop["engine_cpu"] + loop["exporter_cpu"]
        lines.append(
            f"| {r['containers']} / {r['images']} "
            f"| {bare['sizes'][0] // 1024} + {bare['sizes'][1] // 1024} "
            f"| {ms(statistics.median(bare['times']))} / {ms(percentile(bare['times'], 0.9))} "
            f"| {ms(statistics.median(loop['durations']))} / "
            f"{ms(percentile(loop['durations'], 0.9))} "
            f"| {statistics.median(loop['durations']) / statistics.median(bare['times']):.2f} "
            f"| {ms(bare['engine_cpu'])} + {ms(bare['client_cpu'])} "
            f"| {ms(loop['engine_cpu'])} + {ms(loop['exporter_cpu'])} "
            f"| {scan_cpu / bare_cpu:.2f} | {r['load']:.1f} |"
        )
    lines += [
        "",
        "| containers / images | exposition KiB | RSS MiB at start | RSS MiB between scans "
        "(median / min) | peak RSS MiB (VmHWM) | (peak - start) / bodies |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        loop, bodies = r["loop"], sum(r["bare"]["sizes"]) / 1024
        lines.append(
            f"| {r['containers']} / {r['images']} | {loop['exposition'] // 1024} "
            f"| {mib(loop['start_rss'])} | {mib(loop['rss_between'])} / {mib(loop['rss_low'])} "
            f"| {mib(loop['hwm'])} | {(loop['hwm'] - loop['start_rss']) / bodies:.2f} |"
        )
    lines += [
        "",
        "| containers / images | concurrent scrapers | scrapes/s | latency p50 / p90 / p99 "
        "| exporter CPU us per scrape |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for count, run in r["scrape"].items():
            lines.append(
                f"| {r['containers']} / {r['images']} | {count} | {run['rps']:.0f} "
                f"| {run.get('50')} / {run.get('90')} / {run.get('99')} "
                f"| {run['cpu'] * 1e6:.0f} |"
            )
    if calls:
        lines += [
            "",
            f"Engine calls through a counting proxy, scanning every 100 ms while wrk scraped "
            f"with {calls['connections']} connections at {calls['size']} containers: "
            f"{calls['scans']} scans finished, {calls['containers_calls']} container lists, "
            f"{calls['images_calls']} image lists (two per scan: "
            f"{'yes' if calls['two_per_scan'] else 'NO'}), strictly alternating: "
            f"{'yes' if calls['alternating'] else 'NO'}; other calls: "
            f"{', '.join(calls['other_calls']) or 'none'}.",
        ]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000",
                        help="comma-separated container counts, ascending (default 1000,5000)")
    parser.add_argument("--containers-per-image", type=int, default=10)
    parser.add_argument("--state-dir", default="/tmp/die-bench")
    parser.add_argument("--exporter",
                        default=os.path.join(REPO, "target/release/docker-image-exporter"),
                        help="binary to measure (default: built with cargo build --release)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="bare call pairs and scans per size")
    parser.add_argument("--scrape-seconds", type=int, default=10)
    parser.add_argument("--scrapers", default="1,4,16",
                        help="comma-separated numbers of concurrent scrapers (wrk connections)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent API calls when filling")
    parser.add_argument("--out", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the containers, images and engine for another run")
    parser.add_argument("--cleanup", action="store_true",
                        help="only remove what an earlier --keep run left, and stop the engine")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    scrapers = [int(c) for c in args.scrapers.split(",")]
    if os.geteuid() != 0:
        sys.exit("error: run as root: the private engine needs it")
    for tool in ("curl", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} not found (apt-get install {tool})")

    # On SIGTERM, unwind as on an error, so that the cleanup below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("error: terminated"))
    env = dict(os.environ, DIE_STATE_DIR=args.state_dir)
    if args.exporter == parser.get_default("exporter") and not args.cleanup:
        note("building the exporter (release)")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    # A state directory this run creates is deleted when it ends; an existing one is kept.
    purge = not os.path.exists(args.state_dir)
    note(f"starting {ENGINE} under {args.state_dir}")
    subprocess.run([ENGINE_SH, ENGINE, "start"], env=env, check=True)
    host = subprocess.run([ENGINE_SH, ENGINE, "env"], env=env, check=True, capture_output=True,
                          text=True).stdout.strip().split("=", 1)[1]
    sock = host.removeprefix("unix://")
    api = Api(sock)
    if args.cleanup:
        finish(api, env, args.workers, purge=False)
        return
    subprocess.run([TEST_IMAGE_SH], env=dict(env, DOCKER_HOST=host), check=True,
                   stdout=subprocess.DEVNULL)
    pids = engine_pids(args.state_dir)

    results, calls = [], None
    try:
        have_containers, have_images = count_objects(api)
        for size in sizes:
            if have_containers > size:
                note(f"skipping {size}: {have_containers} containers are there already")
                continue
            images = max(1, size // args.containers_per_image)
            if have_images < images:
                note(f"committing images {have_images}..{images}")
                add_images(api, have_images, images, args.workers)
                have_images = images
            if have_containers < size:
                note(f"creating containers {have_containers}..{size}")
                started = time.monotonic()
                add_containers(api, have_containers, size, images, args.workers)
                note(f"created in {time.monotonic() - started:.0f}s")
                have_containers = size
            total = len(api.call("GET", "/containers/json?all=1"))
            listed = len(api.call("GET", "/images/json?all=1"))
            note(f"measuring at {total} containers over {listed} images")
            # Room for a scan and a bare pair between two scans, whatever the size.
            first, _ = bare_pair(sock)
            interval = max(2, round(first * 5))
            # Other work on the machine shows in every number: the 1-minute load says how much.
            result = {"containers": total, "images": listed, "load": os.getloadavg()[0]}
            result.update(compare(args.exporter, sock, interval, args.repeats, pids))
            result["scrape"] = scrapes(args.exporter, host, args.scrape_seconds, scrapers)
            results.append(result)
            if calls is None:
                calls = call_count(args.exporter, sock, args.scrape_seconds, 64)
                calls["size"] = total
            print(report(results, calls), file=sys.stderr)
    finally:
        if not args.keep:
            finish(api, env, args.workers, purge)

    text = report(results, calls)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
