"""`store`: what happens to a drafted report when the storing transaction fails."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from neurotriage.clinical.db import CommitUnknown
from neurotriage.diagnosis import pipeline
from neurotriage.errors import UserError


class FakeDraft:
    """Records what `store` does with it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def discard(self) -> None:
        self.calls.append("discard")

    def settle(self) -> None:
        self.calls.append("settle")


def failing_commit(error: Exception):
    @contextmanager
    def transaction(_url):
        yield object()
        raise error  # as leaving the block (the commit) would

    return transaction


@pytest.mark.parametrize(
    ("error", "kept"),
    [(CommitUnknown("database x: connection lost: gone; the commit may still have been applied"), True),
     (UserError("database x: disk full"), False)],
)  # fmt: skip
def test_a_commit_of_unknown_outcome_keeps_the_draft_for_the_sweep(monkeypatch, error, kept) -> None:
    monkeypatch.setattr(pipeline, "transaction", failing_commit(error))
    monkeypatch.setattr(pipeline, "record", lambda session, drafted, case_ref: {})
    draft = FakeDraft()
    with pytest.raises(UserError):
        pipeline.store(draft, "sqlite://")
    assert draft.calls == ([] if kept else ["discard"])
