"""Envelope encryption of versions, template rendering and the secret-hiding types, without a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.errors import InvalidRequest
from bastion.gateway.stages.prompt import parse_reference
from bastion.guard.state import PlantedPrompt
from bastion.store.models_vault import PromptVersion
from bastion.vault.crypto import DecryptionFailed, Keyring, MasterKey
from bastion.vault.keysource import KeyringSource
from bastion.vault.model import PromptSecret, VersionSpec, check_label, check_params
from bastion.vault.render import MAX_RENDERED_CHARS, check_variables, compile_template, render
from bastion.vault.store import Sealed, open_version, seal
from tests.vault.support import SECRET_TEXT, vault_settings


def _keys(tmp_path: Path, keyring: Keyring) -> KeyringSource:
    return KeyringSource(vault_settings("sqlite:///unused.db", tmp_path), keyring)


def _row(sealed: Sealed, prompt_pk: str, version: int) -> PromptVersion:
    return PromptVersion(
        prompt_pk=prompt_pk,
        version=version,
        key_id=sealed.key_id,
        wrapped_key=sealed.wrapped_key,
        system_ciphertext=sealed.system_ciphertext,
        template_ciphertext=sealed.template_ciphertext,
    )


def test_round_trip_and_no_plaintext_in_ciphertext(tmp_path: Path) -> None:
    keys = _keys(tmp_path, Keyring(MasterKey.generate()))
    sealed = seal(keys, "t1", "p1", 1, VersionSpec(SECRET_TEXT, "Hello {{ name }}"))
    assert SECRET_TEXT.encode() not in sealed.system_ciphertext
    assert b"Hello" not in (sealed.template_ciphertext or b"")
    secret = open_version(keys, _row(sealed, "p1", 1), "t1")
    assert secret.system == SECRET_TEXT
    assert secret.template == "Hello {{ name }}"


@pytest.mark.parametrize(("tenant", "prompt_pk", "version"), [("t2", "p1", 1), ("t1", "p2", 1), ("t1", "p1", 2)])
def test_ciphertexts_are_bound_to_their_row(tmp_path: Path, tenant: str, prompt_pk: str, version: int) -> None:
    keys = _keys(tmp_path, Keyring(MasterKey.generate()))
    sealed = seal(keys, "t1", "p1", 1, VersionSpec(SECRET_TEXT))
    with pytest.raises(DecryptionFailed, match="does not authenticate"):
        open_version(keys, _row(sealed, prompt_pk, version), tenant)


def test_swapped_system_ciphertext_fails_even_with_the_right_data_key(tmp_path: Path) -> None:
    keys = _keys(tmp_path, Keyring(MasterKey.generate()))
    one = seal(keys, "t1", "p1", 1, VersionSpec("first prompt"))
    two = seal(keys, "t1", "p1", 2, VersionSpec("second prompt"))
    # Row 2 keeps its own wrapped key but gets row 1's system ciphertext.
    mixed = _row(two, "p1", 2)
    mixed.system_ciphertext = one.system_ciphertext
    with pytest.raises(DecryptionFailed):
        open_version(keys, mixed, "t1")


def test_wrong_master_key_does_not_decrypt(tmp_path: Path) -> None:
    sealed = seal(_keys(tmp_path, Keyring(MasterKey.generate())), "t1", "p1", 1, VersionSpec(SECRET_TEXT))
    other = _keys(tmp_path, Keyring(MasterKey.generate()))
    with pytest.raises(DecryptionFailed, match="not available"):
        open_version(other, _row(sealed, "p1", 1), "t1")


def test_secret_types_never_show_their_text() -> None:
    secret = PromptSecret(SECRET_TEXT, "tmpl {{ x }}")
    note = PlantedPrompt(system_prompt=SECRET_TEXT, canary="bstc-1234")
    for text in (repr(secret), str(secret), repr(note), str(note), f"{secret}", repr(VersionSpec(SECRET_TEXT))):
        assert SECRET_TEXT not in text and "tmpl" not in text and "bstc-1234" not in text
    assert note.system_prompt == SECRET_TEXT  # still readable where it is used


def test_render_with_variables() -> None:
    template = compile_template("Customer {{ customer.name }} asks: {{ question }} ({{ tags | join(',') }})")
    text = render(template, {"customer": {"name": "Ann"}, "question": "why?", "tags": ["a", "b"]})
    assert text == "Customer Ann asks: why? (a,b)"


def test_missing_variable_is_a_named_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        render(compile_template("Hi {{ name }}, {{ question }}"), {"name": "Ann"})
    assert caught.value.status == 400
    assert caught.value.message == "prompt variable 'question' is missing"
    assert caught.value.param == "bastion.variables"


@pytest.mark.parametrize(
    ("source", "variables", "needle"),
    [
        ("{{ user.__class__.__mro__ }}", {"user": "x"}, "unsafe"),
        ("{{ ''.__class__ }}", {}, "unsafe"),
        ("{{ 1 / n }}", {"n": 0}, "ZeroDivisionError"),
        ("{{ x.missing_field }}", {"x": {}}, "lacks a field"),
        ("{% for i in range(100000) %}{{ big }}{% endfor %}", {"big": "y" * 1000}, "longer than"),
    ],
)
def test_template_failures_are_400s_that_do_not_quote_the_template(
    source: str, variables: dict[str, Any], needle: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        render(compile_template(source), variables)
    assert caught.value.status == 400
    assert needle in caught.value.message
    assert source not in caught.value.message


def test_rendered_size_is_capped_before_it_is_built() -> None:
    template = compile_template("{% for i in range(100000) %}{{ chunk }}{% endfor %}")
    with pytest.raises(InvalidRequest, match=str(MAX_RENDERED_CHARS)):
        render(template, {"chunk": "z" * 100})


@pytest.mark.parametrize(
    "variables",
    [["a"], "text", {"bad name": 1}, {"1x": 1}, {"x": object()}, {"x": {1: "a"}}, {"x": [[[[[[[[[[1]]]]]]]]]]}],
)
def test_variables_must_be_json_values_under_identifiers(variables: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_variables(variables)
    assert caught.value.param == "bastion.variables"


def test_version_spec_validation() -> None:
    checked = VersionSpec("sys", "Hi {{ name }} {{ topic }}", metadata={"team": "support"}).checked()
    assert checked.metadata == {"team": "support", "variables": ["name", "topic"]}
    with pytest.raises(InvalidRequest, match="does not compile"):
        VersionSpec("sys", "{% if %}").checked()
    with pytest.raises(InvalidRequest):
        VersionSpec("  ").checked()
    with pytest.raises(InvalidRequest):
        VersionSpec("sys", model="prompt:other").checked()
    assert check_params({"temperature": 0.2, "max_tokens": 10}) == {"temperature": 0.2, "max_tokens": 10}
    for bad in ({"temperature": "hot"}, {"stream": True}, {"max_tokens": True}, ["x"]):
        with pytest.raises(InvalidRequest):
            check_params(bad)
    with pytest.raises(InvalidRequest):
        check_label("3")  # would be read as a version number in prompt:id@3


def test_parse_reference() -> None:
    assert parse_reference("prompt:support-bot") == ("support-bot", None, None)
    assert parse_reference("prompt:support-bot@staging") == ("support-bot", "staging", None)
    assert parse_reference("prompt:support-bot@3") == ("support-bot", None, 3)
    for bad in ("prompt:", "prompt:x@", "prompt:@3"):
        with pytest.raises(InvalidRequest):
            parse_reference(bad)
