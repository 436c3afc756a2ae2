"""Names on the class board are honest: one student's name is nobody else's, and the app's own names (the teacher,
the command line, an anonymous ``user 3fa2b1``, "you") cannot be taken."""

from __future__ import annotations

import pytest

from babygpt.errors import BabyGPTError
from babygpt.server.classroom import Classroom
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import check_name_free, clean_handle, name_key, public_handle
from babygpt.store.runs import RunStore

ADA, BEN, CY = "ada-key-000000000000000", "ben-key-000000000000000", "cy-key-0000000000000000"


# --- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["teacher", "Teacher", "TEACHER'S CHECK", "teachers  check", "teacher’s check",
                                  "Teacher 2", "command line", "Command-Line", "you", "You!", "(you)", "Ada (you)",
                                  "yours", "admin", "ｔｅａｃｈｅｒ"])
def test_the_apps_own_names_are_refused_with_a_sentence(name):
    with pytest.raises(BabyGPTError, match="is a name the app itself uses on the board"):
        clean_handle(name)


@pytest.mark.parametrize("name", [public_handle(BEN), public_handle(BEN).upper(), public_handle(BEN).replace(" ", ""),
                                  public_handle(BEN).replace(" ", "_"), "user 000000", "User-ABC123"])
def test_a_name_that_looks_anonymous_is_refused(name):
    with pytest.raises(BabyGPTError, match="looks like an anonymous name"):
        clean_handle(name)


@pytest.mark.parametrize("name", ["Ada", "Ada Lovelace", "Maximiliana-Dorothea Q.", "Ümit", "user", "Yousef",
                                  "Cheater"])
def test_ordinary_names_pass_as_typed(name):
    assert clean_handle(name) == name


def test_punctuation_alone_is_not_a_name():
    with pytest.raises(BabyGPTError, match="at least one letter or digit"):
        clean_handle("!!! ...")
    assert clean_handle("   ") == "", "empty: back to the anonymous name"


def test_a_name_is_one_students_whatever_its_case_and_spacing():
    taken = {ADA: "Ada Lee"}
    assert name_key("  ada   LEE ") == name_key("AdaLee") == name_key("Ada Lee")
    for same in ("ada lee", "ADA LEE", "AdaLee", "Ada  Lee"):
        with pytest.raises(BabyGPTError, match="^Another student already shows as .* on the board: choose another"):
            check_name_free(BEN, clean_handle(same), taken)
    check_name_free(ADA, "ADA LEE", taken)  # her own name, written differently: still hers
    check_name_free(BEN, "Ada Leigh", taken)
    check_name_free(BEN, "", taken)  # anonymous is everyone's


@pytest.fixture
def classroom():
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=1))
    yield Classroom(scheduler)
    scheduler.stop_all(wait=10)


def test_the_classroom_keeps_names_unique(classroom):
    assert classroom.set_handle(ADA, "Ada") == "Ada"
    with pytest.raises(BabyGPTError, match="Another student already shows as 'ada' on the board"):
        classroom.set_handle(BEN, "ada")
    with pytest.raises(BabyGPTError, match="looks like an anonymous name"):
        classroom.set_handle(BEN, public_handle(ADA))
    with pytest.raises(BabyGPTError, match="a name the app itself uses"):
        classroom.set_handle(BEN, "Teacher's check")
    assert classroom.handle_of(BEN) == public_handle(BEN), "a refused name changes nothing"
    assert classroom.set_handle(ADA, "ADA") == "ADA"
    classroom.set_handle(ADA, "")  # Ada goes back to anonymous: her old name is free again
    assert classroom.set_handle(BEN, "Ada") == "Ada"
