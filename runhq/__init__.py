"""runhq — an AI operations HQ: specialised agents run recurring executive work under governance."""

__version__ = "0.1.0"
