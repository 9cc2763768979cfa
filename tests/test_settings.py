"""The MUSICREP_* environment variables: one typed class, read at call time, listed in docs/params.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.core.settings import PREFIX, Settings, settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides(monkeypatch, tmp_path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(PREFIX + name.upper(), raising=False)
    s = settings()
    assert (s.download_attempts, s.extract_max_ratio, s.extract_min_bytes, s.model_cache) == (5, 100, 1 << 30, None)
    monkeypatch.setenv("MUSICREP_MODEL_CACHE", str(tmp_path))
    monkeypatch.setenv("MUSICREP_EXTRACT_MAX_BYTES", "2e9")
    monkeypatch.setenv("MUSICREP_DOWNLOAD_TIMEOUT_S", "")  # empty = unset
    s = settings()  # read now, not at import
    assert s.model_cache == tmp_path and s.extract_max_bytes == 2_000_000_000 and s.download_timeout_s == 60.0


@pytest.mark.parametrize(("name", "value"), [("MUSICREP_DOWNLOAD_ATTEMPTS", "0"), ("MUSICREP_EXTRACT_MAX_RATIO", "lots")])
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, name, value) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=rf"^invalid {name}='{value}': .*, e\.g\. {name}=\d+\.$"):
        settings()


def test_the_package_reads_musicrep_variables_only_through_the_class() -> None:
    reads = re.compile(r"(environ\.get|getenv)\(\s*[\"']MUSICREP_")
    found = [
        f"{path.relative_to(REPO)}: {line.strip()}"
        for path in (REPO / "pipeline").rglob("*.py")
        for line in path.read_text().splitlines()
        if reads.search(line)
    ]
    assert not found, "read these through pipeline.core.settings:\n" + "\n".join(found)


def test_every_variable_is_listed_in_docs_params() -> None:
    text = (REPO / "docs" / "params.md").read_text()
    documented = set(re.findall(r"`(MUSICREP_[A-Z_]+)`", text))
    assert {PREFIX + name.upper() for name in Settings.model_fields} <= documented
