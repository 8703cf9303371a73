"""Generic label-driven namespace discovery (front door: see __all__)."""

__all__: list[str] = []
