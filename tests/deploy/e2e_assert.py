"""The assertions of e2e-prometheus.sh, made against its running Prometheus.

Waits until Prometheus has scraped all three targets and evaluated the rules, then checks,
retrying until they all hold or the deadline passes (rules and scrapes run every second):
the rule groups' health, the usage class of each scenario image, the alerts that fire and
their annotations, and every dashboard query with its variables resolved. Only the scenario's
image IDs are looked at among the images; the engine may hold others. Prints one line per
assertion and a closing 'N passed, N failed'; exits 1 on any failure.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import dashboard

JOB = "docker-image-exporter"
DEADLINE_SECONDS = 120
SHIPPED_GROUPS = {"docker-image-exporter.images", "docker-image-exporter.exporter"}
SHIPPED_ALERTS = {"DockerImageStoppedOnly", "DockerUnusedImagesTooMany",
                  "DockerUnusedImagesBytesHigh", "DockerImageExporterDown",
                  "DockerImageExporterScanFailing", "DockerImageExporterDataStale"}


class Prometheus:
    def __init__(self, base):
        self.base = base

    def get(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)["result"]

    def ready(self):
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False


def value_of(prom, expr):
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


def wait_for_data(prom, args):
    """Returns once each target has been scraped and the rules have seen the scenario."""
    ok, failing, down = args.ok, args.failing, args.down
    conditions = {
        "Prometheus ready": lambda: prom.ready(),
        f"up 1 for {ok} and {failing}, 0 for {down}": lambda: (
            value_of(prom, f'up{{instance="{ok}"}}') == 1
            and value_of(prom, f'up{{instance="{failing}"}}') == 1
            and value_of(prom, f'up{{instance="{down}"}}') == 0),
        "scan success 1 on the engine, 0 without": lambda: (
            value_of(prom, f'docker_image_exporter_scan_success{{instance="{ok}"}}') == 1
            and value_of(prom, f'docker_image_exporter_scan_success{{instance="{failing}"}}')
            == 0),
        "scenario images scraped": lambda: value_of(
            prom, f'count(docker_image_usage{{instance="{ok}",image_id=~"'
                  f'{args.in_use}|{args.stopped_only}|{args.unused}"}})') == 9,
        "a rate over the scan counter": lambda: prom.query(
            f'rate(docker_image_exporter_scans_total{{instance="{ok}"}}[1m])'),
    }
    start = time.monotonic()
    for name, condition in conditions.items():
        while True:
            try:
                if condition():
                    break
            except (urllib.error.URLError, ConnectionError, RuntimeError):
                pass
            if time.monotonic() - start > DEADLINE_SECONDS:
                print(f"FAIL waiting for: {name} ({DEADLINE_SECONDS}s)")
                return False
            time.sleep(1)
        print(f"ok   {name} after {time.monotonic() - start:.0f}s")
    return True


def assertions(prom, args):
    """(name, ok, detail) for every assertion, evaluated now."""
    results = []

    def expect(name, ok, detail=""):
        results.append((name, bool(ok), detail))

    scenario = {args.in_use: "in_use", args.stopped_only: "stopped_only",
                args.unused: "unused"}
    only_ours = f'image_id=~"{"|".join(scenario)}"'

    # Rules: every group loaded and every rule evaluated without error.
    groups = prom.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    bad = [f'{r["name"]}: {r.get("lastError")}' for r in rules if r.get("health") != "ok"]
    names = {group["name"] for group in groups}
    alerts_loaded = {r["name"] for r in rules if r["type"] == "alerting"}
    expect(f"{len(groups)} rule groups, {len(rules)} rules loaded with health ok",
           not bad and SHIPPED_GROUPS <= names and SHIPPED_ALERTS == alerts_loaded,
           f"unhealthy: {bad}; groups {sorted(names)}; alerts {sorted(alerts_loaded)}")

    # Usage classes of the scenario images, as the exporter publishes them.
    for usage in ("in_use", "stopped_only", "unused"):
        got = {s["metric"]["image_id"] for s in prom.query(
            f'docker_image_usage{{instance="{args.ok}",usage="{usage}",{only_ours}}} == 1')}
        want = {image for image, cls in scenario.items() if cls == usage}
        expect(f"usage {usage}: exactly the scenario's {usage} image", got == want,
               f"got {got}, want {want}")

    # The at-risk alert's own expression, as Prometheus loaded it.
    at_risk = next(r for r in rules if r["name"] == "DockerImageStoppedOnly")
    got = {s["metric"]["image_id"] for s in prom.query(at_risk["query"])
           if s["metric"].get("instance") == args.ok} & set(scenario)
    expect("DockerImageStoppedOnly's expression: exactly the stopped-only image",
           got == {args.stopped_only}, f"got {got}")

    # The unused alerts' expressions: this host, with the count of its unused images.
    for alert in ("DockerUnusedImagesTooMany", "DockerUnusedImagesBytesHigh"):
        rule = next(r for r in rules if r["name"] == alert)
        got = {s["metric"].get("instance") for s in prom.query(rule["query"])}
        expect(f"{alert}'s expression: the scenario host only", got == {args.ok},
               f"got {got}")
    unused_here = value_of(prom, f'count(docker_image_usage{{instance="{args.ok}",'
                                 f'usage="unused"}} == 1)')
    host_total = value_of(prom, f'docker_images{{instance="{args.ok}",usage="unused"}}')
    expect("docker_images{usage=unused} counts the host's unused images",
           unused_here == host_total, f"{host_total} vs {unused_here} per image")

    # The alerts that fire, with the labels and annotations an operator would read.
    firing = [a for a in prom.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"]

    def instances(name):
        return {a["labels"].get("instance") for a in firing if a["labels"]["alertname"] == name}

    at_risk_alerts = [a for a in firing if a["labels"]["alertname"] == "DockerImageStoppedOnly"
                      and a["labels"].get("image_id") in scenario]
    expect("DockerImageStoppedOnly fires for exactly the stopped-only image",
           [a["labels"]["image_id"] for a in at_risk_alerts] == [args.stopped_only],
           f"got {[a['labels'] for a in at_risk_alerts]}")
    if len(at_risk_alerts) == 1:
        alert = at_risk_alerts[0]
        image = alert["labels"]["image"]
        desc = alert["annotations"].get("description", "")
        expect("its annotations name the image, its ID, the instance and refs by state",
               re.fullmatch(r"die-e2e/stopped-only:[\w.-]+", image)
               and f"Image {image} ({args.stopped_only}) on {args.ok} " in desc
               and "its containers by state: created=1, exited=1." in desc
               and alert["annotations"].get("runbook_url")
               == "deploy/prometheus/RUNBOOK.md#dockerimagestoppedonly",
               json.dumps(alert["annotations"]))
    for alert, want in (("DockerUnusedImagesTooMany", {args.ok}),
                        ("DockerUnusedImagesBytesHigh", {args.ok}),
                        ("DockerImageExporterScanFailing", {args.failing}),
                        ("DockerImageExporterDown", {args.down}),
                        ("DockerImageExporterDataStale", set())):
        got = instances(alert)
        expect(f"{alert} fires for {sorted(want) or 'no target'}", got == want, f"got {got}")

    # The dashboard's variables and every query, resolved as Grafana would.
    jobs = prom.get("/api/v1/label/job/values",
                    **{"match[]": "docker_image_exporter_build_info"})
    targets = prom.get("/api/v1/label/instance/values",
                       **{"match[]": f'docker_image_exporter_build_info{{job=~"{JOB}"}}'})
    expect("variables: $job and $instance list the exporters",
           jobs == [JOB] and {args.ok, args.failing} <= set(targets), f"{jobs} {targets}")
    dash = dashboard.load(args.dashboard)
    one_host = {"job": JOB, "instance": re.escape(args.ok).replace("\\", "\\\\")}
    for values, label in ((None, "All"), (one_host, f"instance {args.ok}")):
        empty = []
        count = 0
        for where, expr, _ in dashboard.queries(dash):
            count += 1
            if not prom.query(dashboard.resolve(expr, values)):
                empty.append(where)
        expect(f"dashboard: all {count} queries return data with {label} selected",
               not empty, f"empty: {empty}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True)
    for name in ("ok", "failing", "down", "in-use", "stopped-only", "unused", "dashboard"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    prom = Prometheus(args.prometheus)

    if not wait_for_data(prom, args):
        print("0 passed, 1 failed")
        return 1

    # Alerts go from inactive to firing over a few evaluations; retry until all hold.
    start = time.monotonic()
    while True:
        results = assertions(prom, args)
        if all(ok for _, ok, _ in results) or time.monotonic() - start > DEADLINE_SECONDS:
            break
        time.sleep(2)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            print(f"       {detail}")
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
