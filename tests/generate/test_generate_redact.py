"""wikihow_tiir.redact: credentials out of error texts, model answers kept intact otherwise."""

from __future__ import annotations

import pytest

from wikihow_tiir.redact import REDACTED, redact, redact_tokens, register_secret

OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8t"
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz12345678"


@pytest.mark.parametrize("text, secret", [
    (f"Error code: 401 - Incorrect API key provided: {OPENAI_KEY}.", OPENAI_KEY),
    ("Incorrect API key provided: sk-proj-Ab3d************************5qRs.", "sk-proj-Ab3d****"),
    (f"401 Client Error for url https://huggingface.co/api/whoami ({HF_TOKEN})", HF_TOKEN),
    ("headers: {'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig123'}", "eyJhbGciOiJIUzI1NiJ9"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("GET /v1/models?api_key=opaque-value-without-shape&x=1", "opaque-value-without-shape"),
    ('{"x-api-key": "another-opaque-value"}', "another-opaque-value"),
    ("upstream said HF_TOKEN=plainvalue42", "plainvalue42"),
])
def test_credentials_are_removed_from_error_texts(text, secret):
    out = redact(text)
    assert secret not in out and REDACTED in out
    assert redact(out) == out  # idempotent: redacting twice changes nothing


def test_registered_and_passed_secrets_are_removed_wherever_they_appear():
    register_secret("configured-key-4242abcd")
    assert redact_tokens("the key configured-key-4242abcd leaked") == f"the key {REDACTED} leaked"
    assert redact("x" + "configured-key-4242abcd" + "y") == f"x{REDACTED}y"
    assert redact_tokens("token zzzz-passed-1234 here", secrets=["zzzz-passed-1234"]) == f"token {REDACTED} here"
    register_secret("short")  # too short to be replaced everywhere without corrupting text
    assert redact_tokens("a short story") == "a short story"


@pytest.mark.parametrize("prose", [
    "I need to write an authorization letter for my bank, and the api key idea confuses me.",
    "Bearer bonds were popular; the bearer instruments were sold at a discount.",
    "Ask for an Authorization: the form is on the left.",
    "The skis and sk-8 board are in the hf_room.",
])
def test_answers_kept_as_data_are_not_mangled(prose):
    assert redact_tokens(prose) == prose
