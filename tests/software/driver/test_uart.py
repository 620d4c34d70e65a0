"""The UART device against a model of the host bridge (the protocol of contract/host_link.py
over a word dictionary): bursts split at the bridge's limit, POLL's answer and timeout, a
refused request or a broken reply as one clear error, and a board built for another config,
a silent port or an unopenable one refused on opening."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.host_link import (
    LINK_VERSION,
    MAX_BURST,
    Command,
    FrameError,
    LinkInfo,
    PollResult,
    Status,
    decode_request,
    encode_reply,
)
from caterpillar.contract.registers import RegisterMap, RingRegisterMap, core_address
from caterpillar.software.driver.device import DeviceTimeout
from caterpillar.software.driver.uart import (
    LinkError,
    LinkTimeout,
    SerialTransport,
    Transport,
    UartDevice,
)

CFG = preset("tiny").replace(cores=2)


class ModelBridge(Transport):
    """The bridge as docs/host-link.md describes it, in Python, over a ring's address map."""

    name = "the model"

    def __init__(self, cfg, *, version=LINK_VERSION, silent=False):
        self.version, self.silent = version, silent
        self.words, self.replies, self.frames = {}, bytearray(), []
        self.refuse = self.corrupt = False
        ring = RingRegisterMap(cfg)
        self.words[ring.address("RING_ID")] = 0xCA7E0100
        self.words[ring.address("CORES")] = cfg.cores
        for k in range(cfg.cores):
            for name, value in RegisterMap(cfg).constants().items():
                self.words[core_address(k, RegisterMap(cfg)[name])] = value

    def write(self, data: bytes) -> None:
        self.frames.append(data)
        if self.silent:
            return
        try:
            command, words = decode_request(data)
        except FrameError as e:
            self.replies += encode_reply(data[1], e.status)
            return
        if self.refuse:
            self.replies += encode_reply(command.value, Status.BAD_CRC)
            return
        out = []
        if command is Command.WRITE:
            for i, w in enumerate(words[1:]):
                self.words[words[0] + i] = w
        elif command is Command.READ:
            out = [self.words.get(words[0] + i, 0) for i in range(words[1])]
        elif command is Command.POLL:
            addr, mask, budget = words[0], words[1], words[2] | words[3] << 32
            value = self.words.get(addr, 0)
            hit = bool(value & mask) and budget > 0
            out = PollResult(value, 1 if hit else budget, not hit).words()
        else:
            out = LinkInfo(self.version, MAX_BURST, 45_000_000, 15, 225_000).words()
        reply = bytearray(encode_reply(command.value, Status.OK, out))
        if self.corrupt:
            reply[-1] ^= 1
        self.replies += reply

    def read(self, count: int, timeout: float) -> bytes:
        if len(self.replies) < count:
            raise LinkTimeout(f"{len(self.replies)} of {count} bytes")
        data = bytes(self.replies[:count])
        del self.replies[:count]
        return data


def test_opening_says_hello_and_checks_the_board():
    model = ModelBridge(CFG)
    device = UartDevice(model, CFG)
    assert device.info == LinkInfo(LINK_VERSION, MAX_BURST, 45_000_000, 15, 225_000)
    assert device.register_map() == RingRegisterMap(CFG).to_dict()
    assert [decode_request(f)[0] for f in model.frames] == [Command.INFO] + [Command.READ] * 3


def test_bursts_are_split_at_the_bridges_limit(rng):
    model = ModelBridge(CFG)
    device = UartDevice(model, CFG)
    data = rng.integers(0, 1 << 32, 2 * MAX_BURST + 100, dtype="uint64").tolist()
    model.frames.clear()
    device.write(core_address(1, 0x100_0000), data)
    assert [len(decode_request(f)[1]) - 1 for f in model.frames] == [MAX_BURST, MAX_BURST, 100]
    assert device.read(core_address(1, 0x100_0000), len(data)) == data
    assert device.read(core_address(1, 0x100_0000) + 7) == [data[7]]


def test_poll_returns_the_hardwares_count_or_times_out():
    model = ModelBridge(CFG)
    device = UartDevice(model, CFG)
    model.words[0x40] = 0b110
    assert device.poll(0x40, 0b10, 100) == (0b110, 1)
    with pytest.raises(DeviceTimeout, match="did not match 0x1 within 100 cycles"):
        device.poll(0x40, 0b1, 100)


def test_a_refused_request_and_a_broken_reply_are_link_errors():
    model = ModelBridge(CFG)
    device = UartDevice(model, CFG)
    model.refuse = True
    with pytest.raises(LinkError, match="the board refused WRITE: BAD_CRC"):
        device.write(0, [1])
    model.refuse, model.corrupt = False, True
    with pytest.raises(LinkError, match="bad reply to READ: the reply's CRC is wrong"):
        device.read(0)


def test_a_board_built_for_another_config_is_refused():
    with pytest.raises(ValueError, match="was not built for config tiny: it has 2 cores, the "
                                         "config 3"):
        UartDevice(ModelBridge(CFG), CFG.replace(cores=3))
    with pytest.raises(ValueError, match="core 0 has MEMA_WORDS 0x100 \\(config: 0x200\\)"):
        UartDevice(ModelBridge(CFG), CFG.replace(mema_words=512))


def test_a_silent_port_or_another_protocol_version_is_refused():
    with pytest.raises(OSError, match="no CATERPILLAR host bridge answered on the model"):
        UartDevice(ModelBridge(CFG, silent=True), CFG)
    with pytest.raises(OSError, match="speaks host-link version 0x2"):
        UartDevice(ModelBridge(CFG, version=2), CFG)


def test_a_port_that_cannot_be_opened_is_one_line():
    with pytest.raises(OSError, match="cannot open --port /dev/caterpillar-no-such-port: "):
        SerialTransport("/dev/caterpillar-no-such-port")


def test_a_port_that_echoes_is_no_board():
    with pytest.raises(OSError, match="a reply starts with 0x5a, not 0xa5"):
        UartDevice(SerialTransport("loop://"), CFG)
