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
"""HMC errors the emulator raises, with the HMC's status and reason codes.

Every error is a ``zhmcclient.mock`` ``FakedHTTPError``, so the faked
session turns it into ``zhmcclient.HTTPError`` in-process, and the HTTPS
server answers it as the HMC's JSON error body (``http-status``, ``reason``,
``message``, ``request-method``, ``request-uri``).

Status and reason codes (IBM HMC Web Services API book, "HTTP status codes"
and the error tables of each operation):

* 400 reason 7: a request body field has a value that is not valid (length
  or enumeration); the mock uses 400.7 for the same class of error.
* 400 reason 8: the ``name`` is not unique where the data model requires it
  ("The name must be unique on a hosting CPC", Partition data model).
* 403 reason 0: logon refused (user or password not valid); 403 reason 4/5:
  no or an unknown ``X-API-Session`` (zhmcclient re-logs on for 4 and 5,
  ``_session.py``).
* 404 reason 1: unknown resource URI.
* 409 reason 1: the target object's status is not valid for the operation
  (``check_partition_status`` of the mock; nova-dpm relied on it).

IPL failures are not synchronous errors: Start Partition is asynchronous,
so they complete the job with ``job-status-code`` :data:`IPL_STATUS` and
``job-reason-code`` :data:`IPL_REASON`. The exact codes a real HMC reports
for a failed load are not documented in what was available; 500/263 is the
emulator's choice, the message names what was wrong.
"""

from __future__ import annotations

from zhmcclient.mock._urihandler import (  # private API: zhmcclient pinned
    BadRequestError, ConflictError, FakedHTTPError, InvalidResourceError)

__all__ = ['BadRequestError', 'ConflictError', 'FakedHTTPError',
           'InvalidResourceError', 'IplFailed', 'IPL_STATUS', 'IPL_REASON',
           'INVALID_VALUE', 'NAME_NOT_UNIQUE', 'invalid_value',
           'name_not_unique', 'wrong_status']

INVALID_VALUE = 7
NAME_NOT_UNIQUE = 8
STATUS_NOT_VALID = 1
IPL_STATUS = 500
IPL_REASON = 263


def invalid_value(method: str, uri: str, message: str) -> BadRequestError:
    return BadRequestError(method, uri, reason=INVALID_VALUE,
                           message=message)


def name_not_unique(method: str, uri: str, message: str) -> BadRequestError:
    return BadRequestError(method, uri, reason=NAME_NOT_UNIQUE,
                           message=message)


def wrong_status(method: str, uri: str, message: str) -> ConflictError:
    return ConflictError(method, uri, reason=STATUS_NOT_VALID,
                         message=message)


class IplFailed(FakedHTTPError):
    """The load (IPL) of a partition failed; the partition stays stopped.

    In-process (``FakedSession``) it surfaces as ``zhmcclient.HTTPError``
    with ``http_status`` 500 and ``reason`` 263; over HTTPS it completes
    the Start Partition job with those codes and the message in
    ``job-results``.
    """

    def __init__(self, method: str, uri: str, message: str,
                 stage: str = 'lun') -> None:
        super().__init__(method, uri, http_status=IPL_STATUS,
                         reason=IPL_REASON, message=message)
        # 'target': the target port is not reachable; 'lun': the target is,
        # the LUN behind it is not (or it holds no boot record).
        self.stage = stage
