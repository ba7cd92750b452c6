"""Submit-time webhook checks: a URL vlmq will not call is a 400 naming the rule.

Nothing is stored or queued for a rejected request; the webhook worker checks the
address again before every attempt, since DNS can change after submission.
"""

from __future__ import annotations

from sqlalchemy import select

from shared.models import Tenant
from shared.schemas import JobCreate
from shared.ssrf import AllowList, UnsafeUrl, check_webhook_url
from web.app_state import app_state
from web.errors import ApiError


def check_webhook(url: str) -> None:
    """Raise a 400 `invalid_webhook` unless `url` may receive deliveries."""
    try:
        check_webhook_url(url, AllowList.parse(app_state().settings.webhook_allow_hosts))
    except UnsafeUrl as exc:
        raise exc.at("webhook") from None


def check_job_webhook(spec: JobCreate, tenant_id: str) -> None:
    """The job's own endpoint must be safe; an events filter needs an endpoint to apply to."""
    if spec.webhook is not None:
        check_webhook(spec.webhook)
    elif spec.webhook_events is not None:
        with app_state().sessions() as session:
            tenant_url = session.scalar(select(Tenant.webhook_url).where(Tenant.id == tenant_id))
        if tenant_url is None:
            raise ApiError(
                "invalid_webhook",
                "webhook_events needs a webhook: send 'webhook' with the job or set a default endpoint for the "
                "tenant (`vlmq webhooks endpoint`)",
            )
