"""The contacts of campaigns as the API and the CLI read and write them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ContactIn(BaseModel):
    email: str = Field(max_length=320)
    name: str | None = Field(None, max_length=200)
    consent: bool = Field(description="The contact agreed to receive campaigns.")


class ContactOut(BaseModel):
    email: str
    name: str | None
    consent: bool
    consented_at: datetime | None
    unsubscribed_at: datetime | None = Field(description="When the contact unsubscribed.")
    created_at: datetime

    model_config = {"from_attributes": True}


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ImportResult(BaseModel):
    written: int
    audience: int = Field(description="Contacts a campaign would reach now.")
