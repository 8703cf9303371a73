"""The one settings model: environment names, ToolHive compatibility, clear errors."""

import pytest
from pydantic import ValidationError

from toolhive import settings


def test_defaults_are_cluster_scope_without_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCH_NAMESPACE", raising=False)
    loaded = settings.Settings()
    assert loaded.rbac.scope is settings.Scope.CLUSTER
    assert loaded.rbac.watch_namespaces == ()
    assert loaded.discovery.enabled is False


def test_toolhive_watch_namespace_fills_the_static_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_NAMESPACE", "staging, production")
    monkeypatch.setenv("TOOLHIVE_RBAC__SCOPE", "namespace")
    loaded = settings.Settings()
    assert loaded.rbac.scope is settings.Scope.NAMESPACE
    assert loaded.rbac.watch_namespaces == ("staging", "production")


def test_nested_variables_override_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLHIVE_OPERATOR__MAX_CONCURRENT_RECONCILES", "3")
    monkeypatch.setenv("TOOLHIVE_DISCOVERY__ENABLED", "true")
    loaded = settings.Settings()
    assert loaded.operator.max_concurrent_reconciles == 3
    assert loaded.discovery.enabled is True


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        pytest.param("TOOLHIVE_RBAC__SCOPE", "everywhere", "rbac.scope", id="unknown scope names the field"),
        pytest.param(
            "TOOLHIVE_OPERATOR__MAX_CONCURRENT_RECONCILES",
            "0",
            "operator.max_concurrent_reconciles",
            id="zero concurrency names the field",
        ),
        pytest.param(
            "TOOLHIVE_DISCOVERY__ROLEBINDING_NAME",
            "Not_A_Name",
            "discovery.rolebinding_name",
            id="invalid object name names the field",
        ),
    ],
)
def test_bad_values_name_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        settings.Settings()
    assert field in str(caught.value)
