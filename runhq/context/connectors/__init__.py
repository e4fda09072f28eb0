"""Connectors to external sources of facts (Stripe, GitHub, web search).

Each connector talks to the real platform through an :class:`httpx.Client` supplied by the
caller and returns plain, JSON-serialisable facts. When a platform cannot be reached, refuses
the credentials or answers with an error, the connector raises
:class:`runhq.context.connectors.base.ConnectorUnavailable` with a human-readable reason (never a
secret): the caller then reports the source as "unavailable" instead of inventing data.
"""
