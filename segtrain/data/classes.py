"""The classes of a folder data set: what its masks hold (a classes file or ``source_classes``) and which
model channels they become in each mode (all of them, a binary foreground, or multilabel channel groups)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segtrain.modes import BINARY, MULTICLASS, MULTILABEL


@dataclass
class ClassSpec:
    """``names``: one per model channel (None: the data set's defaults); ``num_source``: classes stored in
    the masks (indices 0..num_source-1); ``foreground``: binary mode's mask classes that form the foreground
    (None: the masks are 0/1 already); ``labels``: multilabel mode's mask classes per channel."""

    names: list[str] | None
    num_source: int
    foreground: list[int] | None = None
    labels: list[list[int]] | None = None


def read_class_names(path: Path) -> list[str]:
    """Class names from a text file, one per line in index order (blank lines and # comments skipped)."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    if not names:
        raise ValueError(f"Class file {path} lists no class names; expected one name per line.")
    return names


def resolve_classes(
    root: Path,
    mode: str,
    num_classes: int,
    class_names: Sequence[str] | None,
    classes_file: str | None,
    source_classes: Sequence[str] | None,
    foreground_classes: Sequence[int | str] | None,
    labels: Sequence[Sequence[int | str]] | None,
) -> ClassSpec:
    """The ClassSpec of a folder data set at ``root``; errors name the config key and what was expected."""
    file_names = None
    file_path = root / classes_file if classes_file else None
    if file_path is not None and file_path.is_file():
        file_names = read_class_names(file_path)
    if source_classes is not None:
        source = [str(c) for c in source_classes]
        if file_names is not None and len(file_names) != len(source):
            raise ValueError(
                f"dataset.source_classes has {len(source)} names but {file_path} lists {len(file_names)} "
                f"({', '.join(file_names)}); make them agree or remove one."
            )
    else:
        source = file_names
    where = f"{file_path}" if file_names is not None else "dataset.source_classes"
    if foreground_classes is not None and mode != BINARY:
        raise ValueError(f"dataset.foreground_classes applies to mode=binary, got mode={mode}.")
    if labels is not None and mode != MULTILABEL:
        raise ValueError(f"dataset.labels applies to mode=multilabel, got mode={mode}.")

    if mode == MULTICLASS:
        if source is not None and len(source) != num_classes:
            raise ValueError(
                f"dataset.num_classes={num_classes} but {where} lists {len(source)} classes "
                f"({', '.join(source)}); num_classes must equal the number of classes in the masks."
            )
        return ClassSpec(list(class_names) if class_names is not None else source, int(num_classes))

    if mode == BINARY and foreground_classes is None:
        if source is not None and len(source) != 2:
            raise ValueError(
                f"dataset.mode=binary reads masks as 0 = background, 1 = foreground, but {where} lists "
                f"{len(source)} classes ({', '.join(source)}); set dataset.foreground_classes to the "
                "classes that form the foreground."
            )
        if class_names is not None:
            return ClassSpec(list(class_names), 2)
        return ClassSpec([source[1]] if source is not None else ["foreground"], 2)

    if source is None:
        raise ValueError(
            f"dataset.{'foreground_classes' if mode == BINARY else 'labels'} selects classes "
            f"of the masks, so the mask classes must be known: add {file_path or 'a classes file'} "
            "or set dataset.source_classes."
        )

    def to_index(c: int | str, key: str) -> int:
        if isinstance(c, str) and not c.isdigit():
            if c not in source:
                raise ValueError(f"dataset.{key}: class {c!r} is not one of {source} ({where}).")
            return source.index(c)
        i = int(c)
        if not 0 <= i < len(source):
            raise ValueError(f"dataset.{key}: class index {i} is outside 0..{len(source) - 1} ({where}).")
        return i

    if mode == BINARY:
        foreground = sorted({to_index(c, "foreground_classes") for c in foreground_classes})
        if not foreground:
            raise ValueError("dataset.foreground_classes is empty; list at least one class.")
        names = list(class_names) if class_names is not None else ["+".join(source[i] for i in foreground)]
        return ClassSpec(names, len(source), foreground=foreground)

    if labels is None:
        raise ValueError(
            "dataset.mode=multilabel builds its channels from an index mask: set dataset.labels to one "
            "list of classes per channel, e.g. labels: [[1, 2], [3]]."
        )
    if len(labels) != num_classes:
        raise ValueError(f"dataset.labels has {len(labels)} channel lists but dataset.num_classes={num_classes}.")
    groups = [sorted({to_index(c, "labels") for c in group}) for group in labels]
    names = list(class_names) if class_names is not None else ["+".join(source[i] for i in g) for g in groups]
    return ClassSpec(names, len(source), labels=groups)
