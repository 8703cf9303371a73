"""Test support shipped with the package: the loopback Kubernetes API (used by tests and the demo).

Front door: `LoopbackApi` (the server), `kubeconfig` (writer), and the request-log and fault types.
Internals live in `_`-prefixed modules; see `toolhive.testing.server` for what the API implements.
"""

from toolhive.testing._faults import Faults, Request, RequestLog
from toolhive.testing.kubeconfig import write as write_kubeconfig
from toolhive.testing.server import LoopbackApi

__all__ = ["Faults", "LoopbackApi", "Request", "RequestLog", "write_kubeconfig"]
