"""The host-link protocol: the CRC is CRC-16/IBM-3740, frames have the documented bytes, every
request and reply decodes to what was encoded, and every bad frame decodes to the status the
bridge answers it with."""

import pytest

from caterpillar.contract.host_link import (
    BAUD,
    BOARD_CLOCK_HZ,
    BUDGET_BITS,
    CRC_CHECK,
    MAX_BURST,
    MAX_REQUEST_WORDS,
    REPLY_START,
    REQUEST_START,
    Command,
    FrameError,
    LinkInfo,
    PollResult,
    Reply,
    Status,
    clocks_per_bit,
    crc16,
    decode_reply,
    decode_request,
    encode_info,
    encode_poll,
    encode_read,
    encode_reply,
    encode_request,
    encode_write,
    host_link_markdown,
    interbyte_timeout_cycles,
)


def reader(data: bytes):
    offset = [0]

    def read(n):
        if offset[0] + n > len(data):
            raise EOFError
        offset[0] += n
        return data[offset[0] - n:offset[0]]
    return read


def test_the_crc_is_crc16_ibm_3740():
    assert crc16(b"123456789") == CRC_CHECK == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert crc16(b"\x00") != crc16(b"\x00\x00")           # leading zeros count


def test_a_write_frame_has_the_documented_bytes():
    frame = encode_write(0x0100_0002, [0x11223344])
    body = bytes([Command.WRITE.value, 2, 0]) + bytes.fromhex("02000001" "44332211")
    assert frame == bytes([REQUEST_START]) + body + crc16(body).to_bytes(2, "big")
    assert crc16(frame[1:]) == 0                          # a whole frame's CRC is 0


@pytest.mark.parametrize("frame, command, words", [
    (encode_write(7, [1, 2, 3]), Command.WRITE, [7, 1, 2, 3]),
    (encode_write(0, list(range(MAX_BURST))), Command.WRITE, [0, *range(MAX_BURST)]),
    (encode_read(0xFC00_000A, MAX_BURST), Command.READ, [0xFC00_000A, MAX_BURST]),
    (encode_poll(5, 6, (1 << 40) + 3), Command.POLL, [5, 6, 3, 1 << 8]),
    (encode_info(), Command.INFO, []),
])
def test_requests_decode_to_what_was_encoded(frame, command, words):
    assert decode_request(frame) == (command, words)


@pytest.mark.parametrize("frame, status", [
    (encode_write(7, [1])[:-1], Status.TIMEOUT),
    (encode_write(7, [1])[:3], Status.TIMEOUT),
    (encode_write(7, [1])[:-1] + b"\x00", Status.BAD_CRC),
    (encode_request(0x00, [1, 2]), Status.UNKNOWN_COMMAND),
    (encode_request(Command.READ, [1, 0]), Status.BAD_LENGTH),
    (encode_request(Command.READ, [1, MAX_BURST + 1]), Status.BAD_LENGTH),
    (encode_request(Command.WRITE, [1]), Status.BAD_LENGTH),
    (encode_request(Command.POLL, [1, 2, 3]), Status.BAD_LENGTH),
    (encode_request(Command.INFO, [1]), Status.BAD_LENGTH),
    (encode_request(Command.WRITE, [0] * (MAX_REQUEST_WORDS + 1)), Status.BAD_LENGTH),
])
def test_bad_requests_decode_to_the_bridges_status(frame, status):
    with pytest.raises(FrameError) as error:
        decode_request(frame)
    assert error.value.status is status


def test_every_single_bit_error_is_caught(rng):
    frame = bytearray(encode_write(0x40, rng.integers(0, 1 << 32, 20).tolist()))
    for bit in range(8, 8 * len(frame)):                 # all but the start byte
        frame[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FrameError):
            decode_request(bytes(frame))
        frame[bit // 8] ^= 1 << (bit % 8)
    assert decode_request(bytes(frame))[0] is Command.WRITE


def test_replies_round_trip_and_a_bad_one_is_refused():
    frame = encode_reply(Command.READ.value, Status.OK, [1, 0xFFFF_FFFF])
    assert frame[0] == REPLY_START
    assert decode_reply(reader(frame)) == Reply(Command.READ.value, Status.OK, (1, 0xFFFF_FFFF))
    error = encode_reply(0x33, Status.UNKNOWN_COMMAND)
    assert decode_reply(reader(error)) == Reply(0x33, Status.UNKNOWN_COMMAND, ())
    with pytest.raises(FrameError, match="CRC is wrong"):
        decode_reply(reader(frame[:-1] + bytes([frame[-1] ^ 1])))
    with pytest.raises(FrameError, match="a reply starts with 0x5a, not 0xa5"):
        decode_reply(reader(encode_info()))


def test_poll_and_info_words_round_trip():
    result = PollResult(0xAB, (1 << 33) + 9, True)
    assert PollResult.from_words(result.words()) == result
    info = LinkInfo(1, 2, 3, 4, 5)
    assert LinkInfo(*info.words()) == info


@pytest.mark.parametrize("call, message", [
    (lambda: encode_write(0, []), "1..512 words, not 0"),
    (lambda: encode_write(0, [0] * (MAX_BURST + 1)), "1..512 words, not 513"),
    (lambda: encode_read(0, 0), "1..512 words, not 0"),
    (lambda: encode_poll(0, 1, 1 << BUDGET_BITS), "0..2\\*\\*64 - 1 cycles"),
    (lambda: encode_poll(0, 1, -1), "0..2\\*\\*64 - 1 cycles"),
    (lambda: encode_write(0, [1 << 32]), "32-bit words"),
])
def test_the_encoders_refuse_what_the_bridge_would(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_board_link_is_exact_at_3_mbaud():
    assert (BOARD_CLOCK_HZ, BAUD) == (15_000_000, 3_000_000)
    assert clocks_per_bit() == BOARD_CLOCK_HZ // BAUD == 5
    assert 3_000_000 / BAUD in (1, 1.5) or (3_000_000 / BAUD).is_integer()   # an FT231X rate
    assert interbyte_timeout_cycles() == 75_000
    with pytest.raises(ValueError, match="no whole number of at least 4 clocks per bit"):
        clocks_per_bit(10_000_000, BAUD)
    with pytest.raises(ValueError, match="no whole number of at least 4 clocks per bit"):
        clocks_per_bit(9_000_000, BAUD)


def test_the_generated_tables_name_every_command_and_status():
    text = host_link_markdown()
    for item in [*Command, *Status]:
        assert f"`{item.name}` | `{item.value:#04x}`" in text
    assert f"{MAX_BURST} words" in text and "3,000,000" in text
