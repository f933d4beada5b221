"""Deployment settings of the Dagster code location, read from the environment.

Read once when the code location loads (schedules and policies are definitions, so their shape is
fixed at load); a bad value fails the load with a message naming the variable.
"""

import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from chat_agents_dagster.source import ChatAgentsConfigError, configured_workspaces
from chat_agents_dagster.tables import DEFAULT_WORKSPACE

NIGHTLY_CRON = "CHAT_AGENTS_NIGHTLY_CRON"
TIMEZONE = "CHAT_AGENTS_TIMEZONE"
NIGHTLY_ENABLED = "CHAT_AGENTS_NIGHTLY_ENABLED"
FRESHNESS_HOURS = "CHAT_AGENTS_FRESHNESS_HOURS"
FRESHNESS_SENSOR_ENABLED = "CHAT_AGENTS_FRESHNESS_SENSOR_ENABLED"
EXECUTOR = "CHAT_AGENTS_EXECUTOR"
FRESHNESS_SENSOR_INTERVAL = "CHAT_AGENTS_FRESHNESS_SENSOR_INTERVAL_SECONDS"
OWNERS = "CHAT_AGENTS_OWNERS"
MAX_RUNTIME = "CHAT_AGENTS_MAX_RUNTIME_SECONDS"
OUTAGE_RETRIES = "CHAT_AGENTS_OUTAGE_RETRIES"
OUTAGE_RETRY_DELAY = "CHAT_AGENTS_OUTAGE_RETRY_DELAY_SECONDS"
# Alert channels. The secrets (the webhook URLs, Slack's token) are only checked for presence
# here; their values are read when an alert is sent.
ALERT_WEBHOOK_URL = "CHAT_AGENTS_ALERT_WEBHOOK_URL"
SLACK_TOKEN = "CHAT_AGENTS_SLACK_TOKEN"
SLACK_CHANNEL = "CHAT_AGENTS_SLACK_CHANNEL"
SLACK_API_URL = "CHAT_AGENTS_SLACK_API_URL"
TEAMS_WEBHOOK_URL = "CHAT_AGENTS_TEAMS_WEBHOOK_URL"
DAGSTER_URL = "CHAT_AGENTS_DAGSTER_URL"
ALERT_SENSOR_INTERVAL = "CHAT_AGENTS_ALERT_SENSOR_INTERVAL_SECONDS"

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


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero: str = "") -> float:
    """A number of seconds; 0 is allowed only where `zero` says what it means."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or (value == 0 and not zero):
        allowed = (
            f"a number of seconds, or 0 for {zero}" if zero else "a positive number of seconds"
        )
        raise DeploymentSettingError(f"{name}={raw!r}: give {allowed}.")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise DeploymentSettingError(f"{name}={raw!r}: give a whole number, 0 or more.")
    return int(raw)


def _owners(env: Mapping[str, str]) -> tuple[str, ...]:
    """Dagster's owner forms: an email address or `team:<name>`."""
    owners = tuple(part.strip() for part in env.get(OWNERS, "").split(",") if part.strip())
    for owner in owners:
        is_team = owner.startswith("team:") and len(owner) > len("team:")
        if not is_team and "@" not in owner:
            raise DeploymentSettingError(
                f"{OWNERS}: {owner!r} is not an owner; give email addresses or team:<name>,"
                " separated by commas (e.g. team:data-platform,ada@example.com)."
            )
    return owners


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _http_url(env: Mapping[str, str], name: str, default: str = "") -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not is_http_url(raw):
        raise DeploymentSettingError(
            f"{name}={raw!r}: give an http(s) address, e.g. https://dagster.example.com."
        )
    return raw


@dataclass(frozen=True)
class AlertSettings:
    """Which alert channels the environment configures (their secrets stay in it)."""

    webhook: bool = False
    slack: bool = False
    slack_channel: str = ""
    slack_api_url: str = "https://slack.com/api/"
    teams: bool = False
    # The Dagster UI's address, for links in the notifications; none without it.
    dagster_url: str = ""
    # How often the run-failure and WARN-check sensors look for ended runs: an alert's delay.
    sensor_interval_seconds: int = 30

    @property
    def any(self) -> bool:
        return self.webhook or self.slack or self.teams

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AlertSettings":
        slack = bool(env.get(SLACK_TOKEN, "").strip())
        channel = env.get(SLACK_CHANNEL, "").strip()
        if slack and not channel:
            raise DeploymentSettingError(
                f"{SLACK_TOKEN} is set but {SLACK_CHANNEL} is not: give the channel to post"
                " alerts to (e.g. #data-platform), or unset the token."
            )
        if channel and not slack:
            raise DeploymentSettingError(
                f"{SLACK_CHANNEL}={channel!r} is set but {SLACK_TOKEN} is not: give the bot"
                " token (xoxb-...) that may post there, or unset the channel."
            )
        return cls(
            webhook=bool(env.get(ALERT_WEBHOOK_URL, "").strip()),
            slack=slack,
            slack_channel=channel,
            slack_api_url=_http_url(env, SLACK_API_URL, cls.slack_api_url),
            teams=bool(env.get(TEAMS_WEBHOOK_URL, "").strip()),
            dagster_url=_http_url(env, DAGSTER_URL),
            sensor_interval_seconds=int(
                _seconds(env, ALERT_SENSOR_INTERVAL, cls.sensor_interval_seconds)
            ),
        )


@dataclass(frozen=True)
class DeploymentSettings:
    nightly_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    nightly_enabled: bool = True
    freshness_window: timedelta = timedelta(hours=26)
    freshness_sensor_enabled: bool = True
    executor: str = IN_PROCESS
    freshness_sensor_interval_seconds: int = 300
    owners: tuple[str, ...] = ()
    # A night's run that has not ended after this long is ended by run monitoring (the job's
    # `dagster/max_runtime`), well before the next night's run; None leaves it unbounded.
    max_runtime: timedelta | None = timedelta(hours=6)
    # An API outage (no answer, or server errors after dlt's own retries) asks Dagster to run the
    # load again this many times, this long apart; these waits count towards the max runtime.
    outage_retries: int = 3
    outage_retry_delay: timedelta = timedelta(minutes=15)
    alerts: AlertSettings = AlertSettings()
    # The Mistral workspaces loaded (CHAT_AGENTS_WORKSPACES). The default one alone leaves the
    # assets unpartitioned, as before there were workspaces; any other list partitions them.
    workspaces: tuple[str, ...] = (DEFAULT_WORKSPACE,)

    @property
    def partitioned(self) -> bool:
        return self.workspaces != (DEFAULT_WORKSPACE,)

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
        max_runtime_s = _seconds(
            env,
            MAX_RUNTIME,
            defaults.max_runtime.total_seconds() if defaults.max_runtime else 0,
            zero="no maximum",
        )
        max_runtime = timedelta(seconds=max_runtime_s) if max_runtime_s else None
        outage_retries = _count(env, OUTAGE_RETRIES, defaults.outage_retries)
        outage_retry_delay = timedelta(
            seconds=_seconds(
                env,
                OUTAGE_RETRY_DELAY,
                defaults.outage_retry_delay.total_seconds(),
                zero="no wait",
            )
        )
        if max_runtime is not None and outage_retries * outage_retry_delay >= max_runtime:
            raise DeploymentSettingError(
                f"{OUTAGE_RETRIES}={outage_retries} waits of {OUTAGE_RETRY_DELAY}="
                f"{outage_retry_delay.total_seconds():g} add up to the run's maximum runtime"
                f" {MAX_RUNTIME}={max_runtime.total_seconds():g} or more: run monitoring would end"
                " the run before its last retry. Lower the retries or their delay, or raise"
                " the maximum."
            )
        try:
            workspaces = configured_workspaces(env)
        except ChatAgentsConfigError as error:
            raise DeploymentSettingError(str(error)) from None
        return cls(
            workspaces=workspaces,
            nightly_cron=env.get(NIGHTLY_CRON) or defaults.nightly_cron,
            timezone=timezone,
            nightly_enabled=_flag(env, NIGHTLY_ENABLED, defaults.nightly_enabled),
            freshness_window=window,
            freshness_sensor_enabled=_flag(
                env, FRESHNESS_SENSOR_ENABLED, defaults.freshness_sensor_enabled
            ),
            executor=executor,
            freshness_sensor_interval_seconds=int(
                _seconds(env, FRESHNESS_SENSOR_INTERVAL, defaults.freshness_sensor_interval_seconds)
            ),
            owners=_owners(env),
            max_runtime=max_runtime,
            outage_retries=outage_retries,
            outage_retry_delay=outage_retry_delay,
            alerts=AlertSettings.from_env(env),
        )
