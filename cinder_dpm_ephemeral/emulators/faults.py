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
"""Random faults at a chosen rate, repeatable by seed, for the emulators.

A fault campaign (``./run faults``) sets, through the emulator's control
pipe (:mod:`.process`), a rate and a seed: every management call then
draws whether it fails and how, among the modes the emulator offers
(each emulator documents which real behaviour each mode imitates). The
draws come from one seeded generator per emulator, so a run with the
same seed and the same sequence of calls injects the same faults.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from typing import Any

LOG = logging.getLogger(__name__)


class DropConnection(Exception):
    """Raised by a command handler: drop the client's connection unanswered.

    The server closes the transport (SSH) or the socket (HTTP) with no
    answer, whether or not the command took effect.
    """


class FaultDice:
    """Draws a fault mode (or none) per call, at ``rate``, among ``modes``.

    ``modes`` maps a mode name to its weight (relative share of the
    faults). ``counts`` says how many of each were injected.
    """

    def __init__(self, modes: dict[str, float], rate: float = 0.0,
                 seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.known = dict(modes)
        self.configure(rate, seed)

    def configure(self, rate: float, seed: int | None = None,
                  modes: dict[str, float] | None = None,
                  **params: Any) -> None:
        """Start injecting at ``rate`` (0 stops), with these mode weights.

        ``params`` are mode parameters the emulator reads
        (:meth:`param`), e.g. ``slow_seconds``.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f'fault rate {rate} is not between 0 and 1')
        weights = dict(self.known if modes is None else modes)
        unknown = set(weights) - set(self.known)
        if unknown:
            raise ValueError(f'unknown fault modes {sorted(unknown)}; '
                             f'known: {sorted(self.known)}')
        with self._lock:
            self.rate = rate
            self._rng = random.Random(seed)
            self._modes = [m for m, w in weights.items() if w > 0]
            self._weights = [weights[m] for m in self._modes]
            self.params = dict(params)
            self.counts = {m: 0 for m in self.known}

    def draw(self) -> str | None:
        """The fault mode for this call, or None (no fault)."""
        with self._lock:
            if not self.rate or not self._modes:
                return None
            if self._rng.random() >= self.rate:
                return None
            mode = self._rng.choices(self._modes, self._weights)[0]
            self.counts[mode] += 1
            return mode

    def param(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {'rate': self.rate, 'injected': dict(self.counts)}


#: in a standalone emulator's state directory: the faults to inject, as
#: JSON ``{"rate": R, "seed": S, "params": {...}, "write_rate": W}``
CONTROL_FILE = 'faults.json'
#: written beside it: ``{"rate": R, "injected": {mode: count}}``
STATS_FILE = 'faults-stats.json'


def watch_control_file(emulator: Any, state_dir: str, stop: threading.Event,
                       interval: float = 0.5) -> threading.Thread:
    """Apply ``state_dir/faults.json`` to a running standalone emulator.

    The emulators of the whole cloud run as their own processes with no
    control pipe; a fault campaign against that cloud writes this file
    (atomically) and the emulator picks it up within ``interval``. Its
    counts go to ``faults-stats.json`` while faults are armed. A missing
    file means no faults.
    """
    control = os.path.join(state_dir, CONTROL_FILE)
    stats_path = os.path.join(state_dir, STATS_FILE)

    applied: dict[str, Any] = {'generation': None}

    def apply(spec: dict[str, Any]) -> None:
        applied['generation'] = spec.get('generation')
        rate = float(spec.get('rate', 0.0))
        seed = spec.get('seed')
        emulator.set_faults(rate, seed, **dict(spec.get('params') or {}))
        if hasattr(emulator, 'set_write_faults'):
            emulator.set_write_faults(float(spec.get('write_rate', 0.0)),
                                      seed)
        LOG.warning('fault injection: rate %s, seed %s (from %s)', rate,
                    seed, control)

    def loop() -> None:
        seen: float | None = None
        while not stop.wait(interval):
            try:
                mtime: float | None = os.stat(control).st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != seen:
                seen = mtime
                try:
                    if mtime is None:
                        apply({'rate': 0.0})
                    else:
                        with open(control) as f:
                            apply(json.load(f))
                except (OSError, ValueError, TypeError) as exc:
                    LOG.error('fault injection: %s ignored: %s', control,
                              exc)
            if seen is not None:
                tmp = stats_path + '.tmp'
                with open(tmp, 'w') as f:
                    json.dump(dict(emulator.fault_stats(), **applied), f)
                os.replace(tmp, stats_path)

    thread = threading.Thread(target=loop, name='fault-control',
                              daemon=True)
    thread.start()
    return thread


def write_control_file(state_dir: str, rate: float, seed: int | None = None,
                       write_rate: float = 0.0, wait: float = 15.0,
                       **params: Any) -> None:
    """Arm (or, with rate 0, disarm) a standalone emulator's faults.

    Returns once the emulator says (in its stats file) it applied them;
    raises ``TimeoutError`` after ``wait`` seconds (0: do not wait).
    """
    path = os.path.join(state_dir, CONTROL_FILE)
    tmp = path + '.tmp'
    generation = time.time_ns()
    with open(tmp, 'w') as f:
        json.dump({'rate': rate, 'seed': seed, 'write_rate': write_rate,
                   'params': params, 'generation': generation}, f)
    os.replace(tmp, path)
    deadline = time.monotonic() + wait
    while wait and read_stats(state_dir).get('generation') != generation:
        if time.monotonic() > deadline:
            raise TimeoutError(f'the emulator with state in {state_dir} did '
                               f'not apply {path} within {wait} s: is it '
                               f'running?')
        time.sleep(0.1)


def read_stats(state_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(state_dir, STATS_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
