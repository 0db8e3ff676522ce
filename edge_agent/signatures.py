"""Ed25519 signature checks through the libcrypto the ssl module already loaded.

A gateway verifies a bundle a few times an hour; importing ``cryptography`` for that costs
about 8 MiB of resident memory for the agent's lifetime, while OpenSSL's libcrypto is
already mapped by ``ssl`` (HTTPS to the hub needs it anyway). The check goes through
ctypes to OpenSSL 1.1.1+'s one-shot ``EVP_DigestVerify``; where that library cannot be
found or lacks Ed25519, ``cryptography`` does it instead, with the same answers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ssl
from collections.abc import Callable
from functools import cache

__all__ = ["verify_ed25519"]

_EVP_PKEY_ED25519 = 1087  # NID_ED25519
_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64

Verifier = Callable[[bytes, bytes, bytes], bool]


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``.

    A key or signature of the wrong length is not a valid signature: False, never an error.
    """
    if len(public_key) != _PUBLIC_KEY_BYTES or len(signature) != _SIGNATURE_BYTES:
        return False
    return _verifier()(public_key, signature, message)


@cache
def _verifier() -> Verifier:
    """libcrypto's verifier when it works on a known signature, else cryptography's."""
    library = _libcrypto()
    if library is not None:
        try:
            verifier = _openssl_verifier(library)
        except AttributeError:  # a libcrypto without the one-shot raw-key API
            return _cryptography_verifier
        if _passes_self_test(verifier):
            return verifier
    return _cryptography_verifier


def _libcrypto() -> ctypes.CDLL | None:
    """The libcrypto the ssl module is linked to (already mapped), None if unknown."""
    if ssl.OPENSSL_VERSION_INFO < (1, 1, 1):  # ssl's import maps its libcrypto
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libcrypto" in line and "/" in line}
    except OSError:  # not Linux: the linker's search finds the same library by name
        paths = set()
    candidates = sorted(paths) or [ctypes.util.find_library("crypto") or ""]
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _openssl_verifier(library: ctypes.CDLL) -> Verifier:
    """A verifier over ``EVP_DigestVerify``; raises AttributeError without it."""
    new_key = library.EVP_PKEY_new_raw_public_key
    new_key.restype = ctypes.c_void_p
    new_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    free_key = library.EVP_PKEY_free
    free_key.argtypes = [ctypes.c_void_p]
    new_context = library.EVP_MD_CTX_new
    new_context.restype = ctypes.c_void_p
    free_context = library.EVP_MD_CTX_free
    free_context.argtypes = [ctypes.c_void_p]
    init = library.EVP_DigestVerifyInit
    init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                     ctypes.c_void_p]
    verify = library.EVP_DigestVerify
    verify.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                       ctypes.c_size_t]
    clear_errors = library.ERR_clear_error

    def verifier(public_key: bytes, signature: bytes, message: bytes) -> bool:
        key = new_key(_EVP_PKEY_ED25519, None, public_key, len(public_key))
        if not key:
            clear_errors()
            return False
        context = new_context()
        try:
            good = (bool(context) and init(context, None, None, None, key) == 1
                    and verify(context, signature, len(signature), message,
                               len(message)) == 1)
        finally:
            free_context(context)
            free_key(key)
        if not good:
            clear_errors()  # leave no error queued for the ssl module to trip over
        return good

    return verifier


def _cryptography_verifier(public_key: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 - the fallback only
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


#: RFC 8032, section 7.1, test 2: a one-byte message.
_TEST_KEY = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
_TEST_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
_TEST_MESSAGE = b"\x72"


def _passes_self_test(verifier: Verifier) -> bool:
    """The RFC 8032 vector verifies and its tampered copy does not."""
    try:
        return (verifier(_TEST_KEY, _TEST_SIGNATURE, _TEST_MESSAGE)
                and not verifier(_TEST_KEY, _TEST_SIGNATURE, b"\x73"))
    except OSError:
        return False
