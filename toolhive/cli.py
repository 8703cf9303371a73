"""Command line: `toolhive-operator <command>`.

Each command is a small function that parses nothing itself: argparse hands it the namespace, it builds
`Settings` and calls into the package. Heavy imports happen inside the command that needs them, so
`toolhive-operator version` stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import toolhive

if TYPE_CHECKING:
    import discovery
    from toolhive import settings as settings_module

Command = Callable[[argparse.Namespace], int]


def _version(_: argparse.Namespace) -> int:
    print(toolhive.__version__)
    return 0


def _settings(_: argparse.Namespace) -> int:
    from toolhive import settings

    print(json.dumps(settings.Settings().model_dump(mode="json"), indent=2, sort_keys=True))
    return 0


def _crds(args: argparse.Namespace) -> int:
    """Write `crds/` from the models (`--write`), or exit 1 naming each file that differs (`--check`)."""
    from pathlib import Path

    from toolhive.api import crds

    directory = Path(args.dir)
    stale = []
    for name, text in crds.render_all().items():
        path = directory / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if args.write:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "wrote" if args.write else "out of date (run `toolhive-operator crds --write`)"
    for name in stale:
        print(f"{directory / name}: {verb}", file=sys.stderr)
    return 1 if stale and not args.write else 0


def _run(_: argparse.Namespace) -> int:
    from toolhive import logs, operator, settings, telemetry

    config = settings.Settings()
    logs.configure_logging(level=config.observability.log_level, log_format=config.observability.log_format)
    telemetry.configure(default_service_name="toolhive-operator")
    try:
        return operator.main_sync(config)
    finally:
        telemetry.shutdown()


def discovery_config(config: settings_module.Settings) -> discovery.Config:
    """Discovery's config from the settings; the subject's namespace defaults to the pod's (the release)."""
    import discovery
    from toolhive import constants, resources

    group = config.discovery
    subject_namespace = group.subject_namespace
    if "subject_namespace" not in group.model_fields_set:
        subject_namespace = config.pod_namespace
    res = resources.NAMESPACEDISCOVERIES
    return discovery.Config(
        resource=discovery.discovery_resource(constants.GROUP, res.version, res.plural),
        name=group.resource_name,
        cluster_role=group.cluster_role,
        subject_name=group.subject_name,
        subject_namespace=subject_namespace,
        rolebinding_name=group.rolebinding_name,
        grace_seconds=group.release_grace_seconds,
        instance=config.pod_name,
    )


def discovery_lease(config: settings_module.Settings) -> str:
    """Discovery's leader Lease (`<resource name>-discovery`), shared with `discovery cleanup`."""
    return f"{config.discovery.resource_name}-discovery"


def _discovery(_: argparse.Namespace) -> int:
    """Run namespace discovery until SIGTERM/SIGINT (kubeconfig from KUBECONFIG, else in-cluster).

    With leader election on, only the replica holding the lease `<resource name>-discovery` acts.
    """
    import asyncio

    import discovery
    from discovery import kube
    from toolhive import logs, metrics, runtime, settings, telemetry

    config = settings.Settings()
    logs.configure_logging(level=config.observability.log_level, log_format=config.observability.log_format)
    telemetry.configure(default_service_name="toolhive-discovery")

    async def work(api: kube.Api, observed: metrics.Metrics, leading: Callable[[], bool]) -> None:
        # Stopped by cancellation (SIGTERM or a lost lease); never by its own stop event.
        await discovery.run(discovery_config(config), api=api, stop=asyncio.Event(), observer=observed)

    async def main(stop: asyncio.Event) -> None:
        await runtime.run(config, work, process="discovery", lease=discovery_lease(config), stop=stop)

    try:
        runtime.run_until_signalled(main)
    finally:
        telemetry.shutdown()
    return 0


def _discovery_cleanup(args: argparse.Namespace) -> int:
    """Revoke every grant of this discovery owner (uninstall); exit 0 when none is left, 1 otherwise.

    Holds discovery's leader Lease while it runs (when leader election is on) so discovery stands down;
    the operator releases each namespace through the usual draining handshake. Exit 2: an API error
    (such as 403) stopped it.
    """
    import asyncio

    from discovery import cleanup, kube
    from toolhive import logs, runtime, settings

    config = settings.Settings()
    logs.configure_logging(level=config.observability.log_level, log_format=config.observability.log_format)
    grace = config.discovery.release_grace_seconds
    timeout = args.timeout_seconds if args.timeout_seconds is not None else grace + 60.0
    lease = None
    if config.leader_election.enabled:
        lease = runtime.lease_config(config, name=discovery_lease(config))
        lease = dataclasses.replace(lease, identity=f"{lease.identity}-uninstall")

    async def main() -> cleanup.Report:
        api = await kube.Api.connect(kubeconfig=config.kubeconfig)
        try:
            return await cleanup.cleanup(api, discovery_config(config), lease=lease, timeout_seconds=timeout)
        finally:
            await api.close()

    try:
        report = asyncio.run(main())
    except kube.ApiError as error:  # e.g. 403: the hook runs with another identity than discovery's
        print(f"discovery cleanup failed: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"released": report.released, "revokedAfterGrace": report.forced, "left": report.left},
            sort_keys=True,
        )
    )
    return 0 if report.clean else 1


def _demo(args: argparse.Namespace) -> int:
    """Play the demo on the loopback API (or, with --cluster, on the cluster in KUBECONFIG)."""
    from toolhive import demo

    return demo.main(keep=args.keep, cluster=args.cluster, verbose=args.verbose)


def _loopback(args: argparse.Namespace) -> int:
    """Run the loopback Kubernetes API until Ctrl-C; print where its kubeconfig is."""
    from toolhive.testing import server

    return server.serve_until_interrupted(port=args.port, kubeconfig_path=args.kubeconfig, tls=not args.http)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolhive-operator", description=toolhive.__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("version", help="print the version").set_defaults(func=_version)
    commands.add_parser("run", help="run the MCPServer operator (configured by environment)").set_defaults(
        func=_run
    )
    discovery_command = commands.add_parser(
        "discovery", help="run namespace discovery (grants the operator's RoleBindings; env-configured)"
    )
    discovery_command.set_defaults(func=_discovery)
    discovery_actions = discovery_command.add_subparsers(dest="discovery_command", metavar="ACTION")
    cleanup_command = discovery_actions.add_parser(
        "cleanup", help="revoke every RoleBinding discovery manages (the chart's pre-delete hook)"
    )
    cleanup_command.add_argument(
        "--timeout-seconds",
        type=float,
        help="give up (exit 1) after this long (default: the release grace period + 60)",
    )
    cleanup_command.set_defaults(func=_discovery_cleanup)
    demo_command = commands.add_parser(
        "demo", help="label a namespace, watch it onboarded, unlabel it, see the trace (loopback API)"
    )
    demo_command.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    demo_command.add_argument(
        "--cluster", action="store_true", help="play against the cluster in KUBECONFIG (helm install)"
    )
    demo_command.add_argument("--verbose", action="store_true", help="show the processes' log lines")
    demo_command.set_defaults(func=_demo)
    commands.add_parser("settings", help="print the effective settings as JSON").set_defaults(func=_settings)
    loopback_command = commands.add_parser("loopback", help="run the loopback Kubernetes API until Ctrl-C")
    loopback_command.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: random)")
    loopback_command.add_argument("--kubeconfig", help="admin kubeconfig path (default: a temp file)")
    loopback_command.add_argument("--http", action="store_true", help="plain HTTP (kubectl will not work)")
    loopback_command.set_defaults(func=_loopback)
    crds_command = commands.add_parser("crds", help="generate crds/ from the API models, or check for drift")
    crds_mode = crds_command.add_mutually_exclusive_group(required=True)
    crds_mode.add_argument("--write", action="store_true", help="(re)write the CRD files")
    crds_mode.add_argument(
        "--check", action="store_true", help="exit 1 if a CRD file differs from the models"
    )
    crds_command.add_argument("--dir", default="crds", help="directory of the CRD files (default: crds)")
    crds_command.set_defaults(func=_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
