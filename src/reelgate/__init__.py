"""reelgate: a durable gateway for asynchronous AI video generation."""

__version__ = "0.1.0"

__all__ = ["__version__"]
