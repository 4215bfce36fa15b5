"""How a radiographer reads one series: whether to skip it, its weighting, and whether it had contrast.

Every rule returns short human-readable evidence. Tag rules come before name rules: the scanner
wrote the tags, people typed the names. The rule tuples are the seam for an image-based rule
(CSF dark on FLAIR and T1 and bright on T2; bright vessels, dura and choroid plexus on T1ce): it
would be one more entry of `WEIGHTING_RULES` or `CONTRAST_RULES`, reading the pixels at `source`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from neurotriage.ingest.series import SeriesInfo

# Fewer slices than this is a localiser or scout; the thickest real brain series (5.5 mm axial) has ~26.
MIN_SLICES = 10
FLAIR_TI_MS = (1400.0, 3000.0)  # fluid-nulling inversion: ~2000 ms at 1.5 T, ~2500 ms at 3 T, ~1800 ms 3D
T1_TI_MS = (300.0, 1300.0)  # T1 preparation: MPRAGE, T1-FLAIR, BRAVO
LONG_TR_FLAIR_MS = 4000.0
LONG_TR_T2_MS = 2000.0
LONG_TE_MS = 60.0
SHORT_TE_MS = 30.0
SHORT_TR_MS = 1000.0
MAX_TR_PREPARED_T1_MS = 3000.0


def _words(*alternatives: str) -> re.Pattern[str]:
    """Any alternative as a word of an upper-case name: not glued to letters, digits and symbols allowed."""
    return re.compile(rf"(?<![A-Z])(?:{'|'.join(alternatives)})(?![A-Z])")


LOCALISER = _words("LOCALI[SZ]ER", "LOC", "SCOUT", "SURVEY", "TRI-?PILOT", "PILOT", "3[-_ ]?PLANE")
DERIVED = _words("E?ADC", "TRACEW?", "FA", "COLFA", "MPR", "MIN?IP", "REFORMATS?", "SUB", "SUBTRACTION")
DIFFUSION = _words("DWI", "DTI", "DIFF", "DIFFUSION", "TENSOR")
PERFUSION = _words("PWI", "DSC", "DCE", "P?C?ASL", "PERF", "PERFUSION")
SUSCEPTIBILITY = _words("SWI", "SWAN", r"T2\*", "T2[-_ ]?STAR", "HEMO")
OTHER_BODY_PART = _words(
    "[CTL]?SPINE",
    "CERVICAL",
    "THORACIC",
    "LUMBAR",
    "KNEE",
    "SHOULDER",
    "HIP",
    "ABDOMEN",
    "PELVIS",
    "LIVER",
    "PROSTATE",
    "BREAST",
    "CARDIAC",
    "HEART",
    "CHEST",
)
FLAIR_NAME = _words("FLAIR", "DARK[-_ ]?FLUID")
T1_NAME = re.compile(rf"(?<![A-Z0-9])T1(?![0-9])|{_words('MP[-_]?RAGE', 'F?SPGR', 'BRAVO').pattern}")
T2_NAME = re.compile(r"(?<![A-Z0-9])T2(?![0-9*])")
PRE_NAME = _words("PRE", "PRE[-_ ]?CONTRAST", "NATIVE?", "NON[-_ ]?CONTRAST", "NO[-_ ]?CONTRAST", "WO", "W/O")
_POST_WORDS = _words("POST", "POST[-_ ]?CONTRAST", "GAD(?:O|OLINIUM)?", "GD", "CE", "CONTRAST", "KM", r"C\+")
POST_NAME = re.compile(rf"{_POST_WORDS.pattern}|\+C(?![A-Z])")  # +C may follow a letter: AX+C
_NAME_SKIPS = (
    ("localiser or scout", LOCALISER),
    ("derived", DERIVED),
    ("diffusion", DIFFUSION),
    ("perfusion", PERFUSION),
    ("susceptibility-weighted", SUSCEPTIBILITY),
    ("another body part", OTHER_BODY_PART),
)
_ECHO_PLANAR_NAME = re.compile(r"^\*?EP")


@dataclass(frozen=True)
class Finding:
    """What one rule concluded about one series, with the evidence for it."""

    conclusion: str
    evidence: tuple[str, ...]


def name_text(series: SeriesInfo) -> str:
    """The names people gave the series, upper-cased, for the name rules."""
    return " / ".join(name for name in (series.series_description, series.protocol_name) if name).upper()


def skip_reasons(series: SeriesInfo) -> list[str]:
    """Why a series is not a structural brain candidate (empty when it is one)."""
    text = name_text(series)
    reasons = [
        f"{label}: name says {', '.join(dict.fromkeys(words))}"
        for label, pattern in _NAME_SKIPS
        if (words := pattern.findall(text))
    ]
    if series.body_part and OTHER_BODY_PART.search(series.body_part.upper()):
        reasons.append(f"another body part: BodyPartExamined {series.body_part}")
    if series.derived:
        reasons.append("derived: ImageType " + "\\".join(series.image_type))
    if "EP" in series.scanning_sequence or _ECHO_PLANAR_NAME.match((series.sequence_name or "").upper()):
        reasons.append("echo-planar (diffusion, perfusion or functional)")
    if series.n_volumes > 1:
        reasons.append(f"{series.n_volumes} volumes (diffusion, perfusion or functional)")
    if series.n_slices < MIN_SLICES:
        reasons.append(f"localiser or scout: only {series.n_slices} slices")
    return reasons


def _ms(value: float) -> str:
    return f"{value:.4g} ms"


def weighting_by_tags(series: SeriesInfo) -> Finding | None:
    """flair, t1 or t2 from TR, TE, TI and the inversion-recovery flag."""
    tr, te, ti = series.repetition_time_ms, series.echo_time_ms, series.inversion_time_ms or 0.0
    inversion = ("inversion-recovery sequence",) if "IR" in series.scanning_sequence else ()
    if FLAIR_TI_MS[0] <= ti <= FLAIR_TI_MS[1] and tr is not None and tr >= LONG_TR_FLAIR_MS:
        return Finding("flair", (*inversion, f"TI {_ms(ti)} nulls fluid", f"TR {_ms(tr)} long"))
    if tr is None or te is None:
        return None
    prepared = T1_TI_MS[0] <= ti <= T1_TI_MS[1] and tr <= MAX_TR_PREPARED_T1_MS
    if te <= SHORT_TE_MS and (tr <= SHORT_TR_MS or prepared):
        preparation = (f"TI {_ms(ti)} (T1 preparation)",) if prepared else ()
        return Finding("t1", (f"TR {_ms(tr)} and TE {_ms(te)} short", *preparation))
    if te >= LONG_TE_MS and tr >= LONG_TR_T2_MS and not ti and not inversion:
        return Finding("t2", (f"TE {_ms(te)} and TR {_ms(tr)} long, no inversion",))
    return None


def weighting_by_name(series: SeriesInfo) -> Finding | None:
    """flair, t1 or t2 from the series description and protocol name."""
    text = name_text(series)
    flair, t1, t2 = (pattern.search(text) for pattern in (FLAIR_NAME, T1_NAME, T2_NAME))
    if flair:
        # T1-FLAIR is a T1-weighted sequence; T2-FLAIR is the FLAIR.
        found = ("t1", f"name says T1 FLAIR ({text})") if t1 else ("flair", f"name says FLAIR ({text})")
    elif t1 and not t2:
        found = ("t1", f"name says T1 ({t1.group()} in {text})")
    elif t2 and not t1:
        found = ("t2", f"name says T2 ({text})")
    else:
        return None
    return Finding(found[0], (found[1],))


def contrast_by_tag(series: SeriesInfo) -> Finding | None:
    """post when the scanner recorded a contrast agent (its absence proves nothing)."""
    if series.contrast_agent:
        return Finding("post", (f"ContrastBolusAgent {series.contrast_agent}",))
    return None


def contrast_by_name(series: SeriesInfo) -> Finding | None:
    """pre or post from words such as PRE, NATIVE, POST, GAD, CE, +C in the names."""
    text = name_text(series)
    pre = PRE_NAME.search(text)
    post = POST_NAME.search(PRE_NAME.sub(" ", text))  # so that NON-CONTRAST is not read as CONTRAST
    if pre and not post:
        return Finding("pre", (f"name says pre-contrast ({pre.group()} in {text})",))
    if post and not pre:
        return Finding("post", (f"name says post-contrast ({post.group()} in {text})",))
    return None


Rule = Callable[[SeriesInfo], Finding | None]
WEIGHTING_RULES: tuple[Rule, ...] = (weighting_by_tags, weighting_by_name)
CONTRAST_RULES: tuple[Rule, ...] = (contrast_by_tag, contrast_by_name)


def decide(series: SeriesInfo, rules: tuple[Rule, ...]) -> Finding | None:
    """The first rule that decides wins; later rules add their evidence, or are recorded as overruled."""
    findings = [found for rule in rules if (found := rule(series)) is not None]
    if not findings:
        return None
    first = findings[0].conclusion
    evidence = [
        item if found.conclusion == first else f"overruled: {item}" for found in findings for item in found.evidence
    ]
    return Finding(first, tuple(evidence))
