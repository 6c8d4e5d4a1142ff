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
"""``./run bench cold --ab``: what each spelling of a variant sets."""

import unittest

from cinder_dpm_ephemeral.image_cache import readahead
from tools.bench import cold


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
