# amaranth: UnusedElaboratable=no
"""``uart-sim``: the Verilated board top reached through its UART pins by the driver's own
protocol code. Training steps are bit-exact against the golden trainer; bad frames injected on
the pins get their error replies and leave the SPAD as it was."""

import json

import pytest

from caterpillar.app.cli import main
from caterpillar.contract.config import preset
from caterpillar.contract.host_link import (
    MAX_REQUEST_WORDS,
    Command,
    Status,
    decode_reply,
    encode_info,
    encode_request,
    encode_write,
)
from caterpillar.contract.registers import SPAD_BASE, core_address
from tests.helpers import requires_verilator

#: Verilator builds and whole-design simulations: `make test`, not test-fast.
pytestmark = [pytest.mark.integration, requires_verilator]

CFG = preset("tiny")
STEPS = 4


@pytest.mark.parametrize("extra, samples", [
    ([], STEPS),                                                   # one core, SGD
    (["--cores", "2", "--algorithm", "mbgd", "--batch", "4"], 4 * STEPS),  # a 2-core ring
], ids=["one-core-sgd", "two-core-mbgd"])
def test_training_over_the_simulated_uart_is_bit_exact(extra, samples, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["train", "--backend", "uart-sim", "--config", "tiny", "--set",
                 "memb_words=512", "--model", "64-6-10", "--epochs", "1", "--limit",
                 str(samples), "--check-golden", "--quiet", "--json", str(report),
                 *extra]) == 0
    out = capsys.readouterr().out
    assert f"golden check: {STEPS} steps" in out
    result = json.loads(report.read_text())
    assert result["backend"] == "uart-sim" and result["golden_checked_steps"] == STEPS
    assert result["epochs"][0]["cycles"] == STEPS * result["step_cycles"]
    # The board's clock also runs for every frame, so it counts more than the steps' cycles.
    link = result["uart_sim"]
    assert link["framing_errors"] == 0 and link["cycles"] > result["epochs"][0]["cycles"]
    assert link["cycles_per_second"] == pytest.approx(link["cycles"] / link["seconds"])
    assert f"uart-sim: {link['cycles']:,} board cycles" in out


def test_bad_frames_on_the_pins_are_refused_and_change_nothing(rng, record_property):
    from caterpillar.sim.backends.uart_sim import open_uart_sim

    spad = core_address(0, SPAD_BASE) + 64
    data = rng.integers(0, 1 << 32, 40, dtype="uint64").tolist()
    device = open_uart_sim(CFG)
    link = device.transport

    def inject(frame: bytes):
        link.write(frame)
        return decode_reply(lambda n: link.read(n, 0))

    try:
        device.write(spad, data)
        good = encode_write(spad, [0xBAD] * 8)
        corrupted = bytearray(good)
        corrupted[12] ^= 0x01
        cases = [
            (bytes(corrupted), Status.BAD_CRC),
            (good[:-5], Status.TIMEOUT),
            (encode_request(0x7E, [spad, 1]), Status.UNKNOWN_COMMAND),
            (encode_request(Command.READ, [spad, 0]), Status.BAD_LENGTH),
            (encode_request(Command.WRITE, [spad]), Status.BAD_LENGTH),
            (encode_request(Command.WRITE, [spad] * (MAX_REQUEST_WORDS + 1))[:64],
             Status.BAD_LENGTH),
        ]
        for frame, status in cases:
            reply = inject(frame)
            assert reply.status is status, (frame[:8].hex(), reply)
            assert reply.words == ()
            assert device.read(spad, len(data)) == data
        assert inject(encode_info()).status is Status.OK
    finally:
        device.close()
    assert link.framing_errors == 0
    record_property("uart_sim_cycles", link.cycles)
    record_property("uart_sim_cycles_per_second", round(link.cycles_per_second))
    print(f"uart-sim: {link.cycles} cycles in {link.seconds:.2f} s of simulation, "
          f"{link.cycles_per_second:,.0f} cycles/s")
