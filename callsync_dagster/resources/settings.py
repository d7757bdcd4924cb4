"""The sync policy shared by the call workflow's ops and sensor."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from dagster import ConfigurableResource
from pydantic import Field, field_validator


class CallSyncSettings(ConfigurableResource):
    """The sync policy: how numbers and times are read, and when a session is synced, retried or given up."""

    default_region: str = Field(default="SE", description="Region for numbers without a country code (ISO 3166).")
    timezone: str = Field(default="Europe/Stockholm", description="Time zone of the local date in CALL titles.")
    contact_policy: Literal["create", "skip"] = Field(
        default="create",
        description="What to do when no contact has the caller's number: create one or skip.",
    )
    transcript_wait_minutes: int = Field(
        default=120, ge=0, description="How long after hang-up to wait for a transcript before syncing without one."
    )
    claim_lease_minutes: int = Field(
        default=30, ge=1, description="How long a run's claim on a session lasts before another run may take it."
    )
    max_attempts: int = Field(default=5, ge=1, description="Attempts before a failing session stays failed for good.")
    retry_initial_delay_minutes: float = Field(default=5.0, gt=0, description="Delay before the second attempt.")
    retry_max_delay_minutes: float = Field(default=360.0, gt=0, description="Maximum delay between two attempts.")
    hubspot_batch_size: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Sessions per HubSpot batch request (HubSpot takes at most 100 inputs); 1 gives the per-call flow.",
    )
    contact_search: Literal["many_numbers", "few_numbers"] = Field(
        default="few_numbers",
        description="How contacts are searched by phone: 'many_numbers' puts dozens of numbers in one IN filter; "
        "'few_numbers' sends a few EQ filters per request, the operator HubSpot documents for phone search.",
    )
    search_lag_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long after a create HubSpot's search may still miss the object. A CALL or contact create "
        "that may have been applied is not repeated before this much time has passed.",
    )
    deal_pipeline: str = Field(
        default="default", description="Conversation workflow: the pipeline of the deals it creates."
    )
    deal_stage_map: dict[str, str] = Field(
        default_factory=dict,
        description="Conversation workflow: insights.deal_stage value to HubSpot deal stage id. Empty: callsync's "
        "map for HubSpot's default pipeline.",
    )
    deal_default_stage: str = Field(
        default="appointmentscheduled",
        description="Conversation workflow: the stage of a deal whose insights name no stage or an unknown one.",
    )
    sensor_max_sessions_per_run: int = Field(
        default=100, ge=1, description="Maximum number of due sessions the sensor puts in one run request."
    )
    sensor_max_runs_in_flight: int = Field(
        default=4, ge=1, description="Maximum number of the sensor's runs waiting or running at once."
    )

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"Unknown phone region {value!r}: use an ISO 3166 code such as 'SE' or 'NO'.")
        return value.upper()

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"Unknown time zone {value!r}: use an IANA name such as 'Europe/Stockholm'.") from error
        return value
