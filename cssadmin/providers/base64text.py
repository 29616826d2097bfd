"""Text encodings the clouds paste or parse: standard base64 and unpadded base64url."""
from __future__ import annotations

import base64


def standard(data: bytes) -> bytes:
    """RFC 4648 base64 with + / and = padding, one line, no newline (pasted into consoles as is)."""
    return base64.b64encode(data)


def url_unpadded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
