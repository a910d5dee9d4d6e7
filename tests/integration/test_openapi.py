"""docs/openapi.json is what the server serves at /openapi.json, byte for byte, and what
`watcher openapi --defaults` prints: the published document cannot drift from the code.
Regenerate it with `watcher openapi --defaults > docs/openapi.json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import ApiHarness
from watcher.api.openapi import render
from watcher.cli import app as cli_app

PUBLISHED = Path(__file__).parents[2] / "docs" / "openapi.json"
REGENERATE = "stale: run `watcher openapi --defaults > docs/openapi.json`"


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_the_published_document_is_the_one_served(api: ApiHarness) -> None:
    resp = await api.http.get(f"{api.url}/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    served = resp.json()
    assert json.loads(PUBLISHED.read_text()) == served, REGENERATE
    assert PUBLISHED.read_text() == render(served), REGENERATE


def test_the_cli_prints_the_published_document() -> None:
    result = CliRunner().invoke(cli_app, ["openapi", "--defaults"])
    assert result.exit_code == 0, result.output
    assert result.output == PUBLISHED.read_text(), REGENERATE
