"""Secrets are scrubbed in every form they take on the wire; outside text is escaped for Rich markup."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from rich.console import Console

from llmsurge.redaction import forget_secrets, markup_safe, redact, register_basic_auth, register_secret


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_every_wire_form_of_a_secret_is_redacted() -> None:
    key = 'sk-a/b"c%d'
    register_secret(key)
    register_basic_auth("alice", "p@ss word")
    token = base64.b64encode(b"alice:p@ss word").decode()
    text = f'key={key} json="sk-a/b\\"c%d" url=sk-a%2Fb%22c%25d pw=p@ss word enc=p%40ss%20word basic={token}'
    out = redact(text)
    for secret in (key, "p@ss word", "p%40ss%20word", token, 'sk-a/b\\"c%d', "sk-a%2Fb%22c%25d"):
        assert secret not in out
    assert out.count("***") == 6


def test_nothing_to_redact_leaves_text_alone() -> None:
    assert redact("plain text") == "plain text"


def test_markup_safe_prints_outside_text_as_written() -> None:
    register_secret("hunter2")
    console = Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(f"[bold]error:[/bold] {markup_safe('[bold red]PWNED[/] [/b] hunter2')}")
    text = console.export_text()
    assert "[bold red]PWNED[/] [/b] ***" in text and "hunter2" not in text


def test_an_api_key_that_would_break_its_header_is_one_line_before_anything_is_sent() -> None:
    from tests.helpers import run_cli

    r = run_cli(
        "run",
        "http://127.0.0.1:9",
        "--api-key-env",
        "LLMSURGE_TEST_KEY",
        "-n",
        "1",
        env={"LLMSURGE_TEST_KEY": "sk-secret\n"},
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "llmsurge: error: --api-key-env LLMSURGE_TEST_KEY: the key holds a line break; set it without one "
        "(a trailing newline?)"
    ]
    assert "sk-secret" not in r.stdout + r.stderr
