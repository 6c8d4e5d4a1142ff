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
"""A cast on the fake transport is handled when sent, not at the next poll."""

from __future__ import annotations

import time

import eventlet
import oslo_messaging
import testtools
from oslo_messaging._drivers import impl_fake

from cinder_dpm_ephemeral.testing import rpc_doorbell


class DoorbellTest(testtools.TestCase):

    def test_a_listener_in_its_pause_wakes_on_delivery(self) -> None:
        rpc_doorbell.install()
        rpc_doorbell.install()              # once per process
        self.assertIs(rpc_doorbell.DOORBELL, impl_fake.time)
        manager = impl_fake.FakeExchangeManager('doorbell-test')
        target = oslo_messaging.Target(topic='cinder-volume',
                                       server='host@backend')
        listener = impl_fake.FakeListener(manager, [target])
        got = []

        def consume() -> None:
            got.extend(listener.poll(timeout=5.0))
            got.append(time.monotonic())

        consumer = eventlet.spawn(consume)
        eventlet.sleep(0)   # it looked, found nothing, and began its pause
        self.assertEqual([], got)
        sent = time.monotonic()
        manager.get_exchange(None).deliver_message(
            'cinder-volume', {}, {'method': 'create_volume'},
            server='host@backend')
        consumer.wait()
        message, handled = got
        self.assertEqual({'method': 'create_volume'}, message.message)
        # The fake driver's own pause is 50 ms and had just begun: the
        # doorbell ended it (a loaded machine may add a few ms).
        self.assertLess(handled - sent, 0.025)
