"""The provider contract suite: one parametrised pytest suite every (provider, simulator) pair
passes, shipped so that a provider outside reelgate can run it from its own tests.

Use it from a test module by importing the tests and naming the targets::

    from reelgate.testing.contract import *  # noqa: F403  (the test_* functions)
    from reelgate.testing.contract import contract_targets

    contract_target = contract_targets(MY_TARGET)  # one or more ``ContractTarget``s

Every test starts a fresh simulator of the target (``ContractTarget.start``), builds the
provider on it and drives both through the provider's Protocol (``reelgate.providers.base``)
and the simulator's uniform control handle (``SimulatorControl``):

- a task created through each end: success, failure, moderation (refused at create or failed
  later, with the code ``content_moderation``), expiry, and cancel by the declared rule
  (``Conflict`` once it no longer applies, and for an id never handed out);
- batch look-ups: every known id answered, an id unknown upstream missing from the answer, an
  id seen but not understood (an unknown status string) mapped to ``None`` and looked at again
  until its real end, never shown; n ids cost ceil(n / declared batch size) requests;
- 500, 429 with and without ``Retry-After``, timeout, connection reset, malformed and slow
  answers at create and at look-up: a transient error (never the request's fault, never a
  verdict that fails the task or disables the channel, ``retry_after`` as sent) or the truth,
  and exactly one task upstream each time, the provider's ``reconcile`` finding a create whose
  answer was lost;
- callbacks: each names its task and the final one is confirmed by a look-up; a forged one
  (copied onto another task or an unknown id) is at most a hint, and the look-up tells the
  truth; garbage never raises;
- ``probe()`` works with the right credential; a wrong one makes probe and submit raise
  ``upstream_auth_failed``, the code whose verdict disables the channel;
- the result is fetchable (reelgate's durable copy reads it) and a real MP4 (decoded by PyAV).

A check a target cannot stage is declared in its ``not_applicable`` (reported as skipped with
the reason), and one a known defect still fails in its ``known_failures`` (reported as an
expected failure until it passes, which then fails the run so the entry goes).

Fidelity: a simulator is right when the upstream's official client works against it unchanged.
Where the upstream publishes a client (``volcengine-ark-runtime`` for Ark; ``google-genai``,
``dashscope``, ``fal-client``, ``replicate``, ``runwayml``, ``lumaai`` for the upstreams to
come), the simulator's tests drive it with that client, pointed only at the simulator's base
URL (see ``tests/acceptance/test_volcengine_sdk.py``). The contract suite then proves the
provider against a simulator that the upstream's own code accepts.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from reelgate.testing import contract_checks as checks
from reelgate.testing.contract_support import run_check
from reelgate.testing.simulator.kinds import FaultKind
from reelgate.testing.target import ContractTarget

__all__ = [
    "contract_targets",
    "test_bad_credentials_disable_the_channel",
    "test_batch_lookup_answers_known_ids_and_omits_unknown_ones",
    "test_batch_lookup_uses_the_declared_batch_size",
    "test_callbacks_are_parsed_and_confirmed",
    "test_cancel_of_an_unknown_task_conflicts",
    "test_cancel_while_queued",
    "test_cancel_while_running",
    "test_deeply_nested_callbacks_never_raise",
    "test_ends_in_expiry",
    "test_ends_in_failure",
    "test_ends_in_moderation",
    "test_ends_in_success",
    "test_fault_at_create",
    "test_fault_at_lookup",
    "test_forged_callbacks_change_nothing",
    "test_garbage_callbacks_never_raise",
    "test_probe_succeeds_with_a_good_credential",
    "test_reconcile_finds_only_what_was_created",
    "test_the_result_is_a_real_mp4",
    "test_unknown_status_is_none_and_looked_at_again",
]

FAULTS = list(FaultKind)


def contract_targets(*targets: ContractTarget) -> Any:
    """The ``contract_target`` fixture over ``targets``: assign it to a module-level name."""

    @pytest.fixture(name="contract_target", params=targets, ids=[t.name for t in targets])
    def contract_target(request: pytest.FixtureRequest) -> ContractTarget:
        target: ContractTarget = request.param
        return target

    return contract_target


def test_ends_in_success(contract_target: ContractTarget) -> None:
    run_check(contract_target, "success", checks.success)


def test_ends_in_failure(contract_target: ContractTarget) -> None:
    run_check(contract_target, "failure", checks.failure)


def test_ends_in_moderation(contract_target: ContractTarget) -> None:
    run_check(contract_target, "moderation", checks.moderation)


def test_ends_in_expiry(contract_target: ContractTarget) -> None:
    run_check(contract_target, "expiry", checks.expiry)


def test_unknown_status_is_none_and_looked_at_again(contract_target: ContractTarget) -> None:
    run_check(contract_target, "unknown_status", checks.unknown_status)


def test_cancel_while_queued(contract_target: ContractTarget) -> None:
    run_check(contract_target, "cancel_queued", checks.cancel_queued)


def test_cancel_while_running(contract_target: ContractTarget) -> None:
    run_check(contract_target, "cancel_running", checks.cancel_running)


def test_cancel_of_an_unknown_task_conflicts(contract_target: ContractTarget) -> None:
    run_check(contract_target, "cancel_unknown", checks.cancel_unknown)


def test_batch_lookup_answers_known_ids_and_omits_unknown_ones(
    contract_target: ContractTarget,
) -> None:
    run_check(contract_target, "batch", checks.batch)


def test_batch_lookup_uses_the_declared_batch_size(contract_target: ContractTarget) -> None:
    run_check(contract_target, "batch_size", checks.batch_size)


@pytest.mark.parametrize("kind", FAULTS, ids=[k.value for k in FAULTS])
def test_fault_at_create(contract_target: ContractTarget, kind: FaultKind) -> None:
    scenario = partial(checks.fault_at_create, kind=kind)
    run_check(contract_target, f"fault_at_create:{kind}", scenario)


@pytest.mark.parametrize("kind", FAULTS, ids=[k.value for k in FAULTS])
def test_fault_at_lookup(contract_target: ContractTarget, kind: FaultKind) -> None:
    scenario = partial(checks.fault_at_lookup, kind=kind)
    run_check(contract_target, f"fault_at_lookup:{kind}", scenario)


def test_reconcile_finds_only_what_was_created(contract_target: ContractTarget) -> None:
    run_check(contract_target, "reconcile", checks.reconcile)


def test_callbacks_are_parsed_and_confirmed(contract_target: ContractTarget) -> None:
    run_check(contract_target, "callbacks", checks.callbacks)


def test_forged_callbacks_change_nothing(contract_target: ContractTarget) -> None:
    run_check(contract_target, "forged_callbacks", checks.forged_callbacks)


def test_garbage_callbacks_never_raise(contract_target: ContractTarget) -> None:
    run_check(contract_target, "garbage_callbacks", checks.garbage_callbacks)


def test_deeply_nested_callbacks_never_raise(contract_target: ContractTarget) -> None:
    run_check(contract_target, "deep_garbage_callbacks", checks.deep_garbage_callbacks)


def test_probe_succeeds_with_a_good_credential(contract_target: ContractTarget) -> None:
    run_check(contract_target, "probe", checks.probe)


def test_bad_credentials_disable_the_channel(contract_target: ContractTarget) -> None:
    run_check(contract_target, "bad_credentials", checks.bad_credentials)


def test_the_result_is_a_real_mp4(contract_target: ContractTarget) -> None:
    run_check(contract_target, "result_mp4", checks.result_is_mp4)
