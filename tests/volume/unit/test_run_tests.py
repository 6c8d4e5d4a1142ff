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
"""./run test's closing summary: counts, and why each failure failed.

A real subunit stream of a small test module (run by python-subunit, as
stestr's workers do) goes through the summary's own counter.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import testtools

from tools import run_tests

MODULE = textwrap.dedent('''
    import logging
    import unittest

    import fixtures
    import testtools


    class T(testtools.TestCase):
        def test_ok(self):
            pass

        def test_fail(self):
            self.useFixture(fixtures.FakeLogger())
            try:
                raise ValueError('a traceback in the captured log')
            except ValueError:
                logging.getLogger('x').exception('logged, not the failure')
            self.assertEqual(0, 1, ['volume abc creating/detached'])

        def test_error(self):
            raise RuntimeError('boom\\nsecond line')

        @unittest.skip('not here')
        def test_skip(self):
            pass
''')


class ClosingSummaryTest(testtools.TestCase):

    def _summary(self):
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work)
        with open(os.path.join(work, 'test_sample.py'), 'w') as f:
            f.write(MODULE)
        stream = subprocess.run(
            [sys.executable, '-m', 'subunit.run', 'test_sample'],
            cwd=work, capture_output=True, check=False).stdout
        out = subprocess.run([sys.executable, '-c', run_tests._COUNTER],
                             input=stream, capture_output=True, check=True)
        return out.stdout.decode().splitlines()

    def test_counts_and_the_failures_reasons(self):
        lines = self._summary()
        self.assertEqual('1 2 1', lines[0])
        failed = dict(line.split('\t', 1) for line in lines[1:])
        self.assertEqual({'test_sample.T.test_error',
                          'test_sample.T.test_fail'}, set(failed))
        self.assertEqual(
            'RuntimeError: boom\nsecond line',
            run_tests.reason(json.loads(failed['test_sample.T.test_error'])))
        # the assertion's message, not the traceback in the captured log
        why = run_tests.reason(json.loads(failed['test_sample.T.test_fail']))
        self.assertIn("0 != 1: ['volume abc creating/detached']", why)
        self.assertNotIn('logged, not the failure', why)

    def test_a_long_reason_is_cut(self):
        tb = ('Traceback (most recent call last):\n  File "x", line 1\n'
              '    f()\nAssertionError: ' + 'x' * 5000 + '\n')
        why = run_tests.reason(tb)
        self.assertTrue(why.startswith('AssertionError: xxx'), why)
        self.assertEqual(run_tests.REASON_CHARS + len(' [...]'), len(why))
