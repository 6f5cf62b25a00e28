"""The one exception type of the project: a message, a hint, and the exit code the CLI uses."""

from __future__ import annotations

USAGE_EXIT_CODE = 2
RUNTIME_EXIT_CODE = 1


class SSLError(Exception):
    """An error a user can act on.

    ``message`` says what went wrong in one sentence; ``hint`` says what to do about it.
    ``exit_code`` is 2 for bad usage or input and 1 for a failure at run time.
    """

    def __init__(self, message: str, hint: str = "", *, exit_code: int = USAGE_EXIT_CODE) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def usage_error(message: str, hint: str = "") -> SSLError:
    """Bad usage or bad input: exit code 2."""
    return SSLError(message, hint, exit_code=USAGE_EXIT_CODE)


def runtime_error(message: str, hint: str = "") -> SSLError:
    """A failure while running (not the user's input): exit code 1."""
    return SSLError(message, hint, exit_code=RUNTIME_EXIT_CODE)
