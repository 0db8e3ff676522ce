"""Offline access control, hub side: badges, policy rules, the signed policy, reports.

``badge_input`` checks what an operator types (pure), ``badge_csv`` reads an import file
(pure), ``policy`` keeps each territory's rules and publishes the signed policy, ``registry``
adds, imports and revokes badges, ``reports`` turns the gateways' events into consumption
and service statistics. docs/access-hub.md is the operator's guide.
"""
