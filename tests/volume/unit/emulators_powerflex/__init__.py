"""Tests of the PowerFlex gateway emulator, driven by Cinder's own driver.

Cinder's unit-test package monkey-patches the process with eventlet when
imported; it must happen before anything imports threading, sockets or
urllib3, as in Cinder's own test tree, so it is imported first here.
"""

import cinder.tests.unit  # noqa: F401
