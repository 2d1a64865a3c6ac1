import pytest

from segtrain.registry import Registry


def make() -> Registry:
    reg = Registry("widget")

    @reg.register("dice", aliases=["sorensen"])
    class Dice:
        def __init__(self, smooth: float = 1.0, *, batch: bool = True) -> None:
            self.smooth, self.batch = smooth, batch

    return reg


def test_build_passes_keywords_and_aliases_resolve():
    reg = make()
    obj = reg.build("dice", smooth=2.0, batch=False)
    assert (obj.smooth, obj.batch) == (2.0, False)
    assert reg.get("sorensen") is reg.get("dice")
    assert reg.names() == ["dice", "sorensen"]


def test_unknown_name_lists_known_names_and_suggests_the_closest():
    with pytest.raises(KeyError, match=r"Unknown widget 'dise'.*Did you mean 'dice'.*Known widgets: dice, sorensen"):
        make().get("dise")


def test_unknown_keyword_lists_accepted_ones():
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['smoth'\]; accepted: smooth, batch"):
        make().build("dice", smoth=1.0)


def test_registering_a_name_twice_is_refused():
    reg = make()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("dice")(object)
