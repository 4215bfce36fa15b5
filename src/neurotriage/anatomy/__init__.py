"""Anatomy: where the tumour lies on the SRI24 atlas (regions, side, midline, eloquent areas, VASARI)."""
