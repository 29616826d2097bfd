"""Measure cssadmin on this machine: start-up, a full AWS export on SoftHSM2, and the floor.

    python bench/bench.py [-n 15] [--write] [--binary dist/cssadmin] [--module PATH]

Each row is the median wall time of N runs (after one unmeasured warm-up run) of a separate
process, so Python's own start-up counts for the CLI and for the floor alike:
  * `--version` and `--help`: `python -m cssadmin` (from the source tree), the console script of
    that environment, the console script of the build venv (a regular, non-editable install) if
    there is one, the frozen one-file binary (reported "not built" if missing), and the one-folder
    build of the same bundle if build/freeze.sh --onedir made one, and with --before BINARY another
    one-file binary (an earlier build, say) in the same run, for before/after comparisons;
  * `aws kN WrappingKey.bin RSAES_OAEP_SHA_1 --pin-file ... --json [--no-audit]` on a throwaway
    SoftHSM2 token, with a fresh key name each run so that every run generates a key (source and
    frozen); --no-audit is passed only if `--help` lists it;
  * the floor, bench/floor.py: python-pkcs11 generating the same key and wrapping it with the same
    mechanism, nothing else; and the floor plus what the mechanism self-test adds;
  * the self-test alone: cssadmin.custody.selftest.run against an open Pkcs11Custody, timed in one
    process (no start-up in it).
The ratio column divides by the floor's median. The goals of issue 15 are checked from the same run
(each frozen row against the source row measured beside it): frozen `--version` at most 3x the
source's, a frozen export at most 1.3x the source export; PASS or FAIL per ratio.
--write also writes the table to BENCHMARKS.md, keeping its hand-written "Before and after" section.
Only the standard library, python-pkcs11 and cryptography are used.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN_LABEL = "bench"
PIN = "1234"


def run_once(command: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - started) * 1000
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {finished.returncode}: "
                           f"{finished.stderr.decode(errors='replace')[-800:]}{finished.stdout.decode(errors='replace')[-800:]}")
    return elapsed


class Plan:
    """Rows to measure, run interleaved: round i runs every row once, so a change in the machine's
    load during the benchmark reaches every row alike instead of skewing the rows measured then."""

    def __init__(self, runs: int):
        self.runs = runs
        self.rows: list[dict] = []

    def add(self, name: str, make_command, env: dict, cwd: Path) -> dict:
        row = {"name": name, "make": make_command, "env": env, "cwd": cwd, "times": []}
        self.rows.append(row)
        return row

    def run(self) -> None:
        for row in self.rows:
            run_once(row["make"]("warmup"), row["env"], row["cwd"])
        for i in range(self.runs):
            for row in self.rows:
                row["times"].append(run_once(row["make"](i), row["env"], row["cwd"]))
        for row in self.rows:
            times = row.pop("times")
            for key in ("make", "env", "cwd"):
                row.pop(key)
            row.update(median=statistics.median(times), min=min(times), max=max(times), runs=len(times))
            print(f"  {row['name']}: {row['median']:.1f} ms", file=sys.stderr)


def missing(name: str, why: str) -> dict:
    print(f"  {name}: {why}", file=sys.stderr)
    return {"name": name, "median": None, "note": why}


def make_token(scratch: Path) -> dict:
    tokens = scratch / "tokens"
    tokens.mkdir()
    conf = scratch / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
                    "--pin", PIN, "--so-pin", "5678"], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def make_wrapping_key(scratch: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    path = scratch / "WrappingKey.bin"
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


SELFTEST_SNIPPET = r"""
import json, sys, time
from cssadmin.custody.pkcs11 import Pkcs11Custody, TokenSelector
from cssadmin.custody import selftest
from cssadmin.keytypes import KEY_TYPES
from cssadmin.schemes import OAEP_SHA1
module, label, pin, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
custody = Pkcs11Custody(module, TokenSelector(label=label), lambda: pin)
key_type = KEY_TYPES["AES-256"]
selftest.run(custody, key_type, OAEP_SHA1)  # warm-up: loads the self-test key's modules
times = []
for _ in range(runs):
    started = time.perf_counter()
    selftest.run(custody, key_type, OAEP_SHA1)
    times.append((time.perf_counter() - started) * 1000)
custody.close()
print(json.dumps(times))
"""


def selftest_in_process(python: str, module: str, runs: int, env: dict) -> dict:
    name = "self-test alone (selftest.run in one process, AES-256, OAEP SHA-1)"
    finished = subprocess.run([python, "-c", SELFTEST_SNIPPET, module, TOKEN_LABEL, PIN, str(runs)],
                              env=env, cwd=ROOT, capture_output=True, text=True)
    if finished.returncode != 0:
        return missing(name, "could not run: " + (finished.stderr.strip().splitlines() or ["?"])[-1])
    times = json.loads(finished.stdout)
    row = {"name": name, "median": statistics.median(times), "min": min(times), "max": max(times), "runs": runs}
    print(f"  {name}: {row['median']:.1f} ms", file=sys.stderr)
    return row


def export_command(prefix: list[str], tag: str, scratch: Path, wrapping_key: Path, pin_file: Path,
                   module: str, no_audit: bool):
    def command(i):
        out = scratch / "out" / f"{tag}-{i}"
        out.mkdir(parents=True, exist_ok=True)
        return [*prefix, "aws", f"k{tag}{i}", str(wrapping_key), "RSAES_OAEP_SHA_1",
                "--pkcs11-module", module, "--token", TOKEN_LABEL, "--pin-file", str(pin_file),
                "--json", "--out-dir", str(out)] + (["--no-audit"] if no_audit else [])
    return command


# CArchive typecodes the bootloader does not write to disk: the PYZ (read in place), the bootstrap
# scripts and modules (run from memory), options.
NOT_UNPACKED = {"z", "Z", "s", "s1", "s2", "m", "M", "o", "l"}

KEPT_HEADING = "## Before and after"

GOALS = (  # (frozen row prefix, source row, limit): issue 15, each ratio measured side by side
    ("--version", "source: python -m cssadmin --version", 3.0),
    ("aws ...", "source: python -m cssadmin aws ... RSAES_OAEP_SHA_1", 1.3),
)


def bundle_facts(binary: Path) -> str:
    contents = ROOT / "build" / "work" / "bundle-contents.json"
    try:
        data = json.loads(contents.read_text())
    except (OSError, ValueError):
        return ""
    if data.get("sha256") and data.get("binary") == binary.name:
        import hashlib
        if hashlib.sha256(binary.read_bytes()).hexdigest() != data["sha256"]:
            return ""   # the manifest describes another build
    unpacked = [member for member in data["members"] if member["typecode"] not in NOT_UNPACKED]
    size = sum(member["size"] for member in unpacked)
    return (f"The one-file binary ({binary.stat().st_size / 1e6:.1f} MB) writes {len(unpacked)} files, "
            f"{size / 1e6:.1f} MB (libpython, cryptography's Rust extension with its OpenSSL, "
            "python-pkcs11's extension, base_library.zip, lib-dynload; the PYZ is read in place) into a "
            "fresh temporary directory on every start, then starts a second process (the bootloader's parent "
            "waits for its child) and deletes the directory on exit. The members are stored uncompressed "
            "(build/cssadmin.spec), so that is a copy, not a zlib inflate; it is still most of what the "
            "one-file binary costs over the one-folder build, which pays none of it.")


def goal_lines(rows: list[dict]) -> list[str]:
    by_name = {row["name"]: row for row in rows}
    lines = []
    for prefix in ("frozen:", "frozen one-folder:", "frozen before:"):
        for what, source_name, limit in GOALS:
            frozen = next((row for row in rows if row["name"].startswith(prefix + " ")
                           and what in row["name"]), None)
            source = by_name.get(source_name)
            if frozen is None or source is None or None in (frozen["median"], source["median"]):
                continue
            ratio = frozen["median"] / source["median"]
            verdict = "PASS" if ratio <= limit else "FAIL"
            lines.append(f"| {frozen['name']} | {frozen['median']:.1f} | {source['median']:.1f} | "
                         f"{ratio:.2f}x | at most {limit:.1f}x | {verdict} |")
    if not lines:
        return []
    return ["| frozen row | median ms | source median ms | ratio | goal | |",
            "|---|---:|---:|---:|---|---|", *lines]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    softhsm = subprocess.run(["softhsm2-util", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; SoftHSM2 {softhsm}")


def shown_arguments() -> str:
    """This run's arguments as given to bench/run.sh (which adds --python itself)."""
    shown, skip = [], False
    for argument in sys.argv[1:]:
        if skip:
            skip = False
        elif argument == "--python":
            skip = True
        elif not argument.startswith("--python="):
            shown.append(argument)
    return " ".join(shown)


def table(rows: list[dict], floor: float | None) -> list[str]:
    lines = ["| measurement | median ms | ratio to floor | min–max ms | runs |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        if row["median"] is None:
            lines.append(f"| {row['name']} | {row['note']} | | | |")
            continue
        ratio = f"{row['median'] / floor:.2f}x" if floor else "–"
        lines.append(f"| {row['name']} | {row['median']:.1f} | {ratio} | "
                     f"{row['min']:.1f}–{row['max']:.1f} | {row['runs']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 15)))
    parser.add_argument("--write", action="store_true", help="also write BENCHMARKS.md")
    parser.add_argument("--python", default=sys.executable, help="the source install's python (cssadmin importable)")
    parser.add_argument("--binary", default=str(ROOT / "dist" / ("cssadmin.exe" if os.name == "nt" else "cssadmin")))
    parser.add_argument("--onedir", default=str(ROOT / "dist" / "cssadmin-onedir" /
                                                 ("cssadmin.exe" if os.name == "nt" else "cssadmin")),
                        help="the one-folder build (build/freeze.sh --onedir); measured if it exists")
    parser.add_argument("--before", help="another frozen binary to measure in the same run (rows 'frozen before:')")
    parser.add_argument("--module", default=os.environ.get("CSSADMIN_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
    args = parser.parse_args()
    runs = args.runs
    python = args.python
    script = Path(python).parent / "cssadmin"
    build_script = ROOT / "build" / "work" / "venv" / "bin" / "cssadmin"
    binary = Path(args.binary)
    onedir = Path(args.onedir)
    variants = [(prefix, path) for prefix, path in
                (("frozen one-folder", onedir), ("frozen before", Path(args.before) if args.before else None))
                if path is not None and path.exists()]
    if args.before and not Path(args.before).exists():
        parser.error(f"--before {args.before}: no such file")

    with tempfile.TemporaryDirectory(prefix="cssadmin-bench-") as scratch_name:
        scratch = Path(scratch_name)
        env = make_token(scratch)
        env.pop("CSSADMIN_PKCS11_MODULE", None)
        # Measure as installed code runs: with bytecode caches (the warm-up run writes them for
        # the source tree). With PYTHONDONTWRITEBYTECODE set, every run would compile cssadmin anew.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        wrapping_key = make_wrapping_key(scratch)
        pin_file = scratch / "pin"
        pin_file.write_text(PIN)
        pin_file.chmod(0o600)

        help_text = subprocess.run([python, "-m", "cssadmin", "--help"], env=env, cwd=ROOT,
                                   capture_output=True, text=True).stdout
        no_audit = "--no-audit" in help_text
        print(f"bench: N={runs}, python {python}, --no-audit {'passed' if no_audit else 'not offered'}",
              file=sys.stderr)

        plan = Plan(runs)
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        startup: list[dict] = []
        for flag in ("--version", "--help"):
            startup.append(plan.add(f"source: python -m cssadmin {flag}",
                                    lambda i, f=flag: [python, "-m", "cssadmin", f], env, ROOT))
            if script.exists():
                startup.append(plan.add(f"console script ({script.parent.parent.name}): cssadmin {flag}",
                                        lambda i, f=flag: [str(script), f], env, scratch))
            if build_script.exists():
                startup.append(plan.add(f"console script, regular install (build venv): cssadmin {flag}",
                                        lambda i, f=flag: [str(build_script), f], env, scratch))
            if binary.exists():
                startup.append(plan.add(f"frozen: {binary.name} {flag}", lambda i, f=flag: [str(binary), f],
                                        env, scratch))
            else:
                startup.append(missing(f"frozen: {binary.name} {flag}", "not built"))
            for prefix, path in variants:
                startup.append(plan.add(f"{prefix}: {path.parent.name}/{path.name} {flag}",
                                        lambda i, f=flag, p=path: [str(p), f], env, scratch))

        floor_script = str(ROOT / "bench" / "floor.py")

        def floor_command(tag, extra=()):
            return lambda i: [python, floor_script, "--module", args.module, "--token", TOKEN_LABEL,
                              "--pin-file", str(pin_file), "--wrapping-key", str(wrapping_key),
                              "--label", f"{tag}{i}", *extra]

        export: list[dict] = []
        floor_row = plan.add("floor: bench/floor.py (same key, same wrap, nothing else)",
                             floor_command("floor"), env, ROOT)
        export.append(floor_row)
        export.append(plan.add("floor + self-test work (bench/floor.py --with-selftest)",
                               floor_command("floorst", ["--with-selftest"]), env, ROOT))
        export.append(plan.add("source: python -m cssadmin aws ... RSAES_OAEP_SHA_1",
                               export_command([python, "-m", "cssadmin"], "src", scratch, wrapping_key, pin_file,
                                              args.module, no_audit), env, ROOT))
        if binary.exists():
            frozen_help = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
            export.append(plan.add(f"frozen: {binary.name} aws ... RSAES_OAEP_SHA_1",
                                   export_command([str(binary)], "bin", scratch, wrapping_key, pin_file,
                                                  args.module, "--no-audit" in frozen_help), env, scratch))
        else:
            export.append(missing(f"frozen: {binary.name} aws ...", "not built"))
        for n, (prefix, path) in enumerate(variants):
            export.append(plan.add(f"{prefix}: {path.parent.name}/{path.name} aws ... RSAES_OAEP_SHA_1",
                                   export_command([str(path)], f"v{n}", scratch, wrapping_key, pin_file,
                                                  args.module, no_audit), env, scratch))
        plan.run()
        export.append(selftest_in_process(python, args.module, runs, env))
        load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    floor = floor_row["median"]
    rows = startup + export
    lines = table(rows, floor)
    print("\n".join(lines))
    goals = goal_lines(rows)
    if goals:
        print("\n".join(["", "Frozen start-up goals (issue 15), from this run:", *goals]))

    notes = []
    by_name = {row["name"]: row for row in rows}
    source_version = by_name.get("source: python -m cssadmin --version", {}).get("median")
    source_export = next((row for row in export if row["name"].startswith("source: ")), None)
    floor_selftest = next(row for row in export if row["name"].startswith("floor + self-test"))
    if source_version is not None:
        notes.append(f"- source `--version`: {source_version:.1f} ms median "
                     f"({'under' if source_version < 60 else 'NOT under'} the 60 ms target).")
    if source_export and source_export["median"] is not None:
        ratio = source_export["median"] / floor
        selftest_cost = floor_selftest["median"] - floor
        without_selftest = (source_export["median"] - selftest_cost) / floor
        notes.append(f"- full AWS export from source: {ratio:.2f}x the floor; {without_selftest:.2f}x with the "
                     f"self-test's own cost ({selftest_cost:.1f} ms) set apart "
                     f"({'within' if without_selftest <= 1.3 else 'NOT within'} the 1.3x target); "
                     f"{source_export['median'] / floor_selftest['median']:.2f}x the floor that does the "
                     "self-test's work too.")
    notes.append(f"- self-test: floor + self-test work minus floor = "
                 f"{floor_selftest['median'] - floor:.1f} ms; measured alone in one process, see the last row. "
                 "Most of it is loading `cryptography` for the software unwrap: the floor reads the "
                 "SubjectPublicKeyInfo with asn1crypto, which python-pkcs11 loads anyway.")
    notes.append("- beyond floor + self-test work, the export spends its time importing its own modules "
                 "(argparse, dataclasses, the provider tables; `python -X importtime -m cssadmin aws ...` shows "
                 "about 25 ms) and on the output protocol (the wrapped file and the manifest staged, fsynced, "
                 "read back, renamed, the directory fsynced: a few ms here). The floor writes no file at all.")
    facts = bundle_facts(binary) if binary.exists() else ""
    if facts:
        notes.append(f"- frozen start-up: {facts}")
    if load_before:
        notes.append(f"- machine load (1-minute load average) before / after: {load_before[0]:.2f} / "
                     f"{load_after[0]:.2f} on {os.cpu_count()} cores; rows were measured interleaved, one run "
                     "of each per round, so load changes reach all rows alike.")
    notes.append(f"- no audit record: {'--no-audit passed' if no_audit else 'the CLI offers no --no-audit; the default audit record was written'}.")
    print("\n".join(notes))

    if args.write:
        document = [
            "# Benchmarks",
            "",
            f"Measured by `bash bench/run.sh {shown_arguments()}` on {machine()}.",
            f"Each row: median wall time of {runs} runs of a separate process (after one warm-up run; the rows "
            "interleaved, one run of each per round), so "
            "Python's start-up is in the CLI rows and in the floor alike; ratio = median / floor median.",
            f"SoftHSM2 token made fresh for the run; each export generates a new AES-256 token key "
            "(fresh key name) and wraps it under an RSA-4096 public key with CKM_RSA_PKCS_OAEP, SHA-1.",
            "",
            *lines,
            "",
            *(["## Frozen start-up goals (issue 15)", "",
               "Each frozen row divided by the source row measured in the same run, interleaved with it.", "",
               *goals, ""] if goals else []),
            "## Notes",
            "",
            *notes,
            "",
        ]
        target = ROOT / "BENCHMARKS.md"
        # A hand-written history (before/after comparisons and the commands that made them) follows
        # the generated part under KEPT_HEADING; --write keeps it.
        previous = target.read_text() if target.exists() else ""
        if KEPT_HEADING in previous:
            document += [previous[previous.index(KEPT_HEADING):].rstrip("\n"), ""]
        target.write_text("\n".join(document))
        print("bench: wrote BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
