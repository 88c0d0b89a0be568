"""retain_freed_memory: a freed large tensor's pages are reused (no fresh page faults), results
are bit-identical, the environment switch and a bad value behave."""
import ctypes.util
import json
import platform
import subprocess
import sys
import textwrap

import pytest

from aeroseg.utils import malloc

GLIBC = platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc'
needs_glibc = pytest.mark.skipif(not GLIBC, reason='mallopt is glibc\'s')

CHILD = textwrap.dedent('''
    import hashlib, json, resource, sys
    from aeroseg.utils.malloc import retain_freed_memory, malloc_policy
    applied = retain_freed_memory(sys.argv[1] if len(sys.argv) > 1 else None)
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(8, 16, 64, 64)
    w = torch.randn(16, 16, 3, 3)
    faults = []
    for _ in range(8):
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        y = torch.nn.functional.conv2d(x, w, padding=1)
        big = torch.ones(10 << 20)           # 40 MiB: over the most glibc's dynamic threshold reaches
        out = (y.sum() + big.sum()).item()
        del big
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
    digest = hashlib.sha256(y.numpy().tobytes()).hexdigest()
    print(json.dumps(dict(applied=applied, policy=malloc_policy(), faults=faults, digest=digest)))
''')


def run_child(*args, env=None):
    import os
    e = dict(os.environ)
    e.pop(malloc.ENV, None)
    e.update(env or {})
    r = subprocess.run([sys.executable, '-c', CHILD, *args], capture_output=True, text=True, timeout=300,
                       env=e)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@needs_glibc
def test_retained_memory_reuses_pages_and_changes_no_result():
    system, retain = run_child('system'), run_child('retain')
    assert (system['applied'], retain['applied']) == ('system', 'retain')
    assert retain['policy'] == 'retain'
    # every repeat: glibc's defaults map the 40 MiB block afresh and fault its ~10,000 4 KiB pages
    # in again; the retained heap, once grown, serves it from pages it already has (it may still
    # grow now and then by a few hundred pages as the two blocks change places)
    assert min(system['faults'][1:]) > 5000, system['faults']
    assert sum(retain['faults'][2:]) < 0.1 * sum(system['faults'][2:]), (retain['faults'], system['faults'])
    assert retain['digest'] == system['digest']   # the same kernels on the same values


@needs_glibc
def test_the_default_is_retain_and_the_environment_can_turn_it_off():
    assert run_child()['applied'] == 'retain'
    off = run_child(env={malloc.ENV: 'system'})
    assert off['applied'] == 'system' and min(off['faults'][1:]) > 5000


def test_a_bad_policy_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(malloc.ENV, 'jemalloc')
    with pytest.raises(ValueError, match=r"AEROSEG_MALLOC='jemalloc'.*'retain'.*'system'"):
        malloc.retain_freed_memory()


def test_without_mallopt_nothing_is_set(monkeypatch):
    monkeypatch.setattr(malloc, '_libc', lambda: None)
    monkeypatch.setattr(malloc, '_applied', None)
    assert malloc.retain_freed_memory('retain') == 'system (no glibc mallopt)'
    assert malloc.malloc_policy() == 'system (no glibc mallopt)'
