"""Per-sample augmentation seeds (segtrain.data.sample_seeds): the sampler's seeds, and folder-data-set batches that
do not depend on the loader's workers (their number, or whether they persist across epochs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from segtrain.data import DistanceMaps, build_dataset, build_loader
from segtrain.data.folder import FolderDataset
from segtrain.data.sample_seeds import SeededSampler
from segtrain.data.transforms import build_transforms, seed_pipeline
from tests._data_fixtures import folder_kwargs, make_folder

AUGMENT = {
    "train": [{"name": "RandomCrop", "height": 16, "width": 16}, {"name": "HorizontalFlip", "p": 0.5}],
    "val": [],
}


# ------------------------------------------------------------------------------------------------ the sampler
def test_seeds_are_a_function_of_seed_rank_and_epoch_drawn_by_position():
    sampler = SeededSampler(SequentialSampler(range(10)), seed=3)
    first = list(sampler)
    assert first == list(sampler)  # the same epoch again: the same seeds
    expected = np.random.default_rng([3, 0, 0]).integers(0, 2**32, size=10).tolist()
    assert first == list(zip(range(10), expected, strict=True))
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for i, _ in second] == list(range(10)) and {s for _, s in second}.isdisjoint({s for _, s in first})
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(SeededSampler(SequentialSampler(range(10)), seed=4)) != first
    assert list(SeededSampler(SequentialSampler(range(10)), seed=3, rank=1)) != first


def test_wrapped_sampler_keeps_the_inner_order_length_and_generator():
    generator = torch.Generator().manual_seed(7)
    inner = RandomSampler(range(13), generator=generator)
    sampler = SeededSampler(inner, seed=0)
    assert len(sampler) == 13 and sampler.generator is generator
    order = [i for i, _ in sampler]
    assert order == list(RandomSampler(range(13), generator=torch.Generator().manual_seed(7)))
    assert SeededSampler(SequentialSampler(range(3)), seed=0).generator is None


def test_set_epoch_is_forwarded_to_a_distributed_sampler():
    sampler = SeededSampler(DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=True, seed=5), seed=5)
    sampler.set_epoch(3)
    reference = DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=True, seed=5)
    reference.set_epoch(3)
    assert sampler.inner.epoch == 3 and [i for i, _ in sampler] == list(reference)
    assert len(sampler) == len(reference) == 5


def test_a_sampler_longer_than_its_length_is_an_error():
    class Liar(SequentialSampler):
        def __len__(self) -> int:
            return 2

    with pytest.raises(RuntimeError, match="Liar yielded more indices than its length 2"):
        list(SeededSampler(Liar(range(3)), seed=0))


# ------------------------------------------------------------------------------------------- the pipelines
def test_a_reseeded_pipeline_draws_its_transforms_from_one_stream():
    """albumentations' own set_random_seed gives two p=0.5 flips the same draw, so they flip together."""
    flips = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "VerticalFlip", "p": 0.5}]
    pipeline = build_transforms(flips, seed=0)
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    outcomes = set()
    for seed in range(64):
        seed_pipeline(pipeline, seed)
        out = pipeline(image=image)["image"]
        again = (seed_pipeline(pipeline, seed), pipeline(image=image)["image"])[1]
        assert np.array_equal(out, again)
        outcomes.add((bool(out[0, 0] in (3, 15)), bool(out[0, 0] in (12, 15))))  # (h-flipped, v-flipped)
    assert outcomes == {(False, False), (True, False), (False, True), (True, True)}


# --------------------------------------------------------------------------------------------- the loaders
def _train_set(tmp_path) -> FolderDataset:
    make_folder(tmp_path, splits=("train",), n=7, size=(32, 40))
    return FolderDataset(**folder_kwargs(tmp_path, split="train", augment=AUGMENT))


def _epochs(loader: DataLoader, epochs: int = 2) -> list[list[dict]]:
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # as the trainer does at every epoch's start
        out.append(list(loader))
    return out


def _assert_same(a: list[list[dict]], b: list[list[dict]]) -> None:
    for x_epoch, y_epoch in zip(a, b, strict=True):
        for x, y in zip(x_epoch, y_epoch, strict=True):
            assert x["id"] == y["id"]
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])


def test_train_batches_do_not_depend_on_the_workers(tmp_path):
    ds = _train_set(tmp_path)

    def loader(workers: int, persistent: bool = False) -> DataLoader:
        return build_loader(
            ds, batch_size=3, num_workers=workers, persistent_workers=persistent, shuffle=True, drop_last=True, seed=9
        )

    main = _epochs(loader(0))
    _assert_same(main, _epochs(loader(2)))
    persistent = loader(2, persistent=True)
    _assert_same(main, _epochs(persistent))
    assert persistent._iterator is not None  # the same two workers served both epochs
    first, second = main
    assert [b["id"] for b in first] != [b["id"] for b in second]  # reshuffled
    crops = [{i: image for b in epoch for i, image in zip(b["id"], b["image"], strict=True)} for epoch in main]
    common = crops[0].keys() & crops[1].keys()
    assert common and any(not torch.equal(crops[0][i], crops[1][i]) for i in common)  # new crops each epoch


def test_shuffle_order_comes_from_the_checkpointed_generator_alone(tmp_path):
    """The loader's own generator also gives each new iterator its workers' base seed (a persistent one draws
    it only once): the sampler shuffles with a generator of its own, the one the trainer checkpoints."""
    ds = _train_set(tmp_path)
    loader = build_loader(ds, batch_size=2, shuffle=True, seed=4)
    assert isinstance(loader.sampler, SeededSampler) and loader.sampler.generator is not loader.generator
    reference = RandomSampler(range(len(ds)), generator=torch.Generator().manual_seed(4))
    for _ in range(2):
        assert [b["id"] for b in loader] == [[ds.ids[i] for i in pair] for pair in _pairs(list(reference))]
    # the trainer saves and restores this generator: restoring it replays the order
    state = loader.sampler.generator.get_state()
    order = [b["id"] for b in loader]
    loader.sampler.generator.set_state(state)
    assert [b["id"] for b in loader] == order


def _pairs(order: list[int]) -> list[list[int]]:
    return [order[i : i + 2] for i in range(0, len(order), 2)]


def test_only_data_sets_that_take_seeds_get_them(tmp_path):
    ds = _train_set(tmp_path)
    unshuffled = build_loader(ds, batch_size=2, shuffle=False)
    assert isinstance(unshuffled.sampler, SeededSampler) and isinstance(unshuffled.sampler.inner, SequentialSampler)
    wrapped = build_loader(DistanceMaps(ds), batch_size=2, shuffle=True, seed=1)  # TargetMaps forwards the flag
    assert isinstance(wrapped.sampler, SeededSampler)
    plain = build_loader(ds, batch_size=2, shuffle=True, seed=1)
    for x, y in zip(wrapped, plain, strict=True):
        assert torch.equal(x["image"], y["image"]) and "distance" in x
    shapes = build_dataset("shapes", split="train", length=4, image_size=32)
    assert isinstance(build_loader(shapes, batch_size=2, shuffle=True).sampler, RandomSampler)
