"""The benchmark runner behind ``python -m benchmarks.run`` (usage: ``benchmarks/run.py``).

* :mod:`~benchmarks.runner.plan` - jobs from the spec, their states (:class:`JobState`), configs
  resolving to the same content merged; read only.
* :mod:`~benchmarks.runner.launch` - commands, the work-dir lock, parallel slots and the
  scheduler, one job's execution, stopping every job on Ctrl-C.
* :mod:`~benchmarks.runner.collect` - finished jobs read back into cells and runs.csv rows,
  written to ``results/<scale>/``.
* :mod:`~benchmarks.runner.cli` - arguments, the plan and its time estimate, ``main``.

The files a job leaves in its run dir are described in ``docs/run_dir.md``.
"""
