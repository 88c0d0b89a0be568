"""exit_now: the exit status, atexit handlers and buffered output survive; the heap is frozen."""
import subprocess
import sys
import textwrap
from pathlib import Path

MODULE = Path(__file__).resolve().parents[2] / 'aeroseg' / 'utils' / 'process.py'


def test_exit_now_keeps_status_output_and_atexit_and_freezes_the_heap(tmp_path):
    marker = tmp_path / 'atexit.txt'
    code = textwrap.dedent(f'''
        import atexit, gc, importlib.util, sys
        spec = importlib.util.spec_from_file_location('process', {str(MODULE)!r})  # not the package:
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)   # its import is slow
        exit_now = mod.exit_now
        atexit.register(lambda: open({str(marker)!r}, 'w').write(str(gc.get_freeze_count())))
        sys.stdout.write('buffered, no newline')   # still in the buffer when exit_now runs
        exit_now(3)
        print('not reached')
    ''')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stdout == 'buffered, no newline'
    assert int(marker.read_text()) > 0  # atexit ran, after the live objects were frozen
