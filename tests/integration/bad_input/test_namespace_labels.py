"""Hostile and odd namespace labels: the API server rejects the bad ones naming `metadata.labels`, nothing
changes (the namespace, its grant, discovery's writes); odd-but-valid values are selected like any other."""

from __future__ import annotations

from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.integration import discovery_harness, harness
from tests.integration.bad_input.conftest import api_error
from tests.integration.discovery.conftest import DiscoveryFactory

# (id, labels as a function of the test's own key, a reason the API server gives)
HOSTILE: list[tuple[str, Any, str]] = [
    ("a value of 64 characters", lambda key: {key: "v" * 64}, "must be no more than 63 characters"),
    ("a value of 256 KiB", lambda key: {key: "v" * 262_144}, "must be no more than 63 characters"),
    ("a key name of 64 characters", lambda key: {"k" * 64: "on"}, "name part must be no more than 63"),
    ("a key prefix of 254 characters", lambda key: {"p" * 254 + "/k": "on"}, "prefix part"),
    ("an empty key", lambda key: {"": "on"}, "name part must be non-empty"),
    ("a key with two slashes", lambda key: {"a/b/c": "on"}, ""),
    ("a space in the value", lambda key: {key: "a b"}, "a valid label must be an empty string"),
    ("a non-ASCII value", lambda key: {key: "h\u00e9llo"}, "a valid label must be an empty string"),
    ("a value starting with a dash", lambda key: {key: "-on"}, "must start and end with an alphanumeric"),
    ("a value ending with a dot", lambda key: {key: "on."}, "must start and end with an alphanumeric"),
    ("a control character", lambda key: {key: "on\u0000"}, "a valid label must be an empty string"),
]

# Valid values with every allowed separator, and the length limit itself.
ODD_BUT_VALID = ["a-b", "a.b", "a_b", "A-1.b_C", "0", "x" * 63, "-".join("a" * 32)]


@pytest.mark.parametrize(
    ("labels", "reason"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_a_hostile_label_is_rejected_naming_the_field_and_changes_nothing(
    admin: harness.Admin,
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    cluster: cluster_mod.Cluster,
    label_key: str,
    labels: Any,
    reason: str,
) -> None:
    member = namespaces.create("bl", **{label_key: "on"})
    found = start_discovery({"selectors": [discovery_harness.selector(label_key)]})
    found.wait_converged({member}, within={member})
    before = admin.read(admin.core.read_namespace, member)
    assert before is not None
    grant = found.managed()[member]["metadata"]["resourceVersion"]
    if cluster.loopback is not None:
        cluster.loopback.requests.reset()

    # On create: nothing is created.
    name = cluster_mod.unique_name("bl")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels(label_key)}}
    status, message = api_error(lambda: admin.core.create_namespace(body))
    assert status == 422 and "metadata.labels" in message and reason in message
    assert not namespaces.exists(name)

    # On update of a member: the namespace, its grant and discovery's writes are unchanged.
    status, message = api_error(lambda: namespaces.label(member, **labels(label_key)))
    assert status == 422 and "metadata.labels" in message and reason in message
    after = admin.read(admin.core.read_namespace, member)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert found.managed()[member]["metadata"]["resourceVersion"] == grant
    if cluster.loopback is not None:
        assert cluster.loopback.requests.count(writes=True, user=found.rbac.user) == 0


def test_a_label_that_is_not_utf8_is_rejected_naming_the_field_and_creates_nothing(
    admin: harness.Admin, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    """Go's JSON decoder turns invalid UTF-8 into U+FFFD, which no label value allows: 422 naming the
    field, no namespace. (The raw bytes go through the client's own connection pool: TLS and certs.)"""
    configuration = admin.client.configuration
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    bearer = configuration.auth_settings().get("BearerToken")
    if bearer:
        headers["Authorization"] = bearer["value"]
    name = cluster_mod.unique_name("nu")
    raw = (
        b'{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"' + name.encode() + b'",'
        b'"labels":{"' + label_key.encode() + b'":"a\xffb"}}}'
    )
    answer = admin.client.rest_client.pool_manager.request(
        "POST", configuration.host + "/api/v1/namespaces", body=raw, headers=headers
    )
    text = answer.data.decode(errors="replace")
    assert answer.status == 422, text
    assert "metadata.labels" in text and "a valid label must be an empty string" in text, text
    assert not namespaces.exists(name)


def test_odd_but_valid_label_values_are_selected_exactly(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    other = label_key + "-expr"
    by_labels = {namespaces.create("ov", **{label_key: value}): value for value in ODD_BUT_VALID}
    by_expression = {namespaces.create("oe", **{other: value}): value for value in ODD_BUT_VALID}
    # Near misses: a value one character longer than a selected one, and a prefix of one.
    decoys = {namespaces.create("od", **{label_key: "a-bb"}), namespaces.create("od", **{other: "A-1"})}
    selectors = [{"matchLabels": {label_key: value}} for value in ODD_BUT_VALID]
    selectors.append({"matchExpressions": [{"key": other, "operator": "In", "values": ODD_BUT_VALID}]})
    found = start_discovery({"selectors": selectors})
    members = set(by_labels) | set(by_expression)
    found.wait_converged(members, within=members | decoys, timeout=30)
    assert found.condition("SelectorsValid")["status"] == "True"
