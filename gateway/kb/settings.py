"""`[kb]`: the knowledge base written from resolved tickets, and suggestions for new ones."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KbSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Similar solved entries journalled on each new ticket and shown in the assignee's mail.
    suggest: bool = True
    suggest_limit: int = Field(default=3, ge=0, le=10)
    # Share of the new ticket's search terms an entry must contain to be suggested.
    suggest_min_score: float = Field(default=0.3, ge=0, le=1)
    # How much of the description, after the subject, is matched against the KB.
    suggest_chars: int = Field(default=300, ge=0, le=5000)
    # true: an agent's resolve needs a resolution with a solution (API 422 without one).
    require_solution: bool = False
    # Entries come from internal tickets (host names, steps): staff only unless opened up.
    requesters_may_read: bool = False
