"""The ``MUSICREP_*`` environment variables: one typed class (pydantic-settings), read when asked.

Each variable is a field of :class:`Settings` (``MUSICREP_<FIELD>``, case-insensitive; an empty
value counts as unset); docs/params.md lists them. :func:`settings` reads the environment at
every call, so a variable set (or monkeypatched) after import is seen, and turns a bad value
into one :class:`~pipeline.core.errors.UserError` line naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.core.errors import UserError

PREFIX = "MUSICREP_"


class Settings(BaseSettings):
    """Machine-level settings that are not params: they change where files go and how hard a
    transfer tries, never a result."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore")

    artifact_root: str | None = None
    """Where new MLflow experiments keep their artifacts (a URI); unset: the project's
    ``mlartifacts/``, or the tracking server's own root."""
    model_cache: Path | None = None
    """Where registry models fetched by ``musicrep predict --model models:/...`` are cached; unset:
    ``$XDG_CACHE_HOME/musicrep/models`` (else ``~/.cache/musicrep/models``)."""
    pretrained_dir: Path | None = None
    """Where ``musicrep pretrained fetch`` keeps packaged pretrained models; unset:
    ``$XDG_DATA_HOME/musicrep/pretrained`` (else ``~/.local/share/musicrep/pretrained``)."""
    pretrained_mirror: str | None = None
    """A folder or base URL laid out like the upstream repository, from which ``sota:`` models are
    fetched (``pretrained fetch`` and every first use); ``--mirror`` and the params' ``pretrained.mirror``
    win over it (:func:`pipeline.config.project.pretrained_mirror`); unset: the upstream URLs."""
    download_attempts: int = Field(5, ge=1)
    """Attempts per file of ``musicrep download`` before it gives up."""
    download_backoff_s: float = Field(2.0, ge=0)
    """Wait before the second attempt; doubled after each failure (at most 60 s)."""
    download_timeout_s: float = Field(60.0, gt=0)
    """Seconds without a byte before a transfer counts as stalled."""
    lock_wait: bool = False
    """A stage whose lock another run holds waits for it instead of failing (``musicrep --wait``)."""
    download_max_bytes: int = Field(8 << 30, ge=1)
    """The most bytes one downloaded file of unknown size may have (8 GiB; a file with a pinned
    size is capped at that size): a server announcing or sending more is refused."""
    extract_max_ratio: int = Field(100, ge=1)
    """An archive may expand to at most this many times its size (a "zip bomb" guard)..."""
    extract_min_bytes: int = Field(1 << 30, ge=0)
    """...but always to at least this many bytes (1 GiB)."""
    extract_max_bytes: int | None = Field(None, ge=0)
    """A hard cap on the extracted bytes of one archive (unset: none, beyond the free disk space)."""
    extract_max_members: int = Field(2_000_000, ge=1)
    """An archive may hold at most this many members."""
    checksum_pins: Path | None = None
    """A JSON file ``{file name: {"sha256": ..., "md5": ..., "size": ...}}`` replacing the published
    checksums of those files: for the miniature mirrors of ``musicrep rehearse`` only (it sets it in
    its scratch project's stage environment); never set it for real data."""

    @field_validator(
        "download_max_bytes", "extract_max_ratio", "extract_min_bytes", "extract_max_bytes", "extract_max_members", mode="before"
    )
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        """Byte counts may be written ``1e9``."""
        if isinstance(value, str):
            try:
                return int(float(value))
            except ValueError:
                return value
        return value


def settings() -> Settings:
    """The ``MUSICREP_*`` variables of the environment now, validated.

    Raises:
        UserError: a variable holds a value of the wrong type or range, e.g.
            ``MUSICREP_DOWNLOAD_ATTEMPTS=many``.
    """
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = PREFIX + str(err["loc"][0]).upper()
        default = Settings.model_fields[str(err["loc"][0])].default
        example = f", e.g. {name}={default}" if default is not None else ""
        raise UserError(f"invalid {name}={err.get('input')!r}: {err['msg'].lower()}{example}.") from None
