"""Upstream providers: one module per upstream, each implementing ``base.Provider``."""
