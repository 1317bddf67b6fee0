"""Flags and environment variables for a pydantic settings model: one source of names, help and defaults.

Each field `some_name` becomes the flag `--some-name` and the variable `KUBEGATE_SOME_NAME`; a flag wins
over the variable, which wins over the model's default. The field's docstring is the flag's help.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

ENV_PREFIX = "KUBEGATE_"
M = TypeVar("M", bound=BaseModel)


class SettingsError(ValueError):
    """Settings that do not validate; the message names each flag and what is wrong with it."""


def flag_name(name: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("flag") or "--" + name.replace("_", "-"))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def add_arguments(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """Add one option per settings field; unset options stay absent so that variables and defaults apply."""
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default in (None, [], "") else default
        help_text = f"{field.description or ''} [env {env_name(name)}; default: {shown}]"
        flag = flag_name(name, field)
        if _is_bool(field.annotation):
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        elif _is_list(field.annotation):
            parser.add_argument(
                flag,
                dest=name,
                action="append",
                default=argparse.SUPPRESS,
                help=help_text + " (repeat the flag for several; the variable takes a comma-separated list)",
            )
        else:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text)


def from_arguments(model: type[M], args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> M:
    """Build the settings from parsed flags over environment variables over defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, field in model.model_fields.items():
        if name in vars(args):
            values[name] = getattr(args, name)
            sources[name] = flag_name(name, field)
        elif env_name(name) in environ:
            raw = environ[env_name(name)]
            values[name] = [p.strip() for p in raw.split(",") if p.strip()] if _is_list(field.annotation) else raw
            sources[name] = env_name(name)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field_name = str(error["loc"][0]) if error["loc"] else ""
            info = model.model_fields.get(field_name)
            where = sources.get(field_name) or (flag_name(field_name, info) if info else field_name)
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
