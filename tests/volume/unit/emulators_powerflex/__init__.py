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
"""Tests of the PowerFlex gateway emulator, driven by Cinder's own driver.

Cinder's unit-test package monkey-patches the process with eventlet when
imported; it must happen before anything imports threading, sockets or
urllib3, as in Cinder's own test tree, so it is imported first here.
"""

import cinder.tests.unit  # noqa: F401
