"""Imports every domain's models so the metadata (and Alembic) sees all tables."""

from runhq.actions.models import CampaignDelivery, Contact
from runhq.auth.models import ApiKey, EndedSession, LoginFailure, Membership, User, Workspace
from runhq.costs.models import Budget, ModelUsage
from runhq.db.base import Base
from runhq.logs.models import StructuredLog
from runhq.platforms.models import HealthCheck, Incident, Platform
from runhq.runs.models import Run, RunApproval
from runhq.scheduler.models import AutopilotSettings, Schedule, SchedulerLease

__all__ = [
    "ApiKey",
    "AutopilotSettings",
    "Base",
    "Budget",
    "CampaignDelivery",
    "Contact",
    "EndedSession",
    "HealthCheck",
    "Incident",
    "LoginFailure",
    "Membership",
    "ModelUsage",
    "Platform",
    "Run",
    "RunApproval",
    "Schedule",
    "SchedulerLease",
    "StructuredLog",
    "User",
    "Workspace",
]
