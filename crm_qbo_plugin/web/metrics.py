"""GET /metrics: the plugin's counters in the Prometheus text format, for a scraper holding the
CRM_QBO_METRICS_TOKEN bearer token. Without the setting the endpoint does not exist (404).

The counters live in Redis (see `crm_qbo_plugin.metrics`), so whichever web process answers sees the
work of every worker on every machine.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from crm_qbo_plugin.metrics import RedisCollector
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.outbox_depth import pending_outbox
from crm_qbo_plugin.web.guard import same_token

bp = Blueprint("crm_qbo_metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    state = get_state()
    expected = state.settings.metrics_token
    if not expected:
        abort(404)
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_token(expected, sent.strip()):
        return Response("a valid bearer token is required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="crm-qbo-metrics"'})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(
        state.redis, lambda: {"rq_jobs": state.queue.count, "outbox_pending": pending_outbox(state.engine)}))
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)
