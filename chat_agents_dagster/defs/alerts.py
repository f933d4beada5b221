"""Alerts: a failed run, a failed WARN check and a stale episode each send one notification to
every configured channel (a JSON webhook, Slack, Microsoft Teams).

The channels are Dagster resources whose secrets are `dg.EnvVar`s, so the code location's load
only notes which variables are set; their values are read when a sensor sends. dagster-slack's
and dagster-msteams's ready-made run-failure sensors are not used: they take the token or hook
URL as a string when the location loads, post to one channel each, cannot carry a failed check or
a stale episode, and (Slack's) cannot be pointed at another API address (GovSlack, a test
receiver). Their resources and Teams cards are used as they are.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg
import requests
from dagster_msteams import Card, MSTeamsResource
from dagster_msteams.adaptive_card import AdaptiveCard
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from chat_agents_dagster.defs.deployment import (
    ALERT_WEBHOOK_URL,
    SLACK_TOKEN,
    TEAMS_WEBHOOK_URL,
    AlertSettings,
    is_http_url,
)

if TYPE_CHECKING:
    # A step failure's error; dagster does not export the name.
    from dagster._utils.error import SerializableErrorInfo

RESOURCE_KEY = "chat_agents_alerts"
RUN_FAILURE_SENSOR = "chat_agents_run_failure_alerts"
CHECK_WARNING_SENSOR = "chat_agents_check_warning_alerts"
SOURCE = "chat_agents_dagster"
SEND_TIMEOUT_S = 10.0
# A step's error can hold a traceback's worth of text; a notification says what failed and links
# to the run for the rest.
ERROR_CHARS = 500

# The tag Dagster puts on a run of one partition (PARTITION_NAME_TAG in dagster._core.storage.tags;
# dagster exports no name for it).
PARTITION_TAG = "dagster/partition"

RUN_FAILED, CHECKS_WARNED, TABLES_STALE = "run_failed", "checks_warned", "tables_stale"


class AlertDeliveryError(RuntimeError):
    """A configured channel did not take a notification. Says which, and never the secret."""


@dataclass(frozen=True)
class Alert:
    """One notification; `payload()` is what the JSON webhook receives."""

    event: str
    title: str
    lines: tuple[str, ...]
    job: str | None = None
    run_id: str | None = None
    url: str | None = None
    failed_steps: tuple[dict[str, str], ...] = ()
    failed_checks: tuple[dict[str, str], ...] = ()
    stale_assets: tuple[dict[str, str], ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    def text(self, link: str = "{url}") -> str:
        """Title, lines and the link, written as `link` (a channel's markup) says."""
        return "\n".join(
            [self.title, *self.lines, *([link.format(url=self.url)] if self.url else [])]
        )

    def payload(self) -> dict[str, Any]:
        return {
            "source": SOURCE,
            "event": self.event,
            "title": self.title,
            "text": self.text(),
            "job": self.job,
            "run_id": self.run_id,
            "url": self.url,
            "failed_steps": list(self.failed_steps),
            "failed_checks": list(self.failed_checks),
            "stale_assets": list(self.stale_assets),
            **self.extra,
        }


class AlertWebhook(dg.ConfigurableResource):
    """A plain JSON webhook: POSTs `Alert.payload()`."""

    url: str = Field(description=f"Where to POST each alert as JSON ({ALERT_WEBHOOK_URL}).")


class SlackChannel(SlackResource):
    """dagster-slack's resource, with the channel to post to and the Web API's address."""

    channel: str = Field(description="The channel to post alerts to, e.g. #data-platform.")
    api_url: str = Field(
        default="https://slack.com/api/",
        description="Slack's Web API address: https://slack-gov.com/api/ for GovSlack.",
    )

    def get_client(self) -> WebClient:
        return WebClient(
            self.token, base_url=self.api_url.rstrip("/") + "/", timeout=int(SEND_TIMEOUT_S)
        )


class ChatAgentsAlerts(dg.ConfigurableResource):
    """Every configured channel; with none, sending is a no-op."""

    webhook: AlertWebhook | None = None
    slack: SlackChannel | None = None
    teams: MSTeamsResource | None = None
    dagster_url: str | None = Field(
        default=None, description="The Dagster UI's address, for links to runs and assets."
    )

    @property
    def configured(self) -> bool:
        return any((self.webhook, self.slack, self.teams))

    def link(self, path: str) -> str | None:
        return f"{self.dagster_url.rstrip('/')}/{path}" if self.dagster_url else None

    def send(self, alert: Alert) -> list[str]:
        """Posts `alert` to every channel; the channels it reached. One channel's failure does not
        stop the others; any failure raises AlertDeliveryError once all were tried."""
        reached, failures = [], []
        for name, variable, secret, post in self._channels():
            try:
                post(alert)
            except Exception as error:
                failures.append(f"{name} ({variable}): {_redact(_describe(error), secret)}")
            else:
                reached.append(name)
        if failures:
            raise AlertDeliveryError(
                f"The {alert.event} alert was not delivered to "
                + "; ".join(failures)
                + "."
                + (f" It reached {', '.join(reached)}." if reached else "")
            )
        return reached

    def _channels(self) -> Iterator[tuple[str, str, str, Any]]:
        if self.webhook:
            yield "the JSON webhook", ALERT_WEBHOOK_URL, self.webhook.url, self._post_webhook
        if self.slack:
            yield f"Slack {self.slack.channel}", SLACK_TOKEN, self.slack.token, self._post_slack
        if self.teams:
            yield "Microsoft Teams", TEAMS_WEBHOOK_URL, self.teams.hook_url, self._post_teams

    def _post_webhook(self, alert: Alert) -> None:
        assert self.webhook
        _require_http_url(self.webhook.url)
        # raise_for_status() would put the URL in the error; the status alone says enough.
        response = requests.post(self.webhook.url, json=alert.payload(), timeout=SEND_TIMEOUT_S)
        if not response.ok:
            raise _Refused(f"answered HTTP {response.status_code}")

    def _post_slack(self, alert: Alert) -> None:
        assert self.slack
        self.slack.get_client().chat_postMessage(
            channel=self.slack.channel, text=alert.text("<{url}>"), unfurl_links=False
        )

    def _post_teams(self, alert: Alert) -> None:
        assert self.teams
        _require_http_url(self.teams.hook_url)
        client = self.teams.get_client()
        # Office 365 connector webhooks take the legacy card; Workflows webhooks an adaptive one.
        card = Card() if client.is_legacy_webhook() else AdaptiveCard()
        card.add_attachment(text_message=alert.text("[{url}]({url})"))
        client.post_message(card.payload)


class _Refused(Exception):
    """A channel answered, and not with success."""


def _require_http_url(url: str) -> None:
    if not is_http_url(url):
        raise _Refused("is not an http(s) URL with a host; set the variable to the full address")


def _describe(error: Exception) -> str:
    """What went wrong, without the error's own text where it may quote the URL or token."""
    if isinstance(error, _Refused):
        return str(error)
    if isinstance(error, SlackApiError):
        return f"Slack answered {error.response.get('error', 'an error')}"
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return f"could not be reached ({type(error).__name__})"
    if type(error) is requests.RequestException:
        # dagster-msteams raises it with the response's body when Teams refuses a message.
        return f"refused the message: {str(error)[:200]}"
    return f"failed with {type(error).__name__}"


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def alerts_resource(settings: AlertSettings) -> ChatAgentsAlerts:
    """The channels configured by the environment, their secrets left as variables."""
    return ChatAgentsAlerts(
        webhook=AlertWebhook(url=dg.EnvVar(ALERT_WEBHOOK_URL)) if settings.webhook else None,
        slack=(
            SlackChannel(
                token=dg.EnvVar(SLACK_TOKEN),
                channel=settings.slack_channel,
                api_url=settings.slack_api_url,
            )
            if settings.slack
            else None
        ),
        teams=(
            MSTeamsResource(hook_url=dg.EnvVar(TEAMS_WEBHOOK_URL), timeout=SEND_TIMEOUT_S)
            if settings.teams
            else None
        ),
        dagster_url=settings.dagster_url or None,
    )


def _job_label(job_name: str) -> str:
    # The UI's Materialize runs an implicit asset job.
    return "A materialization from the UI" if job_name.startswith("__ASSET_JOB") else job_name


def _workspace_of(run: dg.DagsterRun) -> dict[str, str]:
    """The workspace a run of the partitioned assets loaded (its partition)."""
    partition = run.tags.get(PARTITION_TAG)
    return {"workspace": partition} if partition else {}


def _of_workspace(run: dg.DagsterRun) -> str:
    workspace = _workspace_of(run).get("workspace")
    return f" (workspace {workspace})" if workspace else ""


def _failed_checks(
    instance: dg.DagsterInstance, run_id: str, severities: Sequence[dg.AssetCheckSeverity]
) -> tuple[dict[str, str], ...]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        evaluation: dg.AssetCheckEvaluation = event.event_specific_data  # type: ignore[assignment]
        if evaluation.passed or evaluation.severity not in severities:
            continue
        failed.append(
            {
                "asset": evaluation.asset_key.to_user_string(),
                "check": evaluation.check_name,
                "severity": evaluation.severity.value,
                "description": (evaluation.description or "")[:ERROR_CHARS],
            }
        )
    return tuple(failed)


def _root_cause(error: "SerializableErrorInfo | None") -> str:
    """The innermost error's message: Dagster wraps what failed in the step ("Error occurred
    while executing op ...") and dlt in its pipeline step; the cause says what to change."""
    message = ""
    while error is not None:
        message, error = error.message, error.cause or error.context
    return message.strip()


def _check_lines(checks: Sequence[dict[str, str]]) -> list[str]:
    return [
        f"Check {check['asset']} {check['check']} failed ({check['severity']}):"
        f" {check['description']}"
        for check in checks
    ]


def run_failure_alert(context: dg.RunFailureSensorContext, alerts: ChatAgentsAlerts) -> Alert:
    run = context.dagster_run
    steps = tuple(
        {
            "step": event.step_key or "",
            "error": _root_cause(event.step_failure_data.error)[:ERROR_CHARS],
        }
        for event in context.get_step_failure_events()
    )
    checks = _failed_checks(
        context.instance, run.run_id, (dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN)
    )
    lines = [f"Step {step['step']} failed: {step['error']}" for step in steps]
    if not steps:
        # Ended from outside its steps: run monitoring (a maximum runtime), a lost worker.
        lines.append(f"Run failure: {(context.failure_event.message or '').strip()[:ERROR_CHARS]}")
    return Alert(
        event=RUN_FAILED,
        title=f"{_job_label(run.job_name)}{_of_workspace(run)} failed: run {run.run_id}",
        lines=tuple(lines + _check_lines(checks)),
        job=run.job_name,
        run_id=run.run_id,
        url=alerts.link(f"runs/{run.run_id}"),
        failed_steps=steps,
        failed_checks=checks,
        extra=_workspace_of(run),
    )


def check_warning_alert(
    context: dg.RunStatusSensorContext, alerts: ChatAgentsAlerts
) -> Alert | None:
    run = context.dagster_run
    checks = _failed_checks(context.instance, run.run_id, (dg.AssetCheckSeverity.WARN,))
    if not checks:
        return None
    return Alert(
        event=CHECKS_WARNED,
        title=f"{_job_label(run.job_name)}{_of_workspace(run)} succeeded with {len(checks)}"
        f" failed WARN check(s): run {run.run_id}",
        lines=tuple(_check_lines(checks)),
        job=run.job_name,
        run_id=run.run_id,
        url=alerts.link(f"runs/{run.run_id}"),
        failed_checks=checks,
        extra=_workspace_of(run),
    )


def stale_alert(
    job_name: str,
    run_key: str,
    stale: Sequence[tuple[dg.AssetKey, str]],
    window: str,
    alerts: ChatAgentsAlerts,
    workspace: str | None = None,
) -> Alert:
    """The freshness sensor's: tables (of `workspace`, when partitioned) older than their window,
    a catch-up run requested."""
    assets = tuple(
        {
            "asset": key.to_user_string(),
            "last_materialized": when,
            **({"url": url} if (url := alerts.link(f"assets/{'/'.join(key.path)}")) else {}),
        }
        for key, when in stale
    )
    return Alert(
        event=TABLES_STALE,
        title=f"{len(stale)} table(s){f' of workspace {workspace}' if workspace else ''} older"
        f" than their {window} freshness window; a catch-up run of {job_name} is requested",
        lines=tuple(
            f"{asset['asset']} last materialized {asset['last_materialized']}" for asset in assets
        ),
        job=job_name,
        url=alerts.link("runs"),
        stale_assets=assets,
        extra={"run_key": run_key, **({"workspace": workspace} if workspace else {})},
    )


def build_alert_sensors(settings: AlertSettings) -> list[dg.SensorDefinition]:
    """The run-failure and WARN-check sensors of every job of the location (the UI's asset jobs
    included); running by default once a channel is configured."""
    status = dg.DefaultSensorStatus.RUNNING if settings.any else dg.DefaultSensorStatus.STOPPED

    # Each returns None: a run-status sensor that returns a value stops its tick at that run,
    # leaving the other runs that ended since the last tick to later ticks.
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=status,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description="One notification per failed run of this location's jobs.",
    )
    def chat_agents_run_failure_alerts(
        context: dg.RunFailureSensorContext, chat_agents_alerts: ChatAgentsAlerts
    ) -> None:
        if not chat_agents_alerts.configured:
            context.log.info("No alert channel is configured.")
            return
        reached = chat_agents_alerts.send(run_failure_alert(context, chat_agents_alerts))
        context.log.info(f"Run {context.dagster_run.run_id}: sent to {', '.join(reached)}.")

    @dg.run_status_sensor(
        name=CHECK_WARNING_SENSOR,
        run_status=dg.DagsterRunStatus.SUCCESS,
        default_status=status,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description="One notification per successful run whose WARN checks failed (a failed"
        " run's checks are in its failure notification).",
    )
    def chat_agents_check_warning_alerts(
        context: dg.RunStatusSensorContext, chat_agents_alerts: ChatAgentsAlerts
    ) -> None:
        run_id = context.dagster_run.run_id
        alert = check_warning_alert(context, chat_agents_alerts)
        if alert is None:
            context.log.info(f"Every WARN check of run {run_id} passed.")
        elif not chat_agents_alerts.configured:
            context.log.info("No alert channel is configured.")
        else:
            reached = chat_agents_alerts.send(alert)
            context.log.info(f"Run {run_id}: sent to {', '.join(reached)}.")

    return [chat_agents_run_failure_alerts, chat_agents_check_warning_alerts]
