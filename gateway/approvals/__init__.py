"""Change approvals run by an OA system ([approvals] oa): instances created through the outbox,
decisions taken from the OA's signed callbacks, status changes pushed back."""

OUTBOX_CHANNEL = "connector"
CREATE = "oa_create"
STATUS = "status_sync"


def oa_channel(connector: str) -> str:
    """The journal channel of what an OA decided (the column holds 32 characters)."""
    return f"oa:{connector}"[:32]
