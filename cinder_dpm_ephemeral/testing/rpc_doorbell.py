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
"""Casts on oslo.messaging's ``fake:`` transport delivered when sent.

The in-process Cinder of :mod:`cinder_dpm_ephemeral.testing.cinder_harness`
(Cinder's own functional test base) passes RPC messages with
oslo.messaging's fake driver. Its listeners look for a message, and when
there is none sleep 50 ms before they look again
(``oslo_messaging._drivers.impl_fake.FakeListener.poll``). Every cast
(API to scheduler, scheduler to volume manager, API to volume manager for
a delete) therefore waits 0-50 ms at random before it is handled: a warm
create, two casts, took 0.16 or 0.21 s depending on where the polls fell.
A broker such as RabbitMQ pushes a message to its consumer when it
arrives.

:func:`install` makes the fake driver do that: a listener's pause ends as
soon as a message is delivered to any queue (a wake-up it does not need
costs one empty look). A wake-up between a listener's look and its pause
could be missed only if a greenthread switched in between, and there is
nothing in between that yields; it would cost what it costs without this.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from oslo_messaging._drivers import impl_fake


class _Doorbell:
    """Stands in for ``time`` in :mod:`impl_fake`: pauses end on delivery."""

    def __init__(self) -> None:
        self._cond = threading.Condition()

    @staticmethod
    def time() -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait(seconds)

    def ring(self) -> None:
        with self._cond:
            self._cond.notify_all()


DOORBELL = _Doorbell()


def install() -> None:
    """Patch the fake driver once per process (idempotent)."""
    if impl_fake.time is DOORBELL:
        return
    deliver = impl_fake.FakeExchange.deliver_message

    @functools.wraps(deliver)
    def deliver_and_ring(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return deliver(self, *args, **kwargs)
        finally:
            DOORBELL.ring()

    impl_fake.FakeExchange.deliver_message = deliver_and_ring
    impl_fake.time = DOORBELL
