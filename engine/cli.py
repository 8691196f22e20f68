"""`carebridge`: run the engine, migrate its store, check a config, map a message, test routes,
send messages, print the schema.

Exit codes: 0 success; 1 the input (config or message) was rejected, with a one-line reason on
stderr and never a traceback; 2 usage error. Standard output carries only results (JSON);
logs go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from engine import logs, migrating
from engine.config import Config, ConfigError, check_config, load_config, parse_env_file
from mappings.errors import MappingError
from mappings.fhir.outbound import render_fhir_message
from mappings.inbound import map_message
from mappings.model import CareEvent
from mappings.profile import FeedProfile

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
DEFAULT_AMQP = "amqp://guest:guest@localhost:5672/"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="carebridge", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the engine (embedded defaults without -c)")
    run.add_argument("-c", "--config", type=Path, help="YAML config file")

    migrating.add_parser(sub)
    check = sub.add_parser(
        "check-config",
        help="validate a config file: exit 0 valid, 1 invalid; unset environment variables are "
        "warnings unless --require-env",
    )
    check.add_argument("file", type=Path)
    check.add_argument(
        "--env-file", type=Path, help="read variables from this dotenv-style file (NAME=value) "
        "as well; the process environment wins where both set one",
    )  # fmt: skip
    check.add_argument(
        "--require-env", action="store_true",
        help="an unset environment variable is an error (the check before a deployment)",
    )  # fmt: skip

    mapper = sub.add_parser("map", help="map one message file to a care event (JSON on stdout)")
    mapper.add_argument("file", type=Path)
    mapper.add_argument(
        "--to",
        choices=["canonical", "fhir", "notification"],
        default="canonical",
        help="canonical care event JSON, a UK Core FHIR R4 messaging Bundle, or what the "
        "clinician would receive (recipient and why, text, follow-up and its rule, warnings)",
    )
    mapper.add_argument("-c", "--config", type=Path, help="config whose source profile to use")
    mapper.add_argument("--source", help="source name in the config (needs -c)")

    send = sub.add_parser(
        "send", help="publish message files to a source's inbound queue, or send them over MLLP"
    )
    send.add_argument("files", type=Path, nargs="+")
    send.add_argument("--source", help="source name (publishing to RabbitMQ)")
    via = send.add_mutually_exclusive_group()
    via.add_argument("--amqp", default=DEFAULT_AMQP, help=f"broker URL (default {DEFAULT_AMQP})")
    via.add_argument("--mllp", metavar="HOST:PORT", help="send over MLLP and print each ACK")

    _tool_parsers(sub)
    sub.add_parser("schema", help="print the JSON Schema of the care event")
    return parser


def _tool_parsers(sub: argparse._SubParsersAction[_Parser]) -> None:
    """The integration team's tools: route tests, the simulator, the analytics export."""
    tester = sub.add_parser(
        "test", help="run YAML route tests against a config: exit 0 passed, 1 failed, 2 broken"
    )
    tester.add_argument("paths", type=Path, nargs="*", default=[Path("config/tests")])
    tester.add_argument("-c", "--config", type=Path, help="config (overrides each file's config:)")
    tester.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")

    exporter = sub.add_parser(
        "export", help="write pseudonymised analytics data (Parquet by day), incrementally"
    )
    exporter.add_argument("-c", "--config", type=Path, required=True, help="the engine's config")
    exporter.add_argument("--out", type=Path, required=True, help="the export folder")
    exporter.add_argument(
        "--key-env",
        default="CAREBRIDGE_PSEUDONYM_KEY",
        help="environment variable holding the pseudonym key, 32+ characters "
        "(default CAREBRIDGE_PSEUDONYM_KEY)",
    )

    _simulate_parser(sub)


def _simulate_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    sim = sub.add_parser(
        "simulate", help="send simulated patient journeys to an engine; --verify checks receipt"
    )
    sim.add_argument("-c", "--config", type=Path, required=True, help="the engine's config")
    sim.add_argument("--pathways", type=Path, nargs="*", default=[], help="pathway files/folders")
    sim.add_argument("--patients", type=int, default=20)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--days", type=float, default=7.0, help="journeys start within this window")
    sim.add_argument(
        "--start", type=datetime.fromisoformat, help="window start (default: now - days)"
    )
    sim.add_argument("--messy", type=float, default=0.2, help="share of messy but legal messages")
    sim.add_argument("--invalid", type=float, default=0.02, help="share of inputs to be rejected")
    sim.add_argument("--via", choices=["amqp", "mllp", "fhir"], default="amqp")
    sim.add_argument("--amqp", default=DEFAULT_AMQP, help=f"broker URL (default {DEFAULT_AMQP})")
    sim.add_argument("--rate", type=float, default=100.0, help="messages per second at most")
    sim.add_argument(
        "--speed", type=float, help="simulated seconds per second (default: no pacing)"
    )
    sim.add_argument("--out", type=Path, help="write messages/ and truth.jsonl here")
    sim.add_argument("--dry-run", action="store_true", help="only generate (with --out)")
    sim.add_argument(
        "--verify", action="store_true", help="serve the destinations, print a verdict"
    )
    sim.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for receipts")


def _fail(message: str, code: int = EXIT_REJECTED) -> int:
    print(f"carebridge: {message}", file=sys.stderr)
    return code


def _load(path: Path | None) -> Config:
    return load_config(path)


def _load_without_secrets(path: Path | None) -> Config:
    """The config as `check-config` reads it: an unset environment variable is a warning on
    stderr, and the settings that use it take a stand-in (route tests need no secrets)."""
    checked = check_config(path)
    for warning in checked.warnings():
        print(f"warning: {path}: {warning}", file=sys.stderr)
    if checked.config is None:
        raise ConfigError(["cannot be used without the environment variables above"])
    return checked.config


def cmd_check_config(path: Path, env_file: Path | None, require_env: bool) -> int:
    """Every problem as ``path: reason`` on stderr (exit 1); each unset variable as a warning
    (exit 0 if nothing else is wrong) unless `require_env`."""
    env: dict[str, str] = {}
    try:
        if env_file is not None:
            try:
                env = parse_env_file(env_file.read_text("utf-8"), str(env_file))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError([f"{env_file}: cannot read ({exc})"]) from None
        checked = check_config(path, {**env, **os.environ}, require_env=require_env)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_REJECTED
    for warning in checked.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    config = checked.config
    counts = (
        f" ({len(config.sources)} sources, {len(config.destinations)} destinations, "
        f"{len(config.routes)} routes)" if config is not None else ""
    )  # fmt: skip
    unset = f"; {len(checked.unset)} environment variables not set" if checked.unset else ""
    print(f"{path}: valid{counts}{unset}")
    return EXIT_OK


def _profile(
    config_path: Path | None, source: str | None, file: Path, load: Callable[[Path | None], Config]
) -> tuple[FeedProfile, Config | None] | int:
    if config_path is None:
        if source is not None:
            return _fail("--source needs -c CONFIG", EXIT_USAGE)
        return FeedProfile(feed=file.stem or "cli"), None
    try:
        config = load(config_path)
    except ConfigError as exc:
        return _fail(f"invalid config: {exc.problems[0]}")
    if source is None:
        return _fail("-c needs --source NAME", EXIT_USAGE)
    found = config.source(source)
    if found is None:
        return _fail(f"no source named {source!r} in {config_path}", EXIT_USAGE)
    return found.feed_profile, config


def cmd_map(file: Path, config_path: Path | None, source: str | None, to: str) -> int:
    # What a clinician would receive is checked before go-live: no production secrets needed.
    load = _load_without_secrets if to == "notification" else _load
    found = _profile(config_path, source, file, load)
    if isinstance(found, int):
        return found
    profile, config = found
    try:
        raw = file.read_bytes()
    except OSError as exc:
        return _fail(f"{file}: cannot read ({exc.strerror})", EXIT_USAGE)
    if to == "notification":
        return _map_notification(file, raw, profile, config)
    try:
        event = map_message(raw, profile)
    except MappingError as exc:
        return _fail(f"{file}: rejected: {exc}")
    if to == "fhir":
        print(json.dumps(render_fhir_message(event), indent=2, ensure_ascii=False))
    else:
        print(event.model_dump_json(indent=2, exclude_none=True))
    return EXIT_OK


def _map_notification(file: Path, raw: bytes, profile: FeedProfile, config: Config | None) -> int:
    from engine.notification_check import check_notification

    checked = check_notification(raw, config=config or _load(None), source=profile.feed,
                                 profile=profile, configured=config is not None)  # fmt: skip
    if checked.error is not None:
        return _fail(f"{file}: {checked.error}", checked.code)
    print("\n".join(checked.out).rstrip("\n"))
    return checked.code


def cmd_send(files: Sequence[Path], source: str | None, amqp_url: str, mllp: str | None) -> int:
    from engine.send import send_files, send_files_mllp

    if mllp is not None:
        host, _, port = mllp.rpartition(":")
        if not host or not port.isdigit():
            return _fail("--mllp takes HOST:PORT", EXIT_USAGE)
        return asyncio.run(send_files_mllp(files, host, int(port)))
    if source is None:
        return _fail("--source NAME is needed to publish to RabbitMQ", EXIT_USAGE)
    return asyncio.run(send_files(files, source, amqp_url))


def cmd_test(paths: Sequence[Path], config_path: Path | None, junit: Path | None) -> int:
    from engine.routetest import run_test_files

    return run_test_files(paths, config_path=config_path, load=_load_without_secrets, junit=junit)


def cmd_simulate(args: argparse.Namespace) -> int:
    from engine.simulate.pathways import PathwayError, load_pathways
    from engine.simulate.receivers import NotLocal
    from engine.simulate.run import Options, generate, simulate, write_out
    from engine.simulate.truth import NotModelled

    try:
        config = _load(args.config)
        pathways = load_pathways(args.pathways)
    except (ConfigError, PathwayError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run and args.out is None:
        return _fail("--dry-run needs --out DIR", EXIT_USAGE)
    start = args.start.replace(tzinfo=args.start.tzinfo or UTC) if args.start else None
    options = Options(config, pathways, patients=args.patients, seed=args.seed, start=start,
                      days=args.days, messy=args.messy, invalid=args.invalid, via=args.via,
                      amqp_url=args.amqp, rate=args.rate, speed=args.speed, out=args.out,
                      verify=args.verify, timeout=args.timeout)  # fmt: skip
    now = datetime.now(UTC)
    try:
        if args.dry_run:
            sent, truth = generate(options, now)
            write_out(args.out, sent, truth)
            print(f"{len(sent)} messages and their ground truth written to {args.out}")
            return EXIT_OK
        return asyncio.run(simulate(options, now))
    except (NotLocal, NotModelled) as exc:
        return _fail(str(exc), EXIT_USAGE)


def cmd_export(config_path: Path, out: Path, key_env: str) -> int:
    from engine.export import export
    from engine.export.rows import Pseudonymiser
    from engine.store import Store, StoreError

    key = os.environ.get(key_env, "")
    if len(key) < 32:
        return _fail(f"{key_env} must hold the pseudonym key (at least 32 characters)")
    try:
        config = _load(config_path)
    except ConfigError as exc:
        return _fail(f"invalid config: {exc.problems[0]}")

    async def run() -> int:
        store = await Store.open(config.store)
        try:
            summary = await export(store, config, out, Pseudonymiser(key), now=datetime.now(UTC))
        finally:
            await store.close()
        counts = ", ".join(f"{n} {table}" for table, n in summary.rows.items())
        print(f"{out}: {counts} ({len(summary.files)} files)")
        return EXIT_OK

    try:
        return asyncio.run(run())
    except StoreError as exc:
        return _fail(f"the store cannot be read: {exc}")
    except OSError as exc:
        return _fail(f"{out}: cannot write the export ({exc.strerror or exc})")
    except (ValueError, KeyError) as exc:
        return _fail(f"{out}: the export's state file cannot be read ({type(exc).__name__})")


def cmd_schema() -> int:
    print(json.dumps(CareEvent.model_json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_run(config_path: Path | None) -> int:
    try:
        config = _load(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_REJECTED
    from engine.app import run_until_signalled
    from engine.store import FileInUse, MigrationRefused

    logs.configure(config.logging.level, config.logging.format)
    try:
        asyncio.run(run_until_signalled(config))
    except (MigrationRefused, FileInUse) as exc:
        return _fail(str(exc))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Standard output is for results only; `run` reconfigures from its config file.
    logs.configure(level="warning", fmt="console")
    match args.command:
        case "check-config":
            return cmd_check_config(args.file, args.env_file, args.require_env)
        case "map":
            return cmd_map(args.file, args.config, args.source, args.to)
        case "send":
            return cmd_send(args.files, args.source, args.amqp, args.mllp)
        case "test":
            return cmd_test(args.paths, args.config, args.junit)
        case "simulate":
            return cmd_simulate(args)
        case "export":
            return cmd_export(args.config, args.out, args.key_env)
        case "schema":
            return cmd_schema()
        case "run":
            return cmd_run(args.config)
        case "migrate":
            return migrating.cmd_migrate(args.config)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
