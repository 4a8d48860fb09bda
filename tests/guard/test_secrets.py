"""Secret detection: each kind of credential, and look-alikes that are not secrets."""

from __future__ import annotations

import pytest

from bastion.guard import GuardPolicy, InputGuard
from bastion.guard.secrets import SecretDetector, shannon_entropy
from tests.guard.support import verdict_of

DETECTOR = SecretDetector()
# Built from pieces so no complete credential-shaped literal sits in the repository.
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" + "K1l2M3n4O5p6q7R8"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ"
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----"


def types(text: str) -> list[str]:
    return [f.type for f in DETECTOR.scan(text)]


def values(text: str) -> list[str]:
    return [text[f.start : f.end] for f in DETECTOR.scan(text)]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key id AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY"),
        ("maps key AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "GOOGLE_API_KEY"),
        ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + "a" * 86 + "==;", "AZURE_STORAGE_KEY"),
        ("client secret abc8Q~" + "x" * 34, "AZURE_CLIENT_SECRET"),
        (f"token {GITHUB}", "GITHUB_TOKEN"),
        ("glpat-" + "abcdEFGH1234ijklMNOP", "GITLAB_TOKEN"),
        ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "SLACK_TOKEN"),
        ("hook https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX", "SLACK_WEBHOOK"),
        ("stripe sk_live_" + "51HqZ2bCdEfGhIjKlMnOpQr", "STRIPE_SECRET_KEY"),
        ("openai sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "OPENAI_API_KEY"),
        ("legacy sk-" + "a" * 20 + "T3BlbkFJ" + "b" * 20, "OPENAI_API_KEY"),
        ("anthropic sk-ant-api03-" + "Zx9" * 12, "ANTHROPIC_API_KEY"),
        ("hf hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345", "HUGGINGFACE_TOKEN"),
        (f"Authorization: Bearer {JWT}", "JWT"),
        (PEM, "PRIVATE_KEY"),
        ("postgres://admin:S3cr3tPass@db.internal:5432/app", "URL_PASSWORD"),
        ('api_key = "Zx8Kq2Lm9Pw4Rt7Yv1Nb3Hc6"', "GENERIC_SECRET"),
        ("DB_PASSWORD=hunter2hunter2", "GENERIC_SECRET"),
        ("my password is Tr0ub4dor&3", "GENERIC_SECRET"),
    ],
)
def test_each_secret_kind(text: str, kind: str) -> None:
    assert kind in types(text)


@pytest.mark.parametrize(
    "text",
    [
        "password = os.environ['DB_PASSWORD']",
        "password: ********",
        "api_key = <your-api-key>",
        "token = ${GITHUB_TOKEN}",
        "Set max_tokens: 1000 and temperature 0.2",
        "The secret to good bread is time.",
        "my password is incorrect, how do I reset it?",
        "the commit sha is 3f786850e387550fdab836ed7e6dc881de23001b",
        "https://user@example.com/path has no password",
        "a monkey sat on the keyboard",
        "sk-this-is-not-a-key",
    ],
)
def test_look_alikes_are_not_secrets(text: str) -> None:
    assert types(text) == []


def test_finding_covers_only_the_secret_value() -> None:
    assert values("postgres://admin:S3cr3tPass@db/app") == ["S3cr3tPass"]
    assert values('api_key = "Zx8Kq2Lm9Pw4Rt7Yv1Nb3Hc6"') == ["Zx8Kq2Lm9Pw4Rt7Yv1Nb3Hc6"]


def test_unterminated_private_key_is_caught_to_the_end() -> None:
    text = "here: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"
    (finding,) = DETECTOR.scan(text)
    assert finding.type == "PRIVATE_KEY" and finding.end == len(text)


def test_secrets_redacted_on_input_by_default() -> None:
    result = InputGuard(GuardPolicy()).scan_text(f"use {GITHUB} and AKIAIOSFODNN7EXAMPLE")
    assert result.text == "use [GITHUB_TOKEN] and [AWS_ACCESS_KEY_ID]"
    assert verdict_of(result, "secrets").flagged


def test_entropy() -> None:
    assert shannon_entropy("aaaaaaaa") == 0.0
    assert shannon_entropy("abcdefgh") == 3.0
