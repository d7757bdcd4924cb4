"""HubSpot identifiers and limits that callsync relies on, named in one place.

Source: HubSpot's CRM API documentation for calls, associations v4 and search (checked 2025-2026).
"""

from __future__ import annotations

from typing import Final

ASSOCIATION_CATEGORY_HUBSPOT_DEFINED: Final = "HUBSPOT_DEFINED"

# Association type ids; each direction has its own id.
CALL_TO_CONTACT: Final = 194
CALL_TO_COMPANY: Final = 182
CALL_TO_DEAL: Final = 206
CONTACT_TO_PRIMARY_COMPANY: Final = 1

# hs_call_disposition values are GUIDs; these are HubSpot's built-in outcomes.
DISPOSITION_CONNECTED: Final = "f240bbac-87c9-4f6e-bf70-924b57d47db7"
DISPOSITION_NO_ANSWER: Final = "73a0d17f-1163-4015-bdd5-ec830791da20"

CALL_STATUS_COMPLETED: Final = "COMPLETED"
CALL_STATUS_NO_ANSWER: Final = "NO_ANSWER"

# HubSpot documents 65,536 characters for text properties and note bodies; no separate limit is
# documented for hs_call_body, so callsync keeps bodies within the same number.
MAX_TEXT_PROPERTY_LENGTH: Final = 65_536

CALL_EXTERNAL_ID_PROPERTY: Final = "hs_call_external_id"

# HubSpot takes at most 100 inputs in a batch create or read, and 1,000 in an associations batch read.
BATCH_MAX_INPUTS: Final = 100
ASSOCIATIONS_BATCH_READ_MAX_INPUTS: Final = 1000

# The properties callsync reads back when it confirms a CALL.
CALL_PROPERTIES_READ: Final = (
    "hs_timestamp",
    "hs_call_title",
    "hs_call_direction",
    "hs_call_status",
    "hs_call_external_id",
    "hubspot_owner_id",
)

CONTACT_PROPERTIES_READ: Final = ("firstname", "lastname", "email", "phone", "mobilephone", "createdate")

# HubSpot matches phone numbers through these calculated properties, which hold the national significant
# number (no country code, no trunk zero).
SEARCHABLE_PHONE_PROPERTY: Final = "hs_searchable_calculated_phone_number"
SEARCHABLE_MOBILE_PROPERTY: Final = "hs_searchable_calculated_mobile_number"

# Association type ids of the legacy conversation workflow's deals, notes and tasks.
NOTE_TO_CONTACT: Final = 202
NOTE_TO_COMPANY: Final = 190
NOTE_TO_DEAL: Final = 214
TASK_TO_CONTACT: Final = 204
TASK_TO_COMPANY: Final = 192
TASK_TO_DEAL: Final = 216
DEAL_TO_CONTACT: Final = 3
CONTACT_TO_DEAL: Final = 4

# Values of hs_task_status, hs_task_priority and hs_task_type that callsync uses.
TASK_STATUS_NOT_STARTED: Final = "NOT_STARTED"
TASK_STATUS_COMPLETED: Final = "COMPLETED"
TASK_PRIORITY_NONE: Final = "NONE"
TASK_PRIORITY_LOW: Final = "LOW"
TASK_PRIORITY_MEDIUM: Final = "MEDIUM"
TASK_PRIORITY_HIGH: Final = "HIGH"
TASK_TYPE_CALL: Final = "CALL"
TASK_TYPE_TODO: Final = "TODO"

# The id of the pipeline every HubSpot account starts with.
DEFAULT_DEAL_PIPELINE: Final = "default"

DEAL_PROPERTIES_READ: Final = ("dealname", "pipeline", "dealstage", "hubspot_owner_id", "createdate")
NOTE_PROPERTIES_READ: Final = ("hs_note_body", "hs_timestamp", "hubspot_owner_id")
TASK_PROPERTIES_READ: Final = (
    "hs_task_subject",
    "hs_task_body",
    "hs_task_status",
    "hs_task_priority",
    "hs_task_type",
    "hs_timestamp",
    "hubspot_owner_id",
)
