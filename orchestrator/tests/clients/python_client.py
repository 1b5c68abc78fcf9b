"""The official Python `kubernetes` client driving every kind wasmkube
serves: create, get, list (paged), patch (each type), replace, delete and
watch, each answer decoded into the client's typed models.

Prints one JSON line: the calls made and, for each call whose answer is
not what the Kubernetes API server gives, what differed.

Usage: python_client.py KUBECONFIG
"""

import json
import sys
import traceback

from kubernetes import client, config, watch

NS = "py"
calls = 0
differences = []


def call(what, fn, *args, check=None, **kwargs):
    """Makes one API call; an exception, or `check` returning a message,
    is a difference."""
    global calls
    calls += 1
    try:
        result = fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - every failure is reported
        detail = getattr(error, "body", None) or "".join(
            traceback.format_exception_only(type(error), error)
        )
        differences.append({"call": what, "error": str(detail)[:600]})
        return None
    if check is not None:
        problem = check(result)
        if problem:
            differences.append({"call": what, "differs": problem})
    return result


def expect(condition, message):
    return None if condition else message


class Kind:
    def __init__(self, api, snake, kind, body, namespaced=True, returns_object=False,
                 can_create=True, plural=None):
        self.api = api
        self.snake = snake
        self.kind = kind
        self.body = body
        self.namespaced = namespaced
        self.returns_object = returns_object
        self.can_create = can_create
        self.plural = plural or snake

    def method(self, verb):
        scope = "namespaced_" if self.namespaced else ""
        name = self.plural if verb == "list" else self.snake
        return getattr(self.api, f"{verb}_{scope}{name}")

    def scoped(self, **kwargs):
        if self.namespaced:
            kwargs["namespace"] = NS
        return kwargs

    def make(self, name, labels=None):
        body = json.loads(json.dumps(self.body))
        body.setdefault("metadata", {})["name"] = name
        if labels:
            body["metadata"]["labels"] = labels
        return body


def content_type(api_client, media_type):
    """Makes the client send `media_type` for its next PATCH (it otherwise
    picks JSON patch, or strategic merge for an object)."""
    api_client.select_header_content_type = lambda _types: media_type


def drive(kind, api_client):
    what = lambda verb: f"{verb} {kind.kind}"  # noqa: E731
    name = f"{kind.snake.replace('_', '-')}-a"
    if kind.can_create:
        for n in (name, f"{kind.snake.replace('_', '-')}-b", f"{kind.snake.replace('_', '-')}-c"):
            call(what("create"), kind.method("create"), **kind.scoped(body=kind.make(n, {"suite": "py"})),
                 check=lambda r: expect(r.metadata.name is not None and r.metadata.resource_version,
                                        "no name or resourceVersion"))
    else:
        name = client.CoreV1Api(api_client).list_node().items[0].metadata.name

    got = call(what("get"), kind.method("read"), name=name, **kind.scoped(),
               check=lambda r: expect(r.metadata.name == name, f"got {r.metadata.name}"))

    # Paged list: one item a page, the pages together are the whole list.
    whole = call(what("list"), kind.method("list"), **kind.scoped(),
                 check=lambda r: expect(r.metadata.resource_version, "list without resourceVersion"))
    names, token, pages = [], None, 0
    while whole is not None and pages < 20:
        page = call(what("list page"), kind.method("list"), limit=1, _continue=token, **kind.scoped(),
                    check=lambda r: expect(len(r.items) <= 1, f"{len(r.items)} items for limit=1"))
        if page is None:
            break
        pages += 1
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    if whole is not None and names != [i.metadata.name for i in whole.items]:
        differences.append({"call": what("list pages"),
                            "differs": f"pages {names} != list {[i.metadata.name for i in whole.items]}"})
    start = whole.metadata.resource_version if whole is not None else None

    # Every patch type.
    patch = kind.method("patch")
    call(what("patch strategic"), patch, name=name, body={"metadata": {"labels": {"smp": "1"}}},
         **kind.scoped(), check=lambda r: expect(r.metadata.labels.get("smp") == "1", "label not set"))
    call(what("patch json"), patch, name=name,
         body=[{"op": "add", "path": "/metadata/annotations", "value": {"jp": "1"}}], **kind.scoped(),
         check=lambda r: expect((r.metadata.annotations or {}).get("jp") == "1", "annotation not set"))
    content_type(api_client, "application/merge-patch+json")
    call(what("patch merge"), patch, name=name, body={"metadata": {"labels": {"merge": "1"}}},
         **kind.scoped(), check=lambda r: expect(r.metadata.labels.get("merge") == "1", "label not set"))
    content_type(api_client, "application/apply-patch+yaml")
    applied = {"apiVersion": kind.body["apiVersion"], "kind": kind.kind,
               "metadata": {"name": name, "labels": {"applied": "1"}}}
    call(what("patch apply"), patch, name=name, body=applied, field_manager="py", force=True,
         **kind.scoped(), check=lambda r: expect(r.metadata.labels.get("applied") == "1", "label not set"))
    del api_client.select_header_content_type

    # Replace what was read back (read again when a controller wrote in
    # between, as clients do); a stale copy conflicts.
    for attempt in range(3):
        current = call(what("get"), kind.method("read"), name=name, **kind.scoped())
        if current is None:
            break
        current.metadata.labels["replaced"] = "1"
        replaced = call(what("replace"), kind.method("replace"), name=name, body=current, **kind.scoped(),
                        check=lambda r: expect(r.metadata.labels.get("replaced") == "1", "label not set"))
        conflicted = replaced is None and '"code":409' in differences[-1].get("error", "")
        if not conflicted or attempt == 2:
            break
        differences.pop()
    if got is not None:
        global calls
        calls += 1
        try:
            kind.method("replace")(name=name, body=got, **kind.scoped())
            differences.append({"call": what("replace stale"), "differs": "a stale replace succeeded"})
        except client.ApiException as error:
            if error.status != 409:
                differences.append({"call": what("replace stale"), "differs": f"status {error.status}"})

    # A watch from the list's resourceVersion sees the changes since, typed.
    if start is not None:
        calls += 1
        try:
            events = list(watch.Watch().stream(kind.method("list"), resource_version=start,
                                               timeout_seconds=1, **kind.scoped()))
            mine = [e for e in events if e["object"].metadata.name == name]
            if not mine or any(e["type"] != "MODIFIED" for e in mine):
                differences.append({"call": what("watch"),
                                    "differs": f"events {[e['type'] for e in mine]}"})
            if any(not isinstance(e["object"], type(got)) for e in events if got is not None):
                differences.append({"call": what("watch"), "differs": "untyped event object"})
        except Exception as error:  # noqa: BLE001
            differences.append({"call": what("watch"), "error": str(error)[:600]})

    if kind.can_create:
        def deleted(result):
            if kind.returns_object:
                return expect(result.kind == kind.kind, f"kind {result.kind}")
            return expect(result.kind == "Status" and result.status == "Success"
                          and result.details.name == name, f"kind {result.kind}")
        call(what("delete"), kind.method("delete"), name=name, **kind.scoped(), check=deleted)


def custom_resources(api_client):
    """A CustomResourceDefinition through ApiextensionsV1Api, then its
    objects through CustomObjectsApi, as the client's users drive them."""
    import time

    extensions = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    name = "pysites.example.com"
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    definition = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "PySite", "plural": "pysites"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": schema}}]}}
    call("create CustomResourceDefinition", extensions.create_custom_resource_definition,
         body=definition,
         check=lambda r: expect(r.spec.names.list_kind == "PySiteList", f"listKind {r.spec.names.list_kind}"))
    established = False
    for _ in range(100):
        crd = extensions.read_custom_resource_definition(name)
        conditions = (crd.status and crd.status.conditions) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            established = True
            break
        time.sleep(0.1)
    if not established:
        differences.append({"call": "wait CustomResourceDefinition", "differs": "not Established in 10 s"})
        return
    call("list CustomResourceDefinition", extensions.list_custom_resource_definition,
         check=lambda r: expect(any(i.metadata.name == name for i in r.items), "not listed"))
    group = dict(group="example.com", version="v1", namespace=NS, plural="pysites")
    body = {"apiVersion": "example.com/v1", "kind": "PySite", "metadata": {"name": "site"}, "spec": {}}
    call("create PySite", custom.create_namespaced_custom_object, body=body, **group,
         check=lambda r: expect(r["spec"].get("replicas") == 1, f"not defaulted: {r}"))
    call("get PySite", custom.get_namespaced_custom_object, name="site", **group)
    call("list PySite", custom.list_namespaced_custom_object, **group,
         check=lambda r: expect(r["kind"] == "PySiteList" and len(r["items"]) == 1, f"list {r}"))
    call("patch PySite", custom.patch_namespaced_custom_object, name="site",
         body={"spec": {"replicas": 3}}, **group,
         check=lambda r: expect(r["spec"]["replicas"] == 3, f"patched {r}"))
    call("patch PySite status", custom.patch_namespaced_custom_object_status, name="site",
         body={"status": {"ready": True}}, **group,
         check=lambda r: expect(r.get("status") == {"ready": True}, f"status {r}"))
    current = custom.get_namespaced_custom_object(name="site", **group)
    current["spec"]["replicas"] = 2
    call("replace PySite", custom.replace_namespaced_custom_object, name="site", body=current, **group,
         check=lambda r: expect(r["spec"]["replicas"] == 2 and r["status"] == {"ready": True}, f"replaced {r}"))
    call("delete PySite", custom.delete_namespaced_custom_object, name="site", **group)
    call("delete CustomResourceDefinition", extensions.delete_custom_resource_definition, name=name)


def main():
    config.load_kube_config(config_file=sys.argv[1])
    api_client = client.ApiClient()
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    batch = client.BatchV1Api(api_client)
    storage = client.StorageV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    scheduling = client.SchedulingV1Api(api_client)
    coordination = client.CoordinationV1Api(api_client)
    policy = client.PolicyV1Api(api_client)
    networking = client.NetworkingV1Api(api_client)
    call("create Namespace", core.create_namespace, body={"metadata": {"name": NS}})

    pod_spec = {"containers": [{"name": "c", "image": "toolbox", "command": ["sleep", "3600"]}]}
    template = {"metadata": {"labels": {"app": "py"}}, "spec": pod_spec}
    job_template = {"metadata": {"labels": {"job": "py"}},
                    "spec": {"restartPolicy": "Never",
                             "containers": [{"name": "c", "image": "toolbox", "command": ["true"]}]}}
    kinds = [
        Kind(core, "namespace", "Namespace", {"apiVersion": "v1"}, namespaced=False, returns_object=True),
        Kind(core, "node", "Node", {"apiVersion": "v1"}, namespaced=False, can_create=False),
        Kind(core, "pod", "Pod", {"apiVersion": "v1", "spec": pod_spec}, returns_object=True),
        Kind(core, "config_map", "ConfigMap", {"apiVersion": "v1", "data": {"k": "v"}}),
        Kind(core, "secret", "Secret", {"apiVersion": "v1", "stringData": {"k": "v"}}),
        Kind(core, "service", "Service",
             {"apiVersion": "v1", "spec": {"selector": {"app": "py"}, "ports": [{"port": 80}]}},
             returns_object=True),
        Kind(core, "endpoints", "Endpoints",
             {"apiVersion": "v1", "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]}),
        Kind(core, "event", "Event",
             {"apiVersion": "v1", "involvedObject": {"kind": "Pod", "name": "x", "namespace": NS},
              "reason": "Tested", "message": "by the Python client", "type": "Normal"}),
        Kind(core, "persistent_volume", "PersistentVolume",
             {"apiVersion": "v1", "spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"],
                                          "storageClassName": "py-none",
                                          "hostPath": {"path": "/tmp/wasmkube-python-client-pv"}}},
             namespaced=False, returns_object=True),
        Kind(core, "persistent_volume_claim", "PersistentVolumeClaim",
             {"apiVersion": "v1", "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "py-none",
                                          "resources": {"requests": {"storage": "1Mi"}}}},
             returns_object=True),
        Kind(storage, "storage_class", "StorageClass",
             {"apiVersion": "storage.k8s.io/v1", "provisioner": "example.com/none"}, namespaced=False,
             returns_object=True),
        Kind(discovery, "endpoint_slice", "EndpointSlice",
             {"apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
              "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"port": 80}]}),
        Kind(apps, "deployment", "Deployment",
             {"apiVersion": "apps/v1", "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "py"}},
                                               "template": template}}),
        Kind(apps, "replica_set", "ReplicaSet",
             {"apiVersion": "apps/v1", "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "py"}},
                                               "template": template}}),
        Kind(core, "replication_controller", "ReplicationController",
             {"apiVersion": "v1", "spec": {"replicas": 0, "selector": {"app": "py"}, "template": template}}),
        # A daemon whose node selector no node has: stored, never run.
        Kind(apps, "daemon_set", "DaemonSet",
             {"apiVersion": "apps/v1", "spec": {"selector": {"matchLabels": {"app": "py"}},
                                               "template": dict(template, spec=dict(pod_spec, nodeSelector={"py": "nowhere"}))}}),
        Kind(apps, "stateful_set", "StatefulSet",
             {"apiVersion": "apps/v1", "spec": {"replicas": 0, "serviceName": "py",
                                               "selector": {"matchLabels": {"app": "py"}}, "template": template}}),
        Kind(apps, "controller_revision", "ControllerRevision",
             {"apiVersion": "apps/v1", "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1}),
        Kind(core, "pod_template", "PodTemplate", {"apiVersion": "v1", "template": template},
             returns_object=True),
        Kind(scheduling, "priority_class", "PriorityClass",
             {"apiVersion": "scheduling.k8s.io/v1", "value": 100}, namespaced=False),
        Kind(coordination, "lease", "Lease",
             {"apiVersion": "coordination.k8s.io/v1", "spec": {"holderIdentity": "py", "leaseDurationSeconds": 15}}),
        Kind(policy, "pod_disruption_budget", "PodDisruptionBudget",
             {"apiVersion": "policy/v1", "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "py"}}}}),
        Kind(networking, "ingress", "Ingress",
             {"apiVersion": "networking.k8s.io/v1", "spec": {"rules": [{"host": "py.example.com", "http": {"paths": [
                 {"path": "/", "pathType": "Prefix",
                  "backend": {"service": {"name": "py", "port": {"number": 80}}}}]}}]}}),
        Kind(networking, "ingress_class", "IngressClass",
             {"apiVersion": "networking.k8s.io/v1", "spec": {"controller": "example.com/py"}}, namespaced=False),
        Kind(batch, "job", "Job",
             {"apiVersion": "batch/v1", "spec": {"suspend": True, "template": job_template}}),
        Kind(batch, "cron_job", "CronJob",
             {"apiVersion": "batch/v1", "spec": {"schedule": "*/5 * * * *", "suspend": True,
                                                "jobTemplate": {"spec": {"template": job_template}}}}),
    ]
    for kind in kinds:
        drive(kind, api_client)

    custom_resources(api_client)

    # /version/ as the client asks for it.
    call("get version", client.VersionApi(api_client).get_code,
         check=lambda r: expect(r.major == "1", f"major {r.major}"))
    print(json.dumps({"calls": calls, "differences": differences}))


if __name__ == "__main__":
    main()
