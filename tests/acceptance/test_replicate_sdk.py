"""The official ``replicate`` SDK against reelgate's Replicate simulator, unchanged but for its
base URL (``Client(base_url=…)``): ``predictions.create`` (of a model and of a version),
``get``, ``cancel``, the list, and webhook validation with the account's secret."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.webhook import InvalidSignatureError, Webhooks

from reelgate.testing import serve_in_thread
from reelgate.testing.contract_support import CallbackReceiver
from reelgate.testing.replicate_rules import version_of
from reelgate.testing.replicate_simulator import ReplicateSimulator

KEY = "r8_sdk-token"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[ReplicateSimulator, replicate.Client]]:
    simulator = ReplicateSimulator(api_keys={KEY}, queued_seconds=0.2, running_seconds=0.3)
    handle = serve_in_thread(simulator)
    client = replicate.Client(api_token=KEY, base_url=handle.base_url)
    yield simulator, client
    client._client.close()  # the SDK keeps one connection pool per client
    handle.stop()


def wait(client: replicate.Client, prediction_id: str) -> replicate.prediction.Prediction:
    deadline = time.monotonic() + 30
    while True:
        found = client.predictions.get(prediction_id)
        if found.status in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_create_get_and_cancel_through_the_sdk(
    sim: tuple[ReplicateSimulator, replicate.Client],
) -> None:
    simulator, client = sim
    made = client.predictions.create(
        model="bytedance/seedance-1-pro", input={"prompt": "a fox", "duration": 5}
    )
    assert made.status == "starting"
    done = wait(client, made.id)
    assert done.status == "succeeded"
    assert isinstance(done.output, str)
    assert done.output.endswith("/output.mp4")
    assert done.metrics is not None
    assert "predict_time" in done.metrics
    # A pinned version goes to /v1/predictions.
    pinned = client.predictions.create(
        version=version_of("kwaivgi/kling-v2.1-master"), input={"prompt": "a kite"}
    )
    assert pinned.model == "kwaivgi/kling-v2.1-master"
    # Cancel a prediction still starting; the SDK reads the canceled prediction back.
    slow = client.predictions.create(
        model="google/veo-3", input={"prompt": "a slow boat [sim:queued=600]"}
    )
    cancelled = client.predictions.cancel(slow.id)
    assert cancelled.status == "canceled"
    assert {p.id for p in client.predictions.list().results} >= {made.id, pinned.id, slow.id}
    with pytest.raises(ReplicateError) as refused:
        client.predictions.create(model="google/veo-3", input={"prompt": "x", "duration": 9})
    assert refused.value.status == 422
    assert simulator.created == 3


def test_webhooks_validate_with_the_accounts_secret(
    sim: tuple[ReplicateSimulator, replicate.Client],
) -> None:
    simulator, client = sim
    receiver = CallbackReceiver()
    with receiver.serving() as hook:
        made = client.predictions.create(
            model="minimax/hailuo-02",
            input={"prompt": "a lantern"},
            webhook=hook,
            webhook_events_filter=["completed"],
        )
        assert wait(client, made.id).status == "succeeded"
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(receiver.received) == 1  # "completed" only
    callback = receiver.received[0]
    secret = client.webhooks.default.secret()
    assert secret.key.startswith("whsec_")
    # Raises on a bad signature or a stale timestamp.
    Webhooks.validate(
        headers=dict(callback.headers), body=callback.body.decode(), secret=secret, tolerance=300
    )
    # After the account's secret is rotated, the old delivery no longer validates.
    simulator.rotate_secret(KEY)
    with pytest.raises(InvalidSignatureError):
        Webhooks.validate(
            headers=dict(callback.headers),
            body=callback.body.decode(),
            secret=client.webhooks.default.secret(),
        )
