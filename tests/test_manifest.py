"""Tests for cssadmin.manifest: build, write through the output protocol, verify, and every refusal."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import skip_symlinks_under_wine
from cssadmin import output
from cssadmin.errors import OutputError, VerificationError
from cssadmin.facts import ExportFacts, KeyFacts, WrappingKeyFacts
from cssadmin.manifest import FORMAT, build_manifest, is_bare_name, manifest_name, verify_manifest

KEY_NAME = "payments-2024"
SPKI = "ab" * 32
CERT = "cd" * 32
CREATED = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=timezone.utc)
OUTPUTS = [
    ("payments-2024-wrapped.bin", bytes(range(256)) * 2),
    ("payments-2024-public.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
]


def make_manifest(files=OUTPUTS, *, audit_head=None, signer=None, **overrides) -> bytes:
    fields = dict(tool_version="0.1.0", provider="aws", key_name=KEY_NAME, key_type="AES_256",
                  algorithm="RSA_AES_KEY_WRAP_SHA_256", wrapping_key_sha256_spki=SPKI,
                  wrapping_key_sha256_cert=CERT, created_utc=CREATED)
    fields.update(overrides)
    facts = ExportFacts(
        tool_version=fields["tool_version"], provider=fields["provider"],
        key=KeyFacts(fields["key_name"], fields["key_type"], created=True, protection="hsm"),
        wrapping_key=WrappingKeyFacts(
            sha256_spki=fields["wrapping_key_sha256_spki"], bits=4096, strength=152, required_strength=152,
            sha256_cert=fields["wrapping_key_sha256_cert"], pinned_by=None, trust_unpinned=False,
            certificate=None, allow_weaker_kek=False),
        algorithm=fields["algorithm"], created_utc=fields["created_utc"], next_step="", warnings=())
    return build_manifest(facts, list(files), audit_head=audit_head, signer=signer)


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """An export as the CLI will write it: the outputs and the manifest, through output.write_all."""
    files = OUTPUTS + [(manifest_name(KEY_NAME), make_manifest())]
    output.verify_all(output.write_all(tmp_path, files, force=False))
    return tmp_path


def manifest_path(directory: Path) -> Path:
    return directory / manifest_name(KEY_NAME)


def write_manifest_document(directory: Path, document: object) -> Path:
    path = manifest_path(directory)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def document_listing(name: str, data: bytes) -> dict:
    document = json.loads(make_manifest())
    document["files"] = [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}]
    return document


def refusal(path: Path) -> OutputError:
    """An input that cannot be read as a manifest: exit 7."""
    with pytest.raises(OutputError) as caught:
        verify_manifest(path)
    assert caught.value.exit_code == 7
    assert "\n" not in str(caught.value)
    return caught.value


def mismatch(path: Path) -> VerificationError:
    """A manifest read, and what it lists found changed or missing: exit 8."""
    with pytest.raises(VerificationError) as caught:
        verify_manifest(path)
    assert caught.value.exit_code == 8
    assert "\n" not in str(caught.value)
    return caught.value


# ---------------------------------------------------------------------------------- build

def test_manifest_name():
    assert manifest_name("k1") == "k1-manifest.json"


def test_manifest_bytes_are_sorted_indented_json_with_a_trailing_newline():
    data = make_manifest()
    document = json.loads(data.decode("utf-8"))
    assert data == (json.dumps(document, sort_keys=True, indent=2) + "\n").encode("utf-8")
    assert document == {
        "format": FORMAT,
        "tool_version": "0.1.0",
        "provider": "aws",
        "key_name": KEY_NAME,
        "key_type": "AES_256",
        "algorithm": "RSA_AES_KEY_WRAP_SHA_256",
        "wrapping_key_sha256_spki": SPKI,
        "wrapping_key_sha256_cert": CERT,
        "trust_unpinned": False,
        "created_utc": "2024-05-01T12:30:45Z",
        "files": [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in OUTPUTS],
        "audit_head": None,
        "signer": None,
    }


def test_created_time_is_converted_to_utc():
    two_hours_east = timezone(timedelta(hours=2))
    data = make_manifest(created_utc=datetime(2024, 5, 1, 14, 30, 45, tzinfo=two_hours_east))
    assert json.loads(data)["created_utc"] == "2024-05-01T12:30:45Z"


def test_a_naive_time_is_a_programming_error():
    with pytest.raises(ValueError):
        make_manifest(created_utc=datetime(2024, 5, 1, 12, 30, 45))


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "..", ".", "", "C:x", ".. "])
def test_build_refuses_a_name_that_is_not_bare(name):
    with pytest.raises(ValueError):
        make_manifest(files=[(name, b"x")])


def test_build_refuses_a_repeated_name():
    with pytest.raises(ValueError):
        make_manifest(files=[("a.bin", b"1"), ("a.bin", b"2")])


@pytest.mark.parametrize("name", ["k.bin", "a..b.bin", "payments-2024-manifest.json", ".hidden", "ü.bin"])
def test_plain_names_are_bare(name):
    assert is_bare_name(name)


# ---------------------------------------------------------------------------------- verify

def test_round_trip_returns_every_entry(export_dir):
    entries = verify_manifest(manifest_path(export_dir)).files
    assert entries == [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                       for name, data in OUTPUTS]


def test_the_manifest_is_checked_beside_itself_not_in_the_working_directory(export_dir, tmp_path_factory,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert len(verify_manifest(manifest_path(export_dir)).files) == len(OUTPUTS)


def test_a_one_byte_change_is_named_with_both_hashes(export_dir):
    name, data = OUTPUTS[0]
    changed = bytearray(data)
    changed[100] ^= 0x01
    (export_dir / name).write_bytes(bytes(changed))
    error = mismatch(manifest_path(export_dir))
    assert error.code == "MANIFEST_SHA256_MISMATCH"
    assert name in error.message
    assert hashlib.sha256(bytes(changed)).hexdigest() in error.message
    assert hashlib.sha256(data).hexdigest() in error.message


def test_a_changed_size_is_named(export_dir):
    name, data = OUTPUTS[1]
    (export_dir / name).write_bytes(data + b"\n")
    error = mismatch(manifest_path(export_dir))
    assert error.code == "MANIFEST_SIZE_MISMATCH"
    assert name in error.message
    assert f"{len(data) + 1} bytes" in error.message and str(len(data)) in error.message


def test_a_missing_file_is_named(export_dir):
    name = OUTPUTS[1][0]
    (export_dir / name).unlink()
    error = mismatch(manifest_path(export_dir))
    assert error.code == "MANIFEST_FILE_MISSING"
    assert name in error.message


def test_the_first_problem_is_the_one_named(export_dir):
    (export_dir / OUTPUTS[0][0]).write_bytes(b"changed")
    (export_dir / OUTPUTS[1][0]).unlink()
    error = mismatch(manifest_path(export_dir))
    assert OUTPUTS[0][0] in error.message and OUTPUTS[1][0] not in error.message


def test_a_missing_manifest(tmp_path):
    error = refusal(tmp_path / "nothing-manifest.json")
    assert error.code == "MANIFEST_MISSING"
    assert "nothing-manifest.json" in error.message


@pytest.mark.parametrize("name", ["../outside.bin", "..", "sub/../../outside.bin", "..\\outside.bin",
                                  "/etc/passwd", "C:outside.bin", ".. "])
def test_a_name_reaching_outside_is_refused_not_followed(tmp_path, name):
    """The file the name points at exists and matches, so only the refusal can make this fail."""
    inside = tmp_path / "inside"
    inside.mkdir()
    data = b"outside data"
    (tmp_path / "outside.bin").write_bytes(data)
    error = refusal(write_manifest_document(inside, document_listing(name, data)))
    assert error.code == "MANIFEST_MALFORMED"
    assert repr(name) in error.message


@skip_symlinks_under_wine
def test_a_symbolic_link_is_not_followed(tmp_path):
    inside = tmp_path / "inside"
    inside.mkdir()
    data = b"outside data"
    (tmp_path / "outside.bin").write_bytes(data)
    try:
        (inside / "link.bin").symlink_to(tmp_path / "outside.bin")
    except OSError:
        pytest.skip("this filesystem or account cannot make symbolic links")
    error = mismatch(write_manifest_document(inside, document_listing("link.bin", data)))
    assert error.code == "MANIFEST_NOT_A_FILE"
    assert "link.bin" in error.message


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe{}", b"[]", b'"text"', b"null"])
def test_malformed_json(tmp_path, content):
    path = manifest_path(tmp_path)
    path.write_bytes(content)
    assert refusal(path).code == "MANIFEST_MALFORMED"


def mutate_format(document): document["format"] = "cssadmin-manifest-v0"
def drop_format(document): del document["format"]
def empty_files(document): document["files"] = []
def files_not_a_list(document): document["files"] = {"name": "a"}
def entry_not_an_object(document): document["files"] = ["a.bin"]
def negative_size(document): document["files"][0]["bytes"] = -1
def boolean_size(document): document["files"][0]["bytes"] = True
def text_size(document): document["files"][0]["bytes"] = "4"
def short_hash(document): document["files"][0]["sha256"] = "ab" * 31
def uppercase_hash(document): document["files"][0]["sha256"] = document["files"][0]["sha256"].upper()
def missing_name(document): del document["files"][0]["name"]
def number_name(document): document["files"][0]["name"] = 7
def listed_twice(document): document["files"].append(dict(document["files"][0]))


@pytest.mark.parametrize("mutate", [mutate_format, drop_format, empty_files, files_not_a_list,
                                    entry_not_an_object, negative_size, boolean_size, text_size, short_hash,
                                    uppercase_hash, missing_name, number_name, listed_twice])
def test_a_malformed_document_is_refused(export_dir, mutate):
    """Starts from a manifest that verifies, so each refusal comes from the one mutation."""
    document = json.loads(manifest_path(export_dir).read_bytes())
    mutate(document)
    error = refusal(write_manifest_document(export_dir, document))
    assert error.code == "MANIFEST_MALFORMED"


def test_an_oversized_manifest_is_refused_unparsed(tmp_path):
    path = manifest_path(tmp_path)
    path.write_bytes(b" " * (2 << 20) + b"{}")
    error = refusal(path)
    assert error.code == "MANIFEST_MALFORMED" and "larger than" in error.message


def test_a_directory_as_the_manifest(tmp_path):
    path = manifest_path(tmp_path)
    path.mkdir()
    assert refusal(path).code in ("MANIFEST_MALFORMED", "MANIFEST_READ_FAILED")


def test_an_unreadable_output_is_a_read_failure(export_dir, monkeypatch):
    # Root reads a mode-0 file anyway, so the refusal comes from the hashing step itself.
    import cssadmin.manifest as manifest_module
    unreadable = OUTPUTS[0][0]
    real = manifest_module._sha256_of

    def refuse_one(handle, size):   # the file is opened by descriptor: know it by its size
        if size == len(OUTPUTS[0][1]):
            raise PermissionError(13, "Permission denied")
        return real(handle, size)
    monkeypatch.setattr(manifest_module, "_sha256_of", refuse_one)
    error = refusal(manifest_path(export_dir))
    assert error.code == "MANIFEST_READ_FAILED" and unreadable in error.message
