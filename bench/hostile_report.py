"""The hostile corpus's verdict: answers and server log lines folded into failure classes.

A class is (check, route, slot, status and code, log line): the same bug met by many values shows
once, with the families of values (kinds) that met it, a count and one reproducer. Log lines are
matched to requests by request id (the worker binds the id of the request that created a task,
so a task that breaks the worker points at its create); the frame is named without its line
number, so a class found here can be looked for again after a merge.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.fuzz import upstream_outage
from bench.hostile_wire import Answer, Case, reproducer

_FRAME = re.compile(r'File "[^"]*/reelgate/([^"]+)", line \d+, in (\S+)')
NOTE = "error: "  # an error line without a traceback: listed, not failed
# Families no body field may hold (not Unicode; not a finite number where a number goes).
NEVER_VALID = frozenset({"surrogate", "invalid-utf8", "non-finite"})
_EXCEPTION_LINE = re.compile(r"^[\s|+]*((?:[\w.]+Error|[\w.]*Exception\w*|[\w.]+Group)\b.*)$")


# What varies between two meetings of one bug: the character, its position, the value.
_VARYING = [
    (re.compile(r"(?<![A-Za-z])'[^']*'(?![A-Za-z])"), "'…'"),
    (re.compile(r"(position |argument \$|value has )\d+"), r"\1N"),
    (re.compile(r"(query argument \$N): .*? \("), r"\1: … ("),
]


def _general(line: str) -> str:
    for pattern, replacement in _VARYING:
        line = pattern.sub(replacement, line)
    return line


def signature(entry: dict[str, Any]) -> str:
    """``event: last exception line [at module function]``."""
    event = str(entry.get("event", ""))[:160]
    lines = str(entry.get("exception", "")).strip().splitlines()
    if not lines:
        return NOTE + event
    frames = _FRAME.findall("\n".join(lines))
    where = f" [at {frames[-1][0]} {frames[-1][1]}]" if frames else ""
    # The exception's own line (a driver error's, not SQLAlchemy's link to its docs after it).
    named = [m.group(1) for line in lines if (m := _EXCEPTION_LINE.match(line))]
    return f"{event}: {_general((named or lines)[-1])[:240]}{where}"


@dataclass(frozen=True)
class Logged:
    request_id: str
    at: float  # the line's timestamp (0: none)
    line: str  # its signature


def log_entries(data: bytes) -> list[Logged]:
    """The error lines of a log excerpt; a traceback printed outside the JSON log (an asyncio
    task's, a thread's) counts as one line, named by its last exception."""
    out: list[Logged] = []
    loose: list[str] = []

    def flush() -> None:
        if any("Traceback" in t for t in loose):
            text = "\n".join(loose)
            found = [m.group(1) for t in loose if (m := _EXCEPTION_LINE.match(t))]
            frames = _FRAME.findall(text)
            where = f" [at {frames[-1][0]} {frames[-1][1]}]" if frames else ""
            last = _general(found[-1] if found else loose[-1])[:240]
            out.append(Logged("", 0.0, f"traceback outside the log: {last}{where}"))
        loose.clear()

    for text in data.decode("utf-8", "replace").splitlines():
        try:
            entry = json.loads(text)
        except ValueError:
            loose.append(text)
            continue
        flush()
        if not isinstance(entry, dict):
            continue
        if entry.get("event") != "unhandled error" and entry.get("level") not in (
            "error",
            "critical",
        ):
            continue
        try:
            at = datetime.fromisoformat(str(entry.get("timestamp"))).timestamp()
        except ValueError:
            at = 0.0
        out.append(Logged(str(entry.get("request_id") or ""), at, signature(entry)))
    flush()
    return out


SLACK_S = 0.05


def attribute(
    done: list[tuple[Case, Answer]], logged: list[Logged]
) -> tuple[list[list[str]], list[str]]:
    """Each line to the request it belongs to: by request id (the worker's lines carry their
    task's creator's), else by time (an unhandled error is logged outside the request's context,
    so without its id) to a request answered 5xx, then to any request under way; the rest is
    nobody's."""
    ids: dict[str, int] = {}
    for index, (case, answer) in enumerate(done):
        for found in (answer.headers.get("x-request-id"), case.header(b"x-request-id")):
            if found:
                ids[found if isinstance(found, str) else found.decode("latin-1")] = index
    lines: list[list[str]] = [[] for _ in done]
    nobody: list[str] = []
    for entry in logged:
        which: int | None = ids.get(entry.request_id) if entry.request_id else None
        if which is None and entry.at:
            during = [
                i
                for i, (_, a) in enumerate(done)
                if a.started - SLACK_S <= entry.at <= a.ended + SLACK_S
            ]
            # A 5xx first, one without a line of its own first, the nearest in time first.
            during.sort(
                key=lambda i: (
                    (done[i][1].status or 0) < 500,
                    bool(lines[i]),
                    abs((done[i][1].started + done[i][1].ended) / 2 - entry.at),
                )
            )
            which = during[0] if during else None
        if which is None:
            nobody.append(entry.line)
        else:
            lines[which].append(entry.line)
    return lines, nobody


@dataclass
class FailureClass:
    check: str
    route: str
    slot: str
    status: str
    log: str
    kinds: Counter[str] = field(default_factory=Counter)
    example: str = ""
    answer: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "kinds": dict(self.kinds), "count": self.count}

    @property
    def count(self) -> int:
        return sum(self.kinds.values())


@dataclass
class Report:
    db: str
    routes: int
    secrets: dict[str, str]
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    classes: dict[tuple[str, ...], FailureClass] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    swept: int = 0  # requests of the sweep (the rest are random)

    def ok(self) -> bool:
        return not self.classes

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def record(self, case: Case, answer: Answer, lines: list[str], limit: int) -> None:
        self.requests[case.route] += 1
        status = answer.status
        self.statuses[f"{status // 100}xx" if status else "none"] += 1
        for line in lines:
            if line.startswith(NOTE):
                self.notes[f"{case.route}: {line}"] += 1
        failed = [line for line in lines if not line.startswith(NOTE)]
        check = ""
        if status is None and answer.error == "timeout":
            check = "hang"
        elif status is None and (not case.well_formed or len(case.body or b"") > limit):
            self.notes[f"connection closed without an answer ({case.slot}, {case.kind})"] += 1
        elif status is None:
            check = f"no answer ({answer.error})"
        elif answer.error == "body-timeout":
            check = "hang (the body never ended)"
        elif status >= 500 and allowed(case.route, answer):
            self.notes[f"{case.route}: documented {status} {answer.json_code()}"] += 1
        elif status >= 500:
            check = "5xx"
        elif status < 300 and case.slot.startswith("body.") and case.kind in NEVER_VALID:
            # Not a failure of these checks, but of canonical input: listed for who fixes it.
            self.notes[f"accepted (2xx): {case.route} {case.slot} {case.kind}"] += 1
        if check or failed:
            self.fail(check or "log", case, answer, failed[0] if failed else "")

    def fail(self, check: str, case: Case, answer: Answer, log: str) -> None:
        status = f"{answer.status} {answer.json_code()}".strip() if answer.status else answer.error
        key = (check, case.route, case.slot, status, log)
        found = self.classes.get(key)
        if found is None:
            found = self.classes[key] = FailureClass(check, case.route, case.slot, status, log)
            found.example = reproducer(case, self.secrets)
            found.answer = answer.body[:300].decode("utf-8", "replace")
        found.kinds[case.kind] += 1

    def background(self, lines: list[str], routes: list[str]) -> None:
        """Error lines no request of the batch owns (the worker's, the sender's…)."""
        batch = ", ".join(sorted(set(routes)))[:300]
        for line in lines:
            if line.startswith(NOTE):
                self.notes[line] += 1
                continue
            key = ("log", "(no request)", "", "", line)
            found = self.classes.setdefault(key, FailureClass(*key, example=f"batch: {batch}"))
            found.kinds["background"] += 1

    def batch_failure(self, what: str, cases: list[Case]) -> None:
        key = ("batch", "(after a batch)", "", "", what.split(":")[0])
        found = self.classes.get(key)
        if found is None:
            routes = sorted({c.route for c in cases})
            found = self.classes[key] = FailureClass(
                *key, example="first after: " + ", ".join(routes)
            )
            found.answer = what
        found.kinds["batch"] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "requests": self.total,
            "statuses": dict(self.statuses),
            "failures": [c.as_json() for c in self.classes.values()],
            "notes": dict(self.notes),
        }

    def print(self, args: argparse.Namespace) -> None:
        print(
            f"\n[{self.db}] {self.total} requests ({self.swept} in the sweep, the rest random) "
            f"over {len(self.requests)} of {self.routes} routes in {self.seconds:.0f} s "
            f"({dict(sorted(self.statuses.items()))})"
        )
        for label, count in sorted(self.requests.items(), key=lambda kv: kv[0].split(" ", 1)[::-1]):
            print(f"  {count:6d}  {label}")
        for c in sorted(self.classes.values(), key=lambda c: (c.check, c.log, c.route, c.slot)):
            print(f"\nFAILED [{self.db}] {c.check}: {c.route} {c.slot} → {c.status}")
            print(f"  kinds: {dict(c.kinds.most_common())}")
            if c.log:
                print(f"  log: {c.log}")
            if c.answer:
                print(f"  answer: {c.answer}")
            print(f"  request: {c.example}")
        if self.notes:
            print(f"\n[{self.db}] notes (not failures):")
            for note, count in self.notes.most_common(80):
                print(f"  {count:6d}  {note}")
        verdict = "passed" if self.ok() else "FAILED"
        dbs = " ".join(f"--db {d}" for d in args.db)
        print(
            f"\nhostile {verdict} [{self.db}]: {len(self.classes)} failure classes; replay with: "
            f"python -m bench.hostile {dbs} --cases {args.cases} --seed {args.seed}"
        )


def allowed(route: str, answer: Answer) -> bool:
    """The 5xx answers that are documented and not the gateway's fault."""
    if route == "GET /readyz" and answer.status == 503:
        return True  # "not ready", naming the failing check; the worker check looks deeper
    return upstream_outage(route, answer.body.decode("utf-8", "replace"))
