"""Imports every table module so that SQLModel.metadata knows the whole schema."""

from core import accounts as accounts_model
from core import callback_nonces as callback_nonces_model
from core import conversations as conversations_model
from core import deliveries as deliveries_model
from core import inbound as inbound_model
from core import ops as ops_model
from core import outbox as outbox_model
from core import ratebucket as ratebucket_model
from core import tokens as tokens_model
from core import web_sessions as web_sessions_model
from core import wecom_limits as wecom_limits_model
from core.campaigns import model as campaigns_model
from core.cases import model as cases_model
from core.cases import route_rules as route_rules_model
from core.hierarchy import boundaries as boundaries_model
from core.hierarchy import invites as invites_model
from core.hierarchy import model as hierarchy_model
from core.notices import model as notices_model
from core.open311 import model as open311_model
from core.rollup import model as rollup_model

__all__ = ["accounts_model", "boundaries_model", "callback_nonces_model", "campaigns_model",
           "cases_model",
           "conversations_model",
           "deliveries_model", "hierarchy_model", "inbound_model", "invites_model",
           "notices_model", "open311_model", "ops_model",
           "outbox_model",
           "ratebucket_model", "rollup_model", "route_rules_model", "tokens_model",
           "web_sessions_model",
           "wecom_limits_model"]
