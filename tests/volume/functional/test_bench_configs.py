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
"""``./run bench``'s cold scenario runs for ours and for stock alike.

Not a benchmark (nothing is timed against anything): the bench's own
scenario code, through the real Cinder on the emulated arrays, with one
small image, for one configuration of ours and each stock one. A stock
configuration once failed there on what only ours has (the golden
cache's spares), and every stock figure of the headline came out None.
"""

import unittest

from tools.bench import storage

MiB = 1024 * 1024


class BenchColdScenarioTest(unittest.TestCase):

    def _run(self, config):
        params = {'repeats': 1, 'cold_formats': ['raw'],
                  'image_bytes': 4 * MiB, 'svc_latency': 0.0,
                  'sample_rss': False, 'idle_timeout': 120,
                  'timeout': 300}
        results = {}
        storage.run_case(config, params, results, 'run_cold')
        self.assertNotIn('errors', results, results.get('errors'))
        trials = results[config]['cold_raw']['trials']
        self.assertEqual(1, len(trials))
        self.assertEqual(4 * MiB, trials[0]['glance_bytes'])
        # the volume's own timestamps: available before the poller saw it
        self.assertGreater(trials[0]['seconds'], 0)
        self.assertLessEqual(trials[0]['seconds'],
                             trials[0]['op']['polled_seconds'])
        return trials[0]

    def test_ours_svc(self):
        self.assertIsNotNone(self._run('ours-svc')['copy_seconds'])

    def test_stock_svc(self):
        self._run('stock-svc')

    def test_stock_tuned_svc(self):
        self._run('stock-tuned-svc')

    def test_stock_powerflex(self):
        self._run('stock-powerflex')


class BenchColdRunTest(unittest.TestCase):
    """``cold.run``, what ``./run bench cold`` and the headline run."""

    def test_one_build_against_the_reference(self):
        from tools.bench import cold
        res = cold.run(size_mib=64, repeats=1, formats=['raw'],
                       svc_latency=0.0)
        self.assertNotIn('errors', res['storage'],
                         res['storage'].get('errors'))
        raw = res['storage']['ours-svc']['cold_raw']
        self.assertEqual(1, len(raw['trials']))
        trial = raw['trials'][0]
        # the realistic disk, whole, through Glance
        self.assertEqual(64 * MiB, trial['glance_bytes'])
        self.assertEqual(64 * MiB, res['image']['virtual_size'])
        self.assertLess(res['image']['data_bytes'], 64 * MiB)
        # reference / build, paired in the trial
        self.assertAlmostEqual(
            trial['reference_seconds'] / trial['copy_seconds'],
            trial['fraction_copy'], places=6)
        head = res['headline']
        self.assertEqual(trial['fraction_copy'],
                         head['cold_raw_fraction_of_reference'])
        self.assertEqual([trial['fraction_copy']] * 2,
                         head['cold_raw_fraction_of_reference_spread'])
        self.assertIn('copy', res['phases']['raw'])
        # the copy step traced (its call, the LUN's attach in it), and
        # this process's CPU in it
        trace = trial['copy_trace']
        self.assertGreaterEqual(trace['seconds'],
                                trial['copy_step_seconds'] - 0.01)
        self.assertGreater(trace['process_user_s'] +
                           trace['process_sys_s'], 0)
        self.assertEqual(1, res['slow_copy_steps']['raw']['n_other'])
        # no warm-up unless asked for (--warm-mib)
        self.assertEqual(0, res['storage']['params']['warm_bytes'])
