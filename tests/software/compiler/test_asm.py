"""Assembler and disassembler: round trips and errors that name the line and the field."""

import pytest

from caterpillar.app.cli import main
from caterpillar.contract.config import preset
from caterpillar.contract.isa import Layout, Opcode, VecOp, decode, encode
from caterpillar.golden.numerics import from_float
from caterpillar.software.compiler.asm import (
    AssemblyError,
    assemble,
    disassemble,
    from_bytes,
    to_bytes,
)

CFG = preset("small")

PROGRAM = """
# a comment line
lda spad=0 mema=0 rows=5 cols=7 lds=8 ldm=2      ; trailing comment
sets reg=1 value=-0.125
vop fn=axpy layout=diag z=0x30 x=0 y=16 len=7 alpha=1
gemm c=0x800 a=0 b=0x400 m=16 n=16 k=8 lda=16 ldb=16 ldc=16 mc=16 accumulate=1 mema=0
halt
"""


def test_assembles_fields_in_any_order_with_enums_and_real_immediates():
    words = assemble(PROGRAM, CFG)
    assert len(words) == 5
    assert words[0] == encode(Opcode.LDA, spad=0, mema=0, rows=5, cols=7, lds=8, ldm=2)
    assert decode(words[1]).value == int(from_float(-0.125, CFG.operand))
    assert decode(words[2]).fn is VecOp.AXPY and decode(words[2]).layout is Layout.DIAG
    assert decode(words[3]).accumulate == 1 and decode(words[4]).op is Opcode.HALT


def test_disassembly_round_trips():
    words = assemble(PROGRAM, CFG)
    assert assemble(disassemble(words), CFG) == words
    assert from_bytes(to_bytes(words)) == words
    with pytest.raises(ValueError, match=r"multiple of 32 bytes, not 33$"):
        from_bytes(bytes(33))


@pytest.mark.parametrize("line,message", [
    ("frobnicate x=1", r"^line 2: unknown instruction 'frobnicate'$"),
    ("halt now", r"^line 2: expected field=value, not 'now'$"),
    ("ldv spad=0 memb=0 len=4 layout=diag extra=1",
     r"^line 2: ldv has no field 'extra'; its fields are spad, memb, len, layout, row, rel$"),
    ("ldv spad=0 spad=4 memb=0 len=4 layout=diag", r"^line 2: field 'spad' given twice$"),
    ("ldv spad=0 memb=0 layout=diag", r"^line 2: ldv needs field\(s\) 'len'$"),
    ("ldv spad=0 memb=0 len=4 layout=sideways",
     r"^line 2: field 'layout' of ldv must be one of diag, colrep, rowrep, full, not 'sideways'$"),
    ("ldv spad=x memb=0 len=4 layout=diag", r"^line 2: field 'spad' of ldv: 'x' is not a "
                                            r"number$"),
    ("ldv spad=0 memb=70000 len=4 layout=diag",
     r"^line 2: field 'memb' of ldv must be in 0\.\.65535 \(16 bits\), not 70000$"),
])
def test_errors_name_line_and_field(line, message):
    with pytest.raises(AssemblyError, match=message):
        assemble("nop\n" + line, CFG)


def test_cli_asm_and_disasm(tmp_path, capsys):
    source = tmp_path / "p.s"
    source.write_text(PROGRAM)
    assert main(["asm", str(source)]) == 0
    binary = tmp_path / "p.bin"
    assert binary.stat().st_size == 5 * 32
    assert main(["disasm", str(binary)]) == 0
    text = capsys.readouterr().out.splitlines()[-5:]
    assert text[0] == "lda spad=0x0 mema=0x0 rows=5 cols=7 lds=8 ldm=2 trans=0"
    assert text[-1] == "halt"
    source.write_text("gemv y=1\n")
    with pytest.raises(SystemExit):
        main(["asm", str(source)])
    assert "line 1: gemv needs field(s) 'x', 'w'" in capsys.readouterr().err
