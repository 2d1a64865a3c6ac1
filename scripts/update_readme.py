"""Regenerate the README's loss table from the loss registry (tests/test_loss_configs.py checks it)."""

from pathlib import Path

from segtrain.losses import loss_table_markdown

START, END = "<!-- loss-table:start -->\n", "<!-- loss-table:end -->"


def main() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + loss_table_markdown().rstrip() + "\n" + END + tail)
    print(f"updated the loss table in {readme}")


if __name__ == "__main__":
    main()
