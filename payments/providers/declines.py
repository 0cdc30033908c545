"""The decline table: every provider's refusal codes mapped to SPEC's decline classes and
our own failure codes, in one place for both providers (docs/providers.md, "Declines").

A code the table does not know is a hard `card_declined`: a hard decline is never retried
automatically, which is the safe guess for a refusal we do not understand (a soft one
would invite retries that may be refused again, or flag the card). It is logged, so that
the table can learn it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from payments.providers.base import DeclineClass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decline:
    """How we report one provider refusal."""

    decline_class: DeclineClass
    failure_code: str
    message: str


_CARD_DECLINED = Decline(DeclineClass.HARD, "card_declined", "The card was declined.")
_INSUFFICIENT_FUNDS = Decline(
    DeclineClass.SOFT, "insufficient_funds", "The card has insufficient funds."
)
_EXPIRED_CARD = Decline(DeclineClass.HARD, "expired_card", "The card has expired.")
_FRAUDULENT = Decline(DeclineClass.FRAUD, "fraudulent", "The payment was refused as fraudulent.")
_INCORRECT_CVC = Decline(DeclineClass.HARD, "incorrect_cvc", "The card's security code is wrong.")
_OVER_LIMIT = Decline(DeclineClass.SOFT, "card_velocity_exceeded", "The card is over its limit.")
_INVALID_REQUEST = Decline(
    DeclineClass.HARD, "invalid_request", "The provider refused the request as invalid."
)
_INVALID_STATE = Decline(
    DeclineClass.HARD, "invalid_state", "The payment is not in a state that allows this."
)
_AMOUNT_TOO_LARGE = Decline(
    DeclineClass.HARD, "amount_too_large", "The amount is more than the provider allows."
)
_ALREADY_REFUNDED = Decline(
    DeclineClass.HARD, "charge_already_refunded", "The payment is already refunded in full."
)
_NO_SUCH_OBJECT = Decline(DeclineClass.HARD, "invalid_request", "The provider has no such object.")
_ISSUER_UNAVAILABLE = Decline(
    DeclineClass.TEMPORARY, "issuer_unavailable", "The card's issuer could not be reached."
)

# (provider, the provider's code) -> Decline. Stripe: a card error's `decline_code` when it
# has one, else its `code`; also the codes of its invalid-request errors. Adyen: a refusal's
# `refusalReasonCode`, and the `errorCode` of its validation errors.
DECLINES: dict[tuple[str, str], Decline] = {
    **{
        (provider, code): _INVALID_REQUEST
        for provider in ("stripe", "adyen")
        for code in (
            "parameter_invalid",
            "parameter_invalid_integer",
            "parameter_missing",
            "parameter_unknown",
        )
    },
    ("stripe", "card_declined"): _CARD_DECLINED,
    ("stripe", "generic_decline"): _CARD_DECLINED,
    ("stripe", "do_not_honor"): _CARD_DECLINED,
    ("stripe", "insufficient_funds"): _INSUFFICIENT_FUNDS,
    ("stripe", "card_velocity_exceeded"): _OVER_LIMIT,
    ("stripe", "expired_card"): _EXPIRED_CARD,
    ("stripe", "incorrect_cvc"): _INCORRECT_CVC,
    ("stripe", "fraudulent"): _FRAUDULENT,
    ("stripe", "lost_card"): _FRAUDULENT,
    ("stripe", "stolen_card"): _FRAUDULENT,
    ("stripe", "processing_error"): _ISSUER_UNAVAILABLE,
    ("stripe", "try_again_later"): _ISSUER_UNAVAILABLE,
    ("stripe", "resource_missing"): _NO_SUCH_OBJECT,
    ("stripe", "amount_too_large"): _AMOUNT_TOO_LARGE,
    ("stripe", "payment_intent_unexpected_state"): _INVALID_STATE,
    ("stripe", "charge_already_refunded"): _ALREADY_REFUNDED,
    ("adyen", "2"): _CARD_DECLINED,  # Refused
    ("adyen", "5"): _CARD_DECLINED,  # Blocked Card
    ("adyen", "6"): _EXPIRED_CARD,  # Expired Card
    ("adyen", "9"): _ISSUER_UNAVAILABLE,  # Issuer Unavailable
    ("adyen", "12"): _INSUFFICIENT_FUNDS,  # Not enough balance
    ("adyen", "14"): _FRAUDULENT,  # Acquirer Fraud
    ("adyen", "20"): _FRAUDULENT,  # FRAUD
    ("adyen", "22"): _FRAUDULENT,  # FRAUD-CANCELLED
    ("adyen", "24"): _INCORRECT_CVC,  # CVC Declined
    ("adyen", "28"): _OVER_LIMIT,  # Withdrawal amount exceeded
    ("adyen", "31"): _FRAUDULENT,  # Issuer Suspected Fraud
    ("adyen", "resource_missing"): _NO_SUCH_OBJECT,
    ("adyen", "amount_too_large"): _AMOUNT_TOO_LARGE,
    ("adyen", "unexpected_state"): _INVALID_STATE,
    ("adyen", "charge_already_refunded"): _ALREADY_REFUNDED,
    # Our merchant account is not the provider's: configuration, not the card.
    ("adyen", "901"): Decline(
        DeclineClass.TEMPORARY, "provider_configuration", "The provider refused our account."
    ),
}


def decline_lookup(*, provider: str, code: str) -> Decline:
    """How to report the refusal `code` of `provider`; an unknown code is a hard decline."""
    decline = DECLINES.get((provider, code))
    if decline is not None:
        return decline
    logger.warning("unknown decline code", extra={"provider": provider, "code": code})
    return Decline(
        DeclineClass.HARD,
        "card_declined",
        f"The card was declined (provider code {code or 'none'}).",
    )
