"""Compute Engine customer-supplied encryption key (CSEK), RSA-wrapped with Google's certificate."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .. import schemes
from ..errors import UsageError
from ..keytypes import KeyType
from . import base64text
from .base import Options, Provider, Wrapped

DEPRECATION = ("Google marks customer-supplied encryption keys (CSEK) deprecated in the Compute Engine API "
               "and recommends Cloud KMS keys (CMEK); the export still works where CSEK is accepted")

# A disk's resource URL: https://www.googleapis.com/compute/v1/projects/P/zones/Z/disks/D
_DISK_URI = re.compile(r"/projects/(?P<project>[A-Za-z0-9.:_-]+)/zones/(?P<zone>[A-Za-z0-9_-]+)"
                       r"/disks/(?P<disk>[A-Za-z0-9_-]+)(?:[?#].*)?$")


@dataclass(frozen=True)
class GoogleComputeEngine(Provider):
    def check_options(self, options: Options) -> None:
        super().check_options(options)
        if options.csek_uri is not None and not options.csek_uri.startswith("https://"):
            raise UsageError(f"--csek-uri must be the resource's full https:// URL (got {options.csek_uri!r})",
                             code="BAD_CSEK_URI")

    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        names = [f"{key_name}-wrapped"]
        if options.csek_uri:
            names.append(f"{key_name}-csek.json")
        return names

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        encoded = base64text.standard(wrapped.blob)
        if not options.csek_uri:
            return [encoded]
        entry = [{"uri": options.csek_uri, "key": encoded.decode("ascii"), "key-type": "rsa-encrypted"}]
        return [encoded, (json.dumps(entry, indent=2) + "\n").encode()]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        steps = (f"In the Google Cloud console, create the disk, image or snapshot; under Encryption choose "
                 f"'Customer-supplied encryption key', tick 'Wrapped key', and paste the contents of "
                 f"{wrapped.key_name}-wrapped")
        if options.csek_uri:
            disk = _DISK_URI.search(options.csek_uri)
            target = (f"{disk['disk']} --zone {disk['zone']} --project {disk['project']}" if disk
                      else "<DISK> --zone <ZONE>")
            steps += (f"; or: gcloud beta compute disks create {target} "
                      f"--csek-key-file {wrapped.key_name}-csek.json")
        return steps

    def warnings(self, options: Options) -> list[str]:
        return [DEPRECATION]


PROVIDER = GoogleComputeEngine(
    name="google-compute-engine",
    key_types=("AES-256",),
    default_key_type="AES-256",
    algorithms={"RSAES_OAEP_SHA_1": schemes.OAEP_SHA1},
    wrap_alg_positional=True,
    takes=frozenset({"csek_uri"}),
    strongest_kek=112,
    needs_certificate=True,
    kek_sizes=(2048,),
    kek_name="keys of Google's CSEK ingress certificate",
    kek_source="download google-cloud-csek-ingress.pem from Google",
)
