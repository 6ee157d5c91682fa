"""docs/tutorial.md: every `repro` command in its bash blocks runs, in order, on tests/data/tutorial/."""

import json
import re
import shlex
import shutil
from pathlib import Path

ROOT = Path(__file__).parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
DATA = Path(__file__).parent / "data" / "tutorial"


def commands():
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.startswith("repro ")]


def test_the_tutorial_has_the_whole_path():
    names = [command[1] for command in commands()]
    assert names == ["tau", "import", "import", "import", "import", "combine", "fit", "advise", "warn", "warn"]


def test_every_tutorial_command_runs(repro, tmp_path, monkeypatch):
    for item in DATA.iterdir():
        shutil.copy(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    outputs = []
    for command in commands():
        code, out, err = repro(*command[1:])
        assert code == 0, f"{' '.join(command)}: {err}"
        outputs.append(out)
    assert outputs[0].startswith("τ = 4 optimizer steps per rollout batch")
    constants = json.loads((tmp_path / "constants.json").read_text())
    assert constants["c_loc"] > 0 and constants["c_hor"] > 0
    assert "η_max =" in outputs[7]
    assert "ALARM at step" in outputs[-1] and "suggested η" in outputs[-1]
    assert json.loads((tmp_path / "thresholds.json").read_text())["clip_frac"] > 0
