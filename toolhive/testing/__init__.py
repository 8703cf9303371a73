"""Test support shipped with the package: the loopback Kubernetes API (used by tests and the demo)."""
