"""Model registry: a name plus JSON-able kwargs rebuilds a model.

Example::

    >>> from btseg.models import create_model
    >>> m = create_model("simplified_unet", widths=[8, 16, 32])
    >>> create_model("nope")
    Traceback (most recent call last):
    btseg.errors.ConfigError: unknown model 'nope'; known: attention_unet, simplified_unet, ...
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch.nn as nn

from btseg.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
T = TypeVar("T")


def register_model(name: str) -> Callable[[T], T]:
    """Class or function decorator: make ``name`` buildable by :func:`create_model`."""

    def deco(ctor: T) -> T:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} registered twice")
        _REGISTRY[name] = ctor  # type: ignore[assignment]
        ctor.model_name = name  # type: ignore[attr-defined]
        return ctor

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names or arguments raise :class:`ConfigError`."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name!r}: bad arguments {kwargs} ({e})") from e
