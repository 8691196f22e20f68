"""Fuzz target: the config loader (`engine.config.load.parse_config`): YAML text, environment
substitution, the pydantic models and the checks across areas.

Crash: any exception but `ConfigError` (whose problems are ``path: reason`` lines for the
operator): a traceback at start instead of a precise reason, and a hang (libFuzzer's
``-timeout``) on a small hostile file.
"""

from __future__ import annotations

from tests.fuzz.targets._support import check, instrumented, run

with instrumented(__name__ == "__main__"):
    from engine.config.base import ConfigError
    from engine.config.load import parse_config

ENV = {
    "CAREBRIDGE_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/fuzz",
    "CAREBRIDGE_STORE_URL": "sqlite+aiosqlite:///fuzz.db",
    "WEBHOOK_TOKEN": "fuzz-token-" + "x" * 32,
    "EMPTY": "",
}


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        parse_config(text, origin="fuzz", env=ENV)
    except ConfigError as error:
        problems = error.problems
        check(bool(problems), "a ConfigError without a problem")
        check(all(isinstance(p, str) and p for p in problems), "a problem that is not a text")


if __name__ == "__main__":
    run(TestOneInput)
