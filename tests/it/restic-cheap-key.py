#!/usr/bin/python3
# Gives a restic repository a password key with cheap scrypt parameters and
# removes its other keys, so that each restic command opens the repository
# in milliseconds, not the half second restic calibrates its key for. It is
# what restic's own tests do (TestUseLowSecurityKDFParameters); the rest of
# the repository is restic's as it wrote it.
#
# The key file: scrypt(password, salt) gives 64 bytes, the AES-256 key, then
# the Poly1305-AES key (k, r). The master key restic printed is encrypted
# with AES-256-CTR under a random nonce, and authenticated with Poly1305 over
# the ciphertext, keyed by r and AES_k(nonce). The file is named by the
# SHA-256 of its contents, as every restic file is.
#
# Usage: restic-cheap-key.py REPOSITORY PASSWORD < masterkey.json
import base64
import glob
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import poly1305
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

repo, password = sys.argv[1], sys.argv[2].encode()
master = sys.stdin.buffer.read()
salt = os.urandom(64)
n, r, p = 1024, 8, 1
derived = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=64)
aes_key, mac_k, mac_r = derived[:32], derived[32:48], derived[48:]
nonce = os.urandom(16)
sealed = Cipher(algorithms.AES(aes_key), modes.CTR(nonce)).encryptor().update(master)
mac_s = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor().update(nonce)
mac = poly1305.Poly1305(mac_r + mac_s)
mac.update(sealed)
key = json.dumps({
    "created": "2026-01-01T00:00:00Z",
    "username": "test",
    "hostname": "test",
    "kdf": "scrypt",
    "N": n,
    "r": r,
    "p": p,
    "salt": base64.b64encode(salt).decode(),
    "data": base64.b64encode(nonce + sealed + mac.finalize()).decode(),
}).encode()
for old in glob.glob(os.path.join(repo, "keys", "*")):
    os.remove(old)
with open(os.path.join(repo, "keys", hashlib.sha256(key).hexdigest()), "wb") as f:
    f.write(key)
