"""What every model family shares: where weights come from, the clear message when they are absent,
the device and dtype, batching, and the components an adaptation combines.

Weights come from a local folder or the Hugging Face cache (``HF_HOME``); online, a Hub id is
downloaded by `transformers` as usual. Offline (``HF_HUB_OFFLINE=1``) a model that is in neither
place stops with one message that says how to get it, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wikihow_tiir.evaluate.base import Role
from wikihow_tiir.evaluate.clip import ModelUnavailableError

# the adaptations of §4 / Table 3 (``--adapt``); a family lists those it can run
ADAPTATIONS = ("text", "captions", "merged-image", "fusion", "screenshot")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def local_only(name: str) -> bool:
    """Load without asking the Hub: a folder, or offline mode."""
    return offline() or Path(name).is_dir()


def unavailable(prefix: str, name: str, exc: BaseException) -> ModelUnavailableError:
    """The one message for weights that cannot be loaded (deterministic: the cause's text, no addresses)."""
    if Path(name).is_dir():
        return ModelUnavailableError(f"{prefix}:{name}: the folder does not hold a loadable model "
                                     f"({type(exc).__name__}: {_first_line(exc)})")
    where = ("the Hub cannot be reached (offline: HF_HUB_OFFLINE=1)" if offline() else "the download failed")
    return ModelUnavailableError(
        f"weights for {prefix}:{name} are not available: they are not in a local folder or the local Hugging "
        f"Face cache, and {where}. Download them on a connected machine (huggingface-cli download {name}) "
        f"or pass a folder: --model {prefix}:/path/to/model ({type(exc).__name__}: {_first_line(exc)})")


def needs_remote_code(prefix: str, name: str, exc: BaseException) -> ModelUnavailableError | None:
    """The message for a model whose code ships with its weights, when ``--trust-remote-code`` is off."""
    text = str(exc)
    if "trust_remote_code" in text or "custom code" in text:
        return ModelUnavailableError(
            f"{prefix}:{name} runs code that ships with its weights (transformers' trust_remote_code); "
            f"read that code, then pass --trust-remote-code to allow it")
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def load_or_explain(prefix: str, name: str, load: Callable[[], Any]) -> Any:
    """``load()``, with missing weights / code turned into :class:`ModelUnavailableError`."""
    try:
        return load()
    except ModelUnavailableError:
        raise
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise (needs_remote_code(prefix, name, exc) or unavailable(prefix, name, exc)) from exc


def torch_dtype(dtype: str, device: str, paper: str):
    """``auto``: the paper's dtype (``paper``) on CUDA, float32 elsewhere (CPUs lack fast fp16/bf16)."""
    import torch

    if dtype == "auto":
        dtype = paper if str(device).startswith("cuda") else "float32"
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, float32, float16 or bfloat16") from None


def batched(encode: Callable[[list], np.ndarray], items: Sequence, batch_size: int) -> np.ndarray:
    """``encode`` over ``items`` in batches, concatenated as float32."""
    parts = [np.asarray(encode(list(items[s:s + batch_size])), dtype=np.float32)
             for s in range(0, len(items), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def to_numpy(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@dataclass
class Family:
    """A loaded model's parts; :func:`wikihow_tiir.evaluate.families.adapt.assemble` combines them.

    ``text(texts, role)``, ``image(images)``, ``pair(texts, images, role)`` and ``page(images, role)``
    (an image-only input that knows the role, for screenshots) are set where the model can do it.
    ``joiner`` is how the paper's script for this family joins text positions.
    """

    spec: str
    default_adapt: str
    text: Any = None  # TextEncoder
    image: Any = None  # ImageEncoder
    pair: Any = None  # PairEncoder
    page: Any = None  # (images, role) -> vectors
    joiner: Callable[[Sequence[str | None]], str] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # shown in results: checkpoint, prompts, dtype ...

    def adaptations(self) -> list[str]:
        have = {"text": self.text is not None, "captions": self.text is not None,
                "merged-image": self.pair is not None,
                "fusion": self.text is not None and self.image is not None,
                "screenshot": self.page is not None or self.image is not None}
        return [a for a in ADAPTATIONS if have[a]]


class RoleText:
    """A TextEncoder from a function ``(texts, role) -> vectors``."""

    def __init__(self, name: str, fn: Callable[[Sequence[str], Role], np.ndarray]):
        self.name, self.fn = name, fn

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return self.fn(texts, role)


class Images:
    """An ImageEncoder from a function ``(images) -> vectors``."""

    def __init__(self, name: str, fn: Callable[[Sequence], np.ndarray]):
        self.name, self.fn = name, fn

    def encode_images(self, images: Sequence) -> np.ndarray:
        return self.fn(images)


class Pairs:
    """A PairEncoder from a function ``(texts, images, role) -> vectors``."""

    def __init__(self, name: str, fn: Callable[[Sequence[str], Sequence, Role], np.ndarray]):
        self.name, self.fn = name, fn

    def encode_pairs(self, texts: Sequence[str], images: Sequence, role: Role) -> np.ndarray:
        return self.fn(texts, images, role)
