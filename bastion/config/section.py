"""The base of every configuration section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base for config sections: unknown keys are an error, so typos are caught at start-up."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
