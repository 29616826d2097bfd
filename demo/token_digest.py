"""Print the SHA-256 of a secret key as the token computes it (C_DigestKey); the key never leaves."""
import sys

import pkcs11
from pkcs11 import Mechanism, ObjectClass

module, token_label, pin, key_label = sys.argv[1:5]
token = pkcs11.lib(module).get_token(token_label=token_label)
with token.open(user_pin=pin) as session:
    key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=key_label)
    print(session.digest(key, mechanism=Mechanism.SHA256).hex())
