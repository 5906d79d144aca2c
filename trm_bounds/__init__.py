"""trm-bounds (bootstrap: the public re-exports are added once bounds.py lands)."""
__version__ = "0.1.0"
