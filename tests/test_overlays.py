"""segtrain.overlays (colour blends, multilabel class maps) and records.jsonable."""

import json
import math

import torch

from segtrain.engine.records import jsonable
from segtrain.overlays import PALETTE, blend, highest_positive


def test_highest_positive_draws_the_best_positive_channel_and_0_where_none_is_positive():
    logits = torch.tensor([[[2.0, -1.0, 0.5]], [[3.0, -2.0, -0.1]]])  # C=2 x H=1 x W=3
    assert highest_positive(logits, 0).tolist() == [[2, 0, 1]]
    target = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [1, 0]]])  # N=2 x C=2 x W=2 (0/1): first positive
    assert highest_positive(target.float(), 1).tolist() == [[2, 1], [2, 0]]


def test_blend_colours_only_labelled_pixels():
    image = torch.full((3, 1, 2), 0.2)
    out = blend(image, torch.tensor([[0, 1]]), alpha=0.5)
    assert torch.equal(out[:, 0, 0], image[:, 0, 0])
    assert torch.allclose(out[:, 0, 1], 0.5 * image[:, 0, 1] + 0.5 * PALETTE[1])


def test_jsonable_turns_nan_into_null_in_dicts_lists_and_tuples():
    value = {"a": math.nan, "b": [1.0, math.nan, {"c": (math.nan, 2)}], "d": "x"}
    expected = {"a": None, "b": [1.0, None, {"c": [None, 2]}], "d": "x"}
    assert json.loads(json.dumps(jsonable(value), allow_nan=False)) == expected
