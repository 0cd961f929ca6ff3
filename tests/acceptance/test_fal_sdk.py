"""The official ``fal-client`` SDK against reelgate's fal simulator, unchanged.

fal-client builds its queue URLs as ``https://`` + ``FAL_QUEUE_RUN_HOST`` (its documented
override) when it is imported, so the simulator is served over TLS on loopback with a
certificate made here, trusted through ``SSL_CERT_FILE``, and the SDK runs in a process of its
own with only those variables (and ``FAL_KEY``) set: ``submit``, ``status``, ``result`` and
``cancel``, and a webhook whose Ed25519 signature verifies against the simulator's JWKS.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reelgate.providers.fal import webhooks
from reelgate.testing.contract_support import CallbackReceiver
from reelgate.testing.fal_simulator import FalSimulator
from tests.conftest import free_port

KEY = "fal-sdk-key"


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FalSimulator, int, Path]]:
    cert, key = certificate(tmp_path_factory.mktemp("tls"))
    sim = FalSimulator(api_keys={KEY}, queued_seconds=0.3, running_seconds=0.3)
    port = free_port()
    sim.public_url = f"https://127.0.0.1:{port}"
    config = uvicorn.Config(
        sim.app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the TLS simulator did not start"
        time.sleep(0.01)
    yield sim, port, cert
    server.should_exit = True
    thread.join(timeout=10)


SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import fal_client

    webhook = sys.argv[1]
    client = fal_client.SyncClient(key=None)  # FAL_KEY from the environment
    app = "fal-ai/veo3"
    out = {}
    handle = client.submit(app, {"prompt": "a lighthouse", "duration": "4s"}, webhook_url=webhook)
    out["queued"] = type(client.status(app, handle.request_id)).__name__
    out["result"] = handle.get(interval=0.05)
    out["done"] = type(client.status(app, handle.request_id, with_logs=True)).__name__
    out["same"] = client.result(app, handle.request_id) == out["result"]
    waiting = client.submit("fal-ai/bytedance/seedance/v1/pro/text-to-video",
                            {"prompt": "a harbour [sim:queued=600]", "duration": "5"})
    client.cancel("fal-ai/bytedance", waiting.request_id)
    ended = client.status("fal-ai/bytedance", waiting.request_id)
    out["cancelled"] = [type(ended).__name__, ended.error, ended.error_type]
    try:
        client.submit("fal-ai/veo3", {"prompt": "x", "duration": "7s"})
    except fal_client.client.FalClientHTTPError as exc:
        out["refused"] = exc.status_code
    print(json.dumps(out))
    """
)


def run_sdk(port: int, cert: Path, webhook: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "HTTP", "HTTPS"))}
    env |= {
        "FAL_KEY": KEY,
        "FAL_RUN_HOST": f"127.0.0.1:{port}",
        "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{port}",
        "SSL_CERT_FILE": str(cert),
        "NO_PROXY": "127.0.0.1",
    }
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, webhook],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return dict(json.loads(ran.stdout.strip().splitlines()[-1]))


def test_fal_client_submits_polls_fetches_and_cancels(
    served: tuple[FalSimulator, int, Path],
) -> None:
    sim, port, cert = served
    receiver = CallbackReceiver()
    with receiver.serving() as hook:
        out = run_sdk(port, cert, hook)
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert out["queued"] in ("Queued", "InProgress")
    assert out["done"] == "Completed"
    assert out["same"] is True
    assert out["result"]["video"]["url"].startswith(f"https://127.0.0.1:{port}/files/")
    assert out["cancelled"] == ["Completed", "Request was cancelled", "request_cancelled"]
    assert out["refused"] == 422
    # The webhook the SDK asked for, verified against the simulator's published keys.
    assert len(receiver.received) == 1
    callback = receiver.received[0]
    keys = webhooks.parse_jwks(sim.jwks())
    request_id = webhooks.verify(callback.headers, callback.body, keys, time.time())
    body = json.loads(callback.body)
    assert request_id == body["request_id"]
    assert body["status"] == "OK"
    assert body["payload"] == out["result"]
