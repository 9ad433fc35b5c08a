"""Old names kept for one release: use `crm_qbo_plugin.extension.get_services` and
`crm_qbo_plugin.runtime.services.Services`."""

from crm_qbo_plugin.extension import EXTENSION_KEY, get_services, get_state
from crm_qbo_plugin.runtime.services import Services as PluginState

__all__ = ["EXTENSION_KEY", "PluginState", "get_services", "get_state"]
