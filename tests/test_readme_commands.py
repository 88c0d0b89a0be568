"""#19: every command of README.md, copied as written into a fresh shell, runs
(``tools/check_readme.py``: all parsed, the quick ones run in a fresh copy of the checkout; the
long ones with ``-m slow``)."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))
import check_readme as cr  # noqa: E402

BAD = '''
```bash
.venv/bin/python -m benchmarks.train configs/aeroseg/nope.py --scale mini   # a config that is not there
.venv/bin/python -m benchmarks.test configs/aeroseg/aeroseg_vitb16_isaid.py --scael mini
python -m benchmarks.nothing
./run_all.sh --tables 3 --bogus
python -c "import sys; sys.exit(3)"
```

Inline too: `./run_all.sh --dry-run --datasets nowhere`.

```python
from aeroseg.apis import init_modle
```
'''


def test_extract_joins_continuations_drops_comments_and_dedupes():
    md = ('```bash\n./run_all.sh --parallel 2   # mini world\n```\n'
          'text `./run_all.sh --parallel 2` and `--scale mini` (not a command)\n'
          '```\n$ python -m aeroseg.infer A \\\n    --images "a b.tif" --out p#q\nout put\n```\n')
    cmds = cr.extract(md)
    assert [(c.text, c.lines) for c in cmds] == [
        ('./run_all.sh --parallel 2', [2, 4]),
        ('python -m aeroseg.infer A --images "a b.tif" --out p#q', [6])]
    assert cmds[0].mode == 'long' and cmds[0].variant == '--dry-run'


def test_every_readme_command_is_found_and_classified():
    cmds = cr.extract((REPO / 'README.md').read_text())
    texts = [c.text for c in cmds]
    # the ones a newcomer types first are among them, and run in CI
    assert './run_all.sh --dry-run --scale full' in texts
    assert any(t.startswith('.venv/bin/python -m benchmarks.train') and '--scale mini' in t for t in texts)
    run = [c for c in cmds if c.mode == 'run']
    assert len(run) >= 2
    for c in cmds:  # whatever is not run says why
        assert c.mode == 'run' or c.reason, c


def test_broken_commands_fail_with_the_reason(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(BAD)
    cmds = cr.check(readme, run='cheap', log=lambda *a: None)
    assert not any(c.ok for c in cmds), cr.report(cmds)
    train, test, nomod, runner, code, inline, snippet = (' '.join(c.detail) for c in cmds)
    assert 'configs/aeroseg/nope.py: no such file or folder in the repository' in train
    assert 'arguments do not parse (exit 2)' in test                 # --scael
    assert nomod == 'no module benchmarks.nothing'
    assert 'arguments do not parse (exit 2)' in runner               # --bogus
    assert 'exit 3' in code                                          # parsed, then run: fails
    assert 'exit 2' in inline                                        # --datasets nowhere
    assert "ImportError: cannot import name 'init_modle'" in snippet
    report = cr.report(cmds)
    assert report.endswith(f'{len(cmds)} commands: 0 ok, {len(cmds)} failed')


def test_readme_commands_parse_and_the_quick_ones_run():
    cmds = cr.check(run='cheap', log=lambda *a: None)
    assert all(c.ok for c in cmds), cr.report(cmds)
    ran = [c for c in cmds if c.result.startswith('ran in')]
    assert len(ran) >= 2, cr.report(cmds)


@pytest.mark.slow
def test_readme_long_commands_run():  # ~20 min on 2 cores: the mini training and test as written, dry runs
    cmds = cr.check(run='all', log=lambda *a: None)
    assert all(c.ok for c in cmds), cr.report(cmds)


def test_a_command_past_its_timeout_is_stopped_with_its_children(tmp_path):
    import subprocess
    mark = f'sleep 3{len(str(tmp_path)) % 7}.5'  # a process name of this test only
    c = cr.Command([1], f'{mark} & {mark}')
    cr.run_one(c, tmp_path, timeout=1)
    assert not c.ok and c.detail == [f'$ {mark} & {mark}: still running after 1 s']
    left = subprocess.run(['pgrep', '-f', f'^{mark}$'], capture_output=True, text=True).stdout
    assert left == ''
