"""The export key file, keyed pseudonyms, per-patient date shifts and ages (no database)."""

from __future__ import annotations

import os
from datetime import date

import pytest

from neurotriage.errors import UserError
from neurotriage.export.keys import KEY_BYTES, key_id, load_key
from neurotriage.export.pseudonyms import Pseudonyms
from neurotriage.export.table import age_at_study


def test_a_key_is_created_once_for_its_owner_only_and_read_back(tmp_path):
    path = tmp_path / "key"
    key = load_key(path)
    assert len(key) == KEY_BYTES and os.stat(path).st_mode & 0o777 == 0o600
    assert load_key(path) == key and key_id(load_key(path)) == key_id(key)
    assert load_key(tmp_path / "other") != key


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [("ab" * KEY_BYTES, 0o640, "chmod 600"), ("ab" * 5, 0o600, "not an export key"), ("zz" * 32, 0o600, "hex")],
)
def test_a_bad_key_file_is_refused(tmp_path, content, mode, message):
    path = tmp_path / "key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(UserError, match=message) as caught:
        load_key(path)
    assert caught.value.field == "key_file"


def test_a_key_in_a_missing_folder_is_refused_unless_it_is_the_default(tmp_path):
    with pytest.raises(UserError, match="its folder does not exist"):
        load_key(tmp_path / "no" / "key")
    assert len(load_key(tmp_path / "home" / "key", create_parent=True)) == KEY_BYTES


def test_pseudonyms_are_keyed_and_stable():
    one, same, other = Pseudonyms(b"1" * 32), Pseudonyms(b"1" * 32), Pseudonyms(b"2" * 32)
    assert one.patient(7) == same.patient(7) != other.patient(7)
    assert one.study(7) == same.study(7) != one.patient(7)[0] + one.study(7)[1:]
    assert one.patient(7).startswith("P") and one.study(7).startswith("S") and one.study(7)[1:].isalnum()
    assert len({one.patient(n) for n in range(1000)}) == 1000


def test_dates_move_by_one_nonzero_offset_per_patient():
    ids = Pseudonyms(b"k" * 32)
    offsets = [ids.day_offset(n) for n in range(3000)]
    assert 0 not in offsets and min(offsets) >= -365 and max(offsets) <= 365
    assert min(offsets) < -300 and max(offsets) > 300  # spread over the whole range, both ways
    first, second = date(2024, 1, 10), date(2024, 7, 1)
    assert ids.shift(second, 5) - ids.shift(first, 5) == second - first
    assert ids.shift_text("2024-01-10", 5) == ids.shift(first, 5).isoformat()
    assert ids.shift_text("10/01/2024", 5) is None and ids.shift(None, 5) is None


def test_age_is_whole_years_at_the_study_capped_at_90():
    birth = date(1961, 3, 7)
    assert age_at_study(birth, date(2024, 3, 6)) == 62 and age_at_study(birth, date(2024, 3, 7)) == 63
    assert age_at_study(date(1920, 1, 1), date(2024, 1, 1)) == 90
    assert age_at_study(None, date(2024, 1, 1)) is None and age_at_study(birth, None) is None
