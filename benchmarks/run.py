"""Regenerate the paper's Tables 2-8 as leaderboards, resumably.

    python -m benchmarks.run [--tables 2 3 ...] [--methods ...] [--datasets ...]
        [--scale mini|full] [--data-root DIR] [--work-dir DIR] [--seeds 0 1 ..] [--gpus N]
        [--launcher none|pytorch|slurm --partition P ...] [--parallel K [--devices 0,1,..]]
        [--dry-run] [--force] [--spec MODULE|FILE.py]

Flow: the spec (:mod:`benchmarks.tables`; methods from :mod:`benchmarks.methods`) gives cells;
cells are de-duplicated into jobs (config x seed; a config shared by several tables runs once,
and so do two configs that resolve to the same content); each job runs through the same entry
points a user would type, as subprocesses (``benchmarks.train`` then ``benchmarks.test``; see
:mod:`benchmarks.runner.launch`). Each job's exact commands go to the console,
``JOB/commands.sh``, ``JOB/job.json`` and runs.csv; its output to ``JOB/run.log``
(``docs/run_dir.md``). Tables are rewritten after every job from every finished result in the
work dir (see :mod:`benchmarks.results`).

Safe to interrupt and rerun: a job whose ``metrics.json`` carries the current config hash is
skipped; an interrupted job resumes from its last checkpoint (``--resume``); a job whose config
changed starts afresh (the old folder is kept as ``<job>.prev``); ``--force`` reruns selected
jobs from scratch. One runner per work dir: a lock file with the owner's pid; a stale lock (dead
pid) is taken over with a message.

``--parallel K`` runs K jobs at once, each in its own slot: slot i sees only its own GPUs
(``CUDA_VISIBLE_DEVICES``, ``--gpus`` of them from ``--devices`` or 0..K*gpus-1) and, on CPU, its
share of the cores (``OMP_NUM_THREADS`` = cores // K unless already set). The runner stays the
only writer of the tables (results are collected in its main thread).

A spec from outside: ``--spec`` takes an importable module name (on ``PYTHONPATH``) or the path
of any ``.py`` file (a test's tmp dir, a user's project). The module is executed in the runner
process before planning and must define ``TABLES`` (a sequence of :class:`benchmarks.tables.Table`).
A method of its own is registered there first::

    from benchmarks.methods import Method, register_method
    from benchmarks.tables import Table, method_row
    register_method(Method('mine', 'Mine', '/path/to/configs/mine_{ds}.py', 'CLIP ViT-B/16'))
    TABLES = (Table('T2', 'mine vs the paper', (method_row('mine'),), ('isaid',),
                    ('s-mIoU', 'u-mIoU', 'h-mIoU')),)

then ``python -m benchmarks.run --spec /path/to/spec.py --scale mini --methods mine`` fills its
row in ``results/<scale>/table2.csv`` (and ``--work-dir`` / ``--results-dir`` keep it apart from
the suite's own results). Config paths may be absolute (jobs then go to ``<work>/<scale>/ext/``).
"""
import sys

from benchmarks.runner.cli import main

if __name__ == '__main__':
    from aeroseg.utils.process import exit_now
    exit_now(main())
