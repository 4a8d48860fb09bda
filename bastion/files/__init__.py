"""Files: the OpenAI Files API's uploads (``/v1/files``), stored on disk under the tenant and
creator that uploaded them, and the batch input format (``validate_batch_input``) that batches
read them with. docs/FILES.md."""

from bastion.files.batch_input import (
    BATCH_URLS,
    MAX_REQUESTS,
    BatchInputError,
    BatchInputSummary,
    BatchLine,
    iter_batch_lines,
    validate_batch_input,
)

__all__ = [
    "BATCH_URLS",
    "MAX_REQUESTS",
    "BatchInputError",
    "BatchInputSummary",
    "BatchLine",
    "iter_batch_lines",
    "validate_batch_input",
]
