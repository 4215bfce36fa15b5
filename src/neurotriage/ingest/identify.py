"""Which series of a raw study are its FLAIR, T1, T1ce and T2, with the evidence, as a radiographer decides.

Explicit overrides always win. Otherwise each series is skipped (localiser, derived, diffusion, ...)
or given a weighting by the rules in `rules.py`; T1 series are then split into pre- and
post-contrast. When a sequence is missing or two series compete with nothing to separate them,
a `UserError` names the files and the field (the sequence) whose override settles it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cmp_to_key
from pathlib import Path

from pydantic import BaseModel

from neurotriage.errors import UserError
from neurotriage.imaging.naming import SEQUENCE_TITLES, SEQUENCES
from neurotriage.ingest.rules import CONTRAST_RULES, WEIGHTING_RULES, decide, skip_reasons, weighting_by_name
from neurotriage.ingest.series import SeriesInfo

# A candidate beats its rivals for the same sequence only with clearly finer voxels (at most 90 % of
# the runner-up's volume): registration to the 1 mm grid loses least from it.
FINER_VOXELS = 0.9
UNRECOGNISED = "not recognised as FLAIR, T1 or T2 by its tags or its name"


class SequenceChoice(BaseModel):
    """The series chosen for one sequence and the rules that chose it."""

    source: Path
    series_description: str
    evidence: list[str]


class SkippedSeries(BaseModel):
    """A series left out of the case, and why."""

    source: Path
    series_description: str
    reason: str
    named_as: str | None = None  # the weighting its name gives (flair, t1, t2), so a gap can be explained


class SeriesMap(BaseModel):
    """The study's FLAIR, T1, T1ce and T2 series, and every other series with the reason it was skipped."""

    sequences: dict[str, SequenceChoice]
    skipped: list[SkippedSeries]


@dataclass(eq=False)  # candidates are told apart by identity
class _Candidate:
    series: SeriesInfo
    evidence: list[str] = field(default_factory=list)


def identify(series: list[SeriesInfo], overrides: dict[str, Path] | None = None) -> SeriesMap:
    """Map flair, t1, t1ce and t2 to one series each, or raise a `UserError` naming the rival files."""
    pinned = _pinned(series, overrides or {})
    pinned_sources = {s.source for s in pinned.values()}
    skipped: list[SkippedSeries] = []
    candidates: dict[str, list[_Candidate]] = {seq: [] for seq in SEQUENCES}
    t1s: list[_Candidate] = []
    for s in series:
        if s.source in pinned_sources:
            continue
        reasons = skip_reasons(s)
        found = None if reasons else decide(s, WEIGHTING_RULES)
        if found is None:
            skipped.append(_skipped(s, "; ".join(reasons) or UNRECOGNISED))
        else:
            (t1s if found.conclusion == "t1" else candidates[found.conclusion]).append(
                _Candidate(s, list(found.evidence))
            )
    candidates["t1"], candidates["t1ce"] = _split_by_contrast(t1s)
    sequences: dict[str, SequenceChoice] = {}
    for seq in SEQUENCES:
        if seq in pinned:
            sequences[seq] = _choice(_Candidate(pinned[seq], ["explicit override"]))
            skipped += [_skipped(c.series, f"{seq} set by explicit override") for c in candidates[seq]]
        else:
            sequences[seq], losers = _choose(seq, candidates, skipped)
            skipped += losers
    return SeriesMap(sequences=sequences, skipped=skipped)


def _pinned(series: list[SeriesInfo], overrides: dict[str, Path]) -> dict[str, SeriesInfo]:
    by_path = {s.source.resolve(): s for s in series}
    pinned: dict[str, SeriesInfo] = {}
    for seq, path in overrides.items():
        if seq not in SEQUENCES:
            raise UserError(f"{seq}: not a sequence (expected one of {', '.join(SEQUENCES)})", field=seq)
        chosen = by_path.get(Path(path).resolve())
        if chosen is None:
            raise UserError(f"{seq}: {path} is not one of the study's series", field=seq)
        for other, taken in pinned.items():
            if taken is chosen:
                raise UserError(f"{seq}: {path} is already the {other} series", field=seq)
        pinned[seq] = chosen
    return pinned


def _acquired_after(a: SeriesInfo, b: SeriesInfo) -> tuple[bool, str] | None:
    """Whether `a` was acquired after `b`, and on what basis; None when the tags cannot tell."""
    if a.acquisition_time and b.acquisition_time and a.acquisition_time != b.acquisition_time:
        return a.acquisition_time > b.acquisition_time, f"acquired at {a.acquisition_time}, {b.acquisition_time}"
    if a.series_number is not None and b.series_number is not None and a.series_number != b.series_number:
        return a.series_number > b.series_number, f"series numbers {a.series_number}, {b.series_number}"
    return None


def _by_acquisition(a: _Candidate, b: _Candidate) -> int:
    order = _acquired_after(a.series, b.series)
    return 0 if order is None else 1 if order[0] else -1


def _split_by_contrast(t1s: list[_Candidate]) -> tuple[list[_Candidate], list[_Candidate]]:
    """The T1 series without and with contrast: by tag or name, else by acquisition order."""
    pre: list[_Candidate] = []
    post: list[_Candidate] = []
    unknown: list[_Candidate] = []
    for candidate in t1s:
        found = decide(candidate.series, CONTRAST_RULES)
        if found is not None:
            candidate.evidence += found.evidence
        (unknown if found is None else post if found.conclusion == "post" else pre).append(candidate)
    if post:
        # Contrast stays in the blood: every T1 acquired after the first post-contrast one is post-contrast too.
        first = sorted(post, key=cmp_to_key(_by_acquisition))[0]
        for candidate in unknown:
            order = _acquired_after(candidate.series, first.series)
            later = order is not None and order[0]
            basis = f"acquired after {first.series.source.name}" if later else "no contrast evidence"
            candidate.evidence.append(basis + (f" ({order[1]})" if order else ""))
            (post if later else pre).append(candidate)
        return pre, post
    pair = sorted(pre + unknown, key=cmp_to_key(_by_acquisition))
    order = _acquired_after(pair[1].series, pair[0].series) if len(pair) == 2 else None
    if order is not None and order[0] and pair[1] in unknown:
        pair[0].evidence.append(f"the earlier T1 of a pair, no contrast evidence ({order[1]})")
        pair[1].evidence.append(f"the later T1 of a pair, so the post-contrast one ({order[1]})")
        return [pair[0]], [pair[1]]
    for candidate in unknown:
        candidate.evidence.append("no contrast evidence")
    return pre + unknown, []


def _choose(
    seq: str, candidates: dict[str, list[_Candidate]], skipped: list[SkippedSeries]
) -> tuple[SequenceChoice, list[SkippedSeries]]:
    """The one candidate for `seq`, or the clearly finest-grained of several."""
    rivals = sorted(candidates[seq], key=lambda c: c.series.voxel_mm3)
    if not rivals:
        raise UserError(_missing(seq, candidates, skipped), field=seq)
    best = rivals[0]
    if len(rivals) > 1:
        runner_up = rivals[1].series
        if best.series.voxel_mm3 > FINER_VOXELS * runner_up.voxel_mm3:
            names = ", ".join(c.series.source.name for c in rivals)
            raise UserError(
                f"{seq}: {names} all look like {SEQUENCE_TITLES[seq]} and nothing separates them; "
                f"set the {seq} override to the one to use",
                field=seq,
            )
        best.evidence.append(
            f"finer voxels ({best.series.voxel_mm3:.3g} mm³) than {runner_up.source.name} ({runner_up.voxel_mm3:.3g})"
        )
    reason = f"{SEQUENCE_TITLES[seq]} with coarser voxels than {best.series.source.name}"
    return _choice(best), [_skipped(c.series, reason) for c in rivals[1:]]


def _missing(seq: str, candidates: dict[str, list[_Candidate]], skipped: list[SkippedSeries]) -> str:
    """One line: which sequence is missing, what came closest, and which override settles it."""
    message = f"{seq}: no {SEQUENCE_TITLES[seq]} series in the study"
    if seq == "t1ce" and candidates["t1"]:
        names = ", ".join(c.series.source.name for c in candidates["t1"])
        message += f" (no contrast agent tag, post-contrast name or later T1 among {names})"
    unrecognised = [s.source.name for s in skipped if s.reason == UNRECOGNISED]
    if unrecognised:
        message += f"; not recognised: {', '.join(unrecognised)}"
    nothing_chosen = not any(candidates.values())
    named = [s for s in skipped if nothing_chosen or s.named_as == ("t1" if seq == "t1ce" else seq)]
    if named:
        message += "; skipped: " + ", ".join(f"{s.series_description} in {s.source.name} ({s.reason})" for s in named)
    return message + f"; set the {seq} override to its file"


def _choice(candidate: _Candidate) -> SequenceChoice:
    s = candidate.series
    return SequenceChoice(source=s.source, series_description=s.series_description, evidence=candidate.evidence)


def _skipped(series: SeriesInfo, reason: str) -> SkippedSeries:
    named = weighting_by_name(series)
    return SkippedSeries(
        source=series.source,
        series_description=series.series_description,
        reason=reason,
        named_as=named.conclusion if named else None,
    )
