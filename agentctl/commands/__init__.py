"""One module per ``agentctl`` verb: each takes a :class:`Session` and plain
arguments, calls the core and returns a frozen result dataclass.

Commands never print, prompt or exit: ``agentctl.cli`` parses the arguments,
calls the command, hands the result to :mod:`agentctl.render` and maps it to
an exit code. Anything a user can cause is raised as
:class:`agentctl.errors.AgentctlError`. Callbacks (progress, lock waits,
warnings) are passed in by the caller, so a command runs the same under the
CLI, a test or another program.
"""

from agentctl.commands.session import Session

__all__ = ["Session"]
