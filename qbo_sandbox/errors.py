"""QBO's error bodies: the ``Fault`` envelope, the odd lowercase 401 body and the XML 429 body.

Every rejection in the sandbox is a :class:`QBOError`; the message and detail strings are the
ones QBO sends (from ``tests/fixtures/qbo-samples`` and the reference notes) so clients that match on
them behave as they would against Intuit.
"""

from __future__ import annotations

from typing import Any

STALE_DETAIL = (
    "Stale Object Error : You and root were working on this at the same time. "
    "root finished before you did, so your work was not saved."
)
NOT_FOUND_DETAIL = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)
DUPLICATE_NAME_DETAIL = (
    "The name supplied already exists. : Another {what} is already using this \nname. "
    "Please use a different name."
)
BUSINESS_MESSAGE = "A business validation error has occurred while processing your request"
NAME_AT_A_TIME = "Business Validation Error: You can only add or edit one name at a time. Please try again."
ITEM_AT_A_TIME = (
    "Business Validation Error: You can only add or edit one product or service at a time. "
    "Please try again."
)


class QBOError(Exception):
    """One QBO error; ``status`` is the HTTP status used when it is the whole answer."""

    def __init__(
        self,
        code: str | int,
        message: str,
        detail: str = "",
        *,
        element: str = "",
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = str(code)
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def fault(self) -> dict[str, Any]:
        """The ``Fault`` object (as in a response body or a batch item)."""
        return {
            "Error": [
                {
                    "Message": self.message,
                    "Detail": self.detail,
                    "code": self.code,
                    "element": self.element,
                }
            ],
            "type": self.fault_type,
        }


def stale_object() -> QBOError:
    return QBOError(5010, "Stale Object Error", STALE_DETAIL)


def object_not_found() -> QBOError:
    return QBOError(610, "Object Not Found", NOT_FOUND_DETAIL)


def duplicate_name(what: str) -> QBOError:
    return QBOError(6240, "Duplicate Name Exists Error", DUPLICATE_NAME_DETAIL.format(what=what))


def required_missing(param: str) -> QBOError:
    return QBOError(
        2020,
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {param} is missing in the request",
        element=param,
    )


def too_long(element: str, maximum: int, supplied: int) -> QBOError:
    return QBOError(
        2050,
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. Min:0 Max:{maximum:,} "
        f"supported. Supplied length:{supplied:,}",
        element=element,
    )


def invalid_email(element: str, value: str) -> QBOError:
    return QBOError(
        2210,
        "Invalid Email Address format",
        f"Email Address does not conform to the syntax rules of RFC 822. Supplied value:{value}",
        element=element,
    )


def invalid_enum(element: str, value: Any) -> QBOError:
    return QBOError(
        2170, "Invalid Enumeration", f"Invalid Enumeration : {value}", element=element
    )


def invalid_reference(kind: str, ref: str, name: str | None = None) -> QBOError:
    if name is not None:
        detail = (
            f"Invalid Reference Id : {kind} assigned to this transaction has been deleted. "
            f"Before you can modify this transaction, you must restore {name}."
        )
    else:
        detail = f"Invalid Reference Id : {kind} with Id {ref} does not exist or has been made inactive."
    return QBOError(2500, "Invalid Reference Id", detail)


def business(detail: str) -> QBOError:
    """Code 6000, QBO's catch-all; the detail carries the reason."""
    return QBOError(6000, BUSINESS_MESSAGE, f"Business Validation Error: {detail}")


def name_conflict(items: bool = False) -> QBOError:
    return QBOError(6000, BUSINESS_MESSAGE, ITEM_AT_A_TIME if items else NAME_AT_A_TIME)


def duplicate_doc_number() -> QBOError:
    return QBOError(
        6140,
        "Duplicate Document Number Error",
        "Duplicate Document Number Error : You must specify a different number. "
        "This number has already been used. ",
    )


def period_closed() -> QBOError:
    return QBOError(
        6210,
        "Account Period Closed",
        "Account Period Closed, cannot update through Services API",
    )


def unsupported(detail: str) -> QBOError:
    return QBOError(500, "Unsupported Operation", detail)


def bad_request_body(detail: str) -> QBOError:
    return QBOError(2010, "Request has invalid or unsupported property", detail)


def auth_failed_body(now_ms: int, reason: str | None) -> dict[str, Any]:
    """The 401 body: lowercase keys and epoch-millisecond ``time`` (fault-401-authentication-3200.json)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": reason,
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": now_ms,
        "status": None,
        "cdcresponse": [],
    }


def forbidden_body(now_ms: int) -> dict[str, Any]:
    """403 for a realm the token is not for (same lowercase shape as the 401)."""
    body = auth_failed_body(now_ms, None)
    body["fault"] = {
        "error": [
            {
                "message": "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                "detail": None,
                "code": "3100",
                "element": None,
            }
        ],
        "type": "AUTHORIZATION",
    }
    return body


def throttle_xml(time_str: str) -> bytes:
    """The 429 body: XML even when JSON was asked for (fault-throttle-429.xml)."""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{time_str}" xmlns="http://schema.intuit.com/finance/v3">\n'
        '  <Fault type="SERVICE">\n'
        '    <Error code="3001">\n'
        "      <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
        "      <Detail>The request limit was reached.  Try again later</Detail>\n"
        "    </Error>\n"
        "  </Fault>\n"
        "</IntuitResponse>\n"
    ).encode()
