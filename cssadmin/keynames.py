"""What a key name may be: it labels a token object and names files, so it is kept plain."""
from __future__ import annotations

import re

from .errors import UsageError

KEY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


def check_key_name(name: str) -> None:
    if not KEY_NAME.fullmatch(name):
        raise UsageError(f"the key name given ({len(name)} characters, not shown) is not allowed: use 1-64 of "
                         "A-Z a-z 0-9 . _ -, not starting with '.' or '-'", code="BAD_KEY_NAME")
