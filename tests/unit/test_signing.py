from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from reelgate.core.errors import NotFound, PermissionDenied
from reelgate.core.signing import expiry_for, sign_path, verify

KEY = b"k" * 32
PATH = "/v1/media/sandbox/a.mp4"


def parts(signed: str) -> tuple[str, str, str]:
    split = urlsplit(signed)
    q = parse_qs(split.query)
    return split.path, q["expires"][0], q["sig"][0]


def test_valid_signature_passes() -> None:
    path, expires, sig = parts(sign_path(KEY, PATH, 2000))
    assert path == PATH
    verify(KEY, PATH, expires, sig, now=1999)


@pytest.mark.parametrize(
    ("path", "expires", "sig"),
    [
        ("/v1/media/sandbox/b.mp4", None, None),  # another file
        (PATH, "2001", None),  # a longer life
        (PATH, None, "AAAA"),  # a forged signature
        (PATH, "", None),
        (PATH, "12ab", None),
    ],
)
def test_tampering_looks_like_no_file(path: str, expires: str | None, sig: str | None) -> None:
    _, good_expires, good_sig = parts(sign_path(KEY, PATH, 2000))
    with pytest.raises(NotFound):
        verify(
            KEY,
            path,
            good_expires if expires is None else expires,
            good_sig if sig is None else sig,
            now=1000,
        )


def test_other_key_is_refused() -> None:
    _, expires, sig = parts(sign_path(KEY, PATH, 2000))
    with pytest.raises(NotFound):
        verify(b"x" * 32, PATH, expires, sig, now=1000)


def test_expired_link_says_so() -> None:
    _, expires, sig = parts(sign_path(KEY, PATH, 2000))
    with pytest.raises(PermissionDenied) as info:
        verify(KEY, PATH, expires, sig, now=2001)
    assert info.value.code == "link_expired"


def test_expiry_is_bucketed_so_links_are_stable() -> None:
    assert expiry_for(1000, 86400, 3600) == expiry_for(1500, 86400, 3600)
    assert expiry_for(1000, 86400, 3600) >= 1000 + 86400
    assert expiry_for(1000, 86400, 3600) % 3600 == 0
