"""The Files API's answers and upload form as schemas, for the OpenAPI document (``/v1/files``).

They describe what ``bastion/files`` builds, in OpenAI's shapes (``OpenAIFile``,
``ListFilesResponse``, ``DeleteFileResponse``, ``CreateFileRequest``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components


class FileObject(BaseModel):
    """An uploaded file (OpenAI's ``file`` object). ``expires_at`` only when the file expires."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^file-[0-9a-f]{32}$")
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["batch", "batch_output", "user_data", "fine-tune"]
    status: Literal["processed"]
    expires_at: int | None = None


class FileList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: Literal["list"]
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    object: Literal["file"]
    deleted: bool


def files_components() -> dict[str, Any]:
    schemas = pydantic_components([FileObject, FileList, FileDeleted])
    schemas["FileUpload"] = {
        "type": "object",
        "description": "A multipart/form-data upload: the file and its purpose (docs/FILES.md).",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The file; at most `files.max_bytes`."},
            "purpose": {
                "enum": ["batch", "user_data"],
                "description": "`batch`: a batch input file (JSONL, checked at upload); `user_data`: any content.",
            },
            "expires_after[anchor]": {"const": "created_at"},
            "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
        },
        "required": ["file", "purpose"],
    }
    schemas["FileContent"] = {"type": "string", "format": "binary", "description": "The file's bytes, as uploaded."}
    return schemas
