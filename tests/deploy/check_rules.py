"""Checks what promtool does not: the alerts' contract with operators and with their tests.

Usage: check_rules.py RULES.yml RUNBOOK.md TEST.yml...

Every alert must carry a severity label, summary, description and a runbook_url whose
anchor is a heading of the runbook, and must be exercised by the unit tests both firing and
not firing. Prints one line per check; exits 1 on any failure.
"""

import re
import sys

import yaml

SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")


def anchors(markdown):
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def alerts(rules):
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                yield rule


def check_alert(rule, runbook_anchors):
    name, errors = rule["alert"], []
    severity = rule.get("labels", {}).get("severity")
    if severity not in SEVERITIES:
        errors.append(f"{name}: severity {severity!r} is not one of {sorted(SEVERITIES)}")
    annotations = rule.get("annotations", {})
    for key in REQUIRED_ANNOTATIONS:
        if not annotations.get(key):
            errors.append(f"{name}: no {key} annotation")
    url = annotations.get("runbook_url", "")
    anchor = url.partition("#")[2]
    if not url.startswith("deploy/prometheus/RUNBOOK.md#") or anchor not in runbook_anchors:
        errors.append(f"{name}: runbook_url {url!r} names no heading of RUNBOOK.md")
    return errors


def tested(test_files):
    """alertname -> set of outcomes seen in the tests: 'firing' and/or 'silent'."""
    seen = {}
    for path in test_files:
        with open(path, encoding="utf-8") as f:
            suite = yaml.safe_load(f)
        for test in suite.get("tests", []):
            for case in test.get("alert_rule_test", []):
                outcome = "firing" if case.get("exp_alerts") else "silent"
                seen.setdefault(case["alertname"], set()).add(outcome)
    return seen


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    rules_path, runbook_path, test_files = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(rules_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    with open(runbook_path, encoding="utf-8") as f:
        runbook_anchors = anchors(f.read())
    seen = tested(test_files)

    failed = False
    for rule in alerts(rules):
        name = rule["alert"]
        errors = check_alert(rule, runbook_anchors)
        missing = {"firing", "silent"} - seen.get(name, set())
        if missing:
            errors.append(f"{name}: no unit test where it is {' or '.join(sorted(missing))}")
        print(f"{'ok  ' if not errors else 'FAIL'} alert {name}: labels, annotations, "
              "runbook anchor, tested firing and silent")
        for error in errors:
            print(f"       {error}")
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
