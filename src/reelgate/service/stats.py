"""The shared-state gauges of ``reelgate.metrics``, read from the database."""

from __future__ import annotations

from reelgate.core.channels import ChannelState
from reelgate.metrics import Metrics
from reelgate.store.base import Store


async def read_state(store: Store, metrics: Metrics, now: float) -> None:
    """Set every shared-state gauge from one consistent set of reads (labels that vanished are
    dropped, so a removed channel or finished model does not linger)."""
    unfinished = await store.unfinished_counts()
    queues = await store.unsubmitted_counts()
    load = await store.channel_load()
    channels = await store.list_channels()
    ledger = await store.ledger_totals()
    # No await below: a scrape never sees half-updated gauges.
    metrics.tasks.clear()
    for (provider, model, status), n in unfinished.items():
        metrics.tasks.labels(provider, model, status).set(n)
    metrics.admission_queue.clear()
    for provider, n in queues.items():
        metrics.admission_queue.labels(provider).set(n)
    metrics.channel_tasks.clear()
    metrics.channel_state.clear()
    for row in channels:
        c = row.channel
        counts = load.get((c.provider, c.name), {})
        for state in ("waiting", "queued", "running"):
            metrics.channel_tasks.labels(c.name, state).set(counts.get(state, 0))
        current = c.state(now)
        for state in ChannelState:
            metrics.channel_state.labels(c.name, state.value).set(int(state is current))
    metrics.ledger.clear()
    for kind, amount in ledger.items():
        metrics.ledger.labels(kind).set(amount)
