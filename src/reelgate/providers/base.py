"""The small interface every upstream implements, and the declaration each provider exports.

A provider translates a ``NormalizedRequest`` into its upstream's dialect and the upstream's task
back into an ``Observation``. It raises only reelgate errors: ``ClientError`` when the request
itself is refused, ``UpstreamError`` when the upstream cannot help right now.

A provider *declares itself* with one ``ProviderSpec`` (``providers/<name>/__init__.py`` exports
``SPEC``): its name, what a channel of it takes (a credential, typed options, a region or base
URL), its catalogue, how to build an instance for a channel, its simulator and what it supports.
Nothing outside the provider's own folder names it; reelgate finds the built-in declarations in
``providers.plugins`` and third-party ones through the ``reelgate.providers`` entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.channels import AdmissionCaps, Channel
from reelgate.core.lifecycle import Callback, CallbackHint, Observation
from reelgate.net import Network

if TYPE_CHECKING:
    from reelgate.settings import Settings


class Provider(Protocol):
    """One channel of one provider (a provider with two API keys is two instances)."""

    name: str
    channel: str
    # Admission caps and request rate of this channel (the engine enforces them).
    caps: AdmissionCaps

    def models(self) -> Sequence[ModelCapabilities]:
        """The models this provider serves (its offerings), with what each can do there."""

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        """Start the work upstream; return the upstream's id for it.

        ``callback_url``, when given, is where the upstream may report status changes (a hint the
        engine confirms with a look-up, never trusted as is).
        """

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        """The upstream id of work an earlier ``submit`` of this task created, if any.

        Called before re-submitting a task whose earlier attempt may have reached the upstream
        (a crash or a lost reply after ``since``): re-sending blindly could make a second paid
        video. Raises ``UpstreamError`` when it cannot tell (the engine then waits and retries).
        """

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        """Ask the upstream about many tasks at once (its batch look-up, or one call each).

        An id missing from the answer is unknown upstream; an id mapped to ``None`` was seen but
        could not be understood (an unknown status string): look again later.
        """

    async def cancel(self, upstream_id: str) -> None:
        """Cancel upstream work, or raise ``Conflict`` when it can no longer be cancelled."""

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        """What a callback claims (a hint to confirm with a look-up, never trusted as is).

        ``None``: nothing to go by (garbage, or a signature that does not verify): the task is
        looked up soon anyway. A hint names the task and whether it says it ended; a hint with a
        ``reply`` is answered with it (a handshake's challenge). Never raises."""

    async def probe(self) -> None:
        """One cheap authenticated call; raises the upstream's error when the channel can't work
        (used to re-enable a channel its health disabled)."""

    async def close(self) -> None: ...


class NoOptions(BaseModel):
    """The options of a provider whose channels take none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Credential:
    """What the one secret string of a channel is (an API key, ``ACCESS:SECRET``, a
    service-account JSON), and how its form is checked before it is stored."""

    description: str
    # Raises ValueError with a human message when the string cannot be this credential.
    check: Callable[[str], None] | None = None
    # Several lines (a JSON document): the CLI reads it with --secret-file.
    multiline: bool = False

    def validate(self, secret: str) -> None:
        if not secret:
            raise ValueError(f"{self.description} is required")
        if not self.multiline and any(ord(c) < 0x21 or ord(c) > 0x7E for c in secret):
            # It travels in an HTTP header: a control or non-ASCII character would fail there.
            raise ValueError(f"{self.description} must be visible ASCII characters only")
        if self.check is not None:
            self.check(secret)


@dataclass(frozen=True, slots=True)
class Features:
    """What an upstream supports, as the engine and the contract suite rely on it."""

    # Upstream ids one look-up call may carry (1: no batch look-up).
    batch_size: int = 1
    # How its callbacks are to be trusted: none sent, unsigned (confirmed by a look-up), signed
    # (verified, then confirmed), or behind a challenge handshake.
    callbacks: Literal["none", "unsigned", "signed", "challenge"] = "none"
    # Which tasks it can cancel: none, those still queued there, or any unfinished one.
    cancel: Literal["none", "queued", "any"] = "none"
    # Whether the upstream itself ends tasks that waited too long (a deadline it enforces).
    upstream_deadline: bool = False
    # Whether ``reconcile`` can find an attempt whose answer was lost (else it answers None).
    reconcile: bool = True


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What every provider instance may need from the gateway that builds it."""

    data_dir: Path = Path("./reelgate-data")
    allow_networks: Sequence[Network] = ()
    clock: Callable[[], float] | None = None
    # Upstream request timeout (s), unless a channel's options set their own.
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ChannelDeclaration:
    """A channel a provider's settings shorthand defines (e.g. ``REELGATE_ARK_API_KEY``)."""

    channel: Channel
    secret: str


# Builds one instance for a channel, its secret and its validated options.
Builder = Callable[[Channel, str, BaseModel, BuildContext], Provider]


@dataclass(frozen=True)
class ProviderSpec:
    """Everything reelgate needs to know about one upstream, declared by the provider."""

    name: str
    title: str
    # The models it offers (public names; ``upstream_model`` is its own id for each).
    catalogue: Callable[[], Sequence[ModelCapabilities]]
    build: Builder
    # The secret a channel needs; ``None``: a provider that needs none (the sandbox).
    credential: Credential | None = None
    # The typed options of a channel (validated on add, stored as JSON).
    options: type[BaseModel] = NoOptions
    # Region name → base URL; a channel names one, or gives its own base URL.
    regions: Mapping[str, str] = field(default_factory=dict)
    default_region: str = ""
    # Caps a new channel gets unless it sets its own.
    default_caps: AdmissionCaps = field(default_factory=AdmissionCaps)
    features: Features = field(default_factory=Features)
    # "module:attribute" of its wire-level simulator's ``reelgate.testing.SimulatorEntry``
    # (``reelgate simulate NAME``), and of its ``reelgate.testing.ContractTarget`` (the
    # provider contract suite runs over every declared one).
    simulator: str = ""
    contract: str = ""
    # One instance that needs no channel row (the sandbox), built when its settings enable it.
    builtin: Callable[[Settings, BuildContext], Provider | None] | None = None
    # Channels its own settings shorthand defines (``REELGATE_ARK_*``), given the settings.
    from_settings: Callable[[Settings], Sequence[ChannelDeclaration]] | None = None
    # What to tell a client who asks for one of its models while no channel serves it.
    setup_hint: str = ""

    def base_url(self, channel: Channel) -> str:
        """The URL a channel talks to: its own, else its region's, else the default region's."""
        if channel.base_url:
            return channel.base_url
        return self.regions.get(channel.region or self.default_region, "") or self.regions.get(
            self.default_region, ""
        )

    def parse_options(self, raw: Mapping[str, Any]) -> BaseModel:
        """The channel's options as the provider's model (``pydantic.ValidationError`` when
        they don't fit)."""
        return self.options.model_validate(dict(raw))

    def hint(self) -> str:
        return self.setup_hint or (
            f"add a channel of provider '{self.name}' (reelgate channel add NAME --provider "
            f"{self.name}) to enable {self.title}"
        )
