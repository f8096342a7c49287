"""Loading service settings for a command: environment plus CLI options, errors in red."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from dynaseal.cli.output import EXIT_CONFIG, fail

if TYPE_CHECKING:
    from dynaseal.core.settings import ServiceSettings

S = TypeVar("S", bound="ServiceSettings")


def settings_or_exit(cls: type[S], **overrides: object) -> S:
    """Settings of type ``cls``; a bad variable ends the command with status 2, no traceback."""
    from dynaseal.core.settings import ConfigError, load_settings

    try:
        return load_settings(cls, **overrides)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
