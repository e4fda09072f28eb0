"""Action connectors: the clients that change the outside world once a run's plan is approved.

Each connector performs one side effect (a signed deploy webhook, a GitHub ``workflow_dispatch``,
a Stripe price change, an SMTP send) and answers with an :class:`~.base.ActionResult`, or raises
:class:`~.base.ActionFailed` whose ``reason`` is safe to show (never a secret) and whose
``retryable`` tells the caller whether trying again later may succeed. Connectors never retry a
side effect on their own: only the caller knows whether a second attempt is safe.
"""
