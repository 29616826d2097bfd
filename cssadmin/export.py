"""The order of one export, as explicit states with one way into each.

PARSED -> KEK_LOADED -> KEK_TRUSTED -> POLICY_OK -> KEY_READY -> MECHANISM_VERIFIED -> WRAPPED
-> WRITTEN -> VERIFIED. Nothing touches the token before POLICY_OK; nothing touches the output
directory before WRAPPED except the pre-flight check at PARSED.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Callable

from . import __version__, manifest, output
from .custody import Custody, KeyRef
from .keynames import check_key_name
from .keytypes import KeyType
from .providers.base import Options, Provider, Wrapped
from .strength import StrengthVerdict, judge_kek
from .wrapping_key import WrappingKey, check_expected_fingerprints, load_wrapping_key_file


class State(Enum):
    PARSED = 1
    KEK_LOADED = 2
    KEK_TRUSTED = 3
    POLICY_OK = 4
    KEY_READY = 5
    MECHANISM_VERIFIED = 6
    WRAPPED = 7
    WRITTEN = 8
    VERIFIED = 9


class IllegalTransition(RuntimeError):
    """A programming error: a step was called out of order."""


@dataclass(frozen=True)
class TrustOptions:
    expected_fingerprints: tuple[str, ...] = ()
    ca_bundle: str | None = None
    pins: str | None = None
    trust_unpinned: bool = False


@dataclass(frozen=True)
class Request:
    provider: Provider
    key_name: str
    wrap_key_path: str
    key_type: str | None = None
    options: Options = Options()
    trust: TrustOptions = TrustOptions()
    out_dir: str = "."
    force: bool = False
    require_removable: bool = False
    allow_weaker_kek: bool = False


@dataclass
class Report:
    provider: str
    key: dict
    wrapping_key: dict
    algorithm: str
    outputs: list[dict]          # the files the cloud's import takes
    manifest: dict               # the file that lists them, for the receiving side's check
    next_step: str
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"ok": True, "provider": self.provider, "key": self.key, "wrapping_key": self.wrapping_key,
                "algorithm": self.algorithm, "outputs": self.outputs, "manifest": self.manifest,
                "next_step": self.next_step, "warnings": self.warnings}


class Export:
    def __init__(self, request: Request, open_custody: Callable[[], Custody],
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.request = request
        self._open_custody = open_custody
        self._now = now
        provider = request.provider
        check_key_name(request.key_name)
        provider.check_options(request.options)
        provider.check_trust_options([flag for flag, given in (
            ("--ca-bundle", request.trust.ca_bundle), ("--pins", request.trust.pins),
            ("--trust-unpinned", request.trust.trust_unpinned)) if given])
        self.key_type: KeyType = provider.key_type(request.key_type)
        self.output_names = provider.output_names(request.key_name, self.key_type, request.options) + [
            manifest.manifest_name(request.key_name)]
        output.preflight(request.out_dir, self.output_names, request.force,
                         require_removable=request.require_removable)
        self.warnings: list[str] = list(provider.warnings(request.options))
        self.custody: Custody | None = None
        self.state = State.PARSED

    @contextmanager
    def _step(self, target: State):
        """The only way into `target`: from the state just before it, and only if the step succeeds."""
        source = State(target.value - 1)
        if self.state is not source:
            raise IllegalTransition(f"{target.name} needs {source.name}, but the export is at {self.state.name}")
        yield
        self.state = target

    # --- the steps, in order ---------------------------------------------------------------
    def load_wrapping_key(self) -> None:
        with self._step(State.KEK_LOADED):
            self.kek: WrappingKey = load_wrapping_key_file(self.request.wrap_key_path)

    def trust_wrapping_key(self) -> None:
        with self._step(State.KEK_TRUSTED):
            request, provider = self.request, self.request.provider
            provider.check_wrapping_key(self.kek, request.options)
            self.pinned_by: str | None = None
            self.certificate: dict | None = None
            if provider.needs_certificate:
                from . import trust
                verdict = trust.verify_certificate(
                    self.kek, provider=provider.name, now=self._now(),
                    ca_bundle=trust.load_ca_bundle(request.trust.ca_bundle) if request.trust.ca_bundle else None,
                    expected_fingerprints=list(request.trust.expected_fingerprints),
                    pins=trust.load_pins(request.trust.pins) if request.trust.pins else None,
                    trust_unpinned=request.trust.trust_unpinned)
                self.pinned_by = verdict.pinned_by
                self.certificate = {"chain": list(verdict.chain),
                                    "not_after": verdict.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}
                self.warnings.extend(verdict.warnings)
            elif request.trust.expected_fingerprints:
                check_expected_fingerprints(self.kek, list(request.trust.expected_fingerprints))
                self.pinned_by = "expect-fingerprint"

    def apply_policy(self) -> None:
        with self._step(State.POLICY_OK):
            provider = self.request.provider
            self.algorithm, self.scheme = provider.choose_algorithm(self.key_type, self.kek, self.request.options)
            self.strength: StrengthVerdict = judge_kek(
                self.kek.bits, self.key_type, provider.strongest_kek,
                allow_weaker=self.request.allow_weaker_kek, remedy=provider.stronger_kek)
            if self.strength.warning:
                self.warnings.append(self.strength.warning)
            if self.request.options.allow_deprecated and self.algorithm in provider.deprecated:
                self.warnings.append(f"--allow-deprecated: {self.algorithm}: {provider.deprecated[self.algorithm]}")

    def ready_key(self) -> None:
        with self._step(State.KEY_READY):
            self.custody = self._open_custody()
            self.key: KeyRef = self.custody.get_or_create(self.request.key_name, self.key_type)
            if self.custody.protection == "software":
                self.warnings.append("the key is held in a software keystore, not an HSM: it has existed in "
                                     "plaintext in this computer's memory")

    def verify_mechanism(self) -> None:
        with self._step(State.MECHANISM_VERIFIED):
            self.custody.self_test(self.key_type, self.scheme)

    def wrap(self) -> None:
        with self._step(State.WRAPPED):
            custody, key = self.custody, self.key
            blob = custody.wrap(key, self.scheme, self.kek.public_key)
            self.wrapped = Wrapped(
                key_name=key.name, key_type=self.key_type, algorithm=self.algorithm, blob=blob,
                secret_sha256=custody.secret_sha256(key) if not self.key_type.is_private_key else None,
                public_key_pem=custody.public_key_pem(key),
                generator=f"cssadmin {__version__}; {custody.description}")

    def write(self) -> None:
        with self._step(State.WRITTEN):
            files = [(f.name, f.data) for f in self.request.provider.outputs(self.wrapped, self.request.options)]
            files.append((manifest.manifest_name(self.key.name), manifest.build_manifest(
                tool_version=__version__, provider=self.request.provider.name, key_name=self.key.name,
                key_type=self.key_type.name, algorithm=self.algorithm, wrapping_key_sha256_spki=self.kek.sha256_spki,
                wrapping_key_sha256_cert=self.kek.sha256_cert, created_utc=self._now(), files=files)))
            self.written = output.write_all(self.request.out_dir, files, self.request.force)

    def verify(self) -> Report:
        with self._step(State.VERIFIED):
            output.verify_all(self.written)
        return self._report()

    def run(self) -> Report:
        self.load_wrapping_key()
        self.trust_wrapping_key()
        self.apply_policy()
        try:
            self.ready_key()
            try:
                self.verify_mechanism()
                self.wrap()
            except BaseException:
                # A key made by this run and never exported would only clutter the token.
                self.custody.discard(self.key)
                raise
        finally:
            if self.custody is not None:
                self.custody.close()
        self.write()
        return self.verify()

    def _report(self) -> Report:
        kek = self.kek
        wrapping_key = {"sha256_spki": kek.sha256_spki, "bits": kek.bits,
                        "strength": self.strength.kek_strength, "required_strength": self.strength.required,
                        "sha256_cert": kek.sha256_cert, "pinned_by": self.pinned_by,
                        "trust_unpinned": self.certificate is not None and self.pinned_by is None,
                        "certificate": self.certificate,
                        "allow_weaker_kek": self.strength.weaker_allowed}
        return Report(
            provider=self.request.provider.name,
            key={"name": self.key.name, "type": self.key_type.name, "created": self.key.created,
                 "protection": self.custody.protection},
            wrapping_key=wrapping_key,
            algorithm=self.algorithm,
            outputs=[{"path": w.path, "sha256": w.sha256, "bytes": w.bytes} for w in self.written[:-1]],
            manifest={"path": self.written[-1].path, "sha256": self.written[-1].sha256,
                      "bytes": self.written[-1].bytes},
            next_step=self.request.provider.next_step(self.wrapped, self.request.options),
            warnings=self.warnings,
        )
