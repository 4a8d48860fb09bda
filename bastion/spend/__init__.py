"""Spend: the price table, the cost of each interaction, pre-flight estimates and budget windows."""

from bastion.spend.cost import interaction_cost
from bastion.spend.pricing import FREE, Price, PriceTable, to_micros
from bastion.spend.routes import RoutePricing

__all__ = ["FREE", "Price", "PriceTable", "RoutePricing", "interaction_cost", "to_micros"]
