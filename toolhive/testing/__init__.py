"""Test support shipped with the package: the loopback Kubernetes API (for tests, benchmarks and the demo).

Front door: `LoopbackApi` (the server: `.url`/`.http_url`/`.https_url`, `.admin_token`, `.write_kubeconfig`,
`.faults`, `.requests`, `.add_user`, `.compact`, `.call`, `.stop`), the fault and request-log types, and
`write_kubeconfig`; `toolhive.testing.remote.LoopbackProcess` runs the same API in a child process (the
benchmarks). Internals live in `_`-prefixed modules; `toolhive.testing.server` says what the API
implements and what it does not. Nothing here is used by the operator at run time.
"""

from toolhive.testing._faults import Faults, Request, RequestLog
from toolhive.testing.kubeconfig import write as write_kubeconfig
from toolhive.testing.server import LoopbackApi

__all__ = ["Faults", "LoopbackApi", "Request", "RequestLog", "write_kubeconfig"]
