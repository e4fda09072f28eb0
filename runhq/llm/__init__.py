"""The model gateway: OpenAI-compatible providers, the offline provider, prices, fallbacks."""
