"""A torch Dataset over btseg Samples: THE preprocessing plus light augmentation.

Inputs go through :func:`btseg.preprocess.preprocess` (the same code the runtime
and export calibration use); masks are resized with nearest neighbour.  Augmentation:

* horizontal flip only: a vertical flip would put the transducer at the bottom and turn
  posterior shadowing/enhancement (a malignant/benign cue) into its opposite;
* intensity jitter on the raw uint8 image (gain ``1 +- j``, offset ``+- j`` of full
  scale) before preprocessing, which mimics cart gain settings.

Random draws come from ``(seed, epoch, index)``, not from a global generator, so an
epoch's augmentation is the same whatever the number of workers or processes, and a
resumed run sees the same images as an uninterrupted one.

:class:`GlobalBatchSampler` deals the batches: one permutation of the whole training set
per ``(seed, epoch)`` cut into *global* batches, each split into equal per-rank slices.
One process or N see the same global batches in the same order, so every epoch has the
same images (and class mix) whatever the world size; the data itself comes from the
duplicate-aware ``splits.json`` that every rank reads.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from btseg.data.sample import Sample
from btseg.preprocess import PreprocessSpec, preprocess, resize_mask
from btseg.distill.losses import LABEL_INDEX
from btseg.errors import ConfigError


class SegDataset(Dataset):
    """``(image 1xHxW float32, mask 1xHxW float32, label code, index)`` per sample.

    Args:
        samples: any sequence of :class:`Sample` (a :class:`btseg.data.Dataset` or a list).
        spec: the preprocessing spec of the model being trained.
        augment: apply flip + jitter (training); off for validation.
        hflip, jitter: see the module docstring.
        seed: base of the per-(epoch, index) random draws.
        cache: keep decoded samples in memory (decode PNGs once, not every epoch).
        repeat: show every sample this many times per epoch, each with its own draw (the
            small malignant set gets as many optimiser steps per epoch as the benign one).
    """

    def __init__(self, samples: Sequence[Sample], spec: PreprocessSpec, augment: bool = False,
                 hflip: bool = True, jitter: float = 0.1, seed: int = 0, cache: bool = True,
                 repeat: int = 1) -> None:
        self.samples = samples
        self.spec = spec
        self.augment = augment
        self.hflip = hflip
        self.jitter = float(jitter)
        self.seed = int(seed)
        self.epoch = 0
        self.repeat = max(1, int(repeat))
        self._cache: dict[int, Sample] | None = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation draws (call before building the iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples) * self.repeat

    def sample(self, i: int) -> Sample:
        i %= len(self.samples)
        if self._cache is None:
            return self.samples[i]
        if i not in self._cache:
            self._cache[i] = self.samples[i]
        return self._cache[i]

    def labels(self) -> list[str]:
        """Labels without decoding images when the sequence knows them."""
        labels = getattr(self.samples, "labels", None) or [s.label for s in self.samples]
        return list(labels) * self.repeat

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        s = self.sample(i)
        image = s.image
        flip = False
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if self.jitter > 0:
                gain = 1 + rng.uniform(-self.jitter, self.jitter)
                offset = rng.uniform(-self.jitter, self.jitter) * 255
                image = np.clip(image.astype(np.float32) * gain + offset, 0, 255).round().astype(np.uint8)
            flip = self.hflip and rng.random() < 0.5
        x = preprocess(image, self.spec)
        y = resize_mask(s.mask, self.spec.size)[None].astype(np.float32)
        if flip:
            x, y = x[..., ::-1], y[..., ::-1]
        return (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)),
                LABEL_INDEX[s.label], i)


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's slice of every global batch (a ``batch_sampler`` for the DataLoader).

    Args:
        n: samples in the training set.
        global_batch: samples per optimiser step over all ranks; a multiple of ``world_size``.
        world_size, rank: the DDP world.
        seed: with the epoch (:meth:`set_epoch`), the seed of the permutation.

    An incomplete last global batch is dropped (every rank must see as many samples as the
    others in every step: DDP averages gradients, so equal slices make the average the
    mean over the global batch, as in one process).  A set smaller than one global batch
    gives one batch of ``n // world_size`` samples per rank.
    """

    def __init__(self, n: int, global_batch: int, world_size: int = 1, rank: int = 0, seed: int = 0) -> None:
        if global_batch % world_size:
            raise ConfigError(f"batch_size={global_batch}: the global batch must be a multiple of the "
                              f"{world_size} processes (each takes batch_size / processes)")
        if n < world_size:
            raise ConfigError(f"{n} training sample(s) for {world_size} processes: expected at least one each")
        self.n, self.world_size, self.rank, self.seed = int(n), int(world_size), int(rank), int(seed)
        self.global_batch = min(int(global_batch), self.n - self.n % self.world_size)
        self.local_batch = self.global_batch // self.world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.global_batch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        lo = self.rank * self.local_batch
        for b in range(len(self)):
            batch = perm[b * self.global_batch:(b + 1) * self.global_batch]
            yield batch[lo:lo + self.local_batch]
