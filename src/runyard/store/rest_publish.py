"""RestStore's part for published pipelines, pipeline endpoints and schedules (a mixin of RestStore).

Which calls are sent again after a broken connection is in RestStore's docstring: the status changes,
endpoint updates and version adds are (a repeat changes nothing); the creates look for the record (its id
is chosen by the client) before they send again. claim_schedule_firing is SqlStore only: only the
workspace's own scheduler fires schedules, so it has no route.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from runyard import errors as e
from runyard.store import publish_rules
from runyard.store.records import PipelineEndpointRecord, PublishedPipelineRecord, ScheduleRecord
from runyard.store.rest_http import AnswerLost

CREATE_ATTEMPTS = 5  # sends of one create whose answers keep getting lost


def _seg(value: str) -> str:
    """One URL path segment, as rest_store's: endpoint names may hold '/', '?', '#', '%' or be '.'."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if value in (".", "..") else quoted


class RestPublish:
    # RestStore's request helpers
    def _get(self, path: str, kind: Any, **params: Any) -> Any:
        raise NotImplementedError

    def _send(self, method: str, path: str, body: Any, kind: Any = None, *, retry: bool = False) -> Any:
        raise NotImplementedError

    def _create_once(self, path: str, record: Any, kind: Any, lookup: Any) -> Any:
        """POST a record whose id the client chose; after a lost answer, look for it before sending again
        (found with the same created_time and name: the lost request made it)."""
        body = TypeAdapter(kind).dump_python(record, mode="json")
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return self._send("POST", path, body, kind)
            except AnswerLost:
                try:
                    found = lookup(record.id)
                except e.NotFoundError:
                    found = None
                if found is not None and (found.created_time, found.name) == (
                    record.created_time,
                    record.name,
                ):
                    return found
                if found is not None or attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def create_published_pipeline(self, record: PublishedPipelineRecord) -> PublishedPipelineRecord:
        publish_rules.check_published_pipeline(record)
        return self._create_once(
            "/published-pipelines", record, PublishedPipelineRecord, self.get_published_pipeline
        )

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord:
        return self._get(f"/published-pipelines/{_seg(pipeline_id)}", PublishedPipelineRecord)

    def list_published_pipelines(self, active_only: bool = True) -> list[PublishedPipelineRecord]:
        return self._get("/published-pipelines", list[PublishedPipelineRecord], active_only=active_only)

    def set_published_pipeline_status(self, pipeline_id: str, status: str) -> PublishedPipelineRecord:
        publish_rules.check_status("Published pipeline", status)
        path = f"/published-pipelines/{_seg(pipeline_id)}/status"
        return self._send("PUT", path, {"status": status}, PublishedPipelineRecord, retry=True)

    def create_pipeline_endpoint(self, record: PipelineEndpointRecord) -> PipelineEndpointRecord:
        publish_rules.check_pipeline_endpoint(record)
        return self._create_once(
            "/pipeline-endpoints", record, PipelineEndpointRecord, lambda i: self.get_pipeline_endpoint(i)
        )

    def get_pipeline_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord:
        if endpoint_id is None and name is None:
            raise e.InvalidInputError(
                "Give the pipeline endpoint's id or its name (PipelineEndpoint.get(ws, name=...))."
            )
        if endpoint_id is None:
            return self._get(f"/pipeline-endpoints/by-name/{_seg(str(name))}", PipelineEndpointRecord)
        return self._get(f"/pipeline-endpoints/{_seg(endpoint_id)}", PipelineEndpointRecord, name=name)

    def list_pipeline_endpoints(self, active_only: bool = True) -> list[PipelineEndpointRecord]:
        return self._get("/pipeline-endpoints", list[PipelineEndpointRecord], active_only=active_only)

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, set_default: bool = False
    ) -> PipelineEndpointRecord:
        body = {"pipeline_id": pipeline_id, "set_default": set_default}
        path = f"/pipeline-endpoints/{_seg(endpoint_id)}/versions"
        return self._send("POST", path, body, PipelineEndpointRecord, retry=True)

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
        default_version: str | None = None,
    ) -> PipelineEndpointRecord:
        body = {
            "name": name,
            "description": description,
            "status": status,
            "default_version": default_version,
        }
        path = f"/pipeline-endpoints/{_seg(endpoint_id)}"
        return self._send("PATCH", path, body, PipelineEndpointRecord, retry=True)

    def create_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        """Returns the record as the server stored it (recurrence normalised, createdBy stamped)."""
        record = publish_rules.check_schedule(record)
        return self._create_once("/schedules", record, ScheduleRecord, self.get_schedule)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        return self._get(f"/schedules/{_seg(schedule_id)}", ScheduleRecord)

    def list_schedules(
        self,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]:
        return self._get(
            "/schedules",
            list[ScheduleRecord],
            active_only=active_only,
            pipeline_id=pipeline_id,
            pipeline_endpoint_id=pipeline_endpoint_id,
        )

    def set_schedule_status(self, schedule_id: str, status: str) -> ScheduleRecord:
        publish_rules.check_status("Schedule", status)
        path = f"/schedules/{_seg(schedule_id)}/status"
        return self._send("PUT", path, {"status": status}, ScheduleRecord, retry=True)

    def update_schedule(self, schedule_id: str, **given: Any) -> ScheduleRecord:
        """PATCH /schedules/{id}: the server checks the merged record and who may change it."""
        body = {k: v for k, v in given.items() if v is not None}
        return self._send("PATCH", f"/schedules/{_seg(schedule_id)}", body, ScheduleRecord, retry=True)
