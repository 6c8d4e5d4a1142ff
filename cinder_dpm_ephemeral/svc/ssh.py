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
"""SVC CLI commands over SSH that survive a busy cluster and lost sessions.

Two gaps of the in-tree path, which runs each command once through
``oslo_concurrency.processutils.ssh_execute``:

* a session that closes without an exit status (the configuration node
  failed over, the connection dropped) is *not an error* there: it checks
  the exit status only when one came (``exit_status != -1``). A dropped
  ``rmvdisk`` then reads as a success while the vdisk stays, and a
  dropped ``mkvdisk`` as a parse error while the vdisk exists;
* ``CMMVC5786E`` (the cluster is not in a stable state; nothing was
  done) fails the whole operation at once, though it passes in seconds.
  Commands the in-tree code runs with ``check_exit_code=False`` (``lsvdisk``
  reads "does not exist" from the error output) see it as an error
  answer and raise at once, even in the delete Cinder runs to clean up
  after a failed create, whose failure it ignores: the LUN of the failed
  attempt then stays on the array (found by the fault campaign).

:func:`execute` raises :class:`SessionLost` for the first, and
:func:`run` retries what is safe to retry:

* ``CMMVC5786E``: any command (the cluster did nothing);
* a lost session: listings (``ls*``) and removals (``rm*``); a removal
  whose retry answers "does not exist" (``CMMVC5753E``/``CMMVC5754E``)
  took effect the first time. Other commands (``mk*``, ``ch*``,
  ``start*``...) are not retried: whether they ran is unknown, so the
  operation fails and its own clean-up, or the delete of the volume in
  ``error``, removes what may exist.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import paramiko
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import strutils

LOG = logging.getLogger(__name__)

BUSY = ('CMMVC5786E',)
NOT_FOUND = ('CMMVC5753E', 'CMMVC5754E')
#: seconds to wait before each retry (so at most len + 1 attempts)
BACKOFF = (0.5, 1.0, 2.0, 4.0)


class Busy(processutils.ProcessExecutionError):
    """``CMMVC5786E``: the cluster did nothing; the command may run again.

    Raised whatever ``check_exit_code`` says; :func:`run` hands the
    answer back as it came when the retries are used up and the caller
    reads errors itself.
    """

    def __init__(self, cmd: str, out: str, err: str, exit_code: int,
                 check_exit_code: bool) -> None:
        super().__init__(exit_code=exit_code,
                         stdout=strutils.mask_password(out), stderr=err,
                         cmd=cmd)
        self.answer = (out, err)
        self.check_exit_code = check_exit_code


class SessionLost(processutils.ProcessExecutionError):
    """The SSH session ended with no exit status: outcome unknown."""

    def __init__(self, cmd: str, why: str = '') -> None:
        super().__init__(
            exit_code=-1, stdout='', cmd=cmd,
            stderr=('the SSH session ended without an exit status'
                    + (f' ({why})' if why else '')
                    + '; whether the command ran is unknown'))


def execute(ssh: paramiko.SSHClient, command: str,
            check_exit_code: bool = True) -> tuple[str, str]:
    """``processutils.ssh_execute``, except a lost session raises."""
    stdin, stdout, stderr = ssh.exec_command(command)
    channel = stdout.channel
    out = os.fsdecode(stdout.read())
    err = strutils.mask_password(os.fsdecode(stderr.read()))
    stdin.close()
    status = channel.recv_exit_status()
    if status == -1:
        raise SessionLost(strutils.mask_password(command))
    if status != 0 and any(c in err for c in BUSY):
        raise Busy(strutils.mask_password(command), out, err, status,
                   check_exit_code)
    if check_exit_code and status != 0:
        raise processutils.ProcessExecutionError(
            exit_code=status, stdout=strutils.mask_password(out),
            stderr=err, cmd=strutils.mask_password(command))
    return out, err


def verb(command: str) -> str:
    words = [w for w in command.split() if w not in ('svcinfo', 'svctask')]
    return words[0] if words else ''


def run(once: Callable[[], tuple[str, str]], command: str,
        sleep: Callable[[float], object] = time.sleep) -> tuple[str, str]:
    """Run ``once()`` (one attempt of ``command``), retrying what is safe."""
    v = verb(command)
    listing, removal = v.startswith('ls'), v.startswith('rm')
    lost_once = False
    for attempt in range(len(BACKOFF) + 1):
        last = attempt == len(BACKOFF)
        try:
            return once()
        except SessionLost as exc:
            if not (listing or removal) or last:
                raise
            lost_once = True
            why = exc.stderr
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # The connection failed: the command may or may not have run.
            if not (listing or removal) or last:
                raise SessionLost(strutils.mask_password(command),
                                  f'{type(exc).__name__}: {exc}')
            lost_once = True
            why = f'{type(exc).__name__}: {exc}'
        except Busy as exc:
            if last:
                if exc.check_exit_code:
                    raise
                return exc.answer
            why = (exc.stderr or '').strip()
        except processutils.ProcessExecutionError as exc:
            err = exc.stderr or ''
            if removal and lost_once and any(c in err for c in NOT_FOUND):
                LOG.info('%s: gone on retry; the attempt whose session was '
                         'lost had removed it.', v)
                return '', ''
            raise
        LOG.warning('SVC command %(verb)s: %(why)s; retrying in %(s).1f s.',
                    {'verb': v, 'why': why, 's': BACKOFF[attempt]})
        sleep(BACKOFF[attempt])
    raise AssertionError('unreachable')
