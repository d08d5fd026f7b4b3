"""Reads the Grafana dashboard's queries the way Grafana would send them.

Shared by check_dashboard.py (static checks) and e2e-prometheus.sh (which runs every query
against a real Prometheus), so that both look at exactly the same expressions.
"""

import json
import re

# What Grafana substitutes for the dashboard's variables when "All" is selected; the
# variables' allValue is ".+", and $__rate_interval is at least four scrape intervals.
ALL_VALUES = {"job": ".+", "instance": ".+", "__rate_interval": "1m"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard):
    """Every panel that is not a row, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(dashboard):
    """(where, expr, instant) for each panel target and Prometheus annotation.

    Annotations count as instant: each series is drawn as events, not as a line.
    """
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                where = f'panel "{panel.get("title")}" target {target.get("refId")}'
                yield where, target["expr"], bool(target.get("instant"))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield f'annotation "{annotation["name"]}"', annotation["expr"], True


def resolve(expr, values=None):
    """Substitutes $name and ${name} the way Grafana does for the given values."""
    values = dict(ALL_VALUES, **(values or {}))

    def substitute(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for variable ${name}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, expr)
