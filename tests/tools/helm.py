"""The helm locator now ships with the package (`toolhive.testing.helm`, the demo needs it too).

This name stays an alias of that very module object, so `from tests.tools import helm` and
`monkeypatch.setattr(helm_tool, "_fetch", ...)` keep acting on the real module.
"""

import sys

from toolhive.testing import helm as _helm

sys.modules[__name__] = _helm
