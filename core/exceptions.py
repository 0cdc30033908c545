"""The root of every domain error. Interfaces map these to their own error format."""


class DomainError(Exception):
    """A rule of the domain refused the operation; nothing was written.

    `code` is a stable machine-readable string (the API's error `code`), `param` names the
    input at fault when there is one.
    """

    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param


class ValidationError(DomainError):
    """The request itself is malformed or contradicts the domain (a 400 in the API)."""


class NotFound(DomainError):
    code = "resource_missing"


class Declined(DomainError):
    """A valid request the state of the money refused (a 402 in the API)."""

    code = "declined"


class InsufficientFunds(Declined):
    code = "insufficient_funds"


class AccountInactive(Declined):
    code = "account_inactive"


class InvalidState(DomainError):
    """The object is not in a state that allows the operation."""

    code = "invalid_state"
