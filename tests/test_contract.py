"""Issue 13: every failure keeps the command line's contract - exit field, interrupts, closed pipes,
hostile input files, secrets never echoed, repeated options, the structured remedy."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import stopped_at
from keks import rsa_key, write_spki

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def kek4096(tmp_path):
    return write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")


def private(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def keystore_export(tmp_path, kek, key_name="k1", *extra, algorithm="RSAES_OAEP_SHA_256") -> list[str]:
    """An aws export into a software keystore: no token needed, the passphrase from a 0600 file."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return ["aws", key_name, str(kek), algorithm, "--keystore", str(tmp_path / "ks"),
            "--passphrase-file", private(tmp_path / "pass", PASSPHRASE), "--out-dir", str(out), *extra]


def the_error(result: subprocess.CompletedProcess) -> dict:
    report = json.loads(result.stdout)
    assert report["ok"] is False and set(report["error"]) == {"code", "exit", "message", "remedy"}
    return report["error"]


# ------------------------------------------------------------------ item 1: "exit" is the status

def test_json_exit_equals_the_process_status_for_every_failure_code(cli, tmp_path, kek4096):
    weak = write_spki(rsa_key(2048), tmp_path / "weak.bin")
    ks_args = keystore_export(tmp_path, kek4096, "k6")
    assert cli.run(ks_args + ["--no-audit"]).returncode == 0          # makes AES-256 key k6
    (tmp_path / "out" / "taken-wrapped").write_text("x")
    cases = {
        2: ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path), "--out-dir", str(tmp_path)],
        3: ["aws", "k", str(tmp_path / "missing.bin"), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path)],
        4: ["aws", "k", str(weak), "RSAES_OAEP_SHA_256", "--out-dir", str(tmp_path)],
        5: ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_256", "--pkcs11-module", str(tmp_path / "no.so"),
            "--out-dir", str(tmp_path), "--no-audit"],
        6: keystore_export(tmp_path, kek4096, "k6", "-k", "RSA-2048", "--no-audit", "--force",
                           algorithm="RSA_AES_KEY_WRAP_SHA_256"),
        7: keystore_export(tmp_path, kek4096, "taken", "--no-audit"),
    }
    for expected, args in cases.items():
        result = cli.run(["--json"] + args)
        assert result.returncode == expected, (expected, result.stdout, result.stderr)
        assert the_error(result)["exit"] == expected


def test_json_exit_is_1_for_a_bug_and_130_for_an_interrupt(monkeypatch, capsys):
    from cssadmin import cli, commands

    def bug(namespace, progress=None):
        raise RuntimeError("a bug")

    def interrupt(namespace, progress=None):
        raise KeyboardInterrupt

    for raiser, expected in ((bug, 1), (interrupt, 130)):
        monkeypatch.setattr(commands, "dispatch", raiser)
        assert cli.main(["--json", "aws", "k", "f", "RSAES_OAEP_SHA_1"]) == expected
        assert json.loads(capsys.readouterr().out)["error"]["exit"] == expected


@pytest.mark.skipif(os.name == "nt", reason="Windows cannot send SIGINT to one process")
@pytest.mark.parametrize("step", ["staged", "renamed-one"])
def test_sigint_during_an_export_is_130_in_status_and_json(cli, tmp_path, kek4096, step):
    status, stdout = stopped_at(cli, keystore_export(tmp_path, kek4096), step, signal.SIGINT)
    assert status == 130
    error = json.loads(stdout)["error"]
    assert (error["exit"], error["code"]) == (130, "INTERRUPTED")


@pytest.mark.skipif(os.name == "nt", reason="Windows has no process groups to signal as a terminal does")
def test_a_second_sigint_does_not_cut_short_the_destruction_of_the_new_key(cli, tmp_path, kek4096):
    """Ctrl-C signals the terminal's whole process group, and a one-file frozen binary's bootloader
    forwards its own copy to its child: one Ctrl-C is two SIGINTs there. A SIGINT that arrives while
    the run is discarding the key it created must not stop that, or the key stays behind."""
    env = cli.environment(env={"CSSADMIN_TEST_PAUSE_AT": "staged,discarding"})
    process = subprocess.Popen(cli.command + ["--json"] + keystore_export(tmp_path, kek4096), env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        for step in ("staged", "discarding"):
            line = process.stderr.readline()
            assert f"paused at {step}" in line, line
            os.killpg(process.pid, signal.SIGINT)   # as a terminal's Ctrl-C does
        time.sleep(0.5)   # the second SIGINT has landed before the discard goes on
        stdout, _ = process.communicate("go on\n", timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stdout
    assert json.loads(stdout)["error"]["exit"] == 130
    again = cli.run(["--json"] + keystore_export(tmp_path, kek4096) + ["--no-audit"])
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["key"]["created"] is True, "the interrupted run's key was left behind"


@pytest.mark.skipif(os.name == "nt", reason="Windows delivers neither SIGTERM nor SIGHUP to a process")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_run_as_ctrl_c_does(cli, tmp_path, kek4096, name):
    """A ceremony script's timeout (SIGTERM) or a dropped ssh session (SIGHUP) must not leave the new key
    on the token either: the run cleans up and exits 128 + the signal, the JSON saying the same."""
    number = getattr(signal, name)
    # to the process started: a frozen binary's bootloader must forward it to its child
    status, stdout = stopped_at(cli, keystore_export(tmp_path, kek4096), "key-ready", number, signal_launcher=True)
    assert status == 128 + number, stdout
    error = json.loads(stdout)["error"]
    assert (error["exit"], error["code"]) == (128 + number, "INTERRUPTED") and name in error["message"]
    again = cli.run(["--json"] + keystore_export(tmp_path, kek4096) + ["--no-audit"])
    assert json.loads(again.stdout)["key"]["created"] is True, "the stopped run's key was left behind"


def run_on_a_terminal(command: list[str], env: dict, answer: bytes, wait_for: bytes) -> tuple[int, bytes]:
    """Run `command` with a pseudo-terminal as its controlling terminal; type `answer` after `wait_for`."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()

    def take_the_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(command, env=env, stdin=slave, stdout=slave, stderr=slave,
                               start_new_session=True, preexec_fn=take_the_terminal)
    os.close(slave)
    seen, answered, deadline = b"", False, time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:   # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and wait_for in seen:
                os.write(master, answer)
                answered = True
        return process.wait(timeout=30), seen
    finally:
        process.kill()
        os.close(master)


@pytest.mark.skipif(os.name == "nt", reason="Windows has no pseudo-terminal (pty) to type Ctrl-C at the prompt")
@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_at_the_passphrase_prompt_is_130(cli, tmp_path, kek4096, as_json):
    args = [a for a in keystore_export(tmp_path, kek4096) if a != "--passphrase-file"]
    args.remove(str(tmp_path / "pass"))
    env = cli.environment()
    status, seen = run_on_a_terminal(cli.command + (["--json"] if as_json else []) + args, env,
                                     answer=b"\x03", wait_for=b"passphrase: ")
    assert status == 130, seen
    assert b"SECRET_SOURCE_UNUSABLE" not in seen and b"no passphrase entered" not in seen
    if as_json:
        assert b'"exit": 130' in seen


# ------------------------------------------------------------------ item 2: a closed stdout

def run_with_stdout_closed(command: list[str], env: dict) -> tuple[int, str]:
    reader, writer = os.pipe()
    os.close(reader)   # nobody will read: every write to stdout fails with EPIPE
    try:
        result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=writer,
                                stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(writer)
    return result.returncode, result.stderr


@pytest.mark.parametrize("as_json", [True, False])
def test_a_closed_stdout_after_a_successful_export_is_141_and_the_audit_record_is_written(
        cli, tmp_path, kek4096, as_json):
    audit_log = tmp_path / "audit.jsonl"
    env = cli.environment()
    args = keystore_export(tmp_path, kek4096, "k1", "--audit-log", str(audit_log))
    status, stderr = run_with_stdout_closed(cli.command + (["--json"] if as_json else []) + args, env)
    assert status == 141, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert (tmp_path / "out" / "k1-wrapped").is_file()
    verified = cli.json(["verify-audit", str(audit_log)])
    assert (verified[0], verified[1]["ok"], verified[1]["records"]) == (0, True, 1), verified


def test_help_into_a_closed_pipe_is_141_without_a_traceback(cli):
    env = cli.environment()
    status, stderr = run_with_stdout_closed(cli.command + ["--help"], env)
    assert (status, stderr) == (141, "")


def test_a_failure_keeps_its_own_code_when_stdout_is_closed(cli, tmp_path):
    env = cli.environment()
    status, stderr = run_with_stdout_closed(cli.command + ["--json", "verify-audit", str(tmp_path / "none")], env)
    assert (status, stderr) == (7, "")


@pytest.mark.skipif(os.name == "nt", reason="Windows gives a program no way to start with its stdout closed")
def test_an_export_started_with_stdout_closed_is_141_and_on_the_record(cli, tmp_path, kek4096):
    """`cssadmin ... >&-`: Python starts with no sys.stdout at all; the run and its record still stand."""
    audit_log = tmp_path / "audit.jsonl"
    args = keystore_export(tmp_path, kek4096, "k1", "--audit-log", str(audit_log))
    closed = ["sh", "-c", 'exec "$@" >&-', "sh"]
    result = subprocess.run(closed + cli.command + ["--json"] + args, env=cli.environment(),
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert (result.returncode, result.stderr) == (141, ""), result.stderr
    assert (tmp_path / "out" / "k1-wrapped").is_file()
    assert cli.json(["verify-audit", str(audit_log)])[1]["records"] == 1
    failed = subprocess.run(closed + cli.command + ["verify-audit", str(tmp_path / "none")], env=cli.environment(),
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert failed.returncode == 7 and failed.stderr.startswith("cssadmin: error: "), failed.stderr


@pytest.mark.skipif(os.name == "nt", reason="Windows has no process groups to signal as a terminal does")
def test_ctrl_c_after_the_report_is_printed_leaves_the_status_0(cli, tmp_path, kek4096):
    """The JSON said ok: a Ctrl-C that lands while the process exits must not turn that into 130."""
    for attempt in range(3):
        args = keystore_export(tmp_path, kek4096, f"late{attempt}", "--no-audit")
        process = subprocess.Popen(cli.command + ["--json"] + args, env=cli.environment(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            first = process.stdout.readline()   # the report has begun: the outcome is decided
            os.killpg(process.pid, signal.SIGINT)
            rest = process.stdout.read()
            process.wait(timeout=60)
        finally:
            process.kill()
        assert json.loads(first + rest)["ok"] is True
        assert process.returncode == 0, (attempt, process.returncode)


# ------------------------------------------------------------------ item 4: hostile input files

def timed(cli, args, **kwargs):
    started = time.monotonic()
    result = cli.run(args, **kwargs)
    return result, time.monotonic() - started


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="Windows has no FIFOs (os.mkfifo)")
@pytest.mark.parametrize("action", ["verify-manifest", "verify-audit"])
def test_a_fifo_as_a_verify_input_exits_7_at_once_with_one_line(cli, tmp_path, action):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result, seconds = timed(cli, [action, str(fifo)])
    assert seconds < 2 and result.returncode == 7
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1 and "FIFO" in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="Windows has no FIFOs (os.mkfifo)")
def test_a_fifo_as_the_passphrase_file_exits_5_at_once(cli, tmp_path, kek4096):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    args = keystore_export(tmp_path, kek4096)
    args[args.index("--passphrase-file") + 1] = str(fifo)
    result, seconds = timed(cli, args + ["--no-audit"])
    assert seconds < 2 + 1 and result.returncode == 5, result.stderr   # +1: a keystore run starts slower
    assert len(result.stderr.splitlines()) == 1 and "FIFO" in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="Windows has no FIFOs (os.mkfifo)")
@pytest.mark.token
def test_a_fifo_as_the_pin_file_exits_5_at_once(cli, tmp_path, kek4096, softhsm):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    result, seconds = timed(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--token", softhsm.label,
                                  "--pin-file", str(fifo), "--out-dir", str(tmp_path), "--no-audit"],
                            token=softhsm)
    assert seconds < 2 and result.returncode == 5, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "FIFO" in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="Windows has no FIFOs (os.mkfifo)")
def test_a_file_swapped_for_a_fifo_after_a_stat_does_not_hang(tmp_path):
    """open_regular judges the descriptor it opened, so a swap between any stat and the open cannot block."""
    from cssadmin import inputs
    path = tmp_path / "pin"
    private(path, "1234")
    os.stat(path)          # what a check-then-open reader looked at
    path.unlink()
    os.mkfifo(path, 0o600)
    started = time.monotonic()
    with pytest.raises(inputs.NotRegularFile, match="FIFO"):
        inputs.read_at_most(path, 100)
    assert time.monotonic() - started < 2


@pytest.mark.skipif(os.name == "nt" or not os.path.exists("/proc/self/status"),
                    reason="Windows has no /proc/self/status to read a process's peak RSS from")
def test_a_huge_audit_line_is_refused_in_bounded_memory(tmp_path):
    log = tmp_path / "audit.jsonl"
    with open(log, "wb") as handle:
        handle.truncate(300 << 20)      # 300 MB of one line, sparse on disk
    # VmHWM, the probe's own peak: getrusage's ru_maxrss survives execve, so it would report the size
    # of the (forked) pytest process once that has grown past the bound.
    probe = ("import re, sys; from cssadmin.cli import main; status = main(['--json', 'verify-audit', "
             f"{str(log)!r}]); sys.stderr.write(re.search(r'VmHWM:\\s+(\\d+) kB', "
             "open('/proc/self/status').read()).group(1)); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 7
    assert json.loads(result.stdout)["error"]["code"] == "AUDIT_TOO_LARGE"
    peak_kilobytes = int(result.stderr.strip().splitlines()[-1])   # the probe's last line; a warning may precede it
    assert peak_kilobytes < 100 * 1024, result.stderr   # far below the 300 MB a whole-line read takes


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="Windows has no FIFOs (os.mkfifo)")
def test_wrapping_key_reader_refuses_a_fifo_without_blocking(tmp_path):
    from cssadmin.errors import WrappingKeyError
    from cssadmin.wrapping_key import load_wrapping_key_file
    fifo = tmp_path / "kek.pem"
    os.mkfifo(fifo)
    with pytest.raises(WrappingKeyError, match="FIFO"):
        load_wrapping_key_file(fifo)


# ------------------------------------------------------------------ item 7: secrets

NOT_UTF8 = "12\udcff34"   # the byte 0xff inside, as os.environ carries it (surrogateescape)


def assert_no_trace_of_the_byte(result):
    for shown in ("\\xff", "0xff", "\\udcff", "position", "\udcff"):
        assert shown not in result.stdout and shown not in result.stderr, shown


@pytest.mark.skipif(os.name == "nt", reason="Windows environments are Unicode: there are no non-UTF-8 bytes to pass")
def test_a_non_utf8_passphrase_env_is_exit_5_and_never_shown(cli, tmp_path, kek4096):
    args = keystore_export(tmp_path, kek4096)
    at = args.index("--passphrase-file")
    args[at:at + 2] = ["--passphrase-env", "MY_PASSPHRASE"]
    result = cli.run(["--json"] + args + ["--no-audit"], env={"MY_PASSPHRASE": NOT_UTF8})
    assert result.returncode == 5, result.stdout
    assert the_error(result)["code"] == "SECRET_SOURCE_UNUSABLE"
    assert_no_trace_of_the_byte(result)


@pytest.mark.token
def test_a_non_utf8_pin_env_is_exit_5_and_never_shown(cli, tmp_path, kek4096, softhsm):
    result = cli.run(["--json", "aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--token", softhsm.label,
                      "--pin-env", "MY_PIN", "--out-dir", str(tmp_path), "--no-audit"],
                     token=softhsm, env={"MY_PIN": NOT_UTF8})
    assert result.returncode == 5, result.stdout
    assert the_error(result)["code"] == "SECRET_SOURCE_UNUSABLE"
    assert_no_trace_of_the_byte(result)


SPY = '''
import ctypes, os, pkcs11
_libc = ctypes.CDLL(None)
_libc.getenv.restype = ctypes.c_char_p
_load = pkcs11.lib
def lib(path):
    with open(os.environ["SPY_RECORD"], "w") as record:
        record.write(repr(_libc.getenv(b"MY_PIN")))
    return _load(path)
pkcs11.lib = lib
'''


@pytest.mark.token
@pytest.mark.source_only   # the spy is a sitecustomize module, which a frozen binary does not load
def test_the_pin_variable_is_gone_before_the_vendor_module_loads(cli, tmp_path, kek4096, softhsm, key_name):
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    record = tmp_path / "record"
    result = cli.run(["aws", key_name, str(kek4096), "RSAES_OAEP_SHA_1", "--token", softhsm.label,
                      "--pin-env", "MY_PIN", "--out-dir", str(tmp_path), "--no-audit"], token=softhsm,
                     env={"MY_PIN": softhsm.pin, "SPY_RECORD": str(record),
                          "PYTHONPATH": f"{spy}{os.pathsep}{ROOT}"})
    assert result.returncode == 0, result.stderr      # the PIN still reached the login
    assert record.read_text() == "None"               # but the module's getenv() no longer sees it


@pytest.mark.parametrize("args", [
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "--pin", "735194"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "--pin=735194"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "-p735194"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "735194"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "x", "735194"],
    ["verify-audit", "a.jsonl", "735194"],
    ["-m", "735194x", "aws", "k", "{kek}", "RSAES_OAEP_SHA_1"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "--pin-env", "735194"],
    ["aws", "k", "{kek}", "735194"],
    ["735194", "k", "{kek}", "RSAES_OAEP_SHA_1"],
    ["aws", "735194!", "{kek}", "RSAES_OAEP_SHA_1"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "-k", "735194"],
    ["aws", "k", "{kek}", "RSAES_OAEP_SHA_1", "--expect-fingerprint", "735194"],
    ["google-cloud-key-management", "k", "{kek}", "--import-method", "735194"],
])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_pin_typed_in_the_wrong_place_is_never_shown(cli, tmp_path, kek4096, args, as_json):
    args = [arg.replace("{kek}", str(kek4096)) for arg in args] + ["--out-dir", str(tmp_path)]
    result = cli.run((["--json"] if as_json else []) + args, cwd=tmp_path)
    assert result.returncode in (2, 4, 5)
    assert "735194" not in result.stdout + result.stderr
    assert not (cli.home / "state").exists()          # nor in an audit record


def test_extra_positionals_are_named_by_position(cli, tmp_path, kek4096):
    result = cli.run(["--json", "aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "1234", "5678"])
    error = the_error(result)
    assert result.returncode == 2
    assert "2 extra positional arguments (5th, 6th; values not shown" in error["message"]


def test_a_wildcard_that_matched_two_wrapping_keys_is_named(cli, tmp_path, kek4096):
    second = write_spki(rsa_key(2048), tmp_path / "WrappingKey2.bin")
    error = the_error(cli.run(["--json", "aws", "k", str(kek4096), str(second), "RSAES_OAEP_SHA_1"]))
    assert error["exit"] == 2 and "wildcard" in error["message"]
    error = the_error(cli.run(["--json", "microsoft-azure", "k", str(kek4096), str(second), "-a", "x"]))
    assert error["exit"] == 2 and "wildcard" in error["message"]


# ------------------------------------------------------------------ item 8: repeated options

def single_value_options() -> list[str]:
    from cssadmin.arguments import build_parser
    return [action.option_strings[-1] for action in build_parser()._actions
            if action.option_strings and action.nargs is None and action.const is None
            and action.default in (None, ".")]


def test_every_single_value_option_is_found():
    assert {"--out-dir", "--audit-log", "--pin-file", "--pin-env", "--keystore", "--module", "--token",
            "--key-type", "--csek-uri", "--ca-bundle", "--pins"} <= set(single_value_options())


@pytest.mark.parametrize("option", single_value_options())
def test_a_repeated_single_value_option_is_a_usage_error(option):
    from cssadmin.arguments import parse
    from cssadmin.errors import UsageError
    with pytest.raises(UsageError) as caught:
        parse(["aws", "k", "f", "RSAES_OAEP_SHA_1", option, "1", option, "2"])
    assert caught.value.exit_code == 2 and caught.value.code == "OPTION_REPEATED"


def test_a_repeated_out_dir_is_exit_2(cli, tmp_path, kek4096):
    result = cli.run(["--json", "aws", "k", str(kek4096), "RSAES_OAEP_SHA_1",
                      "--out-dir", str(tmp_path), "--out-dir", str(tmp_path / "b")])
    assert result.returncode == 2 and the_error(result)["code"] == "OPTION_REPEATED"


def test_keystore_with_module_protection_is_exit_2(cli, tmp_path, kek4096):
    result = cli.run(["--json", "-M"] + keystore_export(tmp_path, kek4096) + ["--no-audit"])
    assert result.returncode == 2 and "-M" in the_error(result)["message"]


# ------------------------------------------------------------------ item 10: remedy

def test_json_errors_carry_the_remedy_as_its_own_field(cli, tmp_path, kek4096):
    (tmp_path / "k-wrapped").write_text("there")
    result = cli.run(["--json", "aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path)])
    error = the_error(result)
    assert error["code"] == "OUTPUT_EXISTS"
    assert error["remedy"] == "move it away, or pass --force to replace it"
    assert "--force" not in error["message"]
    text = cli.run(["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path)])
    assert text.stderr.strip().endswith("(move it away, or pass --force to replace it)")


def test_a_failure_without_a_remedy_has_remedy_null(cli, tmp_path):
    assert the_error(cli.run(["--json", "verify-audit", str(tmp_path / "none")]))["remedy"] is None


# ------------------------------------------------------------------ item 11: next steps that fit

def test_help_states_each_providers_default_key_type(cli):
    from cssadmin.providers import PROVIDER_NAMES, get_provider
    helptext = cli.run(["--help"]).stdout
    readme = (ROOT / "README.md").read_text()
    for name, provider in ((name, get_provider(name)) for name in PROVIDER_NAMES):
        assert any(line.split()[:2] == [name, provider.default_key_type] for line in helptext.splitlines())
        assert f"| `{name}` | {provider.default_key_type} " in readme


def test_import_method_in_gclouds_lowercase_spelling_is_accepted(cli, tmp_path, kek4096):
    result = cli.run(["--json", "google-cloud-key-management", "k", str(kek4096),
                      "--import-method", "rsa-oaep-4096-sha256-aes-256", "--out-dir", str(tmp_path / "none")])
    assert the_error(result)["code"] == "DESTINATION_MISSING"     # got past the import method check


def test_gce_next_step_names_the_disk_and_zone_of_the_csek_uri():
    from cssadmin.keytypes import KEY_TYPES
    from cssadmin.providers.base import Options, Wrapped
    from cssadmin.providers.google_compute_engine import PROVIDER
    wrapped = Wrapped(key_name="k", key_type=KEY_TYPES["AES-256"], algorithm="RSAES_OAEP_SHA_1", blob=b"x")
    uri = "https://www.googleapis.com/compute/v1/projects/my-proj/zones/europe-west1-b/disks/disk-1"
    step = PROVIDER.next_step(wrapped, Options(wrap_alg="RSAES_OAEP_SHA_1", csek_uri=uri))
    assert "disks create disk-1 --zone europe-west1-b --project my-proj --csek-key-file k-csek.json" in step
    readme_style = PROVIDER.next_step(wrapped, Options(csek_uri=uri.replace("my-proj", "P").replace("disk-1", "D")
                                                       + "?alt=json"))
    assert "disks create D --zone europe-west1-b --project P" in readme_style
    image = PROVIDER.next_step(wrapped, Options(csek_uri="https://www.googleapis.com/compute/v1/projects/p/global/images/i"))
    assert "<DISK> --zone <ZONE>" in image
