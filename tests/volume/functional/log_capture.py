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
"""Every log record of the test's Cinder, DEBUG included, from the start.

Cinder's test base keeps INFO and above, and only from its own fixture on;
tests that grep the whole log (for a password, for the line that explains a
failed start) need everything, including what the volume service logs while
its driver starts. :class:`CapturedLogs` is mixed in before
``CinderHarness``; it attaches its handler right after Cinder's test base has
set logging up and before any service starts (the harness's ``_get_flags``
hook), at DEBUG.
"""

import io
import logging


class CapturedLogs:
    """Mix-in: ``self.all_logs()`` is the whole log text so far."""

    def _get_flags(self):
        self._log_buffer = io.StringIO()
        handler = logging.StreamHandler(self._log_buffer)
        handler.setFormatter(logging.Formatter(
            '%(levelname)s [%(name)s] %(message)s'))
        handler.setLevel(logging.DEBUG)
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)

        def restore():
            root.removeHandler(handler)
            root.setLevel(old_level)
        self.addCleanup(restore)
        return super()._get_flags()

    def all_logs(self):
        return self._log_buffer.getvalue()
