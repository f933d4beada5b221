"""Deployment settings of the Dagster code location, read from the environment.

Read once when the code location loads (schedules and policies are definitions, so their shape is
fixed at load); a bad value fails the load with a message naming the variable.
"""

import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

NIGHTLY_CRON = "CHAT_AGENTS_NIGHTLY_CRON"
TIMEZONE = "CHAT_AGENTS_TIMEZONE"
NIGHTLY_ENABLED = "CHAT_AGENTS_NIGHTLY_ENABLED"
FRESHNESS_HOURS = "CHAT_AGENTS_FRESHNESS_HOURS"
FRESHNESS_SENSOR_ENABLED = "CHAT_AGENTS_FRESHNESS_SENSOR_ENABLED"
EXECUTOR = "CHAT_AGENTS_EXECUTOR"

# A run is one op that loads and one that checks, one after the other: a process per step buys
# no parallelism and costs a Python start and an import of dagster, dlt and this package each.
IN_PROCESS, MULTIPROCESS = "in_process", "multiprocess"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class DeploymentSettingError(ValueError):
    """An environment variable of the code location has a value it cannot use."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise DeploymentSettingError(f"{name}={raw!r}: use true or false.")


@dataclass(frozen=True)
class DeploymentSettings:
    nightly_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    nightly_enabled: bool = True
    freshness_window: timedelta = timedelta(hours=26)
    freshness_sensor_enabled: bool = True
    executor: str = IN_PROCESS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "DeploymentSettings":
        defaults = cls()
        timezone = env.get(TIMEZONE) or defaults.timezone
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise DeploymentSettingError(
                f"{TIMEZONE}={timezone!r} is not an IANA time zone (e.g. UTC, Europe/Paris)."
            ) from None
        hours_text = env.get(FRESHNESS_HOURS) or ""
        window = defaults.freshness_window
        if hours_text:
            try:
                window = timedelta(hours=float(hours_text))
            except ValueError:
                window = timedelta(0)
            if window <= timedelta(0):
                raise DeploymentSettingError(
                    f"{FRESHNESS_HOURS}={hours_text!r}: give a positive number of hours."
                )
        executor = (env.get(EXECUTOR) or defaults.executor).strip().lower()
        if executor not in (IN_PROCESS, MULTIPROCESS):
            raise DeploymentSettingError(
                f"{EXECUTOR}={executor!r}: use {IN_PROCESS} (one process per run, the default)"
                f" or {MULTIPROCESS} (one process per step)."
            )
        return cls(
            nightly_cron=env.get(NIGHTLY_CRON) or defaults.nightly_cron,
            timezone=timezone,
            nightly_enabled=_flag(env, NIGHTLY_ENABLED, defaults.nightly_enabled),
            freshness_window=window,
            freshness_sensor_enabled=_flag(
                env, FRESHNESS_SENSOR_ENABLED, defaults.freshness_sensor_enabled
            ),
            executor=executor,
        )
