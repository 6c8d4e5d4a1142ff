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

import random
import threading
from typing import Any


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
