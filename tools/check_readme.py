"""Every command of README.md, as a user copies it into a fresh shell (#19).

    python tools/check_readme.py [--run none|cheap|all] [--readme README.md] [--keep DIR] [--list]

Extracts the commands of the README: each line of its ``bash`` blocks (``\\`` continuations joined,
``# comments`` dropped), the ``$ `` lines of its plain blocks, its ``python`` blocks, and inline
spans that start with a program (```./run_all.sh ...```, ```python -m ...```). Then, in a copy of
the checkout as ``git`` sees it (tracked and unignored files: no ``work_dirs``, no outputs; its
``.venv`` = this interpreter's environment, on ``PATH`` first, as after
``source .venv/bin/activate``):

* every command is **parsed**: its entry point exists and accepts its arguments (the module's own
  argparse parser, stopped right after parsing; ``bash -n`` for the shell scripts), the repository
  paths it names (``configs/...``, ``tests/...``) exist, a Python snippet compiles and its
  imports resolve; placeholders (``CONFIG``, ``DIR``, ``<name>``) are filled in for this check;
* ``--run cheap`` (the default, what CI runs) also **runs** the commands classified ``run``, as
  written, with ``bash -c`` (exit code 0 within ``--timeout``);
* ``--run all`` also runs the ``long`` ones: as written, or their ``--dry-run`` where the README
  offers one (``./run_all.sh ...``), in README order (the mini test uses the mini training's
  checkpoint); ~20 min on 2 cores.

What is not run says why (``RULES``: a dataset, GPUs, a checkpoint of yours, or the time it takes).
A command no rule names is run: a new README command must run as written, quickly, or be
classified here.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ('./run_all.sh', './run_tests.sh', '.venv/bin/python', 'python', 'torchrun', 'aeroseg-infer')

# (pattern on the command, mode, why, what --run all runs instead); first match wins
RULES: Tuple[Tuple[str, str, str, Optional[str]], ...] = (
    (r'^torchrun\b', 'skip', 'needs several GPUs', None),
    (r'prepare \w+ --raw', 'skip', 'needs the raw download (README "Datasets")', None),
    (r'--data-root|/data/aeroseg', 'skip', 'needs the prepared datasets (README "Datasets")', None),
    (r'work_dirs/aeroseg_isaid/', 'skip', 'needs a full-scale trained checkpoint', None),
    (r'\bfinal_weights\.pth --scale mini', 'skip', 'the example of an output: needs a mini CAT-Seg '
     'checkpoint final_weights.pth in the current folder', None),
    (r'--spec my_spec\.py', 'skip', 'needs your own spec file', None),
    (r'<\w+>', 'skip', 'a template (<...> is yours to fill in)', None),
    (r'^python -m benchmarks\.run$', 'skip', 'names the runner (full scale: the datasets); '
     './run_all.sh runs it', None),
    (r'^\./run_tests\.sh', 'long', 'the whole test suite (~12 min; CI runs it)', '--collect-only -q'),
    (r'^\./run_all\.sh(?!.*--dry-run)', 'long', 'a benchmark run (the mini suite: ~1 h 30 min on 2 cores)',
     '--dry-run'),
    (r'benchmarks\.ov_transfer', 'long', '~1 h 20 min on 2 cores', None),
    (r'benchmarks\.speed', 'long', 'every method at full size and mini scale (~30 min on 2 cores)', None),
    (r'benchmarks\.infer_memory', 'long', 'a 10,000 x 10,000 scene (~2 min)', ''),
    (r'benchmarks\.figures', 'long', 'draws every figure (~1 min 20 s on 2 cores)', ''),
    (r'benchmarks\.train .*--scale mini', 'long', '200 training iterations (~10 min on 2 cores)', ''),
    (r'benchmarks\.test .*_mini/final_weights', 'long', 'tests the mini training\'s checkpoint (~3 min)', ''),
)
PLACEHOLDERS = {'CONFIG': 'configs/aeroseg/aeroseg_vitb16_isaid.py', '<name>': 'aeroseg', '<ds>': 'isaid'}
REPO_PATH = re.compile(r'^(configs|tests|aeroseg|benchmarks|baselines|tools|results)/')


@dataclass
class Command:
    lines: List[int]
    text: str
    kind: str = 'shell'            # shell | python
    mode: str = 'run'              # run | long | skip
    reason: str = ''
    variant: Optional[str] = None  # what --run all appends ('' = as written; None = not run)
    result: str = ''
    ok: bool = True
    seconds: float = 0.0
    detail: List[str] = field(default_factory=list)


# ------------------------------------------------------------------------------- extraction ---
def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` after a blank, outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in '\'"':
            quote = c
        elif c == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _is_command(text: str) -> bool:
    return any(text == p or text.startswith(p + ' ') for p in PROGRAMS)


def extract(markdown: str) -> List[Command]:
    """The README's commands in order (identical ones once, with every line they are on)."""
    out: List[Command] = []
    lines = markdown.splitlines()
    fence, lang, buf, start = None, '', [], 0
    i = 0
    while i < len(lines):
        raw = lines[i]
        m = re.match(r'^(\s*)(```+)(\w*)\s*$', raw)
        if m and fence is None:
            fence, lang, buf, start = m.group(2), m.group(3).lower(), [], i + 2
        elif m and fence is not None and m.group(2) == fence and not m.group(3):
            if lang == 'python':
                out.append(Command([start], '\n'.join(buf), kind='python'))
            fence = None
        elif fence is not None:
            buf.append(raw)
            shell_line = lang in ('bash', 'sh', 'shell', 'console') or (not lang and raw.startswith('$ '))
            if lang != 'python' and shell_line:
                text, n = (raw[2:] if raw.startswith('$ ') else raw), i
                while text.rstrip().endswith('\\') and n + 1 < len(lines):
                    n += 1
                    text = text.rstrip()[:-1].rstrip() + ' ' + lines[n].strip()
                text = strip_comment(text).strip()
                if text and _is_command(text):
                    out.append(Command([i + 1], text))
                buf.extend(lines[i + 1:n + 1])
                i = n
        else:
            for span in re.findall(r'`([^`]+)`', raw):
                span = span.strip()
                if _is_command(span) and (' ' in span or span.startswith('./')):  # not a bare `python`
                    out.append(Command([i + 1], span))
        i += 1
    merged: List[Command] = []
    for c in out:
        same = next((d for d in merged if d.text == c.text), None)
        if same:
            same.lines += c.lines
        else:
            merged.append(c)
    for c in merged:
        classify(c)
    return merged


def classify(c: Command) -> Command:
    if c.kind == 'python':
        c.mode, c.reason = 'skip', 'needs a full-scale checkpoint and my_tile.png (yours)'
        if 'init_model(' not in c.text:
            c.mode, c.reason = 'run', ''
        return c
    for pattern, mode, why, variant in RULES:
        if re.search(pattern, c.text):
            c.mode, c.reason, c.variant = mode, why, variant
            return c
    return c


# ---------------------------------------------------------------------------------- parsing ---
_PARSE_DRIVER = r'''
import argparse, importlib.util, json, runpy, sys
from pathlib import Path
class Parsed(Exception):
    pass
depth = [0]
orig_parse_args, orig_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
def parse_args(self, *a, **k):
    depth[0] += 1
    try:
        ns = orig_parse_args(self, *a, **k)
    finally:
        depth[0] -= 1
    if depth[0] == 0:
        raise Parsed()
    return ns
def parse_known_args(self, *a, **k):
    outer = depth[0] == 0
    depth[0] += 1
    try:
        r = orig_known(self, *a, **k)
    finally:
        depth[0] -= 1
    if outer:
        raise Parsed()
    return r
argparse.ArgumentParser.parse_args = parse_args
argparse.ArgumentParser.parse_known_args = parse_known_args
def one(kind, what, argv):
    if kind == 'import':
        exec(what, {})
        return ''
    spec = importlib.util.find_spec(what)
    if spec is None:
        return f'no module {what}'
    if spec.submodule_search_locations:
        spec = importlib.util.find_spec(what + '.__main__')
    code = Path(spec.origin).read_text()
    if 'parse_args' not in code and 'main(' not in code:
        return f'{what}: no argument parser to check it with'
    sys.argv = [what] + argv
    try:
        runpy.run_module(what, run_name='__main__', alter_sys=True)
    except Parsed:
        return ''
    except SystemExit as e:
        return '' if e.code in (0, None) else f'arguments do not parse (exit {e.code})'
    return 'ran to the end without parsing arguments'
results = []
for kind, what, argv in json.loads(sys.argv[1]):
    try:
        results.append(one(kind, what, argv))
    except BaseException as e:
        results.append(f'{type(e).__name__}: {e}')
print('\n@@RESULTS@@' + json.dumps(results))
'''


def entry_point(c: Command, tmp: str, root: Path) -> Tuple[Optional[str], List[str], List[str]]:
    """(python module, its argv, problems) of a shell command; the module is None for the shell
    scripts (checked with bash -n here)."""
    text = c.text
    for k, v in PLACEHOLDERS.items():
        text = re.sub(rf'(?<![\w/]){re.escape(k)}(?![\w/])', v, text)
    text = re.sub(r'(?<![\w/])DIR(?![\w/])', tmp, text)
    words = shlex.split(text)
    problems = [f'{w}: no such file or folder in the repository' for w in words
                if REPO_PATH.match(w) and not (root / w).exists() and not w.startswith('results/')]
    prog, args = words[0], words[1:]
    if prog in ('./run_all.sh', './run_tests.sh'):
        r = subprocess.run(['bash', '-n', str(root / prog)], capture_output=True, text=True)
        if r.returncode:
            problems.append(f'bash -n {prog}: {r.stderr.strip()}')
        return ('benchmarks.run', args, problems) if prog == './run_all.sh' else (None, [], problems)
    if prog == 'aeroseg-infer':
        return 'aeroseg.infer', args, problems
    if prog == 'torchrun':
        args = args[args.index('-m'):] if '-m' in args else []
    if args[:1] == ['-c'] or args[:1] and args[0].endswith('.py'):  # inline code / a script (path checked)
        return None, [], problems
    if args[:1] != ['-m'] or len(args) < 2:
        return None, [], problems + [f'{c.text}: not "python -m MODULE ..."']
    return args[1], args[2:], problems


def parse_all(cmds: Sequence[Command], python: str, cwd: Path) -> None:
    """Parse every command (module docstring), all in one interpreter."""
    import json
    tmp = tempfile.mkdtemp(prefix='readme_dir_')
    jobs, owners = [], []
    for c in cmds:
        if c.kind == 'python':
            try:
                compile(c.text, f'README.md:{c.lines[0]}', 'exec')
            except SyntaxError as e:
                c.ok, c.detail = False, c.detail + [f'does not compile: {e}']
                continue
            for line in re.findall(r'^(?:from [\w.]+ )?import .+$', c.text, re.M):
                jobs.append(('import', line, []))
                owners.append(c)
            continue
        mod, argv, problems = entry_point(c, tmp, cwd)
        if problems:
            c.ok, c.detail = False, c.detail + problems
        if mod:
            jobs.append(('module', mod, argv))
            owners.append(c)
    if jobs:
        r = subprocess.run([python, '-c', _PARSE_DRIVER, json.dumps(jobs)], cwd=cwd, env=clean_env(cwd),
                           capture_output=True, text=True, timeout=600)
        if '@@RESULTS@@' not in r.stdout:
            raise RuntimeError(f'the parse driver failed: {r.stderr[-2000:]}')
        for c, (kind, what, _), why in zip(owners, jobs, json.loads(r.stdout.split('@@RESULTS@@')[-1])):
            if why:
                c.ok = False
                c.detail.append(f'{what}: {why}' if kind == 'import' else why)
    shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------- running ---
def clean_env(root: Path) -> dict:
    """A fresh shell's environment with the checkout's venv activated (nothing of ours leaks in)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'AEROSEG_DATA', 'VIRTUAL_ENV', 'PYTHONHOME')}
    env['PATH'] = f'{root / ".venv" / "bin"}{os.pathsep}{env.get("PATH", "")}'
    env['VIRTUAL_ENV'] = str(root / '.venv')
    return env


def fresh_copy(dest: Path) -> Path:
    """The checkout as git sees it (tracked + unignored files) in ``dest``, with ``.venv`` linked
    to this interpreter's environment."""
    r = subprocess.run(['git', 'ls-files', '-z', '-co', '--exclude-standard'], cwd=REPO,
                       capture_output=True)
    files = [f for f in r.stdout.decode().split('\0') if f] if r.returncode == 0 else None
    if files is None:  # not a git checkout: everything but the usual outputs
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns('.git', '.venv', 'work_dirs', '__pycache__'))
    else:
        for f in files:
            src = REPO / f
            if src.is_file():
                (dest / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / f)
    venv = Path(sys.prefix) if sys.prefix != sys.base_prefix else REPO / '.venv'
    (dest / '.venv').symlink_to(venv.resolve())
    return dest


def run_one(c: Command, root: Path, timeout: float, text: Optional[str] = None) -> None:
    """Run ``text`` (default: the command as written) with ``bash -c`` in ``root``; the command and
    whatever it starts are stopped together (own process group) on a timeout or Ctrl-C."""
    import signal
    text = text or c.text
    t0 = time.time()
    proc = subprocess.Popen(['bash', '-c', text], cwd=root, env=clean_env(root), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        c.ok = False
        c.detail.append(f'$ {text}: still running after {timeout:.0f} s')
        return
    finally:
        c.seconds = time.time() - t0
    if proc.returncode:
        c.ok = False
        tail = (err.strip() or out.strip()).splitlines()[-3:]
        c.detail.append(f'$ {text}: exit {proc.returncode}: ' + ' | '.join(tail))
    else:
        c.result = f'ran in {c.seconds:.0f} s' + ('' if text == c.text else f' ({text})')


def check(readme: Path = REPO / 'README.md', run: str = 'cheap', keep: Optional[Path] = None,
          timeout: float = 300.0, log=print) -> List[Command]:
    cmds = extract(readme.read_text())
    base = Path(tempfile.mkdtemp(prefix='readme_')) if keep is None else keep
    root = fresh_copy(base / 'checkout')
    python = str(root / '.venv' / 'bin' / 'python')
    try:
        parse_all(cmds, python, root)
        for c in cmds:
            if not c.ok or run == 'none':
                continue
            if c.mode == 'run':
                run_one(c, root, timeout, f"python - <<'EOF'\n{c.text}\nEOF" if c.kind == 'python' else None)
            elif c.mode == 'long' and run == 'all' and c.variant is not None:
                run_one(c, root, 3600, f'{c.text} {c.variant}'.strip())
            if c.result:
                log(f'  README.md:{c.lines[0]}: {c.result}: {c.text[:90]}')
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return cmds


def report(cmds: Sequence[Command]) -> str:
    rows = []
    for c in cmds:
        where = ','.join(map(str, c.lines))
        state = 'FAIL' if not c.ok else (c.result or ('parsed; not run: ' + c.reason if c.mode != 'run'
                                                       else 'parsed'))
        first = c.text.splitlines()[0] + (' ...' if '\n' in c.text else '')
        rows.append(f'README.md:{where}: {first}\n    {state}')
        rows += [f'    - {d}' for d in c.detail]
    bad = sum(not c.ok for c in cmds)
    rows.append(f'{len(cmds)} commands: {sum(c.ok for c in cmds)} ok, {bad} failed')
    return '\n'.join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--readme', type=Path, default=REPO / 'README.md')
    p.add_argument('--run', choices=('none', 'cheap', 'all'), default='cheap',
                   help='parse every command; run the cheap ones (default) or all that can run here')
    p.add_argument('--timeout', type=float, default=300.0, help='seconds per cheap command')
    p.add_argument('--keep', type=Path, help='work in this folder and keep it (default: a temporary one)')
    p.add_argument('--list', action='store_true', help='only list the commands and how each is checked')
    args = p.parse_args(argv)
    if args.list:
        for c in extract(args.readme.read_text()):
            print(f'README.md:{c.lines[0]}: [{c.mode}] {c.text.splitlines()[0]}'
                  + (f'  ({c.reason})' if c.reason else ''))
        return 0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    cmds = check(args.readme, args.run, args.keep, args.timeout)
    print(report(cmds))
    return 0 if all(c.ok for c in cmds) else 1


if __name__ == '__main__':
    sys.exit(main())
