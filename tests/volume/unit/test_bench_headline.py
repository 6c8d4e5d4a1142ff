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
"""``./run bench``'s headline: where its cold fractions come from."""

import unittest

from tools.bench import __main__ as bench

MiB = 1024 * 1024


def _stat(median, lo, hi):
    return {'median': median, 'min': lo, 'max': hi}


class ColdFractionTest(unittest.TestCase):

    def setUp(self):
        # the main bench's own cold scenario, on its 32 MiB image
        self.storage = {
            'params': {'image_bytes': 32 * MiB, 'repeats': 5},
            'ours-svc': {
                'cold_qcow2': {'fraction_copy': _stat(0.13, 0.12, 0.15)},
                'cold_raw': {'fraction_copy': _stat(0.14, 0.13, 0.16)}},
        }
        # the cold benchmark's 1 GiB disk (tools.bench.cold.run)
        self.cold = {
            'image': {'virtual_size': 1024 * MiB},
            'headline': {
                'cold_qcow2_fraction_of_reference': 0.80,
                'cold_qcow2_fraction_of_reference_spread': [0.72, 0.85],
                'cold_qcow2_fraction_of_reference_copy_step': 1.1,
                'cold_raw_fraction_of_reference': 0.65,
                'cold_raw_fraction_of_reference_spread': [0.60, 0.70],
                'cold_raw_fraction_of_reference_copy_step': 0.88}}

    def test_the_issues_figure_is_the_cold_benchmarks(self):
        head = bench.headline(self.storage, 5, self.cold)
        self.assertEqual(0.80, head['cold_qcow2_fraction_of_reference'])
        self.assertEqual([0.72, 0.85],
                         head['spread']['cold_qcow2_fraction_of_reference'])
        self.assertEqual(0.65, head['cold_raw_fraction_of_reference'])
        self.assertEqual(0.88, head[
            'cold_raw_fraction_of_reference_copy_step'])
        self.assertEqual(1024 * MiB, head['cold_image_bytes'])
        # met only when the whole spread is past the target
        self.assertTrue(
            head['targets_met']['cold_qcow2_fraction_of_reference'])
        self.assertFalse(
            head['targets_met']['cold_raw_fraction_of_reference'])

    def test_the_small_images_fractions_keep_their_own_name(self):
        head = bench.headline(self.storage, 5, self.cold)
        self.assertEqual(0.13,
                         head['cold_qcow2_fraction_of_reference_32mib'])
        spread = head['spread']
        self.assertEqual([0.13, 0.16],
                         spread['cold_raw_fraction_of_reference_32mib'])

    def test_without_the_cold_benchmark_no_figure_is_made_up(self):
        head = bench.headline(self.storage, 5, None)
        self.assertIsNone(head['cold_qcow2_fraction_of_reference'])
        self.assertIsNone(
            head['targets_met']['cold_qcow2_fraction_of_reference'])
        self.assertEqual(0.14, head['cold_raw_fraction_of_reference_32mib'])

    def test_the_builds_without_spare_luns_have_their_own_figures(self):
        # the cold benchmark's variant's keys, as cold.run names them
        # (tools.bench.cold.ab_variant: OPTION_VALUE after the key)
        from tools.bench import cold
        label = cold.ab_variant(bench.COLD_NO_SPARES)[2]
        self.assertEqual('dpm_ephemeral_spare_golden_luns_0', label)
        self.cold['headline'].update({
            f'cold_qcow2_fraction_of_reference_{label}': 1.12,
            f'cold_qcow2_fraction_of_reference_spread_{label}': [1.08, 1.17],
            f'cold_raw_fraction_of_reference_{label}': 0.95,
            f'cold_raw_fraction_of_reference_spread_{label}': [0.89, 1.0]})
        head = bench.headline(self.storage, 5, self.cold)
        key = 'cold_qcow2_fraction_of_reference_without_spare_luns'
        self.assertEqual(1.12, head[key])
        self.assertEqual([1.08, 1.17], head['spread'][key])
        self.assertTrue(head['targets_met'][key])
        # 0.89 is under the 0.9 target: not met
        self.assertFalse(head['targets_met'][
            'cold_raw_fraction_of_reference_without_spare_luns'])
        # the default builds' figures stay where they were
        self.assertEqual(0.80, head['cold_qcow2_fraction_of_reference'])
        # and without the variant, none is made up
        head = bench.headline(self.storage, 5, None)
        self.assertNotIn(key, head)
        self.assertIsNone(head['targets_met'][key])
