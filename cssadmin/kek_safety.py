"""Structural checks of an RSA wrapping key: a key that anyone could unwrap is refused before the token opens.

A well-formed key from an attacker passes these (only a pinned fingerprint stops that); they stop the
keys that betray the target by their shape: an even or prime modulus, a small factor, a bad exponent,
the tool's own published self-test key, and RSA keys restricted to another purpose (RSASSA-PSS,
RSAES-OAEP with parameters), whatever form the file took.
"""
from __future__ import annotations

import functools
import math
import secrets

from .errors import WrappingKeyError

RSA_ENCRYPTION_OID = "1.2.840.113549.1.1.1"
RESTRICTED_RSA_OIDS = {"1.2.840.113549.1.1.10": "RSASSA-PSS", "1.2.840.113549.1.1.7": "RSAES-OAEP"}

UNSAFE = "WRAPPING_KEY_UNSAFE"
IS_SELF_TEST = "WRAPPING_KEY_IS_SELF_TEST"
NOT_RSA = "WRAPPING_KEY_NOT_RSA"

SMALL_FACTOR_BOUND = 1 << 20
MILLER_RABIN_ROUNDS = 50          # each round passes a composite with probability at most 1/4: 2^-100
MAX_PUBLIC_EXPONENT = 1 << 256


def check_structure(modulus: int, exponent: int, algorithm_oid: str | None, source: str) -> None:
    """Raise WrappingKeyError (exit 3) naming the first defect; return when none is found."""
    refuse_other_purpose(algorithm_oid, source)
    if modulus == _self_test_modulus():
        raise WrappingKeyError(f"{source} is cssadmin's own self-test key, whose private half ships with the tool: "
                               "anyone could unwrap a key wrapped to it", code=IS_SELF_TEST,
                               remedy="give the cloud's wrapping key")
    defect = _exponent_defect(exponent) or _modulus_defect(modulus)
    if defect:
        raise WrappingKeyError(f"{source}: unsafe RSA wrapping key: {defect}; anyone could unwrap what is "
                               "wrapped to it", code=UNSAFE,
                               remedy="this is not a key a cloud issues: get the wrapping key again over a "
                               "channel you trust, and pin its fingerprint")


def _exponent_defect(exponent: int) -> str | None:
    if exponent < 3:
        return f"the public exponent {exponent} is below 3"
    if exponent % 2 == 0:
        return "the public exponent is even"
    if exponent >= MAX_PUBLIC_EXPONENT:
        return "the public exponent is 2^256 or more"
    return None


def _modulus_defect(modulus: int) -> str | None:
    if modulus % 2 == 0:
        return "the modulus is even"
    if math.gcd(modulus, _small_primes_product_mod(modulus)) != 1:
        return f"the modulus has a prime factor below 2^{SMALL_FACTOR_BOUND.bit_length() - 1}"
    if _is_probable_prime(modulus):
        return "the modulus is prime"
    return None


@functools.lru_cache(maxsize=1)
def _small_primes() -> tuple[int, ...]:
    sieve = bytearray([1]) * SMALL_FACTOR_BOUND
    sieve[0:2] = b"\0\0"
    for number in range(2, math.isqrt(SMALL_FACTOR_BOUND) + 1):
        if sieve[number]:
            sieve[number * number::number] = bytes(len(range(number * number, SMALL_FACTOR_BOUND, number)))
    return tuple(number for number in range(3, SMALL_FACTOR_BOUND) if sieve[number])


def _small_primes_product_mod(modulus: int) -> int:
    """The product of the odd primes below the bound, reduced mod `modulus` (gcd with it finds any of them)."""
    product, chunk = 1, 1
    for prime in _small_primes():
        chunk *= prime
        if chunk.bit_length() > 1024:
            product = product * chunk % modulus
            chunk = 1
    return product * chunk % modulus


def _is_probable_prime(candidate: int) -> bool:
    """Miller-Rabin with random bases."""
    d, shifts = candidate - 1, 0
    while d % 2 == 0:
        d, shifts = d // 2, shifts + 1
    for _ in range(MILLER_RABIN_ROUNDS):
        witness = 2 + secrets.randbelow(candidate - 3)
        x = pow(witness, d, candidate)
        if x in (1, candidate - 1):
            continue
        for _ in range(shifts - 1):
            x = pow(x, 2, candidate)
            if x == candidate - 1:
                break
        else:
            return False
    return True


@functools.lru_cache(maxsize=1)
def _self_test_modulus() -> int:
    from .custody.selftest import self_test_key
    return self_test_key().public_key().public_numbers().n


def refuse_other_purpose(algorithm_oid: str | None, source: str) -> None:
    """An RSA key whose AlgorithmIdentifier is not rsaEncryption (RSASSA-PSS, RSAES-OAEP with parameters)."""
    if algorithm_oid is not None and algorithm_oid != RSA_ENCRYPTION_OID:
        purpose = RESTRICTED_RSA_OIDS.get(algorithm_oid, f"algorithm {algorithm_oid}")
        raise WrappingKeyError(f"{source}: the wrapping key is an {purpose} key, not rsaEncryption: it is a key "
                               "for another purpose, not one a cloud issues for key import", code=NOT_RSA,
                               remedy="download the provider's wrapping key again")


def spki_algorithm_oid(spki_der: bytes) -> str | None:
    """The dotted OID of a SubjectPublicKeyInfo's AlgorithmIdentifier, read from the DER as given
    (cryptography re-encodes an RSASSA-PSS key as rsaEncryption, so the original bytes decide)."""
    try:
        _, body = _der_element(spki_der, 0x30)
        _, algorithm = _der_element(body, 0x30)
        _, oid = _der_element(algorithm, 0x06)
    except ValueError:
        return None
    return _decode_oid(oid)


def _der_element(data: bytes, tag: int) -> tuple[int, bytes]:
    """(length of the whole element, its content) of the element at the start of `data`."""
    if len(data) < 2 or data[0] != tag:
        raise ValueError("unexpected DER")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(data) < 2 + count:
            raise ValueError("bad DER length")
        length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if offset + length > len(data):
        raise ValueError("truncated DER")
    return offset + length, data[offset:offset + length]


def _decode_oid(content: bytes) -> str | None:
    if not content:
        return None
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])
