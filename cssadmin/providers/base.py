"""What every provider module declares: data about the cloud's import, and how to encode for it.

Provider modules do no I/O and know nothing of tokens: they receive the wrapped bytes and return
named files and the next command to run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import PolicyError, UsageError, WrappingKeyError
from ..keytypes import KEY_TYPES, KeyType
from ..schemes import WrapScheme
from ..wrapping_key import WrappingKey


@dataclass(frozen=True)
class OutputFile:
    name: str
    data: bytes


# Every algorithm name any provider knows: a name outside this set is a usage error (exit 2),
# a known one that a provider does not allow is a policy refusal (exit 4).
KNOWN_ALGORITHMS = frozenset({
    "RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_512", "RSAES_PKCS1_V1_5",
    "RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_512",
    "RSA_OAEP_AES_SHA256", "RSA_OAEP_SHA256",
})
_ALGORITHM_LIKE = re.compile(r"[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)+")

# The provider-specific options, by Options field, as the command line spells them.
OPTION_FLAGS = {"import_method": "--import-method", "azure_kek": "-a/--azure-kek", "csek_uri": "--csek-uri"}


@dataclass(frozen=True)
class Options:
    """The provider-specific command-line values, already syntactically checked by the CLI."""

    wrap_alg: str | None = None
    import_method: str | None = None
    azure_kek: str | None = None
    csek_uri: str | None = None
    allow_deprecated: bool = False


@dataclass(frozen=True)
class Wrapped:
    """What the provider encodes: the blob and the facts about the key that some formats carry."""

    key_name: str
    key_type: KeyType
    algorithm: str
    blob: bytes
    secret_sha256: bytes | None = None     # C_DigestKey of a secret key, for formats that carry a hash
    public_key_pem: bytes | None = None    # of an asymmetric target
    generator: str = ""                    # tool and token description
    mechanism: str = ""                    # the path that wrapped it (WrapPath.mechanism)


@dataclass(frozen=True)
class Provider:
    name: str
    key_types: tuple[str, ...]
    default_key_type: str
    algorithms: Mapping[str, WrapScheme]       # algorithm name -> scheme this provider accepts
    wrap_alg_positional: bool                  # wrapAlg is a positional argument (required unless defaulted)
    strongest_kek: int                         # strength of the strongest wrapping key the cloud offers
    deprecated: Mapping[str, str] = field(default_factory=dict)   # algorithm -> why
    needs_certificate: bool = False
    takes: frozenset[str] = frozenset()        # which OPTION_FLAGS this provider uses
    kek_sizes: tuple[int, ...] = (2048, 3072, 4096)   # RSA sizes of the wrapping keys the cloud issues
    kek_name: str = "wrapping keys"            # what the cloud calls them, for messages
    kek_source: str | None = None              # where the right one comes from
    stronger_kek: str | None = None            # how to get a stronger one, when the strength rule refuses
    # What to do when the token cannot wrap with a scheme of this OAEP hash, by hash name.
    hash_refused: Mapping[str, str] = field(default_factory=dict)
    default_algorithm: str | None = None       # the wrapAlg when none is given (then it is optional)

    # --- request checks, before anything is loaded -------------------------------------------
    def key_type(self, requested: str | None) -> KeyType:
        name = requested or self.default_key_type
        if name not in self.key_types:
            # A name that is no key type at all is not shown: it may be a secret typed in the wrong place.
            shown = repr(name) if name in KEY_TYPES else "(value not shown: no such key type)"
            raise PolicyError(
                f"{self.name} does not take key type {shown}; allowed: {', '.join(self.key_types)}",
                code="KEY_TYPE_NOT_ALLOWED")
        return KEY_TYPES[name]

    def check_options(self, options: Options) -> None:
        """The provider's own arguments, before anything is loaded: syntax (exit 2), then policy (exit 4)."""
        foreign = [flag for field_name, flag in OPTION_FLAGS.items()
                   if getattr(options, field_name) is not None and field_name not in self.takes]
        if foreign:
            raise UsageError(f"{self.name} does not take {', '.join(foreign)}", code="OPTION_NOT_APPLICABLE")
        if not self.wrap_alg_positional:
            if options.wrap_alg is not None:
                raise UsageError(f"{self.name} takes no wrapAlg argument (got {options.wrap_alg!r})")
            return
        allowed = ", ".join(self.algorithms)
        name = options.wrap_alg
        if name is None:
            if self.default_algorithm is not None:
                return
            raise UsageError(f"{self.name} needs a wrapAlg argument; one of: {allowed}", code="WRAP_ALG_MISSING")
        if name not in KNOWN_ALGORITHMS:
            # Shown only when it looks like an algorithm name: a PIN typed here must not reach the screen.
            shown = repr(name) if _ALGORITHM_LIKE.fullmatch(name) else "the 4th positional argument (value not shown)"
            raise UsageError(f"{shown} is not a wrapping algorithm; {self.name} takes: {allowed}",
                             code="WRAP_ALG_UNKNOWN")
        if name not in self.algorithms:
            raise PolicyError(f"{self.name} does not accept {name}; allowed: {allowed}",
                              code="ALGORITHM_NOT_ALLOWED")
        if name in self.deprecated and not options.allow_deprecated:
            raise PolicyError(f"{name} is deprecated: {self.deprecated[name]}", code="ALGORITHM_DEPRECATED",
                              remedy="choose another algorithm, or pass --allow-deprecated")

    def check_target(self, key_type: KeyType, options: Options) -> None:
        """A key type this provider takes only with some options (exit 4), before anything is loaded."""

    def check_trust_options(self, certificate_options: list[str]) -> None:
        if certificate_options and not self.needs_certificate:
            verb = "does" if len(certificate_options) == 1 else "do"
            raise UsageError(f"{self.name}'s wrapping key is a bare public key, so {' and '.join(certificate_options)} "
                             f"{verb} not apply (--expect-fingerprint and --pins do)", code="OPTION_NOT_APPLICABLE")

    # --- wrapping key rules (exit 3) and algorithm choice (exit 4) --------------------------
    def check_wrapping_key(self, kek: WrappingKey, options: Options) -> None:
        """The cloud's own rules on the wrapping key (exit 3): the sizes it issues."""
        if kek.bits not in self.kek_sizes:
            *others, last = [f"RSA-{bits}" for bits in self.kek_sizes]
            sizes = f"{', '.join(others)} or {last}" if others else last
            raise WrappingKeyError(f"{self.kek_name} are {sizes}; this one is RSA-{kek.bits}",
                                   code="WRAPPING_KEY_WRONG_SIZE", remedy=self.kek_source)

    def choose_algorithm(self, key_type: KeyType, kek: WrappingKey, options: Options) -> tuple[str, WrapScheme]:
        """The algorithm for this key and wrapping key; check_options has vetted the name."""
        name = options.wrap_alg or self.default_algorithm
        return name, self.algorithms[name]

    @staticmethod
    def require_fit(key_type: KeyType, algorithm: str, scheme: WrapScheme, kek_bits: int, remedy: str) -> None:
        """A scheme that wraps the target directly (no RSA-AES) must have room for it."""
        capacity = scheme.max_plaintext(kek_bits)
        if capacity is not None and key_type.plaintext_bytes > capacity:
            raise PolicyError(f"a {key_type.name} key ({key_type.plaintext_bytes} bytes as wrapped) does not fit "
                              f"{algorithm} under an RSA-{kek_bits} wrapping key (at most {capacity} bytes)",
                              code="ALGORITHM_NOT_ALLOWED", remedy=remedy)

    # --- encoding --------------------------------------------------------------------------
    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        """The files of an export, known before wrapping for the pre-flight check."""
        raise NotImplementedError

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        """What goes into each of output_names, in the same order."""
        raise NotImplementedError

    @staticmethod
    def public_key_names(key_name: str, key_type: KeyType) -> list[str]:
        """`<key>-public.pem` beside the wrapped file of a key pair, for comparing with the cloud's copy."""
        return [f"{key_name}-public.pem"] if key_type.is_private_key else []

    @staticmethod
    def public_key_contents(wrapped: Wrapped) -> list[bytes]:
        return [wrapped.public_key_pem] if wrapped.key_type.is_private_key else []

    def outputs(self, wrapped: Wrapped, options: Options) -> list[OutputFile]:
        names = self.output_names(wrapped.key_name, wrapped.key_type, options)
        return [OutputFile(name, data) for name, data in zip(names, self.contents(wrapped, options), strict=True)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        raise NotImplementedError

    def warnings(self, options: Options) -> list[str]:
        return []
