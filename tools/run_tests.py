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
"""Run the whole suite with stestr and print one plain closing summary.

Cinder and Nova cannot be imported into one Python process (both register
options such as ``default_availability_zone`` on the global oslo.config
object), so the suite is separate stestr runs, one per side; the third,
tests/e2e, drives the whole cloud (./run cloud) from outside, one worker.
"""

import os
import subprocess
import sys

SUITES = ('./tests/volume', './tests/compute', './tests/e2e')
# The end-to-end suite shares one cloud per process (tests/e2e/base.py).
SERIAL = ('./tests/e2e',)

_COUNTER = r'''
import sys
import subunit
import testtools
summary = testtools.StreamSummary()
summary.startTestRun()
subunit.ByteStreamToStreamResult(sys.stdin.buffer).run(summary)
summary.stopTestRun()
failed = len(summary.errors) + len(summary.failures)
skipped = len(summary.skipped)
print(summary.testsRun - failed - skipped, failed, skipped)
'''


def _next_stream() -> str:
    try:
        with open(os.path.join('.stestr', 'next-stream')) as f:
            return f.read().strip()
    except OSError:
        return ''


def _counts() -> tuple[int, int, int]:
    last = subprocess.run([sys.executable, '-m', 'stestr', 'last',
                           '--subunit'], capture_output=True, check=False)
    out = subprocess.run([sys.executable, '-c', _COUNTER], input=last.stdout,
                         capture_output=True, check=False)
    try:
        p, f, s = (int(x) for x in out.stdout.decode().split())
    except ValueError:
        return 0, 0, 0
    return p, f, s


def main(argv: list[str]) -> int:
    passed = failed = skipped = 0
    worst = 0
    for suite in SUITES:
        print(f'=== stestr: {suite} ===', flush=True)
        before = _next_stream()
        env = dict(os.environ)
        # Cinder's and Nova's own deprecation notices drown the results.
        env.setdefault('PYTHONWARNINGS', 'ignore::DeprecationWarning')
        extra = ['--concurrency', '1'] if suite in SERIAL else []
        rc = subprocess.call([sys.executable, '-m', 'stestr', '--test-path',
                              suite, '--top-dir', './', 'run'] + extra + argv,
                             env=env)
        if _next_stream() == before:
            # No new run was recorded (e.g. a filter matching nothing on
            # this side): count nothing rather than the previous run.
            p = f = s = 0
            if argv:
                rc = 0
        else:
            p, f, s = _counts()
        if rc != 0 and f == 0:
            f = 1  # a run that failed before running tests still failed
        passed, failed, skipped = passed + p, failed + f, skipped + s
        worst = worst or rc
    line = f'{passed} passed, {failed} failed'
    if skipped:
        line += f', {skipped} skipped'
    print(f'\n{line}')  # alone on its line, whatever stestr left open
    if worst == 0 and passed == 0:
        return 1
    return 1 if failed else worst


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
