"""A private RabbitMQ node, started from the installed `rabbitmq-server` (docs: TESTING.md).

Faults (stop_app, SIGSTOP, resource alarms) are injected here, never on the shared broker at
127.0.0.1:5672 that the other integration tests use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.faults import reaper


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class RabbitNode:
    folder: Path
    name: str
    port: int
    dist_port: int

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def url_via(self, port: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port}/"

    @classmethod
    def start(cls, deadline: float = 90.0) -> RabbitNode:
        reaper.reap("cb-faults-rabbit-", lambda dead: reaper.kill_pid_file(dead / "pid", dead))
        folder = Path(tempfile.mkdtemp(prefix="cb-faults-rabbit-"))
        folder.chmod(0o755)
        reaper.claim(folder)
        node = cls(folder, f"cbfault{uuid.uuid4().hex[:8]}@localhost", free_port(), free_port())
        (folder / "plugins").write_text("[].\n")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {node.port}\n"
            # the default 50MB disk limit must not trip on a busy CI disk by accident
            "disk_free_limit.absolute = 1MB\n"
        )
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(folder)], check=True)
        try:
            subprocess.run(
                ["rabbitmq-server", "-detached"], env=node._env(), check=True, timeout=60,
                capture_output=True,
            )  # fmt: skip
            end = time.monotonic() + deadline
            while not port_open(node.port):
                if time.monotonic() > end:
                    raise RuntimeError(f"private RabbitMQ node {node.name} did not start")
                time.sleep(0.25)
        except BaseException:
            node.destroy()
            raise
        return node

    def _env(self) -> dict[str, str]:
        d = self.folder
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
        }

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args], check=True, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
        return done.stdout

    def beam_pid(self) -> int:
        return int((self.folder / "pid").read_text().strip())

    def freeze(self) -> None:
        os.kill(self.beam_pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.beam_pid(), signal.SIGCONT)

    def wait_port(self, deadline: float = 60.0) -> None:
        end = time.monotonic() + deadline
        while not port_open(self.port):
            if time.monotonic() > end:
                raise RuntimeError(f"node {self.name} not listening on {self.port}")
            time.sleep(0.1)

    def reset_faults(self) -> None:
        """Undo whatever a test may have left: thawed, app running, no alarms."""
        with contextlib.suppress(OSError, ValueError):
            self.thaw()
        self.ctl("start_app")
        self.ctl("set_disk_free_limit", "1MB")
        self.ctl("set_vm_memory_high_watermark", "0.4")
        self.wait_port()

    def destroy(self) -> None:
        """Stop the node (politely, then by force) and remove its folder."""
        pid: int | None = None
        with contextlib.suppress(OSError, ValueError):
            pid = self.beam_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("stop", timeout=30)
        if pid is not None:
            end = time.monotonic() + 15
            while time.monotonic() < end:
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)
