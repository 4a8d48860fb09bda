"""Errors the gateway answers with. Each carries its HTTP status and is rendered in the caller's
dialect (OpenAI or Anthropic error JSON) by ``bastion.api.errors``; no other exception type
ever reaches a client."""

from __future__ import annotations


class BastionError(Exception):
    status: int = 500
    #: OpenAI-style error ``type``; the Anthropic renderer maps status to its own vocabulary.
    error_type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(BastionError):
    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(BastionError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(BastionError):
    status = 403
    error_type = "permission_error"
    code = "permission_denied"


class NotFound(BastionError):
    status = 404
    error_type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(BastionError):
    status = 409
    error_type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(BastionError):
    status = 413
    error_type = "request_too_large"
    code = "request_too_large"


class UnsupportedMediaType(InvalidRequest):
    """A document (or upload) in a format nothing here reads."""

    status = 415
    code = "unsupported_format"


class BudgetExceeded(BastionError):
    """A spend budget (per request, daily or monthly) would be exceeded; Anthropic renders 402 as billing_error."""

    status = 402
    error_type = "budget_exceeded"
    code = "budget_exceeded"


class RateLimited(BastionError):
    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s
        if retry_after_s is not None:
            self.headers.setdefault("retry-after", str(max(1, round(retry_after_s + 0.499))))


class UpstreamError(BastionError):
    """The upstream answered with an error or an unusable body (502 unless told otherwise)."""

    status = 502
    error_type = "api_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: float | None = None,
        upstream_status: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.upstream_status = upstream_status


class UpstreamUnavailable(UpstreamError):
    """No deployment can take the call now: breakers open, queue full, upstream 503."""

    status = 503
    error_type = "overloaded_error"
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"
    code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    status = 502
    code = "upstream_connection_error"


class ClientClosedRequest(BastionError):
    """The client went away before its request was complete (nginx's 499); nobody reads the answer."""

    status = 499
    error_type = "invalid_request_error"
    code = "client_closed_request"


class ServerOverloaded(BastionError):
    """This worker is at its connection or request limit; the client should retry shortly."""

    status = 503
    error_type = "overloaded_error"
    code = "server_overloaded"


class RequestTimeout(BastionError):
    """The client did not send its request (headers or body) in time."""

    status = 408
    error_type = "invalid_request_error"
    code = "request_timeout"
