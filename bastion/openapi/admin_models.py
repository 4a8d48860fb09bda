"""Bodies of Bastion's own API (``/api/v1/admin/...``, ``/api/v1/ai/...``) that no validator
models yet, as pydantic models for the OpenAPI document: the answers of the admin, prompt and
session routes and the request bodies of the prompt and session routes (whose handlers check them
field by field). The identity API's request bodies are ``bastion.auth.schemas`` themselves; the
ledger's rows come from the table (``bastion.openapi.document``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema, create_model

from bastion.auth.principal import Permission, Role
from bastion.openapi.model_responses import StreamErrorDetail
from bastion.vault.model import MAX_TEXT_CHARS, PARAM_TYPES, PROMPT_ID


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


Settings = dict[str, Any]


# -- identity --------------------------------------------------------------------------------------


class PrincipalView(_Closed):
    object: Literal["principal"]
    tenant_id: str
    tenant_name: str
    role: Role
    key_id: str | None
    key_prefix: str | None
    user_id: str | None
    user_email: str | None
    platform_admin: bool
    method: Literal["api_key", "jwt", "anonymous"]
    permissions: list[Permission]


class TenantView(_Closed):
    object: Literal["tenant"]
    id: str
    name: str
    created_at: datetime | None
    disabled: bool
    settings: Settings


class UserView(_Closed):
    object: Literal["user"]
    id: str
    tenant_id: str
    email: str
    name: str | None
    role: Role
    created_at: datetime | None
    disabled: bool
    settings: Settings


class KeyView(_Closed):
    """An API key's metadata; never the key itself."""

    object: Literal["api_key"]
    id: str
    tenant_id: str
    user_id: str | None
    #: ``bst_`` and the key's first 8 characters: how keys are listed and recognised.
    prefix: str
    name: str
    role: Role
    platform_admin: bool
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    settings: Settings


class KeyCreated(KeyView):
    #: The key: shown in this answer only; only its hash is stored.
    key: str
    warning: str


class UserDeleted(_Closed):
    object: Literal["user"]
    id: str
    deleted: Literal[True]


class AuditEventView(_Closed):
    object: Literal["audit_event"]
    id: str
    tenant_id: str | None
    actor: str
    action: str
    target: str | None
    created_at: datetime | None
    details: Settings | None


class _Page(_Closed):
    object: Literal["list"]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None
    has_more: bool


class TenantList(_Page):
    data: list[TenantView]


class UserList(_Page):
    data: list[UserView]


class KeyList(_Page):
    data: list[KeyView]


class AuditEventList(_Page):
    data: list[AuditEventView]


# -- jobs ------------------------------------------------------------------------------------------


class JobProgress(_Closed):
    done: int
    total: int | None


class JobLease(_Closed):
    owner: str | None = Field(description="The worker holding the job while it runs.")
    expires_at: datetime | None
    heartbeat_at: datetime | None


class JobView(_Closed):
    object: Literal["job"]
    id: str
    kind: str
    tenant_id: str | None
    key_id: str | None
    user_id: str | None
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    attempts: int
    max_attempts: int
    cancel_requested: bool
    progress: JobProgress
    lease: JobLease
    error: str | None
    result: Any
    result_ref: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    payload: Any = Field(None, description="What the job was submitted with (the single-job route only).")


class JobList(_Page):
    data: list[JobView]


# -- prompt vault ----------------------------------------------------------------------------------

PromptId = Annotated[str, Field(pattern=PROMPT_ID.pattern)]
#: ``bastion.vault.model.LABEL`` without its look-ahead (which not every JSON Schema tool reads):
#: a label is never all digits, as ``prompt:id@3`` means version 3.
LABEL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    "not": {"pattern": r"^[0-9]+$"},
}
Label = Annotated[str, WithJsonSchema(LABEL_SCHEMA)]


def _param_type(types: tuple[type, ...]) -> Any:
    if float in types:
        return float
    if list in types:
        return str | list[str]
    return types[0]


#: The version parameters that become request defaults, from the vault's own table of them.
PromptParams: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "PromptParams",
    __config__=ConfigDict(extra="forbid"),
    **{name: (_param_type(types) | None, None) for name, types in PARAM_TYPES.items()},
)


class PromptVersionCreate(_Closed):
    system_prompt: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S")]
    #: A Jinja template (sandboxed) rendered with the client's variables into the user message.
    user_template: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    params: PromptParams | None = None
    metadata: dict[str, Any] | None = None
    #: Labels to point at the new version (``production`` is set on a new prompt's version 1).
    labels: list[Label] | None = None


class PromptCreate(PromptVersionCreate):
    prompt_id: PromptId
    name: Annotated[str, Field(max_length=200)] | None = None
    description: str | None = None


class LabelMove(_Closed):
    version: Annotated[int, Field(ge=1, le=999_999_999)]


class PromptClone(_Closed):
    new_prompt_id: PromptId
    name: Annotated[str, Field(max_length=200)] | None = None


class PromptView(_Closed):
    prompt_id: str
    name: str
    description: str | None
    #: Label name -> version number.
    labels: dict[str, int]
    latest_version: int
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    created_by: str


class PromptVersionView(_Closed):
    """A version's metadata; never its text."""

    prompt_id: str
    version: int
    #: The master key the version is sealed with.
    key_id: str
    model: str | None
    params: dict[str, Any]
    metadata: dict[str, Any]
    has_user_template: bool
    labels: list[str]
    created_at: datetime
    created_by: str


class PromptList(_Closed):
    object: Literal["list"]
    data: list[PromptView]


class PromptVersionList(_Closed):
    object: Literal["list"]
    data: list[PromptVersionView]


class PromptPlaintext(_Closed):
    prompt_id: str
    version: int
    system_prompt: str
    user_template: str | None


class LabelMoved(_Closed):
    prompt_id: str
    label: str
    version: int
    previous_version: int | None


# -- agent sessions --------------------------------------------------------------------------------

NonBlank = Annotated[str, Field(min_length=1, pattern=r"\S")]


class SessionStart(_Open):
    """Start a session on a vault prompt, pinned to a label's version (default ``production``) or
    to a version number (not both)."""

    prompt_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")]
    session_type: Annotated[str, Field(max_length=64, pattern=r"\S")] | None = None
    context: dict[str, Any] | None = None
    label: Annotated[str, Field(max_length=64, pattern=r"\S")] | None = None
    version: Annotated[int, Field(ge=1)] | None = None
    #: The model to call when the prompt version names none.
    model: Annotated[str, Field(max_length=256, pattern=r"\S")] | None = None


class SessionEnd(_Open):
    agent_id: Annotated[str, Field(json_schema_extra={"format": "uuid"})]


class SessionChat(_Open):
    agent_id: Annotated[str, Field(json_schema_extra={"format": "uuid"})]
    message: NonBlank


class AgentSession(_Closed):
    object: Literal["agent_session"]
    agent_id: str
    prompt_id: str
    prompt_version: int
    prompt_label: str | None
    session_type: str
    context: dict[str, Any]
    status: Literal["active", "ended", "expired"]
    message_count: int
    started_at: datetime
    last_activity_at: datetime
    expires_at: datetime
    ended_at: datetime | None


class AgentSessionList(_Closed):
    object: Literal["list"]
    data: list[AgentSession]


class SessionMessageView(_Closed):
    id: int
    role: Literal["user", "assistant"]
    content: str
    interaction_id: str | None
    created_at: datetime


class SessionHistory(_Closed):
    object: Literal["list"]
    agent_id: str
    status: Literal["active", "ended", "expired"]
    data: list[SessionMessageView]
    next_cursor: str | None
    has_more: bool


class ChatReply(_Closed):
    message: str
    #: The ledger's id of the exchange.
    interaction_id: str
    agent_id: str


class SessionDelta(_Closed):
    type: Literal["delta"]
    text: str


class SessionDone(_Closed):
    """The reply is complete and stored in the session's history."""

    type: Literal["done"]
    agent_id: str
    interaction_id: str
    message: str


class SessionStreamError(_Closed):
    type: Literal["error"]
    error: StreamErrorDetail


class SessionStreamData(
    RootModel[Annotated[SessionDelta | SessionDone | SessionStreamError, Field(discriminator="type")]]
):
    """The data of a session stream event (``delta``, ``done`` or ``error``)."""


ADMIN_MODELS: tuple[type[BaseModel], ...] = (
    PrincipalView,
    TenantView,
    TenantList,
    UserView,
    UserList,
    UserDeleted,
    KeyView,
    KeyList,
    KeyCreated,
    AuditEventList,
    JobView,
    JobList,
    PromptCreate,
    PromptVersionCreate,
    LabelMove,
    PromptClone,
    PromptView,
    PromptList,
    PromptVersionView,
    PromptVersionList,
    PromptPlaintext,
    LabelMoved,
    SessionStart,
    SessionEnd,
    SessionChat,
    AgentSession,
    AgentSessionList,
    SessionHistory,
    ChatReply,
    SessionStreamData,
)
