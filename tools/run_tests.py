"""Run the test suite with stestr and print a plain closing summary line."""

import subprocess
import sys


def main(argv: list[str]) -> int:
    cmd = [sys.executable, '-m', 'stestr', 'run', '--color'] + argv
    rc = subprocess.call(cmd)
    last = subprocess.run(
        [sys.executable, '-m', 'stestr', 'last', '--subunit'],
        capture_output=True, check=False)
    passed = failed = skipped = 0
    if last.returncode == 0 or last.stdout:
        summary = subprocess.run(
            [sys.executable, '-m', 'subunit.filter', '-s', '--no-passthrough'],
            input=last.stdout, capture_output=True, check=False)
        del summary
        counts = subprocess.run(
            [sys.executable, '-c', _COUNTER], input=last.stdout,
            capture_output=True, check=False, text=False)
        try:
            passed, failed, skipped = (
                int(x) for x in counts.stdout.decode().split())
        except ValueError:
            pass
    line = f'{passed} passed, {failed} failed'
    if skipped:
        line += f', {skipped} skipped'
    print(line)
    if rc == 0 and passed == 0:
        return 1
    return rc


_COUNTER = r'''
import sys
import subunit
import testtools
from testtools import StreamSummary
case = subunit.ByteStreamToStreamResult(sys.stdin.buffer)
summary = StreamSummary()
result = testtools.StreamToExtendedDecorator(summary)
res = testtools.StreamResultRouter()
summary.startTestRun()
case.run(summary)
summary.stopTestRun()
run = summary.testsRun
failed = len(summary.errors) + len(summary.failures)
skipped = len(summary.skipped)
print(run - failed - skipped, failed, skipped)
'''


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
