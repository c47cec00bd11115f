"""Emulators of the three upstream APIs, served over real HTTP on loopback.

They follow `shared/reference/` independently of the providers: nothing here imports the gateway.
"""

from ._runner import EMULATORS, RunningSandbox, start_sandbox
from ._spec import EmulatorSpec

__all__ = ["EMULATORS", "EmulatorSpec", "RunningSandbox", "start_sandbox"]
