# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""What the machine and the volume service did during a build's copy step.

``./run bench cold`` (:mod:`tools.bench.cold`) traces each golden build's
copy call with :class:`CopyTrace`: this process's CPU seconds, context
switches and faults, the machine's CPU seconds and pressure stalls, the
garbage collector's pauses, the services' periodic tasks, and the free
memory the guest reported to its host (:func:`machine_sample`).
:func:`slow_copies` sets the slow steps apart from the others
(doc/benchmarks.md, "The slow copy steps").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def machine_sample() -> dict[str, float]:
    """This process's and the machine's counters, for :class:`CopyTrace`.

    The process's CPU seconds (every thread, ended ones included:
    ``getrusage``), its context switches and minor faults; the
    machine's CPU seconds by kind (``/proc/stat``), its pressure stall
    seconds (``/proc/pressure``, where the kernel has PSI) and the free
    memory it reported to its host (where the kernel counts it).
    """
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out = {'process_user_s': ru.ru_utime, 'process_sys_s': ru.ru_stime,
           'process_voluntary_switches': float(ru.ru_nvcsw),
           'process_involuntary_switches': float(ru.ru_nivcsw),
           'process_minor_faults': float(ru.ru_minflt)}
    tick = os.sysconf('SC_CLK_TCK')
    try:
        with open('/proc/stat') as f:
            cpu = [int(v) for v in f.readline().split()[1:]]
        out.update({'machine_user_s': (cpu[0] + cpu[1]) / tick,
                    'machine_sys_s': (cpu[2] + cpu[5] + cpu[6]) / tick,
                    'machine_iowait_s': cpu[4] / tick,
                    'machine_steal_s': cpu[7] / tick})
    except (OSError, IndexError, ValueError):
        pass
    from tools.bench import first_touch
    reported = first_touch.reported_kib()
    if reported is not None:
        # free memory the guest handed back to the host
        # (tools/bench/first_touch.py)
        out['reported_to_host_mib'] = reported / 1024
    for kind in ('cpu', 'io'):
        try:
            with open(f'/proc/pressure/{kind}') as f:
                some = f.readline().split()
            out[f'{kind}_pressure_s'] = int(
                some[-1].split('=')[1]) / 1e6
        except (OSError, IndexError, ValueError):
            pass
    return out


class CopyTrace:
    """What the machine and this process did during each build's copy step.

    A trace per copy step: the difference of :func:`machine_sample`
    across it, the garbage collector's pauses in it (``gc.callbacks``)
    and the seconds of the services' periodic tasks that overlapped it
    (``oslo_service``'s ``run_periodic_tasks``, for every service in
    this process). For the builds whose copy step is slow against the
    others' (doc/benchmarks.md): whether their time went to this
    process, to the machine's other work, or to a pause.
    """

    def __init__(self) -> None:
        self._gc: list[tuple[float, float]] = []
        self._periodic: list[tuple[float, float]] = []
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> CopyTrace:
        import gc

        import eventlet.patcher
        from oslo_service import periodic_task
        clock = eventlet.patcher.original('time').monotonic
        self.clock = clock
        began = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == 'start':
                began[0] = clock()
            else:
                self._gc.append((began[0], clock()))
        gc.callbacks.append(on_gc)
        self._undo.append(lambda: gc.callbacks.remove(on_gc))
        orig = periodic_task.PeriodicTasks.run_periodic_tasks
        trace = self

        def run_periodic_tasks(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return orig(self, *args, **kwargs)
            finally:
                trace._periodic.append((t0, clock()))
        periodic_task.PeriodicTasks.run_periodic_tasks = run_periodic_tasks

        def undo() -> None:
            periodic_task.PeriodicTasks.run_periodic_tasks = orig
        self._undo.append(undo)
        return self

    def __exit__(self, *exc: Any) -> None:
        while self._undo:
            self._undo.pop()()

    def around(self, fn: Callable[..., Any],
               keep: Callable[[dict[str, float]], None]
               ) -> Callable[..., Any]:
        """``fn`` (a copy step), traced at each call; ``keep(trace)``."""
        def traced(*args: Any, **kwargs: Any) -> Any:
            s0, t0 = machine_sample(), self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                t1, s1 = self.clock(), machine_sample()
                out = {k: round(s1[k] - s0[k], 4) for k in s0 if k in s1}
                # the whole call: the LUN's attach is in it
                out['seconds'] = round(t1 - t0, 4)
                out['gc_pause_s'] = round(_overlap(self._gc, t0, t1), 4)
                out['gc_pauses'] = float(sum(
                    1 for a, b in self._gc if a < t1 and b > t0))
                out['periodic_tasks_s'] = round(
                    _overlap(self._periodic, t0, t1), 4)
                keep(out)
        return traced


def _overlap(spans: list[tuple[float, float]], t0: float,
             t1: float) -> float:
    return sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in spans)


def slow_copies(trials: list[dict[str, Any]],
                factor: float = 1.25) -> dict[str, Any]:
    """The traced trials whose copy step is over ``factor`` x the median.

    Per trace key, the median over those slow steps and over the others
    (``copy_step_seconds``, :func:`copy_step`, decides which is which).
    """
    import statistics
    traced = [t for t in trials
              if t.get('copy_trace') and t.get('copy_step_seconds')]
    if not traced:
        return {}
    median = statistics.median(t['copy_step_seconds'] for t in traced)
    slow = [t for t in traced if t['copy_step_seconds'] > factor * median]
    rest = [t for t in traced if t['copy_step_seconds'] <= factor * median]

    def medians(group: list[dict[str, Any]]) -> dict[str, float] | None:
        if not group:
            return None
        out = {'copy_step_seconds': round(statistics.median(
            t['copy_step_seconds'] for t in group), 4)}
        out.update({k: round(statistics.median(
            t['copy_trace'][k] for t in group), 4)
            for k in group[0]['copy_trace']})
        return out
    return {'factor': factor, 'n_slow': len(slow), 'n_other': len(rest),
            'slow': medians(slow), 'other': medians(rest)}
