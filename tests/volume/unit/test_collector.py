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
"""The long-lived objects set aside from the collector during a build."""

import gc
import time
import unittest
import weakref

import eventlet

from cinder_dpm_ephemeral.image_cache import collector


class _Node:
    """An object in a reference cycle, whose end a weak reference sees."""

    def __init__(self):
        self.other = None


def _cycle():
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


class SetAsideTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        # only the test's own collections, and none frozen before it
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        self.assertEqual(0, gc.get_freeze_count())

    def test_old_cycles_wait_for_the_build_new_ones_do_not(self):
        old = _cycle()
        with collector.set_aside() as aside:
            self.assertTrue(aside)
            self.assertGreater(gc.get_freeze_count(), 0)
            young = _cycle()
            gc.collect()
            # the build's own garbage is collected as before ...
            self.assertIsNone(young())
            # ... a cycle older than the build is left for later
            self.assertIsNotNone(old())
        self.assertEqual(0, gc.get_freeze_count())
        gc.collect()
        self.assertIsNone(old())

    def test_a_full_collection_in_a_build_walks_only_new_objects(self):
        heap = [[i] for i in range(300000)]   # a service's long-lived heap

        def full_collection():
            t0 = time.perf_counter()
            gc.collect(2)
            return time.perf_counter() - t0
        outside = min(full_collection() for _ in range(3))
        with collector.set_aside():
            inside = min(full_collection() for _ in range(3))
        self.assertLess(inside, outside / 5, (inside, outside))
        del heap

    def test_concurrent_builds_share_one_freeze(self):
        seen = []

        def build(hold):
            with collector.set_aside() as aside:
                seen.append(aside)
                eventlet.sleep(hold)
                seen.append(gc.get_freeze_count() > 0)
        first = eventlet.spawn(build, 0.05)
        second = eventlet.spawn(build, 0.1)
        eventlet.sleep(0.07)
        # the first ended; the second still holds the freeze
        self.assertGreater(gc.get_freeze_count(), 0)
        first.wait()
        second.wait()
        self.assertEqual([True, True, True, True], seen)
        self.assertEqual(0, gc.get_freeze_count())

    def test_the_freeze_is_undone_when_the_build_fails(self):
        with self.assertRaises(RuntimeError):
            with collector.set_aside():
                raise RuntimeError('build failed')
        self.assertEqual(0, gc.get_freeze_count())

    def test_another_freeze_is_left_alone(self):
        gc.freeze()
        self.addCleanup(gc.unfreeze)
        frozen = gc.get_freeze_count()
        with collector.set_aside() as aside:
            self.assertFalse(aside)
        self.assertEqual(frozen, gc.get_freeze_count())

    def test_switched_off(self):
        self.addCleanup(setattr, collector, 'ENABLED', collector.ENABLED)
        collector.ENABLED = False
        with collector.set_aside() as aside:
            self.assertFalse(aside)
            self.assertEqual(0, gc.get_freeze_count())
