"""Where settings come from, for :func:`setbridge.config.load_settings`: pydantic-settings' TOML and
environment sources, and the one-line errors that name the file, the variable or the key at fault.

Sources, later wins: defaults, the TOML file, ``SETBRIDGE_<SECTION>__<KEY>`` variables (names in any
case; deeper keys with more ``__``; a list, table or section value as JSON), the caller's overrides.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsError,
                               TomlConfigSettingsSource)

from .errors import ConfigError

ENV_PREFIX = "SETBRIDGE_"
ENV_DELIMITER = "__"

_LOADING: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar("setbridge_settings_sources", default=())
"""The file and environment sources of the load in progress; none outside one, so that building a
settings model in code (``Settings(...)``) reads neither the environment nor a file."""


def chosen_sources(init_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources of a settings model, highest priority first: the caller's values, then (while
    :func:`load` runs) the environment and the TOML file."""
    return (init_settings, *_LOADING.get())


class _EnvJsonError(ValueError):
    """A list, table or section variable that is not JSON; ``line`` names the variable."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


class SetbridgeEnvSource(EnvSettingsSource):
    """The environment source, naming the variable whose JSON value does not parse."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER,
                         case_sensitive=False)

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)  # type: ignore[arg-type]
        except ValueError:
            name = self._variable_of(field_name, value)
            raise _EnvJsonError(f"{name}: not valid JSON ({value!r}); a list, table or section is given as "
                                "JSON, e.g. '[\"a\", \"b\"]'") from None

    def _variable_of(self, key: str, value: Any) -> str:
        for name, given in sorted(os.environ.items()):
            keys = name[len(ENV_PREFIX):].lower().split(ENV_DELIMITER)
            if name.upper().startswith(ENV_PREFIX) and keys[-1] == key.lower() and given == value:
                return name
        return f"{ENV_PREFIX}...{ENV_DELIMITER}{key.upper()}"


@contextmanager
def _loading(sources: tuple[PydanticBaseSettingsSource, ...]) -> Iterator[None]:
    token = _LOADING.set(sources)
    try:
        yield
    finally:
        _LOADING.reset(token)


S = TypeVar("S", bound=BaseSettings)


def load(settings_cls: type[S], toml_file: Path | None, overrides: Mapping[str, Any]) -> S:
    """``settings_cls`` from ``toml_file``, the environment and ``overrides``; :class:`ConfigError` with
    one line per problem."""
    environ = os.environ
    if toml_file is not None and not toml_file.is_file():
        raise ConfigError([f"{toml_file}: config file not found; pass an existing file with --config"])
    sections = list(settings_cls.model_fields)
    wrong_variables = misspelt_env(environ, sections) or set_twice_env(environ, sections)
    if wrong_variables:
        raise ConfigError(wrong_variables)
    sources: list[PydanticBaseSettingsSource] = [SetbridgeEnvSource(settings_cls)]
    if toml_file is not None:
        try:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        except (ValueError, OSError) as exc:  # a TOML syntax error or an unreadable file
            raise ConfigError([f"{toml_file}: {exc}"]) from None
    try:
        with _loading(tuple(sources)):
            return settings_cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, toml_file, env_names(environ))) from None
    except SettingsError as exc:
        cause = exc.__cause__
        raise ConfigError([cause.line if isinstance(cause, _EnvJsonError) else str(exc)]) from None


def misspelt_env(environ: Mapping[str, str], sections: list[str]) -> list[str]:
    """One line per ``SETBRIDGE_`` variable that looks meant as a setting but names no section:
    a misspelt section (``SETBRIDGE_MQT__PORT``) or one underscore where two belong
    (``SETBRIDGE_MQTT_PORT``). Other ``SETBRIDGE_<NAME>`` variables (one word after the prefix,
    or words not starting with a section, like ``SETBRIDGE_TEST_WORKERS``) are left alone."""
    lines = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        head, delimiter, tail = rest.partition(ENV_DELIMITER)
        if head in sections:
            continue
        section = next((s for s in sections if head.startswith(s + "_")), None)
        if section is not None:  # one underscore where two belong
            meant: str | None = f"{ENV_PREFIX}{section}{ENV_DELIMITER}{rest[len(section) + 1:]}".upper()
        elif delimiter:  # a misspelt section
            guess = difflib.get_close_matches(head, sections, n=1, cutoff=0.6)
            meant = f"{ENV_PREFIX}{guess[0]}{ENV_DELIMITER}{tail}".upper() if guess else None
        else:
            continue
        hint = f"did you mean {meant}? " if meant else ""
        lines.append(f"{name}: names no setting; {hint}a setting is {ENV_PREFIX}<SECTION>{ENV_DELIMITER}<KEY> "
                     f"with a section of examples/setbridge.toml ({', '.join(sections)})")
    return lines


def set_twice_env(environ: Mapping[str, str], sections: list[str]) -> list[str]:
    """One line per variable inside a value that another variable sets as a whole with something that is
    not a JSON table (``SETBRIDGE_MQTT__TLS=x`` with ``SETBRIDGE_MQTT__TLS__CA``): one of them would be lost."""
    keys = {path: name for path, name in env_names(environ).items() if path[0] in sections}
    lines = []
    for path, name in sorted(keys.items()):
        for depth in range(1, len(path)):
            whole = keys.get(path[:depth])
            if whole is not None and not _is_json_table(environ[whole]):
                lines.append(f"{name}: {path[depth - 1]} is set as a whole by {whole}; set it once")
                break
    return lines


def _is_json_table(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


def env_names(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Setting key path → the variable that sets it, for naming the variable in an error."""
    return {tuple(name[len(ENV_PREFIX):].lower().split(ENV_DELIMITER)): name
            for name in environ if name.upper().startswith(ENV_PREFIX)}


def describe_validation_error(exc: ValidationError, source: Path | None = None,
                              variables: Mapping[tuple[str, ...], str] | None = None) -> list[str]:
    """One readable line per validation error: where it was set (the file, or the environment
    variable in ``variables``), field path, what is wrong, what was given."""
    lines = []
    for err in exc.errors():
        path = tuple(str(part) for part in err["loc"])
        variable = next((name for keys, name in (variables or {}).items() if path[:len(keys)] == keys), None)
        prefix = f"{variable}: " if variable else f"{source}: " if source else ""
        loc = ".".join(path) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling against examples/setbridge.toml"
        given = err.get("input")
        if variable and err["type"] in ("list_type", "dict_type", "model_type") and isinstance(given, str):
            msg += "; a list, table or section is given as JSON, e.g. '[\"a\", \"b\"]'"
        # A check across keys (loc empty) was given the whole configuration: not repeated, passwords and all.
        hidden = err["type"] in ("extra_forbidden", "missing") or not path
        shown = "" if hidden else f" (got {given!r})"
        lines.append(f"{prefix}{loc}: {msg}{shown}")
    return lines

