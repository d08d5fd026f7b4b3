"""Static checks of the Grafana dashboards in grafana/dashboards/.

Usage: check_dashboard.py [--schema PATH] DASHBOARD.json...

The schema defaults to $GRAFANA_DASHBOARD_SCHEMA, else ../shared/schemas/
grafana-dashboard.jsonschema.json beside the repository. Beyond the schema, it checks what
an operator relies on: the datasource/job/instance variables, every query filtered by job
and instance, no graph that draws one series per image, and that every query parses (with
promtool, the variables resolved as Grafana would). Prints one line per check; exits 1 on
any failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema

import dashboard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SCHEMA = os.path.join(REPO, "..", "shared", "schemas",
                              "grafana-dashboard.jsonschema.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset"}
AGGREGATIONS = r"(sum|min|max|avg|count|topk|bottomk|quantile)"


def check_schema(dash, schema):
    validator = jsonschema.Draft7Validator(schema)
    return [f"schema: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(dash)]


def check_variables(dash):
    found = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    errors = []
    ds = found.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("variables: no datasource variable of type prometheus")
    for name in ("job", "instance"):
        var = found.get(name)
        if not var:
            errors.append(f"variables: no ${name} variable")
        elif not (var.get("multi") and var.get("includeAll")):
            errors.append(f"variables: ${name} is not multi-select with All")
        elif var.get("datasource") != DATASOURCE:
            errors.append(f"variables: ${name} does not query the $datasource")
    return errors


def check_datasources(dash):
    errors = []
    for panel in dashboard.panels(dash):
        title = panel.get("title")
        if panel.get("datasource") != DATASOURCE:
            errors.append(f'datasource: panel "{title}" does not use $datasource')
        for target in panel.get("targets", []):
            if target.get("datasource") != DATASOURCE:
                errors.append(f'datasource: panel "{title}" target {target.get("refId")} '
                              "does not use $datasource")
    return errors


def check_filters(where, expr):
    """Every selector must carry the job and instance matchers; no bare metric names."""
    errors = []
    for match in re.finditer(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}", expr):
        matchers = match.group(2)
        if 'job=~"$job"' not in matchers or 'instance=~"$instance"' not in matchers:
            errors.append(f"filter: {where}: {match.group(0)} lacks the job/instance filter")

    # What is left once selectors, label lists, ranges and strings are gone must be
    # functions, keywords and numbers; any other name is a metric queried without filter.
    rest = re.sub(r"([a-zA-Z_:][\w:]*)?\s*\{[^}]*\}", " ", expr)
    rest = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
    rest = re.sub(r"\[[^\]]*\]|\"[^\"]*\"", " ", rest)
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", rest):
        name, call = match.group(1), match.group(2)
        if not call and name not in KEYWORDS and not re.fullmatch(r"[eE]\d*|Inf|NaN", name):
            errors.append(f"filter: {where}: metric {name} has no job/instance filter")
    return errors


def check_cardinality(where, expr, instant):
    """A range query must not return one series per image: 1,000 images, 1,000 lines."""
    if instant:
        return []
    if not re.match(rf"\s*{AGGREGATIONS}\b", expr):
        return [f"cardinality: {where}: a range query that is not aggregated"]
    if re.match(r"\s*(topk|bottomk)\b", expr):
        return []
    for labels in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        if {"image", "image_id"} & {label.strip() for label in labels.split(",")}:
            return [f"cardinality: {where}: a range query by image"]
    return []


def check_layout(dash):
    errors, seen, cells = [], set(), {}
    for panel in dash.get("panels", []):
        if panel["id"] in seen:
            errors.append(f"layout: panel id {panel['id']} used twice")
        seen.add(panel["id"])
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                if (x, y) in cells:
                    errors.append(f'layout: "{panel.get("title")}" overlaps '
                                  f'"{cells[(x, y)]}"')
                    break
                cells[(x, y)] = panel.get("title")
            else:
                continue
            break
    return errors


def check_parse(dash):
    """Runs promtool on every query, resolved, as recording rules: it parses them all."""
    promtool = shutil.which("promtool")
    if not promtool:
        return ["parse: promtool not found"]
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    where_of = []
    for i, (where, expr, _) in enumerate(dashboard.queries(dash)):
        resolved = dashboard.resolve(expr).replace("'", "''")
        lines += [f"      - record: dashboard_query_{i}", f"        expr: '{resolved}'"]
        where_of.append(where)
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as rules:
        rules.write("\n".join(lines) + "\n")
        rules.flush()
        result = subprocess.run([promtool, "check", "rules", rules.name],
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"parse: promtool rejects a query: {result.stderr.strip() or result.stdout}"]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema",
                        default=os.environ.get("GRAFANA_DASHBOARD_SCHEMA", DEFAULT_SCHEMA))
    parser.add_argument("dashboards", nargs="+")
    args = parser.parse_args()

    # The schema is not part of the repository. Where it is missing the check is skipped, and
    # said so loudly; in CI (CI=true), where it is always laid beside the checkout, a missing
    # schema fails.
    schema = None
    if os.path.exists(args.schema):
        schema = dashboard.load(args.schema)
    elif os.environ.get("CI") == "true":
        print(f"FAIL dashboard schema not found at {args.schema}")
        return 1
    else:
        print(f"skip dashboard schema check: no schema at {args.schema} "
              "(set GRAFANA_DASHBOARD_SCHEMA to Grafana's dashboard JSON schema)")
    failed = False
    for path in args.dashboards:
        dash = dashboard.load(path)
        checks = [] if schema is None else [
            ("schema " + os.path.relpath(os.path.abspath(args.schema)),
             check_schema(dash, schema))]
        checks += [("variables", check_variables(dash)),
                  ("datasources", check_datasources(dash)),
                  ("layout", check_layout(dash))]
        filters, cardinality = [], []
        count = 0
        for where, expr, instant in dashboard.queries(dash):
            count += 1
            filters += check_filters(where, expr)
            cardinality += check_cardinality(where, expr, instant)
        checks += [(f"job/instance filter on {count} queries", filters),
                   ("no per-image range queries", cardinality),
                   ("queries parse (promtool)", check_parse(dash))]
        for name, errors in checks:
            print(f"{'ok  ' if not errors else 'FAIL'} {path}: {name}")
            for error in errors:
                print(f"       {error}")
            failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
