"""Model registry: a name plus JSON-able kwargs rebuilds a model.

Example::

    >>> from btseg.models import create_model
    >>> m = create_model("simplified_unet", widths=[8, 16, 32])
    >>> create_model("nope")
    Traceback (most recent call last):
    btseg.errors.ConfigError: unknown model 'nope'; known: attention_unet, simplified_unet, ...
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

import torch.nn as nn

from btseg.errors import ConfigError
from btseg.contract import ModelContract

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
T = TypeVar("T")


def register_model(name: str) -> Callable[[T], T]:
    """Class or function decorator: make ``name`` buildable by :func:`create_model`."""

    def deco(ctor: T) -> T:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} registered twice")
        if not callable(getattr(ctor, "contract", None)):
            raise ConfigError(f"model {name!r} has no contract() (see btseg.contract)")
        _REGISTRY[name] = ctor  # type: ignore[assignment]
        ctor.model_name = name  # type: ignore[attr-defined]
        return ctor

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_contract(name: str, **kwargs: Any) -> ModelContract:
    """The :class:`ModelContract` of ``create_model(name, **kwargs)``, without building it.

    Raises:
        ConfigError: unknown name, arguments the constructor does not take, or values the
            model refuses (e.g. widths out of range), before any weight is allocated.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    ctor = _REGISTRY[name]
    try:
        inspect.signature(ctor).bind(**kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name!r}: bad arguments {sorted(kwargs)} ({e})") from e
    return ctor.contract(**kwargs)  # type: ignore[attr-defined]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names or arguments raise :class:`ConfigError`.

    The arguments are checked against the constructor's signature and the model's contract
    first; an error the constructor itself raises is the model's own and passes unchanged.
    """
    model_contract(name, **kwargs)
    return _REGISTRY[name](**kwargs)
