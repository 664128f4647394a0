"""A Kubernetes API simulator for Aether's tests and embedded stack.

A standard-library HTTP server on 127.0.0.1 that the official ``kubernetes`` client uses
unchanged through a kubeconfig. What it models and what not is below.

Start one::

    sim = start_simulator()            # ephemeral port, background thread
    sim.write_kubeconfig("kubeconfig")  # context "aether-sim", http, bearer token
    ...
    sim.stop()

or ``python -m infra.kubesim --port 6443 --kubeconfig .aether/kubeconfig``.

Test hooks, as methods and over HTTP (no token needed; the real API never uses ``/_sim/``;
``Simulator(http_hooks=False)`` answers them as unknown API paths):

=============================  =====================================================
``sim.set_api_down(True)``     ``POST /_sim/api-down`` (and ``/_sim/api-up``): every API
                               request answers 503 ServiceUnavailable, open watches end
``sim.crash_loop(ns, dep)``    ``POST /_sim/faults {"fault": "crash-loop", "namespace",
                               "deployment", "labelSelector"}``
``sim.fail_init_containers``   ``... {"fault": "init-failure"}`` (Init:Error, back-off)
``sim.never_ready(ns, dep)``   ``... {"fault": "never-ready"}`` (ProgressDeadlineExceeded)
``sim.clear_faults()``         ``DELETE /_sim/faults``
``sim.append_log(ns, pod, l)`` ``POST /_sim/logs {"namespace", "pod", "container", "lines"}``
``sim.expire_watch_history()`` ``POST /_sim/expire-watch-history`` (older watches get 410)
``sim.reset()``                ``POST /_sim/reset``
(state)                        ``GET /_sim/state``: apiDown, resourceVersion, url
=============================  =====================================================

It serves the core kinds Aether uses (namespaces, pods and their logs, services, secrets,
configmaps, events), ``apps/v1`` Deployments and ReplicaSets with their controller, and
``batch/v1`` Jobs with theirs (``infra/kubesim/jobs.py``: one pod at a time, ``backoffLimit``,
``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``; a Job deleted without a propagation
policy orphans its pods, as batch/v1 does).

Pods run through a ``PodRuntime`` (``Simulator(runtime=...)``); the default
``SimulatedRuntime`` is the one the fault hooks script.

Not modelled: field ownership and conflicts of server-side apply (one manager's last applied
configuration is remembered, so fields it drops are removed), admission beyond a few
validations, scheduling and resources, graceful pod termination (deletion is immediate, and so
is garbage collection), RBAC, protobuf/YAML bodies, and sinceTime on the client's
``read_namespaced_pod_log`` (its OpenAPI spec lacks it; the server honours the query).
"""

from infra.kubesim.runtime import (
    ContainerState,
    ContainerView,
    Fault,
    FaultRule,
    PodRuntime,
    PodStatusSink,
    PodView,
    Running,
    SimulatedRuntime,
    Terminated,
    Waiting,
)
from infra.kubesim.simulator import CONTEXT_NAME, Simulator, start_simulator

__all__ = [
    "CONTEXT_NAME",
    "ContainerState",
    "ContainerView",
    "Fault",
    "FaultRule",
    "PodRuntime",
    "PodStatusSink",
    "PodView",
    "Running",
    "SimulatedRuntime",
    "Simulator",
    "Terminated",
    "Waiting",
    "start_simulator",
]
