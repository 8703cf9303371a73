"""Fixtures of the chaos tests: the journey tests' chart installer and cluster reader, reused as they are."""

from tests.e2e.conftest import created_namespaces, install_chart, kube, make_namespace, run_processes

__all__ = ["created_namespaces", "install_chart", "kube", "make_namespace", "run_processes"]
