"""EventBridge Scheduler: the schedules that start campaign runs, one per campaign.

The schedule's input carries `<aws.scheduler.scheduled-time>`, which Scheduler replaces with
the occurrence's time: a run is named by it, so a schedule that fires twice starts one run.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient as SchedulerClient


class CampaignSchedules:
    def __init__(
        self,
        *,
        prefix: str,
        target_arn: str,
        role_arn: str,
        group: str = "default",
        client: SchedulerClient | None = None,
    ) -> None:
        self.prefix = prefix
        self.target_arn = target_arn
        self.role_arn = role_arn
        self.group = group
        self._client = client

    @property
    def client(self) -> SchedulerClient:
        if self._client is None:
            self._client = aws.scheduler()
        return self._client

    def name_for(self, campaign_id: str, stage: str = "") -> str:
        """Scheduler names hold 64 characters: a longer one keeps a digest of the whole id. An
        auto-winner's second schedule is the campaign's with `stage` "winner" ("w-" before the id)."""
        name = f"{self.prefix}-campaign-{'w-' if stage else ''}{campaign_id}"
        if len(name) <= 64:
            return name
        return f"{name[:51]}-{hashlib.sha256((stage + campaign_id).encode()).hexdigest()[:12]}"

    def put(
        self,
        campaign_id: str,
        expression: str,
        timezone: str,
        *,
        start: str | None = None,
        end: str | None = None,
        one_time: bool,
        stage: str = "",
    ) -> str:
        """Create or replace the campaign's schedule (with `stage` "winner": its auto-winner's
        second one); returns its name."""
        name = self.name_for(campaign_id, stage)
        target_input: dict[str, str] = {"campaignId": campaign_id, "scheduledTime": "<aws.scheduler.scheduled-time>"}
        if stage:
            target_input["stage"] = stage
        request: dict[str, Any] = {
            "Name": name,
            "GroupName": self.group,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "ActionAfterCompletion": "DELETE" if one_time else "NONE",
            "Description": f"Midstage campaign {campaign_id}",
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(target_input, separators=(",", ":")),
                "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
            },
        }
        if start:
            request["StartDate"] = start
        if end:
            request["EndDate"] = end
        try:
            self.client.create_schedule(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConflictException":
                raise
            self.client.update_schedule(**request)
        return name

    def delete(self, campaign_id: str, stage: str = "") -> bool:
        try:
            self.client.delete_schedule(Name=self.name_for(campaign_id, stage), GroupName=self.group)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
        return True

    def get(self, campaign_id: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get_schedule(Name=self.name_for(campaign_id), GroupName=self.group)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return {
            "name": answer["Name"],
            "expression": answer["ScheduleExpression"],
            "timezone": answer.get("ScheduleExpressionTimezone", "UTC"),
            "state": answer["State"],
        }
