"""The synthetic cohort's versions and contrast modes: plain names, importable without numpy (CLI choices).

v5 draws exactly what the v5 generator drew (the cohorts of default models v5 and v8). v9 adds the
oedema's gradual fall-off and faint extensions, labelled where visible (`synth_oedema`), rims of
oedema around non-enhancing cores, thick-slice acquisitions, and optional randomised contrast
(`synth_draws`).
"""

GENERATORS = ("v5", "v9")
DEFAULT_GENERATOR = "v5"
CONTRASTS = ("physics", "random")  # MR-physics intensities, or SynthSeg-style random ones (v9)
