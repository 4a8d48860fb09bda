"""The credential scrubber: the deployment's own key in every form an upstream may quote it, the
generic credential shapes, and ordinary error messages left readable."""

from __future__ import annotations

import base64
import string
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.providers.scrub import NO_KNOWN_SECRETS, REDACTED, CredentialScrubber, encoded_forms

KEY = "gwk-7Qp2Vx9LmA4kR8sT1zB6nW3c"
SCRUBBER = CredentialScrubber([KEY, f"Bearer {KEY}"])


def scrub(text: str) -> str:
    return SCRUBBER.scrub(text)


# -- the deployment's own key --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quoted",
    [
        KEY,
        f"Bearer {KEY}",
        f'"{KEY}"',
        f"key={KEY}&other=1",
        quote(KEY, safe=""),
        KEY.encode().hex(),
        KEY.encode().hex().upper(),
        base64.b64encode(KEY.encode()).decode(),
        base64.b64encode(f"user:{KEY}".encode()).decode(),  # Basic credentials, key at offset 5
        base64.b64encode(f":{KEY}".encode()).decode(),  # offset 1
        base64.b64encode(f"ab:{KEY}".encode()).decode(),  # offset 3 = 0
        base64.urlsafe_b64encode(f"x-{KEY}".encode()).decode(),
        KEY.replace("/", "\\/"),
        KEY[3:19],  # a middle part: any 12 consecutive characters
        KEY[:-1],  # cut short
    ],
    ids=lambda value: value[:14],
)
def test_own_key_is_removed_in_any_form(quoted: str) -> None:
    out = scrub(f"Invalid credentials: {quoted} (see docs)")
    assert out.startswith("Invalid credentials: ") and out.endswith(" (see docs)"), out
    assert REDACTED in out
    for form in encoded_forms(KEY):
        assert form not in out
    assert KEY[:8] not in out and KEY[-8:] not in out


@pytest.mark.parametrize(
    "masked",
    [
        f"{KEY[:7]}****************{KEY[-4:]}",  # OpenAI's "Incorrect API key provided" style
        f"{KEY[:6]}...{KEY[-4:]}",
        f"{KEY[:8]}…",
        f"****{KEY[-4:]}",
        f"{KEY[:6]}",  # a bare prefix
        f"{KEY[-6:]}",  # a bare suffix
    ],
)
def test_recognisable_prefixes_and_suffixes_are_removed(masked: str) -> None:
    out = scrub(f"Incorrect API key provided: {masked}. You can find your key at the dashboard.")
    assert out == f"Incorrect API key provided: {REDACTED} You can find your key at the dashboard."


def test_words_around_a_key_survive() -> None:
    assert scrub(f"the key {KEY} was refused") == f"the key {REDACTED} was refused"
    # A window must not reach across the blank in "Bearer <key>" into the word before it.
    assert scrub(f"provided: {KEY}.") == f"provided: {REDACTED}"


def test_short_fragments_of_the_key_are_not_hunted() -> None:
    # Four characters of a key are what dashboards show; they identify nothing.
    assert scrub(f"key ending in {KEY[-4:]}") == f"key ending in {KEY[-4:]}"


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=80),
    before=st.text(alphabet=string.ascii_letters + " :=.,", max_size=40),
    after=st.text(alphabet=string.ascii_letters + " :=.,", max_size=40),
    form=st.sampled_from(["raw", "bearer", "hex", "base64", "basic", "percent"]),
)
def test_property_no_key_survives(key: str, before: str, after: str, form: str) -> None:
    encoded = {
        "raw": key,
        "bearer": f"Bearer {key}",
        "hex": key.encode().hex(),
        "base64": base64.b64encode(key.encode()).decode(),
        "basic": base64.b64encode(f"user:{key}".encode()).decode(),
        "percent": quote(key, safe=""),
    }[form]
    out = CredentialScrubber([key]).scrub(f"{before} {encoded} {after}")
    assert key not in out
    assert key[:12] not in out and key[-12:] not in out
    assert encoded not in out


# -- credential shapes, whoever's --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-abcdefghijklmnop1234", "sk-proj-abcdefghijklmnop1234"),
        ("key sk-ab***********wxyz is invalid", "sk-ab***********wxyz"),
        ("x-api-key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv is invalid", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv"),
        ("header Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("got Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("x-api-key: 0123-not-a-vendor-key", "0123-not-a-vendor-key"),
        ('{"api_key": "plain-secret-value"}', "plain-secret-value"),
        ("token=abcdef123456", "abcdef123456"),
        ("access key AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"),
        ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("key AIzaSyA1234567890abcdefghijklmnopqrstu not valid", "AIzaSyA1234567890abcdefghijklmnopqrstu"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        ),
        ("digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "9f86d081884c7d6"),
        ("blob Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A=", "Zm9vYmFyYmF6cXV4MTIzNDU2"),
        ("proxy http://admin:hunter2pass@proxy.internal:3128 refused", "hunter2pass"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----", "MIIEvQIBADAN"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 revoked", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("slack xoxb-1234567890-abcdefghij leaked", "xoxb-1234567890-abcdefghij"),
    ],
)
def test_credential_shapes_are_removed_without_knowing_the_key(text: str, secret: str) -> None:
    out = NO_KNOWN_SECRETS.scrub(text)
    assert secret not in out, out
    assert REDACTED in out


@pytest.mark.parametrize(
    "message",
    [
        "max_tokens: 100000 > 8192, which is the maximum allowed number of output tokens for claude-3-haiku",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "Invalid 'messages[0].content': string too long. Expected a string with maximum length 1048576.",
        "The model `gpt-5-turbo` does not exist or you do not have access to it.",
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        "Overloaded",
        "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000.",
        "invalid x-api-key",
        "request_id req_011CSHoEeqs5C35K2UUqR7Fy failed",
    ],
)
def test_ordinary_error_messages_are_left_alone(message: str) -> None:
    assert SCRUBBER.scrub(message) == message
