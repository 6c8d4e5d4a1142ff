"""Configuration options of the cinder-dpm-ephemeral volume drivers.

This module imports no vendor library, so ``oslo-config-generator`` and the
documentation can list the options anywhere.
"""

from __future__ import annotations

from oslo_config import cfg

emulation_opts = [
    cfg.StrOpt(
        'dpm_ephemeral_emulator_state_dir',
        default=None,
        help='The emulation switch. Leave unset in production: image data '
             'then reach the LUN over the array\'s own protocol (Fibre '
             'Channel for SVC), exactly as Cinder\'s in-tree driver does. '
             'Set it to the state directory of a dpm-ephemeral-emulator '
             '(the array emulator shipped with this project, for CI, '
             'devstack and demos without hardware): the control path still '
             'speaks the array\'s real protocol to the emulator, but image '
             'copies open the emulated LUN\'s file through os-brick\'s LOCAL '
             'connector instead of attaching it over FC. Connection info '
             'given to Nova is unchanged.'),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The options of this project, for oslo-config-generator."""
    return [('backend_defaults', list(emulation_opts))]
