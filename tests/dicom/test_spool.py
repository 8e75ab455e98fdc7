"""The node's spool and option parsing: a SOP Instance UID from the network never becomes a
path outside incoming/, and --forward is parsed or refused with the expected form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.dicom.node import Forward
from btseg.dicom.spool import Spool, safe_uid
from btseg.errors import ConfigError, DataError

UIDS = st.lists(st.integers(0, 10**12).map(str), min_size=1, max_size=6).map(".".join).filter(lambda u: len(u) <= 64)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_any_uid_text_is_a_plain_file_name_or_refused(text):
    try:
        uid = safe_uid(text)
    except DataError as e:
        assert "is not a valid UID" in str(e)
        return
    assert "/" not in uid and ".." not in uid and uid[0].isdigit() and len(uid) <= 64


@pytest.mark.parametrize("bad", ["../../etc/passwd", "1.2/../3", "", "1..2", "1.2.", "x" * 10, "1" * 65,
                                 "1.2\n3", "1.2\x00.3"])
def test_hostile_uids_are_refused(bad, tmp_path):
    with pytest.raises(DataError):
        Spool(tmp_path).receive(bad, b"x", {})
    assert not list((tmp_path / "incoming").iterdir())


@settings(max_examples=30, deadline=None)
@given(UIDS)
def test_received_is_on_disk_and_in_the_backlog(tmp_path_factory, uid):
    spool = Spool(tmp_path_factory.mktemp("s"))
    path = spool.receive(uid, b"DICM", {"calling_aet": "A"})
    assert path.read_bytes() == b"DICM" and spool.backlog() == [path] and spool.meta(path)["calling_aet"] == "A"
    spool.done(path)
    assert spool.backlog() == [] and not list(spool.incoming.iterdir())


@settings(max_examples=40, deadline=None)
@given(host=st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True), port=st.integers(1, 65535),
       aet=st.from_regex(r"[A-Z0-9_]{1,16}", fullmatch=True))
def test_forward_round_trips(host, port, aet):
    assert Forward.parse(f"{host}:{port}:{aet}") == Forward(host, port, aet)


@pytest.mark.parametrize("bad", ["pacs:104", "pacs:x:PACS", ":104:PACS", "pacs:0:PACS", "pacs:70000:PACS",
                                 "pacs:104:" + "A" * 17, "pacs:104:"])
def test_bad_forward_names_the_form(bad):
    with pytest.raises(ConfigError, match="expected HOST:PORT:AET"):
        Forward.parse(bad)
