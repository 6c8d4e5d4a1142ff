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
"""``./run bench cold``: the ``--ab`` variants, each build's copy step and
its trace."""

import gc
import time
import unittest

from oslo_service import periodic_task

from cinder_dpm_ephemeral.image_cache import readahead
from tools.bench import cold
from tools.bench import copy_trace


class AbVariantTest(unittest.TestCase):

    def test_spellings(self):
        self.assertEqual(
            ('dpm_ephemeral_read_ahead', False,
             'without_dpm_ephemeral_read_ahead'),
            cold.ab_variant('dpm_ephemeral_read_ahead'))
        self.assertEqual(
            ('dpm_ephemeral_write_behind_depth', 1,
             'dpm_ephemeral_write_behind_depth_1'),
            cold.ab_variant('dpm_ephemeral_write_behind_depth=1'))
        self.assertEqual(('x', True, 'x_True'), cold.ab_variant('x=TRUE'))
        self.assertEqual(('x', False, 'without_x'),
                         cold.ab_variant('x=false'))
        self.assertEqual(
            ('image_cache.readahead.DROP_EVERY', 0, 'DROP_EVERY_0'),
            cold.ab_variant('image_cache.readahead.DROP_EVERY=0'))

    def test_a_module_constant_is_set_for_the_variant_only(self):
        before = readahead.DROP_EVERY
        self.assertNotEqual(0, before)
        with cold._constant(('image_cache.readahead.DROP_EVERY', 0)):
            self.assertEqual(0, readahead.DROP_EVERY)
        self.assertEqual(before, readahead.DROP_EVERY)
        with cold._constant(None):
            self.assertEqual(before, readahead.DROP_EVERY)

    def test_a_constant_that_does_not_exist_is_refused(self):
        with self.assertRaises(SystemExit) as ctx:
            with cold._constant(('image_cache.readahead.DROP_EVRY', 0)):
                pass
        self.assertIn('has no DROP_EVRY', str(ctx.exception))


class _Build:
    """A build with a copy step in it, as the benchmark's Phases see one."""

    def __init__(self, copy_for):
        self.copy_for = copy_for

    def build(self, kind):
        time.sleep(0.01)
        self.copy()

    def copy(self):
        time.sleep(self.copy_for)


class CopyStepTest(unittest.TestCase):

    def _timed(self, kinds, copy_for=0.05):
        phases = cold.Phases()
        phases._wrap(_Build, 'build', 'other', lambda _self, kind: kind)
        phases._wrap(_Build, 'copy', 'copy')
        try:
            for kind in kinds:
                _Build(copy_for).build(kind)
        finally:
            phases.__exit__(None, None, None)
        return phases

    def test_each_trial_gets_its_builds_copy_step(self):
        phases = self._timed(['prime', 'build'])
        builds = phases.new_builds(0)
        self.assertEqual(1, len(builds))
        trials = [{'reference_seconds': 0.1}]
        cold.copy_step(trials, builds)
        step = trials[0]['copy_step_seconds']
        # the copy step's own time, not the build's
        self.assertGreaterEqual(step, 0.05)
        self.assertLess(step, builds[0]['wall'])
        self.assertAlmostEqual(0.1 / step, trials[0]['fraction_copy_step'])

    def test_only_new_builds_count(self):
        phases = self._timed(['build', 'spare', 'build'])
        self.assertEqual(1, len(phases.new_builds(2)))
        self.assertEqual(2, len(phases.new_builds(0)))

    def test_no_guess_when_builds_and_trials_do_not_pair(self):
        phases = self._timed(['build', 'build'])
        trials = [{'reference_seconds': 0.1}]
        cold.copy_step(trials, phases.new_builds(0))
        self.assertIsNone(trials[0]['copy_step_seconds'])
        self.assertIsNone(trials[0]['fraction_copy_step'])

    def test_the_first_build_is_reported_apart(self):
        # the priming build (a running deployment's earlier one) is not a
        # timed build, and its steps are kept as first_build
        phases = self._timed(['prime', 'build', 'build'], copy_for=0.02)
        summary = phases.summary()
        self.assertEqual(2, summary['copy']['n'])
        self.assertEqual(1, summary['first_build']['copy']['n'])
        self.assertNotIn('first_build', self._timed(['build']).summary())


class _Tasks(periodic_task.PeriodicTasks):
    """A service's periodic tasks: one that takes 50 ms."""

    @periodic_task.periodic_task(spacing=1, run_immediately=True)
    def _slow(self, context):
        time.sleep(0.05)


class CopyTraceTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.kept = []
        self.runner = periodic_task.PeriodicTasks.run_periodic_tasks
        trace = copy_trace.CopyTrace()
        trace.__enter__()
        self.addCleanup(trace.__exit__, None, None, None)
        self.trace = trace
        # no collection but the test's own
        gc.disable()
        self.addCleanup(gc.enable)

    def _step(self, work):
        self.trace.around(work, self.kept.append)()
        return self.kept[-1]

    def test_this_process_cpu_in_the_step(self):
        def spin():
            end = time.monotonic() + 0.1
            while time.monotonic() < end:
                pass
        out = self._step(spin)
        self.assertGreaterEqual(out['seconds'], 0.1)
        self.assertGreater(out['process_user_s'] + out['process_sys_s'],
                           0.05)
        self.assertEqual(0, out['gc_pauses'])
        self.assertEqual(0, out['periodic_tasks_s'])
        idle = self._step(lambda: time.sleep(0.1))
        self.assertLess(idle['process_user_s'] + idle['process_sys_s'],
                        out['process_user_s'] + out['process_sys_s'])

    def test_a_collection_in_the_step_is_counted(self):
        garbage = []
        for _ in range(20000):
            a, b = [], []
            a.append(b)
            b.append(a)
            garbage.append(a)
        del garbage, a, b

        out = self._step(lambda: gc.collect(2))
        self.assertEqual(1, out['gc_pauses'])
        self.assertGreater(out['gc_pause_s'], 0)
        self.assertLessEqual(out['gc_pause_s'], out['seconds'])

    def test_a_periodic_task_in_the_step_is_counted(self):
        tasks = _Tasks(cold_conf())
        out = self._step(lambda: tasks.run_periodic_tasks(None))
        self.assertGreaterEqual(out['periodic_tasks_s'], 0.05)
        # the periodic task runner is Oslo's own again once it ends
        self.trace.__exit__(None, None, None)
        self.assertIs(self.runner,
                      periodic_task.PeriodicTasks.run_periodic_tasks)


def cold_conf():
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([], project='bench-test')
    return conf


class SlowCopiesTest(unittest.TestCase):

    def test_the_slow_steps_apart_from_the_others(self):
        def trial(step, sys_s):
            return {'copy_step_seconds': step,
                    'copy_trace': {'process_sys_s': sys_s}}
        trials = [trial(0.44, 0.2), trial(0.45, 0.21), trial(0.43, 0.19),
                  trial(0.83, 0.5),
                  {'copy_step_seconds': 0.9, 'copy_trace': None}]
        out = copy_trace.slow_copies(trials)
        self.assertEqual(1, out['n_slow'])
        self.assertEqual(3, out['n_other'])
        self.assertEqual({'copy_step_seconds': 0.83, 'process_sys_s': 0.5},
                         out['slow'])
        self.assertEqual({'copy_step_seconds': 0.44, 'process_sys_s': 0.2},
                         out['other'])
        self.assertEqual({}, copy_trace.slow_copies(trials[4:]))
        self.assertIsNone(copy_trace.slow_copies(trials[:3])['slow'])


class WarmTest(unittest.TestCase):

    def test_the_file_is_written_then_gone(self):
        import os
        import tempfile

        from tools.bench import first_touch
        with tempfile.TemporaryDirectory() as d:
            seconds = first_touch.warm(d, 3 * 1024 * 1024 + 5)
            self.assertGreater(seconds, 0)
            self.assertEqual([], os.listdir(d))
            self.assertEqual(0.0, first_touch.warm(d, 0))
