"""List and watch: label and field selectors, pagination, resume, timeouts, BOOKMARKs, 410, transitions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.rawkube import RawKube


def cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}}


@pytest.fixture
def labelled(kube: RawKube, namespace: str) -> str:
    """Four ConfigMaps: a{env=prod,tier=web} b{env=dev,tier=web} c{env=prod} d{}."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("a", {"env": "prod", "tier": "web"}))
    kube.post(path, cm("b", {"env": "dev", "tier": "web"}))
    kube.post(path, cm("c", {"env": "prod"}))
    kube.post(path, cm("d"))
    return path


def until_sentinel(kube: RawKube, path: str, sentinel: str, **query: Any) -> list[tuple[str, str]]:
    """Watch events (type, name) up to, not including, the ADDED of `sentinel` (created last)."""
    out: list[tuple[str, str]] = []
    for event in kube.watch(path, timeout=10, timeoutSeconds=10, **query):
        pair = (event["type"], event["object"].get("metadata", {}).get("name", ""))
        if pair == ("ADDED", sentinel):
            return out
        out.append(pair)
    raise AssertionError(f"watch ended before the sentinel {sentinel!r}; saw {out}")


def names(response: Any) -> list[str]:
    return [
        i["metadata"]["name"] for i in response.body["items"] if i["metadata"]["name"] != "kube-root-ca.crt"
    ]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", ["a", "c"]),
        ("env==prod", ["a", "c"]),
        ("env!=prod", ["b", "d"]),
        ("env in (prod,dev)", ["a", "b", "c"]),
        ("env notin (prod)", ["b", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("env=prod,tier=web", ["a"]),
        ("env in (prod),!tier", ["c"]),
    ],
    ids=[
        "equality",
        "double equals",
        "inequality includes unlabelled",
        "in",
        "notin includes unlabelled",
        "exists",
        "does not exist",
        "and of two",
        "set-based and negation",
    ],
)
def test_label_selectors_filter_lists(
    kube: RawKube, labelled: str, selector: str, expected: list[str]
) -> None:
    assert names(kube.get(labelled, labelSelector=selector)) == expected


@pytest.mark.parametrize(
    "selector",
    ["env in prod", "env in (prod", "=prod", "env=prod,", "bad key!=x", "env=bad value", "env notin ()"],
    ids=[
        "in without parentheses",
        "unclosed parenthesis",
        "no key",
        "trailing comma",
        "invalid key",
        "invalid value",
        "empty set",
    ],
)
def test_malformed_label_selectors_are_400(kube: RawKube, labelled: str, selector: str) -> None:
    response = kube.get(labelled, labelSelector=selector)
    assert response.status == 400 and response.reason == "BadRequest", response.body


def test_field_selectors_on_name_and_namespace(kube: RawKube, labelled: str, namespace: str) -> None:
    assert names(kube.get(labelled, fieldSelector="metadata.name=b")) == ["b"]
    assert names(kube.get(labelled, fieldSelector="metadata.name!=b")) == ["a", "c", "d"]
    everywhere = kube.get(
        "/api/v1/configmaps", fieldSelector=f"metadata.namespace={namespace},metadata.name=a"
    )
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere.body["items"]] == [
        (namespace, "a")
    ]


def test_an_unsupported_field_selector_is_400(kube: RawKube, labelled: str) -> None:
    response = kube.get(labelled, fieldSelector="data.k=v")
    assert response.status == 400 and "field label not supported: data.k" in response.message


def test_list_returns_a_list_kind_with_a_resource_version(kube: RawKube, labelled: str) -> None:
    body = kube.get(labelled).body
    assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert int(body["metadata"]["resourceVersion"]) > 0


def test_limit_and_continue_page_through_everything_once(kube: RawKube, labelled: str) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        query = {"limit": 2, **({"continue": token} if token else {})}
        body = kube.get(labelled, **query).body
        seen.extend(i["metadata"]["name"] for i in body["items"])
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break
        assert len(body["items"]) == 2
    assert sorted(seen) == ["a", "b", "c", "d", "kube-root-ca.crt"] and pages == 3


def test_a_garbled_continue_token_is_400(kube: RawKube, labelled: str) -> None:
    assert kube.get(labelled, limit=1, **{"continue": "garbage!"}).status == 400


def test_watch_from_a_resource_version_replays_only_later_events(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("before"))
    rv = kube.get(path).body["metadata"]["resourceVersion"]
    kube.post(path, cm("after"))
    kube.patch(f"{path}/after", {"data": {"k": "v"}})
    kube.delete(f"{path}/before")
    kube.post(path, cm("zz-end"))
    assert until_sentinel(kube, path, "zz-end", resourceVersion=rv) == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "before"),
    ]


def test_watch_without_a_resource_version_starts_with_the_current_state(kube: RawKube, labelled: str) -> None:
    kube.post(labelled, cm("zz-end", {"env": "prod"}))
    assert until_sentinel(kube, labelled, "zz-end", labelSelector="env=prod") == [
        ("ADDED", "a"),
        ("ADDED", "c"),
    ]


def test_timeout_seconds_ends_the_watch(kube: RawKube, namespace: str) -> None:
    import time

    start = time.monotonic()
    rv = kube.get(f"/api/v1/namespaces/{namespace}/configmaps").body["metadata"]["resourceVersion"]
    assert (
        list(kube.watch(f"/api/v1/namespaces/{namespace}/configmaps", resourceVersion=rv, timeoutSeconds=1))
        == []
    )
    assert 0.9 < time.monotonic() - start < 5


def test_bookmarks_arrive_only_when_allowed(loopback: Any, kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = kube.get(path).body["metadata"]["resourceVersion"]
    interval, loopback.bookmark_interval = loopback.bookmark_interval, 0.2
    try:
        with_bookmarks = [
            next(kube.watch(path, resourceVersion=rv, timeoutSeconds=5, allowWatchBookmarks="true"))
        ]
        without = list(kube.watch(path, resourceVersion=rv, timeoutSeconds=1))
    finally:
        loopback.bookmark_interval = interval
    assert with_bookmarks and all(e["type"] == "BOOKMARK" for e in with_bookmarks)
    bookmark = with_bookmarks[0]["object"]
    assert bookmark["kind"] == "ConfigMap" and int(bookmark["metadata"]["resourceVersion"]) >= int(rv)
    assert without == []


def test_a_too_old_resource_version_gets_a_410_error_event(
    loopback: Any, kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("x"))
    old_rv = kube.get(path).body["metadata"]["resourceVersion"]
    kube.post(path, cm("y"))
    loopback.compact()
    events = list(kube.watch(path, resourceVersion=old_rv, timeoutSeconds=5))
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    fresh = kube.get(path).body["metadata"]["resourceVersion"]
    kube.post(path, cm("zz-end"))
    assert until_sentinel(kube, path, "zz-end", resourceVersion=fresh) == [], "a current RV still works"


def test_a_selector_watch_sees_deleted_on_exit_and_added_on_entry(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("m", {"team": "a"}))
    kube.post(path, cm("n"))
    rv = kube.get(path).body["metadata"]["resourceVersion"]
    kube.patch(f"{path}/m", {"metadata": {"labels": {"team": None}}})
    kube.patch(f"{path}/n", {"metadata": {"labels": {"team": "a"}}})
    kube.patch(f"{path}/n", {"data": {"k": "v"}})
    kube.patch(f"{path}/m", {"data": {"k": "v"}})
    kube.post(path, cm("zz-end", {"team": "a"}))
    assert until_sentinel(kube, path, "zz-end", resourceVersion=rv, labelSelector="team=a") == [
        ("DELETED", "m"),
        ("ADDED", "n"),
        ("MODIFIED", "n"),
    ]
    first = next(kube.watch(path, resourceVersion=rv, labelSelector="team=a", timeoutSeconds=5))
    assert "team" not in first["object"]["metadata"].get("labels", {}), "DELETED carries the new state"


def test_namespace_watch_with_a_label_selector(kube: RawKube, cluster: Any) -> None:
    rv = kube.get("/api/v1/namespaces").body["metadata"]["resourceVersion"]
    name = cluster.create_namespace("w", labels={"watch-test": "yes"})
    try:
        kube.patch(f"/api/v1/namespaces/{name}", {"metadata": {"labels": {"watch-test": None}}})
        events = kube.watch(
            "/api/v1/namespaces", resourceVersion=rv, labelSelector="watch-test=yes", timeoutSeconds=10
        )
        seen = [(e["type"], e["object"]["metadata"]["name"]) for _, e in zip(range(2), events, strict=False)]
        assert seen == [("ADDED", name), ("DELETED", name)]
    finally:
        cluster.delete_namespace(name)


def test_send_initial_events_streams_state_then_a_marked_bookmark(kube: RawKube, labelled: str) -> None:
    stream = kube.watch(
        labelled,
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks="true",
        labelSelector="env=prod",
        timeoutSeconds=10,
    )
    events = [e for _, e in zip(range(3), stream, strict=False)]
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_send_initial_events_without_its_required_options_is_422(kube: RawKube, labelled: str) -> None:
    first = next(kube.watch(labelled, sendInitialEvents="true", timeoutSeconds=1))
    assert first["type"] == "HTTP" and first["status"] == 422


def test_a_watch_of_one_object_by_name(kube: RawKube, labelled: str) -> None:
    rv = kube.get(labelled).body["metadata"]["resourceVersion"]
    kube.patch(f"{labelled}/a", {"data": {"k": "1"}})
    kube.patch(f"{labelled}/b", {"data": {"k": "1"}})
    kube.patch(f"{labelled}/a", {"data": {"k": "2"}})
    kube.patch(f"{labelled}/b", {"data": {"k": "2"}})
    events = kube.watch(labelled, resourceVersion=rv, fieldSelector="metadata.name=b", timeoutSeconds=10)
    seen = [
        (e["object"]["metadata"]["name"], e["object"]["data"]["k"])
        for _, e in zip(range(2), events, strict=False)
    ]
    assert seen == [("b", "1"), ("b", "2")]


def test_a_cluster_wide_watch_sees_every_namespace(kube: RawKube, namespace: str) -> None:
    rv = kube.get("/api/v1/configmaps").body["metadata"]["resourceVersion"]
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", cm("everywhere"))
    for event in kube.watch("/api/v1/configmaps", resourceVersion=rv, timeoutSeconds=10):
        meta = event["object"]["metadata"]
        if (event["type"], meta["namespace"], meta["name"]) == ("ADDED", namespace, "everywhere"):
            return
    raise AssertionError("the cluster-wide watch never saw the object")
