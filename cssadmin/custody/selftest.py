"""Prove, before the real wrap, that the token's mechanism gives what the cloud will accept.

The same wrap path runs on throwaway session keys of the same kind, to a key pair whose private
half is ours (selftest_key), and the result is unwrapped in software and checked: a secret against
C_DigestKey, a private key as exact PKCS#8 matching the token's public key. A token that fails is
refused; nothing real has been wrapped yet.
"""
from __future__ import annotations

import functools
import hashlib

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .. import softwrap
from ..errors import CustodyError
from ..keymaterial import pkcs8_problem
from ..keytypes import KeyType
from ..schemes import WrapScheme
from . import SelfTestable, WrapPath
from .selftest_key import SELF_TEST_PRIVATE_KEY_PEM

# A length that is not a multiple of 8: key wrap with padding must then really pad (RFC 5649).
UNALIGNED_PROBE_BYTES = 20


@functools.lru_cache(maxsize=1)
def self_test_key():
    # Validating an RSA-4096 key costs most of a second; this one is a constant of ours.
    return load_pem_private_key(SELF_TEST_PRIVATE_KEY_PEM, password=None, unsafe_skip_rsa_key_validation=True)


def choose(token: SelfTestable, key_type: KeyType, scheme: WrapScheme) -> WrapPath:
    """Self-test each of the token's paths for `scheme`, best first; the first that passes is the one
    the key is wrapped with, with a warning naming each better path that failed."""
    failures: list[tuple[str, CustodyError]] = []
    for path in token.wrap_paths(scheme):
        try:
            run(token, key_type, scheme, path)
        except CustodyError as failure:
            failures.append((path, failure))
            continue
        return WrapPath(path, tuple(f"{failed} failed its self-test ({failure.message}); wrapped with {path} instead"
                                    for failed, failure in failures))
    path, failure = failures[-1]
    if len(failures) > 1:
        failure.message = f"{failure.message} (" + "; ".join(
            f"{failed} also failed: {earlier.message}" for failed, earlier in failures[:-1]) + ")"
        failure.args = (failure.message,)
    raise failure


def run(token: SelfTestable, key_type: KeyType, scheme: WrapScheme, path: str | None = None) -> None:
    """The self-test of one path (the token's first when None); a custody error when it fails."""
    private = self_test_key()
    if not key_type.is_private_key:
        _probe_secret(token, key_type.secret_bytes, scheme, private, path, key_type)
        return
    if scheme.kind == "rsa_aes":
        _probe_secret(token, UNALIGNED_PROBE_BYTES, scheme, private, path, key_type)
    _probe_pair(token, key_type, scheme, private, path)


def _failed(scheme: WrapScheme, detail: str, remedy: str | None = None) -> CustodyError:
    return CustodyError(f"mechanism self-test failed for {scheme.describe()}: {detail}",
                        code="SELF_TEST_FAILED", remedy=remedy)


def _unwrap(private, scheme: WrapScheme, blob: bytes) -> bytes:
    try:
        return softwrap.unwrap(private, scheme, blob)
    except (ValueError, InvalidUnwrap) as failure:
        raise _failed(scheme, f"the token's output does not unwrap ({failure or type(failure).__name__})") from None


def _probe_secret(token: SelfTestable, length: int, scheme: WrapScheme, private, path: str | None,
                  target: KeyType) -> None:
    handle = token.throwaway_secret(length)
    try:
        blob = token.wrap(handle, scheme, private.public_key(), path)
        expected_sha256 = token.digest(handle)
    finally:
        token.destroy(handle)
    recovered = _unwrap(private, scheme, blob)
    if len(recovered) != length and scheme.kind == "rsa_aes" and recovered[:length] and not any(recovered[length:]):
        kwp = token.kwp_name() if path is None or "+" in path else path
        raise _failed(
            scheme,
            f"the token's {kwp} zero-pads: {_kind(target)} would carry trailing bytes (a {length}-byte key came "
            f"back as {len(recovered)} bytes ending in zeros, not RFC 5649; the cloud would reject it)",
            remedy="use a token whose key wrap with padding conforms to RFC 5649, or --keystore DIR")
    if len(recovered) != length or hashlib.sha256(recovered).digest() != expected_sha256:
        raise _failed(scheme, f"a {length}-byte key unwrapped to {len(recovered)} bytes that do not "
                      "match the token's C_DigestKey")


def _probe_pair(token: SelfTestable, key_type: KeyType, scheme: WrapScheme, private, path: str | None) -> None:
    handle, token_public = token.throwaway_pair(key_type)
    try:
        blob = token.wrap(handle, scheme, private.public_key(), path)
    finally:
        token.destroy(handle)
    problem = pkcs8_problem(_unwrap(private, scheme, blob), token_public)
    if problem:
        raise _failed(scheme, f"a throwaway {key_type.name} key unwrapped, but {problem}",
                      remedy="use a token whose key wrap with padding conforms to RFC 5649, or --keystore DIR")


def _kind(target: KeyType) -> str:
    return "PKCS#8" if target.is_private_key else f"{target.name} keys ({target.secret_bytes} bytes)"
