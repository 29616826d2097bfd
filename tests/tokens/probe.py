"""Measure what python-pkcs11 can do against the test tokens.

    python tests/tokens/probe.py DIR/tokens.json [--json]

DIR/tokens.json comes from tests/tokens/provision.sh. Each token is probed in
its own child process (env from tokens.json, a module crash stays contained),
then tables are printed; see tests/tokens/FACTS.md for the conclusions.
The probe leaves nothing on the tokens (its one token object is destroyed).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

RSA_AES_KEY_WRAP = 0x1054
AES_KEY_WRAP_PAD = 0x210A
AES_KEY_WRAP_KWP = 0x210B
PROBE_LABEL = "cssadmin-probe-aes"


def exc(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}" + (f"({msg})" if msg else "")


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - we are measuring exceptions
        return "ERR " + exc(e)


def i2b(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


# ----------------------------------------------------------------- child
def probe_token(t: dict) -> dict:
    import pkcs11
    from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    r: dict = {"name": t["name"]}
    pin = t["pin"] or None  # "" = no C_Login

    # (g) loading / lookup errors
    r["g_module_missing"] = attempt(lambda: pkcs11.lib("/nonexistent/libnope.so"))
    lib = pkcs11.lib(t["module"])
    r["g_lib"] = f"{lib.manufacturer_id!r} {lib.library_description!r} v{lib.library_version} cryptoki {lib.cryptoki_version}"
    r["g_tokens"] = [
        {"label": tk.label, "slot_id": tk.slot.slot_id, "manufacturer_id": tk.manufacturer_id,
         "model": tk.model, "serial": tk.serial, "firmware_version": tk.firmware_version,
         "hardware_version": tk.hardware_version, "flags": hex(tk.flags)}
        for tk in lib.get_tokens()
    ]
    r["g_token_not_found"] = attempt(lambda: lib.get_token(token_label="no-such-token"))
    r["g_get_token_no_args"] = attempt(lambda: str(lib.get_token()))
    tok = lib.get_token(token_label=t["token_label"])

    def wrong_pin():
        with tok.open(user_pin="0000"):
            return "no error"
    r["g_wrong_pin"] = attempt(wrong_pin)
    if t["name"] == "nss":
        def empty_login():
            with tok.open(rw=True, user_pin=""):
                return "C_Login(\"\") ok"
        r["nss_login_empty_pin"] = attempt(empty_login)

    mechs = {int(m) for m in tok.slot.get_mechanisms()}
    r["f_rsa_aes_key_wrap_listed"] = RSA_AES_KEY_WRAP in mechs
    r["kwp_listed"] = {"0x210A": AES_KEY_WRAP_PAD in mechs, "0x210B": AES_KEY_WRAP_KWP in mechs}
    r["oaep_listed"] = Mechanism.RSA_PKCS_OAEP in mechs

    with tok.open(rw=True, user_pin=pin) as s:
        for o in s.get_objects({Attribute.LABEL: PROBE_LABEL}):
            o.destroy()

        # (a) AES-256 token key: private, sensitive, extractable
        try:
            aes = s.generate_key(
                KeyType.AES, 256, label=PROBE_LABEL, id=b"\xc5\x5a\x01", store=True,
                template={Attribute.TOKEN: True, Attribute.PRIVATE: True,
                          Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True})
            r["a_generate_aes_token_key"] = "ok " + ",".join(
                f"{n}={aes[a]}" for n, a in (("TOKEN", Attribute.TOKEN), ("PRIVATE", Attribute.PRIVATE),
                                              ("SENSITIVE", Attribute.SENSITIVE),
                                              ("EXTRACTABLE", Attribute.EXTRACTABLE)))
        except Exception as e:  # noqa: BLE001
            r["a_generate_aes_token_key"] = "ERR " + exc(e)
            aes = None

        # (h) C_DigestKey
        digest = None
        if aes is not None:
            try:
                digest = s.digest(aes, mechanism=Mechanism.SHA256)
                r["h_digest_key"] = "ok"
            except Exception as e:  # noqa: BLE001
                r["h_digest_key"] = "ERR " + exc(e)
            # (d) CKA_VALUE of a sensitive key
            r["d_read_sensitive_value"] = attempt(lambda: "no error, got %d bytes" % len(aes[Attribute.VALUE]))

        # (b) + (c) RSA public key import and wrap
        r["c"] = {}
        variants = [
            ("OAEP-SHA1", Mechanism.RSA_PKCS_OAEP, (Mechanism.SHA_1, MGF.SHA1, None), hashes.SHA1()),
            ("OAEP-SHA256", Mechanism.RSA_PKCS_OAEP, (Mechanism.SHA256, MGF.SHA256, None), hashes.SHA256()),
            ("OAEP-SHA512", Mechanism.RSA_PKCS_OAEP, (Mechanism.SHA512, MGF.SHA512, None), hashes.SHA512()),
            ("RSA_PKCS", Mechanism.RSA_PKCS, None, None),
        ]
        for bits in (2048, 4096):
            priv = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            pn = priv.public_key().public_numbers()
            try:
                pub = s.create_object({
                    Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA,
                    Attribute.MODULUS: i2b(pn.n), Attribute.PUBLIC_EXPONENT: i2b(pn.e),
                    Attribute.WRAP: True, Attribute.TOKEN: False})
                r[f"b_import_rsa{bits}"] = "ok " + type(pub).__name__
            except Exception as e:  # noqa: BLE001
                r[f"b_import_rsa{bits}"] = "ERR " + exc(e)
                continue
            if aes is None:
                continue
            for name, mech, param, h in variants:
                try:
                    blob = pub.wrap_key(aes, mechanism=mech, mechanism_param=param)
                except Exception as e:  # noqa: BLE001
                    r["c"][f"{name}/{bits}"] = "ERR " + exc(e)
                    continue
                pad = (padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
                       if h else padding.PKCS1v15())
                try:
                    plain = priv.decrypt(blob, pad)
                except Exception as e:  # noqa: BLE001
                    r["c"][f"{name}/{bits}"] = f"wrapped {len(blob)}B, decrypt ERR {exc(e)}"
                    continue
                same = digest is not None and hashlib.sha256(plain).digest() == digest
                r["c"][f"{name}/{bits}"] = (f"ok {len(plain)}B key, " +
                                            ("sha256==C_DigestKey" if same else "DIGEST MISMATCH/unknown"))

        # (e) AES key wrap with padding, KEK known by value
        kek = os.urandom(32)
        wk = s.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
            Attribute.VALUE: kek, Attribute.TOKEN: False, Attribute.SENSITIVE: False,
            Attribute.EXTRACTABLE: True, Attribute.WRAP: True, Attribute.UNWRAP: True,
            Attribute.ENCRYPT: True, Attribute.DECRYPT: True})
        r["h_digest_known_key"] = attempt(
            lambda: "matches hashlib" if s.digest(wk, mechanism=Mechanism.SHA256) == hashlib.sha256(kek).digest()
            else "MISMATCH")

        targets: dict = {}
        clear = {Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}

        def t_aes():
            k = s.generate_key(KeyType.AES, 256, store=False, template=clear)
            v = k[Attribute.VALUE]
            return k, (lambda p: p == v), len(v)

        def t_generic():
            try:
                k = s.generate_key(KeyType.GENERIC_SECRET, 160, store=False, template=clear)
                how = "generated"
            except Exception as e:  # noqa: BLE001
                k = s.create_object({
                    Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                    Attribute.VALUE: os.urandom(20), Attribute.TOKEN: False, **clear})
                how = f"created by value (keygen: {exc(e)})"
            v = k[Attribute.VALUE]
            targets["generic_how"] = how
            return k, (lambda p: p == v), len(v)

        def t_ec():
            params = s.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
            _, k = params.generate_keypair(store=False, private_template=clear)
            d = int.from_bytes(k[Attribute.VALUE], "big")

            def check(p):
                key = serialization.load_der_private_key(p, None)
                return isinstance(key, ec.EllipticCurvePrivateKey) and key.private_numbers().private_value == d
            return k, check, None

        def t_rsa():
            _, k = s.generate_keypair(KeyType.RSA, 2048, store=False, private_template=clear)
            n = int.from_bytes(k[Attribute.MODULUS], "big")
            dd = int.from_bytes(k[Attribute.PRIVATE_EXPONENT], "big")

            def check(p):
                key = serialization.load_der_private_key(p, None)
                nums = key.private_numbers()
                return nums.public_numbers.n == n and nums.d == dd
            return k, check, None

        r["e"] = {}
        raw = None
        for tname, make in (("AES-256 (32B)", t_aes), ("GENERIC_SECRET (20B)", t_generic),
                            ("EC P-256 private", t_ec), ("RSA-2048 private", t_rsa)):
            try:
                key, check, plain_len = make()
            except Exception as e:  # noqa: BLE001
                r["e"][tname] = {"setup": "ERR " + exc(e)}
                continue
            row = {}
            for mname, mval in (("PAD 0x210A", AES_KEY_WRAP_PAD), ("KWP 0x210B", AES_KEY_WRAP_KWP)):
                try:
                    blob = wk.wrap_key(key, mechanism=Mechanism(mval))
                except Exception as e:  # noqa: BLE001
                    row[mname] = "ERR " + exc(e)
                    continue
                row[mname] = classify(blob, kek, check)
            if AES_KEY_WRAP_KWP in mechs:
                try:
                    if raw is None:
                        raw = RawWrap(t["module"], tok.slot.slot_id)
                    blob, sq = raw(AES_KEY_WRAP_KWP, wk.handle, key.handle)
                    row["KWP 0x210B raw"] = classify(blob, kek, check) + f" [size query said {sq}]"
                except Exception as e:  # noqa: BLE001
                    row["KWP 0x210B raw"] = "ERR " + exc(e)
            if plain_len is not None:
                row["plain"] = plain_len
            r["e"][tname] = row
        if "generic_how" in targets:
            r["e_generic_secret"] = targets["generic_how"]

        # (g) unsupported mechanism
        r["g_unsupported_mech_wrap"] = attempt(
            lambda: wk.wrap_key(wk, mechanism=Mechanism.SEED_ECB) and "no error")
        r["g_mech_not_in_enum"] = attempt(
            lambda: wk.wrap_key(wk, mechanism=RSA_AES_KEY_WRAP) and "no error")

        if aes is not None:
            aes.destroy()
    return r


class RawWrap:
    """C_WrapKey through ctypes with a caller-sized buffer (python-pkcs11 trusts the
    module's size query, which NSS answers wrongly for KWP). Uses its own
    C_GetFunctionList instance + session on the same slot; object handles from
    python-pkcs11 stay valid because the underlying module is the same."""

    def __init__(self, module: str, slot_id: int):
        import ctypes as C
        self.C = C
        lib = C.CDLL(module)
        fl = C.c_void_p()
        rv = lib.C_GetFunctionList(C.byref(fl))
        if rv:
            raise RuntimeError(f"C_GetFunctionList rv=0x{rv:x}")
        fp = C.cast(fl.value + 8, C.POINTER(C.c_void_p))  # skip CK_VERSION (padded)
        U, P = C.c_ulong, C.c_void_p
        init = C.CFUNCTYPE(U, P)(fp[0])
        open_ = C.CFUNCTYPE(U, U, U, P, P, C.POINTER(U))(fp[12])
        self.wrap = C.CFUNCTYPE(U, U, P, U, U, C.c_char_p, C.POINTER(U))(fp[60])
        rv = init(None)
        if rv not in (0, 0x191):  # OK, CRYPTOKI_ALREADY_INITIALIZED
            raise RuntimeError(f"C_Initialize rv=0x{rv:x}")
        h = U()
        rv = open_(slot_id, 6, None, None, C.byref(h))  # SERIAL|RW
        if rv:
            raise RuntimeError(f"C_OpenSession rv=0x{rv:x}")
        self.session = h.value

    def __call__(self, mech: int, wrapping: int, key: int):
        C = self.C

        class MECH(C.Structure):
            _fields_ = [("m", C.c_ulong), ("p", C.c_void_p), ("n", C.c_ulong)]
        m = MECH(mech, None, 0)
        n = C.c_ulong(0)
        rv = self.wrap(self.session, C.byref(m), wrapping, key, None, C.byref(n))
        size_query = n.value if rv == 0 else f"rv=0x{rv:x}"
        buf = C.create_string_buffer(16384)
        n = C.c_ulong(16384)
        rv = self.wrap(self.session, C.byref(m), wrapping, key, buf, C.byref(n))
        if rv:
            raise RuntimeError(f"C_WrapKey rv=0x{rv:x} (size query said {size_query})")
        return buf.raw[:n.value], size_query


def strip_pad(p: bytes, check):
    """Which padding hides the key in plaintext p? Returns (kind, key_len) or None."""
    from contextlib import suppress
    with suppress(Exception):
        if check(p):
            return "none", len(p)
    for cut in range(1, 9):
        tail, body = p[len(p) - cut:], p[:len(p) - cut]
        kind = ("zero" if tail == bytes(cut) else
                "PKCS#7" if tail == bytes([cut]) * cut else None)
        if kind:
            with suppress(Exception):
                if check(body):
                    return kind, len(body)
    return None


def classify(blob: bytes, kek: bytes, check) -> str:
    """Describe a wrapped blob: RFC 5649, or RFC 3394 of a padded key, ..."""
    from cryptography.hazmat.primitives.keywrap import (
        InvalidUnwrap, aes_key_unwrap, aes_key_unwrap_with_padding)
    out = f"{len(blob)}B: "
    try:
        p = aes_key_unwrap_with_padding(kek, blob)
    except InvalidUnwrap:
        p = None
    if p is not None:
        found = strip_pad(p, check)
        if found and found[0] == "none":
            return out + f"RFC5649 OK ({len(p)}B key)"
        if found:
            return out + f"RFC5649 of {found[0]}-padded key ({found[1]}B key, MLI {len(p)}) - WRONG"
        return out + "RFC5649 unwraps, key unrecognised - WRONG"
    try:
        p = aes_key_unwrap(kek, blob)
    except InvalidUnwrap:
        return out + "neither RFC5649 nor RFC3394 - WRONG"
    found = strip_pad(p, check)
    if found:
        return out + f"not RFC5649: RFC3394 of {found[0]}-padded key ({found[1]}B key) - WRONG"
    return out + "not RFC5649: RFC3394 unwraps, key unrecognised - WRONG"


# ---------------------------------------------------------------- parent
def run_child(path: str, t: dict) -> dict:
    env = dict(os.environ)
    env.update(t["env"])
    p = subprocess.run([sys.executable, __file__, "--child", path, t["name"]],
                       env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return {"name": t["name"], "crash": f"exit {p.returncode}: {p.stderr.strip()[-600:]}"}
    return json.loads(p.stdout)


def table(headers, rows):
    w = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(n) for x, n in zip(r, w)) + " |"  # noqa: E731
    print(line(headers))
    print("|" + "|".join("-" * (n + 2) for n in w) + "|")
    for r in rows:
        print(line(r))
    print()


def main(argv):
    if len(argv) >= 3 and argv[0] == "--child":
        tokens = json.load(open(argv[1]))
        t = next(x for x in tokens if x["name"] == argv[2])
        print(json.dumps(probe_token(t), default=str))
        return 0
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    path = os.path.abspath(argv[0])
    tokens = json.load(open(path))
    results = [run_child(path, t) for t in tokens]
    if "--json" in argv:
        print(json.dumps(results, indent=2, default=str))
        return 0
    names = [r["name"] for r in results]
    for r in results:
        if "crash" in r:
            print(f"{r['name']}: CRASHED {r['crash']}\n")
    ok = [r for r in results if "crash" not in r]

    print("## (e) AES key wrap with padding (KEK known; checked with cryptography aes_key_unwrap_with_padding)")
    print("##     'raw' = same C_WrapKey via ctypes with a 16 KiB buffer instead of python-pkcs11's size query\n")
    rows = []
    for r in ok:
        for tname, row in r["e"].items():
            for m in ("PAD 0x210A", "KWP 0x210B", "KWP 0x210B raw"):
                if m in row or (m in ("PAD 0x210A", "KWP 0x210B") and "setup" in row):
                    listed = r["kwp_listed"]["0x" + m.split("0x")[1][:4]]
                    rows.append((r["name"], tname, m, listed, row.get(m, row.get("setup"))))
    table(("token", "key wrapped", "mechanism", "listed", "result"), rows)

    print("## other facts\n")
    keys = ["a_generate_aes_token_key", "b_import_rsa2048", "b_import_rsa4096"]
    keys += ["c:" + k for k in ok[0]["c"]] if ok else []
    keys += ["d_read_sensitive_value", "f_rsa_aes_key_wrap_listed", "h_digest_key", "h_digest_known_key",
             "g_wrong_pin", "g_token_not_found", "g_module_missing", "g_unsupported_mech_wrap",
             "g_mech_not_in_enum", "g_get_token_no_args", "nss_login_empty_pin", "e_generic_secret", "g_lib"]
    rows = []
    for k in keys:
        vals = []
        for r in ok:
            v = r["c"].get(k[2:], "-") if k.startswith("c:") else r.get(k, "-")
            vals.append(str(v))
        rows.append((k, *vals))
    table(("fact", *[r["name"] for r in ok]), rows)

    print("## lib.get_tokens()\n")
    rows = []
    for r in ok:
        for tk in r["g_tokens"]:
            rows.append((r["name"], repr(tk["label"]), tk["slot_id"], repr(tk["manufacturer_id"]),
                         repr(tk["model"]), repr(tk["serial"]), tk["firmware_version"], tk["flags"]))
    table(("module", "label", "slot_id", "manufacturer_id", "model", "serial", "firmware", "flags"), rows)
    return 0 if len(ok) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
