"""adapters.mllp on real sockets (127.0.0.1), against itself and against peers written by others:
python-hl7's ``mllp_send`` command drives the listener, and hl7apy's MLLP server receives from
the client. TLS certificates (a CA, the server's, a client's) are made with the openssl CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from hl7apy.core import Message
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

from adapters.errors import DestinationError, DestinationTimeout
from adapters.mllp import (
    MllpClient,
    MllpListener,
    PeerInfo,
    client_ssl_context,
    frame,
    send_and_wait,
    server_ssl_context,
)
from mappings.errors import MappingError
from mappings.hl7v2.ack import build_ack, parse_ack
from mappings.hl7v2.inbound import map_hl7v2
from mappings.hl7v2.outbound import render_adt
from mappings.hl7v2.reader import parse
from mappings.profile import FeedProfile

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
NOW = datetime(2026, 1, 14, 9, 30, tzinfo=UTC)
CANARY = "ZZCANARYFAMILY"  # stands for patient data: never in a log line
MLLP_SEND = Path(sys.executable).with_name("mllp_send")
A03_FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2" / "mh_a03_discharge.hl7"
).read_bytes()


def adt(control_id: str, trigger: str = "A01", padding: int = 0) -> bytes:
    return (
        f"MSH|^~\\&|RIO|RXT|ROUTE|ROUTE|20260114093000||ADT^{trigger}^ADT_{trigger}|{control_id}"
        f"|P|2.4\rEVN|{trigger}|20260114093000\rPID|1||9434765919^^^NHS^NH||{CANARY}^ALPHA"
        f"{'X' * padding}\rPV1|1|I|RXT^WARD7^BED3^RXT01\r"
    ).encode()


def control_id_of(answer: bytes) -> str:
    return parse_ack(answer).control_id


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Poll `predicate` until it holds; fail after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        await asyncio.sleep(0.01)


@dataclass
class Receiver:
    """A `handle` for the listener: answers AA, and records what it saw."""

    messages: list[bytes] = field(default_factory=list)
    peers: list[PeerInfo] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    work: float = 0.0
    answer: Callable[[bytes], bytes] | None = None

    async def __call__(self, message: bytes, peer: PeerInfo) -> bytes:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.messages.append(message)
            self.peers.append(peer)
            if self.work:
                await asyncio.sleep(self.work)  # stands for the engine's publish and confirm
            if self.answer is not None:
                return self.answer(message)
            return build_ack(message, "AA", now=NOW, control_id=f"ACK-{len(self.messages)}")
        finally:
            self.in_flight -= 1


def reject_oversized(head: bytes, peer: PeerInfo) -> bytes | None:
    """The composition root's callback: an AR when the header can be read, else hang up."""
    try:
        parse(head)
    except MappingError:
        return None
    return build_ack(head, "AR", now=NOW, control_id="ACK-BIG", text="message too large")


Listen = Callable[..., Awaitable[MllpListener]]


@pytest.fixture
async def listen() -> AsyncIterator[Listen]:
    started: list[MllpListener] = []

    async def start(handle: Any, **options: Any) -> MllpListener:
        listener = MllpListener(HOST, 0, handle=handle, **options)
        await listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.close(grace=1)


@contextlib.asynccontextmanager
async def connection(
    port: int, **options: Any
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(HOST, port, **options)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def read_frames(reader: asyncio.StreamReader, count: int, within: float = 5.0) -> list[bytes]:
    """Read until `count` framed answers have arrived."""
    data = b""
    async with asyncio.timeout(within):
        while data.count(b"\x1c\r") < count:
            chunk = await reader.read(65536)
            if not chunk:
                raise AssertionError(f"closed before {count} answers arrived")
            data += chunk
    return [part.lstrip(b"\x0b") for part in data.split(b"\x1c\r")[:count]]


async def closed_by_peer(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    """True when the other end closes the connection (EOF or reset) within the deadline
    without sending anything first."""
    try:
        async with asyncio.timeout(within):
            unexpected = await reader.read(65536)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    assert unexpected == b"", "bytes arrived instead of the connection closing"
    return True


# --- the listener ---------------------------------------------------------------------------


async def test_a_message_sent_with_the_client_is_answered_with_the_handles_aa(
    listen: Listen,
) -> None:
    receiver = Receiver()
    listener = await listen(receiver)
    answer = await send_and_wait(HOST, listener.port, adt("MSG-1"), timeout=5)
    assert parse_ack(answer) == ("AA", "MSG-1", None)
    assert receiver.messages == [adt("MSG-1")]
    assert receiver.peers[0].host == HOST
    assert receiver.peers[0].tls is False
    assert receiver.peers[0].client_cn is None


async def test_frames_in_one_write_are_handled_one_at_a_time_and_answered_in_order(
    listen: Listen,
) -> None:
    receiver = Receiver(work=0.02)
    listener = await listen(receiver)
    ids = [f"MSG-{n}" for n in range(5)]
    async with connection(listener.port) as (reader, writer):
        writer.write(b"".join(frame(adt(i)) for i in ids))
        answers = await read_frames(reader, len(ids))
    assert [control_id_of(a) for a in answers] == ids
    assert receiver.most_in_flight == 1


async def test_a_frame_written_in_pieces_with_junk_and_no_final_cr_is_answered(
    listen: Listen,
) -> None:
    listener = await listen(Receiver())
    data = b"junk\r\n" + frame(adt("MSG-1"))[:-1]  # no CR after the end byte
    async with connection(listener.port) as (reader, writer):
        for i in range(0, len(data), 17):
            writer.write(data[i : i + 17])
            await writer.drain()
            await asyncio.sleep(0)
        [answer] = await read_frames(reader, 1)
        writer.write(frame(adt("MSG-2")))
        [second] = await read_frames(reader, 1)
    assert control_id_of(answer) == "MSG-1"
    assert control_id_of(second) == "MSG-2"


async def test_an_empty_answer_sends_nothing_and_keeps_the_connection(listen: Listen) -> None:
    receiver = Receiver()
    receiver.answer = lambda m: (
        b"" if b"|SILENT|" in m else build_ack(m, "CA", now=NOW, control_id="C")
    )
    listener = await listen(receiver)
    async with connection(listener.port) as (reader, writer):
        writer.write(frame(adt("SILENT")) + frame(adt("LOUD")))
        [answer] = await read_frames(reader, 1)
    assert parse_ack(answer).code == "CA"
    assert control_id_of(answer) == "LOUD"
    assert len(receiver.messages) == 2


async def test_a_failing_handle_closes_the_connection_unanswered(listen: Listen) -> None:
    async def broken(message: bytes, peer: PeerInfo) -> bytes:
        raise RuntimeError("engine bug")

    listener = await listen(broken)
    with structlog.testing.capture_logs() as logs:
        async with connection(listener.port) as (reader, writer):
            writer.write(frame(adt("MSG-1")))
            assert await closed_by_peer(reader)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["mllp.handle_failed"]


async def test_a_failing_handle_hangs_up_before_the_failure_is_logged(listen: Listen) -> None:
    """Rendering the traceback can take a while under load; the sender is told first (the
    connection closed, so it resends) and the log line carries no message bytes."""

    async def broken(message: bytes, peer: PeerInfo) -> bytes:
        raise RuntimeError("engine bug")

    listener = await listen(broken)
    with socket.create_connection((HOST, listener.port), timeout=20) as client:
        seen: list[bytes] = []  # what the sender could read when the failure was logged

        def probe(_logger: Any, _name: str, event: Any) -> Any:
            if event["event"] == "mllp.handle_failed":
                # The loop is held here: the connection is closed already, or stays open.
                readable, _, _ = select.select([client], [], [], 10.0)
                seen.append(client.recv(65536) if readable else b"(still open)")
            return event

        with structlog.testing.capture_logs([structlog.processors.format_exc_info, probe]) as logs:
            client.sendall(frame(adt("MSG-1")))
            await eventually(lambda: bool(seen), "the failure to be logged", within=20)
    assert seen == [b""]
    [failed] = [e for e in logs if e["event"] == "mllp.handle_failed"]
    assert "RuntimeError: engine bug" in failed["exception"]
    assert CANARY not in repr(failed)


async def test_an_oversized_message_gets_the_callbacks_ar_and_the_connection_carries_on(
    listen: Listen,
) -> None:
    receiver = Receiver()
    listener = await listen(receiver, max_message_bytes=300, reject_oversized=reject_oversized)
    async with connection(listener.port) as (reader, writer):
        writer.write(frame(adt("BIG-1", padding=5000)))
        [rejected] = await read_frames(reader, 1)
        writer.write(frame(adt("MSG-2")))
        [accepted] = await read_frames(reader, 1)
    assert parse_ack(rejected) == (
        "AR",
        "BIG-1",
        "message too large; 207 Application internal error",
    )
    assert parse_ack(accepted).code == "AA"
    assert receiver.messages == [adt("MSG-2")]  # the oversized one never reached the engine


async def test_an_oversized_message_without_a_readable_header_closes_the_connection(
    listen: Listen,
) -> None:
    listener = await listen(Receiver(), max_message_bytes=300, reject_oversized=reject_oversized)
    async with connection(listener.port) as (reader, writer):
        writer.write(frame(b"X" * 1000))
        assert await closed_by_peer(reader)


async def test_an_oversized_message_without_a_callback_closes_the_connection(
    listen: Listen,
) -> None:
    listener = await listen(Receiver(), max_message_bytes=300)
    async with connection(listener.port) as (reader, writer):
        writer.write(frame(adt("BIG-1", padding=5000)))
        assert await closed_by_peer(reader)


@pytest.mark.parametrize("failure", ["unframeable", "raises"])
async def test_an_answer_that_cannot_be_sent_closes_the_connection(
    listen: Listen, failure: str
) -> None:
    def answer(message: bytes, peer: PeerInfo | None = None) -> bytes:
        if failure == "raises":
            raise RuntimeError("callback bug")
        return b"MSA|AA|\x1c|forged"  # an end byte would end the frame early

    listener = await listen(Receiver(answer=answer), max_message_bytes=300, reject_oversized=answer)
    for message in (adt("MSG-1"), adt("BIG-1", padding=500)):
        async with connection(listener.port) as (reader, writer):
            writer.write(frame(message))
            assert await closed_by_peer(reader, within=5)


async def test_an_idle_connection_is_closed_after_the_idle_timeout(listen: Listen) -> None:
    listener = await listen(Receiver(), idle_timeout=0.3, frame_timeout=30)
    async with connection(listener.port) as (reader, writer):
        writer.write(frame(adt("MSG-1")))
        await read_frames(reader, 1)
        writer.write(b"junk is not activity")
        assert await closed_by_peer(reader)
    await eventually(lambda: listener.connections == 0, "the listener to drop the connection")


async def test_a_frame_not_finished_in_time_closes_the_connection(listen: Listen) -> None:
    listener = await listen(Receiver(), idle_timeout=30, frame_timeout=0.3)
    with structlog.testing.capture_logs() as logs:
        async with connection(listener.port) as (reader, writer):
            writer.write(frame(adt("MSG-1"))[:40])
            assert await closed_by_peer(reader)
    assert "mllp.frame_timeout" in [e["event"] for e in logs]


async def test_connections_beyond_the_cap_are_closed_at_once(listen: Listen) -> None:
    listener = await listen(Receiver(), max_connections=2)
    async with connection(listener.port) as (r1, w1), connection(listener.port) as (r2, w2):
        for n, (reader, writer) in enumerate(((r1, w1), (r2, w2))):
            writer.write(frame(adt(f"MSG-{n}")))
            await read_frames(reader, 1)
        async with connection(listener.port) as (r3, _w3):
            assert await closed_by_peer(r3, within=2)
        w1.close()
        await eventually(lambda: listener.connections == 1, "a connection slot to free up")
        async with connection(listener.port) as (r4, w4):
            w4.write(frame(adt("MSG-4")))
            [answer] = await read_frames(r4, 1)
    assert control_id_of(answer) == "MSG-4"


async def test_closing_lets_the_message_in_hand_be_answered(listen: Listen) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    receiver = Receiver()

    async def slow(message: bytes, peer: PeerInfo) -> bytes:
        entered.set()
        await release.wait()
        return await receiver(message, peer)

    listener = await listen(slow)
    async with (
        connection(listener.port) as (busy_r, busy_w),
        connection(listener.port) as (idle_r, _),
    ):
        busy_w.write(frame(adt("MSG-1")))
        await eventually(lambda: listener.connections == 2, "both connections")
        await asyncio.wait_for(entered.wait(), timeout=5)
        closing = asyncio.create_task(listener.close(grace=5))
        assert await closed_by_peer(idle_r)
        release.set()
        [answer] = await read_frames(busy_r, 1)
        assert await closed_by_peer(busy_r)
        await closing
    assert control_id_of(answer) == "MSG-1"


async def test_logs_name_peers_and_sizes_never_content(listen: Listen) -> None:
    with structlog.testing.capture_logs() as logs:
        listener = await listen(
            Receiver(), max_message_bytes=300, frame_timeout=0.3, reject_oversized=reject_oversized
        )
        async with connection(listener.port) as (reader, writer):
            writer.write(CANARY.encode() + frame(adt("MSG-1")) + frame(adt("BIG", padding=400)))
            await read_frames(reader, 2)
            writer.write(b"\x0b" + adt("MSG-3"))
            assert await closed_by_peer(reader)
    events = {e["event"] for e in logs}
    assert {"mllp.bytes_discarded", "mllp.message_too_large", "mllp.frame_timeout"} <= events
    assert CANARY not in repr(logs)
    assert "9434765919" not in repr(logs)


# --- TLS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _issue(name: str, cn: str, extensions: str, folder: Path) -> None:
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=folder
    )
    _openssl(
        "req",
        "-new",
        "-key",
        f"{name}.key",
        "-subj",
        f"/CN={cn}",
        "-out",
        f"{name}.csr",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.pem", cwd=folder,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=folder)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Carebridge Test CA",
        "-days", "2", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem", cwd=folder,
    )  # fmt: skip
    _issue(
        "server",
        "localhost",
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        folder,
    )
    _issue("client", "epr-client", "extendedKeyUsage=clientAuth\n", folder)
    return Pki(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )


async def test_tls_with_a_required_client_certificate_names_the_client(
    listen: Listen, pki: Pki
) -> None:
    receiver = Receiver()
    server = server_ssl_context(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True)
    assert server.verify_mode is ssl.CERT_REQUIRED
    listener = await listen(receiver, ssl_context=server)
    client = client_ssl_context(pki.ca, pki.client_cert, pki.client_key)
    answer = await send_and_wait(HOST, listener.port, adt("TLS-1"), timeout=5, ssl_context=client)
    assert parse_ack(answer).control_id == "TLS-1"
    assert receiver.peers[0].tls is True
    assert receiver.peers[0].client_cn == "epr-client"


async def test_tls_refuses_a_client_without_a_certificate(listen: Listen, pki: Pki) -> None:
    receiver = Receiver()
    server = server_ssl_context(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True)
    listener = await listen(receiver, ssl_context=server)
    with pytest.raises(DestinationError):
        await send_and_wait(
            HOST, listener.port, adt("TLS-2"), timeout=5, ssl_context=client_ssl_context(pki.ca)
        )
    assert receiver.messages == []


async def test_a_client_does_not_trust_a_server_its_ca_did_not_sign(
    listen: Listen, pki: Pki
) -> None:
    listener = await listen(
        Receiver(), ssl_context=server_ssl_context(pki.server_cert, pki.server_key)
    )
    with pytest.raises(DestinationError, match="CERTIFICATE_VERIFY_FAILED"):
        await send_and_wait(
            HOST, listener.port, adt("TLS-3"), timeout=5, ssl_context=client_ssl_context()
        )


def test_requiring_client_certificates_needs_a_ca(pki: Pki) -> None:
    with pytest.raises(ValueError, match="CA"):
        server_ssl_context(pki.server_cert, pki.server_key, require_client_cert=True)


# --- the client -----------------------------------------------------------------------------


async def test_the_client_keeps_one_connection_for_many_messages(listen: Listen) -> None:
    receiver = Receiver()
    listener = await listen(receiver)
    async with MllpClient(HOST, listener.port, timeout=5) as client:
        answers = [await client.send(adt(f"MSG-{n}")) for n in range(3)]
    assert [control_id_of(a) for a in answers] == ["MSG-0", "MSG-1", "MSG-2"]
    assert len({peer.port for peer in receiver.peers}) == 1


async def test_the_client_reconnects_on_the_next_send_after_a_failure(listen: Listen) -> None:
    receiver = Receiver()

    async def fails_once(message: bytes, peer: PeerInfo) -> bytes:
        if not receiver.messages:
            receiver.messages.append(message)
            raise RuntimeError("first message fails")
        return await receiver(message, peer)

    listener = await listen(fails_once)
    async with MllpClient(HOST, listener.port, timeout=5) as client:
        with pytest.raises(DestinationError):
            await client.send(adt("MSG-1"))
        assert control_id_of(await client.send(adt("MSG-2"))) == "MSG-2"


async def test_no_answer_in_time_is_a_destination_timeout(listen: Listen) -> None:
    release = asyncio.Event()
    receiver = Receiver()

    async def stalls_first(message: bytes, peer: PeerInfo) -> bytes:
        if b"|STALL|" in message:
            await release.wait()
        return await receiver(message, peer)

    listener = await listen(stalls_first)
    async with MllpClient(HOST, listener.port, timeout=0.3) as client:
        with pytest.raises(DestinationTimeout):
            await client.send(adt("STALL"))
        # The late answer to STALL can never be mistaken for this one: a new connection.
        release.set()
        assert control_id_of(await client.send(adt("MSG-2"))) == "MSG-2"


async def test_nobody_listening_is_a_destination_error() -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    with pytest.raises(DestinationError, match="ConnectionRefusedError"):
        await send_and_wait(HOST, port, adt("MSG-1"), timeout=2)


async def test_an_answer_larger_than_the_limit_is_a_destination_error(listen: Listen) -> None:
    receiver = Receiver()
    receiver.answer = lambda m: b"MSA|AA|" + b"X" * 5000
    listener = await listen(receiver)
    async with MllpClient(HOST, listener.port, timeout=5, max_answer_bytes=1000) as client:
        with pytest.raises(DestinationError, match="larger than 1000"):
            await client.send(adt("MSG-1"))


# --- peers written by others ----------------------------------------------------------------


async def test_python_hl7_mllp_send_gets_an_aa_for_each_message(
    listen: Listen, tmp_path: Path
) -> None:
    receiver = Receiver()
    listener = await listen(receiver)
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(b"".join(frame(adt(f"HL7-{n}")) for n in range(3)))
    done = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), "-p", str(listener.port), "-f", str(batch), HOST,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(done.communicate(), timeout=20)
    assert done.returncode == 0, err
    answers = [part for part in out.split(b"\x1c") if b"MSA" in part]
    assert [parse_ack(a)[:2] for a in answers] == [("AA", f"HL7-{n}") for n in range(3)]
    assert len({peer.port for peer in receiver.peers}) == 1  # one connection, three messages


async def test_python_hl7_mllp_send_loose_file_with_lf_segments(
    listen: Listen, tmp_path: Path
) -> None:
    receiver = Receiver()
    listener = await listen(receiver)
    loose = tmp_path / "loose.hl7"
    loose.write_bytes(b"\n".join(adt(f"LOOSE-{n}").replace(b"\r", b"\r\n") for n in range(2)))
    done = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), "--loose", "-p", str(listener.port), "-f", str(loose), HOST,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(done.communicate(), timeout=20)
    assert done.returncode == 0, err
    assert [parse_ack(p).control_id for p in out.split(b"\x1c") if b"MSA" in p] == [
        "LOOSE-0",
        "LOOSE-1",
    ]
    assert [parse(m).msh.value(10) for m in receiver.messages] == ["LOOSE-0", "LOOSE-1"]


class _Hl7apyAck(AbstractHandler):  # type: ignore[misc]
    """hl7apy's side: parse what arrives with hl7apy and answer an ACK hl7apy builds."""

    received: list[str] = []

    def reply(self) -> str:
        incoming = parse_message(self.incoming_message, find_groups=False)
        self.received.append(incoming.msh.msh_10.value)
        ack = Message("ACK", version=incoming.msh.msh_12.value)
        ack.msh.msh_3 = incoming.msh.msh_5.value
        ack.msh.msh_5 = incoming.msh.msh_3.value
        ack.msh.msh_9 = f"ACK^{incoming.msh.msh_9.msh_9_2.value}^ACK"
        ack.msh.msh_10 = f"HL7APY-{incoming.msh.msh_10.value}"
        ack.msa.msa_1 = "AA"
        ack.msa.msa_2 = incoming.msh.msh_10.value
        return f"\x0b{ack.to_er7()}\r\x1c\r"


@pytest.fixture
def hl7apy_server() -> Iterator[int]:
    _Hl7apyAck.received = []
    handlers = {"ADT^A01^ADT_A01": (_Hl7apyAck,), "ADT^A03^ADT_A03": (_Hl7apyAck,)}
    server = MLLPServer(HOST, 0, handlers, timeout=5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


async def test_the_client_delivers_to_hl7apys_mllp_server(hl7apy_server: int) -> None:
    # hl7apy's server answers one message per connection and then closes it: the persistent
    # client must notice and carry on, sending each message exactly once.
    async with MllpClient(HOST, hl7apy_server, timeout=10) as client:
        answers = [await client.send(adt(f"OUT-{n}")) for n in range(3)]
    assert [parse_ack(a)[:2] for a in answers] == [("AA", f"OUT-{n}") for n in range(3)]
    assert _Hl7apyAck.received == ["OUT-0", "OUT-1", "OUT-2"]
    answer = await send_and_wait(HOST, hl7apy_server, adt("OUT-3"), timeout=10)
    assert parse(answer).msh.value(10) == "HL7APY-OUT-3"


async def test_a_rendered_discharge_is_read_by_hl7apy_on_the_other_end(hl7apy_server: int) -> None:
    event = map_hl7v2(A03_FIXTURE, FeedProfile(feed="mh-trust"))
    message = render_adt(
        event,
        control_id="DLV-0001",
        sending_app="CAREBRIDGE",
        sending_facility="RXT",
        receiving_app="EPR",
        receiving_facility="R0A",
        now=NOW,
    )
    answer = await send_and_wait(HOST, hl7apy_server, message, timeout=10)
    assert parse_ack(answer)[:2] == ("AA", "DLV-0001")
    assert parse(answer).msh.field(9).raw == "ACK^A03^ACK"
    assert _Hl7apyAck.received == ["DLV-0001"]
