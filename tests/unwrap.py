"""Independent unwrapping with OpenSSL's command line, as PROVIDERS.md describes it."""
from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True).stdout


def oaep_decrypt(private_pem: Path, ciphertext: bytes, digest: str) -> bytes:
    return _openssl("pkeyutl", "-decrypt", "-inkey", str(private_pem), "-pkeyopt", "rsa_padding_mode:oaep",
                    "-pkeyopt", f"rsa_oaep_md:{digest}", "-pkeyopt", f"rsa_mgf1_md:{digest}", data=ciphertext)


def rsa_aes_unwrap(private_pem: Path, blob: bytes, modulus_bytes: int, digest: str) -> bytes:
    """OAEP(h)(E) || KWP(E, target): split at the modulus length, then RFC 5649 with OpenSSL."""
    ephemeral = oaep_decrypt(private_pem, blob[:modulus_bytes], digest)
    assert len(ephemeral) == 32
    return _openssl("enc", "-d", "-id-aes256-wrap-pad", "-K", ephemeral.hex(), "-iv", "A65959A6",
                    data=blob[modulus_bytes:])


def der_covers_whole_buffer(der: bytes) -> bool:
    """`openssl pkcs8` ignores trailing bytes, so check the outer SEQUENCE's extent (hl + l)."""
    first = _openssl("asn1parse", "-inform", "DER", data=der).decode().splitlines()[0]
    header = int(first.split("hl=")[1].split()[0])
    length = int(first.split(" l=")[1].split()[0])
    return header + length == len(der)


def pkcs8_public_pem(der: bytes) -> bytes:
    """Parse the PKCS#8 with OpenSSL and return its public key as PEM SubjectPublicKeyInfo."""
    pem = _openssl("pkcs8", "-nocrypt", "-inform", "DER", data=der)
    return _openssl("pkey", "-pubout", data=pem)


def pkcs1_decrypt(private_pem: Path, ciphertext: bytes) -> bytes:
    return _openssl("pkeyutl", "-decrypt", "-inkey", str(private_pem), "-pkeyopt", "rsa_padding_mode:pkcs1",
                    data=ciphertext)
