"""Mend's settings: a YAML file with safe defaults, overridable by environment variables."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

import yaml

DEFAULT_FILE = Path(__file__).with_name("recovery.yml")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def load_settings() -> Dict[str, Any]:
    """Read the settings file named by MEND_SETTINGS_FILE, or the shipped defaults."""
    path = Path(os.environ.get("MEND_SETTINGS_FILE") or DEFAULT_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise RuntimeError(f"Cannot read Mend settings from {path}: {error}") from error
    if not isinstance(data, dict):
        raise RuntimeError(f"Mend settings in {path} must be a mapping, not {type(data).__name__}")
    return data


def database_url() -> str:
    """The case database: MEND_DATABASE_URL, else the settings file (relative SQLite paths from the project root)."""
    url = os.environ.get("MEND_DATABASE_URL") or load_settings().get("database_url") or "sqlite:///var/mend.db"
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        url = prefix + str(PROJECT_ROOT / url[len(prefix):])
    return url


def section(name: str) -> Dict[str, Any]:
    value = load_settings().get(name) or {}
    if not isinstance(value, dict):
        raise RuntimeError(f"Mend settings section '{name}' must be a mapping")
    return value


def numbers_for(cls: Any, where: str, env_prefix: str = "") -> Any:
    """A settings dataclass of numbers from the section ``where`` ("gateway.team"): each field from the
    environment (``env_prefix`` + its name in capitals), else the file, else its default; a value that
    is not a positive number is refused with the setting's name."""
    first, _, rest = where.partition(".")
    raw = section(first)
    for part in filter(None, rest.split(".")):
        raw = raw.get(part) or {}
    defaults = cls()
    values: Dict[str, Any] = {}
    for name in defaults.__dataclass_fields__:
        default = getattr(defaults, name)
        given = os.environ.get(f"{env_prefix}{name.upper()}") if env_prefix else None
        given = given if given not in (None, "") else raw.get(name, default)
        try:
            value = type(default)(given)
        except (TypeError, ValueError) as error:
            raise RuntimeError(f"{where}.{name} in the settings must be a number, not {given!r}") from error
        if value <= 0:
            raise RuntimeError(f"{where}.{name} in the settings must be above 0, not {given!r}")
        values[name] = value
    return cls(**values)
