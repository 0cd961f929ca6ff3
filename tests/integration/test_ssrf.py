"""Outbound connections for user-supplied URLs go to the very address the SSRF guard checked:
image fetches, media copies and webhooks, each redirect hop checked again, TLS still verified
against the host name. A resolver answers a public address first and loopback after (DNS
rebinding); "the public internet" is a server on ``PUBLIC_ADDRESS``. Every test here runs in a
network namespace with only loopback up (``tests.netns``): nothing can leave the machine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reelgate.core.errors import InvalidRequest
from reelgate.engine.mirror import MediaMirror
from reelgate.files import LocalFiles
from reelgate.net import AddressGuard, fetch_url, guarded_client
from reelgate.store.sql import SqlStore
from reelgate.testing import ManualClock
from tests.files import FileServer
from tests.integration.test_media import MP4, succeeded
from tests.integration.test_webhooks import finished_task, sender
from tests.netns import PUBLIC_ADDRESS, loopback_only
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Rebinding:
    """DNS that answers the public address ``times`` times, then loopback (a short TTL, as an
    attacker's name server would give)."""

    def __init__(self, first: str = PUBLIC_ADDRESS, *, times: int = 1) -> None:
        self.answers = [first] * times
        self.then = "127.0.0.1"
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host == "inside.test":
            return ["127.0.0.1"]
        return [self.answers.pop(0) if self.answers else self.then]


@dataclasses.dataclass
class Pair:
    """The same port on the public address and on loopback, serving different files."""

    public: FileServer
    loopback: FileServer

    @property
    def port(self) -> int:
        assert self.public.server is not None
        return int(self.public.server.server_address[1])

    def url(self, path: str, host: str = "cdn.test") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def pair() -> Iterator[Pair]:
    public = FileServer(host=PUBLIC_ADDRESS).start()
    assert public.server is not None
    loopback = FileServer(port=public.server.server_address[1]).start()
    public.files["/v.mp4"] = MP4
    public.files["/f.png"] = b"\x89PNG public"
    loopback.files["/v.mp4"] = b"secret from loopback"
    loopback.files["/f.png"] = b"secret from loopback"
    yield Pair(public, loopback)
    public.stop()
    loopback.stop()


@loopback_only
async def test_an_image_fetch_connects_to_the_address_it_checked(pair: Pair) -> None:
    dns = Rebinding()
    body = await fetch_url(pair.url("/v.mp4"), max_bytes=10**6, resolver=dns)
    assert body == MP4
    assert dns.asked == ["cdn.test"]  # one resolution: no second answer to rebind to
    assert pair.loopback.hits == []


@loopback_only
async def test_a_name_answering_loopback_is_refused_before_any_connection(pair: Pair) -> None:
    with pytest.raises(InvalidRequest) as err:
        await fetch_url(pair.url("/v.mp4", "inside.test"), max_bytes=10**6, resolver=Rebinding())
    assert err.value.code == "url_not_allowed"
    assert pair.loopback.hits == []


@loopback_only
async def test_every_redirect_hop_is_checked_again(pair: Pair) -> None:
    port = pair.port
    pair.public.redirects["/same"] = "/v.mp4"
    dns = Rebinding(times=2)  # (a new connection for the second hop resolves again)
    assert await fetch_url(pair.url("/same"), max_bytes=10**6, resolver=dns) == MP4
    for target in (
        f"http://127.0.0.1:{port}/v.mp4",
        f"http://inside.test:{port}/v.mp4",  # a name that answers loopback
        f"http://[::ffff:127.0.0.1]:{port}/v.mp4",
        "http://169.254.169.254/latest/meta-data",
    ):
        pair.public.redirects["/hop"] = target
        with pytest.raises(InvalidRequest) as err:
            await fetch_url(pair.url("/hop"), max_bytes=10**6, resolver=Rebinding())
        assert err.value.code == "url_not_allowed", target
    assert pair.loopback.hits == []


@loopback_only
async def test_media_copies_connect_to_the_address_that_was_checked(
    store: SqlStore, tmp_path: Path, pair: Pair
) -> None:
    clock = ManualClock()
    named = NamedCdn(pair)
    service, _, me, task = await succeeded(store, tmp_path, named, clock)
    mirror = MediaMirror(
        service, LocalFiles(tmp_path / "copies"), worker_id="w", retention_s=60, resolver=named
    )
    assert await mirror.tick() == 2
    kept = await service.refresh(me, task.id)
    assert kept.media_state == "stored"
    assert (tmp_path / "copies" / f"{task.id}.video.mp4").read_bytes() == MP4
    assert (tmp_path / "copies" / f"{task.id}.last_frame.png").read_bytes() == b"\x89PNG public"
    assert pair.loopback.hits == []


class NamedCdn(FileServer):
    """The public file server under a name (``cdn.test``) that rebinds to loopback after its
    first answers; what ``cdn_upstream`` hands out as result URLs."""

    def __init__(self, pair: Pair) -> None:
        super().__init__()
        self.pair = pair
        self.dns = Rebinding(times=2)  # the video and its last frame are copied side by side

    @property
    def asked(self) -> list[str]:
        return self.dns.asked

    def url(self, path: str) -> str:
        return self.pair.url(path)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        return await self.dns(host, port)


@loopback_only
async def test_webhooks_connect_to_the_address_that_was_checked(store: SqlStore) -> None:
    public = Receiver(host=PUBLIC_ADDRESS).start()
    assert public.server is not None
    port = public.server.server_address[1]
    loopback = Receiver(port=port).start()
    try:
        clock = ManualClock(time.time())
        service, _, _ = await finished_task(store, clock, callback_url=public.url)
        (due,) = await store.claim_deliveries(clock(), 10, "w1", 30)
        # The receiver's name rebinds to loopback once it has been checked.
        dns = Rebinding()
        hooks = sender(service, allow_networks=(), resolver=dns)
        await hooks.deliver(dataclasses.replace(due, url=f"http://hooks.test:{port}/hook"))
        assert len(public.received) == 1
        assert loopback.received == []
        assert dns.asked == ["hooks.test"]
        # A sender whose name now answers loopback: refused, nothing sent.
        await sender(service, allow_networks=(), resolver=Rebinding(first="127.0.0.1")).deliver(
            dataclasses.replace(due, url=f"http://hooks.test:{port}/hook")
        )
        assert loopback.received == []
    finally:
        public.stop()
        loopback.stop()


@loopback_only
async def test_tls_keeps_the_host_name_for_sni_and_the_certificate_check() -> None:
    with tls_server("media.test") as (port, trust, seen):
        guard = AddressGuard(resolver=Rebinding())
        async with guarded_client(guard, transport=guard.transport(verify=trust)) as client:
            answer = await client.get(f"https://media.test:{port}/v.mp4")
        assert answer.status_code == 200
        assert seen == [("media.test", f"media.test:{port}")]  # (SNI, Host)
        # The certificate is checked against the name, not against the address connected to.
        guard = AddressGuard(resolver=Rebinding())
        async with guarded_client(guard, transport=guard.transport(verify=trust)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"https://{PUBLIC_ADDRESS}:{port}/v.mp4")


@dataclasses.dataclass
class _Tls:
    cert_pem: bytes
    key_pem: bytes


def _self_signed(name: str) -> _Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _Tls(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


class tls_server:
    """An HTTPS server on the public address with a certificate for ``name``; records what each
    request named (SNI, Host)."""

    def __init__(self, name: str) -> None:
        self.tls = _self_signed(name)
        self.seen: list[tuple[str | None, str | None]] = []
        self._sni: list[str | None] = []

    def __enter__(self) -> tuple[int, ssl.SSLContext, list[tuple[str | None, str | None]]]:
        owner = self
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_bytes(self.tls.cert_pem)
            key.write_bytes(self.tls.key_pem)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, sni, _ctx: owner._sni.append(sni)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append((owner._sni[-1] if owner._sni else None, self.headers["host"]))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((PUBLIC_ADDRESS, 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        trust = ssl.create_default_context(cadata=self.tls.cert_pem.decode())
        return int(self.server.server_address[1]), trust, self.seen

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
