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


def test_keywords_passed_on_through_kwargs_are_listed_once_base_first():
    reg = Registry("widget")

    class Base:
        def __init__(self, *, mode: str = "binary", ignore_index: int | None = None) -> None:
            self.mode, self.ignore_index = mode, ignore_index

    @reg.register("child")
    class Child(Base):
        def __init__(self, *, mode: str = "multiclass", smooth: float = 1.0, **base: object) -> None:
            super().__init__(mode=mode, **base)

    assert reg.accepted_keywords("child") == ["mode", "ignore_index", "smooth"]
    with pytest.raises(TypeError, match=r"\['smoth'\]; accepted: mode, ignore_index, smooth$"):
        reg.build("child", smoth=1.0)


def test_a_class_that_states_its_signature_accepts_the_keywords_named_there():
    import inspect

    reg = Registry("widget")

    @reg.register("pair")
    class Pair:
        __signature__ = inspect.Signature([inspect.Parameter("ce", inspect.Parameter.KEYWORD_ONLY, default=None)])

        def __init__(self, **parts: object) -> None:
            self.parts = parts

    assert reg.build("pair", ce={"weight": [1, 2]}).parts == {"ce": {"weight": [1, 2]}}
    with pytest.raises(TypeError, match=r"\['dice'\]; accepted: ce$"):
        reg.build("pair", dice={})
