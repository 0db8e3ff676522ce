"""Routes without a token: health and enrollment."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from sync_server.api.context import State
from sync_server.db.engine import reading
from sync_server.enrollment import EnrollmentPolicy, redeem_code

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["public"])


class EnrollRequest(BaseModel):
    """The one-time code an operator gave the installer."""

    code: str = Field(min_length=1, max_length=64)


@router.get("/health")
def health(state: State) -> dict[str, str]:
    """``ok`` once the database answers."""
    with reading(state.engine) as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.post("/enroll")
def enroll(body: EnrollRequest, request: Request, state: State) -> dict[str, object]:
    """Trade an enrollment code for the gateway's identity, token and pinned keys."""
    client = request.client.host if request.client else "unknown"
    policy = EnrollmentPolicy(state.settings.enroll_max_failures,
                              state.settings.enroll_window_s)
    return redeem_code(state.engine, body.code, client=client, policy=policy, key=state.key)
