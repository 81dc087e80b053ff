"""The README's Python snippets run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_twenty_lines_and_fit_snippet(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0] + blocks[1], "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "[False  True  True False]"
    assert (tmp_path / "xor.npz").exists() and (tmp_path / "history.png").exists()


def test_readme_commands_match_ci():
    text = README.read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)
    assert len(commands) == 2
    assert commands[1] in (README.parent / ".ci" / "run").read_text()
