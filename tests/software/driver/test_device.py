"""The abstract device every backend implements: its abstract methods must be provided, a
backend is a context manager that closes itself, and a timed-out wait is a RuntimeError."""

import pytest

from caterpillar.software.driver.device import Device, DeviceTimeout

ABSTRACT = {"register_map", "write", "read", "poll"}


class MemoryDevice(Device):
    """A minimal backend: a word-addressed dictionary that counts its closes."""

    def __init__(self):
        self.words, self.closes = {}, 0

    def register_map(self) -> dict:
        return {"registers": {"STATUS": 0}}

    def write(self, addr, words):
        for offset, value in enumerate(words):
            self.words[addr + offset] = value

    def read(self, addr, count=1):
        return [self.words.get(addr + offset, 0) for offset in range(count)]

    def poll(self, addr, mask, timeout_cycles):
        value = self.read(addr)[0]
        if not value & mask:
            raise DeviceTimeout(f"register {addr:#x} never matched {mask:#x}")
        return value, 0

    def close(self):
        self.closes += 1


def test_the_abstract_methods_are_the_four_bus_operations():
    assert Device.__abstractmethods__ == ABSTRACT
    with pytest.raises(TypeError, match="abstract"):
        Device()


@pytest.mark.parametrize("missing", sorted(ABSTRACT))
def test_a_backend_missing_one_method_cannot_be_instantiated(missing):
    methods = {name: getattr(MemoryDevice, name) for name in ABSTRACT - {missing}}
    partial = type("Partial", (Device,), methods)
    with pytest.raises(TypeError, match=missing):
        partial()


def test_a_minimal_backend_reads_back_what_it_wrote():
    device = MemoryDevice()
    device.write(0x10, [7, 8, 9])
    assert device.read(0x10, 4) == [7, 8, 9, 0]
    assert device.poll(0x11, 0b1000, timeout_cycles=10) == (8, 0)
    assert device.register_map() == {"registers": {"STATUS": 0}}


def test_the_context_manager_returns_the_device_and_closes_it():
    with MemoryDevice() as device:
        assert isinstance(device, MemoryDevice)
        assert device.closes == 0
    assert device.closes == 1


def test_the_context_manager_closes_on_an_error_and_lets_it_through():
    device = MemoryDevice()
    with pytest.raises(KeyError, match="boom"):
        with device:
            raise KeyError("boom")
    assert device.closes == 1


def test_the_default_close_is_an_idempotent_no_op():
    class Quiet(MemoryDevice):
        close = Device.close

    with Quiet() as device:
        device.write(0, [5])
    assert device.close() is None and device.close() is None
    assert device.closes == 0             # the base close did nothing, three times


def test_device_timeout_is_a_runtime_error():
    assert issubclass(DeviceTimeout, RuntimeError)
    device = MemoryDevice()
    with pytest.raises(RuntimeError, match=r"register 0x4 never matched 0x1"):
        device.poll(0x4, 0x1, timeout_cycles=100)
