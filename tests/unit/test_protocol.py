import json

import pytest

from alter.control import protocol
from alter.errors import NotFound, ProtocolError, error_from_dict


def test_roundtrip_split_at_every_byte():
    data = protocol.request(1, "list") + protocol.reply(1, {"workers": ["é"]}) + protocol.event(2, "progress", {"m": 1})
    for cut in range(len(data) + 1):
        dec = protocol.Decoder()
        msgs = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert [m.get("cmd") or m.get("event") or m.get("result") for m in msgs] == [
            "list",
            {"workers": ["é"]},
            "progress",
        ]


@pytest.mark.parametrize("line", [b"not json\n", b"[1,2]\n", b"\xff\xfe\n", b'"str"\n', b'{"a": \n'])
def test_malformed_lines_raise_protocol_error(line):
    with pytest.raises(ProtocolError):
        protocol.Decoder().feed(line)


def test_oversized_message_rejected():
    dec = protocol.Decoder(max_message=100)
    with pytest.raises(ProtocolError, match="larger than 100"):
        dec.feed(b"x" * 101)


def test_error_roundtrip_keeps_type_and_exit():
    wire = json.loads(protocol.error(3, NotFound("no worker named 'x'", hint="apm list")))
    err = error_from_dict(wire["error"])
    assert isinstance(err, NotFound) and err.exit_code == 3 and err.hint == "apm list"
