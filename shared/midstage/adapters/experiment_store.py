"""DataTable access for the experiments plane: the experiment documents (optimistic versions),
the ledger of each phase's final auto-winner decision (written once), and the exposure log (the
archive stream, where results read exposures back from).

- An experiment is one item, `EXPERIMENT / <id>`, its document as JSON and its `version` beside
  it; a save is conditioned on the version read (none stored for a new one), so of two editors
  who read version 3 only one writes version 4; the other is told and reads again.
- A phase's final decision is a conditional put on `EXPERIMENTDECISION#<id> / PHASE#<n>`: the
  first writer records it; a double-fired or redelivered step finds it and sends nothing again.
- An exposure is an `experiment_exposure` archive record (`logic.archive.records.exposure`, one
  id per experiment, phase and person), put on the archive stream like every other record;
  `logic.experiments.archive_sums` reads them back with the events that followed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters.archive_stream import Archive
from midstage.errors import InvalidInput
from midstage.logic.archive import records
from midstage.models.experiments import Experiment, WinnerDecision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_MAX_CURSOR = 64


class RecentExperiments:
    """Experiments as the deliverer reads them: each kept `ttl_s` seconds, so a burst of messages
    naming one experiment reads it once; a start, stop or new phase is seen within that time."""

    def __init__(self, table: ExperimentTable, *, monotonic: Callable[[], float], ttl_s: float = 30.0) -> None:
        self.table = table
        self.monotonic = monotonic
        self.ttl_s = ttl_s
        self._kept: dict[str, tuple[float, Experiment | None]] = {}

    def find_experiment(self, experiment_id: str) -> Experiment | None:
        now = self.monotonic()
        kept = self._kept.get(experiment_id)
        if kept is not None and now - kept[0] < self.ttl_s:
            return kept[1]
        found = self.table.find_experiment(experiment_id)
        if len(self._kept) > 1000:
            self._kept.clear()
        self._kept[experiment_id] = (now, found)
        return found


class ExperimentTable(ddb.Table):
    """The `ExperimentStore` and `DecisionLedger` ports over the DataTable."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)

    # ---------------------------------------------------------------- experiments
    def find_experiment(self, experiment_id: str) -> Experiment | None:
        item = self._get(keys.experiment_key(experiment_id))
        return Experiment.model_validate_json(item["doc"]["S"]) if item else None

    def save_experiment(self, experiment: Experiment, *, expected_version: int | None) -> bool:
        kwargs: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if expected_version is not None:
            kwargs = {
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": {":expected": ddb.n(expected_version)},
            }
        item = {
            **ddb.key(keys.experiment_key(experiment.id)),
            "doc": ddb.s(experiment.model_dump_json()),
            "version": ddb.n(experiment.version),
            "status": ddb.s(experiment.status),
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, **kwargs)
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def list_experiments(self, limit: int, cursor: str | None) -> tuple[list[Experiment], str | None]:
        """A page of experiments in id order, and the cursor of the next page (None at the end).
        The cursor is the last id listed: anything else is refused, never sent to DynamoDB."""
        if cursor is not None and (len(cursor) > _MAX_CURSOR or not cursor.isascii() or not cursor.strip()):
            raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
        answer = self._query(keys.EXPERIMENT_PK, "", limit=limit, newest_first=False, start=cursor)
        found = [Experiment.model_validate_json(item["doc"]["S"]) for item in answer.get("Items", [])]
        after = answer["LastEvaluatedKey"]["sk"]["S"] if "LastEvaluatedKey" in answer else None
        return found, after

    # ---------------------------------------------------------------- decisions
    def final_decision(self, experiment_id: str, phase: int) -> WinnerDecision | None:
        item = self._get(keys.experiment_decision_key(experiment_id, phase))
        return WinnerDecision.model_validate_json(item["doc"]["S"]) if item else None

    def record_final(self, decision: WinnerDecision) -> bool:
        item = {
            **ddb.key(keys.experiment_decision_key(decision.experiment_id, decision.phase)),
            "doc": ddb.s(decision.model_dump_json()),
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True


class ArchiveExposures:
    """The `ExposureLog` port: each exposure an archive record on the stream (nothing at all
    without a stream: a deployment without the analytics plane has no results to read)."""

    def __init__(self, archive: Archive, *, origin_kind: str | None = None, origin_id: str | None = None) -> None:
        self.archive = archive
        self.origin_kind = origin_kind
        self.origin_id = origin_id

    def log_exposure(self, experiment_id: str, phase: int, unit_id: str, arm: str, at: datetime) -> None:
        record = records.exposure(
            experiment_id=experiment_id,
            variant=arm,
            profile_id=unit_id,
            at=at,
            archived_at=at,
            origin_kind=self.origin_kind,
            origin_id=self.origin_id,
            phase=phase,
        )
        self.archive.put([record])
