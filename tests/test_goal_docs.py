"""The README's goal reference and the udev rules agree with the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from cellcall.goal import HANGUP_KEYS, KEYS, parse_goal

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
RULES = ROOT / "deploy" / "99-cellcall-sim7600.rules"


def _section(title: str) -> str:
    """The lines under a `## title` heading up to the next one, skipping headings inside code fences."""
    lines, inside, fenced = [], False, False
    for line in README.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("## ") and not fenced:
            inside = line == f"## {title}"
        elif inside:
            lines.append(line)
    assert lines, f"README has no section {title!r}"
    return "\n".join(lines)


def test_readme_goal_example_is_valid_and_matches_the_demo_goal() -> None:
    example = re.search(r"```markdown\n(.*?)```", _section("Goal files"), re.S)
    assert example is not None
    goal = parse_goal(example.group(1), "dentist")
    demo = (ROOT / "goals" / "examples" / "dentist.md").read_text(encoding="utf-8")
    assert parse_goal(demo, "dentist").instructions() == goal.instructions()


def test_readme_goal_table_names_every_key() -> None:
    first_cells = [row.split("|")[1] for row in _section("Goal files").splitlines() if row.startswith("| `")]
    named = {key.split(".")[0] for cell in first_cells for key in re.findall(r"`([a-z_.]+)`", cell)}
    assert named == set(KEYS)
    for key in HANGUP_KEYS:
        assert f"`hangup.{key}`" in _section("Goal files")


_PAIR = re.compile(r'^\s*([A-Z_]+)(\{[A-Za-z_]+\})?\s*(==|!=|\+=|=)\s*"([^"]*)"\s*$')


def test_udev_rules_are_well_formed_and_name_interfaces_02_and_04() -> None:
    rules = [line for line in RULES.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assignments: dict[str, list[str]] = {}
    for rule in rules:
        for pair in rule.split(", "):
            match = _PAIR.match(pair)
            assert match, f"not a udev key/value pair: {pair!r} in {rule!r}"
            key, attr, op, value = match.groups()
            assignments.setdefault(f"{key}{attr or ''}{op}", []).append(value)
    assert "ID_MM_DEVICE_IGNORE" in " ".join(rules) and "1" in assignments["ENV{ID_MM_DEVICE_IGNORE}="]
    assert assignments["ATTRS{idVendor}=="] == ["1e0e"] and assignments["ATTRS{idProduct}=="] == ["9001"]
    assert sorted(assignments["ENV{ID_USB_INTERFACE_NUM}=="]) == ["02", "04"]
    assert sorted(assignments["SYMLINK+="]) == ["cellcall-at", "cellcall-audio"]
    labels = assignments["LABEL="]
    assert set(assignments["GOTO="]) == set(labels)
