"""NHS Digital's `mesh-sandbox` as a real MESH server for the tests, on a free local port, with
and without TLS, playing the GP practices' mailboxes.

The sandbox reads its mailboxes and workflows (what endpoint lookup answers from) from the
folder inside its package, which holds test workflows only. Run as ``python -m
tests.mesh.sandbox``, this module points that folder at the test's own (the environment's
`CAREBRIDGE_MESH_SANDBOX_DATA`) before starting the sandbox's own app under uvicorn; nothing
else of the sandbox is changed. Messages are kept in files (`STORE_MODE=file`) under the same
folder, with full authentication (`AUTH_MODE=full`: the shared key and each mailbox's password
are checked).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SHARED_KEY = "TestSharedKey"
PASSWORD = "Sandbox-Password-1"
TRUST_MAILBOX = "X26RXT001"
"""The engine's own mailbox (the mental health trust, ODS RXT)."""
GP_MAILBOXES = {"B12345": "X26GP0001", "Y99902": "X26GP0002"}
"""GP practices with a mailbox, by ODS code (any other practice has none)."""
WORKFLOWS = ("TOC_FHIR_MH_DISCH", "TOC_FHIR_IP_DISCH")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_data(folder: Path, extra_gps: Mapping[str, str] | None = None) -> None:
    """mailboxes.jsonl and workflows.jsonl: the trust sends each discharge workflow to the GP
    practices and receives its acknowledgement workflow from them."""
    folder.mkdir(parents=True, exist_ok=True)
    gps = {**GP_MAILBOXES, **(extra_gps or {})}
    boxes = [{"mailbox_id": TRUST_MAILBOX, "mailbox_name": "MH TRUST", "ods_code": "RXT",
              "org_code": "RXT", "password": PASSWORD}]  # fmt: skip
    boxes += [
        {"mailbox_id": box, "mailbox_name": f"GP {ods}", "ods_code": ods, "org_code": ods,
         "password": PASSWORD}
        for ods, box in gps.items()
    ]  # fmt: skip
    flows = []
    for workflow in WORKFLOWS:
        flows.append({"workflow_id": workflow, "senders": [TRUST_MAILBOX],
                      "receivers": list(gps.values())})  # fmt: skip
        flows.append({"workflow_id": f"{workflow}_ACK", "senders": list(gps.values()),
                      "receivers": [TRUST_MAILBOX]})  # fmt: skip
    (folder / "mailboxes.jsonl").write_text("\n".join(json.dumps(b) for b in boxes) + "\n")
    (folder / "workflows.jsonl").write_text("\n".join(json.dumps(f) for f in flows) + "\n")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """A throwaway CA, a server certificate for localhost and a client certificate (the trust's
    mailbox, as MESH issues one per mailbox)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=carebridge-mesh-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=localhost"), ("client", f"/CN={TRUST_MAILBOX}")):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=folder,
        )
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem",
                cwd=folder)  # fmt: skip


@dataclass
class Sandbox:
    """A running mesh-sandbox: `url` is what a client is given."""

    data: Path
    port: int
    tls: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://localhost:{self.port}"

    def start(self, deadline: float = 60.0) -> None:
        env = {**os.environ, "CAREBRIDGE_MESH_SANDBOX_DATA": str(self.data),
               "STORE_MODE": "file", "MAILBOXES_DATA_DIR": str(self.data / "store"),
               "AUTH_MODE": "full", "SHARED_KEY": SHARED_KEY, "PYTHONPATH": str(ROOT)}  # fmt: skip
        args = [sys.executable, "-m", "tests.mesh.sandbox", str(self.port)]
        if self.tls:
            args.append(str(self.tls))
        out = open(self.data / "sandbox.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(args, env=env, stdout=out, stderr=out, cwd=ROOT)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"mesh-sandbox exited: {self.read_log()[-2000:]}")
            if self._healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"mesh-sandbox did not start: {self.read_log()[-2000:]}")

    def _healthy(self) -> bool:
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls / "ca.pem"))
            context.load_cert_chain(str(self.tls / "client.pem"), str(self.tls / "client.key"))
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2, context=context) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def read_log(self) -> str:
        path = self.data / "sandbox.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _serve(port: int, tls: Path | None) -> None:
    import uvicorn
    from mesh_sandbox.store import canned_store  # type: ignore[import-untyped]

    data = os.environ["CAREBRIDGE_MESH_SANDBOX_DATA"]
    original = canned_store.CannedStore.initialise

    def initialise(self: canned_store.CannedStore) -> None:
        self._canned_data_dir = data  # the test's mailboxes and workflows, not the packaged ones
        original(self)

    canned_store.CannedStore.initialise = initialise
    if tls is None:
        uvicorn.run("mesh_sandbox.api:app", host="127.0.0.1", port=port, log_level="warning")
        return
    # mutual TLS, as MESH: the client must show a certificate the CA signed
    uvicorn.run("mesh_sandbox.api:app", host="127.0.0.1", port=port, log_level="warning",
                ssl_certfile=str(tls / "server.pem"), ssl_keyfile=str(tls / "server.key"),
                ssl_ca_certs=str(tls / "ca.pem"), ssl_cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip


def main(argv: Iterable[str]) -> None:
    args = list(argv)
    _serve(int(args[0]), Path(args[1]) if len(args) > 1 else None)


if __name__ == "__main__":
    main(sys.argv[1:])
