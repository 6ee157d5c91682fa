"""Learning-rate policies on a store's grid (analysis/baselines.py): which η each policy runs and what it reached."""

import numpy as np
import pytest

from analysis.baselines import policy_outcomes
from analysis.events import collapse_events
from stores import sweep_dataset

TAUS, ETAS, SEEDS, STEPS = (1, 2), (1.0, 2.0, 4.0), 3, 40


def _store(with_val):
    """Every run healthy (reward 0.5) except every seed of the largest η at τ = 2 (reward 0 from step 5)."""
    reward = np.full((2, 3, SEEDS, STEPS), 0.5)
    reward[1, 2, :, 5:] = 0.0
    per_step = {"reward": reward}
    if with_val:
        val = np.full_like(reward, np.nan)
        val[..., ::10] = 0.25 + 0.1 * np.arange(3)[None, :, None, None]  # probes every 10 steps, last at 30
        per_step["val_reward"] = val
    return sweep_dataset(TAUS, ETAS, per_step)


@pytest.mark.parametrize("with_val, quality", [(True, "val_reward"), (False, "reward")])
def test_every_policy_reports_the_quality_it_read(with_val, quality):
    ds = _store(with_val)
    outcomes = policy_outcomes(ds, collapse_events(ds), advised=[1.5, 1.5])
    assert set(outcomes) == {"fixed η", "η/τ", "advisor"}
    rows = [row for rows in outcomes.values() for row in rows]
    assert rows and all(row["quality"] == quality for row in rows)
    advisor = outcomes["advisor"]
    assert [row["eta"] for row in advisor] == [1.0, 1.0]  # 1.5 snapped down to the grid
    expected = 0.25 if with_val else 0.5  # the last finite val_reward of η = 1, or the training reward
    assert [row["final"] for row in advisor] == pytest.approx([expected, expected])
    assert [row["collapse_rate"] for row in advisor] == [0.0, 0.0]
