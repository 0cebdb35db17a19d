"""Fuzzing goal frontmatter with hypothesis: any text gives a Goal or a clean GoalError, never a traceback."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcall.goal import KEYS, Goal, GoalError, parse_goal

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["+14155550132", "911", "2026-11-25", "2026-11-25T09:00:00Z", "on", "~", "hangup"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)
frontmatter = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=15), values, max_size=8)
yaml_noise = st.text(alphabet=st.sampled_from(list("abc:-[]{}!&*|>'\"#%@`,?\n +0123456789.")), max_size=200)


def _check(text: str) -> None:
    try:
        goal = parse_goal(text, "fuzz")
    except GoalError as error:
        assert error.problems, "a GoalError must name at least one problem"
        assert str(error).strip()
    else:
        assert isinstance(goal, Goal) and goal.objective
        goal.instructions()


@pytest.mark.slow
@FUZZ
@given(frontmatter)
def test_structured_frontmatter_never_raises_anything_else(data: dict) -> None:
    _check("---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\nbody\n")


@pytest.mark.slow
@FUZZ
@given(yaml_noise)
def test_yaml_noise_never_raises_anything_else(noise: str) -> None:
    _check("---\n" + noise + "\n---\n")


@pytest.mark.slow
@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    _check(text)
    _check("---\n" + text)
