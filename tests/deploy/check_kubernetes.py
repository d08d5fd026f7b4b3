"""Checks that the Kubernetes manifests fit together, which a per-file schema cannot see.

Usage: check_kubernetes.py MANIFEST.yaml...

The Service must select the DaemonSet's pods and target a named container port; the
ServiceMonitor (a CRD, so no schema in kubernetes-validate) must select the Service, name one
of its ports and carry the fields the Prometheus Operator requires; the probes must use the
exporter's /healthz and /readyz on a named port; the socket must be mounted read-only.
Prints one line per check; exits 1 on any failure.
"""

import re
import sys

import yaml


def load(paths):
    objects = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    objects[doc["kind"]] = doc
    return objects


def selects(selector, labels):
    return all(labels.get(key) == value for key, value in selector.items())


def check(objects):
    results = []

    def expect(name, ok):
        results.append((name, bool(ok)))

    ds, svc, sm = (objects.get(k) for k in ("DaemonSet", "Service", "ServiceMonitor"))
    expect("a DaemonSet, a Service and a ServiceMonitor", ds and svc and sm)
    if not (ds and svc and sm):
        return results

    pod = ds["spec"]["template"]
    container = pod["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    expect("DaemonSet selector matches its pod labels",
           selects(ds["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]))
    expect("Service selects the DaemonSet's pods",
           selects(svc["spec"]["selector"], pod["metadata"]["labels"]))
    expect("Service ports target named container ports",
           all(p.get("targetPort") in port_names for p in svc["spec"]["ports"]))
    expect("Service and ServiceMonitor share a namespace or the monitor names it",
           svc["metadata"]["namespace"] in
           sm["spec"].get("namespaceSelector", {}).get("matchNames",
                                                        [sm["metadata"]["namespace"]]))

    # The monitor: the parts of the monitoring.coreos.com/v1 schema that matter here.
    expect("ServiceMonitor apiVersion is monitoring.coreos.com/v1",
           sm.get("apiVersion") == "monitoring.coreos.com/v1")
    expect("ServiceMonitor selects the Service",
           selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]))
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    endpoints = sm["spec"].get("endpoints", [])
    expect("ServiceMonitor endpoints name a Service port",
           endpoints and all(e.get("port") in svc_ports for e in endpoints))
    expect("ServiceMonitor intervals are Prometheus durations",
           all(re.fullmatch(r"(\d+(ms|s|m|h))+", e.get(k, "1s"))
               for e in endpoints for k in ("interval", "scrapeTimeout")))
    expect("job label is docker-image-exporter (the Service name, as the rules expect)",
           svc["metadata"]["name"] == "docker-image-exporter"
           and not any(e.get("jobLabel") for e in endpoints)
           and not sm["spec"].get("jobLabel"))

    # The pod: probes on the exporter's endpoints, socket read-only, hardened context.
    live, ready = container.get("livenessProbe", {}), container.get("readinessProbe", {})
    expect("liveness probe GETs /healthz on a named port",
           live.get("httpGet", {}).get("path") == "/healthz"
           and live["httpGet"].get("port") in port_names)
    expect("readiness probe GETs /readyz on a named port",
           ready.get("httpGet", {}).get("path") == "/readyz"
           and ready["httpGet"].get("port") in port_names)
    mounts = container.get("volumeMounts", [])
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    expect("engine socket is a hostPath Socket mounted read-only",
           mounts and all(m.get("readOnly") for m in mounts)
           and all(volumes[m["name"]].get("hostPath", {}).get("type") == "Socket"
                   for m in mounts))
    sc, psc = container.get("securityContext", {}), pod["spec"].get("securityContext", {})
    expect("container runs non-root, read-only, without privileges or capabilities",
           psc.get("runAsNonRoot") and psc.get("runAsUser", 0) > 0
           and sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
           and sc.get("capabilities", {}).get("drop") == ["ALL"])
    expect("container has resource requests and a memory limit",
           container.get("resources", {}).get("requests")
           and container["resources"].get("limits", {}).get("memory"))
    return results


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = check(load(sys.argv[1:]))
    for name, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} kubernetes: {name}")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
