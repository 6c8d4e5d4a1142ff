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
object), so the suite is separate stestr runs, one per side. The third,
tests/e2e, drives the whole cloud (./run cloud) from outside with one
worker; it mostly waits on the cloud's services, so it runs alongside the
volume side (its own stestr repository, its lines prefixed ``[e2e]``),
and the compute side follows it there (``.stestr-compute``, lines
prefixed ``[compute]``): the suite takes the longer of the two paths
instead of their sum (the volume side is the longer one).
"""

import json
import os
import subprocess
import sys
import threading

# With stestr's default concurrency.
SUITES = ('./tests/volume',)
# Run alongside SUITES, one after the other, each with its own stestr
# repository (stestr's --repo-url is the directory that holds a .stestr
# repository), its label and its extra arguments: the e2e suite with one
# worker, one cloud per process (tests/e2e/base.py), then the compute
# side.
ALONGSIDE = (('./tests/e2e', '.stestr-e2e', 'e2e', ['--concurrency', '1']),
             ('./tests/compute', '.stestr-compute', 'compute', []))
DEFAULT_REPO = '.'

_COUNTER = r'''
import json
import sys
import subunit
import testtools
counts = {'passed': 0, 'failed': 0, 'skipped': 0}
failed = []


def on_test(test):
    status = test['status']
    if status in ('success', 'xfail'):
        counts['passed'] += 1
    elif status == 'skip':
        counts['skipped'] += 1
    elif status in ('fail', 'uxsuccess'):
        counts['failed'] += 1
        tb = test['details'].get('traceback')
        failed.append((test['id'], tb.as_text() if tb is not None else ''))


result = testtools.StreamToDict(on_test)
result.startTestRun()
subunit.ByteStreamToStreamResult(sys.stdin.buffer).run(result)
result.stopTestRun()
print(counts['passed'], counts['failed'], counts['skipped'])
for test_id, tb in failed:
    print(test_id + '\t' + json.dumps(tb))
'''

_print_lock = threading.Lock()


def _say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def _next_stream(repo: str) -> str:
    try:
        with open(os.path.join(repo, '.stestr', 'next-stream')) as f:
            return f.read().strip()
    except OSError:
        return ''


#: characters of a failure's reason repeated in the closing summary
REASON_CHARS = 1500


def reason(details: str) -> str:
    """The end of a failure's traceback: the exception and its message.

    From the first unindented line after the last ``Traceback`` header
    (``AssertionError: ...``) to the end, at most :data:`REASON_CHARS`
    characters: what a CI log's tail must show for the failure to be
    understood without the run's whole output.
    """
    lines = details.rstrip().splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.startswith('Traceback (most recent call last)'):
            start = i + 1
    while (start < len(lines) - 1 and
           (not lines[start] or lines[start][0].isspace())):
        start += 1
    text = '\n'.join(lines[start:]).strip()
    if len(text) > REASON_CHARS:
        text = text[:REASON_CHARS] + ' [...]'
    return text


def _counts(repo: str) -> tuple[int, int, int, list[str]]:
    """(passed, failed, skipped, the failed) of repo's last run.

    Each failed one as its id, then its :func:`reason` indented.
    """
    last = subprocess.run([sys.executable, '-m', 'stestr', '--repo-url', repo,
                           'last', '--subunit'],
                          capture_output=True, check=False)
    out = subprocess.run([sys.executable, '-c', _COUNTER], input=last.stdout,
                         capture_output=True, check=False)
    lines = out.stdout.decode(errors='replace').splitlines()
    try:
        p, f, s = (int(x) for x in lines[0].split())
    except (IndexError, ValueError):
        return 0, 0, 0, []
    failed = []
    for line in lines[1:]:
        test_id, _, details = line.partition('\t')
        try:
            why = reason(json.loads(details)) if details else ''
        except ValueError:
            why = ''
        failed.append(test_id + ''.join(f'\n    {w}'
                                        for w in why.splitlines()))
    return p, f, s, failed


def _command(suite: str, repo: str, argv: list[str],
             extra: list[str]) -> list[str]:
    return [sys.executable, '-m', 'stestr', '--repo-url', repo,
            '--test-path', suite, '--top-dir', './', 'run'] + extra + argv


def _start(suite: str, repo: str, argv: list[str],
           extra: list[str]) -> subprocess.Popen:
    """stestr on ``suite``, its output one pipe of text lines."""
    env = dict(os.environ)
    # Cinder's and Nova's own deprecation notices drown the results.
    env.setdefault('PYTHONWARNINGS', 'ignore::DeprecationWarning')
    return subprocess.Popen(_command(suite, repo, argv, extra), env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            errors='replace')


Result = tuple[int, int, int, int, list[str]]


def _result(rc: int, repo: str, before: str, argv: list[str]) -> Result:
    """(rc, passed, failed, skipped, failed ids) of repo's run just ended."""
    if _next_stream(repo) == before:
        # No new run was recorded (e.g. a filter matching nothing on
        # this side): count nothing rather than the previous run.
        return (0 if argv else rc), 0, 0, 0, []
    p, f, s, ids = _counts(repo)
    if argv and p + f + s == 0:
        # A filter that matched nothing on this side (stestr still
        # initialises a new repository): nothing ran, nothing failed.
        return 0, 0, 0, 0, []
    if rc != 0 and f == 0:
        f = 1  # a run that failed before running tests still failed
        ids = [f'{repo}: the run itself failed (exit code {rc})']
    return rc, p, f, s, ids


class _Alongside(threading.Thread):
    """:data:`ALONGSIDE`'s suites in turn, in the background.

    Each one's output is prefixed line by line with its label.
    """

    def __init__(self, argv: list[str]) -> None:
        super().__init__(daemon=True)
        self.argv = argv
        self.results: list[Result] = []

    def run(self) -> None:
        for suite, repo, label, extra in ALONGSIDE:
            _say(f'=== stestr: {suite} (alongside, lines prefixed '
                 f'[{label}]) ===\n')
            try:
                os.makedirs(repo, exist_ok=True)
                before = _next_stream(repo)
                proc = _start(suite, repo, self.argv, extra)
                for line in proc.stdout:
                    _say(f'[{label}] {line}')
                self.results.append(
                    _result(proc.wait(), repo, before, self.argv))
            except Exception as exc:
                # counted as a failure, never left out of the summary
                self.results.append(
                    (1, 0, 1, 0, [f'{suite}: not run ({exc!r})']))

    def result(self) -> list[Result]:
        self.join()
        return self.results


def main(argv: list[str]) -> int:
    alongside = _Alongside(argv)
    alongside.start()
    results = []
    for suite in SUITES:
        _say(f'=== stestr: {suite} ===\n')
        before = _next_stream(DEFAULT_REPO)
        proc = _start(suite, DEFAULT_REPO, argv, [])
        for line in proc.stdout:
            _say(line)
        results.append(_result(proc.wait(), DEFAULT_REPO, before, argv))
    _say('=== waiting for ' + ', '.join(a[0] for a in ALONGSIDE) + ' ===\n')
    results.extend(alongside.result())
    worst = next((r[0] for r in results if r[0]), 0)
    passed = sum(r[1] for r in results)
    failed = sum(r[2] for r in results)
    skipped = sum(r[3] for r in results)
    line = f'{passed} passed, {failed} failed'
    if skipped:
        line += f', {skipped} skipped'
    # The names again at the very end: a CI log is often read by its tail,
    # far below each failure's own traceback.
    failures = ''.join(f'FAILED {i}\n' for r in results for i in r[4])
    _say(f'\n{failures}{line}\n')  # alone, whatever stestr left open
    if worst == 0 and passed == 0:
        return 1
    return 1 if failed else worst


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
